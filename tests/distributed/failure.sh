#!/usr/bin/env bash
# A rank that dies or stalls makes the job end with an error within seconds, never a hang.
# Usage: failure.sh MPIRUN FAILURE_PROGRAM
set -uo pipefail
mpirun=$1 program=$2
flags=(-np 2 --allow-run-as-root --oversubscribe)
status=0
run() {  # mode, expected exit (0 or nonzero), expected text
  local mode=$1 want=$2 text=$3 start out rc elapsed
  start=$(date +%s)
  out=$(timeout 120 "$mpirun" "${flags[@]}" "$program" "$mode" 2>&1)
  rc=$?
  elapsed=$(( $(date +%s) - start ))
  echo "--- $mode: exit $rc after ${elapsed}s"
  echo "$out" | sed 's/^/    /'
  if [[ $rc -eq 124 ]]; then echo "FAIL: $mode hung (killed by timeout 120)"; status=1; return; fi
  if [[ $want == 0 && $rc -ne 0 ]] || [[ $want != 0 && $rc -eq 0 ]]; then
    echo "FAIL: $mode exited $rc, expected $( [[ $want == 0 ]] && echo 0 || echo nonzero)"; status=1
  fi
  if [[ $elapsed -gt 60 ]]; then echo "FAIL: $mode took ${elapsed}s"; status=1; fi
  if ! grep -qF -- "$text" <<<"$out"; then echo "FAIL: $mode: the output lacks '$text'"; status=1; fi
}
run ok 0 "all_reduce gave 2"
run stall 1 "did not finish within 2000 ms on rank 0 of 2"
run die 1 "non-zero"
exit $status
