#!/usr/bin/python3
"""pipeline.py: the pipeline demo (demos/pipeline.c) in Python, for scripts/bench.sh.

Each URL of the list is fetched (aiohttp, one session, at most
--concurrency in flight), its body hashed (SHA-256, inline: hashlib lets go
of the GIL on large buffers, and a hop to a thread costs more than the hash
of a page), saved durably as OUT/<line>.body (a temporary file beside it,
written, fsync, rename over, fsync of the folder: what the C side's atomic
write does), and only then its row queued. Rows go in batches, as the C
side sends them: up to --batch rows or what came in 5 ms, each batch one
executemany (asyncpg runs it as one transaction) on a pool of --pool
connections; a URL is done once its batch is committed. The table and its
rows are the C demo's; a rerun under the same --run-id skips the lines
recorded already.

The save is one hop to a thread pool (aiofiles.os.wrap) per file, sized to
--concurrency as the C side's file workers are: aiofiles' own
open/write/flush/fsync/close/rename would cost six hops a file, and that is
the fastest Python can make it without leaving aiofiles. The clock starts
once the list is read, the pool open and the table made, as the C side's.
Prints one JSON line (impl python-pipeline, workload pipeline)."""
import asyncio
import concurrent.futures
import hashlib
import os
import time

import aiofiles.os
import aiohttp
import asyncpg

import peerlib

CREATE_TABLE = """CREATE TABLE IF NOT EXISTS actio_pipeline (
  run_id text NOT NULL,
  line int NOT NULL,
  url text NOT NULL,
  status int NOT NULL,
  bytes bigint NOT NULL,
  hash text,
  latency_ms double precision NOT NULL,
  error text,
  file text,
  fetched_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, line))"""

INSERT_ROW = ("INSERT INTO actio_pipeline (run_id, line, url, status, bytes, hash, latency_ms, error, file)"
              " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (run_id, line) DO NOTHING")


def save_sync(path, dirfd, body):
    """A temporary file, fsync, rename over the target, fsync of the folder."""
    tmp = "%s.%d.tmp" % (path, id(body))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        view = memoryview(body)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.rename(tmp, path)
    os.fsync(dirfd)


class Batcher:
    """Rows collected until `size` are in or `wait` seconds passed since the
    first; each batch one executemany on a pooled connection. add() returns
    when the row's batch is committed (or raises its error)."""

    def __init__(self, pool, size, wait):
        self.pool, self.size, self.wait = pool, size, wait
        self.rows, self.futs, self.timer = [], [], None
        self.tasks = set()

    async def add(self, row):
        fut = asyncio.get_running_loop().create_future()
        self.rows.append(row)
        self.futs.append(fut)
        if len(self.rows) >= self.size:
            self.flush()
        elif self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(self.wait, self.flush)
        return await fut

    def flush(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.rows:
            return
        rows, futs = self.rows, self.futs
        self.rows, self.futs = [], []
        t = asyncio.ensure_future(self.send(rows, futs))
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def send(self, rows, futs):
        try:
            async with self.pool.acquire() as con:
                await con.executemany(INSERT_ROW, rows)
        except Exception as e:  # every row of the batch takes its error
            for f in futs:
                if not f.done():
                    f.set_exception(e)
            return
        for f in futs:
            if not f.done():
                f.set_result(None)


async def main(a):
    lines = []
    with open(a.urls) as f:
        for n, raw in enumerate(f, 1):
            url = raw.strip(" \t\r\n")
            if url and not url.startswith("#"):
                lines.append((n, url))
    os.makedirs(a.out, exist_ok=True)
    dirfd = os.open(a.out, os.O_RDONLY | os.O_DIRECTORY)
    loop = asyncio.get_running_loop()
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=min(a.concurrency, 64)))
    save = aiofiles.os.wrap(save_sync)
    pool = await asyncpg.create_pool(a.dsn, min_size=a.pool, max_size=a.pool)
    await pool.execute(CREATE_TABLE)
    done = {r[0] for r in await pool.fetch("SELECT line FROM actio_pipeline WHERE run_id = $1", a.run_id)}
    todo = [(n, u) for n, u in lines if n not in done]
    batcher = Batcher(pool, a.batch, 0.005)
    connector = aiohttp.TCPConnector(limit=a.concurrency)
    timeout = aiohttp.ClientTimeout(total=a.timeout / 1000)
    fetched = failed = 0

    async def one(i):
        nonlocal fetched, failed
        line, url = todo[i]
        t0 = time.perf_counter()
        status, size, digest, error, path = 0, 0, None, None, None
        try:
            async with session.get(url) as r:
                body = await r.read()
                status, size = r.status, len(body)
            if status >= 400:
                error = "HTTP %d" % status
            else:
                digest = hashlib.sha256(body).hexdigest()
                path = os.path.join(a.out, "%06d.body" % line)
                await save(path, dirfd, body)
        except Exception as e:
            error = "%s: %s" % (type(e).__name__, e)
            digest = path = None
        latency = (time.perf_counter() - t0) * 1000
        for attempt in range(10):  # a lost connection: once more, as the C side does
            try:
                await batcher.add((a.run_id, line, url, status, size, digest, latency, error, path))
                break
            except (asyncpg.PostgresConnectionStatusError, OSError, asyncpg.InterfaceError):
                await asyncio.sleep(0.05 * (1 << attempt))
        else:
            failed += 1
            return False
        if error:
            failed += 1
            return False
        fetched += 1
        return True

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        with peerlib.Clock() as c:
            await peerlib.closed_loop(len(todo), a.concurrency, one)
    await pool.close()
    os.close(dirfd)
    peerlib.emit(a, "python-pipeline", "pipeline", len(todo), a.concurrency, fetched, failed, c.seconds,
                 skipped=len(lines) - len(todo), pool=a.pool, batch=a.batch)


p = peerlib.parser(__doc__)
p.add_argument("--dsn", required=True, help="a postgresql:// URI or libpq string")
p.add_argument("--out", required=True, help="folder for the bodies: <line>.body")
p.add_argument("--concurrency", type=int, default=32)
p.add_argument("--pool", type=int, default=8, help="connections in the pool")
p.add_argument("--batch", type=int, default=64, help="rows per executemany at most")
p.add_argument("--timeout", type=int, default=30000, help="per URL, in ms")
p.add_argument("--run-id", default=time.strftime("py-%Y%m%d-%H%M%S") + "-%d" % os.getpid())
p.add_argument("urls", help="a file with one URL a line")
peerlib.run(main, p.parse_args())
