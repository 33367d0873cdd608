# Shared by the shell tests. Source it: . "$(dirname "$0")/lib.sh" (or ../lib.sh).

# run_or_skip LOG COMMAND...: runs COMMAND with its output in LOG; a COMMAND exiting 77 (the
# data set is not installed) makes the test a skip, any other failure fails it, with the log shown.
run_or_skip() {
  local log=$1 status
  shift
  set +e
  "$@" > "$log"
  status=$?
  set -e
  [[ $status -eq 77 ]] && { cat "$log"; exit 77; }
  [[ $status -eq 0 ]] || { cat "$log"; exit 1; }
}
