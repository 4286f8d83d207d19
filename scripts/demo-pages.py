#!/usr/bin/python3
"""demo-pages.py: the demo's pages (scripts/demo.sh, scripts/cluster-demo.sh, and the pipeline's rounds of scripts/bench.sh):
N small HTML pages of varied sizes, FOLDER/00000.html and on, the same each time (seed 42).

  scripts/demo-pages.py FOLDER N"""
import os
import random
import sys

folder, n = sys.argv[1], int(sys.argv[2])
os.makedirs(folder, exist_ok=True)
rnd = random.Random(42)
words = "actor future mailbox worker gather map then file http query copy".split()
for i in range(n):
    text = " ".join(rnd.choice(words) for _ in range(rnd.randint(10, 3000)))
    with open(f"{folder}/{i:05d}.html", "w") as f:
        f.write(f"<!doctype html>\n<title>page {i}</title>\n<p>{text}</p>\n")
