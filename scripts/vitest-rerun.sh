# Sourced by test.sh and test-node-versions.sh.
#
#   vitest_run LABEL LOG COMMAND...   runs COMMAND (a `vitest run` invocation, with any file filters), output to
#                                     the terminal and LOG; sets VITEST_RESULT to one line for the summary.
#
# The suite starts real processes (Redis, apps, the simulator) with fixed deadlines, which a machine shared with
# other runs can miss. When a run fails, the files that failed run once more on their own, and the summary names
# them with the first run's log: a file that fails twice fails the step. Returns non-zero only then, or when the
# failure is not only failed files: an unhandled error (a crashed process, a rejection no test caught) or a global
# setup or teardown error (the cluster's spread check) fails the step at once, since a run of files alone would
# not see it again.
vitest_run() {
  set -o pipefail
  local label=$1 log=$2
  shift 2
  mkdir -p "$(dirname "$log")"
  if "$@" 2>&1 | tee "$log"; then
    VITEST_RESULT="$label: passed ($(vitest_counts "$log"))"
    return 0
  fi
  local failed plain
  plain=$(sed -E 's/\x1b\[[0-9;]*m//g' "$log")
  failed=$(grep -oE '^ FAIL  [^ ]+\.test\.ts' <<<"$plain" | awk '{print $2}' | sort -u | tr '\n' ' ')
  if [ -z "$failed" ] || grep -qE 'Unhandled (Error|Rejection)|^\s+Errors\s+[0-9]' <<<"$plain"; then
    VITEST_RESULT="$label: FAILED ($(vitest_counts "$log"); see $log)"
    return 1
  fi
  echo "==> $label: running the failed files once more: $failed"
  # The filters given to the first run are replaced by the failed files' paths.
  local cmd=() a
  for a in "$@"; do
    case "$a" in *.test.ts | test/* | apps/* | packages/*) ;; *) cmd+=("$a") ;; esac
  done
  # shellcheck disable=SC2086
  if "${cmd[@]}" $failed 2>&1 | tee "$log.rerun"; then
    VITEST_RESULT="$label: passed after a second run of $failed(first run: $(vitest_counts "$log"); see $log)"
    return 0
  fi
  VITEST_RESULT="$label: FAILED twice: $failed(see $log and $log.rerun)"
  return 1
}

vitest_counts() {
  sed -E 's/\x1b\[[0-9;]*m//g' "$1" | grep -E '^\s+Tests\s' | tail -1 | sed -E 's/^\s+//;s/\s+/ /g' || true
}
