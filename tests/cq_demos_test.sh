#!/usr/bin/env bash
# cq_demos_test.sh: the completion-queue demos (demos/cq_*.c: epoll, libuv,
# GLib) against nginx and a throwaway PostgreSQL started here. Each must
# print every page's and query's outcome, ticks of its own timer, and its
# summary (tests/demo_output.sh checks the lines and the sanitizers).
#   tests/cq_demos_test.sh DEMO...
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 DEMO..." >&2; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd)

work=$(mktemp -d /tmp/actio-cq-XXXXXX)
chmod 755 "$work" # postgres (when run as root) must reach its folder
cleanup() {
  bash "$HERE/pg_server.sh" stop "$work/pg" >/dev/null 2>&1 || true
  bash "$HERE/http_servers.sh" stop "$work/web" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

start_server() { # name script: its settings, printed on stdout, are eval'ed
  local env
  env=$(bash "$HERE/$2" start "$work/$1" 2> "$work/$1.err") ||
    { cat "$work/$1.err" >&2; echo "FAIL: $2 could not start its server" >&2; exit 1; }
  eval "$env"
}
start_server web http_servers.sh
start_server pg pg_server.sh

for demo in "$@"; do
  bash "$HERE/demo_output.sh" --arg "$PG_DSN" --arg "$NGINX_HTTP_URL/1k" \
    --arg "$NGINX_HTTP_URL/missing" --arg "http://127.0.0.1:1/" "$demo" \
    "started 3 pages and 4 queries" \
    "page 0: 200, 1024 bytes" "page 1: 404, [0-9]+ bytes" "page 2: failed [(]E[A-Z]+[)]: .*" \
    "query 0 [(]6 [*] 7[)]: 42" "query 1 [(]rows in 1..1000[)]: 1000" \
    "query 2 [(]a slow one[)]: slept 0.2 s" \
    "query 3 [(]1 / 0[)]: failed [(]ESQL[)], SQLSTATE 22012: division by zero" \
    "tick 1 [(][0-9] in flight[)]" "tick 3 [(][0-9] in flight[)]" \
    "done: 3 pages and 4 queries completed, the loop ticked [0-9]+ times"
done
