#!/usr/bin/env bash
# check-layers.sh: fails when a file includes a header from a layer above its
# own, when libpq or libcurl is included outside its io/ folder, or when
# demos/ or bench/ include anything but the public headers.
# Usage: scripts/check-layers.sh [source-dir]   (run by ctest as "layering")
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"

# What each folder may include of the project's own headers (in "quotes",
# or in <angle brackets> when the path starts with a project folder), as
# extended regexes over the path. Other angle-bracket includes are system
# and library headers, checked separately below.
PUBLIC='actio\.h|actio/[a-z_]+\.h'
allowed() { # folder -> regex of allowed quoted includes
  case "$1" in
    include)        echo "$PUBLIC" ;;
    base)           echo 'actio/error\.h|base/[a-z_]+\.h' ;;
    mailbox)        echo 'actio/error\.h|base/[a-z_]+\.h|mailbox/[a-z_]+\.h' ;;
    io/*)           echo "actio/error\\.h|base/[a-z_]+\\.h|$1/[a-z_]+\\.h" ;;
    actors/core)    echo "$PUBLIC|base/[a-z_]+\\.h|mailbox/[a-z_]+\\.h|actors/core/[a-z_]+\\.h" ;;
    actors/*)       echo "$PUBLIC|base/[a-z_]+\\.h|mailbox/[a-z_]+\\.h|io/[a-z]+/[a-z_]+\\.h|actors/core/[a-z_]+\\.h|$1/[a-z_]+\\.h" ;;
    demos|bench)    echo "$PUBLIC|[a-z_0-9]+\\.h" ;; # public headers and their own
    *)              echo '' ;;
  esac
}

fail=0
report() { echo "layering: $1"; fail=1; }

while IFS= read -r f; do
  dir=$(dirname "$f")
  case "$dir" in
    io/*|actors/*) layer=$dir ;;
    *) layer=${dir%%/*} ;;
  esac
  re=$(allowed "$layer")
  [ -n "$re" ] || continue
  while IFS=: read -r line inc; do
    path=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]([^">]+)[">].*/\1/' <<<"$inc")
    # demos/bench: a bare name is a header of their own folder only
    if [[ ! "$path" =~ ^($re)$ ]] ||
       { [[ "$layer" =~ ^(demos|bench)$ ]] && [[ ! "$path" =~ ^($PUBLIC)$ ]] && [ ! -f "$dir/$path" ]; }; then
      report "$f:$line includes \"$path\", which $layer/ may not include"
    fi
  done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*("|<(actio[./]|base/|mailbox/|io/|actors/))' "$f" || true)
done < <(git ls-files -co --exclude-standard -- 'include/*.h' 'base/*.[ch]' 'mailbox/*.[ch]' 'io/*.[ch]' 'actors/*.[ch]' 'demos/*.[ch]' 'bench/*.[ch]' | sort -u)

# Each library has one home in io/.
lib_home() { # header regex, allowed folder regex, name
  while IFS=: read -r f line _; do
    [[ "$f" =~ $2 ]] || report "$f:$line includes $3 outside its home"
  done < <(git ls-files -co --exclude-standard -- 'base/*.[ch]' 'mailbox/*.[ch]' 'io/*.[ch]' 'actors/*.[ch]' 'include/*.h' |
           xargs grep -nE "^[[:space:]]*#[[:space:]]*include[[:space:]]*<$1>" || true)
}
lib_home 'libpq-fe\.h|libpq/[a-z-]+\.h' '^io/pg/' 'libpq'
lib_home 'curl/[a-z]+\.h' '^io/http/' 'libcurl'
lib_home 'nats/[a-z]+\.h|nats\.h' '^io/nats/' 'cnats'

if [ "$fail" -ne 0 ]; then
  echo "layering: see docs/architecture.md for what each folder may include"
  exit 1
fi
echo "layering: ok"
