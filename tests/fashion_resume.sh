#!/usr/bin/env bash
# Fashion-MNIST: training interrupted after epoch 1 and resumed must end exactly where an
# uninterrupted run ends (same accuracy and loss, to the last printed digit).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
exe=$1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
common=(--limit 2000 --epochs 2 --skip-if-missing)
run_or_skip "$out/straight.log" "$exe" "${common[@]}" --out "$out/straight"
"$exe" "${common[@]}" --out "$out/resumed" --stop-after 1 > /dev/null
"$exe" "${common[@]}" --out "$out/resumed" --resume > "$out/resumed.log"
a=$(grep '^final test accuracy' "$out/straight.log")
b=$(grep '^final test accuracy' "$out/resumed.log")
echo "uninterrupted: $a"
echo "resumed:       $b"
[[ "$a" == "$b" ]]
