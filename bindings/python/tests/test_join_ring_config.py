"""join_async, the atomic ring snapshot, reading the configuration back,
callbacks without Futures, and how async errors are reported."""

from __future__ import annotations

import threading
import time

import pytest

import chordsip
from conftest import FAST, ring_converged, wait_until


def test_many_joins_at_once_from_one_thread():
    first = chordsip.Node(dict(FAST))
    nodes = [first]
    try:
        first.join()
        nodes += [chordsip.Node(dict(FAST)) for _ in range(12)]
        seen = []
        futures = [
            n.join_async(first.addr, callback=seen.append) for n in nodes[1:]
        ]
        assert [f.result(10) for f in futures] == [None] * 12
        wait_until(lambda: len(seen) == 12, 5, "every callback")
        assert seen == [None] * 12
        wait_until(lambda: ring_converged(nodes), 15, "13-node ring")
    finally:
        for n in nodes:
            n.close()


def test_a_join_nobody_answers_fails_through_the_callback():
    with chordsip.Node(dict(FAST, op_timeout_ms=300)) as lone:
        t0 = time.monotonic()
        fut = lone.join_async("127.0.0.1:9")
        with pytest.raises(chordsip.JoinFailed):
            fut.result(5)
        assert time.monotonic() - t0 < 0.6 + 1.0


def test_argument_errors_raise_at_the_call_and_never_call_back(node):
    calls = []
    with pytest.raises(chordsip.InvalidArgument):
        node.join_async("not an address", callback=calls.append)
    with pytest.raises(chordsip.InvalidArgument):
        node.lookup_async("", callback=calls.append)
    with pytest.raises(chordsip.InvalidArgument):
        node.lookup_async("k", future=False)  # no callback and no Future
    # A failure of the operation itself reaches the callback (and Future).
    with chordsip.Node(dict(FAST)) as unjoined:
        unjoined.start()
        got = threading.Event()
        out = []
        unjoined.lookup_async("k", callback=lambda r: (out.append(r), got.set()), future=False)
        assert got.wait(5)
        assert isinstance(out[0], chordsip.NotJoined)
    time.sleep(0.2)
    assert calls == []


def test_callback_without_future(node):
    got = threading.Event()
    out = []
    ret = node.put_async("sip:nofuture@example.org", "w", b"v", 30,
                         callback=lambda r: (out.append(r), got.set()), future=False)
    assert ret is None
    assert got.wait(5) and out == [1]


def test_ring_snapshot_agrees_with_the_neighbour_lists(ring_factory):
    nodes = ring_factory(6)
    n = nodes[2]
    snap = n.ring()
    assert isinstance(snap, chordsip.RingSnapshot)
    assert snap.node == chordsip.Peer(n.id, n.addr)
    assert snap.joined is True
    assert snap.successors == n.neighbours("successors")
    assert snap.predecessors == n.neighbours("predecessors")
    assert snap.fingers == n.neighbours("fingers")
    assert snap.members == []
    ids = {x.id for x in nodes}
    assert {p.id for p in snap.successors} <= ids


def test_configuration_reads_back():
    with chordsip.Node(dict(FAST, successors=5), overlay_key=b"k" * 16) as n:
        assert n.config("successors") == "5"
        assert n.config("replicas") == "3"
        assert n.config("overlay_key") == "set"
        assert n.config("client_key") == "set"  # FAST gives one; never its value
        assert n.config("node_key") == "unset"
        with pytest.raises(chordsip.InvalidArgument):
            n.config("no_such_option")
        n.join()
        threads = int(n.config("threads"))
        assert 1 <= threads <= 64
