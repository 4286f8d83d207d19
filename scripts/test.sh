#!/usr/bin/env bash
# test.sh: set up, build and run the whole suite three times: a plain
# warning-clean build (plus valgrind over the unit tests and an install
# check), AddressSanitizer+UBSan (plus fault injection), and
# ThreadSanitizer; then the fuzz targets briefly (scripts/fuzz.sh), and the
# unit tests once more in a coverage build (scripts/coverage.sh), whose
# summary of the library's lines and branches ends the output. Exit status
# is non-zero on any failure. Build folders:
# build-ci/{plain,asan,tsan,fuzz,coverage}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

jobs=$(nproc)
run() { # name, extra cmake flags...
  local name=$1; shift
  local dir=build-ci/$name
  echo "== $name: configure, build, test =="
  cmake -S . -B "$dir" -DACTIO_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  (cd "$dir" && ctest --output-on-failure -j 1)
}

run plain -DCMAKE_BUILD_TYPE=RelWithDebInfo # its ctest checks the install too

# valgrind's memcheck over the unit tests (the stress cases are too slow
# under it, and the sanitizer runs below cover them).
echo "== valgrind: leaks and invalid accesses =="
for t in future:basics gather:combinators actor:actors; do
  CK_FORK=no CK_RUN_CASE=${t#*:} valgrind -q --error-exitcode=9 --leak-check=full \
    --errors-for-leak-kinds=definite,indirect "build-ci/plain/tests/test_${t%%:*}"
done
# ASan also runs the fault-injection test (tests/test_faults.c): its leak
# checks are what make it worth running.
run asan -DCMAKE_BUILD_TYPE=Debug -DACTIO_SANITIZE=address -DCMAKE_C_COMPILER=clang \
  -DACTIO_FAULTS=ON
run tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DACTIO_SANITIZE=thread -DCMAKE_C_COMPILER=clang
# Every libFuzzer target over its seeds, then 5 s of fuzzing each.
ACTIO_FUZZ_BUILD=build-ci/fuzz JOBS=$jobs bash scripts/fuzz.sh 5
echo "== coverage: the unit tests in a gcc --coverage build =="
bash scripts/coverage.sh build-ci/coverage
echo "== all suites passed; coverage of base/ mailbox/ io/ actors/ (build-ci/coverage) =="
cat build-ci/coverage/summary.txt
