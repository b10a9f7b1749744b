"""Client handles against a node running in another process (UDP and UNIX socket)."""

from __future__ import annotations

import select
import subprocess
import sys
import time

import pytest

import chordsip
from conftest import CLIENT_KEY, FAST, cli_path, subprocess_env, wait_until

# A node in a child process: prints its address, serves until stdin closes.
CHILD = r"""
import json, sys
import chordsip
opts = json.loads(sys.argv[1])
with chordsip.Node(opts) as n:
    n.join()
    n.put("sip:child@example.org", "child", b"from the child", 60)
    print(n.addr, flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def child_node(tmp_path):
    import json

    sock = str(tmp_path / "node.sock")
    opts = dict(FAST)
    opts["client_socket"] = sock
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(opts)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=subprocess_env(),
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line, "child node did not start (exit code %s)" % proc.poll()
        yield line, sock
    finally:
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0


def _exercise(client: chordsip.Client, node_addr: str) -> None:
    (child,) = client.get("sip:child@example.org")
    assert child.data == b"from the child"
    assert client.put("sip:carol@example.org", "laptop", b"\x00\x01binary\xff", 30) >= 1
    (value,) = client.get("sip:carol@example.org")
    # The node signs the handle's writes with its own writer key.
    assert len(value.owner) == 32 and value.owner != bytes(32) and value.owner == child.owner
    assert value == chordsip.Value(
        "laptop", b"\x00\x01binary\xff", value.version, value.expires_in_ms, child.owner
    )
    assert 0 < value.expires_in_ms <= 30_000
    info = client.lookup("sip:carol@example.org")
    assert info.addr == node_addr and info.hops == 0
    assert "phase Joined" in client.info("ring")
    assert "puts_ok" in client.info("stats")
    assert client.remove("sip:carol@example.org", "laptop") >= 1
    assert client.get("sip:carol@example.org") == []


def test_client_udp(child_node):
    addr, _ = child_node
    with chordsip.Client(addr, key=CLIENT_KEY, timeout_ms=3000) as c:
        assert c.peer == addr and c.timeout_ms == 3000
        _exercise(c, addr)
        c.set_timeout(0)
        assert c.timeout_ms == 5000
    assert c.closed


def test_udp_client_without_the_credential_is_refused(child_node):
    addr, _ = child_node
    for key in (None, b"x" * 30):
        with chordsip.Client(addr, key=key, timeout_ms=1000) as c:
            t0 = time.monotonic()
            with pytest.raises((chordsip.Unauthorized, chordsip.ChordsipTimeout)) as e:
                c.get("sip:child@example.org")
            if key is None:  # told at once; a wrong key's datagrams are dropped
                assert isinstance(e.value, chordsip.Unauthorized) and time.monotonic() - t0 < 0.5
                assert e.value.code == 25 and isinstance(e.value, PermissionError)


def test_client_unix_socket(child_node):
    addr, sock = child_node
    with chordsip.Client("unix:" + sock, overlay="chordsip") as c:
        _exercise(c, addr)


def test_client_wrong_overlay_times_out(child_node):
    addr, _ = child_node
    with chordsip.Client(addr, overlay="other", key=CLIENT_KEY, timeout_ms=300) as c:
        t0 = time.monotonic()
        with pytest.raises(chordsip.ChordsipTimeout) as e:
            c.get("sip:child@example.org")
        assert time.monotonic() - t0 < 3
        assert e.value.code == 1 and e.value.name == "CHORDSIP_ERR_TIMEOUT"
        assert isinstance(e.value, TimeoutError)


@pytest.mark.skipif(cli_path() is None, reason="target/release/chordsip not built")
def test_client_against_cli_node(tmp_path):
    """A keyed `chordsip node` process (overlay key and client key files) on a
    port of the kernel's choice, read back from its ready line."""
    sock = str(tmp_path / "cli.sock")
    key_file = tmp_path / "client.key"
    key_file.write_bytes(CLIENT_KEY + b"\n")
    overlay_key = tmp_path / "overlay.key"
    overlay_key.write_bytes(b"python-tests-overlay-key\n")
    proc = subprocess.Popen(
        [str(cli_path()), "node", "--listen", "127.0.0.1:0", "--client-socket", sock,
         "--log", "off", "--client-key-file", str(key_file), "--key-file", str(overlay_key)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        # "node <id> listening on <addr> joined"
        words = line.split()
        assert len(words) == 6 and words[5] == "joined", "no ready line: %r (exit %s)" % (
            line, proc.poll())
        addr = words[4]
        with chordsip.Client(addr, key=CLIENT_KEY, timeout_ms=3000) as c:
            assert "phase Joined" in c.info("ring")
            assert c.put("sip:dave@example.org", "cli", b"v", 10) >= 1
        with chordsip.Client("unix:" + sock) as u:
            assert [v.data for v in u.get("sip:dave@example.org")] == [b"v"]
        # A member of another overlay key cannot join it.
        with chordsip.Node(dict(FAST, op_timeout_ms=1000), overlay_key=b"wrong") as stranger:
            with pytest.raises(chordsip.JoinFailed):
                stranger.join(addr)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
