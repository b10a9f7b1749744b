"""Closing a node with operations in flight completes each exactly once."""

from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable, Dict, List, Tuple

import pytest

import chordsip
from conftest import FAST, ring_converged, wait_until

# The asking node notices a dead peer only after seconds, so operations
# routed to it stay in flight until the node is closed.
SLOW_FAILURE = dict(
    FAST,
    rpc_timeout_min_ms=3000,
    rpc_timeout_initial_ms=3000,
    rpc_timeout_max_ms=3000,
    op_timeout_ms=20000,
)


class Tally:
    """Counts completions per operation and remembers outcomes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: Dict[int, int] = collections.Counter()
        self.outcomes: Dict[int, Any] = {}

    def cb(self, op_id: int) -> Callable[[Any], None]:
        def done(outcome: Any) -> None:
            with self.lock:
                self.calls[op_id] += 1
                self.outcomes[op_id] = outcome

        return done

    def snapshot(self) -> Tuple[Dict[int, int], Dict[int, Any]]:
        with self.lock:
            return dict(self.calls), dict(self.outcomes)


def _pair_with_dead_peer(delivery: str) -> Tuple[chordsip.Node, List[str]]:
    """A node whose only peer just died, and keys that peer was responsible for."""
    a = chordsip.Node(SLOW_FAILURE, delivery=delivery)
    b = chordsip.Node(FAST)
    try:
        a.join()
        b.join(a.addr)
        if delivery == "fd":
            # Nothing is registered for events; keep the fd drained anyway.
            a.process()
        wait_until(lambda: ring_converged([a, b]), 10, "2-node ring")
        keys = []
        i = 0
        while len(keys) < 8:
            k = "sip:remote%d@example.org" % i
            i += 1
            if a.lookup(k).addr == b.addr:
                keys.append(k)
    finally:
        b.close()  # abrupt: a still believes in it
    return a, keys


def _start_ops(a: chordsip.Node, keys: List[str], tally: Tally) -> int:
    n = 0
    for k in keys:
        a.lookup_async(k, tally.cb(n))
        a.get_async(k, tally.cb(n + 1))
        a.put_async(k, "w", b"v", 30, tally.cb(n + 2))
        a.remove_async(k, "w", tally.cb(n + 3))
        n += 4
    return n


@pytest.mark.parametrize("delivery", ["thread", "fd"])
def test_close_with_inflight_ops_completes_each_once(delivery):
    a, keys = _pair_with_dead_peer(delivery)
    tally = Tally()
    n = _start_ops(a, keys, tally)
    time.sleep(0.1)
    main = threading.get_ident()
    ran_on = set()
    a.lookup_async(keys[0], lambda r: ran_on.add(threading.get_ident()))
    a.close()
    calls, outcomes = tally.snapshot()
    # Every callback ran before close() returned, exactly once.
    assert sorted(calls) == list(range(n)), "missing completions"
    assert set(calls.values()) == {1}
    cancelled = [o for o in outcomes.values() if isinstance(o, chordsip.Cancelled)]
    assert len(cancelled) >= n // 2, outcomes
    assert all(o.code == 16 and o.name == "CHORDSIP_ERR_CANCELLED" for o in cancelled)
    if delivery == "fd":
        assert ran_on == {main}  # cancellations ran on the closing thread
    time.sleep(0.3)
    assert tally.snapshot()[0] == calls  # and never again


def test_close_from_own_thread_callback():
    a, keys = _pair_with_dead_peer("thread")
    tally = Tally()
    n = _start_ops(a, keys, tally)
    closed = threading.Event()

    def close_now(outcome: Any) -> None:
        tally.cb(n)(outcome)
        a.close()  # from a library thread: allowed, must not deadlock
        closed.set()

    local = next(
        "sip:local%d@example.org" % i
        for i in range(1000)
        if a.lookup("sip:local%d@example.org" % i).addr == a.addr
    )
    time.sleep(0.1)
    a.lookup_async(local, close_now)  # answered locally at once
    assert closed.wait(5)
    assert a.closed
    wait_until(lambda: len(tally.snapshot()[0]) == n + 1, 5, "every completion")
    time.sleep(0.3)
    calls, outcomes = tally.snapshot()
    assert set(calls.values()) == {1}
    assert sum(isinstance(o, chordsip.Cancelled) for o in outcomes.values()) >= n // 2


def test_close_from_fd_callback():
    a, keys = _pair_with_dead_peer("fd")
    tally = Tally()
    n = _start_ops(a, keys, tally)
    local = next(
        "sip:local%d@example.org" % i
        for i in range(1000)
        if a.lookup("sip:local%d@example.org" % i).addr == a.addr
    )

    def close_now(outcome: Any) -> None:
        tally.cb(n)(outcome)
        a.close()  # from inside process(): allowed

    a.lookup_async(local, close_now)  # answered locally at once
    a.lookup_async(local, tally.cb(n + 1))  # queued behind it in the same batch
    time.sleep(0.1)
    deadline = time.monotonic() + 5
    while not a.closed and time.monotonic() < deadline:
        a.process()
        time.sleep(0.01)
    assert a.closed
    calls, outcomes = tally.snapshot()
    assert sorted(calls) == list(range(n + 2)) and set(calls.values()) == {1}
    with pytest.raises(chordsip.Closed):
        a.process()


def test_dropping_the_last_reference_cancels():
    a, keys = _pair_with_dead_peer("thread")
    tally = Tally()
    n = _start_ops(a, keys, tally)
    del a  # __del__ closes the node
    import gc

    gc.collect()
    calls, outcomes = tally.snapshot()
    assert len(calls) == n and set(calls.values()) == {1}


def test_close_while_other_threads_call(ring_factory):
    a, b = ring_factory(2)
    stop = threading.Event()
    errors: List[BaseException] = []
    counts = collections.Counter()
    completions = collections.Counter()
    lock = threading.Lock()

    def on_done(_outcome):
        with lock:
            completions["done"] += 1

    def worker(i: int) -> None:
        while not stop.is_set():
            try:
                if i % 2:
                    a.get("sip:k%d@example.org" % i)
                else:
                    # One operation in flight per thread.
                    done = threading.Event()
                    a.lookup_async("sip:k%d@example.org" % i, lambda r, d=done: (on_done(r), d.set()))
                    with lock:
                        completions["started"] += 1
                    assert done.wait(10)
                counts[i] += 1
            except chordsip.Closed:
                return
            except BaseException as e:  # anything else is a failure
                errors.append(e)
                return

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: errors or all(counts[i] > 5 for i in range(4)), 10, "workers running")
    assert errors == []
    a.close()
    stop.set()
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    assert errors == []
    with lock:
        assert completions["done"] == completions["started"] > 0
    assert b.stats()["joined"]  # the other node is unaffected
