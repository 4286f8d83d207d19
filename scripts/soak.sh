#!/usr/bin/env bash
# soak.sh: the pipeline demo at steady load for MINUTES in one process, with
# chaos, checked for lost or duplicated items and for growth. Not in CI.
#   scripts/soak.sh [--out DIR] [--seed N] [--urls N] [MINUTES]
#     MINUTES  how long the demo starts rounds (default 30)
#     --out    where the results go (default /tmp/actio-soak-<UTC time>):
#              pipeline.log, samples.tsv, chaos.tsv, summary.txt, soak.png
#     --seed   seeds the chaos and the pages (default 12)
#     --urls   URLs a round (default 3000)
#     --plot   only draw DIR/soak.png again, from a finished run's DIR
#   ACTIO_BUILD_DIR picks the build folder (build); the demo and the fixture
#   server are built there first (-j2).
# The demo (demos/pipeline.c --duration --samples) runs the URL list round
# after round, each round under the run_id soak-K. The URLs are nginx pages
# and fixture endpoints, about 1 in 12 failing (404, a dropped connection,
# a refused port). Every 3 to 8 s (seeded) the script restarts nginx on the
# same ports, terminates the demo's PostgreSQL backends, or restarts
# PostgreSQL: only the servers it started, found by their pid files in its
# own temporary folder.
# It passes when
#   - the demo ends by itself, every round reported;
#   - every item is accounted for exactly once: for each round, rows ==
#     recorded, recorded + not recorded == URLs, and no row for a line the
#     demo reported as not recorded (the (run_id, line) key rules out twins);
#   - RSS, descriptors and threads stay flat after warm-up: the median of the
#     last quarter of the samples against the median of the second quarter
#     (the first quarter is warm-up): RSS within 10% or 8 MiB, whichever is
#     more; descriptors within FD_SLACK (connections closed and opened again
#     by the chaos); threads equal.
# Exit status 0 on a pass, 1 on a fail, 2 on bad usage.
set -euo pipefail

# Descriptors: half the 32 HTTP connections, which the chaos closes and opens
# again at once; a run of a few minutes has few samples a quarter, and its
# medians move with how many are open. A leak of one per chaos event or per
# round is hundreds in 30 minutes.
FD_SLACK=16
minutes=30 seed=12 urls=3000 out=
usage() {
  sed -n '3,10p' "$0" >&2
  exit 2
}
# The plot, $out/soak.png: RSS, descriptors and threads; the mailboxes; the
# chaos. From $out/samples.tsv and $out/events.tsv (chaos on the samples' clock).
plot() {
  col() { head -n 1 "$out/samples.tsv" | tr ' ' '\n' | grep -v '^#$' | grep -nx "$1" | cut -d: -f1; }
  [ -s "$out/events.tsv" ] || echo "0 0" > "$out/events.tsv"
  local heap= # samples from before the heap columns have none
  [ -z "$(col heap_used_kib)" ] ||
    heap=", \"\" using $(col elapsed_s):(\$$(col heap_used_kib)/1024) with lines lc rgb \"#c08000\" title \"heap in use (MiB)\""
  gnuplot <<GP || echo "note: gnuplot failed" >&2
set terminal png size 1000,800 small # a palette: small enough to commit
set output "$out/soak.png"
set multiplot title "actio $(head -n 1 "$out/summary.txt" 2>/dev/null)"
set grid
stats "$out/samples.tsv" using $(col elapsed_s) nooutput
set xrange [0:STATS_max]
set key outside right top vertical
set lmargin 12
set rmargin 30
set origin 0,0.53
set size 1,0.43
set ylabel "MiB"
set y2label "count"
set ytics nomirror
set y2tics
set yrange [0:*]
set y2range [0:*]
# the quarters: warm-up, then the two compared (second and last)
do for [q=1:3] { set arrow from q*STATS_max/4, graph 0 to q*STATS_max/4, graph 1 nohead lc rgb "#808080" }
plot "$out/samples.tsv" using $(col elapsed_s):(\$$(col rss_kib)/1024) with lines lw 2 lc rgb "#8000a0" title "RSS (MiB)", \
     "" using $(col elapsed_s):$(col fds) axes x1y2 with lines lc rgb "#009e73" title "descriptors", \
     "" using $(col elapsed_s):$(col threads) axes x1y2 with lines lw 2 lc rgb "#0072b2" title "threads"$heap
unset y2label
unset y2tics
unset arrow
set origin 0,0.2
set size 1,0.33
set ylabel "requests"
plot "$out/samples.tsv" using $(col elapsed_s):$(col http_depth) with lines lc rgb "#e41a1c" title "http depth", \
     "" using $(col elapsed_s):$(col http_running) with lines lc rgb "#009e73" title "http running", \
     "" using $(col elapsed_s):$(col db_depth) with lines lc rgb "#56b4e9" title "db depth", \
     "" using $(col elapsed_s):$(col db_waiting) with lines lc rgb "#e69f00" title "db waiting", \
     "" using $(col elapsed_s):$(col files_depth) with lines lc rgb "#a0a000" title "files depth", \
     "" using $(col elapsed_s):$(col hasher_depth) with lines lc rgb "#0072b2" title "hasher depth"
set origin 0,0
set size 1,0.2
set ylabel ""
set xlabel "seconds"
set yrange [0.5:3.5]
set ytics ("nginx" 1, "pg kill" 2, "pg restart" 3)
plot "$out/events.tsv" using 1:(\$2==1?1:1/0) with points pt 9 ps 0.6 lc rgb "#8000a0" title "nginx restarted", \
     "" using 1:(\$2==2?2:1/0) with points pt 7 ps 0.5 lc rgb "#009e73" title "backends terminated", \
     "" using 1:(\$2==3?3:1/0) with points pt 5 ps 0.5 lc rgb "#0072b2" title "PostgreSQL restarted"
unset multiplot
GP
}

while [ $# -gt 0 ]; do
  case $1 in
    --out) [ $# -ge 2 ] || usage; out=$2; shift 2 ;;
    --seed) [[ ${2:-} =~ ^[0-9]+$ ]] || usage; seed=$2; shift 2 ;;
    --urls) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || usage; urls=$2; shift 2 ;;
    --plot) [ -d "${2:-}" ] || usage; out=$(cd "$2" && pwd); plot; exit ;;
    [1-9]*) [[ $1 =~ ^[1-9][0-9]*$ ]] || usage; minutes=$1; shift ;;
    *) usage ;;
  esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
build=${ACTIO_BUILD_DIR:-$ROOT/build}
out=${out:-/tmp/actio-soak-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
NGINX=${NGINX:-/usr/sbin/nginx}

echo "== build ($build)"
[ -f "$build/CMakeCache.txt" ] ||
  cmake -S "$ROOT" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target actio-pipeline fixture_server -j 2 >/dev/null
PIPELINE=$build/demos/actio-pipeline
FIXTURE=$build/tests/fixture/fixture_server

work=$(mktemp -d /tmp/actio-soak-XXXXXX)
chmod 755 "$work" # postgres (when run as root) must reach its folder
fixture_pid= pipeline_pid=
cleanup() {
  [ -z "$pipeline_pid" ] || kill "$pipeline_pid" 2>/dev/null || true
  [ -z "$fixture_pid" ] || kill "$fixture_pid" 2>/dev/null || true
  bash "$ROOT/tests/pg_server.sh" stop "$work/pg" >/dev/null 2>&1 || true
  bash "$ROOT/tests/http_servers.sh" stop "$work/web" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" | tee -a "$out/summary.txt" >&2
  exit 1
}
: > "$out/summary.txt"

echo "== servers, under $work"
eval "$(bash "$ROOT/tests/http_servers.sh" start "$work/web")"
eval "$(bash "$ROOT/tests/pg_server.sh" start "$work/pg")"
"$FIXTURE" > "$work/fixture.out" 2>&1 &
fixture_pid=$!
for _ in $(seq 100); do grep -q '^PORT ' "$work/fixture.out" && break; sleep 0.1; done
grep -q '^PORT ' "$work/fixture.out" || fail "the fixture server did not start"
FIX=http://127.0.0.1:$(awk '/^PORT /{print $2}' "$work/fixture.out")
psql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -At "$PG_DSN" "$@"; }
APP=actio-soak # the demo's connections, for pg_terminate_backend

# The list: nginx pages of random sizes (empty ones too), fixture bodies,
# and in every 100 URLs 8 that fail: 404 twice, a dropped connection, a
# refused port, and a 500.
python3 - "$NGINX_DOCROOT/p" "$urls" "$seed" "$NGINX_HTTP_URL" "$FIX" > "$work/urls.txt" <<'PY'
import os, random, sys
folder, n, seed, web, fix = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
pages = min(n, 2000)
os.makedirs(folder, exist_ok=True)
rnd = random.Random(seed)
for i in range(pages):
    with open(f"{folder}/{i}", "wb") as f:
        f.write(rnd.randbytes(0 if i % 100 == 0 else rnd.randint(1, 40000)))
special = {7: f"{fix}/status/404", 17: f"{fix}/drop", 27: f"{web}/p/missing",
           37: f"{fix}/bytes/100000", 47: f"{fix}/delay/50", 57: f"{fix}/chunked/30000",
           67: "http://127.0.0.1:1/", 77: f"{fix}/status/500", 87: f"{fix}/drop",
           97: f"{fix}/redirect/2", 98: f"{fix}/status/404"}
for i in range(n):
    print(special.get(i % 100, f"{web}/p/{i % pages}"))
PY

# nginx again on the same ports (tests/http_servers.sh start would pick new
# ones): stop it by its pid file, start it on the same config.
restart_nginx() {
  bash "$ROOT/tests/http_servers.sh" stop "$work/web" >/dev/null 2>&1
  local _
  for _ in $(seq 50); do
    "$NGINX" -p "$work/web/" -e "$work/web/nginx.error.log" -c "$work/web/nginx.conf" \
      -g 'user root;' </dev/null >/dev/null 2>&1 && break
    sleep 0.2 # the port may linger a moment
  done
  for _ in $(seq 100); do
    curl -sf -o /dev/null --max-time 2 "$NGINX_HTTP_URL/1k" && return 0
    sleep 0.1
  done
  fail "nginx did not come back"
}

echo "== soak: $minutes min, $urls URLs a round, seed $seed, results in $out"
"$PIPELINE" --dsn "$PG_DSN application_name=$APP" --out "$work/bodies" --concurrency 32 \
  --timeout 30000 --run-id soak --duration $((minutes * 60)) --samples "$out/samples.tsv" \
  "$work/urls.txt" > "$out/pipeline.log" 2> "$out/pipeline.err" &
pipeline_pid=$!
start=$SECONDS
# A hang guard, not a timing: the last round has had 10 minutes to end.
guard=$((minutes * 60 + 600))

RANDOM=$seed
: > "$out/chaos.tsv"
while kill -0 "$pipeline_pid" 2>/dev/null && [ $((SECONDS - start)) -lt $((minutes * 60)) ]; do
  sleep $((3 + RANDOM % 6))
  kill -0 "$pipeline_pid" 2>/dev/null || break
  at=$(date +%s.%N) detail=
  case $((RANDOM % 3)) in
    0) kind=nginx_restart; restart_nginx ;;
    1) kind=pg_terminate
       detail=$(psql -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                         WHERE application_name = '$APP'" 2>/dev/null || echo error) ;;
    2) kind=pg_restart
       bash "$ROOT/tests/pg_server.sh" restart "$work/pg" >/dev/null 2>>"$out/chaos.err" ||
         fail "PostgreSQL did not come back" ;;
  esac
  printf '%s\t%s\t%s\n' "$at" "$kind" "$detail" >> "$out/chaos.tsv"
done
echo "== chaos over; waiting for the last round"
while kill -0 "$pipeline_pid" 2>/dev/null; do
  if [ $((SECONDS - start)) -ge "$guard" ]; then
    gdb -batch -p "$pipeline_pid" -ex 'thread apply all bt' > "$out/hang.txt" 2>&1 || true
    fail "the demo did not end (threads' stacks in $out/hang.txt)"
  fi
  sleep 1
done
rc=0
wait "$pipeline_pid" || rc=$?
pipeline_pid=
tail -n 2 "$out/pipeline.log"
if grep -E 'Sanitizer|runtime error:' "$out/pipeline.err" >/dev/null; then
  fail "sanitizer report in $out/pipeline.err"
fi

# Rows per round, from a PostgreSQL that has just been through the chaos.
psql -F $'\t' -c "SELECT run_id, count(*), count(DISTINCT line), min(line), max(line)
                  FROM actio_pipeline GROUP BY run_id" > "$work/rows.tsv"
sed -n 's/^  round \([0-9]*\) not recorded: line \([0-9]*\) .*/soak-\1\t\2/p' \
  "$out/pipeline.log" > "$work/unrecorded.tsv"
{
  echo "CREATE TEMP TABLE unrec (run_id text, line int);"
  echo "COPY unrec FROM STDIN;"
  cat "$work/unrecorded.tsv"
  echo '\.'
  echo "SELECT u.run_id || ' line ' || u.line FROM unrec u JOIN actio_pipeline p USING (run_id, line);"
} | psql > "$work/unrec_rows.txt"

verdict=0
python3 - "$out" "$work" "$urls" "$rc" "$minutes" "$seed" "$FD_SLACK" <<'PY' || verdict=$?
import re, statistics, sys
out, work, urls, rc, minutes, seed, fd_slack = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
summary = open(f"{out}/summary.txt", "a")
def say(s=""):
    print(s)
    summary.write(s + "\n")
problems = [] # accounting; growth goes to grown

# Accounting, round by round.
log = open(f"{out}/pipeline.log").read()
rounds = {int(k): tuple(map(int, v)) for k, *v in re.findall(
    r"^round (\d+): (\d+) URLs, (\d+) recorded, (\d+) not recorded, (\d+) failed", log, re.M)}
unrec = {}
for k in re.findall(r"^  round (\d+) not recorded:", log, re.M):
    unrec[int(k)] = unrec.get(int(k), 0) + 1
rows = {}
for l in open(f"{work}/rows.tsv"):
    run, count, distinct, lo, hi = l.rstrip("\n").split("\t")
    rows[run] = (int(count), int(distinct), int(lo), int(hi))
last = re.search(r"^rounds: (\d+) of", log, re.M)
if not last:
    problems.append("no closing 'rounds:' line: the demo did not end cleanly")
elif int(last.group(1)) != len(rounds):
    problems.append(f"'rounds:' says {last.group(1)}, {len(rounds)} round lines")
if sorted(rounds) != list(range(1, len(rounds) + 1)):
    problems.append("round numbers are not 1..K")
for run in rows.keys() - {f"soak-{k}" for k in rounds}:
    problems.append(f"rows for {run}, a round the demo did not report")
total = recorded = not_recorded = failed = 0
for k, (n, rec, nrec, fail) in sorted(rounds.items()):
    count, distinct, lo, hi = rows.get(f"soak-{k}", (0, 0, 1, urls))
    total, recorded, not_recorded, failed = total + n, recorded + rec, not_recorded + nrec, failed + fail
    if n != urls: problems.append(f"round {k}: {n} URLs, the list has {urls}")
    if rec + nrec != n: problems.append(f"round {k}: {rec} recorded + {nrec} not recorded != {n}")
    if count != rec: problems.append(f"round {k}: {count} rows, {rec} recorded")
    if distinct != count: problems.append(f"round {k}: {count} rows for {distinct} lines")
    if lo < 1 or hi > urls: problems.append(f"round {k}: rows for lines {lo}..{hi}")
    if unrec.get(k, 0) != nrec: problems.append(f"round {k}: {unrec.get(k, 0)} listed, {nrec} not recorded")
for l in open(f"{work}/unrec_rows.txt"):
    problems.append(f"{l.strip()}: reported not recorded, yet it has a row")
if rc not in (0, 1) or (rc == 1) != (not_recorded > 0):
    problems.append(f"exit status {rc} with {not_recorded} not recorded")

# Chaos events, by kind.
events = [l.rstrip("\n").split("\t") for l in open(f"{out}/chaos.tsv")]
kinds = {k: sum(1 for e in events if e[1] == k) for k in ("nginx_restart", "pg_terminate", "pg_restart")}
killed = sum(int(e[2]) for e in events if e[1] == "pg_terminate" and e[2].isdigit())

# Flatness: second quarter (after warm-up) against the last quarter.
cols = open(f"{out}/samples.tsv").readline().lstrip("# ").split()
samples = [list(map(float, l.split())) for l in open(f"{out}/samples.tsv") if not l.startswith("#")]
c = {name: i for i, name in enumerate(cols)}
n = len(samples)
if n < 8:
    problems.append(f"only {n} samples")
    n = 0
q2, q4 = samples[n // 4:n // 2], samples[3 * n // 4:]
def med(rows, col): return statistics.median(r[c[col]] for r in rows) if rows else float("nan")
rss2, rss4 = med(q2, "rss_kib") / 1024, med(q4, "rss_kib") / 1024
fd2, fd4 = med(q2, "fds"), med(q4, "fds")
th2, th4 = med(q2, "threads"), med(q4, "threads")
rss_lim = max(0.10 * rss2, 8.0)
flat = [("RSS MiB", rss2, rss4, abs(rss4 - rss2) <= rss_lim, f"within {rss_lim:.1f}"),
        ("descriptors", fd2, fd4, abs(fd4 - fd2) <= fd_slack, f"within {fd_slack}"),
        ("threads", th2, th4, th4 == th2, "equal")]
grown = [f"{what}: {a:.1f} after warm-up, {b:.1f} at the end (limit: {lim})"
         for what, a, b, ok, lim in flat if not ok]

# Markers for the plot: chaos events on the samples' clock.
if samples:
    shift = samples[0][c["unix_s"]] - samples[0][c["elapsed_s"]]
    with open(f"{out}/events.tsv", "w") as f:
        for e in events:
            f.write(f"{float(e[0]) - shift:.3f}\t{list(kinds).index(e[1]) + 1}\n")

secs = samples[-1][c["elapsed_s"]] if samples else 0
say(f"soak: {secs:.0f} s ({minutes} min asked), seed {seed}, {urls} URLs a round")
say(f"rounds: {len(rounds)}; URLs: {total}; recorded: {recorded}; not recorded: {not_recorded};"
    f" failed (fetch or save errors, recorded): {failed}")
say(f"chaos: {len(events)} events: {kinds['nginx_restart']} nginx restarts,"
    f" {kinds['pg_terminate']} backend terminations ({killed} backends),"
    f" {kinds['pg_restart']} PostgreSQL restarts")
say(f"samples: {len(samples)}; warm-up: the first quarter; median of the 2nd quarter vs the last")
say(f"  {'':12} {'after warm-up':>14} {'at the end':>11}  limit")
for what, a, b, ok, lim in flat:
    say(f"  {what:12} {a:14.1f} {b:11.1f}  {lim:10} {'ok' if ok else 'GROWN'}")
if "heap_used_kib" in c and q2 and q2[0][c["heap_used_kib"]] >= 0:
    say(f"  {'heap in use':12} {med(q2, 'heap_used_kib') / 1024:14.1f} {med(q4, 'heap_used_kib') / 1024:11.1f}"
        f"  (MiB, glibc's count; not a criterion: it tells a leak from the allocator's caches)")
if samples:
    lo = {k: min(r[c[k]] for r in samples) for k in ("rss_kib", "fds", "threads")}
    hi = {k: max(r[c[k]] for r in samples) for k in ("rss_kib", "fds", "threads")}
    say(f"  whole run: RSS {lo['rss_kib'] / 1024:.1f}..{hi['rss_kib'] / 1024:.1f} MiB,"
        f" descriptors {lo['fds']:.0f}..{hi['fds']:.0f}, threads {lo['threads']:.0f}..{hi['threads']:.0f}")
for p in (problems + grown)[:30]:
    say(f"  problem: {p}")
say(f"verdict: {'PASS' if not problems and not grown else 'FAIL'}:"
    f" every item accounted for exactly once: {'no' if problems else 'yes'};"
    f" flat after warm-up: {'no' if grown else 'yes'}")
sys.exit(1 if problems or grown else 0)
PY

plot
[ -s "$out/soak.png" ] && echo "plot: $out/soak.png"
exit "$verdict"
