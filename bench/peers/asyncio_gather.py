#!/usr/bin/python3
"""asyncio_gather.py: the gather and pingpong peers: what asyncio's own machinery costs.

  --mode gather    N coroutines, FANOUT at a time, each round awaited with
                   asyncio.gather (a task per coroutine, as asyncio does it)
  --mode pingpong  N round trips of a counter between two tasks, through two
                   asyncio.Queues (the echo adds one)
  --mode pending   N tasks left waiting on a future: the resident set's growth
                   per task (bytes_per), as actio-bench pending measures a
                   pending ask
A checksum of the values seen guards against a run that skipped work.
Prints one JSON line (impl asyncio, workload gather|pingpong)."""
import asyncio
import os

import peerlib


async def value(i):
    return i


async def gather(a):
    total = 0
    for first in range(0, a.n, a.fanout):
        total += sum(await asyncio.gather(*(value(i) for i in range(first, min(first + a.fanout, a.n)))))
    return total, a.n * (a.n - 1) // 2


async def pingpong(a):
    to_pong, to_ping = asyncio.Queue(), asyncio.Queue()

    async def pong():
        while (m := await to_pong.get()) is not None:
            to_ping.put_nowait(m + 1)

    task = asyncio.create_task(pong())
    counter = 0
    for _ in range(a.n):
        to_pong.put_nowait(counter)
        counter = await to_ping.get()
    to_pong.put_nowait(None)
    await task
    return counter, a.n


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def pending(a):
    gate = asyncio.get_running_loop().create_future()

    async def wait():
        return await gate

    before = rss_bytes()
    with peerlib.Clock() as c:
        tasks = [asyncio.create_task(wait()) for _ in range(a.n)]
        await asyncio.sleep(0)  # each task starts, and waits
    grew = rss_bytes() - before
    gate.set_result(1)
    got = sum(await asyncio.gather(*tasks))
    ok = a.n if got == a.n else 0
    peerlib.emit(a, "asyncio", "pending_ask", a.n, a.n, ok, a.n - ok, c.seconds,
                 bytes_per=round(grew / a.n, 1), rss_growth=grew)


async def main(a):
    if a.mode == "pending":
        return await pending(a)
    with peerlib.Clock() as c:
        got, want = await (gather(a) if a.mode == "gather" else pingpong(a))
    ok = a.n if got == want else 0
    peerlib.emit(a, "asyncio", a.mode, a.n, a.fanout if a.mode == "gather" else 1, ok, a.n - ok,
                 c.seconds, checksum=got, checksum_ok=got == want)


p = peerlib.parser(__doc__)
p.add_argument("--mode", choices=["gather", "pingpong", "pending"], default="gather")
p.add_argument("--n", type=int, default=1000000)
p.add_argument("--fanout", type=int, default=1000)
peerlib.run(main, p.parse_args())
