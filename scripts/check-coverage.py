#!/usr/bin/env python3
"""check-coverage.py: every public function (each actio_* declared in
include/actio/*.h) called by at least one test. Reads the function counts
of gcovr's JSON report over the library (scripts/coverage.sh writes it) and
fails, naming them, when a public function was never called or is not in
the report at all.

Usage: scripts/check-coverage.py COVERAGE_JSON INCLUDE_DIR"""
import glob
import json
import os
import re
import sys


def public_functions(include_dir):
    names = set()
    for path in glob.glob(os.path.join(include_dir, "*.h")):
        text = open(path, encoding="utf-8").read()
        text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)  # comments name calls too
        text = re.sub(r"//[^\n]*", " ", text)
        # A declaration's name is followed by its parameter list; the
        # function pointer types, "(*actio_x_fn)(", are followed by ")".
        names.update(re.findall(r"\b(actio_[a-z0-9_]+)\s*\(", text))
    return names


def main():
    report, include_dir = sys.argv[1], sys.argv[2]
    public = public_functions(include_dir)
    if not public:
        sys.exit(f"check-coverage: no public functions found in {include_dir}")
    calls = {}
    for f in json.load(open(report, encoding="utf-8"))["files"]:
        for fn in f.get("functions", []):
            calls[fn["name"]] = calls.get(fn["name"], 0) + fn["execution_count"]
    missing = sorted(n for n in public if n not in calls)
    uncalled = sorted(n for n in public if calls.get(n) == 0)
    for n in missing:
        print(f"check-coverage: {n}: declared in {include_dir}, not in the report")
    for n in uncalled:
        print(f"check-coverage: {n}: never called by a test")
    called = len(public) - len(missing) - len(uncalled)
    print(f"public functions called by the tests: {called} of {len(public)}")
    sys.exit(1 if missing or uncalled else 0)


if __name__ == "__main__":
    main()
