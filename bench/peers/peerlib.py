"""peerlib.py: what the Python peers share: the --uvloop switch, the event loop, and the one JSON line they print."""
import argparse
import asyncio
import json
import sys
import time

# Set by emit when a run had errors: the peer then exits 1, as actio-bench does.
_failed = False


def parser(doc):
    """An argument parser with the flag every peer takes."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--uvloop", action="store_true",
                   help="run on uvloop, the fastest asyncio loop (the peer's strongest configuration)")
    return p


def run(main, args):
    """Runs main(args) to completion on asyncio's loop, or on uvloop's, then
    exits 1 if the line it printed counted errors."""
    if not args.uvloop:
        asyncio.run(main(args))
    else:
        import uvloop
        if hasattr(uvloop, "run"):  # uvloop >= 0.18 deprecates install()
            uvloop.run(main(args))
        else:
            uvloop.install()
            asyncio.run(main(args))
    sys.exit(1 if _failed else 0)


class Clock:
    """Wall time of the measured part only, as actio-bench times its own."""

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0


def emit(args, impl, workload, n, concurrency, ok, errors, seconds, **extra):
    """Prints the bench line; per_sec counts successful operations only."""
    global _failed
    _failed = _failed or errors > 0
    line = {"impl": impl + ("+uvloop" if args.uvloop else ""), "workload": workload,
            "n": n, "concurrency": concurrency, "ok": ok, "errors": errors,
            "seconds": round(seconds, 6), "per_sec": round(ok / seconds, 1) if seconds > 0 else 0.0}
    line.update(extra)
    print(json.dumps(line), flush=True)


async def closed_loop(n, concurrency, op, hold=None):
    """n operations, concurrency of them in flight, each started as one ends:
    the loop actio-bench runs. op(i) does operation i, or op(i, held) when
    hold is given: then each in-flight slot holds hold() (an async context
    manager, such as a pooled connection) for the whole run, as a client that
    keeps its connection does. op returns True if it succeeded. Returns the
    number that did."""
    next_i = 0
    ok = 0

    async def slot(*held):
        nonlocal next_i, ok
        while next_i < n:  # one loop thread: no lock around the counter
            i = next_i
            next_i += 1
            if await op(i, *held):
                ok += 1

    async def held_slot():
        async with hold() as h:
            await slot(h)

    await asyncio.gather(*((held_slot() if hold else slot()) for _ in range(min(concurrency, n))))
    return ok
