#!/usr/bin/env bash
# Repeated replay timings of one or more auditwatch binaries, interleaved so that the
# machine's drift hits them alike: min and median wall time and median CPU (user+sys),
# then every run's wall time, sorted (on a machine with fast and slow phases, compare
# the binaries rank by rank).
#
#   benches/ab.sh N BIN [BIN...]     FILE=... (default: compare.sh's 600 MB file), THREADS=2
set -euo pipefail
F=${FILE:-${TMPDIR:-/tmp}/auditwatch-compare/traffic-600MB.log}
N=$1; shift
declare -A W C
for _ in $(seq "$N"); do
  for b in "$@"; do
    read -r w u s < <({ /usr/bin/time -f "%e %U %S" "$b" replay -q --threads "${THREADS:-2}" "$F" >/dev/null; } 2>&1 | tail -1)
    W[$b]+="$w "; C[$b]+="$(echo "$u + $s" | bc -l) "
  done
done
med() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mb=$(( $(stat -c %s "$F") / 1000000 ))
for b in "$@"; do
  mn=$(echo "${W[$b]}" | tr ' ' '\n' | grep . | sort -n | head -1); md=$(echo "${W[$b]}" | med)
  printf '%s: wall min %s s (%.0f MB/s), median %s s (%.0f MB/s); cpu median %s s\n' "$b" \
    "$mn" "$(echo "$mb / $mn" | bc -l)" "$md" "$(echo "$mb / $md" | bc -l)" "$(printf "%.2f" "$(echo "${C[$b]}" | med)")"
done
for b in "$@"; do
  printf '%s: runs, sorted (s): %s\n' "$b" "$(echo "${W[$b]}" | tr ' ' '\n' | grep . | sort -n | tr '\n' ' ')"
done
