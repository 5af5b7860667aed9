#!/usr/bin/env bash
# Instructions per verification, counted by callgrind (see benches/instructions.rs).
# Usage: scripts/instructions.sh [case …]
# (cases: floor memory memory_dyn memory_awaited memory_awaited_dyn memory_rate_limited
# issue_floor issue; default all)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
bin=$(cargo bench --features rate-limit --bench instructions --no-run --message-format=json 2>/dev/null \
  | grep -o '"executable":"[^"]*instructions[^"]*"' | tail -n 1 | cut -d'"' -f4)
rounds=$(grep -o 'const ROUNDS: usize = [0-9_]*' benches/instructions.rs | grep -o '[0-9_]*$' | tr -d _)
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(floor memory memory_dyn memory_awaited memory_awaited_dyn memory_rate_limited issue_floor issue)
for case in "${cases[@]}"; do
  out=$(mktemp)
  valgrind --tool=callgrind --toggle-collect="*measured_${case}" --callgrind-out-file="$out" \
    "$bin" "$case" >/dev/null 2>&1
  total=$(grep -E '^(summary|totals):' "$out" | head -n 1 | awk '{print $2}')
  rm -f "$out"
  awk -v c="$case" -v t="$total" -v r="$rounds" \
    'BEGIN { printf "instructions/%s: %.0f instructions per call (%d over %d)\n", c, t / r, t, r }'
done
