#!/usr/bin/env bash
# demo.sh: one command for a new user: installs what is missing, builds, and
# runs the demos (files; actors with gather and map; HTTP against a local
# server).
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
echo "== http: several pages at once, one of them missing, one port closed =="
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$out/www"
for i in 1 2 3 4 5; do head -c $((i * 10000)) /dev/urandom > "$out/www/page$i"; done
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$out/www" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$out"' EXIT
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$port/page1" && break; sleep 0.1; done
urls=()
for i in 1 2 3 4 5; do urls+=("http://127.0.0.1:$port/page$i"); done
build/demos/actio-demo-http "${urls[@]}" "http://127.0.0.1:$port/missing" "http://127.0.0.1:1/"

echo
echo "Build your own: include <actio.h> and link with \`pkg-config --libs actio\`"
echo "after \`cmake --install build\`; see README.md for the API tour."
