#!/usr/bin/env bash
# pipeline_test.sh: the pipeline demo end to end against local servers
# (nginx with pages, the fixture server, a throwaway PostgreSQL).
#   tests/pipeline_test.sh e2e   PIPELINE FIXTURE DEMO_DB DEMO_FETCH
#   tests/pipeline_test.sh chaos PIPELINE FIXTURE
#   tests/pipeline_test.sh crash PIPELINE FIXTURE
# e2e: every URL gets one row with the right status, size and SHA-256; every
# body below 400 is saved and equals the server's; nothing else is saved.
# The db and fetch demos run against the same servers.
# chaos: the fixture drops connections for some URLs and PostgreSQL is
# restarted while the pipeline runs: it finishes, and every URL is recorded
# once or listed as not recorded; no row is lost or duplicated.
# crash: the pipeline is killed with SIGKILL once rows are committed; every
# committed row names a file that is there with the row's size and SHA-256;
# a rerun under the same run_id skips those lines and records the rest,
# each line once.
# No timed assertion: every wait below is for a state (a line printed, rows
# in the table, a process gone). The one time limit is a hang guard on the
# pipeline's runs, below ctest's, so that the servers are stopped even then.
set -euo pipefail

[ $# -ge 3 ] || { echo "usage: $0 e2e|chaos PIPELINE FIXTURE [DEMO_DB DEMO_FETCH]" >&2; exit 2; }
MODE=$1 PIPELINE=$2 FIXTURE=$3
HERE=$(cd "$(dirname "$0")" && pwd)

work=$(mktemp -d /tmp/actio-pipe-XXXXXX)
chmod 755 "$work" # postgres (when run as root) must reach its folder
fixture_pid= slow_pid= pipeline_pid=
cleanup() {
  [ -z "$pipeline_pid" ] || kill "$pipeline_pid" 2>/dev/null || true
  for pid in $fixture_pid $slow_pid; do kill "$pid" 2>/dev/null || true; done
  bash "$HERE/pg_server.sh" stop "$work/pg" >/dev/null 2>&1 || true
  bash "$HERE/http_servers.sh" stop "$work/web" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# A sanitizer report fails the test even where the exit status would not.
clean_stderr() {
  if grep -E 'Sanitizer|runtime error:' "$1" >/dev/null; then
    cat "$1" >&2
    fail "sanitizer report in $1"
  fi
}

# The servers' scripts print their settings on stdout; a failed start fails
# the test, with what the script said on stderr.
start_server() { # name script
  local env
  env=$(bash "$HERE/$2" start "$work/$1" 2> "$work/$1.err") ||
    { cat "$work/$1.err" >&2; fail "$2 could not start its server"; }
  eval "$env"
}
start_server web http_servers.sh
start_server pg pg_server.sh
[ -n "${NGINX_HTTP_URL:-}" ] && [ -n "${PG_DSN:-}" ] || fail "the servers' settings are missing"
# Two fixture servers: one for the quick endpoints, one for requests held
# open on purpose. Apart, because libcurl makes a new request to a host wait
# for that host's pending connection when it might multiplex (the HTTP
# actor sets CURLOPT_PIPEWAIT), even over plain HTTP/1.1: a held request
# would hold up the quick ones. Each prints "PORT <n>" once it listens: read
# through a FIFO, which waits for that line or for the server's end.
start_fixture() { # name: writes its pid to NAME.pid and its base URL to NAME.url
  local word= port=
  mkfifo "$work/$1.port"
  "$FIXTURE" > "$work/$1.port" 2> "$work/$1.err" &
  echo $! > "$work/$1.pid"
  read -r word port < "$work/$1.port" || true
  [ "$word" = PORT ] || { cat "$work/$1.err" >&2; fail "the fixture server $1 did not start"; }
  echo "http://127.0.0.1:$port" > "$work/$1.url"
}
start_fixture fixture
fixture_pid=$(cat "$work/fixture.pid")
start_fixture slow
slow_pid=$(cat "$work/slow.pid")
FIX=$(cat "$work/fixture.url")
SLOW=$(cat "$work/slow.url")
psql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -At "$PG_DSN" "$@"; }

# Pages of random bytes, empty ones included.
make_pages() { # count
  python3 - "$NGINX_DOCROOT/p" "$1" <<'PY'
import os, random, sys
folder, n = sys.argv[1], int(sys.argv[2])
os.makedirs(folder, exist_ok=True)
rnd = random.Random(7)
for i in range(n):
    with open(f"{folder}/{i}", "wb") as f:
        f.write(os.urandom(0 if i % 100 == 0 else rnd.randint(1, 40000)))
PY
}

# Checks the table and the saved files against expect.tsv (line, url,
# status, body source: "file:PATH", "text:STRING", "az:N" for the fixture's
# a..z bodies, or "-" when no body is saved) for run $1. Lines listed in
# $2 (one number a line) may lack a row: the pipeline reported them.
check_run() { # run_id unrecorded_file
  psql -F $'\t' -c "SELECT line, url, status, bytes, coalesce(hash, ''), coalesce(error, ''),
                    coalesce(file, '') FROM actio_pipeline WHERE run_id = '$1' ORDER BY line" \
    > "$work/rows.tsv"
  python3 - "$work/expect.tsv" "$work/rows.tsv" "$2" "$work/out" <<'PY'
import hashlib, os, sys
expect_f, rows_f, unrec_f, out = sys.argv[1:]
expect = {}
for l in open(expect_f):
    line, url, status, body = l.rstrip("\n").split("\t")
    expect[int(line)] = (url, int(status), body)
unrecorded = {int(x) for x in open(unrec_f).read().split()}
rows, errors = {}, []
for l in open(rows_f):
    line, url, status, size, digest, error, path = l.rstrip("\n").split("\t")
    line = int(line)
    if line in rows:
        errors.append(f"line {line}: two rows")
    rows[line] = (url, int(status), int(size), digest, error, path)
for line in rows.keys() - expect.keys():
    errors.append(f"line {line}: a row for no URL")
for line in expect.keys() - rows.keys() - unrecorded:
    errors.append(f"line {line}: no row and not reported")
for line in unrecorded - expect.keys():
    errors.append(f"line {line}: reported, but not a URL line")
saved = set()
for line, (url, status, body) in expect.items():
    if line not in rows:
        continue
    rurl, rstatus, size, digest, error, path = rows[line]
    want = os.path.join(out, f"{line:06d}.body")
    if rurl != url:
        errors.append(f"line {line}: url {rurl!r}, want {url!r}")
    if rstatus != status:
        errors.append(f"line {line} {url}: status {rstatus}, want {status} ({error})")
    if body == "-":
        if not error or path or digest:
            errors.append(f"line {line} {url}: want an error and no file: {error!r} {path!r}")
        continue
    kind, _, arg = body.partition(":")
    data = (open(arg, "rb").read() if kind == "file" else arg.encode().decode("unicode_escape").encode() if kind == "text"
            else bytes(97 + i % 26 for i in range(int(arg))))
    saved.add(os.path.basename(want))
    if error or path != want:
        errors.append(f"line {line} {url}: error {error!r}, file {path!r}")
    elif size != len(data) or digest != hashlib.sha256(data).hexdigest():
        errors.append(f"line {line} {url}: {size} bytes {digest}, want {len(data)}")
    elif open(want, "rb").read() != data:
        errors.append(f"line {line} {url}: {want} differs from the server's body")
extra = set(os.listdir(out)) - saved if os.path.isdir(out) else set()
if extra:
    errors.append(f"files not expected in {out}: {sorted(extra)[:5]}")
for e in errors[:20]:
    print("  " + e, file=sys.stderr)
print(f"checked {len(expect)} URLs: {len(rows)} rows, {len(unrecorded)} reported not recorded,"
      f" {len(saved)} bodies saved; {len(errors)} problems")
sys.exit(1 if errors else 0)
PY
}

# The URL lines of the summary's "not recorded" list.
unrecorded_lines() { # log
  sed -n 's/^  not recorded: line \([0-9]*\) .*/\1/p' "$1"
}

e2e() {
  local DEMO_DB=$1 DEMO_FETCH=$2
  echo "== the db and fetch demos"
  "$DEMO_DB" "$PG_DSN" > "$work/db.out" 2> "$work/db.err" || { cat "$work/db.out" "$work/db.err"; fail "demo db"; }
  clean_stderr "$work/db.err"
  grep -q '^COPY: 3 rows$' "$work/db.out" || fail "demo db: no COPY"
  grep -q 'SQLSTATE 23514' "$work/db.out" || fail "demo db: no constraint error"
  "$DEMO_FETCH" "$NGINX_HTTP_URL/1k" "$FIX/status/404" "http://127.0.0.1:1/" > "$work/fetch.out" \
    2> "$work/fetch.err" || { cat "$work/fetch.out" "$work/fetch.err"; fail "demo fetch"; }
  clean_stderr "$work/fetch.err"
  grep -q '^3 pages, two at a time (map): 1 ok, 2 failed' "$work/fetch.out" || {
    cat "$work/fetch.out"
    fail "demo fetch: wrong outcome"
  }

  echo "== pipeline: pages, fixture endpoints and bad URLs"
  local n=400 i line=0 secret_line
  make_pages "$n"
  : > "$work/expect.tsv"
  {
    add() { # url status body [the line as written, if not the url]
      line=$((line + 1))
      printf '%s\n' "${4:-$1}"
      printf '%s\t%s\t%s\t%s\n' "$line" "$1" "$2" "$3" >> "$work/expect.tsv"
    }
    for ((i = 0; i < n; i++)); do add "$NGINX_HTTP_URL/p/$i" 200 "file:$NGINX_DOCROOT/p/$i"; done
    add "$NGINX_HTTP_URL/p/1" 200 "file:$NGINX_DOCROOT/p/1" # a repeat: a row of its own
    echo; line=$((line + 1))                                 # skipped, but counted
    echo "# a comment"; line=$((line + 1))
    add "$NGINX_HTTP_URL/p/2" 200 "file:$NGINX_DOCROOT/p/2" "  $NGINX_HTTP_URL/p/2 "$'\t' # trimmed
    add "$FIX/bytes/100000" 200 "az:100000"
    add "$FIX/chunked/30000" 200 "az:30000"
    add "$FIX/redirect/2" 200 'text:redirected\n'
    add "$FIX/status/201" 201 'text:status 201\n'
    add "$FIX/status/404" 404 -
    add "$FIX/status/500" 500 -
    add "$NGINX_HTTP_URL/p/missing" 404 -
    add "$FIX/drop" 0 -                       # closed short of its length
    add "$SLOW/delay/600000" 0 -              # past --timeout
    add "http://127.0.0.1:1/" 0 -             # refused
    add "ht!tp://bad" 0 -                     # malformed
    add "ftp://127.0.0.1/x" 0 -               # not http
    add "http://$(printf '%064d' 0).test/" 0 - # a DNS failure without a query
    # Refused, with secrets in the URL: the table and the output show it masked.
    add "http://alice:***@127.0.0.1:1/x?token=***&b=1" 0 - "http://alice:SECRETPW@127.0.0.1:1/x?token=TOPSECRET&b=1"
    secret_line=$line
    add "$NGINX_HTTPS_URL/1k" 0 -             # a certificate no CA vouches for
  } > "$work/urls.txt"
  local rc=0
  timeout 300 "$PIPELINE" --dsn "$PG_DSN" --out "$work/out" --concurrency 16 --timeout 4000 \
    --run-id e2e - < "$work/urls.txt" > "$work/pipeline.out" 2> "$work/pipeline.err" || rc=$?
  cat "$work/pipeline.out"
  clean_stderr "$work/pipeline.err"
  [ "$rc" -eq 0 ] || { cat "$work/pipeline.err"; fail "pipeline exit status $rc"; }
  unrecorded_lines "$work/pipeline.out" > "$work/unrecorded"
  [ ! -s "$work/unrecorded" ] || fail "URLs not recorded with the server up"
  grep -q "^summary: $((n + 17)) URLs, $((n + 6)) ok, 11 failed (0 not recorded)" \
    "$work/pipeline.out" || fail "wrong summary"
  check_run e2e "$work/unrecorded"
  # The secrets reached neither the table (its error text included) nor the
  # output, where the failure is listed with the URL masked.
  psql -c "SELECT line, error FROM actio_pipeline WHERE run_id = 'e2e'" > "$work/errors.txt"
  grep -q "ECONNREFUSED: GET http://alice:\*\*\*@127.0.0.1:1/x?token=\*\*\*&b=1: " "$work/errors.txt" ||
    fail "no masked error text for the URL with secrets"
  grep -q "failed: line $secret_line http://alice:\*\*\*@127.0.0.1:1/x?token=\*\*\*&b=1: ECONNREFUSED" \
    "$work/pipeline.out" || fail "the URL with secrets not listed, masked, among the failures"
  psql -c "SELECT * FROM actio_pipeline" | cat - "$work/pipeline.out" "$work/pipeline.err" |
    grep -E 'SECRETPW|TOPSECRET' && fail "a secret reached the table or the output"
  # A second run: rows of its own run_id, none of the first's touched.
  timeout 300 "$PIPELINE" --dsn "$PG_DSN" --out "$work/out" --timeout 4000 \
    --run-id again "$work/urls.txt" \
    > "$work/again.out" 2> "$work/again.err" || fail "second run: $(cat "$work/again.err")"
  clean_stderr "$work/again.err"
  [ "$(psql -c "SELECT count(*) FROM actio_pipeline WHERE run_id = 'e2e'")" = "$((n + 17))" ] ||
    fail "the second run changed the first one's rows"
  check_run again "$work/unrecorded"
}

# Writes urls.txt and expect.tsv: `hang` URLs the slow fixture holds until
# it stops (they keep a run open whatever the pace of the rest), then URL i
# of n as `pick i` adds it (add url status body).
held_list() { # n hang pick
  local i line=0
  : > "$work/expect.tsv"
  add() { # url status body
    line=$((line + 1))
    printf '%s\n' "$1"
    printf '%s\t%s\t%s\t%s\n' "$line" "$1" "$2" "$3" >> "$work/expect.tsv"
  }
  {
    for ((i = 0; i < $2; i++)); do add "$SLOW/delay/3600000" 0 -; done
    for ((i = 0; i < $1; i++)); do "$3" "$i"; done
  } > "$work/urls.txt"
}

chaos_pick() {
  if (($1 % 10 == 3)); then add "$FIX/drop" 0 -
  elif (($1 % 4 == 1)); then add "$FIX/delay/40" 200 'text:delayed\n'
  else add "$NGINX_HTTP_URL/p/$1" 200 "file:$NGINX_DOCROOT/p/$1"; fi
}

chaos() {
  echo "== pipeline under chaos: dropped connections, PostgreSQL restarted mid-run"
  local n=1200 hang=4
  make_pages "$n"
  # The held URLs keep the run open past the restart: it always happens
  # while the pipeline is running.
  held_list "$n" "$hang" chaos_pick
  local total=$((n + hang))
  timeout 540 "$PIPELINE" --dsn "$PG_DSN" --out "$work/out" --concurrency 16 --timeout 600000 \
    --retries 1 --run-id chaos "$work/urls.txt" > "$work/pipeline.out" 2> "$work/pipeline.err" &
  pipeline_pid=$!
  rows() { psql -c "SELECT count(*) FROM actio_pipeline WHERE run_id = 'chaos'"; }
  wait_rows() { # at least this many, while the pipeline runs
    until [ "$(rows)" -ge "$1" ]; do
      kill -0 "$pipeline_pid" 2>/dev/null || fail "the pipeline ended early: $(tail -n 5 "$work/pipeline.err")"
      sleep 0.1 # paces the polling
    done
  }
  wait_rows $((total / 4))
  echo "restarting PostgreSQL at $(rows) of $total rows"
  bash "$HERE/pg_server.sh" restart "$work/pg" > /dev/null 2>&1 || fail "restart failed"
  kill -0 "$pipeline_pid" 2>/dev/null || fail "the pipeline ended before the fixture stopped"
  echo "restarted at $(rows) rows"
  # Released now: the held URLs fail (connection closed, then refused) and
  # the run goes on without them.
  kill "$slow_pid"
  slow_pid=
  local rc=0
  wait "$pipeline_pid" || rc=$?
  pipeline_pid=
  [ "$rc" -ne 124 ] || fail "the pipeline did not finish (killed by the hang guard)"
  tail -n 3 "$work/pipeline.out"
  clean_stderr "$work/pipeline.err"
  unrecorded_lines "$work/pipeline.out" > "$work/unrecorded"
  if [ -s "$work/unrecorded" ]; then
    [ "$rc" -eq 1 ] || fail "URLs not recorded, yet exit status $rc"
  else
    [ "$rc" -eq 0 ] || { cat "$work/pipeline.err"; fail "pipeline exit status $rc"; }
  fi
  grep -q "^summary: $total URLs" "$work/pipeline.out" || fail "no summary"
  check_run chaos "$work/unrecorded"
}

crash_pick() {
  if (($1 % 50 == 7)); then add "$NGINX_HTTP_URL/p/missing$1" 404 -
  else add "$NGINX_HTTP_URL/p/$1" 200 "file:$NGINX_DOCROOT/p/$1"; fi
}

crash() {
  echo "== pipeline killed mid-run, then run again"
  local n=2000 hang=4
  make_pages "$n"
  # The held URLs: the first run is still running when it is killed.
  held_list "$n" "$hang" crash_pick
  local total=$((n + hang))
  "$PIPELINE" --dsn "$PG_DSN" --out "$work/out" --concurrency 32 --timeout 600000 \
    --run-id crash "$work/urls.txt" > "$work/first.out" 2> "$work/first.err" &
  pipeline_pid=$!
  rows() { psql -c "SELECT count(*) FROM actio_pipeline WHERE run_id = 'crash'"; }
  until [ "$(rows)" -ge $((n / 10)) ]; do
    kill -0 "$pipeline_pid" 2>/dev/null || fail "the pipeline ended early: $(tail -n 5 "$work/first.err")"
    sleep 0.05 # paces the polling
  done
  kill -KILL "$pipeline_pid"
  wait "$pipeline_pid" 2>/dev/null || true
  pipeline_pid=
  clean_stderr "$work/first.err"
  local committed
  committed=$(rows)
  echo "killed at $committed of $total rows"
  [ "$committed" -lt "$total" ] || fail "the pipeline finished before it was killed"
  # Every committed row: its file is there, with its size and SHA-256.
  psql -F $'\t' -c "SELECT line, bytes, coalesce(hash, ''), coalesce(file, '') FROM actio_pipeline
                    WHERE run_id = 'crash' AND error IS NULL" > "$work/committed.tsv"
  python3 - "$work/committed.tsv" <<'PY' || fail "a committed row without its file"
import hashlib, sys
bad = n = 0
for l in open(sys.argv[1]):
    line, size, digest, path = l.rstrip("\n").split("\t")
    n += 1
    try:
        data = open(path, "rb").read()
    except OSError as e:
        print(f"  line {line}: {path}: {e}", file=sys.stderr)
        bad += 1
        continue
    if len(data) != int(size) or hashlib.sha256(data).hexdigest() != digest:
        print(f"  line {line}: {path}: {len(data)} bytes, want {size} with {digest}", file=sys.stderr)
        bad += 1
print(f"checked {n} committed rows with a file: {bad} problems")
sys.exit(1 if bad else 0)
PY
  # The held URLs fail at once now (refused); the rest is done again.
  kill "$slow_pid"
  slow_pid=
  local rc=0
  timeout 300 "$PIPELINE" --dsn "$PG_DSN" --out "$work/out" --concurrency 32 --timeout 600000 \
    --run-id crash "$work/urls.txt" > "$work/again.out" 2> "$work/again.err" || rc=$?
  tail -n 1 "$work/again.out"
  clean_stderr "$work/again.err"
  [ "$rc" -eq 0 ] || { cat "$work/again.err"; fail "rerun exit status $rc"; }
  grep -q "^run crash: $((total - committed)) URLs, .* ($committed more recorded by an earlier run: skipped)" \
    "$work/again.out" || { head -n 1 "$work/again.out"; fail "the rerun did not skip the $committed lines recorded"; }
  : > "$work/unrecorded"
  check_run crash "$work/unrecorded"
}

case $MODE in
  e2e) [ $# -eq 5 ] || fail "e2e needs DEMO_DB and DEMO_FETCH"; e2e "$4" "$5" ;;
  chaos) chaos ;;
  crash) crash ;;
  *) fail "unknown mode $MODE" ;;
esac
echo "PASS: pipeline $MODE"
