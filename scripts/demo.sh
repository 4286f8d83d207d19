#!/usr/bin/env bash
# demo.sh: one command for a new user: installs what is missing, builds, and
# runs the demos (files, then actors with gather and map).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
out=$(mktemp -d /tmp/actio-demo-XXXXXX)
trap 'rm -rf "$out"' EXIT
echo "== files: write, read, lines, 100 writes gathered =="
build/demos/actio-demo-files "$out"
echo
echo "== actors: a worker pool asked 1000 times, gathered; then a bounded map =="
build/demos/actio-demo-actors
echo
echo "Build your own: include <actio.h> and link with \`pkg-config --libs actio\`"
echo "after \`cmake --install build\`; see README.md for the API tour."
