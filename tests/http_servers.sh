#!/usr/bin/env bash
# http_servers.sh: nginx on loopback for the HTTP tests, plain HTTP/1.1 and
# TLS with HTTP/2, under a throwaway CA, and proxies (tinyproxy and squid for
# http, microsocks for socks5), all state in one folder.
#   tests/http_servers.sh start DIR   make DIR, start nginx (or find it
#                                     running), print the env lines below
#   tests/http_servers.sh stop DIR    stop nginx; DIR is the caller's to remove
# start prints, and writes to DIR/env, shell-sourceable lines:
#   NGINX_HTTP_URL=http://127.0.0.1:<p>    NGINX_HTTPS_URL=https://127.0.0.1:<p>
#   CA_FILE=DIR/tls/ca.pem                 NGINX_DOCROOT=DIR/www
#   NGINX_MTLS_URL=https://127.0.0.1:<p>   (asks for a client certificate)
#   CLIENT_CERT=DIR/tls/client.pem         CLIENT_KEY=DIR/tls/client.key
#   PROXY_URL=http://127.0.0.1:<p>        tinyproxy: CONNECT to NGINX_HTTPS_URL's
#                                          port only (others get a 403)
#   PROXY_AUTH_URL=http://127.0.0.1:<p>   the same, with Basic credentials
#                                          actio / proxy-pw
#   SOCKS_URL=socks5h://127.0.0.1:<p>     microsocks, no credentials
#   SOCKS_AUTH_URL=socks5h://127.0.0.1:<p> microsocks, actio / socks-pw
#   SQUID_URL=http://127.0.0.1:<p>        squid: keeps client and upstream
#                                          connections alive (tinyproxy closes
#                                          each after its response), caches
#                                          nothing, CONNECT as PROXY_URL
#   FWD_PROXY_URL=http://127.0.0.1:<p>    nginx as a forward proxy: plain-http
#                                          requests to NGINX_HTTP_URL's host
#                                          and port only (others get a 403),
#                                          keep-alive both ways, no CONNECT
# DIR/www holds 1k, 64k, 8m (random bytes), index.html and gz/1m.json
# (1 MiB of JSON-like text, served gzipped to who takes it); POST /upload
# takes a body of up to 1 MiB and answers 200 "ok". Every port is
# picked free by the kernel. Needs nginx, openssl, curl, python3,
# tinyproxy, squid and microsocks.
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

# The proxies run in the foreground of a background job: their pids are
# ours, in DIR/proxies.pid, one a line.

tinyproxy_conf() {
  local port=$1 connect_port=$2 auth=$3
  cat <<CONF
Port $port
Listen 127.0.0.1
Timeout 60
MaxClients 256
LogLevel Warning
Allow 127.0.0.1
ConnectPort $connect_port
$auth
CONF
}

# squid as a plain forward proxy on loopback: no cache (every GET goes to
# the server), nothing on disk but what it says on stderr (-d1, into
# proxies.log), so that it needs no file of DIR once it has dropped root for
# the proxy user; persistent connections both ways are squid's default.
squid_conf() {
  local port=$1 connect_port=$2
  cat <<CONF
http_port 127.0.0.1:$port
visible_hostname actio-squid
acl loopback src 127.0.0.1/32
acl tls_port port $connect_port
acl CONNECT method CONNECT
http_access deny CONNECT !tls_port
http_access allow loopback
http_access deny all
cache deny all
cache_mem 0 MB
access_log none
cache_store_log none
cache_log /dev/null
pid_filename none
pinger_enable off
shutdown_lifetime 0 seconds
max_filedescriptors 4096
CONF
}

# nginx as a forward proxy for absolute-URI requests over plain http (the
# proxied GETs' benchmark: squid spends 80 us of CPU a request, one core
# at about 12k/s, so it was the wall): one process in the foreground, no
# cache, no buffering to disk. The origin is the only upstream, an
# upstream block so that nginx keeps its connections to it alive; any
# other Host gets a 403 rather than a resolver.
fwd_proxy_conf() {
  local port=$1 origin_port=$2
  cat <<CONF
worker_processes 1;
daemon off;
master_process off;
pid $DIR/fwd-proxy.pid;
error_log $DIR/fwd-proxy.error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  tcp_nodelay on;
  keepalive_requests 1000000;
  keepalive_timeout 65;
  client_body_temp_path $DIR/tmp/fwd-body;
  proxy_temp_path $DIR/tmp/fwd-proxy;
  fastcgi_temp_path $DIR/tmp/fastcgi;
  uwsgi_temp_path $DIR/tmp/uwsgi;
  scgi_temp_path $DIR/tmp/scgi;
  upstream origin { server 127.0.0.1:$origin_port; keepalive 256; }
  map \$http_host \$fwd_origin { default ""; "127.0.0.1:$origin_port" origin; }
  server {
    listen 127.0.0.1:$port;
    location / {
      if (\$fwd_origin = "") { return 403; }
      proxy_pass http://\$fwd_origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF
}

# Waits up to 10 s for a proxy to take connections.
wait_port() {
  for _ in $(seq 1 100); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $1), 1)" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

start_proxies() {
  local http_port=$1 tls_port=$2 ports p1 p2 p3 p4 p5 p6
  ports=$(free_ports 6)
  read -r p1 p2 p3 p4 p5 p6 <<<"$ports"
  tinyproxy_conf "$p1" "$tls_port" "" > "$DIR/tinyproxy.conf"
  tinyproxy_conf "$p2" "$tls_port" "BasicAuth actio proxy-pw" > "$DIR/tinyproxy-auth.conf"
  squid_conf "$p5" "$tls_port" > "$DIR/squid.conf"
  fwd_proxy_conf "$p6" "$http_port" > "$DIR/fwd-proxy.conf"
  : > "$DIR/proxies.pid"
  tinyproxy -d -c "$DIR/tinyproxy.conf" </dev/null >>"$DIR/proxies.log" 2>&1 &
  echo $! >> "$DIR/proxies.pid"
  tinyproxy -d -c "$DIR/tinyproxy-auth.conf" </dev/null >>"$DIR/proxies.log" 2>&1 &
  echo $! >> "$DIR/proxies.pid"
  microsocks -i 127.0.0.1 -p "$p3" </dev/null >>"$DIR/proxies.log" 2>&1 &
  echo $! >> "$DIR/proxies.pid"
  microsocks -i 127.0.0.1 -p "$p4" -u actio -P socks-pw </dev/null >>"$DIR/proxies.log" 2>&1 &
  echo $! >> "$DIR/proxies.pid"
  # -N: in the foreground, one process (no kid to outlive a TERM).
  squid -N -d1 -f "$DIR/squid.conf" </dev/null >>"$DIR/proxies.log" 2>&1 &
  echo $! >> "$DIR/proxies.pid"
  "$NGINX" -p "$DIR/" -e "$DIR/fwd-proxy.error.log" -c "$DIR/fwd-proxy.conf" \
    </dev/null >>"$DIR/proxies.log" 2>&1 &
  echo $! >> "$DIR/proxies.pid"
  for p in $p1 $p2 $p3 $p4 $p5 $p6; do
    wait_port "$p" || return 1
  done
  echo "PROXY_URL=http://127.0.0.1:$p1"
  echo "PROXY_AUTH_URL=http://127.0.0.1:$p2"
  echo "SOCKS_URL=socks5h://127.0.0.1:$p3"
  echo "SOCKS_AUTH_URL=socks5h://127.0.0.1:$p4"
  echo "SQUID_URL=http://127.0.0.1:$p5"
  echo "FWD_PROXY_URL=http://127.0.0.1:$p6"
}

stop_proxies() {
  [ -s "$DIR/proxies.pid" ] || return 0
  local pid
  while read -r pid; do
    kill -TERM "$pid" 2>/dev/null || true
  done < "$DIR/proxies.pid"
  rm -f "$DIR/proxies.pid"
}

make_tls() {
  bash "$HERE/make_certs.sh" "$DIR/tls"
}

make_www() {
  local www=$DIR/www
  mkdir -p "$www" "$www/gz"
  if [ ! -s "$www/gz/1m.json.gz" ]; then
    # 1 MiB of JSON-like text, and its gzip beside it (gzip_static serves
    # that one to a client that takes gzip: the server spends no CPU on it)
    python3 -c 'import sys
rows = []
n = 0
while n < 1 << 20:
    r = "{\"id\": %d, \"name\": \"user%d\", \"score\": %d, \"tags\": [\"a\", \"b%d\"]},\n" % (n, n % 997, n * 7 % 1000, n % 13)
    rows.append(r)
    n += len(r)
sys.stdout.write("".join(rows)[: 1 << 20])' > "$www/gz/1m.json"
    gzip -6 -k -f -n "$www/gz/1m.json"
  fi
  [ -s "$www/8m" ] && return
  head -c 1024 /dev/urandom > "$www/1k"
  head -c 65536 /dev/urandom > "$www/64k"
  head -c $((8 * 1024 * 1024)) /dev/urandom > "$www/8m"
  printf '<!doctype html>\n<title>actio</title>\n<p>actio test server</p>\n' > "$www/index.html"
}

# N (default 3) distinct free loopback ports. The kernel could hand one out
# again before nginx binds it; start() retries if nginx then fails to listen.
free_ports() {
  python3 -c 'import socket, sys
s = [socket.socket() for _ in range(int(sys.argv[1]))]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))' "${1:-3}"
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
    # gzip for who asks for it: the .gz beside a file as it is, else made
    # on the fly (the compression tests and benchmarks)
    location /gz/ {
      gzip on;
      gzip_static on;
      gzip_types *;
      gzip_min_length 0;
    }
    # Takes a body of up to 1 MiB and drops it (the upload benchmarks).
    location = /upload {
      client_max_body_size 1m;
      return 200 "ok\\n";
    }
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
      local proxies
      if ! proxies=$(start_proxies "$http_port" "$tls_port"); then
        stop
        echo "$0: the proxies did not come up, see $DIR/proxies.log" >&2
        exit 1
      fi
      {
        echo "NGINX_HTTP_URL=http://127.0.0.1:$http_port"
        echo "NGINX_HTTPS_URL=https://127.0.0.1:$tls_port"
        echo "CA_FILE=$DIR/tls/ca.pem"
        echo "NGINX_DOCROOT=$DIR/www"
        echo "NGINX_MTLS_URL=https://127.0.0.1:$mtls_port"
        echo "CLIENT_CERT=$DIR/tls/client.pem"
        echo "CLIENT_KEY=$DIR/tls/client.key"
        echo "$proxies"
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
  stop_proxies
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
