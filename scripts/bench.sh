#!/usr/bin/env bash
# bench.sh: runs every actio-bench workload side by side with the Python peers
# of ../shared/bench (asyncio, aiohttp, asyncpg, aiofiles; plain and on
# uvloop, with Debian's /usr/bin/python3) and the limits (wrk, pgbench plain
# and pipelined, cat, wc -l, a bare libcurl multi loop, a bare two-thread
# hand-off, a mutex queue), in one run, then prints one table of ratios and
# draws it as a chart.
#   scripts/bench.sh [--quick]   measure, then report
#   scripts/bench.sh --report    report again from the last run's JSON lines
# --quick: small sizes, one round (about a minute). The full run: three rounds.
#
# Services: nginx and PostgreSQL from ../shared/bench/services.sh. If they
# already answer on the kit's ports (or BENCH_HTTP_URL and BENCH_PG_DSN are
# set), they are used and left running; otherwise the script starts its own
# under a private folder (on other ports if the kit's are taken) and stops
# them on exit.
#
# Output, next to each other (BENCH_OUT moves all three):
#   bench-results.jsonl  every measurement, one JSON line each (the kit's format)
#   bench-results.md     the table in markdown, for docs/benchmarks.md
#   bench-results.png    the chart (gnuplot, pngcairo)
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=${BENCH_KIT:-$(cd .. && pwd)/shared/bench}
PEERS=${BENCH_PEERS:-$KIT/peers}
OUT=${BENCH_OUT:-bench-results.jsonl}
PY=/usr/bin/python3
quick=0 report_only=0
for arg in "$@"; do
  case $arg in
    --quick) quick=1 ;;
    --report) report_only=1 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done
mode=full; [ $quick = 1 ] && mode=quick

report() { # the table, the markdown and the chart, from $OUT
  $PY scripts/bench-report.py "$OUT" --md "${OUT%.jsonl}.md" --png "${OUT%.jsonl}.png" "$@"
}
if [ $report_only = 1 ]; then
  [ -s "$OUT" ] || { echo "bench.sh: no $OUT to report on; run scripts/bench.sh first" >&2; exit 1; }
  report; exit
fi

bash scripts/setup.sh
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DACTIO_BUILD_TESTS=OFF >/dev/null
cmake --build build-bench -j "$(nproc)" --target actio-bench >/dev/null
BENCH=build-bench/bench/actio-bench

work=$(mktemp -d /tmp/actio-bench-XXXXXX)
svc_dir=
cleanup() {
  local rc=$?
  if [ -n "$svc_dir" ]; then
    echo "== stopping the services this run started ($svc_dir) =="
    bash "$KIT/services.sh" stop || true
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- services -----------------------------------------------------------
port_free() { $PY -c 'import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null; }
free_port() { $PY -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
services_answer() { # $1 http base url, $2 dsn
  curl -sf -o /dev/null --max-time 3 "$1/1k" && curl -sf -o /dev/null --max-time 3 "$1/64k" &&
    psql "$2" -Atqc 'SELECT 1' >/dev/null 2>&1
}
if [ -n "${BENCH_HTTP_URL:-}" ] && [ -n "${BENCH_PG_DSN:-}" ]; then
  echo "== services: using BENCH_HTTP_URL=$BENCH_HTTP_URL BENCH_PG_DSN=$BENCH_PG_DSN (left running) =="
elif eval "$(bash "$KIT/services.sh" env)" && services_answer "$BENCH_HTTP_URL" "$BENCH_PG_DSN"; then
  echo "== services: already running at $BENCH_HTTP_URL and ${BENCH_PG_DSN}; using them, leaving them running =="
else
  svc_dir=$(mktemp -d /tmp/actio-bench-services-XXXXXX)
  chmod 755 "$svc_dir"
  hp=${BENCH_HTTP_PORT:-18080}; port_free "$hp" || hp=$(free_port)
  pp=${BENCH_PG_PORT:-15432};   port_free "$pp" || pp=$(free_port)
  np=${BENCH_NATS_PORT:-14222}; port_free "$np" || np=$(free_port)
  export BENCH_SERVICES_DIR=$svc_dir BENCH_HTTP_PORT=$hp BENCH_PG_PORT=$pp BENCH_NATS_PORT=$np
  echo "== services: starting nginx (:$hp) and PostgreSQL (:$pp) under $svc_dir; stopped on exit =="
  eval "$(bash "$KIT/services.sh" start)"
  services_answer "$BENCH_HTTP_URL" "$BENCH_PG_DSN" || { echo "bench.sh: the services did not come up" >&2; exit 1; }
fi

# --- sizes --------------------------------------------------------------
if [ $quick = 1 ]; then N=200000; FILES=2000; LINES=500000; PYLINES=50000; BIGMB=256; REPS=1; HTTPN=5000
  DBQ=10000; DBPQ=100000; DBROWS=5000; PGT=2; WRKT=2
else N=1000000; FILES=10000; LINES=2000000; PYLINES=200000; BIGMB=1024; REPS=3; HTTPN=20000
  DBQ=50000; DBPQ=500000; DBROWS=15000; PGT=5; WRKT=5; fi
: > "$OUT"

# --- recording ----------------------------------------------------------
# rec: appends JSON lines to $OUT (and shows them), adding the fields of
# $TAG ("key=value ...") to each. run: runs one measurement through rec; a
# failure is reported at the end rather than stopping the run.
TAG=
failed=()
rec() {
  if [ -z "$TAG" ]; then tee -a "$OUT"; return; fi
  $PY -c '
import json, sys
extra = dict(kv.split("=", 1) for kv in sys.argv[1].split())
for line in sys.stdin:
    if line.strip():
        row = json.loads(line); row.update(extra); print(json.dumps(row), flush=True)' "$TAG" | tee -a "$OUT"
}
run() { "$@" | rec || { echo "!! failed (exit ${PIPESTATUS[0]}): $*" >&2; failed+=("$*"); }; }
# A limit measured with the shell's clock: impl workload n ok seconds [bytes]
limit_line() {
  $PY - "$@" <<'PY'
import json, sys
impl, workload, n, ok, secs = sys.argv[1:6]
line = {"impl": impl, "workload": workload, "n": int(n), "concurrency": 1,
        "ok": int(ok), "errors": 0, "seconds": float(secs),
        "per_sec": round(int(ok) / float(secs), 1)}
if len(sys.argv) > 6:
    line["bytes"] = int(sys.argv[6])
print(json.dumps(line))
PY
}
timed() { # prints the wall seconds of a command, its output discarded
  local t0 t1
  t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N)
  $PY -c "print(round($t1 - $t0, 6))"
}
section() { echo; echo "== $* (${SECONDS}s) =="; }

# Each comparison runs REPS times, alternating actio and the other side, so
# both meet the same noise; the table keeps the best run of each.
section "futures and mailboxes"
for _ in $(seq $REPS); do
  run $BENCH gather --n $N --fanout 1000
  run $PY "$PEERS/asyncio_gather.py" --mode gather --n $N --fanout 1000
  run $PY "$PEERS/asyncio_gather.py" --mode gather --n $N --fanout 1000 --uvloop
  run $BENCH pingpong --n $N
  run $BENCH pingpong --n $N --impl threads
  run $PY "$PEERS/asyncio_gather.py" --mode pingpong --n $((N / 5))
  run $PY "$PEERS/asyncio_gather.py" --mode pingpong --n $((N / 5)) --uvloop
  for pc in "2 2" "8 4"; do
    set -- $pc
    run $BENCH mailbox --n $((N * 2)) --producers "$1" --consumers "$2"
    run $BENCH mailbox --n $((N * 2)) --producers "$1" --consumers "$2" --impl mutex
  done
done

section "http (nginx at $BENCH_HTTP_URL)"
# wrk -t1 -c64 for WRKT seconds, the limit: one JSON line
wrk_line() {
  local text
  text=$(wrk -t1 -c64 -d${WRKT}s "$1") || return 1
  $PY -c '
import json, re, sys
text, secs = sys.argv[1], float(sys.argv[2])
rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
e = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
errors = (int(m.group(1)) if m else 0) + (sum(map(int, e.groups())) if e else 0)
print(json.dumps({"impl": "wrk", "workload": "http_get", "n": int(rate * secs), "concurrency": 64,
                  "ok": int(rate * secs), "errors": errors, "seconds": secs, "per_sec": rate}))' "$text" "$WRKT"
}
for path in /1k /64k; do
  u="$BENCH_HTTP_URL$path"
  TAG="path=$path"
  for _ in $(seq $REPS); do
    run $BENCH http_get --url "$u" --requests $HTTPN --concurrency 64
    run $BENCH http_get --url "$u" --requests $HTTPN --concurrency 64 --impl curl
    run $PY "$PEERS/aiohttp_get.py" --url "$u" --requests $HTTPN --concurrency 64
    run $PY "$PEERS/aiohttp_get.py" --url "$u" --requests $HTTPN --concurrency 64 --uvloop
    run wrk_line "$u"
  done
done
TAG=

section "database (PostgreSQL at $BENCH_PG_DSN)"
# pgbench's scripts: the limits. Each pipelined transaction is 50 queries.
PIPE=50
printf '\\set i random(1, 1000000)\nSELECT :i::int;\n' > "$work/point.sql"
{ printf '\\set i random(1, 1000000)\n\\startpipeline\n'
  for _ in $(seq $PIPE); do printf 'SELECT :i::int;\n'; done
  printf '\\endpipeline\n'; } > "$work/point-pipe.sql"
printf '\\set i random(1, 1000000)\nSELECT g, md5(g::text) FROM generate_series(:i, :i + 99) g;\n' > "$work/rows.sql"
# pgbench -c 8 -j 2 -T PGT: impl workload script queries-per-transaction
pgbench_line() {
  local text
  text=$(pgbench -n -M prepared -c 8 -j 2 -T $PGT -f "$3" "$BENCH_PG_DSN" 2>&1) || {
    echo "pgbench failed: $text" >&2; return 1; }
  $PY - "$1" "$2" "$4" $PGT "$text" <<'PY'
import json, re, sys
impl, workload, per_txn, secs, text = sys.argv[1:6]
per_txn, secs = int(per_txn), float(secs)
tps = float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", text).group(1))
done = int(re.search(r"number of transactions actually processed: (\d+)", text).group(1))
failed = re.search(r"number of failed transactions: (\d+)", text)
# Counted in queries, not transactions: a pipelined transaction is per_txn queries.
print(json.dumps({"impl": impl, "workload": workload, "n": done * per_txn, "concurrency": 8,
                  "ok": done * per_txn, "errors": int(failed.group(1)) * per_txn if failed else 0,
                  "seconds": secs, "per_sec": round(tps * per_txn, 1),
                  "pipeline": per_txn > 1, "connections": 8, "queries_per_txn": per_txn}))
PY
}
for _ in $(seq $REPS); do
  run $BENCH db_point --dsn "$BENCH_PG_DSN" --queries $DBQ --concurrency 8
  run $PY "$PEERS/asyncpg_query.py" --dsn "$BENCH_PG_DSN" --queries $DBQ --concurrency 8 --workload point --uvloop
  run $PY "$PEERS/asyncpg_query.py" --dsn "$BENCH_PG_DSN" --queries $DBQ --concurrency 8 --workload point
  run pgbench_line pgbench db_point "$work/point.sql" 1
  run pgbench_line pgbench-pipeline db_point "$work/point-pipe.sql" $PIPE
  # 400 in flight over 8 connections: pgbench's 8 clients x 50 queries.
  run $BENCH db_point --dsn "$BENCH_PG_DSN" --queries $DBPQ --concurrency $((8 * PIPE)) --pipeline --connections 8
  run $BENCH db_point --dsn "$BENCH_PG_DSN" --queries $DBQ --concurrency 8 --pipeline --connections 8
  run $BENCH db_rows --dsn "$BENCH_PG_DSN" --queries $DBROWS --concurrency 8
  run $PY "$PEERS/asyncpg_query.py" --dsn "$BENCH_PG_DSN" --queries $DBROWS --concurrency 8 --workload rows --uvloop
  run $PY "$PEERS/asyncpg_query.py" --dsn "$BENCH_PG_DSN" --queries $DBROWS --concurrency 8 --workload rows
  run pgbench_line pgbench db_rows "$work/rows.sql" 1
done

section "files (under $work)"
for _ in $(seq $REPS); do
  rm -rf "$work/c" "$work/py" "$work/py2"
  run $BENCH file_write_small --dir "$work/c" --files $FILES --size 4096 --concurrency 64
  run $PY "$PEERS/aiofiles_io.py" --mode write-small --dir "$work/py" --files $FILES --size 4096 --concurrency 64
  run $PY "$PEERS/aiofiles_io.py" --mode write-small --dir "$work/py2" --files $FILES --size 4096 --concurrency 64 --uvloop
  run $BENCH file_read_small --dir "$work/c" --files $FILES --concurrency 64
  run $PY "$PEERS/aiofiles_io.py" --mode read-small --dir "$work/py" --files $FILES --concurrency 64
  run $PY "$PEERS/aiofiles_io.py" --mode read-small --dir "$work/py" --files $FILES --concurrency 64 --uvloop
done
rm -rf "$work/c" "$work/py" "$work/py2"

$PY - "$work/lines.txt" $LINES <<'PY'
import random, sys
random.seed(7)
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        n = random.randint(0, 120)
        f.write("".join(random.choice("abcdefghij klmnop") for _ in range(n)) + ("\r\n" if i % 5 == 0 else "\n"))
PY
# aiofiles reads a line at a time through a thread: it gets the first PYLINES
# lines (per_sec is lines per second either way).
head -n $PYLINES "$work/lines.txt" > "$work/lines-small.txt"
cat "$work/lines.txt" "$work/lines-small.txt" > /dev/null # warm the cache for everyone
for _ in $(seq $REPS); do
  run $BENCH file_read_lines --path "$work/lines.txt"
  run limit_line "wc -l" file_read_lines $LINES $LINES "$(timed wc -l "$work/lines.txt")"
  run $PY "$PEERS/aiofiles_io.py" --mode read-lines --path "$work/lines-small.txt"
  run $PY "$PEERS/aiofiles_io.py" --mode read-lines --path "$work/lines-small.txt" --uvloop
done
rm -f "$work/lines.txt" "$work/lines-small.txt"

head -c $((BIGMB << 20)) /dev/urandom > "$work/big.bin"
cat "$work/big.bin" > /dev/null
bytes=$((BIGMB << 20))
for _ in $(seq $REPS); do
  run $BENCH file_read_large --path "$work/big.bin"
  run limit_line "cat" file_read_large "$bytes" "$bytes" "$(timed cat "$work/big.bin")" "$bytes"
done
rm -f "$work/big.bin"

section "report"
report --note "$mode run, best of $REPS round$([ $REPS = 1 ] || echo s)"
if [ ${#failed[@]} -gt 0 ]; then
  echo
  echo "!! ${#failed[@]} measurement(s) failed (their rows show no figure):" >&2
  printf '!!   %s\n' "${failed[@]}" >&2
  exit 1
fi
