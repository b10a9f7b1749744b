"""Publishing for pure P2P user agents (``Node.publish``): the library keeps
Call-ID and CSeq, refreshes on its own timers, reports a refresh that fails
and recovers, replaces a contact, withdraws, and a graceful leave withdraws."""

from __future__ import annotations

import select
import threading
import time

import pytest

import chordsip
from chordsip import EventKind
from conftest import FAST, wait_until

UA_OPTS = {k: v for k, v in FAST.items() if k != "writer_key"}
AOR = "sip:alice@p2p.example"


@pytest.fixture
def ua_factory():
    """Makes user agents' nodes (each of its own writer key, refreshing
    every 300 ms) joined to a ring; closes them after the test."""
    made = []

    def factory(ring, events=None, delivery="thread", **opts):
        n = chordsip.Node(dict(UA_OPTS, publish_refresh_ms=300, **opts), on_event=events, delivery=delivery)
        made.append(n)
        n.join(ring[0].addr)
        return n

    yield factory
    for n in made:
        n.close()


def refresh_events(seen, kind, aor=AOR):
    return [e for e in list(seen) if e.kind == kind and e.aor == aor]


def test_publish_refreshes_on_its_own_with_one_call_id_then_withdraw(ring_factory, ua_factory):
    ring = ring_factory(3)
    log = []
    node = ua_factory(ring, events=log.append)
    assert node.publish(AOR, "sip:alice@127.0.0.1:5070", expires=600, q=0.5) == 600
    first = ring[1].lookup_aor(AOR, all=True)
    assert [(b.contact, b.q, b.expires > 590) for b in first] == [("sip:alice@127.0.0.1:5070", 0.5, True)]
    wait_until(lambda: len(refresh_events(log, EventKind.REFRESHED)) >= 3, 20, "three refreshes")
    ev = refresh_events(log, EventKind.REFRESHED)[0]
    assert (ev.expires, ev.error, ev.peer) == (600, None, None)
    later = ring[2].lookup_aor(AOR, all=True)
    assert len(later) == 1 and later[0].call_id == first[0].call_id
    assert later[0].cseq >= first[0].cseq + 3

    node.withdraw(AOR)
    assert ring[1].lookup_aor(AOR, all=True) == []
    # No refresh brings it back: three refresh periods and more pass quietly.
    count = len(log)
    time.sleep(1.0)
    assert refresh_events(log[count:], EventKind.REFRESHED) == []
    assert ring[2].lookup_aor(AOR, all=True) == []


def test_a_new_contact_replaces_the_old_and_leave_withdraws(ring_factory, ua_factory):
    ring = ring_factory(3)
    node = ua_factory(ring)
    inst = "<urn:uuid:00000000-0000-4000-8000-0000000000aa>"
    node.publish(AOR, "sip:alice@127.0.0.1:5070", 300, instance=inst)
    # The network changed: the new address replaces the old at once.
    assert node.publish_async(AOR, "sip:alice@127.0.0.2:5072", 300, instance=inst).result(10) == 300
    assert [b.contact for b in ring[1].lookup_aor(AOR, all=True)] == ["sip:alice@127.0.0.2:5072"]
    assert node.refresh_async(AOR).result(10) == 300
    node.publish("sip:alice-work@p2p.example", "sip:alice@127.0.0.2:5072", 300)
    node.leave(3000)
    for aor in (AOR, "sip:alice-work@p2p.example"):
        assert ring[2].lookup_aor(aor, all=True) == []


def test_a_failed_refresh_is_an_event_and_the_library_retries_until_it_succeeds(ring_factory, ua_factory):
    # A peer counts as dead after about a second of silence and an
    # operation gives up after 400 ms: a refresh routed to a node that just
    # died fails before the ring is repaired around it.
    slow = dict(op_timeout_ms=400, rpc_timeout_min_ms=300, rpc_timeout_initial_ms=300)
    ring = ring_factory(2, **slow)
    log = []
    node = ua_factory(ring, events=log.append, **slow)
    wait_until(lambda: len(node.neighbours("successors")) >= 2, 10, "a 3-node ring")
    # An AOR another node holds, so that the refresh must reach it.
    aor = next(
        a for a in ("sip:dave%d@p2p.example" % i for i in range(100)) if node.lookup(a).node_id != node.id
    )
    node.publish(aor, "sip:dave@127.0.0.1:5090", 600)
    killed = len(log)
    for n in ring:
        n.close()  # a crash: no leave

    def failed_then_refreshed():
        kinds = [e.kind for e in log[killed:] if e.aor == aor]
        return EventKind.REFRESH_FAILED in kinds and EventKind.REFRESHED in kinds[
            kinds.index(EventKind.REFRESH_FAILED) :
        ]

    wait_until(failed_then_refreshed, 30, "a failed refresh, then a good one")
    failed = next(e for e in log[killed:] if e.kind == EventKind.REFRESH_FAILED)
    assert isinstance(failed.error, chordsip.ChordsipError), failed
    assert failed.error.detail, failed
    assert failed.expires > 590  # the binding still lives
    assert 0 < failed.retry_ms <= 300
    assert [b.contact for b in node.lookup_aor(aor, all=True)] == ["sip:dave@127.0.0.1:5090"]


def test_fd_delivery_brings_events_and_completions_to_the_callers_thread(ring_factory, ua_factory):
    ring = ring_factory(2)
    log = []
    node = ua_factory(ring, events=lambda e: log.append((threading.get_ident(), e)), delivery="fd")
    fut = node.publish_async(AOR, "sip:alice@127.0.0.1:5070", 120)

    def refreshed():
        return [e for _, e in log if e.kind == EventKind.REFRESHED]

    deadline = time.monotonic() + 20
    while (not fut.done() or not refreshed()) and time.monotonic() < deadline:
        if select.select([node.event_fd()], [], [], 0.5)[0]:
            node.process()
    assert fut.result(0) == 120
    assert refreshed(), "no refresh event within 20 s"
    assert {tid for tid, _ in log} == {threading.get_ident()}
    assert (refreshed()[0].aor, refreshed()[0].expires) == (AOR, 120)


def test_bad_arguments_say_why_and_publish_nothing(ring_factory, ua_factory):
    ring = ring_factory(2)
    node = ua_factory(ring)
    cases = [
        (dict(contact="<sip:a@127.0.0.1>"), chordsip.InvalidArgument, "bare SIP URI"),
        (dict(contact='"Alice" sip:a@127.0.0.1'), chordsip.InvalidArgument, "bare SIP URI"),
        (dict(aor="alice"), chordsip.InvalidArgument, "aor"),
        (dict(expires=0), chordsip.InvalidArgument, "withdraw"),
        (dict(expires=30), chordsip.IntervalTooBrief, ""),
        (dict(q="high"), chordsip.InvalidArgument, "q"),
        (dict(q=1.5), chordsip.InvalidArgument, "within 0..1"),
        (dict(aor="sip:a\0@x"), chordsip.InvalidArgument, "NUL"),
    ]
    for change, error, words in cases:
        args = dict(aor=AOR, contact="sip:alice@127.0.0.1:5070", expires=300)
        args.update(change)
        with pytest.raises(error) as e:
            node.publish(**args)
        assert words in (e.value.detail or ""), (change, e.value.detail)
    with pytest.raises(TypeError):
        node.publish(AOR, "sip:alice@127.0.0.1:5070", q=object())
    for call in (node.refresh, node.withdraw):
        with pytest.raises(chordsip.InvalidArgument) as e:
            call(AOR)
        assert "call publish first" in e.value.detail
    assert ring[1].lookup_aor(AOR, all=True) == []
    with chordsip.Node(dict(UA_OPTS)) as fresh:
        with pytest.raises(chordsip.BadState) as e:
            fresh.publish(AOR, "sip:alice@127.0.0.1:5070")
        assert "join" in e.value.detail


def test_blocking_publish_from_a_callback_is_refused(ring_factory, ua_factory):
    node = ua_factory(ring_factory(2))
    node.publish(AOR, "sip:alice@127.0.0.1:5070", 300)
    got_in_cb: list = []

    def blocking_refresh(_outcome):
        try:
            got_in_cb.append(node.refresh(AOR))
        except chordsip.ChordsipError as e:
            got_in_cb.append(e)

    node.refresh_async(AOR, blocking_refresh).result(10)
    wait_until(lambda: got_in_cb, 5, "the callback")
    assert isinstance(got_in_cb[0], chordsip.InCallback), got_in_cb
