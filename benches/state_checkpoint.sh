#!/usr/bin/env bash
# What a state checkpoint (`state.dir`) costs on a large state: KEYS External Secrets
# cadence keys (default 1,000,000, the default `cadence.max_keys`), each read twice a day
# apart so every key has a learned interval and an armed `stale` timer, tailed from a file
# by the release daemon. Prints the state file's size (in all and per key), how long one
# checkpoint takes to take and write (the engine thread is paused meanwhile), and how long
# the next start takes to read and restore it.
#
#   [AW=binary] benches/state_checkpoint.sh [KEYS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${HOME:-/tmp}/.cache/auditwatch/target}
if [ -z "${AW:-}" ]; then
  cargo build --release --quiet --bin auditwatch
  AW=$CARGO_TARGET_DIR/release/auditwatch
fi
dir=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

echo "== ${N} cadence keys, two reads each"
python3 benches/cadence_keys.py "$N" >"$dir/audit.log"
python3 benches/cadence_keys.py "$N" \
  | sed -e 's/"time":"2026-03-02T/"time":"2026-03-03T/' -e 's/-4000-8000-/-4000-9000-/' >>"$dir/audit.log"
size=$(stat -c %s "$dir/audit.log")
cat >"$dir/config.yaml" <<EOF
server: {listen: 127.0.0.1:0, tick_secs: 0}
state: {dir: '$dir/state', interval_secs: 5}
sources:
  - {name: vault-file, kind: file, path: '$dir/audit.log', checkpoint_dir: '$dir/state', start_at: beginning}
output: {alerts: '$dir/alerts.jsonl'}
cadence: {max_keys: $N}
EOF

start() {
  AUDITWATCH_LOG=info "$AW" run --config "$dir/config.yaml" 2>"$dir/log.$1" &
  pid=$!
  for _ in $(seq 600); do
    addr=$(sed -n 's/.*http endpoint listening address=\([0-9.:]*\).*/\1/p' "$dir/log.$1" | head -1)
    [ -n "$addr" ] && return
    sleep 0.1
  done
  echo "the daemon did not start" >&2; cat "$dir/log.$1" >&2; exit 1
}
metric() { curl -s "http://$addr/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

start 1
t0=$(date +%s.%N)
# Wait until every byte is committed and a checkpoint was written after that.
for _ in $(seq 3600); do
  read_bytes=$(curl -s "http://$addr/metrics" | awk '$1 ~ /^auditwatch_bytes_total/ { print $2 }')
  cp=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['files'][0]['offset'])" "$dir/state/vault-file.checkpoint.json" 2>/dev/null || echo 0)
  [ "$cp" = "$size" ] && break
  sleep 1
done
t1=$(date +%s.%N)
sleep 6
keys=$(curl -s "http://$addr/metrics" | awk '$1 == "auditwatch_state_table_size{table=\"cadence_keys\"}" { print $2 }')
bytes=$(metric auditwatch_state_bytes)
ms=$(python3 -c "print(round($(metric auditwatch_state_write_seconds) * 1000))")
rss=$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status")
echo "read ${size} bytes in $(python3 -c "print(round($t1 - $t0, 1))") s; peak RSS ${rss} KB"
echo "cadence keys: ${keys}"
echo "state file: ${bytes} bytes ($(python3 -c "print(round($bytes / max(1, $keys), 1))") bytes per key)"
echo "one checkpoint (take + encode + write + fsync + rename): ${ms} ms, every state.interval_secs (5 s here and by default)"
kill -TERM "$pid"; wait "$pid" || true; pid=
start 2
sed -n 's/.*saved state found.*read_ms=\([0-9]*\).*/read and checked at start: \1 ms/p' "$dir/log.2"
sed -n 's/.*detection state restored ms=\([0-9]*\).*/restored into the engine: \1 ms/p' "$dir/log.2"
keys2=$(curl -s "http://$addr/metrics" | awk '$1 == "auditwatch_state_table_size{table=\"cadence_keys\"}" { print $2 }')
sleep 1.5
keys2=$(curl -s "http://$addr/metrics" | awk '$1 == "auditwatch_state_table_size{table=\"cadence_keys\"}" { print $2 }')
echo "cadence keys after the restart: ${keys2}"
kill -TERM "$pid"; wait "$pid" || true; pid=
