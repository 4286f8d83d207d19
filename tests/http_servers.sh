#!/usr/bin/env bash
# http_servers.sh: nginx on loopback for the HTTP tests, plain HTTP/1.1 and
# TLS with HTTP/2, under a throwaway CA, all state in one folder.
#   tests/http_servers.sh start DIR   make DIR, start nginx (or find it
#                                     running), print the env lines below
#   tests/http_servers.sh stop DIR    stop nginx; DIR is the caller's to remove
# start prints, and writes to DIR/env, shell-sourceable lines:
#   NGINX_HTTP_URL=http://127.0.0.1:<p>    NGINX_HTTPS_URL=https://127.0.0.1:<p>
#   CA_FILE=DIR/tls/ca.pem                 NGINX_DOCROOT=DIR/www
#   NGINX_MTLS_URL=https://127.0.0.1:<p>   (asks for a client certificate)
#   CLIENT_CERT=DIR/tls/client.pem         CLIENT_KEY=DIR/tls/client.key
# DIR/www holds 1k, 64k, 8m (random bytes) and index.html. Both ports are
# picked free by the kernel. Needs nginx, openssl, curl and python3.
set -euo pipefail

usage() {
  echo "usage: $0 start|stop DIR" >&2
  exit 2
}

[ $# -eq 2 ] || usage
CMD=$1
DIR=$2
HERE=$(cd "$(dirname "$0")" && pwd)
NGINX=${NGINX:-/usr/sbin/nginx}

# DIR goes unquoted into nginx.conf and the env lines, so keep it plain.
check_dir() {
  case $1 in
    *[!A-Za-z0-9._/+-]* | "") echo "$0: DIR must match [A-Za-z0-9._/+-]+: $1" >&2; exit 2 ;;
  esac
}
check_dir "$DIR"

running() {
  [ -s "$DIR/nginx.pid" ] && kill -0 "$(cat "$DIR/nginx.pid")" 2>/dev/null
}

make_tls() {
  bash "$HERE/make_certs.sh" "$DIR/tls"
}

make_www() {
  local www=$DIR/www
  mkdir -p "$www"
  [ -s "$www/8m" ] && return
  head -c 1024 /dev/urandom > "$www/1k"
  head -c 65536 /dev/urandom > "$www/64k"
  head -c $((8 * 1024 * 1024)) /dev/urandom > "$www/8m"
  printf '<!doctype html>\n<title>actio</title>\n<p>actio test server</p>\n' > "$www/index.html"
}

# Three distinct free loopback ports. The kernel could hand one out again
# before nginx binds it; start() retries if nginx then fails to listen.
free_ports() {
  python3 -c 'import socket
s = [socket.socket() for _ in range(3)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))'
}

write_conf() {
  local http_port=$1 tls_port=$2 mtls_port=$3
  mkdir -p "$DIR/tmp"
  cat > "$DIR/nginx.conf" <<CONF
worker_processes 1;
pid $DIR/nginx.pid;
error_log $DIR/nginx.error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  default_type application/octet-stream;
  types { text/html html; }
  sendfile on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  keepalive_timeout 65;
  client_body_temp_path $DIR/tmp/body;
  proxy_temp_path $DIR/tmp/proxy;
  fastcgi_temp_path $DIR/tmp/fastcgi;
  uwsgi_temp_path $DIR/tmp/uwsgi;
  scgi_temp_path $DIR/tmp/scgi;
  server {
    listen 127.0.0.1:$http_port;
    listen 127.0.0.1:$tls_port ssl http2;
    server_name localhost;
    ssl_certificate $DIR/tls/server.pem;
    ssl_certificate_key $DIR/tls/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    root $DIR/www;
  }
  server {
    listen 127.0.0.1:$mtls_port ssl;
    server_name localhost;
    ssl_certificate $DIR/tls/server.pem;
    ssl_certificate_key $DIR/tls/server.key;
    ssl_client_certificate $DIR/tls/ca.pem;
    ssl_verify_client on;
    root $DIR/www;
  }
}
CONF
}

# Waits up to 10 s for both ports to serve /1k; fails if nginx dies first.
# The daemonized master writes its pid file a moment after "nginx" returns,
# so a missing pid file only means "not yet".
wait_ready() {
  local http_port=$1 tls_port=$2
  for _ in $(seq 1 100); do
    if curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$http_port/1k" &&
      curl -sf -o /dev/null --max-time 2 --cacert "$DIR/tls/ca.pem" \
        "https://127.0.0.1:$tls_port/1k"; then
      return 0
    fi
    if [ -s "$DIR/nginx.pid" ] && ! running; then
      return 1
    fi
    sleep 0.1
  done
  return 1
}

start() {
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd)
  check_dir "$DIR"
  if running && [ -s "$DIR/env" ]; then
    cat "$DIR/env"
    return
  fi
  make_tls
  make_www
  local try ports http_port tls_port mtls_port
  for try in 1 2 3 4 5; do
    ports=$(free_ports)
    read -r http_port tls_port mtls_port <<<"$ports"
    write_conf "$http_port" "$tls_port" "$mtls_port"
    rm -f "$DIR/nginx.pid"
    # -e: nginx opens an error log before it reads the config; keep that
    # one in DIR too. "user root" as in bench/services.sh: workers must
    # read DIR, which may be private to root (ignored when not root).
    # Nothing of nginx's may reach stdout, which carries the env lines.
    if "$NGINX" -p "$DIR/" -e "$DIR/nginx.error.log" -c "$DIR/nginx.conf" \
      -g 'user root;' </dev/null >&2 &&
      wait_ready "$http_port" "$tls_port"; then
      {
        echo "NGINX_HTTP_URL=http://127.0.0.1:$http_port"
        echo "NGINX_HTTPS_URL=https://127.0.0.1:$tls_port"
        echo "CA_FILE=$DIR/tls/ca.pem"
        echo "NGINX_DOCROOT=$DIR/www"
        echo "NGINX_MTLS_URL=https://127.0.0.1:$mtls_port"
        echo "CLIENT_CERT=$DIR/tls/client.pem"
        echo "CLIENT_KEY=$DIR/tls/client.key"
      } > "$DIR/env"
      cat "$DIR/env"
      return
    fi
    stop
    echo "$0: nginx did not come up (try $try), see $DIR/nginx.error.log" >&2
  done
  exit 1
}

stop() {
  [ -d "$DIR" ] || return 0
  running || return 0
  local pid workers
  pid=$(cat "$DIR/nginx.pid")
  # Noted now: if the master has to be killed, its workers outlive it.
  workers=$(pgrep -P "$pid" || true)
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "$0: nginx $pid ignored SIGTERM for 10 s, killing it" >&2
  # shellcheck disable=SC2086 # one pid per word
  kill -KILL "$pid" $workers 2>/dev/null || true
}

case $CMD in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
