#!/usr/bin/python3
"""asyncio_timers.py: the timers peer: loop.call_later, as actio-bench timers measures actio's.

First N callbacks left pending an hour away: the resident set's growth per
pending timer handle (pending_timer: bytes_per), measured on a fresh heap and
then cancelled. Then N callbacks armed with loop.call_later, 0-7 ms ahead as
actio's delayed sends are, each counting itself: timed from the first armed
to the last run (timers: per_sec).
Prints two JSON lines (impl asyncio, workloads pending_timer and timers)."""
import asyncio
import os

import peerlib


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def main(a):
    loop = asyncio.get_running_loop()

    def nothing():
        pass

    handles = [None] * a.n  # the benchmark's own bookkeeping, before the reading
    before = rss_bytes()
    with peerlib.Clock() as c:
        for i in range(a.n):
            handles[i] = loop.call_later(3600, nothing)
    grew = rss_bytes() - before
    peerlib.emit(a, "asyncio", "pending_timer", a.n, a.n, a.n, 0, c.seconds,
                 bytes_per=round(grew / a.n, 1), rss_growth=grew)
    for h in handles:
        h.cancel()
    handles = None

    done = loop.create_future()
    count = 0

    def tick():
        nonlocal count
        count += 1
        if count == a.n:
            done.set_result(None)

    with peerlib.Clock() as c:
        for i in range(a.n):
            loop.call_later((i % 8) / 1000, tick)
        await done
    peerlib.emit(a, "asyncio", "timers", a.n, a.n, count, a.n - count, c.seconds)


p = peerlib.parser(__doc__)
p.add_argument("--n", type=int, default=1000000)
peerlib.run(main, p.parse_args())
