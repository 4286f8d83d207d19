#!/usr/bin/python3
"""aiohttp_get.py: the http_get peer: N GETs of one URL with aiohttp, C in flight over one session.

Each body is read whole (decoded: aiohttp asks for gzip and deflate) and
dropped, as actio-bench does with its responses; only a 200 counts. With
--proxy every request goes through that http proxy. Prints one JSON line
(impl aiohttp, workload http_get)."""
import aiohttp

import peerlib


async def main(a):
    conn = aiohttp.TCPConnector(limit=a.concurrency, limit_per_host=a.concurrency)
    nbytes = 0
    async with aiohttp.ClientSession(connector=conn) as session:
        async def get(i):
            nonlocal nbytes
            try:
                async with session.get(a.url, proxy=a.proxy) as r:
                    body = await r.read()
                    if r.status != 200:
                        return False
                    nbytes += len(body)
                    return True
            except (aiohttp.ClientError, OSError):
                return False

        with peerlib.Clock() as c:
            ok = await peerlib.closed_loop(a.requests, a.concurrency, get)
    peerlib.emit(a, "aiohttp", "http_get", a.requests, a.concurrency, ok, a.requests - ok,
                 c.seconds, bytes=nbytes)


p = peerlib.parser(__doc__)
p.add_argument("--url", required=True)
p.add_argument("--requests", type=int, default=20000)
p.add_argument("--concurrency", type=int, default=64)
p.add_argument("--proxy", default=None)
peerlib.run(main, p.parse_args())
