#!/usr/bin/python3
"""asyncpg_query.py: the db_point and db_rows peer: N parameterized queries with asyncpg, C in flight, each on a pooled connection of its own.

point: SELECT $1::int; rows: 100 rows of (g, md5(g)) from generate_series.
Query i sends the integer actio-bench sends for it, and each result is
read and checked as actio-bench checks its own: a wrong one is an error.
The pool is opened before the clock starts, as actio-bench waits for its
connections. Prints one JSON line (impl asyncpg, workload db_point|db_rows)."""
import asyncpg

import peerlib

SQL = {"point": "SELECT $1::int",
       "rows": "SELECT g, md5(g::text) FROM generate_series($1::int, $1::int + 99) g"}


def value(i):  # actio-bench's db_value: +-1e6, negatives too, room for + 99
    return i % 2000000 - 1000000


async def main(a):
    sql = SQL[a.workload]
    rows_read = 0
    async with asyncpg.create_pool(a.dsn, min_size=a.concurrency, max_size=a.concurrency) as pool:
        async def point(i, con):
            nonlocal rows_read
            try:
                got = await con.fetchval(sql, value(i))
            except (asyncpg.PostgresError, OSError):
                return False
            rows_read += 1
            return got == value(i)

        async def rows(i, con):
            nonlocal rows_read
            v = value(i)
            try:
                rs = await con.fetch(sql, v)
            except (asyncpg.PostgresError, OSError):
                return False
            rows_read += len(rs)
            return len(rs) == 100 and all(r[0] == v + k and len(r[1]) == 32 for k, r in enumerate(rs))

        with peerlib.Clock() as c:
            # Each of the C in flight keeps one connection, as pgbench's clients do.
            ok = await peerlib.closed_loop(a.queries, a.concurrency, point if a.workload == "point" else rows,
                                           hold=pool.acquire)
    peerlib.emit(a, "asyncpg", "db_" + a.workload, a.queries, a.concurrency, ok, a.queries - ok,
                 c.seconds, rows=rows_read)


p = peerlib.parser(__doc__)
p.add_argument("--dsn", required=True, help="a postgresql:// URI")
p.add_argument("--queries", type=int, default=50000)
p.add_argument("--concurrency", type=int, default=8)
p.add_argument("--workload", choices=sorted(SQL), default="point")
peerlib.run(main, p.parse_args())
