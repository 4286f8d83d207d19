#!/usr/bin/env bash
# bench_from_clone.sh: the repository stands alone: a clone of its committed HEAD runs scripts/bench.sh --quick to the end.
#   tests/perf/bench_from_clone.sh SOURCE_DIR
# Clones SOURCE_DIR into a new temporary folder with nothing beside it (no
# ../shared, no services, no BENCH_* settings from the caller), runs
# scripts/bench.sh --quick there, and checks that it exits 0 and that every
# workload has a JSON line from actio with ok > 0. Uncommitted changes are
# not in the clone: commit first. Nothing is written to SOURCE_DIR; the
# services and the folder go away on every exit, a failure or a time-out too.
# Exit status: 0 pass, 1 fail, 77 skip (SOURCE_DIR is not a git checkout).
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 SOURCE_DIR" >&2; exit 2; }
SRC=$1
# Under ctest's own limit (330 s in tests/perf/CMakeLists.txt), so that the
# cleanup below always gets to run.
LIMIT=${BENCH_FROM_CLONE_LIMIT:-600}

if ! git -C "$SRC" rev-parse --verify -q HEAD >/dev/null; then
  echo "SKIP: $SRC is not a git checkout with a commit" >&2
  exit 77
fi

tmp=$(mktemp -d /tmp/actio-clone-XXXXXX)
# Beside $tmp, not in it: the clone, $tmp/actio, has nothing beside it.
svc=$tmp-services log=$tmp.log
tpid= # timeout's, the leader of bench.sh's process group
cleanup() {
  local rc=$?
  # Stopped from outside (ctest, ^C): end bench.sh's whole group first, so
  # that nothing goes on using the services and folders removed below.
  if [ -n "$tpid" ] && kill -0 "$tpid" 2>/dev/null; then
    kill -TERM -- "-$tpid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$tpid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$tpid" 2>/dev/null || true
  fi
  # bench.sh stops its services itself; this is for when it could not (killed).
  if [ -f "$tmp/actio/bench/services.sh" ]; then
    bash "$tmp/actio/bench/services.sh" stop "$svc" >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp" "$svc" "$log"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

git clone -q --no-hardlinks "$SRC" "$tmp/actio"
cd "$tmp/actio"
echo "clone of $(git rev-parse --short HEAD) in $tmp/actio"

# Nothing from the caller's environment may stand in for what the clone must
# bring: services, peers, an output place.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^BENCH_' || true)
export BENCH_SERVICES_DIR=$svc

# timeout leads a process group of its own and, at the limit, signals all of
# it; bench.sh then stops its services on the way out, and the trap above
# catches what is left. In the background, so that a signal to this script
# runs the trap at once rather than after bench.sh.
rc=0
timeout -k 20 "$LIMIT" bash scripts/bench.sh --quick > "$log" 2>&1 &
tpid=$!
wait "$tpid" || rc=$?
tpid=
if [ $rc -ne 0 ]; then
  tail -n 60 "$log" >&2
  [ $rc -eq 124 ] && fail "scripts/bench.sh --quick did not finish in ${LIMIT}s"
  fail "scripts/bench.sh --quick exited $rc"
fi
sed -n '/^== report/,$p' "$log"

# Every line is JSON, and every workload has actio's line with ok > 0.
/usr/bin/python3 - bench-results.jsonl <<'PY' || fail "bench-results.jsonl is short of a workload"
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
want = ["gather", "pingpong", "mailbox", "http_get", "db_point", "db_rows", "file_write_small",
        "file_read_small", "file_read_lines", "file_read_large", "remote_ask"]
missing = [w for w in want if not any(r["impl"] == "actio" and r["workload"] == w and r["ok"] > 0 for r in rows)]
if missing:
    sys.exit(f"no line from actio with ok > 0 for: {', '.join(missing)}")
print(f"{len(rows)} JSON lines; actio ran every workload: {', '.join(want)}")
PY
[ -s bench-results.md ] || fail "no bench-results.md"
[ -s bench-results.png ] || fail "no bench-results.png"
[ ! -e "$svc" ] || fail "bench.sh left its services folder $svc behind"
echo "PASS: bench.sh --quick ran from a bare clone"
