"""Pure P2P SIP: two PJSUA2 user agents, each with its own chordsip peer, call
each other at the contact found in the overlay (examples/p2p_call.py).

Runs the example as two processes (a PJSUA2 Endpoint per process), all on
127.0.0.1, with bounded timeouts. Needs PyPI's pjsua2-python, which
scripts/python-tests.sh installs: a missing pjsua2 fails this test, unless
the script found no wheel for this Python and said so in
CHORDSIP_PJSUA2_SKIP.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from conftest import subprocess_env

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "p2p_call.py"
CALLEE_AOR = "sip:bob@p2p.example"


def _need_pjsua2() -> None:
    reason = os.environ.get("CHORDSIP_PJSUA2_SKIP")
    if reason:
        pytest.skip(reason)
    if importlib.util.find_spec("pjsua2") is None:
        pytest.fail(
            "pjsua2 is not importable by %s: install PyPI's pjsua2-python "
            "(scripts/python-tests.sh does)" % sys.executable,
            pytrace=False,
        )


class Proc:
    """A child process whose stdout lines are read by a thread (no blocking reads)."""

    def __init__(self, args: List[str], stderr_path: Path) -> None:
        self.stderr_path = stderr_path
        self._err = open(stderr_path, "w")
        self.p = subprocess.Popen(
            [sys.executable, str(EXAMPLE)] + args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._err,
            env=subprocess_env(),
            text=True,
            cwd=str(stderr_path.parent),
        )
        self.lines: List[str] = []
        self._q: "queue.Queue[Optional[str]]" = queue.Queue()
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def wait_line(self, pattern: str, timeout: float) -> Optional[re.Match]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                line = self._q.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                return None
            self.lines.append(line)
            m = re.search(pattern, line)
            if m:
                return m

    def finish(self, timeout: float) -> int:
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = -9
        self._t.join(5)
        while True:
            try:
                line = self._q.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return rc

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()

    def close(self) -> None:
        self.kill()
        self._err.close()

    def report(self, name: str) -> str:
        err = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        out = "\n".join(self.lines)
        return "--- %s stdout ---\n%s\n--- %s stderr ---\n%s" % (name, out, name, err[-4000:])


def _result(lines: List[str]) -> Dict[str, str]:
    found = [line for line in lines if line.startswith("RESULT ")]
    assert len(found) == 1, "expected one RESULT line, got %r" % found
    return dict(kv.split("=", 1) for kv in found[0].split()[1:])


def test_pjsua2_call_through_overlay_lookup(tmp_path):
    _need_pjsua2()
    assert EXAMPLE.is_file(), EXAMPLE
    started = time.monotonic()
    # Bounded: at most ~60 s in all even when something hangs; ~1.5 s normally.
    # The library refreshes each published binding every 400 ms here.
    callee = Proc(["--role", "callee", "--timeout", "15", "--refresh-ms", "400"], tmp_path / "callee.err")
    caller: Optional[Proc] = None
    try:
        ready = callee.wait_line(r"^READY overlay=(\S+) aor=(\S+) contact=(\S+)$", 15)
        assert ready, "the callee did not get ready\n" + callee.report("callee")
        overlay, aor, contact = ready.groups()
        assert aor == CALLEE_AOR
        assert re.fullmatch(r"127\.0\.0\.1:\d+", overlay), overlay
        assert re.fullmatch(r"sip:bob@127\.0\.0\.1:\d+", contact), contact

        args = ["--role", "caller", "--bootstrap", overlay, "--timeout", "10", "--hold", "1.5"]
        args += ["--refresh-ms", "400"]
        caller = Proc(args, tmp_path / "caller.err")
        caller_rc = caller.finish(30)
        callee_rc = callee.finish(15)
        logs = caller.report("caller") + "\n" + callee.report("callee")
        assert (caller_rc, callee_rc) == (0, 0), "exit codes caller %s, callee %s\n%s" % (
            caller_rc,
            callee_rc,
            logs,
        )

        rc, re_ = _result(caller.lines), _result(callee.lines)
        # The caller found bob's contact in the overlay and called it directly.
        assert rc["role"] == "caller" and rc["ok"] == "yes", logs
        assert rc["callee"] == CALLEE_AOR and rc["contact"] == contact, logs
        assert rc["answered"] == "yes" and rc["hung_up"] == "local", logs
        # The callee answered (200 OK, ACK) and the caller's BYE ended the call.
        assert re_["role"] == "callee" and re_["ok"] == "yes", logs
        assert re_["answered"] == "yes" and re_["hung_up"] == "remote", logs
        # Audio was set up on both sides (null sound device). Neither sent a
        # REGISTER: each published its contact, the library refreshed it on
        # its own timer during the call, and each withdrew it on the way out.
        assert rc["media"] == re_["media"] == "yes", logs
        assert rc["withdrawn"] == re_["withdrawn"] == "yes", logs
        assert int(rc["refreshed"]) >= 1 and int(re_["refreshed"]) >= 1, logs
        assert rc["refresh_failed"] == re_["refresh_failed"] == "0", logs
        assert rc["errors"] == re_["errors"] == "0", logs
        assert any("incoming call from <sip:alice@p2p.example>" in line for line in callee.lines), logs
        looked_up = "caller: lookup %s -> %s " % (CALLEE_AOR, contact)
        assert any(line.startswith(looked_up) for line in caller.lines), logs
    finally:
        for p in (caller, callee):
            if p is not None:
                p.close()
    assert time.monotonic() - started < 30
