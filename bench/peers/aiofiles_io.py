#!/usr/bin/python3
"""aiofiles_io.py: the file peers, with aiofiles.

  --mode write-small  mkdir -p DIR, then N files DIR/f0000000... of SIZE bytes, C in flight
  --mode read-small   read those N files back whole, C in flight
  --mode read-lines   count the lines of PATH (async for line in file)
The names and the content (63 x's and a newline per 64 bytes) are
actio-bench's. Prints one JSON line (impl aiofiles, workload file_write_small,
file_read_small or file_read_lines)."""
import os

import aiofiles

import peerlib


def payload(size):
    return (b"x" * 63 + b"\n") * (size // 64) + b"x" * (size % 64)


async def small(a):
    content = payload(a.size)
    nbytes = 0

    def path(i):
        return os.path.join(a.dir, f"f{i:07d}")

    async def write(i):
        nonlocal nbytes
        try:
            async with aiofiles.open(path(i), "wb") as f:
                await f.write(content)
        except OSError:
            return False
        nbytes += len(content)
        return True

    async def read(i):
        nonlocal nbytes
        try:
            async with aiofiles.open(path(i), "rb") as f:
                data = await f.read()  # not "nbytes += len(await ...)": that reads nbytes before the await
            nbytes += len(data)
        except OSError:
            return False
        return True

    writing = a.mode == "write-small"
    with peerlib.Clock() as c:
        if writing:  # inside the clock, as actio-bench's mkdir is
            os.makedirs(a.dir, exist_ok=True)
        ok = await peerlib.closed_loop(a.files, a.concurrency, write if writing else read)
    extra = {"bytes": nbytes}
    if writing:
        extra["size"] = a.size
    peerlib.emit(a, "aiofiles", "file_" + a.mode.replace("-", "_"), a.files, a.concurrency, ok,
                 a.files - ok, c.seconds, **extra)


async def lines(a):
    count = nbytes = errors = 0
    with peerlib.Clock() as c:
        try:
            async with aiofiles.open(a.path, "rb") as f:
                async for line in f:
                    count += 1
                    nbytes += len(line)
        except OSError:
            errors = 1
    peerlib.emit(a, "aiofiles", "file_read_lines", count, 1, count, errors, c.seconds, bytes=nbytes)


async def main(a):
    if a.mode == "read-lines":
        if not a.path:
            raise SystemExit("aiofiles_io.py: --mode read-lines needs --path")
        await lines(a)
    else:
        await small(a)


p = peerlib.parser(__doc__)
p.add_argument("--mode", choices=["write-small", "read-small", "read-lines"], required=True)
p.add_argument("--dir", default="/tmp/bench-files")
p.add_argument("--path")
p.add_argument("--files", type=int, default=10000)
p.add_argument("--size", type=int, default=4096)
p.add_argument("--concurrency", type=int, default=64)
peerlib.run(main, p.parse_args())
