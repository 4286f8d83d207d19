#!/usr/bin/python3
"""aiohttp_get.py: the http_get peer: N GETs of one URL with aiohttp, C in flight over one session.

Each body is read whole (decoded: aiohttp asks for gzip and deflate) and
dropped, as actio-bench does with its responses; only a 200 counts. With
--proxy every request goes through that http proxy. aiohttp before 3.11
(Debian 12 has 3.8) closes its connection to a proxy after each response;
--proxy-keepalive keeps it, as 3.11 and later do (aiohttp's pull request
8920 removed that close). Prints one JSON line (impl aiohttp, workload
http_get; impl aiohttp-keepalive with --proxy-keepalive)."""
import aiohttp

import peerlib


def keep_proxy_connections():
    """aiohttp 3.11's proxy keep-alive on an older aiohttp: the connection
    its connector opens to the proxy for a plain http URL is no longer
    marked to close after its response."""
    make = aiohttp.TCPConnector._create_proxy_connection

    async def create(self, req, traces, timeout):
        transport, proto = await make(self, req, traces, timeout)
        if not req.is_ssl():
            proto._should_close = False  # what force_close() set
        return transport, proto

    aiohttp.TCPConnector._create_proxy_connection = create


async def main(a):
    if a.proxy_keepalive:
        keep_proxy_connections()
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
    impl = "aiohttp-keepalive" if a.proxy_keepalive else "aiohttp"
    peerlib.emit(a, impl, "http_get", a.requests, a.concurrency, ok, a.requests - ok, c.seconds,
                 bytes=nbytes)


p = peerlib.parser(__doc__)
p.add_argument("--url", required=True)
p.add_argument("--requests", type=int, default=20000)
p.add_argument("--concurrency", type=int, default=64)
p.add_argument("--proxy", default=None)
p.add_argument("--proxy-keepalive", action="store_true",
               help="keep the connections to the proxy alive (aiohttp 3.11's way)")
peerlib.run(main, p.parse_args())
