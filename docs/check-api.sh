#!/usr/bin/env bash
# check-api.sh DOXYGEN DOXYFILE INCLUDE_DIR: the test api_reference. Fails
# when a public header has no @file comment (Doxygen checks nothing in an
# undocumented file) or when Doxygen warns: a public function, type, field,
# enum or macro without a contract, or a comment Doxygen cannot read.
set -euo pipefail
doxygen=$1 doxyfile=$2 include=$3

if [ -z "$doxygen" ] || ! command -v "$doxygen" >/dev/null; then
  echo "doxygen not found: run scripts/setup.sh, then configure again" >&2
  exit 1
fi
rc=0
while IFS= read -r h; do
  if ! grep -q '^/\*\* @file ' "$h"; then
    echo "$h: no /** @file ... */ comment: Doxygen would check none of its declarations" >&2
    rc=1
  fi
done < <(find "$include" -name '*.h' | sort)
"$doxygen" "$doxyfile" || rc=1
[ $rc -eq 0 ] && echo "api_reference: every public declaration has a contract"
exit $rc
