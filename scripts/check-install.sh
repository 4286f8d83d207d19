#!/usr/bin/env bash
# check-install.sh BUILD_DIR: installs actio from BUILD_DIR into a temporary
# prefix, then builds and runs a consumer twice: with pkg-config and with
# CMake's find_package. Checks the packaging a user relies on.
set -euo pipefail
cd "$(dirname "$0")/.."
build=$1
prefix=$(mktemp -d /tmp/actio-install-XXXXXX)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig"
# shellcheck disable=SC2046
cc -o "$prefix/by-pkgconfig" tests/consumer/main.c $(pkg-config --cflags --libs actio) -Wl,-rpath,"$prefix/lib"
"$prefix/by-pkgconfig"
cmake -S tests/consumer -B "$prefix/consumer-build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$prefix/consumer-build" >/dev/null
"$prefix/consumer-build/consumer"
echo "install check: pkg-config and find_package consumers ran"
