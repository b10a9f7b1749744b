#!/usr/bin/env python3
"""A user-space Ethernet switch that loses and delays frames, for kernels
without the netem qdisc (scripts/netns-tests.sh).

    impair.py --loss 0.2 --delay-ms 50 NS:IFNAME... (runs until SIGTERM)

For each NS:IFNAME it creates a TAP device, moves it into the network
namespace NS as IFNAME, and then forwards every frame between the TAPs
(learning source MACs, flooding the rest), dropping each with probability
--loss and delivering the others --delay-ms later. Prints "ready" on stdout
once the devices exist. Only the namespaces given are touched.
"""

import argparse
import fcntl
import heapq
import os
import random
import select
import signal
import struct
import subprocess
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000


def open_tap(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--loss", type=float, required=True)
    ap.add_argument("--delay-ms", type=float, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("ports", nargs="+", help="NS:IFNAME")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    fds = []
    for i, spec in enumerate(a.ports):
        ns, ifname = spec.split(":", 1)
        tmp = "csimp%d-%d" % (os.getpid() % 10000, i)
        fds.append(open_tap(tmp))
        subprocess.run(["ip", "link", "set", tmp, "netns", ns], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", tmp, "name", ifname], check=True)
    print("ready", flush=True)

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    where = {}  # source MAC -> port
    queue = []  # (due, seq, port, frame)
    seq = 0
    stats = {"in": 0, "lost": 0, "out": 0}
    delay = a.delay_ms / 1000.0
    while not stop:
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else 0.5
        try:
            ready, _, _ = select.select(fds, [], [], timeout)
        except InterruptedError:
            continue
        for fd in ready:
            port = fds.index(fd)
            while True:
                try:
                    frame = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if len(frame) < 14:
                    continue
                stats["in"] += 1
                where[frame[6:12]] = port
                if rng.random() < a.loss:
                    stats["lost"] += 1
                    continue
                dst = where.get(frame[0:6])
                targets = [dst] if dst is not None and dst != port else [
                    p for p in range(len(fds)) if p != port
                ]
                for p in targets:
                    seq += 1
                    heapq.heappush(queue, (time.monotonic() + delay, seq, p, frame))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, p, frame = heapq.heappop(queue)
            try:
                os.write(fds[p], frame)
                stats["out"] += 1
            except OSError:
                pass
    print("frames in %(in)d, lost %(lost)d, delivered %(out)d" % stats, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
