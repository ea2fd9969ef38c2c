#!/usr/bin/env bash
# Peak memory of the pending-request table: 200,000 requests of ~30 KB each that are
# never answered (6 GB of held lines if nothing bounded them), streamed into replay's
# stdin. The table is bounded by engine.max_pending_bytes (default 256 MiB) and
# engine.max_pending_requests (100,000): expect peak RSS near the byte budget plus the
# decided-id set and the read-ahead, with the evicted requests judged oldest first.
#
#   [AW=binary] benches/pending_memory.sh [REQUESTS] [BYTES_PER_REQUEST]    defaults 200000 30000
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
SIZE=${2:-30000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${HOME:-/tmp}/.cache/auditwatch/target}
# AW=path/to/auditwatch uses that binary instead of building a release one.
if [ -z "${AW:-}" ]; then
  cargo build --release --quiet --bin auditwatch
  AW=$CARGO_TARGET_DIR/release/auditwatch
fi
stats=$(mktemp)
echo "== ${N} unanswered requests of ${SIZE} bytes"
python3 - "$N" "$SIZE" <<'PY' \
  | /usr/bin/time -f "peak RSS %M KB, %e s" "$AW" replay -q --threads 1 --stats-json "$stats" - >/dev/null
import json, sys
n, size = int(sys.argv[1]), int(sys.argv[2])
head = {"type": "request", "auth": {"display_name": "approle", "policies": ["default"]}}
out = sys.stdout
pad = "x" * size
for i in range(n):
    # One request a millisecond: all within the response timeout, none ever answered.
    t = "2026-03-02T10:%02d:%02d.%03dZ" % (i // 60000, (i // 1000) % 60, i % 1000)
    e = dict(head, time=t, request={"id": "%08x-0000-4000-8000-000000000000" % i,
                                     "operation": "update", "path": "secret/data/x",
                                     "data": {"pad": pad}})
    out.write(json.dumps(e, separators=(",", ":")))
    out.write("\n")
PY
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('entries', d['entries'], 'bytes', d['bytes'], 'evicted_requests', d['evicted_requests'], 'timed_out_requests', d['timed_out_requests'])" "$stats"
rm -f "$stats"
