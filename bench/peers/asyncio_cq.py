#!/usr/bin/python3
"""asyncio_cq.py: the cq peer: completions from other threads into the loop.

  N callbacks handed to the running loop by P threads with
  loop.call_soon_threadsafe (asyncio's way for a thread to deliver a result:
  what run_in_executor's futures do when they complete); the loop runs each,
  counting them and summing their values, until all N have run. actio-bench
  cq is the same shape: P threads complete futures, an epoll loop drains.
Prints one JSON line (impl asyncio or asyncio+uvloop, workload cq)."""
import asyncio
import threading

import peerlib


async def main(a):
    loop = asyncio.get_running_loop()
    finished = loop.create_future()
    got = 0
    total = 0

    def deliver(i):  # on the loop's thread
        nonlocal got, total
        got += 1
        total += i
        if got == a.n:
            finished.set_result(None)

    go = threading.Event()

    def produce(first, count):
        go.wait()
        call = loop.call_soon_threadsafe
        for i in range(first, first + count):
            call(deliver, i)

    share = a.n // a.producers
    threads = [threading.Thread(target=produce,
                                args=(share * k, share if k + 1 < a.producers else a.n - share * k))
               for k in range(a.producers)]
    for t in threads:
        t.start()
    with peerlib.Clock() as c:
        go.set()
        await finished
    for t in threads:
        t.join()
    want = a.n * (a.n - 1) // 2
    ok = got if total == want else 0
    peerlib.emit(a, "asyncio", "cq", a.n, a.producers, ok, a.n - ok, c.seconds,
                 producers=a.producers, checksum_ok=total == want)


p = peerlib.parser(__doc__)
p.add_argument("--n", type=int, default=200000)
p.add_argument("--producers", type=int, default=2)
peerlib.run(main, p.parse_args())
