#!/usr/bin/env python3
"""Compares two piglit runs of the same profile test by test.

usage: compare.py EXPECTED NATIVE_DIR SHIM_DIR

Prints each run's totals, then every test whose result (or any subtest's
result) differs between the runs. A difference is expected when
EXPECTED lists the test with exactly these two results; each listing
gives its reason. Exits 1 on an unexpected difference, or on a listed
test of these runs whose results no longer differ as listed.
"""
import bz2
import collections
import json
import os
import sys


def load(path):
    for name in ("results.json.bz2", "results.json"):
        p = os.path.join(path, name)
        if os.path.exists(p):
            opener = bz2.open if name.endswith(".bz2") else open
            with opener(p, "rt") as f:
                return json.load(f)["tests"]
    sys.exit(f"compare.py: no piglit results in {path}")


def expectations(path):
    """{test: (native, shim, reason)} from lines `TEST NATIVE SHIM REASON`."""
    out = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 3)
            if len(parts) < 4:
                sys.exit(f"{path}:{n}: want `TEST NATIVE SHIM REASON`")
            out[parts[0]] = (parts[1], parts[2], parts[3])
    return out


def outcome(test):
    """A test's result and its subtests' results."""
    if test is None:
        return ("notrun", {})
    return (test["result"], dict(test.get("subtests", {})))


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    expected = expectations(sys.argv[1])
    native, shim = load(sys.argv[2]), load(sys.argv[3])
    for name, tests in (("native", native), ("shim", shim)):
        totals = collections.Counter(t["result"] for t in tests.values())
        print(f"{name:>6}: {len(tests)} tests: "
              + ", ".join(f"{k} {v}" for k, v in sorted(totals.items())))
    unexpected, listed, stale = [], [], []
    for test in sorted(set(native) | set(shim)):
        n, s = outcome(native.get(test)), outcome(shim.get(test))
        want = expected.get(test)
        if n == s:
            if want is not None:
                stale.append(f"{test}: both {n[0]}, listed as {want[0]} -> {want[1]}")
            continue
        subs = sorted(k for k in set(n[1]) | set(s[1]) if n[1].get(k) != s[1].get(k))
        detail = f"{test}: native {n[0]}, shim {s[0]}"
        if subs:
            detail += "; subtests: " + ", ".join(
                f"{k} ({n[1].get(k, 'notrun')} -> {s[1].get(k, 'notrun')})" for k in subs[:8])
            if len(subs) > 8:
                detail += f", ... ({len(subs)} differ)"
        if want is not None and (want[0], want[1]) == (n[0], s[0]):
            listed.append(f"{detail}\n    expected: {want[2]}")
        else:
            unexpected.append(detail)
    for title, lines in (("expected differences", listed),
                         ("UNEXPECTED differences", unexpected),
                         ("STALE expectations (the difference is gone)", stale)):
        if lines:
            print(f"{title} ({len(lines)}):")
            for l in lines:
                print(f"  {l}")
    if unexpected or stale:
        sys.exit(1)
    print("piglit-cl: the shim matches native except where listed")


if __name__ == "__main__":
    main()
