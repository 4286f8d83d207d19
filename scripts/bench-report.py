#!/usr/bin/python3
"""bench-report.py: the report of scripts/bench.sh, from its JSON lines.

  scripts/bench-report.py bench-results.jsonl [--md F.md] [--png F.png] [--note TEXT]

Prints one table of ratios (actio's per_sec / the other's, each side's median
over the rounds; the spread is the lowest and highest ratio of one round's
pair), writes it as markdown (--md) and draws it with gnuplot (--png): the
top panel is actio against the strongest Python peer of each workload on a
log scale, the bottom one actio against the limits and C baselines on a
linear scale with a line at 1.0; whiskers show the spread. Targets are those
of the issues, held against the medians. The pipeline's concurrency sweep
(rows tagged sweep) gets a chart of its own beside the --png one:
NAME-pipeline-sweep.png, URLs/s against C."""
import argparse, datetime, json, os, shutil, statistics, subprocess, sys, tempfile

ap = argparse.ArgumentParser()
ap.add_argument("jsonl")
ap.add_argument("--md")
ap.add_argument("--png")
ap.add_argument("--note", default="")
args = ap.parse_args()

rows = [json.loads(l) for l in open(args.jsonl) if l.strip()]
stamp = datetime.datetime.fromtimestamp(os.path.getmtime(args.jsonl), datetime.timezone.utc)
cpu = ""
try:
    cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
except (OSError, StopIteration):
    pass
machine = f"{os.cpu_count()} cores" + (f", {cpu}" if cpu else "") + f", {os.uname().nodename}"
# Rows from before bench.sh tagged rounds count as one round each.
rounds = len({r["round"] for r in rows if "round" in r}) or \
    sum(1 for r in rows if r["impl"] == "actio" and r["workload"] == "gather")
how = f"median of {rounds} round{'s' if rounds != 1 else ''}" if rounds else ""
note = "; ".join(x for x in (args.note, how) if x)


def path_of(r):  # http_get rows: bench.sh tags each with the path
    if "path" in r:
        return r["path"]
    per = r.get("bytes", 0) // max(r.get("ok", 1), 1)
    return {1024: "/1k", 65536: "/64k"}.get(per)


def pick(workload, impl, **kw):
    """impl on workload over the rounds: per_sec is the median of its clean
    runs, by_round each round's figure; None without a clean run."""
    got = [r for r in rows
           if r["workload"] == workload and r["impl"] == impl and r.get("errors", 0) == 0 and r.get("ok", 0) > 0
           and all((path_of(r) if k == "path" else r.get(k)) == v for k, v in kw.items())]
    if not got:
        return None
    return dict(got[0], per_sec=statistics.median(r["per_sec"] for r in got),
                by_round={r.get("round", ("untagged", i)): r["per_sec"] for i, r in enumerate(got)})


def spread(a, b):
    """The lowest and highest of the per-round ratios, over the rounds where
    both sides ran clean (they met the same noise); None below two."""
    if not a or not b:
        return None
    both = [a["by_round"][k] / b["by_round"][k] for k in a["by_round"] if k in b["by_round"]]
    return (min(both), max(both)) if len(both) >= 2 else None


def si(x):  # three significant digits: 15.4M, 377k, 9.10k
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1, "")):
        if x >= div or div == 1:
            v = x / div
            return (f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}") + suf


def rate(r, unit):
    if r is None:
        return "-"
    if unit == "B":
        return f"{r['per_sec'] / 1e9:.2f} GB/s"
    return si(r["per_sec"]) + "/s"


def times(x):
    return f"{x:.0f}x" if x >= 100 else f"{x:.1f}x" if x >= 10 else f"{x:.2f}x"


# The comparisons. Each group: a label, actio's row, then the others as
# (impl, selector, kind, display name, target); kind is "peer" (Python),
# "limit" (what no client beats here) or "base" (a C baseline). peer_target
# goes to the strongest peer: the strongest configuration is the one to beat.
LIM, BASE, PEER = "limit", "base", "peer"


def peers(*impls, **kw):
    return [(i, kw, PEER, i, None) for i in impls]


def n_of(workload, **kw):
    r = pick(workload, "actio", **kw)
    if not r:
        return "?"
    n = r["n"]
    return next((f"{n / d:g}{s}" for d, s in ((1e6, "M"), (1e3, "k")) if n >= d), str(n))


groups = []
groups.append(dict(label=f"gather, {n_of('gather')} futures, fan-out 1000", short="gather",
                   workload="gather", sel={}, peer_target=20,
                   others=peers("asyncio+uvloop", "asyncio")))
groups.append(dict(label=f"pingpong, {n_of('pingpong')} round trips", short="pingpong",
                   workload="pingpong", sel={}, peer_target=10,
                   others=peers("asyncio+uvloop", "asyncio") +
                   [("threads", {}, LIM, "bare two-thread hand-off", 0.5)]))
groups.append(dict(label=f"cq, {n_of('cq')} completions from 2 threads into a loop", short="cq",
                   workload="cq", sel=dict(producers=2), peer_target=10,
                   others=peers("asyncio+uvloop", "asyncio", producers=2)))
groups.append(dict(label=f"timers, {n_of('timers')} armed and fired (call_later)", short="timers",
                   workload="timers", sel={}, peer_target=10,
                   others=peers("asyncio+uvloop", "asyncio")))
for p, c, tgt in ((1, 1, 2), (2, 2, 2), (8, 4, 2), (16, 2, 2)):
    groups.append(dict(label=f"mailbox, {p} producers, {c} consumers", short=f"mailbox {p}p/{c}c",
                       workload="mailbox", sel=dict(producers=p, consumers=c),
                       others=[("mutex_queue", dict(producers=p, consumers=c), BASE, "mutex+condvar queue", tgt)]))
for path in ("/1k", "/64k"):
    # via=None: straight to nginx, not the rows through the proxy
    groups.append(dict(label=f"http_get {path}, C=64", short=f"http_get {path}", workload="http_get",
                       sel=dict(path=path, concurrency=64, via=None), peer_target=4,
                       others=peers("aiohttp+uvloop", "aiohttp", path=path, concurrency=64, via=None) +
                       [("libcurl-multi", dict(path=path, concurrency=64, via=None), LIM,
                         "bare libcurl multi loop", 0.95),
                        ("wrk", dict(path=path), LIM, "wrk", None)]))
    groups.append(dict(label=f"http_get {path}, C=128", short=f"http_get {path} C=128", workload="http_get",
                       sel=dict(path=path, concurrency=128),
                       others=[("libcurl-multi", dict(path=path, concurrency=128), LIM,
                                "bare libcurl multi loop", 0.95)]))
for via, name, short, tgt in (("proxy", "an nginx forward proxy", "proxied", 4), ("squid", "squid", "via squid", None)):
    groups.append(dict(label=f"http_get /1k through {name}, C=64", short=f"http_get /1k {short}",
                       workload="http_get", sel=dict(path="/1k", concurrency=64, via=via), peer_target=tgt,
                       others=peers("aiohttp+uvloop", path="/1k", concurrency=64, via=via) +
                       [("aiohttp-keepalive+uvloop", dict(path="/1k", concurrency=64, via=via), PEER,
                         "aiohttp+uvloop, proxy kept alive (3.11's way)", None),
                        ("libcurl-multi", dict(path="/1k", concurrency=64, via=via), LIM,
                         "bare libcurl multi loop, same proxy", None)]))
groups.append(dict(label="http_get 1 MiB JSON gzipped (decoded bytes), C=16", short="http_get gzip",
                   workload="http_get", sel=dict(path="/gz/1m.json", concurrency=16), unit="B",
                   decoded=True, others=peers("aiohttp+uvloop", path="/gz/1m.json", concurrency=16)))
groups.append(dict(label="http_post 64 KiB bodies, C=64", short="http_post 64k", workload="http_post",
                   sel=dict(concurrency=64), peer_target=4,
                   others=peers("aiohttp+uvloop", concurrency=64)))
groups.append(dict(label=f"remote_ask over NATS, {n_of('remote_ask')} requests, C=64, 2 responders",
                   short="remote_ask", workload="remote_ask", sel=dict(concurrency=64), peer_target=3,
                   others=peers("nats.js", concurrency=64) +
                   [("cnats", dict(concurrency=64), LIM, "bare cnats loop, shared inbox", 0.8)]))
groups.append(dict(label=f"jobs over JetStream, {n_of('jobs')} jobs, replicas 3, batch 32",
                   short="jobs", workload="jobs", sel=dict(replicas=3),
                   others=[("cnats", dict(replicas=3), LIM, "bare cnats publish and pull consumer", 0.8)]))
groups.append(dict(label="db_point, C=8", short="db_point C=8", workload="db_point",
                   sel=dict(concurrency=8, pipeline=False),
                   others=peers("asyncpg+uvloop", "asyncpg") +
                   [("pgbench", dict(concurrency=8), LIM, "pgbench -c 8", 0.9)]))
groups.append(dict(label="db_point, C=16", short="db_point C=16", workload="db_point",
                   sel=dict(concurrency=16, pipeline=False),
                   others=[("pgbench", dict(concurrency=16), LIM, "pgbench -c 16", 0.9)]))
groups.append(dict(label="db_point pipelined, 8 conns, C=400", short="db_point pipelined C=400",
                   workload="db_point", sel=dict(concurrency=400, pipeline=True), peer_target=5,
                   others=peers("asyncpg+uvloop") +
                   [("pgbench-pipeline", {}, LIM, "pgbench -c 8, 50-query pipelines", 0.7)]))
groups.append(dict(label="db_point pipelined, 8 conns, C=8", short="db_point pipelined C=8",
                   workload="db_point", sel=dict(concurrency=8, pipeline=True),
                   others=peers("asyncpg+uvloop") + [("pgbench", dict(concurrency=8), LIM, "pgbench -c 8", None)]))
groups.append(dict(label="db_rows (100 rows), C=8", short="db_rows C=8", workload="db_rows",
                   sel=dict(concurrency=8),
                   others=peers("asyncpg+uvloop", "asyncpg", concurrency=8) +
                   [("pgbench", dict(concurrency=8), LIM, "pgbench -c 8", 0.9)]))
groups.append(dict(label="db_rows (100 rows), C=16", short="db_rows C=16", workload="db_rows",
                   sel=dict(concurrency=16),
                   others=[("pgbench", dict(concurrency=16), LIM, "pgbench -c 16", 0.9)]))
groups.append(dict(label=f"db_executemany, {n_of('db_executemany')} rows in batches of 50, C=8",
                   short="db_executemany", workload="db_executemany", sel=dict(concurrency=8),
                   peer_target=2, others=peers("asyncpg+uvloop", "asyncpg", concurrency=8) +
                   [("pgbench-pipeline", {}, LIM, "pgbench -c 8, 50 INSERTs per pipeline, one sync",
                     0.7)]))
groups.append(dict(label=f"db_stream, {n_of('db_stream')} rows of (g, md5(g))", short="db_stream",
                   workload="db_stream", sel={}, peer_target=3,
                   others=peers("asyncpg+uvloop", "asyncpg") +
                   [("psql-copy", {}, LIM, "psql COPY TO STDOUT > /dev/null", 0.5)]))
files = n_of("file_write_small")
groups.append(dict(label=f"file_write_small, {files} x 4 KiB, C=64", short="file_write_small",
                   workload="file_write_small", sel={}, peer_target=10,
                   others=peers("aiofiles+uvloop", "aiofiles")))
groups.append(dict(label=f"file_read_small, {files} x 4 KiB, C=64", short="file_read_small",
                   workload="file_read_small", sel={}, peer_target=10,
                   others=peers("aiofiles+uvloop", "aiofiles")))
groups.append(dict(label=f"file_read_lines, {n_of('file_read_lines')} lines", short="file_read_lines",
                   workload="file_read_lines", sel={}, peer_target=1000,
                   others=peers("aiofiles+uvloop", "aiofiles") + [("wc -l", {}, LIM, "wc -l", 0.5)]))
big = pick("file_read_large", "actio")
groups.append(dict(label="file_read_large, " + (f"{big['n'] / 2**20:.0f} MiB" if big else "?") + ", warm cache",
                   short="file_read_large", workload="file_read_large", sel={}, unit="B",
                   others=[("cat", {}, LIM, "cat > /dev/null", 0.9)]))

# Both sides at each C they both ran (bench.sh's PIPECMP); the sweep's runs
# are actio's alone.
compared = {(r["urls"], r["concurrency"]) for r in rows
            if r["workload"] == "pipeline" and r["impl"] != "actio" and "urls" in r}
for urls, c in sorted(compared):
    fs = next((r["fs"] for r in rows if r["workload"] == "pipeline" and r.get("urls") == urls and "fs" in r), "?")
    groups.append(dict(label=f"pipeline, {urls} demo pages, C={c}, bodies durable on {fs}",
                       short=f"pipeline {urls} C={c}", workload="pipeline",
                       sel=dict(urls=urls, concurrency=c, sweep=None), peer_target=5,
                       others=peers("python-pipeline+uvloop", urls=urls, concurrency=c)))

def decoded(r):
    """r's rate in decoded bytes per second (its bodies' bytes per request)."""
    if r is None:
        return None
    per = r.get("bytes", 0) / max(r.get("ok", 1), 1)
    return dict(r, per_sec=r["per_sec"] * per, by_round={k: v * per for k, v in r["by_round"].items()})


# One line per comparison: (group, actio row, label, kind, other row, ratio, target, strongest peer?)
# A workload with no row at all was not run (bench.sh --only): left out.
table, missing = [], []
for g in groups:
    if not any(r["workload"] == g["workload"] for r in rows):
        continue
    scale = decoded if g.get("decoded") else (lambda r: r)
    a = scale(pick(g["workload"], "actio", **g["sel"]))
    found = [(o, scale(pick(g["workload"], o[0], **o[1]))) for o in g["others"]]
    ps = [(o, b) for o, b in found if o[2] == PEER and b]
    strongest = max(ps, key=lambda ob: ob[1]["per_sec"])[0] if ps else None
    for o, b in found:
        impl, sel, kind, name, target = o
        if kind == PEER and o is strongest:
            target = g.get("peer_target")
        ratio = a["per_sec"] / b["per_sec"] if a and b else None
        sp = spread(a, b)
        for who, got in (("actio", a), (impl, b)):
            what = f"{who} on {g['label']}"
            if got is None and what not in missing:
                missing.append(what)
        table.append(dict(g=g, a=a, name=name + {LIM: " (limit)", BASE: " (baseline)", PEER: ""}[kind],
                          short=name, kind=kind, b=b, ratio=ratio, spread=sp, target=target,
                          strongest=o is strongest))


def target_text(t, ratio, md=False):
    if t is None:
        return ""
    met = ratio is not None and ratio >= t
    word = ("met" if met else "**missed**" if md else "MISSED") if ratio is not None else "?"
    return f"{t:g}x {word}"


def spread_text(sp):
    return f"{times(sp[0])}-{times(sp[1])}" if sp else ""


cols = ("workload", "actio", "compared with", "theirs", "ratio", "spread", "target")
lines, prev = [], None
for t in table:
    unit = t["g"].get("unit")
    first = t["g"] is not prev
    prev = t["g"]
    lines.append((t["g"]["label"] if first else "", rate(t["a"], unit) if first else "", t["name"],
                  rate(t["b"], unit), times(t["ratio"]) if t["ratio"] else "-", spread_text(t["spread"]),
                  target_text(t["target"], t["ratio"])))
w = [max(len(c), *(len(l[i]) for l in lines)) for i, c in enumerate(cols)]
right = {1, 3, 4, 5}
def fmt(cells):
    return "  ".join(c.rjust(w[i]) if i in right else c.ljust(w[i]) for i, c in enumerate(cells)).rstrip()
head = f"actio benchmarks, {stamp:%Y-%m-%d %H:%M} UTC; {machine}" + (f"; {note}" if note else "")
print(head)
print("ratio = actio's median per_sec / the other's (higher: actio faster); spread: the lowest and highest "
      "ratio within one round; (limit): what no client beats here")
print(fmt(cols))
print(fmt(["-" * x for x in w]))
for l in lines:
    print(fmt(l))
if missing:
    print("\nno clean run (failed, errors, or not run) of: " + "; ".join(missing))

# Memory per pending request: bytes, lower is better (targets from the issue).
mem = []
# The peer: (impl, what it keeps pending); a timer's is a call_later handle.
for workload, label, target, peer_impl, peer_what in (
        ("pending_ask", "a pending ask", 128, "asyncio", "a pending task"),
        ("pending_query", "a queued query", 256, "asyncio", "a pending task"),
        ("pending_http", "a queued HTTP request", 512, "asyncio", "a pending task"),
        ("pending_timer", "a pending timer (delayed send)", 64, "asyncio+uvloop", "a call_later handle")):
    got = [r for r in rows if r["workload"] == workload and r["impl"] == "actio" and "bytes_per" in r]
    if got:
        b = statistics.median(r["bytes_per"] for r in got)
        peer = [r for r in rows if r["workload"] == workload and r["impl"] == peer_impl and "bytes_per" in r]
        pb = (f"{peer_impl}: {peer_what} {statistics.median(r['bytes_per'] for r in peer):.0f} B"
              if peer else None)
        mem.append((label, b, pb, target))  # held to the target as measured, not rounded
if mem:
    print("\nmemory per pending request (resident-set growth / N, median):")
    for label, b, pb, target in mem:
        print(f"  {label}: {b:.1f} B" + (f" ({pb})" if pb else "") +
              f"; target at most {target} B: {'met' if b <= target else 'MISSED'}")

# A stop-now of queued GETs: its time against the queue's length (linear
# when N requests take about 4 times as long as N/4).
stops = {}
for workload in ("pending_http", "stop_http"):
    got = [r for r in rows if r["workload"] == workload and "stop_ms" in r]
    if got:
        stops[workload] = (got[0]["n"], statistics.median(r["stop_ms"] for r in got))
stop_text = None
if len(stops) == 2:
    (n1, t1), (n4, t4) = stops["pending_http"], stops["stop_http"]
    stop_text = (f"a stop-now of {n1} queued GETs took {t1:.1f} ms, of {n4} {t4:.1f} ms "
                 f"({t1 / t4:.1f}x for {n1 / n4:.0f}x the queue; median)" if t4 > 0 else None)
    if stop_text:
        print("\n" + stop_text)

if args.md:
    with open(args.md, "w") as f:
        f.write(f"## Measured {stamp:%Y-%m-%d} ({machine}" + (f"; {note}" if note else "") + ")\n\n")
        f.write("`scripts/bench.sh`: the ratio is actio's per-second rate over the other's, the median of each "
                "over the rounds; the spread is the lowest and highest ratio within one round (each round runs "
                "both sides back to back); a limit is what no client can beat on this machine.\n\n")
        f.write("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n")
        prev = None
        for t in table:
            unit = t["g"].get("unit")
            first = t["g"] is not prev
            prev = t["g"]
            name = t["name"].replace("wc -l", "`wc -l`").replace("cat > /dev/null", "`cat > /dev/null`")
            f.write("| " + " | ".join((t["g"]["label"] if first else "", rate(t["a"], unit) if first else "", name,
                                       rate(t["b"], unit), times(t["ratio"]) if t["ratio"] else "-",
                                       spread_text(t["spread"]),
                                       target_text(t["target"], t["ratio"], md=True))) + " |\n")
        if missing:
            f.write("\nNo clean run (failed, errors, or not run) of: " + "; ".join(missing) + ".\n")
        if mem:
            f.write("\n| memory per pending request | actio | Python peer | target |\n|---|---|---|---|\n")
            for label, b, pb, target in mem:
                f.write(f"| {label} | {b:.1f} B | " + (pb if pb else "-") +
                        f" | at most {target} B: {'met' if b <= target else '**missed**'} |\n")
        if stop_text:
            f.write(f"\n{stop_text[0].upper() + stop_text[1:]}.\n")
    print(f"\nmarkdown table: {args.md}")

# The pipeline's concurrency sweep: each C's median and its range.
sweep = {}
for r in rows:
    if r["workload"] == "pipeline" and r.get("sweep") and r.get("errors", 0) == 0 and r.get("ok", 0) > 0:
        sweep.setdefault((r["urls"], r["concurrency"]), []).append(r["per_sec"])
if sweep:
    print("\npipeline concurrency sweep (URLs/s: median, lowest-highest over the rounds):")
    for (urls, c), v in sorted(sweep.items()):
        print(f"  {urls} URLs, C={c}: {statistics.median(v):.0f} ({min(v):.0f}-{max(v):.0f})")

# The pipeline round by round, at each C both sides ran: the rate and the CPU a URL of the
# measured process (bench.sh's cpu_us_per_url; steadier than the rate when
# other work shares the cores), so that a drift across the rounds shows.
per_round = {}
for r in rows:
    if r["workload"] == "pipeline" and not r.get("sweep") and "round" in r:
        cpu = f", {r['cpu_us_per_url']:.0f} us CPU a URL" if "cpu_us_per_url" in r else ""
        per_round.setdefault((r.get("urls"), r["concurrency"], r["impl"]), []).append(f"{r['per_sec']:.0f}/s{cpu}")
if per_round:
    print("\npipeline round by round (URLs/s, and the CPU a URL of that process):")
    for (urls, c, impl), v in sorted(per_round.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1], kv[0][2])):
        print(f"  {urls} URLs, C={c}, {impl}: " + "; ".join(v))

if not args.png:
    sys.exit(0)
if not shutil.which("gnuplot"):
    print("no chart: gnuplot is not installed (scripts/setup.sh installs gnuplot-nox)", file=sys.stderr)
    sys.exit(1)

if sweep:
    sweep_png = os.path.splitext(args.png)[0] + "-pipeline-sweep.png"
    data = "\n".join(f"{c}\t{statistics.median(v):.6g}\t{min(v):.6g}\t{max(v):.6g}"
                     for (urls, c), v in sorted(sweep.items()))
    urls = sorted({u for u, _ in sweep})
    res = subprocess.run(["gnuplot"], input=f"""
set terminal pngcairo size 900,560 font "DejaVu Sans,10"
set output "{sweep_png}"
set datafile separator "\\t"
set title "actio-pipeline: {', '.join(map(str, urls))} demo pages, bodies durable, rows in batches\\n{stamp:%Y-%m-%d %H:%M} UTC; {machine.replace('"', '')}; median and range of the rounds" font ",11"
set logscale x 2
set xrange [6:680]
set xtics (8, 16, 32, 64, 128, 256, 512)
set xlabel "URLs in flight (--concurrency)"
set ylabel "URLs/s"
set yrange [0:*]
set grid lc rgb "#dddddd"
set key off
$s << EOD
{data}
EOD
plot $s using 1:2:3:4 with yerrorlines lw 2 pt 7 lc rgb "#4A7FC1", $s using 1:2:(sprintf("%.0f", $2)) with labels offset 0,1.2 font ",9"
""", capture_output=True, text=True)
    if res.returncode != 0:
        print("gnuplot failed on the sweep:\n" + res.stderr, file=sys.stderr)
        sys.exit(1)
    print(f"sweep chart: {os.path.abspath(sweep_png)}")

GREEN, RED, BLUE = 0x2E8B57, 0xD9534F, 0x4A7FC1
def color(t):
    if t["target"] is None:
        return BLUE
    return GREEN if t["ratio"] >= t["target"] else RED

top = [t for t in table if t["strongest"] and t["ratio"]]
bottom = [t for t in table if t["kind"] != PEER and t["ratio"]]
def reach(t):  # the rightmost of a bar and its whisker
    return max(t["ratio"], t["spread"][1]) if t["spread"] else t["ratio"]
def block(name, items, label, label_x):
    # columns: row, ratio, target, label, value text, colour, value's x,
    # spread low, spread high (NaN: no whisker)
    out = [f"${name} << EOD"]
    for i, t in enumerate(items):
        tg = "NaN" if t["target"] is None else f"{t['target']:g}"
        lo_, hi_ = (f"{x:.6g}" for x in t["spread"]) if t["spread"] else ("NaN", "NaN")
        out.append("\t".join((str(i), f"{t['ratio']:.6g}", tg, label(t), times(t["ratio"]), str(color(t)),
                              f"{label_x(reach(t), t['target']):.6g}", lo_, hi_)))
    return "\n".join(out + ["EOD"])
top_label = bot_label = lambda t: f"{t['g']['short']} vs {t['short']}"
labels = [top_label(t) for t in top] + [bot_label(t) for t in bottom]
lmargin = max([len(l) for l in labels] + [20]) * 0.9 + 2

# where a bar's value goes: right of the bar, or of its target mark when that
# sits just right of the bar (where the text would be)
def top_x(r, t):
    end = max(r, 1)
    if t and end <= t <= end * 2.2:
        end = t
    return end * 1.12
def bot_x(r, t):
    span = max(1.25, hi2 * 1.18)
    end = r
    if t and r <= t <= r + span * 0.08:
        end = t
    return end + span * 0.015
row_px, head_px, panel_px = 26, 80, 100
H = head_px + panel_px * 2 + row_px * (max(len(top), 1) + max(len(bottom), 1))
Wpx = 1300
h_top = (panel_px + row_px * max(len(top), 1)) / H
h_bot = (panel_px + row_px * max(len(bottom), 1)) / H
hi = max([reach(t) for t in top] + [10])
lo = min([t["spread"][0] if t["spread"] else t["ratio"] for t in top] + [1])
hi2 = max([reach(t) for t in bottom] + [t["target"] for t in bottom if t["target"]] + [1.0])
gp = f"""
set terminal pngcairo size {Wpx},{H} font "DejaVu Sans,10" enhanced
set output "{args.png}"
set datafile separator "\\t"
set style fill solid 0.85 border lc rgb "#333333"
set multiplot title "{{/:Bold=14 actio benchmarks}}   {stamp:%Y-%m-%d %H:%M} UTC\\n{machine.replace('"', '')}{('; ' + note) if note else ''}\\nratio = actio's rate / the other's, the median of the rounds of each; whiskers: the lowest and highest ratio of one round" font ",11"
set lmargin {lmargin:.0f}
set rmargin 4
set ytics scale 0 font ",10" noenhanced
set grid xtics mxtics lc rgb "#dddddd"
set key outside bottom center horizontal font ",9" samplen 2 spacing 1
set arrow 1 from 1, graph 0 to 1, graph 1 nohead lw 2 lc rgb "#222222" front
set label 1 "1x" at 1, graph 1 offset -1,0.6 font ",9" front

# top: against the strongest Python peer, log scale
set size 1,{h_top:.4f}
set origin 0,{h_bot:.4f}
set tmargin 3
set bmargin 4
set title "actio / strongest Python peer (asyncio, aiohttp, asyncpg, aiofiles; plain or uvloop), log scale" font ",12"
set logscale x 10
set xrange [{min(lo / 2, 0.5):g}:{hi * 6:g}]
set format x "%gx"
set mxtics 10
set yrange [{len(top) - 0.5}:-0.6]
{block("top", top, top_label, top_x)}
plot $top using 2:1:($2<1?$2:1):($2<1?1:$2):($1-0.36):($1+0.36):6:ytic(4) with boxxyerror lc rgb variable notitle, \\
     $top using 3:($1-0.46):(0):(0.92) with vectors nohead lw 3 lc rgb "black" title "target", \\
     $top using 7:1:5 with labels left font ",9" noenhanced notitle, \\
     $top using 8:1:($9-$8):(0) with vectors heads size screen 0.004,90 lw 1.5 lc rgb "#222222" notitle, \\
     keyentry with boxes lc rgb "#{GREEN:06x}" title "meets target", \\
     keyentry with boxes lc rgb "#{RED:06x}" title "misses target", \\
     keyentry with boxes lc rgb "#{BLUE:06x}" title "no target"

# bottom: against the limits and the C baselines, linear scale
set size 1,{h_bot:.4f}
set origin 0,0
set tmargin 2.5
set bmargin 2.5
set title "actio / limit (wrk, pgbench, cat, wc -l, bare loops) or C baseline (mutex queue), linear scale: 1x = as fast" font ",12" noenhanced
unset logscale x
set xrange [0:{max(1.25, hi2 * 1.18):g}]
set format x "%gx"
set mxtics 2
set yrange [{len(bottom) - 0.5}:-0.6]
{block("bot", bottom, bot_label, bot_x)}
plot $bot using 2:1:(0):2:($1-0.36):($1+0.36):6:ytic(4) with boxxyerror lc rgb variable notitle, \\
     $bot using 3:($1-0.46):(0):(0.92) with vectors nohead lw 3 lc rgb "black" notitle, \\
     $bot using 7:1:5 with labels left font ",9" noenhanced notitle, \\
     $bot using 8:1:($9-$8):(0) with vectors heads size screen 0.004,90 lw 1.5 lc rgb "#222222" notitle
unset multiplot
"""
with tempfile.NamedTemporaryFile("w", suffix=".gp", delete=False) as f:
    f.write(gp)
    gp_path = f.name
try:
    res = subprocess.run(["gnuplot", gp_path], capture_output=True, text=True)
finally:
    os.unlink(gp_path)
if res.returncode != 0:
    print("gnuplot failed:\n" + res.stderr, file=sys.stderr)
    sys.exit(1)
if res.stderr.strip():
    print(res.stderr.strip(), file=sys.stderr)
print(f"chart: {os.path.abspath(args.png)}")
