#!/usr/bin/env bash
# stress-suite.sh: runs the suite of the given builds several times in a row
# with one busy process per core beside it (`yes > /dev/null`), to show that
# no test depends on timing or scheduling. Reports each round's outcome.
#   scripts/stress-suite.sh [ROUNDS] [BUILD...] [-- CTEST_ARGS...]
# ROUNDS: default 5. BUILD: plain, asan or tsan (default all three): the
# build folders of scripts/test.sh, build-ci/BUILD, configured there first;
# each is brought up to date before the hogs start. CTEST_ARGS go to ctest,
# e.g. -- -R '^(db|http|supervisor)$'. Logs: build-ci/stress/. Exit status 1
# if any round of any build failed. The hogs slow everyone on the machine:
# run only the rounds you need.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=5
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then
  rounds=$1
  shift
fi
builds=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do
  case $1 in
    plain | asan | tsan) builds+=("$1") ;;
    *) echo "usage: $0 [ROUNDS] [plain|asan|tsan ...] [-- CTEST_ARGS...]" >&2; exit 2 ;;
  esac
  shift
done
[ $# -eq 0 ] || shift # the --
[ ${#builds[@]} -gt 0 ] || builds=(plain asan tsan)
[ "$rounds" -ge 1 ] || { echo "$0: ROUNDS must be at least 1" >&2; exit 2; }

for b in "${builds[@]}"; do
  [ -f "build-ci/$b/CTestTestfile.cmake" ] ||
    { echo "$0: build-ci/$b is not configured: run scripts/test.sh first" >&2; exit 2; }
  cmake --build "build-ci/$b" -j "$(nproc)" > /dev/null
done

logs=build-ci/stress
mkdir -p "$logs"
hogs=()
stop_hogs() {
  [ ${#hogs[@]} -eq 0 ] || kill "${hogs[@]}" 2> /dev/null || true
  wait "${hogs[@]}" 2> /dev/null || true
  hogs=()
}
trap stop_hogs EXIT
trap 'exit 130' INT TERM # through the EXIT trap
for _ in $(seq "$(nproc)"); do
  yes > /dev/null &
  hogs+=($!)
done
echo "== $rounds round(s) of ${builds[*]}, ${#hogs[@]} busy process(es) beside${*:+, ctest $*}"

failed=0
summary=()
for r in $(seq "$rounds"); do
  for b in "${builds[@]}"; do
    log=$logs/round-$r-$b.log
    start=$SECONDS
    rc=0
    (cd "build-ci/$b" && ctest --output-on-failure -j 1 "$@") > "$log" 2>&1 || rc=$?
    took=$((SECONDS - start))
    counts=$(grep -Eo '[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$log" || true)
    if [ "$rc" -eq 0 ]; then
      line="round $r $b: PASS ($counts, ${took} s)"
    else
      failed=1
      names=$(awk '/The following tests FAILED:/ { f = 1; next }
                   f && sub(/^[[:space:]]+[0-9]+ - /, "") { printf "%s; ", $0 }' "$log")
      line="round $r $b: FAIL ($counts, ${took} s): ${names:-see $log}"
    fi
    echo "$line"
    summary+=("$line")
  done
done
stop_hogs

echo "== summary"
printf '%s\n' "${summary[@]}"
exit "$failed"
