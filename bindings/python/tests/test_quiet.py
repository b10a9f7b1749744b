"""The library never prints: a process that runs a keyed ring, with the
library's log level at its most verbose but no log callback, and that makes
many calls fail, writes nothing to stdout or stderr."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import FAST, subprocess_env

# Succeeds quietly or exits 1 (its own exit status is the only output).
CHILD = r"""
import json, socket, sys, time
import chordsip
fast = json.loads(sys.argv[1])
opts = dict(fast, log_level="trace")
key = b"quiet-tests-overlay-key"
nodes = []
def ring_ok():
    return all(n.neighbours("successors") for n in nodes)
try:
    for i in range(3):
        n = chordsip.Node(opts, overlay_key=key)
        n.join(nodes[0].addr if nodes else None)
        nodes.append(n)
    deadline = time.monotonic() + 15
    while not ring_ok():
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.05)
    nodes[0].put("sip:quiet@example.org", "dev", b"v", 60)
    assert [v.data for v in nodes[1].get("sip:quiet@example.org")] == [b"v"]
    nodes[2].lookup("sip:quiet@example.org")
    nodes[1].register("sip:quiet@example.org", "cid-1", 2, ["sip:q@127.0.0.1:5060"], expires=300)
    assert nodes[2].lookup_aor("sip:quiet@example.org")
    # calls that fail, each with an error and no word on stdout/stderr
    failures = 0
    for bad in (
        lambda: nodes[1].register("sip:quiet@example.org", "cid-1", 1, ["sip:q@127.0.0.1:5060"], expires=300),  # out of order
        lambda: nodes[1].register("not a uri", "cid-2", 1, ["sip:q@127.0.0.1"]),
        lambda: nodes[1].register("sip:quiet@example.org", "cid-3", 1, ["sip:q@127.0.0.1"], expires=5),
        lambda: chordsip.Node(dict(fast, listen="nowhere")),
        lambda: chordsip.Node(dict(fast, op_timeout_ms=300), overlay_key=b"wrong").join(nodes[0].addr),
        lambda: chordsip.Node(dict(fast, op_timeout_ms=300)).join("127.0.0.1:9"),
        lambda: chordsip.Client(nodes[0].addr, timeout_ms=500).get("sip:quiet@example.org"),
        lambda: chordsip.Client(nodes[0].addr, key=b"w" * 20, timeout_ms=300).get("sip:quiet@example.org"),
        lambda: nodes[0].put("k", "w", b"x" * 100000, 10),
    ):
        try:
            bad()
        except chordsip.ChordsipError:
            failures += 1
    assert failures == 9, failures
    # garbage and forged datagrams at a node
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    host, port = nodes[0].addr.rsplit(":", 1)
    before = nodes[0].stats()["dropped_malformed"]
    for data in (b"garbage", b"CS\x01" + b"\x00" * 80, b"\xff" * 1400):
        s.sendto(data, (host, int(port)))
    deadline = time.monotonic() + 10
    while nodes[0].stats()["dropped_malformed"] < before + 3:  # each one seen and dropped
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.02)
    for n in reversed(nodes):
        n.leave(2000)
        n.close()
except Exception:
    sys.exit(1)
"""


def test_the_library_prints_nothing():
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(FAST)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=subprocess_env(),
        timeout=120,
    )
    assert proc.returncode == 0, "the child failed (exit %d)" % proc.returncode
    assert proc.stdout == b"", proc.stdout[:2000]
    assert proc.stderr == b"", proc.stderr[:2000]
