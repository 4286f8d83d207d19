#!/usr/bin/env bash
# cluster-demo.sh: the pipeline across processes (issue #14): a 3-node NATS
# cluster with JetStream, PostgreSQL and a local nginx with a few thousand
# pages on loopback; a coordinator publishes the URLs as jobs to a stream
# with 3 replicas, and 3 worker processes (demos/cluster.c) fetch, hash,
# save and record each in PostgreSQL. Mid-run it kills one worker process
# and one NATS server (SIGKILL both); the jobs the worker held come back to
# the others once their ack wait passes. It ends with every URL recorded
# exactly once (checked by a query), prints each worker's summary, and
# stops everything it started.
#   scripts/cluster-demo.sh      ACTIO_BUILD_DIR=... picks the build folder
#                                (build); ACTIO_DEMO_PAGES=N the pages (3000)
# ACTIO_CLUSTER_BIN=path runs that actio-cluster as it is, without setup.sh
# or a build (the test suite's way: tests/CMakeLists.txt).
# No step waits for a set time: each waits for a state (rows in the table, a
# line a program printed, a process gone), within one hang guard.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${ACTIO_BUILD_DIR:-build}
pages=${ACTIO_DEMO_PAGES:-3000}
guard=${ACTIO_CLUSTER_GUARD:-600} # seconds before the demo gives up as hung

if [ -n "${ACTIO_CLUSTER_BIN:-}" ]; then
  bin=$ACTIO_CLUSTER_BIN
else
  bash scripts/setup.sh
  echo "== build ($build) =="
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j "$(nproc)" --target actio-cluster >/dev/null
  bin=$build/demos/actio-cluster
fi

work=$(mktemp -d /tmp/actio-cluster-XXXXXX)
chmod 755 "$work" # the postgres user (when run as root) must reach its folder
declare -A pid=()
cleanup() {
  for p in "${pid[@]}"; do
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  bash tests/nats_server.sh stop "$work/nats" >/dev/null 2>&1 || true
  bash tests/pg_server.sh stop "$work/pg" >/dev/null 2>&1 || true
  bash tests/http_servers.sh stop "$work/web" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
  exit 1
}

echo "== start: 3 NATS servers (JetStream), nginx and PostgreSQL on loopback, under $work =="
eval "$(bash tests/http_servers.sh start "$work/web")"
eval "$(bash tests/pg_server.sh start "$work/pg" 2>/dev/null)"
eval "$(bash tests/nats_server.sh cluster "$work/nats")"
python3 scripts/demo-pages.py "$NGINX_DOCROOT/pages" "$pages"
for ((i = 0; i < pages; i++)); do printf '%s/pages/%05d.html\n' "$NGINX_HTTP_URL" "$i"; done \
  > "$work/urls.txt"
echo "NATS at $NATS_JS_URLS; nginx at $NGINX_HTTP_URL ($pages pages); PostgreSQL at 127.0.0.1:$PG_PORT"
psql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -At "$PG_DSN" "$@"; }

run=r$$
start=$SECONDS
hung() { [ $((SECONDS - start)) -lt "$guard" ] || fail "not done within $guard s"; }

echo
echo "== 3 workers, then the coordinator publishing $pages jobs (run $run) =="
for w in w1 w2 w3; do
  "$bin" work --nats "$NATS_JS_URLS" --run "$run" --name "$w" --dsn "$PG_DSN" \
    --out "$work/out" --in-flight 16 --ack-wait 3000 > "$work/$w.log" 2>&1 &
  pid[$w]=$!
done
for w in w1 w2 w3; do # each is pulling (or gone, which fails below)
  until grep -q pulling "$work/$w.log"; do
    kill -0 "${pid[$w]}" 2>/dev/null || fail "worker $w ended"
    hung
    sleep 0.1
  done
done
"$bin" publish --nats "$NATS_JS_URLS" --run "$run" "$work/urls.txt" > "$work/coordinator.log" 2>&1 &
pid[coordinator]=$!

# Rows per worker, as "w1 N w2 N w3 N"; and their total.
per_worker() {
  psql -c "SELECT w, count(c.line) FROM unnest(array['w1','w2','w3']) w
             LEFT JOIN actio_cluster c ON c.worker = w AND c.run_id = '$run'
             GROUP BY w ORDER BY w" 2>/dev/null | tr '|\n' '  ' || true
}
total() { psql -c "SELECT count(*) FROM actio_cluster WHERE run_id = '$run'" 2>/dev/null || echo 0; }

# A progress line whenever the counts change (redrawn in place on a
# terminal).
killed= shown=
tty=0
[ -t 1 ] && tty=1
while :; do
  done_n=$(total)
  line="progress: $done_n/$pages recorded; by worker: $(per_worker)"
  if [ "$line" != "$shown" ]; then
    if [ $tty = 1 ]; then printf '\r%s   ' "$line"; else echo "$line"; fi
    shown=$line
  fi
  if [ -z "$killed" ] && [ "$done_n" -ge $((pages / 3)) ]; then
    [ $tty = 1 ] && echo
    kill -9 "${pid[w2]}"
    wait "${pid[w2]}" 2>/dev/null || true
    unset 'pid[w2]'
    bash tests/nats_server.sh kill-node "$work/nats" 2
    killed="worker w2 and NATS server js2 killed (SIGKILL) at $done_n/$pages"
    echo "== $killed =="
    [ "$done_n" -lt "$pages" ] || echo "(the run was done by then: a larger ACTIO_DEMO_PAGES shows more)"
  fi
  [ "$done_n" -ge "$pages" ] && break
  kill -0 "${pid[w1]}" 2>/dev/null || fail "worker w1 ended"
  kill -0 "${pid[w3]}" 2>/dev/null || fail "worker w3 ended"
  hung
  sleep 0.5
done
[ $tty = 1 ] && echo
wait "${pid[coordinator]}" || fail "the coordinator failed"
unset 'pid[coordinator]'
cat "$work/coordinator.log"

echo
echo "== stop: the workers drain and print their summaries =="
for w in w1 w3; do kill -TERM "${pid[$w]}"; done
for w in w1 w3; do
  wait "${pid[$w]}" || fail "worker $w failed"
  unset "pid[$w]"
  grep "^worker $w: taken" "$work/$w.log" || fail "no summary from $w"
done
echo "worker w2: killed mid-run (SIGKILL); its jobs went to the others"
# A sanitizer's report (a sanitizer build's binary) fails the demo too.
if grep -lE 'Sanitizer|runtime error:' "$work"/*.log; then fail "a sanitizer report"; fi

echo
echo "== the table: every URL recorded exactly once =="
check=$(psql -c "SELECT count(*), count(DISTINCT line),
                        (SELECT count(*) FROM generate_series(1, $pages) g
                          WHERE NOT EXISTS (SELECT 1 FROM actio_cluster
                                             WHERE run_id = '$run' AND line = g))
                 FROM actio_cluster WHERE run_id = '$run'")
IFS='|' read -r rows lines missing <<< "$check"
echo "rows $rows, distinct lines $lines, lines missing $missing (of $pages URLs)"
[ "$rows" = "$pages" ] && [ "$lines" = "$pages" ] && [ "$missing" = 0 ] ||
  fail "not every URL recorded exactly once"
failed=$(psql -c "SELECT count(*) FROM actio_cluster WHERE run_id = '$run' AND error IS NOT NULL")
[ "$failed" = 0 ] || fail "$failed URLs failed"
"$PG_BIN/psql" -X "$PG_DSN" -c "
  SELECT worker, count(*) AS urls, pg_size_pretty(sum(bytes)) AS bytes,
         count(*) FILTER (WHERE deliveries > 1) AS delivered_again
  FROM actio_cluster WHERE run_id = '$run' GROUP BY worker ORDER BY worker"
echo "saved: $(find "$work/out" -name '*.body' | wc -l) files (removed on exit); $killed"
echo "cluster demo: ok"
