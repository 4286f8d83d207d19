#!/usr/bin/env bash
# demo_output.sh: runs a demo and checks what it printed, not only its exit
# status: every PATTERN (an extended regular expression) must match a whole
# line of its output, and its standard error must hold no sanitizer report.
# Each --arg ARG is given to the demo, in order.
#   tests/demo_output.sh [--arg ARG]... DEMO PATTERN...
set -euo pipefail
args=()
while [ "${1:-}" = --arg ] && [ $# -ge 2 ]; do
  args+=("$2")
  shift 2
done
[ $# -ge 2 ] || { echo "usage: $0 [--arg ARG]... DEMO PATTERN..." >&2; exit 2; }
demo=$1
shift
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
rc=0
"$demo" "${args[@]}" > "$out" 2> "$err" || rc=$?
cat "$out"
cat "$err" >&2
fail() {
  echo "FAIL: $demo: $*" >&2
  exit 1
}
[ "$rc" -eq 0 ] || fail "exit status $rc"
if grep -E 'Sanitizer|runtime error:' "$err" > /dev/null; then
  fail "a sanitizer report"
fi
for pattern in "$@"; do
  grep -Eqx -- "$pattern" "$out" || fail "no line of its output is: $pattern"
done
echo "PASS: $demo"
