"""Abilities: nodes announce what they offer; nodes and client handles find
them least loaded first; a new load reorders them; a leave withdraws them."""

from __future__ import annotations

import pytest

import chordsip
from conftest import CLIENT_KEY, wait_until


def order(handle) -> list:
    return [p.addr for p in handle.find_peers("relay", 8)]


def test_peers_are_found_by_ability(ring_factory):
    a, b, c = ring_factory(3)
    b.set_abilities({"relay": {"capacity": 100, "load": 80, "turn": "10.0.0.2:3478"}})
    c.set_abilities(["relay:capacity=100,load=10,turn=10.0.0.3:3478", "voicemail"])
    wait_until(lambda: order(a) == [c.addr, b.addr], 5, "two relays, least loaded first")
    first = a.find_peers("relay", 1)
    assert len(first) == 1
    p = first[0]
    assert isinstance(p, chordsip.AbilityPeer)
    assert (p.id, p.addr, p.name, p.capacity, p.load) == (c.id, c.addr, "relay", 100, 10)
    assert p.attrs == {"turn": "10.0.0.3:3478"}
    assert 0 < p.expires_in_ms <= 30_000
    assert [v.addr for v in a.find_peers("voicemail")] == [c.addr]
    assert a.find_peers("pstn-gateway") == []

    with chordsip.Client(a.addr, key=CLIENT_KEY) as cl:
        assert order(cl) == [c.addr, b.addr]

    c.set_abilities("relay:capacity=100,load=95,turn=10.0.0.3:3478")
    wait_until(lambda: order(a) == [b.addr, c.addr], 5, "reordered by the new load")
    wait_until(lambda: a.find_peers("voicemail") == [], 5, "voicemail withdrawn")

    b.leave()
    assert order(a) == [c.addr], "a leave withdraws at once"


def test_bad_abilities_are_refused(node):
    for bad in ("Relay", "relay:load=x", "relay;relay", {"re lay": {}}):
        with pytest.raises(chordsip.InvalidArgument):
            node.set_abilities(bad)
    with pytest.raises(chordsip.InvalidArgument):
        node.find_peers("no such!")
    with pytest.raises(chordsip.InvalidArgument):
        node.find_peers("relay", -1)
    with pytest.raises(chordsip.InvalidArgument):
        chordsip.Node({"abilities": "relay;relay"})
