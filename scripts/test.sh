#!/usr/bin/env bash
# test.sh: set up, build and run the whole suite three times: a plain
# warning-clean build, AddressSanitizer+UBSan, and ThreadSanitizer.
# Exit status is non-zero on any failure. Build folders: build-ci/{plain,asan,tsan}.
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

run plain -DCMAKE_BUILD_TYPE=RelWithDebInfo
bash scripts/check-install.sh build-ci/plain
run asan -DCMAKE_BUILD_TYPE=Debug -DACTIO_SANITIZE=address -DCMAKE_C_COMPILER=clang
run tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DACTIO_SANITIZE=thread -DCMAKE_C_COMPILER=clang
echo "== all suites passed =="
