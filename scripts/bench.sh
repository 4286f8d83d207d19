#!/usr/bin/env bash
# bench.sh: runs actio-bench side by side with the Python peers of
# ../shared/bench (asyncio, aiofiles; plain and on uvloop) and the limits
# (a mutex queue, a bare two-thread hand-off, a bare libcurl multi loop, wrk,
# pgbench plain and pipelined, wc -l, cat), in one run, then prints one table
# of ratios.
# Every measurement is also kept as a JSON line in $BENCH_OUT (default
# bench-results.jsonl). Quick mode (--quick) uses smaller sizes, one round.
#   scripts/bench.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${BENCH_PEERS:-$(cd .. && pwd)/shared/bench/peers}
OUT=${BENCH_OUT:-bench-results.jsonl}
PY=/usr/bin/python3
quick=0
[ "${1:-}" = "--quick" ] && quick=1

bash scripts/setup.sh
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DACTIO_BUILD_TESTS=OFF >/dev/null
cmake --build build-bench -j "$(nproc)" --target actio-bench >/dev/null
BENCH=build-bench/bench/actio-bench
work=$(mktemp -d /tmp/actio-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
: > "$OUT"

if [ $quick = 1 ]; then N=200000; FILES=2000; LINES=500000; PYLINES=50000; BIGMB=256; REPS=1; HTTPN=5000
  DBQ=10000; DBPQ=100000; DBROWS=5000; PGT=2
else N=1000000; FILES=10000; LINES=2000000; PYLINES=200000; BIGMB=1024; REPS=3; HTTPN=20000
  DBQ=50000; DBPQ=500000; DBROWS=15000; PGT=5; fi

rec() { tee -a "$OUT"; }
# A limit measured with the shell's clock: impl workload n ok seconds [bytes]
limit_line() {
  $PY - "$@" <<'PY' | rec
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

# Each comparison runs REPS times, alternating actio and the other side, so
# both meet the same noise; the table keeps the best run of each.
echo "== futures and mailboxes =="
for _ in $(seq $REPS); do
  $BENCH gather --n $N --fanout 1000 | rec
  $PY "$PEERS/asyncio_gather.py" --mode gather --n $N --fanout 1000 | rec
  $PY "$PEERS/asyncio_gather.py" --mode gather --n $N --fanout 1000 --uvloop | rec
  $BENCH pingpong --n $N | rec
  $BENCH pingpong --n $N --impl threads | rec
  $PY "$PEERS/asyncio_gather.py" --mode pingpong --n $((N / 5)) | rec
  $PY "$PEERS/asyncio_gather.py" --mode pingpong --n $((N / 5)) --uvloop | rec
  for pc in "2 2" "8 4"; do
    set -- $pc
    $BENCH mailbox --n $((N * 2)) --producers "$1" --consumers "$2" | rec
    $BENCH mailbox --n $((N * 2)) --producers "$1" --consumers "$2" --impl mutex | rec
  done
done

echo "== http (nginx from ../shared/bench/services.sh) =="
eval "$(bash "$PEERS/../services.sh" start)"
for path in /1k /64k; do
  u="$BENCH_HTTP_URL$path"
  for _ in $(seq $REPS); do
    $BENCH http_get --url "$u" --requests $HTTPN --concurrency 64 | rec
    $BENCH http_get --url "$u" --requests $HTTPN --concurrency 64 --impl curl | rec
    $PY "$PEERS/aiohttp_get.py" --url "$u" --requests $HTTPN --concurrency 64 | rec
    $PY "$PEERS/aiohttp_get.py" --url "$u" --requests $HTTPN --concurrency 64 --uvloop | rec
    wrk -t1 -c64 -d3s "$u" | $PY -c '
import json, re, sys
text = sys.stdin.read()
rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
print(json.dumps({"impl": "wrk", "workload": "http_get", "path": sys.argv[1], "n": int(rate * 3),
                  "concurrency": 64, "ok": int(rate * 3), "errors": 0, "seconds": 3.0, "per_sec": rate}))' "$path" | rec
  done
done

echo "== database (PostgreSQL from ../shared/bench/services.sh) =="
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
  $PY - "$1" "$2" "$4" $PGT "$text" <<'PY' | rec
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
  $BENCH db_point --dsn "$BENCH_PG_DSN" --queries $DBQ --concurrency 8 | rec
  $PY "$PEERS/asyncpg_query.py" --dsn "$BENCH_PG_DSN" --queries $DBQ --concurrency 8 --workload point --uvloop | rec
  $PY "$PEERS/asyncpg_query.py" --dsn "$BENCH_PG_DSN" --queries $DBQ --concurrency 8 --workload point | rec
  pgbench_line pgbench db_point "$work/point.sql" 1
  pgbench_line pgbench-pipeline db_point "$work/point-pipe.sql" $PIPE
  # 400 in flight over 8 connections: pgbench's 8 clients x 50 queries.
  $BENCH db_point --dsn "$BENCH_PG_DSN" --queries $DBPQ --concurrency $((8 * PIPE)) --pipeline --connections 8 | rec
  $BENCH db_point --dsn "$BENCH_PG_DSN" --queries $DBQ --concurrency 8 --pipeline --connections 8 | rec
  $BENCH db_rows --dsn "$BENCH_PG_DSN" --queries $DBROWS --concurrency 8 | rec
  $PY "$PEERS/asyncpg_query.py" --dsn "$BENCH_PG_DSN" --queries $DBROWS --concurrency 8 --workload rows --uvloop | rec
  pgbench_line pgbench db_rows "$work/rows.sql" 1
done

echo "== files =="
for _ in $(seq $REPS); do
  rm -rf "$work/c" "$work/py"
  $BENCH file_write_small --dir "$work/c" --files $FILES --size 4096 --concurrency 64 | rec
  $PY "$PEERS/aiofiles_io.py" --mode write-small --dir "$work/py" --files $FILES --size 4096 --concurrency 64 | rec
  $BENCH file_read_small --dir "$work/c" --files $FILES --concurrency 64 | rec
  $PY "$PEERS/aiofiles_io.py" --mode read-small --dir "$work/py" --files $FILES --concurrency 64 | rec
  $PY "$PEERS/aiofiles_io.py" --mode read-small --dir "$work/py" --files $FILES --concurrency 64 --uvloop | rec
done

$PY - "$work/lines.txt" $LINES <<'PY'
import random, sys
random.seed(7)
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        n = random.randint(0, 120)
        f.write("".join(random.choice("abcdefghij klmnop") for _ in range(n)) + ("\r\n" if i % 5 == 0 else "\n"))
PY
head -n $PYLINES "$work/lines.txt" > "$work/lines-small.txt"
cat "$work/lines.txt" > /dev/null # warm the cache for everyone
$PY "$PEERS/aiofiles_io.py" --mode read-lines --path "$work/lines-small.txt" | rec
for _ in $(seq $REPS); do
  $BENCH file_read_lines --path "$work/lines.txt" | rec
  limit_line "wc -l" file_read_lines $LINES $LINES "$(timed wc -l "$work/lines.txt")"
done

head -c $((BIGMB << 20)) /dev/urandom > "$work/big.bin"
cat "$work/big.bin" > /dev/null
bytes=$((BIGMB << 20))
for _ in $(seq $REPS); do
  $BENCH file_read_large --path "$work/big.bin" | rec
  limit_line "cat" file_read_large "$bytes" "$bytes" "$(timed cat "$work/big.bin")" "$bytes"
done

echo
echo "== ratios (one run; best of $REPS each; per_sec of actio / per_sec of the other) =="
$PY - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def pick(workload, impl, **kw):  # the best run of impl on workload
    best = None
    for r in rows:
        if r["workload"] == workload and r["impl"] == impl and all(r.get(k) == v for k, v in kw.items()):
            if r.get("errors", 0) == 0 and (best is None or r["per_sec"] > best["per_sec"]):
                best = r
    return best
def per(r):  # file_read_large counts bytes per second
    return r["per_sec"]
print(f"{'workload':<28}{'actio/s':>14}  {'vs':<22}{'their/s':>14}{'ratio':>9}")
def show(workload, other, label=None, **kw):
    a, b = pick(workload, "actio", **kw), pick(workload, other, **kw)
    if a and b:
        print(f"{(label or workload):<28}{per(a):>14,.0f}  {other:<22}{per(b):>14,.0f}{per(a)/per(b):>8.1f}x")
for w in ("gather", "pingpong"):
    show(w, "asyncio"); show(w, "asyncio+uvloop")
show("pingpong", "threads", "pingpong (limit)")
for p, c in ((2, 2), (8, 4)):
    a = pick("mailbox", "actio", producers=p, consumers=c)
    b = pick("mailbox", "mutex_queue", producers=p, consumers=c)
    if a and b:
        print(f"{f'mailbox {p}p/{c}c':<28}{a['per_sec']:>14,.0f}  {'mutex queue':<22}{b['per_sec']:>14,.0f}{a['per_sec']/b['per_sec']:>8.1f}x")
def url_of(r):
    return r.get("path") or ("/" + r.get("url", "").rsplit("/", 1)[-1] if r.get("url") else None)
for path in ("/1k", "/64k"):
    for other in ("aiohttp", "aiohttp+uvloop", "libcurl-multi", "wrk"):
        cand = [r for r in rows if r["workload"] == "http_get" and r.get("errors", 0) == 0]
        def best(impl):
            rs = [r for r in cand if r["impl"] == impl and r.get("path", path) == path and
                  (impl == "wrk" or r.get("bytes", 0) // max(r["ok"], 1) in ((1024,) if path == "/1k" else (65536,)))]
            return max(rs, key=lambda r: r["per_sec"]) if rs else None
        a, b = best("actio"), best(other)
        if a and b:
            print(f"{'http_get ' + path:<28}{a['per_sec']:>14,.0f}  {other:<22}{b['per_sec']:>14,.0f}{a['per_sec']/b['per_sec']:>8.2f}x")
def vs(label, a, other, b):  # a: actio's row, b: the other's
    if a and b:
        print(f"{label:<28}{a['per_sec']:>14,.0f}  {other:<22}{b['per_sec']:>14,.0f}{a['per_sec']/b['per_sec']:>8.2f}x")
plain = pick("db_point", "actio", concurrency=8, pipeline=False)
for other in ("asyncpg", "asyncpg+uvloop", "pgbench"):
    vs("db_point C=8", plain, other, pick("db_point", other))
# Pipelined, against the limit with as many queries in flight: 8 is pgbench's
# 8 clients, 400 its 8 clients x 50-query pipelines.
for c, limit in ((8, "pgbench"), (400, "pgbench-pipeline")):
    piped = pick("db_point", "actio", concurrency=c, pipeline=True)
    for other in ("asyncpg+uvloop", limit):
        vs(f"db_point pipelined C={c}", piped, other, pick("db_point", other))
rows_a = pick("db_rows", "actio", concurrency=8)
for other in ("asyncpg+uvloop", "pgbench"):
    vs("db_rows C=8 (100 rows)", rows_a, other, pick("db_rows", other))
show("file_write_small", "aiofiles")
show("file_read_small", "aiofiles"); show("file_read_small", "aiofiles+uvloop")
show("file_read_lines", "aiofiles"); show("file_read_lines", "wc -l")
show("file_read_large", "cat", "file_read_large (bytes/s)")
PY
