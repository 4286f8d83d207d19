#!/usr/bin/env bash
# bench.sh: actio against its Python peers and the limits, in alternated rounds, then one table of ratios and a chart.
#   scripts/bench.sh [--rounds N]   measure (5 rounds), then report
#   scripts/bench.sh --quick        a smoke run: small sizes, 1 round (about a minute)
#   scripts/bench.sh --report       report again from the last run's JSON lines
#   scripts/bench.sh --only LIST    only these sections (comma-separated: futures,
#                                   http, db, batches, nats, jobs, files,
#                                   pipeline)
# Everything comes from this repository: actio-bench (bench/, public API only)
# and actio-bench-mailbox (tests/perf, the internal mailbox), built in Release
# into build-bench/; the Python peers of bench/peers (asyncio, aiohttp,
# asyncpg, aiofiles; plain and on uvloop, with Debian's /usr/bin/python3); the
# limits (wrk, pgbench plain and pipelined, cat, wc -l, a bare libcurl multi
# loop, a bare two-thread hand-off) and the mutex+condvar queue baseline.
# Each round runs every side of a comparison one after the other, so that
# all meet the same noise; the table gives each side's median over the rounds
# and the spread of the per-round ratios.
#
# Services: if BENCH_HTTP_URL and BENCH_PG_DSN are set (eval "$(bench/services.sh
# start)" sets them), those are used and left running. Otherwise the script
# starts its own with bench/services.sh, under BENCH_SERVICES_DIR or a new
# temporary folder, and stops them on exit.
#
# Output, next to each other (BENCH_OUT moves all three):
#   bench-results.jsonl  every measurement, one JSON line each, with its round
#   bench-results.md     the table in markdown, for docs/benchmarks.md
#   bench-results.png    the chart (gnuplot, pngcairo)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${BENCH_OUT:-bench-results.jsonl}
PEERS=bench/peers
PY=/usr/bin/python3
# The peers import bench/peers/peerlib.py: no __pycache__ left in the tree.
export PYTHONDONTWRITEBYTECODE=1
quick=0 report_only=0 rounds= only=
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1 ;;
    --report) report_only=1 ;;
    --rounds)
      [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: --rounds takes a positive integer" >&2; exit 2; }
      rounds=$2; shift ;;
    --only)
      [[ ${2:-} =~ ^[a-z,]+$ ]] || { echo "bench.sh: --only takes a list of sections" >&2; exit 2; }
      only=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
mode=full; [ $quick = 1 ] && mode=quick
want() { [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]; }
ROUNDS=${rounds:-$([ $quick = 1 ] && echo 1 || echo 5)}

report() { # the table, the markdown and the chart, from $OUT
  $PY scripts/bench-report.py "$OUT" --md "${OUT%.jsonl}.md" --png "${OUT%.jsonl}.png" "$@"
}
if [ $report_only = 1 ]; then
  [ -s "$OUT" ] || { echo "bench.sh: no $OUT to report on; run scripts/bench.sh first" >&2; exit 1; }
  report; exit
fi

bash scripts/setup.sh
echo "== building actio-bench and actio-bench-mailbox (Release, build-bench/) =="
# No tests or demos: nothing here needs them, and the build stays short.
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DACTIO_BUILD_TESTS=OFF -DACTIO_BUILD_DEMOS=ON >/dev/null
cmake --build build-bench -j "$(nproc)" --target actio-bench actio-bench-mailbox actio-pipeline >/dev/null
BENCH=build-bench/bench/actio-bench
PIPELINE=build-bench/demos/actio-pipeline
MBOX=build-bench/tests/perf/actio-bench-mailbox

work='' svc_dir='' # set once made: the scratch folder, the services this run started
late_rm=() # what the sections made and left, deleted only on exit (see settle_inodes)
# Where a run notes when it last deleted many files: the next run reads it.
FREED_MARK=${TMPDIR:-/tmp}/actio-bench-freed-at
cleanup() {
  local rc=$?
  if [ -n "$svc_dir" ]; then
    echo "== stopping the services this run started ($svc_dir) =="
    bash bench/services.sh stop "$svc_dir" || true
  fi
  if [ -n "$work" ]; then
    rm -rf "$work" ${late_rm[@]+"${late_rm[@]}"}
    if [ $quick = 0 ] && { want files || want pipeline; }; then
      # Written back, then stamped: the freed inodes are recent for
      # RECENT_FREE seconds from now (see settle_inodes).
      sync
      date +%s > "$FREED_MARK" || true
    fi
  fi
  exit $rc
}
# Before anything is made, so that a signal at any point leaves nothing behind.
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
work=$(mktemp -d /tmp/actio-bench-XXXXXX)

# --- services -----------------------------------------------------------
if [ -n "${BENCH_HTTP_URL:-}" ] && [ -n "${BENCH_PG_DSN:-}" ] && [ -n "${BENCH_NATS_URL:-}" ]; then
  echo "== services: BENCH_HTTP_URL=$BENCH_HTTP_URL BENCH_PG_DSN=$BENCH_PG_DSN BENCH_NATS_URL=$BENCH_NATS_URL (given; left running) =="
elif [ -n "${BENCH_SERVICES_DIR:-}" ] && env_lines=$(bash bench/services.sh env "$BENCH_SERVICES_DIR" 2>/dev/null); then
  eval "$env_lines"
  echo "== services: already running under $BENCH_SERVICES_DIR; used and left running =="
else
  dir=${BENCH_SERVICES_DIR:-$work-services}
  echo "== services: starting nginx, PostgreSQL and nats-server under $dir; stopped on exit =="
  svc_dir=$dir # before start: a start that fails half-way is stopped too
  eval "$(bash bench/services.sh start "$dir")"
fi
# Fail here, not in the middle of the run, if they do not answer.
curl -sf -o /dev/null --max-time 5 "$BENCH_HTTP_URL/1k" ||
  { echo "bench.sh: nothing serves $BENCH_HTTP_URL/1k" >&2; exit 1; }
psql "$BENCH_PG_DSN" -XAtqc 'SELECT 1' >/dev/null ||
  { echo "bench.sh: PostgreSQL does not answer at $BENCH_PG_DSN" >&2; exit 1; }

# --- sizes --------------------------------------------------------------
# N: gather futures, pingpong round trips, cq completions and timers (the
# mailbox moves 2N messages, the Python pingpong and cq N/5); FILES x 4 KiB; LINES in the file actio reads and
# PYLINES in the one aiofiles reads; BIGMB for the large file; HTTPN
# requests (PXN through the proxy, GZN of 1 MiB gzipped bodies); DBQ,
# DBPQ (pipelined, C=400) and DBROWS queries; PGT and WRKT
# seconds of pgbench and wrk; REMN remote asks over NATS; JOBN jobs
# through JetStream; MANYN rows inserted by executemany and STREAMN rows
# streamed; PIPEN: the pipeline's lists of the demo's pages, each run by
# both sides at each C of PIPECMP; PIPEC: the concurrency sweep's Cs (over
# the first list, actio alone).
if [ $quick = 1 ]; then
  N=100000 FILES=1000 LINES=200000 PYLINES=20000 BIGMB=64 HTTPN=2000 PXN=500 GZN=50
  DBQ=4000 DBPQ=20000 DBROWS=1000 PGT=1 WRKT=1 REMN=10000 JOBN=5000 MANYN=20000 STREAMN=200000
  PIPEN=300 PIPECMP=32 PIPEC="8 64 512"
else
  N=1000000 FILES=10000 LINES=2000000 PYLINES=200000 BIGMB=1024 HTTPN=20000 PXN=20000 GZN=2000
  DBQ=100000 DBPQ=500000 DBROWS=20000 PGT=5 WRKT=5 REMN=100000 JOBN=50000 MANYN=400000 STREAMN=2000000
  PIPEN="3000 30000" PIPECMP="32 128" PIPEC="8 16 32 64 128 256 512"
fi
: > "$OUT"

# --- recording ----------------------------------------------------------
# rec: appends the JSON lines of its input to $OUT (and shows them), each with
# the fields of $TAG ("key=value ..."; digits become numbers) added.
# run: one measurement through rec; a failure is counted and reported at the
# end, and the run goes on, so one broken side does not cost the others.
TAG=
failed=()
rec() {
  $PY -c '
import json, sys
extra = {k: int(v) if v.isdigit() else v for k, v in (kv.split("=", 1) for kv in sys.argv[1].split())}
for line in sys.stdin:
    if line.strip():
        row = json.loads(line)
        row.update(extra)
        print(json.dumps(row), flush=True)' "$TAG" | tee -a "$OUT"
}
run() { "$@" | rec || { echo "!! failed (exit ${PIPESTATUS[0]}): $*" >&2; failed+=("$*"); }; }
# A limit timed by the shell: impl workload n ok seconds [bytes]
limit_line() {
  $PY - "$@" <<'PY'
import json, sys
impl, workload, n, ok, secs = sys.argv[1:6]
row = {"impl": impl, "workload": workload, "n": int(n), "concurrency": 1, "ok": int(ok),
       "errors": 0, "seconds": float(secs), "per_sec": round(int(ok) / float(secs), 1)}
if len(sys.argv) > 6:
    row["bytes"] = int(sys.argv[6])
print(json.dumps(row))
PY
}
timed() { # the wall seconds of a command, its output discarded
  local t0 t1
  t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N)
  $PY -c "print(round($t1 - $t0, 6))"
}
section() { echo; echo "== $* (${SECONDS}s) =="; }
# On an ext4 without a journal (this machine's root) a new inode passes
# over, one by one, each free inode of its group freed in the last 60 s, or
# 360 s while that part of the inode table is not written back
# (fs/ext4/ialloc.c, recently_deleted), and a file goes to its folder's
# group: right after 150,000 files were deleted beside the pipeline's
# folder, its runs spent 2 to 4 times the CPU a URL, on both sides, up to
# 60% of actio's in that scan, and more than 100 s later still more than
# before (docs/benchmarks.md, session 11). So no section deletes what it
# made: it is moved aside and deleted on exit, written back (sync) and the
# time noted in FREED_MARK; a section that makes files first waits until
# the last run's deletion is RECENT_FREE seconds old, the kernel's longest
# window. Other processes' deletions are not seen. A quick run (a smoke
# test) neither notes nor waits.
RECENT_FREE=361
settle_inodes() {
  local at
  [ $quick = 0 ] || return 0
  at=$(cat "$FREED_MARK" 2>/dev/null) || return 0
  [[ $at =~ ^[0-9]+$ ]] || return 0
  if (($(date +%s) < at + RECENT_FREE)); then
    echo "(waiting until the last run's deleted files are $RECENT_FREE s old)"
    while (($(date +%s) < at + RECENT_FREE)); do sleep 1; done
  fi
}

if want futures; then
section "futures and mailboxes, $ROUNDS round(s)"
for r in $(seq "$ROUNDS"); do
  TAG="round=$r"
  run $BENCH gather --n $N --fanout 1000
  run $PY $PEERS/asyncio_gather.py --mode gather --n $N --fanout 1000
  run $PY $PEERS/asyncio_gather.py --mode gather --n $N --fanout 1000 --uvloop
  run $BENCH pingpong --n $N
  run $BENCH pingpong --n $N --impl threads
  run $PY $PEERS/asyncio_gather.py --mode pingpong --n $((N / 5))
  run $PY $PEERS/asyncio_gather.py --mode pingpong --n $((N / 5)) --uvloop
  # Completions from two threads into a loop: actio's through the completion
  # queue's descriptor to epoll, asyncio's through call_soon_threadsafe.
  run $BENCH cq --n $N --producers 2
  run $PY $PEERS/asyncio_cq.py --n $((N / 5)) --producers 2
  run $PY $PEERS/asyncio_cq.py --n $((N / 5)) --producers 2 --uvloop
  run $BENCH pending --n $((N / 10))
  run $BENCH pending --n $((N / 10)) --http
  run $PY $PEERS/asyncio_gather.py --mode pending --n $((N / 10))
  # 1M timers armed and fired, and the bytes of a pending one (N of them).
  run $BENCH timers --n $N
  run $PY $PEERS/asyncio_timers.py --n $N
  run $PY $PEERS/asyncio_timers.py --n $N --uvloop
  for pc in "1 1" "2 2" "8 4" "16 2"; do
    read -r p c <<<"$pc"
    run $MBOX --n $((N * 2)) --producers "$p" --consumers "$c"
    run $MBOX --n $((N * 2)) --producers "$p" --consumers "$c" --impl mutex
  done
done
fi

if want http; then
section "http (nginx at $BENCH_HTTP_URL)"
# The limit: wrk -t1 -c64 for WRKT seconds, as one JSON line.
wrk_line() {
  local text
  text=$(wrk -t1 -c64 -d"${WRKT}s" "$1") || return 1
  $PY -c '
import json, re, sys
text, secs = sys.stdin.read(), float(sys.argv[1])
rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
done = int(rate * secs)
print(json.dumps({"impl": "wrk", "workload": "http_get", "n": done, "concurrency": 64, "ok": done,
                  "errors": errors, "seconds": secs, "per_sec": rate}))' "$WRKT" <<<"$text"
}
for r in $(seq "$ROUNDS"); do
  for path in /1k /64k; do
    u=$BENCH_HTTP_URL$path
    TAG="round=$r path=$path"
    run $BENCH http_get --url "$u" --requests $HTTPN --concurrency 64
    run $BENCH http_get --url "$u" --requests $HTTPN --concurrency 64 --impl curl
    run $PY $PEERS/aiohttp_get.py --url "$u" --requests $HTTPN --concurrency 64
    run $PY $PEERS/aiohttp_get.py --url "$u" --requests $HTTPN --concurrency 64 --uvloop
    run wrk_line "$u"
    # 128 in flight: the actor against its floor only (the issue's second
    # concurrency).
    run $BENCH http_get --url "$u" --requests $HTTPN --concurrency 128
    run $BENCH http_get --url "$u" --requests $HTTPN --concurrency 128 --impl curl
  done
  # 64 KiB uploads, to a location that drops them (tests/http_servers.sh).
  u=$BENCH_HTTP_URL/upload
  TAG="round=$r path=/upload size=65536"
  run $BENCH http_post --url "$u" --requests $HTTPN --concurrency 64 --size 65536
  run $PY $PEERS/aiohttp_post.py --url "$u" --requests $HTTPN --concurrency 64 --size 65536 --uvloop
  # GETs through the local proxy (an nginx forward proxy before nginx;
  # bench/services.sh), which keeps the connections on both sides alive, so
  # that what the bare loop meets is the proxy's own cost. Debian's aiohttp
  # (3.8) closes its connection to any http proxy after each response; 3.11
  # and later keep it, which the peer's --proxy-keepalive does on 3.8: both
  # are measured. Through squid too, whose one process (about 80 us of CPU
  # a request) is the wall for every client that keeps its connections
  # (not in a quick run: the rows are the same code's).
  for via in proxy squid; do
    [ $via = proxy ] && px=${BENCH_PROXY_URL:-} || px=${BENCH_SQUID_URL:-}
    [ $via = squid ] && [ $quick = 1 ] && continue
    [ -n "$px" ] || continue
    u=$BENCH_HTTP_URL/1k
    TAG="round=$r path=/1k via=$via"
    run $BENCH http_get --url "$u" --requests $PXN --concurrency 64 --proxy "$px"
    run $BENCH http_get --url "$u" --requests $PXN --concurrency 64 --proxy "$px" --impl curl
    run $PY $PEERS/aiohttp_get.py --url "$u" --requests $PXN --concurrency 64 \
      --proxy "$px" --uvloop
    run $PY $PEERS/aiohttp_get.py --url "$u" --requests $PXN --concurrency 64 \
      --proxy "$px" --uvloop --proxy-keepalive
  done
  # gzip responses (1 MiB of JSON, nginx's gzip_static): decoded bytes/s.
  u=$BENCH_HTTP_URL/gz/1m.json
  if curl -sf -o /dev/null --compressed --max-time 5 "$u"; then
    TAG="round=$r path=/gz/1m.json"
    run $BENCH http_get --url "$u" --requests $GZN --concurrency 16
    run $PY $PEERS/aiohttp_get.py --url "$u" --requests $GZN --concurrency 16 --uvloop
  fi
done
fi

if want db; then
section "database (PostgreSQL at $BENCH_PG_DSN)"
# pgbench's scripts, the limits: one query per transaction, or PIPE of them
# in one pipeline (counted as PIPE queries).
PIPE=50
printf '\\set i random(1, 1000000)\nSELECT :i::int;\n' > "$work/point.sql"
{ printf '\\set i random(1, 1000000)\n\\startpipeline\n'
  for _ in $(seq $PIPE); do printf 'SELECT :i::int;\n'; done
  printf '\\endpipeline\n'; } > "$work/point-pipe.sql"
printf '\\set i random(1, 1000000)\nSELECT g, md5(g::text) FROM generate_series(:i, :i + 99) g;\n' > "$work/rows.sql"
# pgbench -c C -j 2: impl workload script queries-per-transaction [C [N]].
# With N, the same N queries as actio's side of the comparison (N/C
# transactions per client), so that both do the same work over the same
# stretch of time; without, PGT seconds (the pipelined limit).
pgbench_line() {
  local text clients=${5:-8} length=(-T "$PGT")
  [ -n "${6:-}" ] && length=(-t $(($6 / clients)))
  text=$(pgbench -n -M prepared -c "$clients" -j 2 "${length[@]}" -f "$3" "$BENCH_PG_DSN" 2>&1) ||
    { echo "pgbench failed: $text" >&2; return 1; }
  $PY -c '
import json, re, sys
impl, workload, per_txn = sys.argv[1], sys.argv[2], int(sys.argv[3])
clients = int(sys.argv[5])
text = sys.stdin.read()
tps = float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", text).group(1))
done = int(re.search(r"number of transactions actually processed: (\d+)", text).group(1))
secs = round(done / tps, 6) if tps > 0 else float(sys.argv[4])
failed = re.search(r"number of failed transactions: (\d+)", text)
print(json.dumps({"impl": impl, "workload": workload, "n": done * per_txn, "concurrency": clients,
                  "ok": done * per_txn, "errors": int(failed.group(1)) * per_txn if failed else 0,
                  "seconds": secs, "per_sec": round(tps * per_txn, 1), "pipeline": per_txn > 1,
                  "connections": clients, "queries_per_txn": per_txn}))' "$1" "$2" "$4" "$PGT" "$clients" <<<"$text"
}
for r in $(seq "$ROUNDS"); do
  TAG="round=$r"
  run $BENCH db_point --dsn "$BENCH_PG_DSN" --queries $DBQ --concurrency 8
  run $PY $PEERS/asyncpg_query.py --dsn "$BENCH_PG_DSN" --queries $DBQ --concurrency 8 --workload point --uvloop
  run $PY $PEERS/asyncpg_query.py --dsn "$BENCH_PG_DSN" --queries $DBQ --concurrency 8 --workload point
  run pgbench_line pgbench db_point "$work/point.sql" 1 8 $DBQ
  run pgbench_line pgbench-pipeline db_point "$work/point-pipe.sql" $PIPE
  # 400 in flight over 8 connections: pgbench's 8 clients x 50 queries.
  run $BENCH db_point --dsn "$BENCH_PG_DSN" --queries $DBPQ --concurrency $((8 * PIPE)) --pipeline --connections 8
  run $BENCH db_point --dsn "$BENCH_PG_DSN" --queries $DBQ --concurrency 8 --pipeline --connections 8
  run $BENCH pending --n $DBQ --dsn "$BENCH_PG_DSN"
  run $BENCH db_rows --dsn "$BENCH_PG_DSN" --queries $DBROWS --concurrency 8
  run $PY $PEERS/asyncpg_query.py --dsn "$BENCH_PG_DSN" --queries $DBROWS --concurrency 8 --workload rows --uvloop
  run $PY $PEERS/asyncpg_query.py --dsn "$BENCH_PG_DSN" --queries $DBROWS --concurrency 8 --workload rows
  run pgbench_line pgbench db_rows "$work/rows.sql" 1 8 $DBROWS
  # 16 in flight, against pgbench -c 16 (the issue's second concurrency).
  run $BENCH db_point --dsn "$BENCH_PG_DSN" --queries $DBQ --concurrency 16
  run pgbench_line pgbench db_point "$work/point.sql" 1 16 $DBQ
  run $BENCH db_rows --dsn "$BENCH_PG_DSN" --queries $DBROWS --concurrency 16
  run pgbench_line pgbench db_rows "$work/rows.sql" 1 16 $DBROWS
done
fi

if want batches; then
section "database batches and streams, $ROUNDS round(s)"
# executemany in batches of PIPE rows against pgbench's PIPE INSERTs in one
# pipeline with one sync (counted as PIPE rows), the same rows per client.
{ printf '\\set id random(1, 1000000000)\n\\startpipeline\n'
  for _ in $(seq $PIPE); do printf "INSERT INTO actio_bench_many VALUES (:id, 'v');\n"; done
  printf '\\endpipeline\n'; } > "$work/many-pipe.sql"
many_table() {
  psql "$BENCH_PG_DSN" -XAtqc 'DROP TABLE IF EXISTS actio_bench_many; CREATE TABLE actio_bench_many (id int, v text)'
}
STREAM_SQL="SELECT g, md5(g::text) FROM generate_series(1, $STREAMN) g"
# psql's COPY of the stream's query to /dev/null: the limit of any client.
copy_line() {
  local t0 t1
  t0=$(date +%s.%N)
  psql "$BENCH_PG_DSN" -XAtqc "COPY ($STREAM_SQL) TO STDOUT" > /dev/null || return 1
  t1=$(date +%s.%N)
  $PY -c '
import json, sys
n, secs = int(sys.argv[1]), float(sys.argv[3]) - float(sys.argv[2])
print(json.dumps({"impl": "psql-copy", "workload": "db_stream", "n": n, "concurrency": 1, "ok": n,
                  "errors": 0, "seconds": round(secs, 6), "per_sec": round(n / secs, 1)}))' "$STREAMN" "$t0" "$t1"
}
for r in $(seq "$ROUNDS"); do
  TAG="round=$r"
  run $BENCH db_executemany --dsn "$BENCH_PG_DSN" --rows $MANYN --batch $PIPE --concurrency 8
  run $PY $PEERS/asyncpg_batch.py --dsn "$BENCH_PG_DSN" --rows $MANYN --batch $PIPE --concurrency 8 --uvloop
  run $PY $PEERS/asyncpg_batch.py --dsn "$BENCH_PG_DSN" --rows $MANYN --batch $PIPE --concurrency 8
  many_table
  run pgbench_line pgbench-pipeline db_executemany "$work/many-pipe.sql" $PIPE 8 $((MANYN / PIPE))
  run $BENCH db_stream --dsn "$BENCH_PG_DSN" --rows $STREAMN
  run $PY $PEERS/asyncpg_batch.py --dsn "$BENCH_PG_DSN" --rows $STREAMN --batch 1000 --workload stream --uvloop
  run $PY $PEERS/asyncpg_batch.py --dsn "$BENCH_PG_DSN" --rows $STREAMN --batch 1000 --workload stream
  run copy_line
done
psql "$BENCH_PG_DSN" -XAtqc 'DROP TABLE IF EXISTS actio_bench_many' || true
fi

if want nats; then
section "remote actors over NATS ($BENCH_NATS_URL), $ROUNDS round(s)"
# nats.js, the NATS client of Node, from the npm registry once per run, when
# node and npm are here; else that peer is left out (its row shows none).
natsjs=
if command -v node >/dev/null && command -v npm >/dev/null &&
  npm install --prefix "$work/js" --no-audit --no-fund --silent nats@2.29.3 >/dev/null 2>&1; then
  cp bench/peers/natsjs_ask.mjs "$work/js/" # beside its node_modules
  natsjs=$work/js/natsjs_ask.mjs
else
  echo "== nats.js: no node and npm, or no npm registry: that peer is left out =="
fi
# The peer asks the same 2 echo responders, run by actio-bench nats_echo
# until its stdin (a fifo this shell holds open) ends.
natsjs_round() {
  local fifo=$work/echo.in out=$work/echo.out
  rm -f "$fifo"
  mkfifo "$fifo"
  $BENCH nats_echo --nats "$BENCH_NATS_URL" < "$fifo" > "$out" 2>&1 &
  local pid=$!
  exec 7> "$fifo"
  until grep -q '^ready' "$out"; do
    kill -0 $pid 2>/dev/null || { cat "$out" >&2; break; }
    sleep 0.1
  done
  run node "$natsjs" --nats "$BENCH_NATS_URL" --requests $REMN --concurrency 64
  exec 7>&- # end of its stdin: the responders stop
  wait $pid || true
  rm -f "$fifo" "$out"
}
for r in $(seq "$ROUNDS"); do
  TAG="round=$r"
  # 64 in flight over a shared inbox, to 2 queue-group responders; against
  # the bare cnats loop asking the same responders.
  run $BENCH remote_ask --nats "$BENCH_NATS_URL" --requests $REMN --concurrency 64
  run $BENCH remote_ask --nats "$BENCH_NATS_URL" --requests $REMN --concurrency 64 --impl cnats
  [ -z "$natsjs" ] || natsjs_round
done
fi

if want jobs && [ -n "${BENCH_NATS_JS_URL:-}" ]; then
  section "work queues over JetStream ($BENCH_NATS_JS_URL), replicas 3, $ROUNDS round(s)"
  for r in $(seq "$ROUNDS"); do
    TAG="round=$r"
    # JOBN jobs published (4096 acks awaited at most), then one worker
    # pulling 32 at a time; against the bare cnats publish and pull
    # consumer with the same stream and batch.
    run $BENCH jobs --nats "$BENCH_NATS_JS_URL" --jobs $JOBN --replicas 3 --batch 32
    run $BENCH jobs --nats "$BENCH_NATS_JS_URL" --jobs $JOBN --replicas 3 --batch 32 --impl cnats
  done
elif want jobs; then
  echo "== work queues: no BENCH_NATS_JS_URL (a JetStream cluster): left out =="
fi

if want files; then
section "files (under $work)"
settle_inodes
for r in $(seq "$ROUNDS"); do
  TAG="round=$r"
  # Fresh folders each round. The last round's are moved aside, not
  # deleted (settle_inodes): deleted, they taxed whichever side ran first
  # after the delete: actio, 4.4k to 64.5k files/s from round to round in
  # session 8's full run. They go with $work on exit.
  mkdir -p "$work/old/$r"
  for d in c py py2; do [ ! -d "$work/$d" ] || mv "$work/$d" "$work/old/$r/"; done
  run $BENCH file_write_small --dir "$work/c" --files $FILES --size 4096 --concurrency 64
  run $PY $PEERS/aiofiles_io.py --mode write-small --dir "$work/py" --files $FILES --size 4096 --concurrency 64
  run $PY $PEERS/aiofiles_io.py --mode write-small --dir "$work/py2" --files $FILES --size 4096 --concurrency 64 --uvloop
  run $BENCH file_read_small --dir "$work/c" --files $FILES --concurrency 64
  run $PY $PEERS/aiofiles_io.py --mode read-small --dir "$work/py" --files $FILES --concurrency 64
  run $PY $PEERS/aiofiles_io.py --mode read-small --dir "$work/py" --files $FILES --concurrency 64 --uvloop
done

# Lines of 0-120 characters, every fifth ending in \r\n; the same seed each run.
$PY - "$work/lines.txt" $LINES <<'PY'
import random, sys
rnd = random.Random(7)
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write("".join(rnd.choice("abcdefghij klmnop") for _ in range(rnd.randint(0, 120))))
        f.write("\r\n" if i % 5 == 0 else "\n")
PY
# aiofiles hands over one line per thread hop: it gets the first PYLINES
# lines only (per_sec is lines per second for everyone).
head -n $PYLINES "$work/lines.txt" > "$work/lines-small.txt"
cat "$work/lines.txt" "$work/lines-small.txt" > /dev/null # warm the cache for everyone
for r in $(seq "$ROUNDS"); do
  TAG="round=$r"
  run $BENCH file_read_lines --path "$work/lines.txt"
  run limit_line "wc -l" file_read_lines $LINES $LINES "$(timed wc -l "$work/lines.txt")"
  run $PY $PEERS/aiofiles_io.py --mode read-lines --path "$work/lines-small.txt"
  run $PY $PEERS/aiofiles_io.py --mode read-lines --path "$work/lines-small.txt" --uvloop
done
rm -f "$work/lines.txt" "$work/lines-small.txt"

head -c $((BIGMB << 20)) /dev/urandom > "$work/big.bin"
cat "$work/big.bin" > /dev/null
bytes=$((BIGMB << 20))
for r in $(seq "$ROUNDS"); do
  TAG="round=$r"
  run $BENCH file_read_large --path "$work/big.bin"
  run limit_line "cat" file_read_large "$bytes" "$bytes" "$(timed cat "$work/big.bin")" "$bytes"
done
rm -f "$work/big.bin"
TAG=
fi

if want pipeline; then
section "pipeline: the demo's pages fetched, hashed, saved durably, recorded; $ROUNDS round(s)"
# The bodies go to BENCH_PIPELINE_DIR (default: beside the scratch folder);
# its file system is in every row (fs=), and the issue's figures want ext4.
pipe_dir=${BENCH_PIPELINE_DIR:-$work/pipeline}
mkdir -p "$pipe_dir"
# Made here, deleted on exit (settle_inodes); $work's go with it.
late_rm+=("$BENCH_DOCROOT/pages")
[ "$pipe_dir" = "$work/pipeline" ] || late_rm+=("$pipe_dir/old" "$pipe_dir/out")
settle_inodes
fstype=$(findmnt -no FSTYPE -T "$pipe_dir")
echo "bodies under $pipe_dir ($fstype); every one fsynced, renamed, its folder fsynced"
pipe_max=0
for n in $PIPEN; do ((n > pipe_max)) && pipe_max=$n; done
$PY scripts/demo-pages.py "$BENCH_DOCROOT/pages" "$pipe_max"
for n in $PIPEN; do
  for ((i = 0; i < n; i++)); do printf '%s/pages/%05d.html\n' "$BENCH_HTTP_URL" "$i"; done > "$work/urls-$n.txt"
done
# Each run starts from an empty folder and no table, so that none meets the
# last one's rows or files. The last run's folder is moved aside, not
# deleted (settle_inodes: deleted, 3000 bodies made the next run half as
# fast or worse, both sides; docs/benchmarks.md, session 8). And nothing
# left to write back: the pages just written, the last run's table (this
# PostgreSQL runs without fsync) and its folder's move.
pipe_fresh() { # (runs in run's subshell: a counter would not last)
  if [ -d "$pipe_dir/out" ]; then
    mkdir -p "$pipe_dir/old"
    mv "$pipe_dir/out" "$(mktemp -d "$pipe_dir/old/run-XXXXXX")/"
  fi
  PGOPTIONS='-c client_min_messages=warning' psql "$BENCH_PG_DSN" -XAtqc 'DROP TABLE IF EXISTS actio_pipeline'
  sync
}
# cpu_of FILE CMD...: runs CMD, and writes to FILE the user and system CPU
# seconds that it (and what it waited for) used.
cpu_of() {
  $PY -c '
import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write("%.3f %.3f\n" % (ru.ru_utime, ru.ru_stime))
sys.exit(rc)' "$@"
}
# A run's JSON line (FILE, or the summary of actio-pipeline in it) with its
# CPU (CPUFILE from cpu_of): cpu_s, sys_s, and cpu_us_per_url, the CPU a
# URL of that process, steadier than the rate on a shared machine.
pipeline_json() { # FILE CPUFILE concurrency
  $PY -c '
import json, re, sys
text = open(sys.argv[1]).read()
s = re.search(r"^summary: (\d+) URLs, (\d+) ok, (\d+) failed .*?, ([\d.]+) s,", text, re.M)
if s:
    n, ok, failed, secs = int(s[1]), int(s[2]), int(s[3]), float(s[4])
    row = {"impl": "actio", "workload": "pipeline", "n": n, "concurrency": int(sys.argv[3]),
           "ok": ok, "errors": failed, "seconds": secs, "per_sec": round(ok / secs, 1)}
else:
    row = json.loads(text)
user, system = map(float, open(sys.argv[2]).read().split())
row.update(cpu_s=round(user + system, 3), sys_s=system,
           cpu_us_per_url=round((user + system) * 1e6 / row["n"], 1))
print(json.dumps(row))' "$1" "$2" "$3"
}
pipeline_run() { # actio|py urls concurrency
  local cmd=("$PIPELINE" --dsn "$BENCH_PG_DSN" --out "$pipe_dir/out" --concurrency "$3"
    --timeout 30000 --run-id bench "$2")
  [ "$1" = actio ] || cmd=($PY $PEERS/pipeline.py --dsn "$BENCH_PG_DSN" --out "$pipe_dir/out"
    --concurrency "$3" --run-id bench --uvloop "$2")
  pipe_fresh
  cpu_of "$work/pipeline.cpu" "${cmd[@]}" > "$work/pipeline.out" ||
    { tail -n 5 "$work/pipeline.out" >&2; return 1; }
  pipeline_json "$work/pipeline.out" "$work/pipeline.cpu" "$3"
}
for r in $(seq "$ROUNDS"); do
  for n in $PIPEN; do
    TAG="round=$r urls=$n fs=$fstype"
    # Who goes first alternates from round to round, so that neither side
    # always meets what the other leaves (its writeback, a warmer cache).
    sides="actio py"; ((r % 2)) || sides="py actio"
    for c in $PIPECMP; do
      for side in $sides; do run pipeline_run $side "$work/urls-$n.txt" "$c"; done
    done
  done
  # The curve: the first list at each C of PIPEC.
  n=${PIPEN%% *}
  for c in $PIPEC; do
    TAG="round=$r urls=$n fs=$fstype sweep=1"
    run pipeline_run actio "$work/urls-$n.txt" "$c"
  done
done
pipe_fresh
TAG=
fi

section "report"
report --note "$mode run"
if [ ${#failed[@]} -gt 0 ]; then
  echo
  echo "!! ${#failed[@]} measurement(s) failed (their rows show no figure):" >&2
  printf '!!   %s\n' "${failed[@]}" >&2
  exit 1
fi
