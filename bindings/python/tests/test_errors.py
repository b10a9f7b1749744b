"""Bad input raises clear exceptions; misuse never crashes the interpreter."""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
import time

import pytest

import chordsip
from conftest import CLIENT_KEY, FAST, subprocess_env


def test_error_attributes():
    e = chordsip.error_for(1, "lookup")
    assert isinstance(e, chordsip.ChordsipTimeout) and isinstance(e, TimeoutError)
    assert (e.code, e.name, e.detail) == (1, "CHORDSIP_ERR_TIMEOUT", "lookup")
    assert e.description == chordsip.result_str(1) == "timed out"
    assert "CHORDSIP_ERR_TIMEOUT" in str(e) and "lookup" in str(e)
    assert type(pickle.loads(pickle.dumps(e))) is chordsip.ChordsipTimeout
    unknown = chordsip.error_for(999)
    assert type(unknown) is chordsip.ChordsipError and unknown.description == "unknown result code"
    for code, name in chordsip.RESULT_NAMES.items():
        if code:
            err = chordsip.error_for(code)
            assert err.code == code and err.name == name
            assert err.description == chordsip.result_str(code)
    assert isinstance(chordsip.error_for(10), ValueError)
    assert isinstance(chordsip.error_for(6), chordsip.InvalidArgument)
    assert isinstance(chordsip.error_for(16), chordsip.Cancelled)
    assert isinstance(chordsip.error_for(15), chordsip.Forked)
    assert isinstance(chordsip.error_for(3), chordsip.NotJoined)


def test_bad_options():
    with pytest.raises(chordsip.InvalidArgument) as e:
        chordsip.Node({"no_such_option": 1})
    assert e.value.code == 10 and "no_such_option" in str(e.value)
    with pytest.raises(chordsip.InvalidArgument) as e:
        chordsip.Node(listen="not an address")
    assert "listen" in str(e.value)
    with pytest.raises(chordsip.InvalidArgument):
        chordsip.Node({"replicas": "many"})
    with pytest.raises(chordsip.InvalidArgument):
        chordsip.Node({"overlay": "a\0b"})
    with pytest.raises(TypeError):
        chordsip.Node({"replicas": 2.5})
    with pytest.raises(TypeError):
        chordsip.Node({"replicas": True})
    with pytest.raises(chordsip.InvalidArgument):
        chordsip.Node(delivery="carrier pigeon")
    with pytest.raises(chordsip.InvalidArgument):
        chordsip.Node(log_level="loud", on_log=print)
    with pytest.raises(chordsip.InvalidArgument):
        chordsip.Node(log_level="debug")  # no on_log
    with pytest.raises(TypeError):
        chordsip.Node(overlay_key="text, not bytes")
    with pytest.raises(TypeError):
        chordsip.Node(on_event="not callable")


def test_bad_addresses(node):
    with pytest.raises(chordsip.InvalidArgument):
        chordsip.Client("not an address")
    with pytest.raises(chordsip.InvalidArgument):
        chordsip.Client("127.0.0.1")  # no port
    with pytest.raises(chordsip.InvalidArgument):
        node.ping("localhost:x")
    with chordsip.Node(FAST) as fresh:
        with pytest.raises(chordsip.InvalidArgument):
            fresh.join("bogus")
        with pytest.raises(chordsip.InvalidArgument):
            fresh.join(["127.0.0.1:1", "bad\0addr"])
        with pytest.raises(TypeError):
            fresh.join(b"127.0.0.1:1")


def test_bad_keys_writers_values(node):
    with pytest.raises(chordsip.InvalidArgument) as e:
        node.put("", "w", b"v", 10)
    assert e.value.code == 10 and isinstance(e.value, ValueError)
    with pytest.raises(chordsip.InvalidArgument):
        node.get("")
    with pytest.raises(chordsip.InvalidArgument):
        node.lookup("")
    with pytest.raises(chordsip.TooLarge) as e:
        node.put("k" * (chordsip.MAX_KEY_LEN + 1), "w", b"v", 10)
    assert e.value.code == 6 and e.value.name == "CHORDSIP_ERR_TOO_LARGE"
    with pytest.raises(chordsip.TooLarge):
        node.get("é" * 513)  # 1026 UTF-8 bytes
    node.put("k" * chordsip.MAX_KEY_LEN, "w", b"v", 10)  # exactly the limit
    with pytest.raises(chordsip.InvalidArgument):
        node.put("k", "", b"v", 10)
    with pytest.raises(chordsip.TooLarge):
        node.put("k", "w" * (chordsip.MAX_WRITER_LEN + 1), b"v", 10)
    with pytest.raises(chordsip.TooLarge):
        node.put("k", "w", b"v" * 100_000, 10)  # over max_value_bytes
    # lifetime 0 is refused by the library; negative ones by the binding.
    with pytest.raises(chordsip.InvalidArgument) as e:
        node.put("k", "w", b"v", 0)
    assert e.value.code == 10
    with pytest.raises(chordsip.InvalidArgument):
        node.put("k", "w", b"v", -1)
    with pytest.raises(chordsip.InvalidArgument):
        node.put("k", "w", b"v", 2**32)
    with pytest.raises(TypeError):
        node.put("k", "w", b"v", True)
    with pytest.raises(TypeError):
        node.lookup("k", timeout_ms=1.5)
    with pytest.raises(chordsip.InvalidArgument):
        node.put_async("k", "w", b"v", 0, lambda r: None)
    # NUL and non-UTF-8-encodable strings.
    for bad in ("a\0b", "\0"):
        with pytest.raises(ValueError):
            node.put(bad, "w", b"v", 10)
        with pytest.raises(chordsip.InvalidArgument):
            node.put("k", bad, b"v", 10)
        with pytest.raises(chordsip.InvalidArgument):
            node.get_async(bad)
        with pytest.raises(chordsip.InvalidArgument):
            chordsip.key_id(bad)
    with pytest.raises(chordsip.BadUtf8):
        node.get("\udcff")
    # Types.
    with pytest.raises(TypeError):
        node.put(b"k", "w", b"v", 10)
    with pytest.raises(TypeError):
        node.put("k", "w", "text is not bytes", 10)
    with pytest.raises(TypeError):
        node.get(None)
    with pytest.raises(TypeError):
        node.lookup_async("k", callback=42)
    node.put("k", "w", bytearray(b"ba"), 10)  # bytes-like data is fine
    node.put("k2", "w", memoryview(b"mv"), 10)
    assert [v.data for v in node.get("k")] == [b"ba"]
    # Enumerations.
    with pytest.raises(chordsip.InvalidArgument):
        node.info("everything")
    with pytest.raises(chordsip.InvalidArgument):
        node.info(7)
    with pytest.raises(chordsip.InvalidArgument):
        node.neighbours("cousins")
    with pytest.raises(chordsip.InvalidArgument):
        node.neighbours(9)


def test_state_errors():
    n = chordsip.Node(FAST)
    with pytest.raises(chordsip.BadState):
        _ = n.addr  # not started
    with pytest.raises(chordsip.BadState):
        n.event_fd()  # thread delivery has no fd
    n.start()
    with pytest.raises(chordsip.BadState):
        n.start()
    with pytest.raises(chordsip.NotJoined):
        n.put("k", "w", b"v", 10)
    assert n.process() == 0  # thread mode: nothing to do
    n.close()


def test_join_failed_is_bounded():
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        opts = dict(FAST, op_timeout_ms=300)
        with chordsip.Node(opts) as n:
            t0 = time.monotonic()
            with pytest.raises(chordsip.JoinFailed) as e:
                n.join("127.0.0.1:%d" % silent.getsockname()[1])
            assert time.monotonic() - t0 < 3
            assert e.value.code == 4
    finally:
        silent.close()


def test_calls_after_close():
    n = chordsip.Node(FAST)
    n.join()
    n.close()
    n.close()  # idempotent
    assert n.closed and "closed" in repr(n)
    for call in (
        lambda: n.put("k", "w", b"v", 10),
        lambda: n.get("k"),
        lambda: n.remove("k", "w"),
        lambda: n.lookup("k"),
        lambda: n.addr,
        lambda: n.stats(),
        lambda: n.process(),
        lambda: n.lookup_async("k", lambda r: None),
        lambda: n.join(),
        lambda: n.leave(),
    ):
        with pytest.raises(chordsip.Closed) as e:
            call()
        assert isinstance(e.value, chordsip.BadState) and "closed" in str(e.value)
    n.__del__()  # safe after close

    c = chordsip.Client("127.0.0.1:9")
    with c:
        pass
    c.close()
    with pytest.raises(chordsip.Closed):
        c.get("k")
    with pytest.raises(chordsip.Closed):
        c.set_timeout(10)


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_use_in_forked_child():
    if not hasattr(os, "fork"):
        pytest.skip("no fork")
    with chordsip.Node(FAST) as n:
        n.join()
        c = chordsip.Client(n.addr, key=CLIENT_KEY)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: every call fails with Forked, close only frees memory
            code = 1
            try:
                try:
                    n.put("k", "w", b"v", 10)
                except chordsip.Forked:
                    try:
                        c.get("k")
                    except chordsip.Forked:
                        n.close()
                        c.close()
                        code = 0
            finally:
                os.write(w, bytes([code]))
                os._exit(code)
        os.close(w)
        status = os.read(r, 1)
        os.close(r)
        os.waitpid(pid, 0)
        assert status == b"\x00"
        # The parent's objects are untouched by the child's close.
        n.put("k", "w", b"v", 10)
        assert [v.data for v in c.get("k")] == [b"v"]
        c.close()


def _run_child(code: str, env=None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env or subprocess_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_library_not_found_on_first_use_only():
    env = subprocess_env()
    env["CHORDSIP_LIBRARY"] = "/nonexistent/libchordsip.so"
    r = _run_child(
        "import chordsip\n"
        "try:\n"
        "    chordsip.version()\n"
        "except ImportError as e:\n"
        "    assert isinstance(e, chordsip.LibraryNotFound)\n"
        "    assert 'CHORDSIP_LIBRARY' in str(e) and '/nonexistent' in str(e)\n"
        "    print('ok')\n",
        env,
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_import_has_no_side_effects():
    r = _run_child(
        "import os, threading\n"
        "def tasks(): return len(os.listdir('/proc/self/task'))\n"
        "t0 = tasks()\n"
        "import chordsip, chordsip._lib as L\n"
        "assert L.loaded() is None, 'library loaded at import'\n"
        "assert tasks() == t0 and threading.active_count() == 1\n"
        "n = chordsip.Node()\n"
        "assert L.loaded() is not None\n"
        "assert tasks() == t0, 'a thread started before a node started'\n"
        "n.start()\n"
        "assert tasks() > t0\n"
        "n.close()\n"
        "print('ok')\n"
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_discovery_without_env(tmp_path):
    """No CHORDSIP_LIBRARY: the checkout's target/release is found from the
    source tree; a copy of the package elsewhere finds nothing and says so."""
    import ctypes.util
    import shutil as sh
    from pathlib import Path

    if ctypes.util.find_library("chordsip"):
        pytest.skip("a system-wide libchordsip is installed")
    env = subprocess_env()
    env.pop("CHORDSIP_LIBRARY", None)
    env.pop("LD_LIBRARY_PATH", None)
    code = (
        "import chordsip\n"
        "try:\n"
        "    print(chordsip.library_path())\n"
        "except chordsip.LibraryNotFound as e:\n"
        "    print('NOTFOUND', e)\n"
    )
    src = Path(__file__).resolve().parents[1]  # bindings/python
    checkout_lib = src.parents[1] / "target" / "release" / "libchordsip.so"
    if checkout_lib.is_file():
        env["PYTHONPATH"] = str(src)
        r = _run_child(code, env, cwd=tmp_path)
        assert r.stdout.strip() == str(checkout_lib), r.stderr
    sh.copytree(src / "chordsip", tmp_path / "chordsip")
    env["PYTHONPATH"] = str(tmp_path)
    r = _run_child(code, env, cwd=tmp_path)
    out = r.stdout.strip()
    assert out.startswith("NOTFOUND"), (out, r.stderr)
    assert "CHORDSIP_LIBRARY" in out and "libchordsip.so.0" in out


def test_package_modules_import_one_way():
    """No two modules of the package import each other (directly or round a
    longer loop), not even from inside a function: the loader (_lib) needs
    nothing from errors, which uses the loader for the library's texts."""
    import ast
    from pathlib import Path

    pkg = Path(chordsip.__file__).resolve().parent
    graph = {}
    for f in sorted(pkg.glob("*.py")):
        deps = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    deps.add(node.module.split(".")[0])
                else:
                    deps.update(a.name for a in node.names)
        graph[f.stem] = deps - {"__init__"}

    def loop_from(start):
        stack, seen = [(start, [start])], set()
        while stack:
            mod, path = stack.pop()
            for dep in graph.get(mod, ()):
                if dep == start:
                    return path + [dep]
                if dep not in seen:
                    seen.add(dep)
                    stack.append((dep, path + [dep]))
        return None

    loops = [loop_from(m) for m in graph if loop_from(m)]
    assert loops == [], "import loops: %s" % loops
    assert "errors" not in graph["_lib"] and "_lib" in graph["errors"]
    assert graph["_missing"] == set()


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda n: n.register("not a uri", "c", 1, ["sip:x@192.0.2.1"]),
         'aor "not a uri": bad URI'),
        (lambda n: n.register("sip:a@example.org", "c", 1, ["<sip:x@192.0.2.1>"]),
         "a bare SIP URI is expected"),
        (lambda n: n.register("sip:a@example.org", "c", 1, ['"Bob" <sip:x@192.0.2.1>']),
         "not a Contact header value"),
        (lambda n: n.register("sip:a@example.org", "c", 1, ["x@192.0.2.1"]),
         'contact "x@192.0.2.1": bad URI: no scheme'),
        (lambda n: n.register("sip:a@example.org", "", 1, ["sip:x@192.0.2.1"]),
         "call_id is empty"),
        (lambda n: n.register("sip:a@example.org", "c", 1, [], star=True),
         "star (Contact: *) needs expires 0"),
        (lambda n: n.lookup_aor("garbage"), 'aor "garbage"'),
        (lambda n: n.config("no_such_option"), 'unknown option "no_such_option"'),
    ],
)
def test_refusals_say_which_argument_and_why(node, call, words):
    with pytest.raises(chordsip.InvalidArgument) as info:
        call(node)
    assert words in (info.value.detail or ""), info.value.detail
    assert words in str(info.value)


def test_calls_before_start_say_what_to_call_first():
    with chordsip.Node(dict(FAST)) as n:
        for call in (lambda: n.lookup("k"), lambda: n.lookup_aor("sip:a@example.org"),
                     lambda: n.register("sip:a@example.org", "c", 1, ["sip:x@192.0.2.1"])):
            with pytest.raises(chordsip.BadState) as info:
                call()
            assert "not started: join it first" in info.value.detail, info.value.detail
