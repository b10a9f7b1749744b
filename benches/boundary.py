"""Cost of the language boundary, Python side: the same 16-node loopback
overlay and the same sequential blocking put/get/lookup as
benches/boundary.rs, through the ctypes binding. Prints
"| Python | op | ops/s | p50 us | p99 us |". Usage: boundary.py [OPS].
Run by scripts/bench-boundary.sh."""

import sys
import time

import chordsip

NODES = 16


def report(api, op, lat, total):
    lat.sort()
    n = len(lat)
    print(f"| {api} | {op} | {n / total:.0f} | {lat[n // 2]:.0f} | {lat[int(n * 0.99)]:.0f} |", flush=True)


def measure(ops, fn):
    lat = []
    t0 = time.perf_counter()
    for i in range(ops):
        t = time.perf_counter()
        fn(i)
        lat.append((time.perf_counter() - t) * 1e6)
    return lat, time.perf_counter() - t0


def main():
    ops = max(100, int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
    nodes = []
    for i in range(NODES):
        n = chordsip.Node()
        n.join([nodes[0].addr] if nodes else None)
        nodes.append(n)
    # Wait until lookups agree from different nodes, as the other harnesses do.
    for _ in range(300):
        if all(
            nodes[i].lookup(f"probe-{i}").node_id == nodes[(i + 7) % NODES].lookup(f"probe-{i}").node_id
            for i in range(NODES)
        ):
            break
        time.sleep(0.1)
    time.sleep(10)  # the same settle time in all three harnesses: finger tables complete
    data = b"x" * 100
    key = "sip:user{}@bench.example".format
    report("Python", "put", *measure(ops, lambda i: nodes[i % NODES].put(key(i), "dev", data, 600)))

    def get(i):
        assert len(nodes[(i + 5) % NODES].get(key(i))) == 1

    report("Python", "get", *measure(ops, get))
    report("Python", "lookup", *measure(ops, lambda i: nodes[(i + 9) % NODES].lookup(key(i))))
    report("Python", "stats", *measure(ops, lambda i: nodes[i % NODES].stats()))
    report("Python", "key_id", *measure(ops * 20, lambda i: chordsip.key_id(key(i))))
    with chordsip.Client(nodes[0].addr) as c:
        report("Python client UDP", "get", *measure(ops, lambda i: c.get(key(i))))
    for n in nodes:
        n.close()


if __name__ == "__main__":
    main()
