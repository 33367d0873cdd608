#!/usr/bin/env bash
# examples/fashion_mnist --distributed under mpirun -np 2 trains the same steps as one
# process with the whole batch: the same accuracy (float32 sums in another order may move
# the last digits, so within 0.5 points) and a model that learned (above 60%).
# Usage: fashion_distributed.sh MPIRUN FASHION_MNIST
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
mpirun=$1 exe=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
common=(--limit 4000 --epochs 2 --skip-if-missing)
run_or_skip "$out/one.log" "$exe" "${common[@]}" --out "$out/one"
timeout 300 "$mpirun" -np 2 --allow-run-as-root --oversubscribe "$exe" --distributed "${common[@]}" --out "$out/two" \
  > "$out/two.log" 2>&1 || { cat "$out/two.log"; exit 1; }
grep -q 'over 2 ranks (64 each)' "$out/two.log" || { echo "FAIL: the run did not report 2 ranks"; cat "$out/two.log"; exit 1; }
a=$(grep '^final test accuracy' "$out/one.log" | awk '{print $4}' | tr -d '%')
b=$(grep '^final test accuracy' "$out/two.log" | awk '{print $4}' | tr -d '%')
echo "1 process: $a%   2 ranks: $b%"
[[ -f $out/two/checkpoint.bin && -f $out/two/accuracy.svg ]] || { echo "FAIL: rank 0 wrote no checkpoint or plot"; exit 1; }
awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 0.5 && b > 60) }' ||
  { echo "FAIL: accuracies differ by more than 0.5 points (or did not learn)"; exit 1; }
