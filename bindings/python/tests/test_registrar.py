"""The SIP registrar: REGISTER processing and AOR lookup on nodes and clients."""

from __future__ import annotations

import select
import threading
import time
from typing import Any, List

import pytest

import chordsip
from chordsip import Binding, Contact, RegisterResult
from conftest import CLIENT_KEY, FAST, make_ring, wait_until

AOR = "sip:alice@example.org"


def contacts_of(bindings: List[Binding]) -> List[str]:
    return [b.contact for b in bindings]


@pytest.fixture(scope="module")
def ring():
    """One 5-node overlay for the whole module (each test uses its own AORs)."""
    nodes = make_ring(5)
    yield nodes
    for n in nodes:
        n.close()


def test_register_and_lookup_across_five_nodes(ring):
    aor = "sip:alice5@example.org"
    r = ring[0].register(
        aor,
        "call-1@host",
        1,
        [
            Contact("sip:alice@192.0.2.10:5060", q=0.5),
            Contact("sip:alice@192.0.2.11:5062;transport=tcp", q="1", instance="<urn:uuid:0001>", reg_id=1),
        ],
        expires=600,
        path=["<sip:edge1.example.org;lr>", "<sip:edge2.example.org;lr>"],
        received="sip:198.51.100.7:40123",
    )
    assert isinstance(r, RegisterResult)
    assert (r.inserted, r.updated, r.deleted) == (2, 0, 0)
    assert contacts_of(r.bindings) == [
        "sip:alice@192.0.2.11:5062;transport=tcp",
        "sip:alice@192.0.2.10:5060",
    ]
    top, low = r.bindings
    assert isinstance(top, Binding)
    assert (top.q, low.q) == (1.0, 0.5)
    assert (top.instance, top.reg_id) == ("<urn:uuid:0001>", 1)
    assert (low.instance, low.reg_id) == (None, None)
    assert top.path == ("<sip:edge1.example.org;lr>", "<sip:edge2.example.org;lr>")
    assert top.received == "sip:198.51.100.7:40123"
    assert (top.call_id, top.cseq) == ("call-1@host", 1)
    assert 590 <= top.expires <= 600

    # Every node finds them, under any spelling of the AOR.
    for reader in ring:
        for spelling in (aor, "sip:alice5@EXAMPLE.ORG", "sips:alice5@example.org:5061;transport=tls"):
            got = reader.lookup_aor(spelling)
            assert contacts_of(got) == contacts_of(r.bindings), (reader, spelling)
            assert [b.q for b in got] == [1.0, 0.5]
            assert all(0 < b.expires <= 600 for b in got)
    # The user part is case-sensitive: another AOR.
    assert ring[3].lookup_aor("sip:ALICE5@example.org") == []
    assert ring[2].lookup_aor("sip:nobody@example.org") == []


def test_register_defaults_and_number_forms(ring):
    aor = "sip:defaults@example.org"
    r = ring[1].register(aor, "d1", 7, ["sip:d@192.0.2.1", Contact("sip:d@192.0.2.2", q=0.055, expires=120)])
    by = {b.contact: b for b in r.bindings}
    assert 3590 <= by["sip:d@192.0.2.1"].expires <= 3600  # no expires anywhere: 3600 s
    assert by["sip:d@192.0.2.1"].q == 1.0 and by["sip:d@192.0.2.1"].path == ()
    assert by["sip:d@192.0.2.1"].received is None
    assert 110 <= by["sip:d@192.0.2.2"].expires <= 120
    assert by["sip:d@192.0.2.2"].q == 0.055
    # Expires above the maximum is capped at a day.
    r = ring[1].register(aor, "d1", 8, [Contact("sip:d@192.0.2.1", expires=10**6)])
    assert max(b.expires for b in r.bindings) <= 86400


def test_q_order(ring):
    aor = "sip:qorder@example.org"
    for i, q in enumerate([0.1, 1, 0.7, "0.300"]):
        ring[i].register(aor, "q-%d" % i, 1, [Contact("sip:q@192.0.2.%d" % i, q=q)])
    got = ring[4].lookup_aor(aor)
    assert [b.q for b in got] == [1.0, 0.7, 0.3, 0.1]
    assert contacts_of(got) == ["sip:q@192.0.2.1", "sip:q@192.0.2.2", "sip:q@192.0.2.3", "sip:q@192.0.2.0"]


def test_refresh_unregister_one_and_star(ring):
    aor = "sip:bob@example.org"
    a, b = ring[0], ring[4]
    r = a.register(aor, "bob-call", 1, ["sip:bob@192.0.2.20", "sip:bob@192.0.2.21"], expires=300)
    assert (r.inserted, r.updated, r.deleted) == (2, 0, 0)

    # Refresh: same Call-ID, higher CSeq, an equivalent URI -> updated in place.
    r = b.register(aor, "bob-call", 2, [Contact("sip:bob@192.0.2.20", expires=900)])
    assert (r.inserted, r.updated, r.deleted) == (0, 1, 0)
    assert len(r.bindings) == 2
    fresh = next(x for x in r.bindings if x.contact == "sip:bob@192.0.2.20")
    assert fresh.cseq == 2 and 890 <= fresh.expires <= 900

    # Unregister one.
    r = a.register(aor, "bob-call", 3, [Contact("sip:bob@192.0.2.21", expires=0)])
    assert (r.inserted, r.updated, r.deleted) == (0, 0, 1)
    assert contacts_of(r.bindings) == ["sip:bob@192.0.2.20"]
    for n in ring:
        assert contacts_of(n.lookup_aor(aor)) == ["sip:bob@192.0.2.20"]

    # A new Call-ID for the same contact replaces it whatever its CSeq.
    r = b.register(aor, "bob-reboot", 1, ["sip:bob@192.0.2.20"], expires=300)
    assert (r.inserted, r.updated) == (0, 1) and r.bindings[0].call_id == "bob-reboot"

    # Contact: * with Expires: 0 removes every binding.
    a.register(aor, "bob-other", 1, ["sip:bob@192.0.2.22"])
    r = b.register(aor, "bob-star", 1, [], expires=0, star=True)
    assert r.deleted == 2 and r.bindings == []
    for n in ring:
        assert n.lookup_aor(aor) == []
    # '*' needs Expires: 0 and no contacts.
    with pytest.raises(chordsip.InvalidArgument):
        a.register(aor, "bob-star", 2, [], expires=60, star=True)
    with pytest.raises(chordsip.InvalidArgument):
        a.register(aor, "bob-star", 3, ["sip:bob@192.0.2.20"], expires=0, star=True)


def test_rfc5626_flow_replaces_binding(ring):
    aor = "sip:flow@example.org"
    inst = "<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"
    ring[0].register(aor, "f1", 1, [Contact("sip:flow@192.0.2.30:5060", instance=inst, reg_id=1)])
    # Same instance and reg-id after a reboot, from a new address: replaces.
    r = ring[1].register(aor, "f2", 1, [Contact("sip:flow@192.0.2.31:5070", instance=inst, reg_id=1)])
    assert (r.inserted, r.updated) == (0, 1)
    assert contacts_of(r.bindings) == ["sip:flow@192.0.2.31:5070"]
    # Another reg-id is another flow.
    r = ring[2].register(aor, "f3", 1, [Contact("sip:flow@192.0.2.32", instance=inst, reg_id=2)])
    assert r.inserted == 1 and len(r.bindings) == 2
    # reg-id without +sip.instance is malformed.
    with pytest.raises(chordsip.InvalidArgument):
        ring[0].register(aor, "f4", 1, [Contact("sip:flow@192.0.2.33", reg_id=1)])


def test_out_of_order(ring):
    aor = "sip:carol@example.org"
    ring[0].register(aor, "carol-call", 5, ["sip:carol@192.0.2.40"])
    for cseq in (5, 4):
        with pytest.raises(chordsip.OutOfOrder) as e:
            ring[3].register(aor, "carol-call", cseq, [Contact("sip:carol@192.0.2.40", expires=0)])
        assert e.value.code == 22 and e.value.name == "CHORDSIP_ERR_OUT_OF_ORDER"
    (b,) = ring[2].lookup_aor(aor)
    assert (b.contact, b.cseq) == ("sip:carol@192.0.2.40", 5)


def test_full_at_seventeen_bindings(ring):
    aor = "sip:crowd@example.org"
    sixteen = [Contact("sip:crowd@192.0.2.%d" % i, q=i / 20) for i in range(16)]
    r = ring[0].register(aor, "crowd", 1, sixteen)
    assert r.inserted == 16 and len(r.bindings) == 16
    assert [b.q for b in r.bindings] == sorted((c.q for c in sixteen), reverse=True)
    with pytest.raises(chordsip.StorageFull) as e:
        ring[1].register(aor, "crowd", 2, ["sip:crowd@192.0.2.200"])
    assert e.value.code == 7
    assert len(ring[2].lookup_aor(aor)) == 16
    # 17 in one request is refused as well, and changes nothing.
    other = "sip:crowd17@example.org"
    with pytest.raises(chordsip.StorageFull):
        ring[3].register(other, "c17", 1, ["sip:c@192.0.2.%d" % i for i in range(17)])
    assert ring[4].lookup_aor(other) == []


def test_interval_too_brief(ring):
    aor = "sip:brief@example.org"
    minimum = chordsip.min_expires()
    assert 0 < minimum <= 3600
    with pytest.raises(chordsip.IntervalTooBrief) as e:
        ring[0].register(aor, "b1", 1, ["sip:brief@192.0.2.50"], expires=minimum // 2)
    assert e.value.code == 23 and e.value.min_expires == minimum
    with pytest.raises(chordsip.IntervalTooBrief):
        ring[0].register(aor, "b1", 2, [Contact("sip:brief@192.0.2.50", expires=minimum - 1)], expires=3600)
    assert ring[1].lookup_aor(aor) == []
    r = ring[0].register(aor, "b1", 3, [Contact("sip:brief@192.0.2.50", expires=minimum)])
    assert r.inserted == 1


def test_sip_reply(ring):
    """The SIP answer of each refusal, as the KEMI script sends it."""
    n, aor = ring[0], "sip:answers@example.org"
    minimum = chordsip.min_expires()
    with pytest.raises(chordsip.IntervalTooBrief) as brief:
        n.register(aor, "a1", 1, [Contact("sip:a@192.0.2.70", expires=minimum - 1)])
    assert chordsip.sip_reply(brief.value) == (423, "Interval Too Brief", "Min-Expires: %d\r\n" % minimum)
    r = n.register(aor, "a1", 2, [Contact("sip:a@192.0.2.70", expires=minimum)])
    assert r.inserted == 1 and 0 < r.bindings[0].expires <= minimum
    with pytest.raises(chordsip.OutOfOrder) as stale:
        n.register(aor, "a1", 1, ["sip:a@192.0.2.70"])
    assert chordsip.sip_reply(stale.value).status == 500 and "out of order" in chordsip.sip_reply(stale.value).reason
    with pytest.raises(chordsip.InvalidArgument) as bad:
        n.register(aor, "a1", 3, [Contact("sip:a@192.0.2.70", q="7")])
    assert chordsip.sip_reply(bad.value) == (400, "Bad Request", "")
    reply = chordsip.sip_reply(chordsip.StorageFull())
    assert reply.status == 403 and reply.headers == ""
    assert chordsip.sip_reply(0) == chordsip.SipReply(200, "OK", "")
    for err in (chordsip.ChordsipTimeout(), chordsip.NoRoute(), chordsip.NotJoined()):
        reply = chordsip.sip_reply(err)
        assert reply.status == 503 and reply.headers.startswith("Retry-After: ")
    assert chordsip.sip_reply(999).status == chordsip.sip_reply(chordsip.Panic()).status == 500
    # the 200 OK's Contact value, as the KEMI script sends it
    r = n.register(aor, "a1", 5, [Contact("sip:a@192.0.2.71", q=0.25, instance="<urn:uuid:a>", reg_id=3)])
    values = sorted(b.contact_value for b in r.bindings)
    assert values[0].startswith("<sip:a@192.0.2.70>;expires=") and ";" not in values[0].split("expires=")[1]
    head, _, tail = values[1].partition(";expires=")
    assert head == "<sip:a@192.0.2.71>"
    assert tail.split(";", 1)[1] == 'q=0.25;+sip.instance="<urn:uuid:a>";reg-id=3'
    n.register(aor, "a1", 6, [], star=True, expires=0)


def test_next_hop(ring):
    """Where requests for a binding go, as the KEMI script routes them: the
    library decides (contact, received for a flow or NAT, first Path URI)."""
    Hop = chordsip.Hop
    aor = "sip:hops@example.org"
    cases = [
        # (contact, received, reg_id, path, next hop kind, next hop)
        ("sip:h@192.0.2.80:5060", None, None, (), Hop.CONTACT, "sip:h@192.0.2.80:5060"),
        ("sip:h@192.0.2.80:5060", "sip:192.0.2.80:4000", None, (), Hop.CONTACT, "sip:h@192.0.2.80:5060"),
        ("sip:h@10.0.0.8", "sip:203.0.113.8:4000", None, (), Hop.RECEIVED, "sip:203.0.113.8:4000"),
        ("sip:h@10.0.0.8", "203.0.113.8:4000", None, (), Hop.RECEIVED, "sip:203.0.113.8:4000"),
        ("sip:h@ua.example.org", "sip:192.0.2.80:4000", None, (), Hop.RECEIVED, "sip:192.0.2.80:4000"),
        ("sip:h@192.0.2.80:5060", "sip:192.0.2.80:4000", 1, (), Hop.RECEIVED, "sip:192.0.2.80:4000"),
        ("sip:h@10.0.0.8", "sip:203.0.113.8:4000", 1, ("<sip:edge.example.org;lr>", "<sip:core;lr>"),
         Hop.PATH, "sip:edge.example.org;lr"),
    ]
    with chordsip.Client(ring[3].addr, key=CLIENT_KEY, timeout_ms=5000) as client:
        for cseq, (contact, received, reg_id, path, kind, hop) in enumerate(cases, 1):
            instance = "<urn:uuid:hop>" if reg_id is not None else None
            c = Contact(contact, instance=instance, reg_id=reg_id)
            r = ring[0].register(aor, "hops", 2 * cseq, [c], expires=600, path=list(path), received=received)
            for bindings in (r.bindings, ring[1].lookup_aor(aor), client.lookup_aor(aor)):
                assert [(b.next_hop_kind, b.next_hop) for b in bindings] == [(kind, hop)], (contact, received)
            ring[0].register(aor, "hops", 2 * cseq + 1, [], star=True, expires=0)


def test_argument_checks(ring):
    n = ring[0]
    with pytest.raises(TypeError):
        n.register(AOR, "x", 1, "sip:alice@192.0.2.1")  # a str, not a list
    with pytest.raises(TypeError):
        n.register(AOR, "x", 1, [42])
    with pytest.raises(TypeError):
        n.register(AOR, "x", 1, [], path="<sip:p;lr>")
    with pytest.raises(TypeError):
        n.register(AOR, "x", 1, [], star=1)
    with pytest.raises(chordsip.InvalidArgument):
        n.register(AOR, "x", -1, ["sip:a@192.0.2.1"])
    with pytest.raises(chordsip.InvalidArgument):
        n.register(AOR, "x", 1, [Contact("sip:a@192.0.2.1", expires=-5)])
    for bad_q in (1.5, -0.1, 0.1234, float("nan")):
        with pytest.raises(chordsip.InvalidArgument):
            n.register(AOR, "x", 1, [Contact("sip:a@192.0.2.1", q=bad_q)])
    with pytest.raises(chordsip.InvalidArgument):  # the library checks q text
        n.register(AOR, "x", 1, [Contact("sip:a@192.0.2.1", q="2")])
    with pytest.raises(chordsip.InvalidArgument):
        n.register("mailto:alice@example.org", "x", 1, ["sip:a@192.0.2.1"])
    with pytest.raises(chordsip.InvalidArgument):
        n.register(AOR, "x\0y", 1, ["sip:a@192.0.2.1"])
    with pytest.raises(chordsip.InvalidArgument):
        n.lookup_aor("not a uri")
    with pytest.raises(chordsip.InvalidArgument):
        n.lookup_aor_async("not a uri")
    assert n.lookup_aor(AOR) == []  # nothing was stored by the failures


def test_through_a_client(ring):
    aor = "sip:dave@example.org"
    with chordsip.Client(ring[2].addr, key=CLIENT_KEY, timeout_ms=5000) as c:
        r = c.register(aor, "dave-call", 1, [Contact("sip:dave@192.0.2.60", q=0.8), "sip:dave@192.0.2.61"])
        assert (r.inserted, r.updated, r.deleted) == (2, 0, 0)
        assert contacts_of(r.bindings) == ["sip:dave@192.0.2.61", "sip:dave@192.0.2.60"]
        assert contacts_of(c.lookup_aor("sip:dave@EXAMPLE.org")) == contacts_of(r.bindings)
        for n in ring:
            assert contacts_of(n.lookup_aor(aor)) == contacts_of(r.bindings)
        r = c.register(aor, "dave-call", 2, [Contact("sip:dave@192.0.2.60", expires=0)])
        assert r.deleted == 1
        # The first REGISTER again (a retransmission: .61 carries its Call-ID
        # and CSeq) changes nothing; in particular .60 does not come back.
        again = c.register(aor, "dave-call", 1, [Contact("sip:dave@192.0.2.60", q=0.8), "sip:dave@192.0.2.61"])
        assert (again.inserted, again.updated, again.deleted) == (0, 0, 0)
        assert contacts_of(again.bindings) == ["sip:dave@192.0.2.61"]
        with pytest.raises(chordsip.OutOfOrder):  # CSeq 1 asking for something else
            c.register(aor, "dave-call", 1, [Contact("sip:dave@192.0.2.61", q=0.5)])
        with pytest.raises(chordsip.IntervalTooBrief):
            c.register(aor, "dave-call", 3, ["sip:dave@192.0.2.61"], expires=1)
        assert contacts_of(ring[4].lookup_aor(aor)) == ["sip:dave@192.0.2.61"]
    with pytest.raises(chordsip.Closed):
        c.lookup_aor(aor)


def test_lookup_aor_async_thread_mode(ring):
    aor = "sip:erin@example.org"
    ring[0].register(aor, "erin", 1, [Contact("sip:erin@192.0.2.70", q=0.2), "sip:erin@192.0.2.71"])
    got: List[Any] = []
    threads: List[int] = []
    done = threading.Event()

    def cb(outcome: Any) -> None:
        got.append(outcome)
        threads.append(threading.get_ident())
        done.set()

    fut = ring[3].lookup_aor_async(aor, cb)
    assert done.wait(10)
    assert contacts_of(fut.result(5)) == ["sip:erin@192.0.2.71", "sip:erin@192.0.2.70"]
    assert got == [fut.result()] and threads[0] != threading.get_ident()
    assert ring[1].lookup_aor_async("sip:nobody@example.org").result(5) == []

    # Errors arrive as exception objects.
    with chordsip.Node(FAST) as lonely:
        lonely.start()
        fut = lonely.lookup_aor_async(aor)
        with pytest.raises(chordsip.NotJoined):
            fut.result(10)

    # A blocking registrar call from a library thread is refused, not deadlocked.
    inner: List[Any] = []

    def blocking(outcome: Any) -> None:
        try:
            ring[3].register(aor, "erin", 2, ["sip:erin@192.0.2.72"])
        except chordsip.ChordsipError as e:
            inner.append(e)
        done.set()

    done.clear()
    ring[3].lookup_aor_async(aor, blocking)
    assert done.wait(10)
    assert len(inner) == 1 and isinstance(inner[0], chordsip.InCallback)


def test_lookup_aor_async_fd_mode():
    nodes = make_ring(3, delivery="fd")
    try:
        aor = "sip:frank@example.org"
        nodes[0].register(aor, "frank", 1, ["sip:frank@192.0.2.80"])
        got: List[Any] = []
        fut = nodes[2].lookup_aor_async(aor, got.append)
        time.sleep(0.05)
        assert got == []  # nothing runs before process()
        deadline = time.monotonic() + 10
        while not got:
            assert time.monotonic() < deadline, "fd-mode callback did not arrive"
            ready, _, _ = select.select([nodes[2]], [], [], 0.2)
            if ready:
                nodes[2].process()
        assert len(got) == 1 and contacts_of(got[0]) == ["sip:frank@192.0.2.80"]
        assert fut.result(0) == got[0]

        # A callback run by process() may make blocking calls (register here).
        results: List[Any] = []

        def reregister(outcome: Any) -> None:
            results.append(nodes[2].register(aor, "frank", 2, ["sip:frank@192.0.2.80"], expires=120))

        nodes[2].lookup_aor_async(aor, reregister)
        wait_until(lambda: nodes[2].process() >= 0 and bool(results), 10, "fd callback")
        assert results[0].updated == 1

        # Closing completes a pending lookup exactly once (a result or Cancelled).
        late: List[Any] = []
        nodes[1].lookup_aor_async(aor, late.append)
        nodes[1].close()
        assert len(late) == 1
        assert isinstance(late[0], (list, chordsip.Cancelled))
    finally:
        for n in nodes:
            n.close()


def test_register_async_many_in_flight(ring):
    """register_async: many REGISTERs in flight at once, each answered once
    as register() would answer; refusals come as exception objects, a
    malformed request raises at once."""
    futs = [
        ring[1].register_async("sip:gina%d@example.org" % i, "gina-%d" % i, 1, ["sip:g%d@192.0.2.90" % i])
        for i in range(50)
    ]
    for i, f in enumerate(futs):
        r = f.result(20)
        assert isinstance(r, RegisterResult)
        assert (r.inserted, r.updated, r.deleted) == (1, 0, 0)
        assert contacts_of(r.bindings) == ["sip:g%d@192.0.2.90" % i]
    assert contacts_of(ring[4].lookup_aor("sip:gina7@example.org")) == ["sip:g7@192.0.2.90"]
    got: List[Any] = []
    done = threading.Event()

    def cb(outcome: Any) -> None:
        got.append(outcome)
        done.set()

    ring[1].register_async("sip:gina7@example.org", "gina-7", 2, ["sip:g7@192.0.2.90"], expires=5, callback=cb)
    assert done.wait(10)
    assert len(got) == 1 and isinstance(got[0], chordsip.IntervalTooBrief)
    with pytest.raises(chordsip.InvalidArgument):
        ring[1].register_async("mailto:gina@example.org", "x", 1, ["sip:g@192.0.2.90"])
    # These nodes hold no credentials key: the check says so at once.
    with pytest.raises(chordsip.Unauthorized):
        ring[1].authenticate_async("REGISTER", "sip:gina7@example.org")


def test_closed_node_raises(ring):
    n = chordsip.Node(FAST)
    n.close()
    with pytest.raises(chordsip.Closed):
        n.register(AOR, "x", 1, ["sip:a@192.0.2.1"])
    with pytest.raises(chordsip.Closed):
        n.lookup_aor(AOR)
    with pytest.raises(chordsip.Closed):
        n.lookup_aor_async(AOR)


def test_lookups_return_only_trusted_bindings_unless_asked_for_all(ring):
    """A member with a writer key of its own can store a binding under any
    AOR; a lookup routes only to bindings of the node's writer key and its
    ``trusted_writers``, and says who wrote each one."""
    aor = "sip:trust@example.org"
    ring[0].register(aor, "t-own", 1, [Contact("sip:trust@192.0.2.70", q=0.5)])
    stranger_key = "17" * 32
    with chordsip.Node(dict(FAST, writer_key=stranger_key)) as stranger:
        stranger.join(ring[0].addr)
        wait_until(lambda: len(ring[1].lookup_aor(aor, all=True)) == 1, 10, "the first binding")
        stranger.register(aor, "t-stranger", 1, [Contact("sip:mallory@192.0.2.66", q=1.0)])
        (own,) = ring[1].lookup_aor(aor)
        assert own.contact == "sip:trust@192.0.2.70"
        everyone = ring[2].lookup_aor(aor, all=True)
        assert [b.contact for b in everyone] == ["sip:mallory@192.0.2.66", "sip:trust@192.0.2.70"]
        owners = {b.contact: b.owner for b in everyone}
        assert owners["sip:trust@192.0.2.70"] == own.owner
        assert owners["sip:mallory@192.0.2.66"] not in (None, own.owner)
        assert all(len(o) == 64 for o in owners.values())
        # The stranger's own lookups trust its key only.
        assert [b.contact for b in stranger.lookup_aor(aor)] == ["sip:mallory@192.0.2.66"]
        # A node told to trust the stranger's key routes to both.
        with chordsip.Node(dict(FAST, trusted_writers=owners["sip:mallory@192.0.2.66"])) as judge:
            judge.join(ring[0].addr)
            both = judge.lookup_aor(aor)
            assert {b.contact for b in both} == set(owners)
