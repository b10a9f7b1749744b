"""One-hop (hybrid) overlays through the binding: member events with what
each member announced, the members list, and the refusal of a node of the
other routing mode at join."""

from __future__ import annotations

import threading
from typing import List

import pytest

import chordsip
from conftest import FAST, wait_until

ONE_HOP = dict(FAST, routing="one-hop", membership_sync_ms=300)


def test_members_are_announced_with_their_sip_address_and_capacity():
    events: List[chordsip.Event] = []
    lock = threading.Lock()

    def on_event(ev):
        with lock:
            events.append(ev)

    with chordsip.Node(ONE_HOP, on_event=on_event) as first:
        first.join()
        others = []
        try:
            for i in range(3):
                n = chordsip.Node(dict(ONE_HOP, sip_address="127.0.0.1:%d" % (5070 + i), capacity=10 * (i + 1)))
                others.append(n)
                n.join(first.addr)

            def ups():
                with lock:
                    return {e.peer.addr: e for e in events if e.kind == chordsip.EventKind.MEMBER_UP}

            wait_until(lambda: {n.addr for n in others} <= set(ups()), 10, "a MEMBER_UP per newcomer")
            for i, n in enumerate(others):
                ev = ups()[n.addr]
                assert ev.sip_address == "127.0.0.1:%d" % (5070 + i)
                assert ev.weight == 10 * (i + 1)
            everyone = {first.addr} | {n.addr for n in others}
            for node in [first] + others:
                wait_until(
                    lambda node=node: {p.addr for p in node.neighbours("members")} == everyone,
                    10,
                    "every member in every table",
                )
            # A member leaves: the others hear of it.
            gone = others.pop()
            gone_addr = gone.addr
            gone.leave()
            gone.close()
            wait_until(
                lambda: any(
                    e.kind == chordsip.EventKind.MEMBER_DOWN and e.peer.addr == gone_addr for e in list(events)
                ),
                10,
                "a MEMBER_DOWN for the member that left",
            )
            wait_until(lambda: gone_addr not in {p.addr for p in first.neighbours("members")}, 10, "table update")
        finally:
            for n in others:
                n.close()


def test_a_node_of_the_other_routing_mode_is_refused_with_a_clear_error():
    with chordsip.Node(ONE_HOP) as hub:
        hub.join()
        with chordsip.Node(FAST) as multi:
            with pytest.raises(chordsip.ModeMismatch) as e:
                multi.join(hub.addr)
            assert "another mode" in str(e.value)
        assert hub.neighbours("members")[0].addr == hub.addr
    with chordsip.Node(FAST) as multi:
        multi.join()
        assert multi.neighbours("members") == []
        with chordsip.Node(ONE_HOP) as one:
            with pytest.raises(chordsip.ModeMismatch):
                one.join(multi.addr)
