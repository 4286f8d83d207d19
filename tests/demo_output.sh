#!/usr/bin/env bash
# demo_output.sh: runs a demo and checks what it printed, not only its exit
# status: every PATTERN (an extended regular expression) must match a whole
# line of its output, and its standard error must hold no sanitizer report.
#   tests/demo_output.sh DEMO PATTERN...
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 DEMO PATTERN..." >&2; exit 2; }
demo=$1
shift
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
rc=0
"$demo" > "$out" 2> "$err" || rc=$?
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
