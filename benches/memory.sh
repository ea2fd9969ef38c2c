#!/usr/bin/env bash
# Peak memory (issue 6): 10 GB streamed through replay, and a million distinct ESO
# cadence keys. Nothing is written to disk: generators pipe into replay's stdin.
#
#   benches/memory.sh [GB]      default 10
set -euo pipefail
cd "$(dirname "$0")/.."
GB=${1:-10}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${HOME:-/tmp}/.cache/auditwatch/target}
cargo build --release --quiet --bin auditwatch
AW=$CARGO_TARGET_DIR/release/auditwatch
stats=$(mktemp)
echo "== ${GB} GB of simulated traffic, streamed"
{ "$AW" simulate --seed 7 --tenants 200 --duration 365d --inject all 2>/dev/null || true; } \
  | head -c "$((GB * 1000000000))" \
  | /usr/bin/time -f "peak RSS %M KB, %e s" "$AW" replay -q --stats-json "$stats" - >/dev/null
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('entries', d['entries'], 'bytes', d['bytes'], 'tables', d['tables'])" "$stats"
echo "== 1,000,000 distinct ESO cadence keys"
python3 benches/cadence_keys.py 1000000 \
  | /usr/bin/time -f "peak RSS %M KB, %e s" "$AW" replay -q --threads 1 --stats-json "$stats" - >/dev/null
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('entries', d['entries'], 'tables', d['tables'], 'evicted', d['evicted_keys'])" "$stats"
rm -f "$stats"
