#!/usr/bin/env bash
# demo.sh: one command for a new user: installs what is missing (Debian),
# builds, starts a local nginx with a few thousand pages and a throwaway
# PostgreSQL (loopback, temporary folders), runs the small demos and then the
# pipeline demo against them, and stops what it started.
#   scripts/demo.sh          ACTIO_BUILD_DIR=... picks the build folder (build)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${ACTIO_BUILD_DIR:-build}
pages=${ACTIO_DEMO_PAGES:-3000}

bash scripts/setup.sh
echo "== build ($build): the library and the demos, a few minutes on two cores =="
# Only the library and the demos run below: the tests and benchmarks are
# scripts/test.sh's and scripts/bench.sh's to build.
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" --target actio-demo-files \
  actio-demo-actors actio-demo-counter actio-demo-fetch actio-demo-db \
  actio-pipeline >/dev/null

# Everything the demo makes lives in one folder, removed on the way out, and
# every server it starts is stopped, whatever happens.
work=$(mktemp -d /tmp/actio-demo-XXXXXX)
chmod 755 "$work" # the postgres user (when run as root) must reach its folder
cleanup() {
  bash tests/pg_server.sh stop "$work/pg" >/dev/null 2>&1 || true
  bash tests/http_servers.sh stop "$work/web" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== start: nginx and PostgreSQL on loopback, under $work =="
# Both pick free ports (never 18080, 15432 or 14222, which other kits use).
eval "$(bash tests/http_servers.sh start "$work/web")"
eval "$(bash tests/pg_server.sh start "$work/pg" 2>/dev/null)"
# A few thousand small HTML pages of varied sizes.
python3 scripts/demo-pages.py "$NGINX_DOCROOT/pages" "$pages"
echo "nginx at $NGINX_HTTP_URL ($pages pages), PostgreSQL at 127.0.0.1:$PG_PORT"

echo
echo "== files: write, read, lines, 100 writes gathered =="
"$build/demos/actio-demo-files" "$(mkdir -p "$work/files" && echo "$work/files")"
echo
echo "== actors: a worker pool asked 1000 times, gathered; then a bounded map =="
"$build/demos/actio-demo-actors"
echo
echo "== counter: an actor of your own, told, asked, failed and restarted =="
"$build/demos/actio-demo-counter"
echo
echo "== fetch: one page, then several at once (one missing, one port closed) =="
"$build/demos/actio-demo-fetch" "$NGINX_HTTP_URL/index.html" "$NGINX_HTTP_URL/pages/00001.html" \
  "$NGINX_HTTP_URL/64k" "$NGINX_HTTP_URL/missing" "http://127.0.0.1:1/"
echo
echo "== db: a parameterized query, COPY, a transaction =="
"$build/demos/actio-demo-db" "$PG_DSN"

echo
echo "== pipeline: $pages pages and a few bad URLs, fetched, saved, recorded =="
{
  for ((i = 0; i < pages; i++)); do printf '%s/pages/%05d.html\n' "$NGINX_HTTP_URL" "$i"; done
  echo "$NGINX_HTTP_URL/pages/no-such-page.html" # 404
  echo "http://127.0.0.1:1/"                     # connection refused
  echo "ht!tp://not a url"                       # malformed
} > "$work/urls.txt"
rc=0
"$build/demos/actio-pipeline" --dsn "$PG_DSN" --out "$work/out" --concurrency 32 \
  --timeout 10000 "$work/urls.txt" || rc=$?

echo
echo "== the table, by status =="
"$PG_BIN/psql" -X "$PG_DSN" -c "
  SELECT status, count(*) AS urls, pg_size_pretty(sum(bytes)) AS bytes,
         round(avg(latency_ms)::numeric, 2) AS avg_ms, min(error) AS an_error
  FROM actio_pipeline GROUP BY status ORDER BY status"
echo "saved: $(find "$work/out" -name '*.body' | wc -l) files in $work/out (removed on exit)"

cat <<EOF

== your own URLs and database ==
  $build/demos/actio-pipeline --dsn 'host=HOST port=5432 dbname=DB user=USER' \\
      --out ./pages --concurrency 32 --timeout 30000 urls.txt
One URL a line in urls.txt (or - to read standard input). Rows go to the table
actio_pipeline (made if missing), one per URL, under the run_id the summary
prints; bodies of answers below 400 go to ./pages/<line>.body.
  psql 'host=HOST dbname=DB user=USER' -c 'SELECT status, count(*) FROM actio_pipeline GROUP BY 1'
Build your own: include <actio.h>, link with \`pkg-config --libs actio\` after
\`cmake --install $build\`; the demos are in demos/, the API tour in README.md.
EOF
exit "$rc"
