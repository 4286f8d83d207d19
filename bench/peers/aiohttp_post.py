#!/usr/bin/python3
"""aiohttp_post.py: the http_post peer: N POSTs of a SIZE-byte body to one URL with aiohttp, C in flight over one session.

The body is the same bytes object each time (a..z repeated, as actio-bench
sends); each response is read whole and dropped; only a 200 counts. Prints
one JSON line (impl aiohttp, workload http_post)."""
import aiohttp

import peerlib


async def main(a):
    body = bytes(ord("a") + i % 26 for i in range(a.size))
    conn = aiohttp.TCPConnector(limit=a.concurrency, limit_per_host=a.concurrency)
    async with aiohttp.ClientSession(connector=conn) as session:
        async def post(i):
            try:
                async with session.post(a.url, data=body) as r:
                    await r.read()
                    return r.status == 200
            except (aiohttp.ClientError, OSError):
                return False

        with peerlib.Clock() as c:
            ok = await peerlib.closed_loop(a.requests, a.concurrency, post)
    peerlib.emit(a, "aiohttp", "http_post", a.requests, a.concurrency, ok, a.requests - ok,
                 c.seconds, size=a.size)


p = peerlib.parser(__doc__)
p.add_argument("--url", required=True)
p.add_argument("--requests", type=int, default=20000)
p.add_argument("--concurrency", type=int, default=64)
p.add_argument("--size", type=int, default=64 * 1024)
peerlib.run(main, p.parse_args())
