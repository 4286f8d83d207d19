#!/usr/bin/env bash
# services.sh: the benchmark's servers (nginx with static files and an nginx forward proxy, squid and tinyproxy before it, a throwaway PostgreSQL, a nats-server, a 3-node JetStream cluster) on loopback, under one folder.
#   bench/services.sh start [DIR]   start them (or find them running), print the export lines
#   bench/services.sh env [DIR]     print the export lines of the running services
#   bench/services.sh stop [DIR]    stop them and remove DIR
# DIR: the argument, else $BENCH_SERVICES_DIR, else /tmp/actio-bench-services.
# start and env print, for eval "$(bench/services.sh start)":
#   export BENCH_HTTP_URL=http://127.0.0.1:<p>    (/1k, /64k, /8m: random bytes;
#          /gz/1m.json: 1 MiB of JSON, gzipped for who takes it)
#   export BENCH_PROXY_URL=http://127.0.0.1:<p>   (nginx as a forward proxy
#          to BENCH_HTTP_URL only, no credentials, no cache: keeps
#          connections alive both ways)
#   export BENCH_SQUID_URL=http://127.0.0.1:<p>   (squid, the same, to any
#          host: a single process at about 80 us of CPU a request)
#   export BENCH_TINYPROXY_URL=http://127.0.0.1:<p>   (tinyproxy, no
#          credentials: closes each connection after its response)
#   export BENCH_PG_DSN=postgresql://actio@127.0.0.1:<p>/actio   (trust, superuser)
#   export BENCH_NATS_URL=nats://127.0.0.1:<p>    (no authentication)
#   export BENCH_NATS_JS_URL=nats://127.0.0.1:<a>,...  (the 3 JetStream nodes)
#   export BENCH_DOCROOT=DIR/http/www  BENCH_SERVICES_DIR=DIR
# The servers are the test suite's (tests/http_servers.sh, tests/pg_server.sh,
# tests/nats_server.sh):
# one way to start each, kept in one place. Their ports are picked free by the
# kernel, so they never take the shared kit's (18080, 15432, 14222) nor those of
# a test run going on at the same time. Everything they print goes to DIR/log.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
TESTS=$(cd "$HERE/../tests" && pwd)
CMD=${1:-}
DIR=${2:-${BENCH_SERVICES_DIR:-/tmp/actio-bench-services}}
# Written into DIR at start: stop removes only a folder that carries it.
MARK=.actio-bench-services

# The services, started in this order and stopped in the reverse one. Each
# has start_X (prints its export lines), env_X and stop_X.
SERVICES=(http pg nats natsjs)

usage() {
  echo "usage: $0 start|env|stop [DIR]" >&2
  exit 2
}

# Runs one of the test suite's server scripts, its chatter kept in DIR/log;
# on failure shows the end of that log.
helper() { # script start|stop folder
  if ! bash "$TESTS/$1" "$2" "$3" 2>>"$DIR/log"; then
    echo "$0: tests/$1 $2 failed; the end of $DIR/log:" >&2
    tail -n 20 "$DIR/log" >&2
    return 1
  fi
}

# The export lines of a service, from the env file its script writes.
env_http() {
  [ -s "$DIR/http/env" ] || return 1
  (
    # shellcheck disable=SC1091 # written by tests/http_servers.sh
    . "$DIR/http/env"
    echo "export BENCH_HTTP_URL=$NGINX_HTTP_URL BENCH_DOCROOT=$NGINX_DOCROOT BENCH_PROXY_URL=$FWD_PROXY_URL BENCH_SQUID_URL=$SQUID_URL BENCH_TINYPROXY_URL=$PROXY_URL"
  )
}
env_pg() {
  [ -s "$DIR/pg/env" ] || return 1
  (
    # shellcheck disable=SC1091 # written by tests/pg_server.sh
    . "$DIR/pg/env"
    # A URI, not key=value: asyncpg takes only URIs; libpq, psql and pgbench
    # take both.
    echo "export BENCH_PG_DSN=postgresql://actio@127.0.0.1:$PG_PORT/actio"
  )
}

env_nats() {
  [ -s "$DIR/nats/env" ] || return 1
  (
    # shellcheck disable=SC1091 # written by tests/nats_server.sh
    . "$DIR/nats/env"
    echo "export BENCH_NATS_URL=$NATS_URL"
  )
}

env_natsjs() {
  [ -s "$DIR/natsjs/cluster.env" ] || return 1
  (
    # shellcheck disable=SC1091 # written by tests/nats_server.sh
    . "$DIR/natsjs/cluster.env"
    echo "export BENCH_NATS_JS_URL=$NATS_JS_URLS"
  )
}

start_http() { helper http_servers.sh start "$DIR/http" >/dev/null; env_http; }
start_pg() { helper pg_server.sh start "$DIR/pg" >/dev/null; env_pg; }
start_nats() { helper nats_server.sh start "$DIR/nats" >/dev/null; env_nats; }
stop_nats() { helper nats_server.sh stop "$DIR/nats" >/dev/null; }
start_natsjs() { helper nats_server.sh cluster "$DIR/natsjs" >/dev/null; env_natsjs; }
stop_natsjs() { helper nats_server.sh stop "$DIR/natsjs" >/dev/null; }
stop_http() { helper http_servers.sh stop "$DIR/http" >/dev/null; }
stop_pg() { helper pg_server.sh stop "$DIR/pg" >/dev/null; }

start() {
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd)
  touch "$DIR/$MARK"
  # postgres (a system user when we are root) must reach its folder inside.
  chmod 755 "$DIR"
  local s
  for s in "${SERVICES[@]}"; do
    "start_$s" || { echo "$0: $s did not start; stopping the others" >&2; stop; exit 1; }
  done
  echo "export BENCH_SERVICES_DIR=$DIR"
}

print_env() {
  [ -f "$DIR/$MARK" ] || { echo "$0: no services under $DIR" >&2; exit 1; }
  DIR=$(cd "$DIR" && pwd)
  local s
  for s in "${SERVICES[@]}"; do
    "env_$s" || { echo "$0: $s is not running under $DIR" >&2; exit 1; }
  done
  echo "export BENCH_SERVICES_DIR=$DIR"
}

stop() {
  [ -d "$DIR" ] || return 0
  if [ ! -f "$DIR/$MARK" ]; then
    echo "$0: $DIR was not made by $0; leaving it alone" >&2
    exit 1
  fi
  local i rc=0
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    "stop_${SERVICES[i]}" || rc=1 # stop the others all the same
  done
  rm -rf "$DIR"
  return $rc
}

case $CMD in
  start) start ;;
  env) print_env ;;
  stop) stop ;;
  *) usage ;;
esac
