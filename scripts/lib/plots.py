"""Draws the benchmark curves of benches/curves.rs as PNG charts (scripts/plots.sh).

    python plots.py CSV_DIR OUT_DIR

Reads CSV_DIR/hops.csv, latency.csv and recovery.csv and writes OUT_DIR/hops.png,
latency.png and recovery.png; prints the figures docs/PERFORMANCE.md quotes.
"""

import csv
import math
import os
import sys
from collections import OrderedDict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator  # noqa: E402

DPI = 120
SIZE = (8, 5)


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def nearest_rank(sorted_values, q):
    rank = min(max(math.ceil(q * len(sorted_values)), 1), len(sorted_values))
    return sorted_values[rank - 1]


def save(fig, out_dir, name):
    path = os.path.join(out_dir, name)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    print("wrote", path)


def hops(csv_dir, out_dir):
    data = rows(os.path.join(csv_dir, "hops.csv"))
    n = [int(r["nodes"]) for r in data]
    mean = [float(r["hops_mean"]) for r in data]
    p50 = [int(r["hops_p50"]) for r in data]
    p99 = [int(r["hops_p99"]) for r in data]
    half = [float(r["half_log2_n"]) for r in data]
    lookups = data[0]["lookups"] if data else "?"
    fig, ax = plt.subplots(figsize=SIZE)
    ax.plot(n, half, "k--", label="½·log2 N (Chord)")
    ax.plot(n, mean, "o-", color="tab:blue", label="mean hops")
    ax.plot(n, p50, "s:", color="tab:green", label="p50")
    ax.plot(n, p99, "^:", color="tab:red", label="p99")
    for x, y in zip(n, mean):
        ax.annotate(f"{y:.2f}", (x, y), textcoords="offset points", xytext=(-14, 6),
                    ha="center", fontsize=8, color="tab:blue")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(n))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{int(v):,}"))
    ax.set_xlabel("nodes N (log2 scale)")
    ax.set_ylabel("hops per lookup")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Lookup hops against N, in-memory network, Chord alone ({lookups} checked lookups per N)")
    ax.title.set_fontsize(10)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save(fig, out_dir, "hops.png")
    for x, m, a, b, h in zip(n, mean, p50, p99, half):
        print(f"hops N={x}: mean {m:.2f} (1/2 log2 N {h:.2f}, {m - h:+.2f}), p50 {a}, p99 {b}")


def latency(csv_dir, out_dir):
    setups = OrderedDict()
    hops = OrderedDict()
    for r in rows(os.path.join(csv_dir, "latency.csv")):
        setups.setdefault(r["setup"], []).append(int(r["latency_us"]) / 1000.0)
        if r.get("hops") not in (None, ""):
            hops.setdefault(r["setup"], []).append(int(r["hops"]))
    fig, ax = plt.subplots(figsize=SIZE)
    for name, ms in setups.items():
        ms.sort()
        p50, p99 = nearest_rank(ms, 0.5), nearest_rank(ms, 0.99)
        frac = [(i + 1) / len(ms) for i in range(len(ms))]
        h = hops.get(name, [])
        mean_hops = f", {sum(h) / len(h):.2f} hops" if h else ""
        ax.step(ms, frac, where="post",
                label=f"{name}: p50 {p50:.3f} ms, p99 {p99:.3f} ms ({len(ms):,} lookups{mean_hops})")
        share = "".join(f", {h.count(k) / len(h):.0%} at {k} hops" for k in sorted(set(h))) if h else ""
        print(f"latency {name}: {len(ms)} lookups, p50 {p50:.3f} ms, p99 {p99:.3f} ms, "
              f"max {ms[-1]:.3f} ms{mean_hops}{share}")
    for q, name in ((0.5, "p50"), (0.99, "p99")):
        ax.axhline(q, color="grey", lw=0.6, ls=":")
        ax.annotate(name, (1.0, q), xycoords=("axes fraction", "data"), xytext=(-22, -10),
                    textcoords="offset points", fontsize=8, color="grey")
    ax.set_xscale("log")
    ax.set_xlabel("lookup latency, ms (log scale)")
    ax.set_ylabel("fraction of lookups at or below")
    # Headroom above 1 for the legend.
    ax.set_ylim(0, 1.2)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_title("Lookup latency CDF, real UDP nodes on loopback, one process, default config")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    save(fig, out_dir, "latency.png")


def recovery(csv_dir, out_dir):
    data = rows(os.path.join(csv_dir, "recovery.csv"))
    t = [int(r["t_ms"]) / 1000.0 for r in data]
    col = lambda k: [float(r[k]) for r in data]  # noqa: E731
    alive = [int(r["nodes_alive"]) for r in data]
    before, after = alive[0], alive[-1]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 2]})
    top.step(t, col("found_fraction"), where="post", lw=2.5, zorder=5, label="keys found (get)")
    top.step(t, col("lookups_ok_fraction"), where="post", label="lookups answered with the true owner")
    top.step(t, col("copies_full_fraction"), where="post", label="keys back at full copies")
    top.step(t, col("ring_ok"), where="post", ls="--", label="ring correct (every successor and predecessor)")
    top.set_ylabel("fraction")
    top.set_ylim(-0.03, 1.05)
    top.legend(loc="lower right", fontsize=8)
    top.set_title(f"Kill-recovery: {before - after} of {before} nodes killed at t = 0 "
                  f"(loopback UDP, keys read every 100 ms)")
    top.title.set_fontsize(10)
    bottom.step(t, col("get_p99_ms"), where="post", color="tab:purple", label="get p99 of the sample")
    if "get_p50_ms" in data[0]:
        bottom.step(t, col("get_p50_ms"), where="post", color="tab:olive", label="get p50 of the sample")
    bottom.set_yscale("log")
    bottom.set_ylabel("get latency, ms (log scale)")
    bottom.set_xlabel("time since the kill, s (each sample: the reads issued then)")
    bottom.legend(loc="upper right", fontsize=8)
    for ax in (top, bottom):
        ax.axvline(0, color="black", lw=0.8)
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    save(fig, out_dir, "recovery.png")

    def held_from(ok):
        """Seconds after the kill from which `ok` held for every later sample."""
        idx = [i for i, r in enumerate(data) if int(r["t_ms"]) >= 0]
        bad = [i for i in idx if not ok(data[i])]
        if not bad:
            return 0.0
        if bad[-1] == idx[-1]:
            return None
        return int(data[bad[-1] + 1]["t_ms"]) / 1000.0

    fmt = lambda s: "never reached" if s is None else f"{s:.1f} s"  # noqa: E731
    one = lambda k: lambda r: float(r[k]) >= 1.0  # noqa: E731
    everything = lambda r: all(float(r[k]) >= 1.0 for k in  # noqa: E731
                               ("found_fraction", "lookups_ok_fraction", "ring_ok", "copies_full_fraction"))
    lows = {k: min(float(r[k]) for r in data if int(r["t_ms"]) >= 0)
            for k in ("found_fraction", "lookups_ok_fraction", "copies_full_fraction")}
    print(f"recovery {before} -> {after} nodes: lowest found {lows['found_fraction']:.2f}, "
          f"lookups right {lows['lookups_ok_fraction']:.2f}, full copies {lows['copies_full_fraction']:.2f}; "
          f"from t=0 on: keys found from {fmt(held_from(one('found_fraction')))}, "
          f"lookups right from {fmt(held_from(one('lookups_ok_fraction')))}, "
          f"ring correct from {fmt(held_from(one('ring_ok')))}, "
          f"full copies from {fmt(held_from(one('copies_full_fraction')))}, "
          f"all recovered from {fmt(held_from(everything))}; "
          f"get p99 highest {max(col('get_p99_ms')):.1f} ms")


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plots.py CSV_DIR OUT_DIR")
    csv_dir, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    hops(csv_dir, out_dir)
    latency(csv_dir, out_dir)
    recovery(csv_dir, out_dir)


if __name__ == "__main__":
    main()
