#!/usr/bin/env bash
# The examples fail cleanly on bad input found while running (not while parsing the options):
# exit status 1 and one line "<program>: <what went wrong>" on stderr, never an uncaught
# exception (std::terminate, status 134, a core dump). Arguments: the fashion_mnist, moons and
# xor executables.
set -uo pipefail
fashion=$1 moons=$2 xor=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

# expect_failure NAME PATTERN COMMAND...: COMMAND exits 1 and its stderr matches PATTERN.
expect_failure() {
  local name=$1 pattern=$2 status
  shift 2
  "$@" > "$tmp/out" 2> "$tmp/err"
  status=$?
  if [[ $status -eq 77 ]]; then echo "skip: $name (data set not installed)"; return; fi
  if [[ $status -ne 1 ]] || ! grep -Eq -- "$pattern" "$tmp/err" || grep -q 'terminate called' "$tmp/err"; then
    echo "FAIL: $name: exit $status (want 1), stderr:"; cat "$tmp/err"; failures=$((failures + 1))
  else
    echo "ok: $name: $(head -c 300 "$tmp/err")"
  fi
}

touch "$tmp/file"
# An output folder that cannot be made (a regular file is in the way).
expect_failure "xor --out FILE" "^xor: .*$tmp/file" "$xor" --quick --out "$tmp/file"
expect_failure "moons --out FILE" "^moons: .*$tmp/file" "$moons" --steps 10 --out "$tmp/file"
quick=(--limit 256 --epochs 1 --skip-if-missing)
expect_failure "fashion_mnist --out FILE" "^fashion_mnist: .*$tmp/file" "$fashion" "${quick[@]}" --out "$tmp/file"
# --resume without a checkpoint, with a corrupt one, and with one of another model.
mkdir -p "$tmp/none" "$tmp/bad" "$tmp/other"
expect_failure "fashion_mnist --resume, no checkpoint" "^fashion_mnist: .*cannot open checkpoint.*$tmp/none/checkpoint.bin" \
  "$fashion" "${quick[@]}" --out "$tmp/none" --resume
echo "not a checkpoint" > "$tmp/bad/checkpoint.bin"
expect_failure "fashion_mnist --resume, corrupt checkpoint" "^fashion_mnist: .*$tmp/bad/checkpoint.bin.*not a chainrule checkpoint" \
  "$fashion" "${quick[@]}" --out "$tmp/bad" --resume
"$fashion" "${quick[@]}" --hidden 16 --out "$tmp/other" > /dev/null 2>&1
status=$?
if [[ $status -eq 0 ]]; then
  expect_failure "fashion_mnist --resume, checkpoint of another model" "^fashion_mnist: .*checkpoint does not fit the model" \
    "$fashion" "${quick[@]}" --hidden 32 --out "$tmp/other" --resume
elif [[ $status -ne 77 ]]; then
  echo "FAIL: the run that writes the checkpoint of another model exited $status"; failures=$((failures + 1))
fi
exit $((failures > 0))
