"""Checks what scripts/plots.sh made (scripts/plots-tests.sh): the CSV numbers are sane and
each chart is a real PNG of some size. Standard library only.

    python3 check_curves.py CSV_DIR PNG_DIR

Prints one line per check and 'N passed, N failed'; exits 1 on any failure.
"""

import csv
import math
import os
import struct
import sys
from typing import Dict, List

results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def hops(csv_dir):
    data = rows(os.path.join(csv_dir, "hops.csv"))
    check("hops.csv has a row per N, at least 3", len(data) >= 3, f"{len(data)} rows")
    means = []
    for r in data:
        n, mean = int(r["nodes"]), float(r["hops_mean"])
        half = float(r["half_log2_n"])
        p50, p99 = int(r["hops_p50"]), int(r["hops_p99"])
        means.append(mean)
        check(f"N={n}: ½·log2 N column", abs(half - 0.5 * math.log2(n)) < 1e-3, f"{half}")
        check(f"N={n}: lookups counted", int(r["lookups"]) >= 100, r["lookups"])
        # Measured: 0.8-1.0 hop below ½·log2 N (a node answers for keys up to its successor).
        check(f"N={n}: mean hops {mean:.2f} within [½·log2 N - 1.5, ½·log2 N + 0.5]",
              half - 1.5 <= mean <= half + 0.5, f"½·log2 N = {half:.2f}")
        check(f"N={n}: 0 <= p50 {p50} <= p99 {p99} <= log2 N + 1", 0 <= p50 <= p99 <= math.log2(n) + 1)
    check("mean hops grow with N", all(a < b for a, b in zip(means, means[1:])), f"{means}")


def latency(csv_dir):
    setups = {}
    remote: Dict[str, List[int]] = {}
    for r in rows(os.path.join(csv_dir, "latency.csv")):
        setups.setdefault(r["setup"], []).append(int(r["latency_us"]))
        if int(r["hops"]) > 0:
            remote.setdefault(r["setup"], []).append(int(r["latency_us"]))
    check("latency.csv has two setups or more", len(setups) >= 2, ", ".join(setups))
    for name, us in setups.items():
        us.sort()
        p50 = us[len(us) // 2]
        p99 = us[min(len(us) - 1, math.ceil(0.99 * len(us)) - 1)]
        check(f"{name}: at least 100 lookups", len(us) >= 100, f"{len(us)}")
        # A lookup the node answers from its own table may take under 1 µs
        # (0 in whole µs); one that asked a peer over UDP never does.
        far = min(remote.get(name, [0]))
        check(f"{name}: every lookup that asked a peer took > 0 µs", far > 0, f"min {far} µs")
        # Loopback, one process: well under a millisecond at p50 on an idle machine; the
        # bounds leave room for a loaded 2-core runner.
        check(f"{name}: p50 {p50} µs < 20 ms, p99 {p99} µs < 2 s", p50 < 20_000 and p99 < 2_000_000)


def recovery(csv_dir):
    data = rows(os.path.join(csv_dir, "recovery.csv"))
    t = [int(r["t_ms"]) for r in data]
    before = [r for r in data if int(r["t_ms"]) < 0]
    after = [r for r in data if int(r["t_ms"]) >= 0]
    check("recovery.csv: samples before and after the kill", len(before) >= 3 and len(after) >= 3,
          f"{len(before)} before, {len(after)} after")
    check("recovery.csv: time increases", all(a < b for a, b in zip(t, t[1:])))
    if not before or not after:
        return
    n0, n1 = int(before[0]["nodes_alive"]), int(after[0]["nodes_alive"])
    check(f"a quarter killed: {n0} -> {n1} nodes", n1 == n0 - n0 // 4)
    check("before the kill every key is found and every lookup right",
          all(float(r["found_fraction"]) == 1.0 and float(r["lookups_ok_fraction"]) == 1.0 for r in before))
    last = after[-1]
    for k in ("found_fraction", "lookups_ok_fraction", "copies_full_fraction", "ring_ok"):
        check(f"recovered: last sample's {k} is 1", float(last[k]) == 1.0, f"{last[k]} at {last['t_ms']} ms")
    for r in data:
        fr = [float(r[k]) for k in ("found_fraction", "lookups_ok_fraction", "copies_full_fraction")]
        if not all(0.0 <= x <= 1.0 for x in fr):
            check(f"fractions in [0, 1] at {r['t_ms']} ms", False, f"{fr}")
            break


def png(path):
    """A PNG signature, an IHDR of at least 400x300, an IEND at the end, 10 KB or more."""
    name = os.path.basename(path)
    if not os.path.isfile(path):
        check(f"{name} exists", False)
        return
    with open(path, "rb") as f:
        data = f.read()
    check(f"{name}: PNG signature", data[:8] == b"\x89PNG\r\n\x1a\n")
    ihdr = data[12:16] == b"IHDR"
    w, h = struct.unpack(">II", data[16:24]) if ihdr else (0, 0)
    check(f"{name}: IHDR {w}x{h} at least 400x300", ihdr and w >= 400 and h >= 300)
    check(f"{name}: ends with IEND", data[-8:-4] == b"IEND")
    check(f"{name}: {len(data):,} bytes, at least 10 KB", len(data) >= 10_000)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: check_curves.py CSV_DIR PNG_DIR")
    csv_dir, png_dir = sys.argv[1], sys.argv[2]
    for f in (hops, latency, recovery):
        try:
            f(csv_dir)
        except (OSError, KeyError, ValueError) as e:
            check(f"{f.__name__}.csv readable", False, repr(e))
    for name in ("hops.png", "latency.png", "recovery.png"):
        png(os.path.join(png_dir, name))
    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
