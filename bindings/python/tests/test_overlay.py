"""A 5-node overlay in one process: every node sees the same data and owners."""

from __future__ import annotations

import chordsip
import pytest
from conftest import FAST, wait_until

KEYS = ["sip:user%d@example.org" % i for i in range(20)]


def test_five_nodes_agree(ring_factory):
    nodes = ring_factory(5)
    assert len({n.addr for n in nodes}) == 5
    assert all(n.joined for n in nodes)

    # Writes from different nodes.
    for i, key in enumerate(KEYS):
        writer = nodes[i % 5]
        copies = writer.put(key, "dev-%d" % i, ("contact-%d" % i).encode(), 60)
        assert copies >= 1

    with pytest.raises(ValueError):
        nodes[0].trusts_writer(b"short")

    # Every node reads every value, and they all agree on the responsible node.
    for i, key in enumerate(KEYS):
        owners = set()
        for reader in nodes:
            values = reader.get(key)
            assert [(v.writer, v.data) for v in values] == [("dev-%d" % i, ("contact-%d" % i).encode())]
            # The test nodes share one writer key: every reader trusts the value,
            # no one trusts a key nobody configured.
            assert reader.trusts_writer(values[0].owner)
            assert not reader.trusts_writer(bytes(range(32)))
            assert values[0].expires_in_ms > 50_000
            info = reader.lookup(key)
            assert isinstance(info, chordsip.LookupInfo)
            assert info.hops <= 5
            owners.add((info.node_id, info.addr))
        assert len(owners) == 1, owners
        ((owner_id, owner_addr),) = owners
        assert owner_addr in {n.addr for n in nodes}
        # The owner is the key's successor on the ring.
        kid = chordsip.key_id(key)
        ids = sorted(n.id for n in nodes)
        expected = next((x for x in ids if x >= kid), ids[0])
        assert owner_id == expected

    # Two writers under one key: one value each.
    nodes[1].put(KEYS[0], "dev-extra", b"second", 60)
    assert sorted(v.writer for v in nodes[4].get(KEYS[0])) == ["dev-0", "dev-extra"]

    # Remove from yet another node; gone everywhere.
    assert nodes[3].remove(KEYS[0], "dev-0") >= 1
    for reader in nodes:
        assert [v.writer for v in reader.get(KEYS[0])] == ["dev-extra"]
    nodes[2].remove(KEYS[0], "dev-extra")
    for reader in nodes:
        assert reader.get(KEYS[0]) == []

    # Stats and info reflect the work.
    total_entries = sum(n.stats()["stored_entries"] for n in nodes)
    assert total_entries >= len(KEYS) - 1
    assert "successor" in nodes[0].info("ring")
    assert "puts_ok" in nodes[0].info("stats")
    assert nodes[0].ping(nodes[1].addr) > 0
    fingers = nodes[0].neighbours("fingers")
    assert fingers and all(isinstance(p, chordsip.Peer) for p in fingers)


def test_graceful_leave_keeps_data(ring_factory):
    nodes = ring_factory(3)
    nodes[0].put("sip:bob@example.org", "desk", b"x", 60)
    owner = nodes[1].lookup("sip:bob@example.org").addr
    leaving = next(n for n in nodes if n.addr == owner)
    rest = [n for n in nodes if n is not leaving]
    leaving.leave(2000)
    leaving.close()
    wait_until(lambda: rest[0].lookup("sip:bob@example.org").addr != owner, 5, "new owner")
    assert [v.data for v in rest[1].get("sip:bob@example.org")] == [b"x"]


def test_keyed_ring_keeps_strangers_out(ring_factory):
    """Members share an overlay key; a node with a wrong key or none cannot
    join, so it reads nothing, and the members never list it."""
    nodes = ring_factory(3, overlay_key=b"python-tests-overlay-key")
    assert nodes[0].put("sip:kept@example.org", "dev", b"kept", 60) >= 1
    fast = dict(FAST, op_timeout_ms=1000)
    for key in (b"python-tests-wrong-key", None):
        with chordsip.Node(fast, overlay_key=key) as stranger:
            with pytest.raises(chordsip.JoinFailed):
                stranger.join(nodes[1].addr)
            with pytest.raises(chordsip.NotJoined):
                stranger.get("sip:kept@example.org")
            for n in nodes:
                for kind in ("successors", "predecessors", "fingers"):
                    assert stranger.id not in {p.id for p in n.neighbours(kind)}
    for n in nodes:
        assert [v.data for v in n.get("sip:kept@example.org")] == [b"kept"]
