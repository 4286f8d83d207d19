#!/usr/bin/env bash
# check-install.sh BUILD_DIR: installs actio from BUILD_DIR into a temporary
# prefix, builds a consumer twice, with pkg-config and with CMake's
# find_package, and runs each on a file whose checksum it must print; then
# runs an installed demo as installed and after the prefix moved, without
# LD_LIBRARY_PATH. Checks the packaging a user relies on (ctest: install).
set -euo pipefail
cd "$(dirname "$0")/.."
build=$1
root=$(mktemp -d /tmp/actio-install-XXXXXX)
trap 'rm -rf "$root"' EXIT
prefix=$root/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig"
# shellcheck disable=SC2046
cc -o "$prefix/by-pkgconfig" tests/consumer/main.c $(pkg-config --cflags --libs actio) -Wl,-rpath,"$prefix/lib"
cmake -S tests/consumer -B "$prefix/consumer-build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$prefix/consumer-build" >/dev/null

# Each reads an installed header through a file actor, prints its size and
# FNV-1a checksum, and copies it: both must match what Python computes.
in=$prefix/include/actio/actor.h
want=$(python3 -c 'import sys
data, h = open(sys.argv[1], "rb").read(), 0xcbf29ce484222325
for b in data: h = ((h ^ b) * 0x100000001b3) & (2**64 - 1)
print("%s: %d bytes, fnv1a64 %016x" % (sys.argv[1], len(data), h))' "$in")
for consumer in "$prefix/by-pkgconfig" "$prefix/consumer-build/consumer"; do
  got=$("$consumer" "$in" "$root/copy")
  echo "$got"
  [ "${got#*: }" = "$want" ] || { echo "install check: $consumer printed '$got', not '$want'" >&2; exit 1; }
  cmp "$in" "$root/copy"
  rm "$root/copy"
done

# An installed program loads the installed library, found through its run
# path ($ORIGIN), wherever the prefix is.
demo_runs() { # the demo's path
  local line
  line=$(env -u LD_LIBRARY_PATH ldd "$1" | grep -E '^[[:space:]]*libactio\.so' || true)
  case "$line" in
    *" => $(dirname "$(dirname "$1")")/"*) ;;
    *) echo "install check: $1 does not load the installed libactio: ${line:-not linked}" >&2
       return 1 ;;
  esac
  env -u LD_LIBRARY_PATH "$1" >/dev/null
}
demo_runs "$prefix/bin/actio-demo-files"
mv "$prefix" "$root/moved"
demo_runs "$root/moved/bin/actio-demo-files"
echo "install check: pkg-config and find_package consumers ran; an installed demo ran from its prefix, and moved"
