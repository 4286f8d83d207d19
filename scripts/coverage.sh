#!/usr/bin/env bash
# coverage.sh: what the unit tests run of the library (base/, mailbox/, io/,
# actors/; not tests, demos or bench): a gcc --coverage build
# (ACTIO_COVERAGE=ON, no benchmarks or demos, with the fault-injection test,
# which alone reaches most out-of-memory paths), its ctest run, gcovr's
# summary of lines and branches, and two checks: every public function is
# called by a test (scripts/check-coverage.py), and lines reach 90% and
# branches 80%.
# Usage: scripts/coverage.sh [BUILD_DIR]   (default build-ci/coverage; the
# reports: BUILD_DIR/coverage-lines.txt and coverage-branches.txt per file,
# coverage.json, summary.txt). Exit status is non-zero when a test fails or
# a check does.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-ci/coverage}
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DACTIO_WERROR=ON \
  -DACTIO_COVERAGE=ON -DACTIO_FAULTS=ON -DACTIO_BUILD_BENCH=OFF -DACTIO_BUILD_DEMOS=OFF >/dev/null
cmake --build "$dir" -j "$(nproc)"
find "$dir" -name '*.gcda' -delete # this run's counts only
(cd "$dir" && ctest --output-on-failure -j 1)
# gcc counts a branch for each way out of a condition; branches the
# compiler made for code with no source of its own are left out.
report=(gcovr -r . "$dir" --filter '^(base|mailbox|io|actors)/' --exclude-unreachable-branches)
"${report[@]}" --txt "$dir/coverage-branches.txt" --branches
rc=0
"${report[@]}" --txt "$dir/coverage-lines.txt" --json "$dir/coverage.json" --print-summary \
  --fail-under-line 90 --fail-under-branch 80 | tee "$dir/summary.txt" || rc=1
python3 scripts/check-coverage.py "$dir/coverage.json" include/actio || rc=1
exit $rc
