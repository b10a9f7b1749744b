"""Async operations, events and logs, delivered on library threads or via the event fd."""

from __future__ import annotations

import select
import selectors
import sys
import threading
import time
from typing import Any, List

import pytest

import chordsip
from conftest import FAST, make_ring, wait_until


class Collector:
    """Records callback outcomes; thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: List[Any] = []
        self.threads: List[int] = []

    def __call__(self, outcome: Any) -> None:
        with self.lock:
            self.items.append(outcome)
            self.threads.append(threading.get_ident())

    def wait(self, n: int, timeout: float = 10) -> List[Any]:
        wait_until(lambda: len(self.items) >= n, timeout, "%d callbacks" % n)
        return list(self.items)


def _pump(nodes, cond, timeout: float = 10) -> None:
    """fd mode: poll the nodes' event fds and process until ``cond()``."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "fd-mode callbacks did not arrive"
        ready, _, _ = select.select([n.event_fd() for n in nodes], [], [], 0.2)
        for n in nodes:
            if n.event_fd() in ready:
                n.process()


def test_async_thread_mode(ring_factory):
    nodes = ring_factory(3)
    a, b = nodes[0], nodes[2]
    c = Collector()
    f_put = a.put_async("sip:async@example.org", "w1", b"v1", 30, c)
    c.wait(1)
    assert f_put.result(5) == c.items[0] and c.items[0] >= 1
    assert c.threads[0] != threading.get_ident()  # ran on a library thread

    c2 = Collector()
    f_get = b.get_async("sip:async@example.org", c2)
    f_look = b.lookup_async("sip:async@example.org", c2, timeout_ms=2000)
    f_missing = a.get_async("sip:nobody@example.org", c2)
    c2.wait(3)
    values = f_get.result(5)
    assert [(v.writer, v.data) for v in values] == [("w1", b"v1")]
    info = f_look.result(5)
    assert isinstance(info, chordsip.LookupInfo)
    assert info.addr == a.lookup("sip:async@example.org").addr
    assert f_missing.result(5) == []
    assert sorted(map(repr, c2.items)) == sorted(map(repr, [values, info, []]))

    c3 = Collector()
    f_rm = b.remove_async("sip:async@example.org", "w1", c3)
    assert f_rm.result(5) >= 1 and c3.wait(1) == [f_rm.result()]
    assert a.get("sip:async@example.org") == []

    # Errors arrive as exception objects, not raised into C.
    with chordsip.Node(FAST) as lonely:
        lonely.start()  # started, not joined
        c4 = Collector()
        fut = lonely.lookup_async("k", c4, timeout_ms=200)
        (outcome,) = c4.wait(1)
        assert isinstance(outcome, chordsip.NotJoined)
        with pytest.raises(chordsip.NotJoined):
            fut.result(5)


def test_async_fd_mode():
    nodes = make_ring(3, delivery="fd")
    try:
        a, b = nodes[0], nodes[1]
        fd = a.event_fd()
        assert fd >= 0 and a.fileno() == fd
        main = threading.get_ident()
        c = Collector()
        a.put_async("sip:fd@example.org", "w", b"fd-data", 30, c)
        b.lookup_async("sip:fd@example.org", c)
        _pump(nodes, lambda: len(c.items) == 2)
        assert set(c.threads) == {main}  # ran inside process() on this thread

        # A selectors loop on the Node itself (fileno), and a blocking call
        # from inside a fd-mode callback (allowed there).
        got: List[Any] = []

        def on_get(values):
            got.append(values)
            got.append(b.get("sip:fd@example.org"))  # blocking call: fine in fd mode

        b.get_async("sip:fd@example.org", on_get)
        sel = selectors.DefaultSelector()
        sel.register(b, selectors.EVENT_READ)
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            for key, _ in sel.select(0.2):
                key.fileobj.process()
        sel.close()
        assert len(got) == 2
        assert [v.data for v in got[0]] == [b"fd-data"] == [v.data for v in got[1]]

        # Without process(), nothing runs.
        c2 = Collector()
        a.remove_async("sip:fd@example.org", "w", c2)
        time.sleep(0.2)
        assert c2.items == []
        _pump([a], lambda: len(c2.items) == 1)
        assert c2.items[0] >= 1
    finally:
        for n in nodes:
            n.close()


def test_events_on_join_thread_mode():
    events: List[chordsip.Event] = []
    newcomer_events: List[chordsip.Event] = []
    lock = threading.Lock()

    def on_event(ev):
        with lock:
            events.append(ev)

    with chordsip.Node(FAST, on_event=on_event) as first:
        first.join()
        for i in range(10):
            first.put("sip:ev%d@example.org" % i, "w", b"x", 30)
        others = []
        try:
            for i in range(2):
                n = chordsip.Node(FAST, on_event=newcomer_events.append if i == 0 else None)
                others.append(n)
                n.join(first.addr)
            addrs = {n.addr for n in others}

            def seen(kind):
                with lock:
                    return {e.peer.addr for e in events if e.kind == kind and e.peer}

            wait_until(lambda: seen(chordsip.EventKind.SUCCESSOR) & addrs, 10, "successor event")
            wait_until(lambda: seen(chordsip.EventKind.PREDECESSOR) & addrs, 10, "predecessor event")
            succ = first.neighbours("successors")[0]
            wait_until(
                lambda: [e for e in events if e.kind == chordsip.EventKind.SUCCESSOR][-1].peer == succ,
                10,
                "the last successor event to name the successor",
            )
            # The first newcomer was handed (or replicated) the stored keys.
            wait_until(
                lambda: sum(e.count for e in newcomer_events if e.kind == chordsip.EventKind.KEYS_IN) > 0,
                10,
                "a KEYS_IN event",
            )
            assert all(e.peer is None for e in newcomer_events if e.kind == chordsip.EventKind.KEYS_IN)
        finally:
            for n in others:
                n.close()
    assert all(isinstance(e, chordsip.Event) for e in events)


def test_events_and_logs_fd_mode():
    events: List[chordsip.Event] = []
    logs: List[Any] = []
    main = threading.get_ident()
    threads = set()

    def on_event(ev):
        threads.add(threading.get_ident())
        events.append(ev)

    def on_log(level, msg):
        threads.add(threading.get_ident())
        logs.append((level, msg))

    with chordsip.Node(FAST, delivery="fd", on_event=on_event, on_log=on_log, log_level="debug") as a:
        a.join()
        with chordsip.Node(FAST) as b:
            b.join(a.addr)
            _pump([a], lambda: any(e.kind == chordsip.EventKind.SUCCESSOR for e in events))
            assert any(e.peer and e.peer.addr == b.addr for e in events)
    assert logs and all(1 <= lvl <= 4 and isinstance(m, str) and m for lvl, m in logs)
    assert threads == {main}


def test_log_callback_thread_mode():
    lines: List[Any] = []
    with chordsip.Node(
        FAST, on_log=lambda lvl, m: lines.append((lvl, m)), log_level=chordsip.LogLevel.DEBUG
    ) as a:
        a.join()
        with chordsip.Node(FAST) as b:
            b.join(a.addr)
            wait_until(lambda: len(lines) > 0, 5, "log lines")
    assert all(isinstance(m, str) for _, m in lines)
    assert max(lvl for lvl, _ in lines) <= 4  # nothing above the requested level

    # Level "error" filters out the chatter of a normal join.
    quiet: List[Any] = []
    with chordsip.Node(FAST, on_log=lambda lvl, m: quiet.append(lvl), log_level="error") as q:
        q.join()
        q.put("k", "w", b"v", 10)
    assert all(lvl == 1 for lvl in quiet)


def test_callback_exceptions_do_not_escape(node, monkeypatch):
    reported: List[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda args: reported.append(args))

    def boom(_outcome):
        raise RuntimeError("callback failure")

    fut = node.put_async("k", "w", b"v", 10, boom)
    assert fut.result(5) >= 1  # the Future still resolves
    wait_until(lambda: reported, 5, "the unraisable hook")
    assert isinstance(reported[0].exc_value, RuntimeError)
    assert "callback" in reported[0].err_msg
    assert isinstance(node.callback_errors[-1], RuntimeError)
    # The node is unaffected.
    assert [v.data for v in node.get("k")] == [b"v"]


def test_event_callback_exception_is_reported(monkeypatch):
    reported: List[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda args: reported.append(args))

    def bad(_ev):
        raise ValueError("event handler bug")

    with chordsip.Node(FAST, on_event=bad) as a:
        a.join()
        with chordsip.Node(FAST) as b:
            b.join(a.addr)
            wait_until(lambda: a.callback_errors, 5, "an event callback error")
            assert a.get("x") == []
    assert any(isinstance(r.exc_value, ValueError) for r in reported)


def test_blocking_call_from_library_thread_raises_in_callback(node):
    seen: List[Any] = []
    done = threading.Event()

    def cb(_outcome):
        try:
            node.get("k")
        except chordsip.InCallback as e:
            seen.append(e)
        # Starting another async operation is allowed.
        node.lookup_async("k", lambda r: (seen.append(r), done.set()))

    node.put_async("k", "w", b"v", 10, cb)
    assert done.wait(5)
    assert isinstance(seen[0], chordsip.InCallback) and seen[0].code == 17
    assert isinstance(seen[1], chordsip.LookupInfo)
