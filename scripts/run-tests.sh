#!/usr/bin/env bash
# Run pytest with WORKERS parallel workers (0: one process). Exit 5 ("no tests collected") is a
# failure for the whole suite, since a suite that runs nothing proves nothing; with a filter
# (the arguments after WORKERS) it is reported and passes.
set -uo pipefail
pytest=$1 workers=$2
shift 2
parallel=()
if [ "$workers" != 0 ]; then
  # A test file runs whole on one worker, and the groups tests/conftest.py names
  # (rigs with fixed names) stay together; tests/conftest.py also orders the long ones first.
  parallel=(-n "$workers" --dist loadscope --no-loadscope-reorder)
fi
# The slowest tests, and tests/conftest.py's time per worker and scope, close the report.
"$pytest" "${parallel[@]}" --durations=15 "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  if [ "$#" -gt 0 ]; then
    echo "run-tests: the filter '$*' selected no tests" >&2
    exit 0
  fi
  echo "run-tests: pytest collected no tests; the suite is broken" >&2
  exit 1
fi
exit "$rc"
