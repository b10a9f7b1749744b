"""Shared helpers: fast maintenance timers and rings that wait for convergence."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Union

import pytest

import chordsip

ROOT = Path(__file__).resolve().parents[3]
HEADER = ROOT / "include" / "chordsip.h"
CLI = ROOT / "target" / "release" / "chordsip"

#: The writer key the test nodes share: they act as one writer (as the servers
#: of one registrar do), so any of them may change what another wrote.
SHARED_WRITER_KEY = "42" * 32

#: The client credential of the test nodes: UDP clients need it.
CLIENT_KEY = b"python-tests-client-credential"

#: Short maintenance periods so small rings converge in well under a second.
FAST: Dict[str, Union[int, str]] = {
    "writer_key": SHARED_WRITER_KEY,
    "client_key": CLIENT_KEY.decode(),
    "stabilize_ms": 50,
    "check_predecessor_ms": 50,
    "fix_fingers_ms": 30,
    "sync_ms": 200,
    "rpc_timeout_initial_ms": 60,
    "rpc_timeout_max_ms": 300,
    "op_timeout_ms": 3000,
}


def wait_until(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if cond():
                return
        except chordsip.ChordsipError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(0.02)


def ring_converged(nodes: List[chordsip.Node]) -> bool:
    """Every node's successor and predecessor are its ring neighbours by id."""
    ids = sorted(n.id for n in nodes)
    for n in nodes:
        i = ids.index(n.id)
        succ = n.neighbours("successors")
        pred = n.neighbours("predecessors")
        if not succ or succ[0].id != ids[(i + 1) % len(ids)]:
            return False
        if not pred or pred[0].id != ids[i - 1]:
            return False
    return True


def make_ring(n: int, **node_kwargs) -> List[chordsip.Node]:
    nodes: List[chordsip.Node] = []
    try:
        for i in range(n):
            node = chordsip.Node(dict(FAST), **node_kwargs)
            nodes.append(node)
            node.join(nodes[0].addr if i else None)
        wait_until(lambda: ring_converged(nodes), 15, "%d-node ring to converge" % n)
    except BaseException:
        for node in nodes:
            node.close()
        raise
    return nodes


@pytest.fixture
def ring_factory() -> Iterator[Callable[..., List[chordsip.Node]]]:
    made: List[chordsip.Node] = []

    def factory(n: int, **kw) -> List[chordsip.Node]:
        nodes = make_ring(n, **kw)
        made.extend(nodes)
        return nodes

    yield factory
    for node in made:
        node.close()


@pytest.fixture
def node() -> Iterator[chordsip.Node]:
    """One node alone in its own ring."""
    with chordsip.Node(dict(FAST)) as n:
        n.join()
        yield n


def subprocess_env() -> Dict[str, str]:
    """The environment for child Python processes using the binding."""
    env = dict(os.environ)
    pkg_parent = str(Path(chordsip.__file__).resolve().parents[1])
    env["PYTHONPATH"] = pkg_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if "CHORDSIP_LIBRARY" not in env:
        env["CHORDSIP_LIBRARY"] = chordsip.library_path()
    return env


def cli_path() -> Optional[Path]:
    return CLI if CLI.is_file() and os.access(CLI, os.X_OK) else None


def pytest_report_header(config):
    try:
        lib = chordsip.library_path()
    except ImportError as e:
        lib = "NOT FOUND (%s)" % e
    return ["chordsip package: %s" % Path(chordsip.__file__).parent, "libchordsip: %s" % lib]
