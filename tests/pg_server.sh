#!/usr/bin/env bash
# pg_server.sh: a throwaway PostgreSQL 15 on loopback for the tests, all
# state in one folder.
#   tests/pg_server.sh start DIR     make DIR, initdb into DIR/data (once),
#                                    start postgres (or find it running),
#                                    print the env lines below
#   tests/pg_server.sh restart DIR   restart it fast on the same port, wait
#                                    until it accepts connections, print the
#                                    env lines again
#   tests/pg_server.sh stop DIR      stop it; DIR is the caller's to remove
# start and restart print, and write to DIR/env, shell-sourceable lines:
#   PG_PORT=<p>
#   PG_DSN='host=127.0.0.1 port=<p> dbname=actio user=actio'
#       role actio: SUPERUSER LOGIN, no password (trust), owns database actio
#   PG_PASSWORD_DSN='host=127.0.0.1 port=<p> dbname=actio user=actio_pw password=s3cret-pw'
#       role actio_pw: LOGIN, scram-sha-256 only
#   PG_BIN=/usr/lib/postgresql/15/bin   (psql, pg_isready, ...)
# postgres listens on 127.0.0.1 only, at a port picked free by the kernel
# (kept across stop and start while it stays free), and on a unix socket in
# DIR/sock for the setup superuser "postgres". It logs to DIR/postgres.log.
# fsync, synchronous_commit and full_page_writes are off: a crash may lose
# the data, which is the caller's to throw away. As root, initdb and postgres
# run as the "postgres" system user: DIR is chowned to it and any parent it
# cannot search gets o+x. Needs the Debian postgresql-15 package and python3.
set -euo pipefail

usage() {
  echo "usage: $0 start|stop|restart DIR" >&2
  exit 2
}

[ $# -eq 2 ] || usage
CMD=$1
DIR=$2
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
# Seconds to wait for postgres to come up, accept connections, or stop.
PG_START_TIMEOUT=${PG_START_TIMEOUT:-60}
PG_USER=postgres   # the setup superuser; as root, also the system user

# DIR goes unquoted into postgresql.conf and the env lines, so keep it plain.
check_dir() {
  case $1 in
    *[!A-Za-z0-9._/+-]* | "") echo "$0: DIR must match [A-Za-z0-9._/+-]+: $1" >&2; exit 2 ;;
  esac
}
check_dir "$DIR"
check_dir "$PG_BIN"

# The caller's libpq settings (PGHOST, PGPORT, PGUSER, PGDATA, PGOPTIONS, ...)
# must not steer the commands below; PG_BIN and the like have an underscore.
while read -r v; do
  unset "$v"
done < <(compgen -e | grep '^PG[A-Z]' || true)

if [ "$(id -u)" -eq 0 ]; then
  AS_ROOT=1
  id -u "$PG_USER" >/dev/null 2>&1 || {
    echo "$0: running as root, but there is no \"$PG_USER\" system user to run postgres" >&2
    exit 1
  }
else
  AS_ROOT=
fi

# Runs a command as the user that owns the cluster: postgres refuses root.
as_pg() {
  if [ -z "$AS_ROOT" ]; then
    "$@"
  elif command -v runuser >/dev/null; then
    runuser -u "$PG_USER" -- "$@"
  else
    su -s /bin/bash "$PG_USER" -c "$(printf '%q ' "$@")"
  fi
}

# A file we write into DIR that postgres must read or own.
own() {
  [ -z "$AS_ROOT" ] || chown "$PG_USER:" "$@"
}

pg_ctl() {
  as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" "$@"
}

running() {
  [ -s "$DIR/data/PG_VERSION" ] && pg_ctl status >/dev/null 2>&1
}

# The port of the running server: line 4 of postmaster.pid.
running_port() {
  sed -n 4p "$DIR/data/postmaster.pid" 2>/dev/null
}

# As root, postgres must reach DIR: own it, and search every parent. A mktemp
# folder (0700, root's) is the usual parent it cannot search.
make_reachable() {
  [ -n "$AS_ROOT" ] || return 0
  chown "$PG_USER:" "$DIR"
  as_pg test -x "$DIR" && return 0
  local d=$DIR
  while [ "$d" != / ]; do
    d=$(dirname "$d")
    if ! as_pg test -x "$d"; then
      echo "$0: chmod o+x $d, so that $PG_USER can reach $DIR" >&2
      chmod o+x "$d"
    fi
  done
  as_pg test -x "$DIR" || {
    echo "$0: $PG_USER still cannot reach $DIR" >&2
    exit 1
  }
}

init_cluster() {
  [ -s "$DIR/data/PG_VERSION" ] && return
  rm -rf "$DIR/data"
  # Nothing may reach stdout, which carries the env lines.
  as_pg "$PG_BIN/initdb" -D "$DIR/data" -U "$PG_USER" -E UTF8 --locale=C \
    --auth=trust --no-sync --no-instructions >"$DIR/initdb.log" 2>&1 || {
    echo "$0: initdb failed:" >&2
    tail -n 20 "$DIR/initdb.log" >&2
    exit 1
  }
  echo "include 'actio.conf'" >> "$DIR/data/postgresql.conf"
}

# Whether the kernel lets us bind PORT on loopback now.
port_free() {
  # SO_REUSEADDR as postgres sets it: closed connections in TIME_WAIT do not
  # hold the port, a listener does.
  python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try: s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError: sys.exit(1)' "$1"
}

# A free loopback port, not one of the other kit's. The kernel could hand it
# out again before postgres binds it; start() retries if postgres then fails.
free_port() {
  python3 -c 'import socket
while True:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    if p not in (15432, 18080, 14222):
        print(p)
        break'
}

write_conf() {
  local port=$1
  mkdir -p "$DIR/sock"
  own "$DIR/sock"
  chmod 700 "$DIR/sock"
  cat > "$DIR/data/actio.conf" <<CONF
# Written by tests/pg_server.sh on each start.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$DIR/sock'
max_connections = 100
fsync = off
synchronous_commit = off
full_page_writes = off
password_encryption = 'scram-sha-256'
logging_collector = off
log_destination = 'stderr'
log_line_prefix = '%m [%p] %q%u@%d '
CONF
  own "$DIR/data/actio.conf"
  # Overwritten in place: the file keeps initdb's owner and mode.
  cat > "$DIR/data/pg_hba.conf" <<'HBA'
# Written by tests/pg_server.sh. TYPE DATABASE USER ADDRESS METHOD
local all postgres trust
host all actio 127.0.0.1/32 trust
host all actio_pw 127.0.0.1/32 scram-sha-256
HBA
  echo "$port" > "$DIR/port"
}

# Waits until postgres accepts connections on loopback, PG_START_TIMEOUT s.
wait_ready() {
  local port=$1 deadline=$((SECONDS + PG_START_TIMEOUT))
  while [ "$SECONDS" -lt "$deadline" ]; do
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U actio -d actio -t 2 && return 0
    running || return 1
    sleep 0.1
  done
  return 1
}

# Roles and database; safe to run again.
setup_roles() {
  local port=$1
  as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DIR/sock" -p "$port" \
    -U "$PG_USER" -d postgres >/dev/null <<'SQL'
SELECT 'CREATE ROLE actio' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'actio') \gexec
ALTER ROLE actio SUPERUSER LOGIN;
SELECT 'CREATE ROLE actio_pw' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'actio_pw') \gexec
SET password_encryption = 'scram-sha-256';
ALTER ROLE actio_pw LOGIN PASSWORD 's3cret-pw';
SELECT 'CREATE DATABASE actio OWNER actio' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'actio') \gexec
SQL
}

write_env() {
  local port=$1
  {
    echo "PG_PORT=$port"
    echo "PG_DSN='host=127.0.0.1 port=$port dbname=actio user=actio'"
    echo "PG_PASSWORD_DSN='host=127.0.0.1 port=$port dbname=actio user=actio_pw password=s3cret-pw'"
    echo "PG_BIN=$PG_BIN"
  } > "$DIR/env"
  cat "$DIR/env"
}

fail() {
  echo "$0: $1, last lines of $DIR/postgres.log:" >&2
  tail -n 20 "$DIR/postgres.log" >&2 2>/dev/null || true
  exit 1
}

start() {
  if [ ! -x "$PG_BIN/postgres" ]; then
    echo "$0: no $PG_BIN/postgres (apt-get install postgresql-15)" >&2
    exit 1
  fi
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd)
  check_dir "$DIR"
  # Unix socket paths are limited to 107 bytes.
  if [ ${#DIR} -gt 80 ]; then
    echo "$0: DIR is too long for a unix socket path inside it: $DIR" >&2
    exit 2
  fi
  make_reachable
  # initdb and pg_ctl as postgres must be able to stand in the cwd.
  cd "$DIR"
  local port
  if running; then
    port=$(running_port)
    if [ -s "$DIR/env" ] && grep -qx "PG_PORT=$port" "$DIR/env"; then
      cat "$DIR/env"
      return
    fi
    wait_ready "$port" || fail "postgres is running but does not accept connections on port $port"
    setup_roles "$port"
    write_env "$port"
    return
  fi
  init_cluster
  local try
  port=
  [ -s "$DIR/port" ] && port=$(cat "$DIR/port")
  for try in 1 2 3 4 5; do
    # The last port if it is still free, so a DSN from before stays good.
    if [ -z "$port" ] || ! port_free "$port"; then
      port=$(free_port)
    fi
    write_conf "$port"
    touch "$DIR/postgres.log"
    own "$DIR/postgres.log"
    # pg_ctl -w returns once postgres is ready, so the roles can be made
    # over the socket before pg_isready logs in over TCP as actio.
    if pg_ctl start -w -t "$PG_START_TIMEOUT" -l "$DIR/postgres.log" \
      </dev/null >&2; then
      setup_roles "$port" || fail "could not create the roles and database"
      wait_ready "$port" || fail "postgres does not accept connections on 127.0.0.1:$port"
      write_env "$port"
      return
    fi
    pg_ctl stop -m immediate >/dev/null 2>&1 || true
    echo "$0: postgres did not come up on port $port (try $try)" >&2
    port=
  done
  fail "postgres did not come up"
}

stop() {
  [ -d "$DIR/data" ] || return 0
  DIR=$(cd "$DIR" && pwd)
  cd "$DIR"
  running || return 0
  pg_ctl stop -m fast -w -t "$PG_START_TIMEOUT" >&2 ||
    fail "pg_ctl stop failed"
}

restart() {
  [ -d "$DIR" ] || { start; return; }
  DIR=$(cd "$DIR" && pwd)
  check_dir "$DIR"
  cd "$DIR"
  # Not running: start, which takes the same port back if it is free.
  running || { start; return; }
  local port
  port=$(running_port)
  pg_ctl restart -m fast -w -t "$PG_START_TIMEOUT" -l "$DIR/postgres.log" \
    </dev/null >&2 || fail "pg_ctl restart failed"
  wait_ready "$port" || fail "postgres does not accept connections after the restart"
  write_env "$port"
}

case $CMD in
  start) start ;;
  stop) stop ;;
  restart) restart ;;
  *) usage ;;
esac
