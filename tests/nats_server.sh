#!/usr/bin/env bash
# nats_server.sh: throwaway NATS servers on loopback for the tests, all
# state in one folder.
#   tests/nats_server.sh start DIR   make DIR, start the servers below (or
#                                    find them running), print the env lines
#   tests/nats_server.sh kill DIR    kill the plain server (SIGKILL: its
#                                    clients see the connection drop)
#   tests/nats_server.sh restart DIR start it again on the same port, once
#                                    it listens
#   tests/nats_server.sh stop DIR    stop them (the cluster too); DIR is the
#                                    caller's to remove
#   tests/nats_server.sh cluster DIR  start a 3-node JetStream cluster (or
#                                    find it running), wait until it has a
#                                    JetStream leader, print its env lines
#   tests/nats_server.sh kill-node DIR N   kill node N (1-3) with SIGKILL
#   tests/nats_server.sh restart-node DIR N  start it again, same ports
# start prints, and writes to DIR/env, shell-sourceable lines:
#   NATS_URL=nats://127.0.0.1:<p>        no authentication
#   NATS_AUTH_URL=nats://127.0.0.1:<q>   user actio, password s3cret-nats-pw
#   NATS_AUTH_USER=actio
#   NATS_AUTH_PASSWORD=s3cret-nats-pw
#   NATS_TOKEN_URL=nats://127.0.0.1:<r>  token s3cret-nats-token
#   NATS_TOKEN=s3cret-nats-token
#   NATS_TLS_URL=tls://127.0.0.1:<s>     TLS, a certificate for 127.0.0.1
#   NATS_CA_FILE=DIR/tls/ca.pem          signed by this throwaway CA
#   NATS_NKEY_URL=nats://127.0.0.1:<t>   the NKey user below only
#   NATS_NKEY_PUBLIC=U...                its public key
#   NATS_NKEY_SEED_FILE=DIR/nkey.seed    its seed
# cluster prints, and writes to DIR/cluster.env:
#   NATS_JS_URLS=nats://127.0.0.1:<a>,nats://127.0.0.1:<b>,nats://127.0.0.1:<c>
#   NATS_JS_URL1=... NATS_JS_URL2=... NATS_JS_URL3=...  each node alone
# Its nodes js1..js3 keep their JetStream store in DIR/js1..DIR/js3 and
# route to each other on cluster ports picked free on 127.0.0.1.
# Each server listens on 127.0.0.1 only, on a port the kernel picks (the
# server's own "-p -1": never a fixed port), and logs to DIR/<name>.log.
# Needs the Debian nats-server package, openssl (tests/make_certs.sh) and
# python3 with its cryptography module (the NKey).
set -euo pipefail

[ $# -eq 2 ] || [ $# -eq 3 ] || { echo "usage: $0 start|kill|restart|stop|cluster DIR, kill-node|restart-node DIR N" >&2; exit 2; }
CMD=$1
DIR=$2
NATS_SERVER=${NATS_SERVER:-nats-server}
START_TIMEOUT=${NATS_START_TIMEOUT:-30}  # seconds for a server to listen

HERE=$(cd "$(dirname "$0")" && pwd)

case $DIR in
  *[!A-Za-z0-9._/+-]* | "") echo "$0: DIR must match [A-Za-z0-9._/+-]+: $DIR" >&2; exit 2 ;;
esac

# start_one NAME [server args...]: starts it unless its pid file names a
# live server, waits for its ports file, and prints its URL. The port is
# the kernel's pick ("-p -1") unless PORT is set.
start_one() {
  local name=$1
  shift
  local pidf="$DIR/$name.pid" ports="$DIR/$name.ports.d"
  if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null && [ -f "$DIR/$name.url" ]; then
    cat "$DIR/$name.url"
    return
  fi
  rm -rf "$ports"
  mkdir -p "$ports"
  # setsid: the server leaves the caller's process group (a test killed by
  # ctest does not take it along; stop finds it by its pid file).
  setsid "$NATS_SERVER" -a 127.0.0.1 -p "${PORT:--1}" --ports_file_dir "$ports" -P "$pidf" \
    -l "$DIR/$name.log" "$@" </dev/null >/dev/null 2>&1 &
  local i
  for ((i = 0; i < START_TIMEOUT * 10; i++)); do
    local f
    f=$(ls "$ports"/*.ports 2>/dev/null | head -n1 || true)
    if [ -n "$f" ] && [ -s "$f" ]; then
      sed -E 's/.*"nats":\["([^"]+)".*/\1/' "$f" > "$DIR/$name.url"
      cat "$DIR/$name.url"
      return
    fi
    sleep 0.1
  done
  echo "$0: $name did not start; see $DIR/$name.log" >&2
  tail -n 5 "$DIR/$name.log" >&2 2>/dev/null || true
  exit 1
}

stop_one() {
  local pidf="$DIR/$1.pid"
  [ -f "$pidf" ] || return 0
  local pid
  pid=$(cat "$pidf")
  kill "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidf" "$DIR/$1.url"
}

# An NKey user (ed25519): DIR/nkey.seed and DIR/nkey.pub, NATS's base32
# encodings with their CRC-16 (made once).
make_nkey() {
  [ -s "$DIR/nkey.seed" ] && [ -s "$DIR/nkey.pub" ] && return
  python3 - "$DIR" <<'PY'
import base64, os, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization

def crc16(data):  # CRC-16/XMODEM, as nkeys checks it
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc

def enc(raw):
    raw += crc16(raw).to_bytes(2, "little")
    return base64.b32encode(raw).decode().rstrip("=")

seed = os.urandom(32)
pub = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
    serialization.Encoding.Raw, serialization.PublicFormat.Raw)
user, prefix_seed = 20 << 3, 18 << 3
d = sys.argv[1]
with open(os.path.join(d, "nkey.seed"), "w") as f:
    f.write(enc(bytes([prefix_seed | (user >> 5), (user & 31) << 3]) + seed) + "\n")
with open(os.path.join(d, "nkey.pub"), "w") as f:
    f.write(enc(bytes([user]) + pub) + "\n")
PY
  chmod 600 "$DIR/nkey.seed"
}

# kill_one NAME: SIGKILL (its clients see the connection drop), then wait
# until it is gone, or a zombie nobody reaped yet (it holds no port any
# more).
kill_one() {
  local pid
  pid=$(cat "$DIR/$1.pid")
  kill -9 "$pid"
  while kill -0 "$pid" 2>/dev/null && [ "$(ps -o stat= -p "$pid" | cut -c1)" != Z ]; do
    sleep 0.05
  done
  rm -f "$DIR/$1.pid"
}

# A free TCP port on 127.0.0.1 (the kernel's pick, released at once).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_node N: node N of the cluster, its client port kept across restarts.
start_node() {
  local n=$1 routes="" i
  for i in 1 2 3; do
    [ "$i" = "$n" ] || routes="$routes${routes:+,}nats://127.0.0.1:$(cat "$DIR/js$i.cport")"
  done
  local port=-1
  [ -f "$DIR/js$n.url" ] && port=$(sed -E 's/.*:([0-9]+)$/\1/' "$DIR/js$n.url")
  PORT=$port start_one "js$n" -js --sd "$DIR/js$n" --server_name "js$n" \
    --cluster_name actio-js --cluster "nats://127.0.0.1:$(cat "$DIR/js$n.cport")" \
    --routes "$routes" -m -1
}

# Waits until every live node says JetStream is ready (its /healthz).
wait_js() {
  local n i f mon
  for n in 1 2 3; do
    [ -f "$DIR/js$n.pid" ] || continue
    for ((i = 0; i < START_TIMEOUT * 10; i++)); do
      f=$(ls "$DIR/js$n.ports.d"/*.ports 2>/dev/null | head -n1 || true)
      mon=$(sed -nE 's/.*"monitoring":\["([^"]+)".*/\1/p' "$f" 2>/dev/null || true)
      if [ -n "$mon" ] && curl -sf "$mon/healthz" 2>/dev/null | grep -q '"ok"'; then
        break
      fi
      sleep 0.1
    done
    [ "$i" -lt $((START_TIMEOUT * 10)) ] || { echo "$0: js$n has no JetStream; see $DIR/js$n.log" >&2; exit 1; }
  done
}

case $CMD in
  cluster)
    mkdir -p "$DIR"
    # A cluster port picked free may be taken before its node binds it:
    # then all three start again on new ports (three tries).
    for try in 1 2 3; do
      for n in 1 2 3; do [ -s "$DIR/js$n.cport" ] || free_port > "$DIR/js$n.cport"; done
      ok=1
      for n in 1 2 3; do ( start_node $n >/dev/null ) || { ok=0; break; }; done
      [ $ok = 1 ] && break
      for n in 1 2 3; do stop_one js$n; rm -f "$DIR/js$n.cport"; done
      [ "$try" -lt 3 ] || exit 1
    done
    wait_js
    {
      echo "NATS_JS_URLS=$(cat "$DIR/js1.url"),$(cat "$DIR/js2.url"),$(cat "$DIR/js3.url")"
      for n in 1 2 3; do echo "NATS_JS_URL$n=$(cat "$DIR/js$n.url")"; done
    } > "$DIR/cluster.env"
    cat "$DIR/cluster.env"
    ;;
  kill-node)
    kill_one "js$3"
    ;;
  restart-node)
    start_node "$3" >/dev/null
    wait_js
    ;;
  start)
    mkdir -p "$DIR"
    bash "$HERE/make_certs.sh" "$DIR/tls"
    make_nkey
    printf 'authorization { users = [ { nkey: %s } ] }\n' "$(cat "$DIR/nkey.pub")" > "$DIR/nkey.conf"
    url=$(start_one plain)
    auth=$(start_one auth --user actio --pass s3cret-nats-pw)
    token=$(start_one token --auth s3cret-nats-token)
    tls=$(start_one tls --tls --tlscert "$DIR/tls/server.pem" --tlskey "$DIR/tls/server.key")
    nkey=$(start_one nkey -c "$DIR/nkey.conf")
    {
      echo "NATS_URL=$url"
      echo "NATS_AUTH_URL=$auth"
      echo "NATS_AUTH_USER=actio"
      echo "NATS_AUTH_PASSWORD=s3cret-nats-pw"
      echo "NATS_TOKEN_URL=$token"
      echo "NATS_TOKEN=s3cret-nats-token"
      echo "NATS_TLS_URL=${tls/nats:/tls:}"
      echo "NATS_CA_FILE=$DIR/tls/ca.pem"
      echo "NATS_NKEY_URL=$nkey"
      echo "NATS_NKEY_PUBLIC=$(cat "$DIR/nkey.pub")"
      echo "NATS_NKEY_SEED_FILE=$DIR/nkey.seed"
    } > "$DIR/env"
    cat "$DIR/env"
    ;;
  kill)
    kill_one plain
    ;;
  restart)
    url=$(cat "$DIR/plain.url")
    PORT=${url##*:} start_one plain >/dev/null
    ;;
  stop)
    for s in plain auth token tls nkey js1 js2 js3; do stop_one $s; done
    ;;
  *)
    echo "usage: $0 start|kill|restart|stop DIR" >&2
    exit 2
    ;;
esac
