#!/usr/bin/python3
"""asyncpg_batch.py: the db_executemany and db_stream peer.

many: N rows (id int, v text) inserted into a fresh table with
executemany in batches of B (asyncpg pipelines them), C batches in flight,
each on a pooled connection of its own. stream: SELECT g, md5(g::text)
FROM generate_series(1, N) g through a cursor with prefetch B (in a
transaction, as asyncpg requires), every value read and checked. The pool
is opened and the table made before the clock starts, as actio-bench
does. Prints one JSON line (impl asyncpg, workload db_executemany|db_stream)."""
import asyncpg

import peerlib


async def main(a):
    if a.workload == "many":
        batches = a.rows // a.batch
        n = batches * a.batch
        rows = [(i % 1000000000, "v%d" % i) for i in range(n)]  # made before the clock
        async with asyncpg.create_pool(a.dsn, min_size=a.concurrency, max_size=a.concurrency) as pool:
            await pool.execute("DROP TABLE IF EXISTS actio_bench_many;"
                               "CREATE TABLE actio_bench_many (id int, v text)")

            async def many(i, con):
                try:
                    await con.executemany("INSERT INTO actio_bench_many VALUES ($1, $2)",
                                          rows[i * a.batch:(i + 1) * a.batch])
                except (asyncpg.PostgresError, OSError):
                    return False
                return True

            with peerlib.Clock() as c:
                ok = await peerlib.closed_loop(batches, a.concurrency, many, hold=pool.acquire)
        peerlib.emit(a, "asyncpg", "db_executemany", n, a.concurrency, ok * a.batch,
                     (batches - ok) * a.batch, c.seconds, batch=a.batch)
        return
    con = await asyncpg.connect(a.dsn)
    sql = "SELECT g, md5(g::text) FROM generate_series(1, %d) g" % a.rows
    got = bad = 0
    with peerlib.Clock() as c:
        async with con.transaction():
            async for r in con.cursor(sql, prefetch=a.batch):
                got += 1
                if r[0] != got or len(r[1]) != 32:
                    bad += 1
    await con.close()
    peerlib.emit(a, "asyncpg", "db_stream", a.rows, 1, got - bad, a.rows - got + bad, c.seconds,
                 batch=a.batch, rows=got)


p = peerlib.parser(__doc__)
p.add_argument("--dsn", required=True, help="a postgresql:// URI")
p.add_argument("--rows", type=int, default=1000000)
p.add_argument("--batch", type=int, default=50, help="rows per executemany, or the cursor's prefetch")
p.add_argument("--concurrency", type=int, default=8)
p.add_argument("--workload", choices=("many", "stream"), default="many")
peerlib.run(main, p.parse_args())
