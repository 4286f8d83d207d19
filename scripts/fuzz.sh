#!/usr/bin/env bash
# fuzz.sh: builds the libFuzzer targets of tests/fuzz (clang, ASan+UBSan) and
# runs each, one after the other, over its seeds (tests/fuzz/corpus/<name>)
# and then for the given time; prints a table of executions per second and
# the coverage reached (libFuzzer's cov: edges, ft: features).
# Usage: scripts/fuzz.sh [seconds] [target...]   (default: 10 s, every target)
# Build folder: $ACTIO_FUZZ_BUILD (default build-fuzz); what a run finds goes
# to <build>/fuzz-out/<target>/ (its log, new inputs, crash-* files), never
# into the seeds. Exit status is non-zero when a target fails.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-10}
[ $# -gt 0 ] && shift
[[ "$secs" =~ ^[0-9]+$ ]] || { echo "usage: $0 [seconds] [target...]" >&2; exit 2; }
build=${ACTIO_FUZZ_BUILD:-build-fuzz}
if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(grep -l '^int LLVMFuzzerTestOneInput' tests/fuzz/*.c | xargs -n1 basename | sed 's/\.c$//')
fi
for t in "${targets[@]}"; do
  [ -f "tests/fuzz/$t.c" ] || { echo "fuzz: no target $t (tests/fuzz/$t.c)" >&2; exit 2; }
done

echo "== fuzz: build ($build) =="
cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DACTIO_FUZZ=ON -DACTIO_WERROR=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DACTIO_BUILD_TESTS=OFF -DACTIO_BUILD_BENCH=OFF \
  -DACTIO_BUILD_DEMOS=OFF >/dev/null
cmake --build "$build" -j "${JOBS:-2}" --target "${targets[@]/#/fuzz_}"

export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
rows=() failed=()
for t in "${targets[@]}"; do
  out=$build/fuzz-out/$t
  rm -rf "$out" && mkdir -p "$out/corpus"
  dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
  echo "== fuzz: $t, ${secs} s =="
  # New inputs go to $out/corpus (the first folder); the seeds are only read.
  if ! "$build/tests/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=30 \
       -print_final_stats=1 -artifact_prefix="$out/" "${dict[@]}" \
       "$out/corpus" "tests/fuzz/corpus/$t" >"$out/log" 2>&1; then
    failed+=("$t")
    grep -v '^ *#[0-9]' "$out/log" | tail -n 40 >&2 || true
    echo "fuzz: $t failed; its input and log are in $out/" >&2
    continue
  fi
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$out/log" | tail -n 1)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$done_line")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$done_line")
  corp=$(sed -nE 's/.* corp: ([0-9]+)\/.*/\1/p' <<<"$done_line")
  runs=$(sed -nE 's/^stat::number_of_executed_units:[[:space:]]+([0-9]+)/\1/p' "$out/log")
  eps=$(sed -nE 's/^stat::average_exec_per_sec:[[:space:]]+([0-9]+)/\1/p' "$out/log")
  rows+=("$(printf '%-14s %8s %12s %9s %6s %7s %7s' "$t" "$secs" "$runs" "$eps" "$cov" "$ft" "$corp")")
done

echo "== fuzz: results ($(date -u +%Y-%m-%d), $(nproc) cores) =="
printf '%-14s %8s %12s %9s %6s %7s %7s\n' target seconds runs exec/s cov ft corpus
printf '%s\n' "${rows[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
