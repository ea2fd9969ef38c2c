#!/usr/bin/env bash
# Side-by-side throughput on one large generated audit file (issue 6's comparison):
# auditwatch replay with every shipped rule (one thread, then every core), the bare
# single-thread simd-json typed parse of performance.md, jq, and vault-audit-tools'
# system-overview. Prints MB/s (10^6 bytes) and ratios; best of RUNS runs each.
#
#   benches/compare.sh [SIZE_MB]        default 400; RUNS=3; the file is kept in $DIR
#
# Needs: a Rust toolchain; jq and vault-audit-tools are installed if missing (apt, cargo).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${1:-400}
RUNS=${RUNS:-3}
DIR=${DIR:-${TMPDIR:-/tmp}/auditwatch-compare}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${HOME:-/tmp}/.cache/auditwatch/target}
mkdir -p "$DIR"

cargo build --release --quiet --bin auditwatch --example bare_parse
AW=$CARGO_TARGET_DIR/release/auditwatch
BARE=$CARGO_TARGET_DIR/release/examples/bare_parse

FILE=$DIR/traffic-${SIZE_MB}MB.log
if [ ! -s "$FILE" ]; then
  echo "generating $FILE (200 tenants, every injection, cut at ${SIZE_MB} MB) ..."
  # head closes the pipe early; simulate's broken pipe is expected there.
  { "$AW" simulate --seed 7 --tenants 200 --duration 30d --inject all || true; } \
    | head -c "$((SIZE_MB * 1000000))" | sed '$d' > "$FILE.tmp"
  mv "$FILE.tmp" "$FILE"
fi
BYTES=$(stat -c %s "$FILE")
LINES=$(wc -l < "$FILE")
cat "$FILE" > /dev/null   # page cache, as in performance.md

command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq jq >/dev/null; }
VAT=$DIR/vat/bin/vault-audit
[ -x "$VAT" ] || cargo install --quiet --locked --root "$DIR/vat" vault-audit-tools --version 0.11.2

best() { # best wall time of RUNS runs of "$@", stdout discarded
  local best=""
  for _ in $(seq "$RUNS"); do
    local s e t
    s=$(date +%s.%N); "$@" > /dev/null 2>&1 || true; e=$(date +%s.%N)
    t=$(echo "$e - $s" | bc -l)
    if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; fi
  done
  echo "$best"
}

printf 'file: %s, %.1f MB, %d lines (%.2f KB/line); %s, %d cores\n' "$FILE" \
  "$(echo "$BYTES / 1000000" | bc -l)" "$LINES" "$(echo "$BYTES / $LINES / 1000" | bc -l)" \
  "$(uname -m)" "$(nproc)"
declare -A T
T[aw_all]=$(best "$AW" replay -q "$FILE")
T[aw_1]=$(best "$AW" replay -q --threads 1 "$FILE")
T[bare]=$(best "$BARE" "$FILE")
T[jq]=$(best jq -c 'select(.type=="response")' "$FILE")
T[vat]=$(best "$VAT" system-overview "$FILE")
for k in aw_all aw_1 bare jq vat; do
  case $k in
    aw_all) name="auditwatch replay, all rules, $(nproc) threads" ;;
    aw_1) name="auditwatch replay, all rules, 1 thread" ;;
    bare) name="bare simd-json typed parse, 1 thread" ;;
    jq) name="jq select(.type==\"response\")" ;;
    vat) name="vault-audit-tools system-overview" ;;
  esac
  printf '%-48s %8.0f MB/s %10.0f lines/s  x%.2f of bare, x%.1f of vault-audit-tools\n' "$name" \
    "$(echo "$BYTES / 1000000 / ${T[$k]}" | bc -l)" "$(echo "$LINES / ${T[$k]}" | bc -l)" \
    "$(echo "${T[bare]} / ${T[$k]}" | bc -l)" "$(echo "${T[vat]} / ${T[$k]}" | bc -l)"
done
