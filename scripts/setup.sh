#!/usr/bin/env bash
# Installs every Debian package that actio's build, tests, demos and benchmarks need.
# Idempotent; run as root (or with sudo available) on a fresh Debian 12 machine.
set -euo pipefail

PKGS=(
  # build
  build-essential cmake pkg-config
  libck-dev libcurl4-openssl-dev libpq-dev
  libssl-dev  # the pipeline demo hashes with libcrypto
  libuv1-dev libglib2.0-dev  # the completion-queue demos' loops (demos/cq_*.c)
  # tests
  check libmicrohttpd-dev libclang-rt-dev clang valgrind
  zlib1g-dev  # the fixture gzips bodies as it sends them (/gzip, a decompression bomb)
  gcovr  # the coverage report (scripts/coverage.sh)
  openssl ca-certificates curl
  # the API reference (docs/Doxyfile.in; target actio_docs, test api_reference)
  doxygen
  # servers the tests, demos and benchmarks start on loopback (procps: the
  # scripts that stop them find nginx's workers with pgrep; nginx is also
  # the benchmarks' forward proxy, tests/http_servers.sh)
  postgresql postgresql-contrib nginx procps
  nats-server libnats-dev  # remote actors (actio/nats.h): the server, cnats
  tinyproxy microsocks  # the HTTP tests' proxies: http (CONNECT too), socks5
  squid  # a keep-alive http proxy: the tests' and the benchmark's second proxy
  # benchmarks: the Python peers (bench/peers), the limits (wrk; pgbench comes
  # with postgresql), the chart; git for the test that clones the repository
  # and runs scripts/bench.sh there (tests/perf/bench_from_clone.sh)
  python3 python3-aiohttp python3-asyncpg python3-aiofiles python3-uvloop
  wrk gnuplot-nox git
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
