#!/usr/bin/env python3
"""check-calls.py: the call graph between the library's files, read from its
object files with nm: fails when a layer calls a layer above it, when two
sibling folders call each other, or when files call each other in a circle.

Usage: scripts/check-calls.py OBJECT_DIR SOURCE_DIR   (the actio_objects
folder and the source tree; run by ctest as "call_graph"). Objects whose
source is gone (left in the build folder by a rename) are passed over. Prints the circles and wrong-way calls it finds."""
import os
import subprocess
import sys

RANK = {"base": 0, "mailbox": 1, "io": 1, "actors/core": 2, "actors": 3}


def module(src):
    parts = src.split("/")
    if parts[0] in ("io", "actors") and len(parts) > 2:
        return "/".join(parts[:2])
    return parts[0]


def rank(mod):
    return RANK.get(mod, RANK.get(mod.split("/")[0]))


def main():
    root, srcdir = sys.argv[1], sys.argv[2]
    objs = {}
    for d, _, files in os.walk(root):
        for f in files:
            if f.endswith(".o"):
                path = os.path.join(d, f)
                src = os.path.relpath(path, root)[: -len(".o")]
                if os.path.exists(os.path.join(srcdir, src)):
                    objs[src] = path
    defined, used = {}, {}
    for src, path in objs.items():
        out = subprocess.run(["nm", "-P", path], capture_output=True, text=True,
                             check=True).stdout
        used[src] = set()
        for line in out.splitlines():
            f = line.split()
            if len(f) < 2:
                continue
            name, kind = f[0], f[1]
            if kind == "U":
                used[src].add(name)
            elif kind in "TDBRC" and kind.isupper():
                defined[name] = src
    edges = {s: set() for s in objs}
    for s, names in used.items():
        for n in names:
            t = defined.get(n)
            if t is not None and t != s:
                edges[s].add(t)
    bad = []
    for s, ts in edges.items():
        for t in ts:
            ms, mt = module(s), module(t)
            if ms == mt:
                continue
            if rank(ms) < rank(mt) or (rank(ms) == rank(mt)):
                bad.append(f"{s} calls {t}: {ms}/ may not call {mt}/")
    # Circles between files: Tarjan's strongly connected components.
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    for comp in sccs:
        bad.append("files calling each other in a circle: " + ", ".join(comp))
    for b in bad:
        print("call graph:", b)
    if bad:
        return 1
    print(f"call graph: ok ({len(objs)} files, "
          f"{sum(len(t) for t in edges.values())} file-to-file edges, no circle)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
