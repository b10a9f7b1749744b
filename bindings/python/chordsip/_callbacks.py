"""Callbacks from C into Python.

The library receives module-level ctypes trampolines (created once, never
freed) and a ``user_data`` that is a small integer token, never a pointer to
a Python object. Each token maps to a record in a registry:

* an asynchronous operation's record (its Python callback and Future) stays
  registered until its single completion ran; the trampoline removes it, so
  a completion runs at most once, and :func:`node_freed` completes whatever a
  freed node left behind with ``Cancelled``, so it runs exactly once;
* a node's event/log callbacks stay registered until the node is freed.

Exceptions raised by Python callbacks never reach C: they are caught, kept
in the node's ``callback_errors`` and reported through ``sys.unraisablehook``.
"""

from __future__ import annotations

import collections
import ctypes
import itertools
import sys
import threading
import traceback
from concurrent.futures import Future
from typing import Any, Callable, Deque, Dict, List, Optional, Set, Tuple

from . import _lib
from ._types import AbilityPeer, Event, EventKind, LookupInfo, Peer, Value
from .errors import Cancelled, ChordsipError, error_for

_registry_lock = threading.RLock()
_tokens = itertools.count(1)
_ops: Dict[int, "Op"] = {}
_nodes: Dict[int, "NodeCallbacks"] = {}
_tls = threading.local()


def in_library_thread() -> bool:
    """True inside a callback that runs on a library thread (thread delivery)."""
    return getattr(_tls, "lib_depth", 0) > 0


class _UnraisableArgs:
    """What ``sys.unraisablehook`` receives (attribute-compatible)."""

    def __init__(self, exc: BaseException, msg: str, obj: Any) -> None:
        self.exc_type = type(exc)
        self.exc_value = exc
        self.exc_traceback = exc.__traceback__
        self.err_msg = msg
        self.object = obj


def report(
    exc: BaseException, msg: str, obj: Any = None, errors: Optional[Deque[BaseException]] = None
) -> None:
    """Reports an exception a callback raised; never raises."""
    try:
        if errors is not None:
            errors.append(exc)
        hook = getattr(sys, "unraisablehook", None)
        if hook is None or hook is getattr(sys, "__unraisablehook__", None):
            # The default hook only accepts its own C type: print like it does.
            stream = sys.stderr
            if stream is not None:
                stream.write("%s: %r\n" % (msg, obj) if obj is not None else msg + "\n")
                traceback.print_exception(type(exc), exc, exc.__traceback__, file=stream)
        else:
            hook(_UnraisableArgs(exc, msg, obj))
    except BaseException:  # noqa: B036 - nothing may escape into C
        pass


def _run(
    fn: Callable[..., Any],
    args: Tuple[Any, ...],
    thread_mode: bool,
    msg: str,
    errors: Optional[Deque[BaseException]],
) -> None:
    if thread_mode:
        _tls.lib_depth = getattr(_tls, "lib_depth", 0) + 1
    try:
        fn(*args)
    except BaseException as e:  # noqa: B036 - nothing may escape into C
        report(e, msg, fn, errors)
    finally:
        if thread_mode:
            _tls.lib_depth -= 1


# ---------------------------------------------------------------------------
# Asynchronous operations
# ---------------------------------------------------------------------------


class Op:
    """One asynchronous operation awaiting its completion."""

    __slots__ = ("what", "callback", "future", "pending", "thread_mode", "errors")

    def __init__(
        self,
        what: str,
        callback: Optional[Callable[[Any], None]],
        future: "Optional[Future[Any]]",
        pending: Set[int],
        thread_mode: bool,
        errors: Deque[BaseException],
    ) -> None:
        self.what = what
        self.callback = callback
        self.future = future
        self.pending = pending
        self.thread_mode = thread_mode
        self.errors = errors

    def finish(self, outcome: Any) -> None:
        fut = self.future
        try:
            if fut is not None and not fut.done():
                if isinstance(outcome, BaseException):
                    fut.set_exception(outcome)
                else:
                    fut.set_result(outcome)
        except BaseException as e:  # a cancelled Future, a failing done-callback
            report(e, "Exception in a chordsip future", fut, self.errors)
        if self.callback is not None:
            _run(
                self.callback,
                (outcome,),
                self.thread_mode,
                "Exception ignored in chordsip %s callback" % self.what,
                self.errors,
            )


def register_op(op: Op) -> int:
    with _registry_lock:
        token = next(_tokens)
        _ops[token] = op
        op.pending.add(token)
    return token


def take_op(token: Optional[int]) -> Optional[Op]:
    """Removes and returns the op of ``token`` (None if it completed already)."""
    if token is None:
        return None
    with _registry_lock:
        op = _ops.pop(token, None)
        if op is not None:
            op.pending.discard(token)
    return op


def _finish(token: Optional[int], result: int, kind: str, convert: Callable[[Op], Any]) -> None:
    """Completes the op of ``token`` once: ``convert(op)`` on success, the
    error of ``result`` otherwise; nothing may propagate into C."""
    try:
        op = take_op(token)
        if op is None:
            return
        if result == _lib.CHORDSIP_OK:
            try:
                outcome: Any = convert(op)
            except ChordsipError as e:
                outcome = e
        else:
            outcome = error_for(result, op.what)
        op.finish(outcome)
    except BaseException as e:  # noqa: B036
        report(e, "Exception ignored in the chordsip %s trampoline" % kind)


def _present(pointer: Any, op: Op) -> Any:
    """A result pointer the library promises on success (21: a library bug)."""
    if not pointer:
        raise error_for(21, op.what)
    return pointer


def _lookup_trampoline(result: int, info: Any, token: Optional[int]) -> None:
    _finish(token, result, "lookup", lambda op: lookup_info(_present(info, op).contents))


def _store_trampoline(result: int, copies: int, token: Optional[int]) -> None:
    _finish(token, result, "store", lambda op: int(copies))


def _get_trampoline(result: int, values: Optional[int], token: Optional[int]) -> None:
    _finish(token, result, "get", lambda op: values_list(_lib.get(), _present(values, op)))


def _bindings_trampoline(result: int, bindings: Optional[int], token: Optional[int]) -> None:
    from ._registrar import bindings_list

    _finish(token, result, "bindings", lambda op: bindings_list(_lib.get(), _present(bindings, op)))


def _done_trampoline(result: int, token: Optional[int]) -> None:
    _finish(token, result, "join", lambda op: None)


DONE_TRAMPOLINE = _lib.chordsip_done_cb(_done_trampoline)
LOOKUP_TRAMPOLINE = _lib.chordsip_lookup_cb(_lookup_trampoline)
STORE_TRAMPOLINE = _lib.chordsip_store_cb(_store_trampoline)
GET_TRAMPOLINE = _lib.chordsip_get_cb(_get_trampoline)
BINDINGS_TRAMPOLINE = _lib.chordsip_bindings_cb(_bindings_trampoline)


def _register_trampoline(
    result: int, bindings: Optional[int], outcome: Any, token: Optional[int]
) -> None:
    from ._registrar import bindings_list
    from ._types import RegisterResult

    def convert(op: Op) -> Any:
        o = _present(outcome, op).contents
        return RegisterResult(
            bindings=bindings_list(_lib.get(), _present(bindings, op)),
            inserted=int(o.inserted),
            updated=int(o.updated),
            deleted=int(o.deleted),
        )

    _finish(token, result, "register", convert)


def _auth_trampoline(result: int, verdict: int, challenge: Optional[bytes], token: Optional[int]) -> None:
    from ._types import AuthResult, AuthVerdict

    def convert(op: Op) -> Any:
        reason = ctypes.c_char_p()
        status = _lib.get().chordsip_auth_status(verdict, ctypes.byref(reason))
        return AuthResult(
            AuthVerdict(verdict),
            int(status),
            (reason.value or b"").decode(),
            (challenge or b"").decode(),
        )

    _finish(token, result, "authenticate", convert)


def _publish_trampoline(result: int, expires: int, token: Optional[int]) -> None:
    _finish(token, result, "publish", lambda op: int(expires))


REGISTER_TRAMPOLINE = _lib.chordsip_register_cb(_register_trampoline)
PUBLISH_TRAMPOLINE = _lib.chordsip_publish_cb(_publish_trampoline)
AUTH_TRAMPOLINE = _lib.chordsip_auth_cb(_auth_trampoline)

# ---------------------------------------------------------------------------
# Node events and logs
# ---------------------------------------------------------------------------


class NodeCallbacks:
    __slots__ = ("on_event", "on_log", "thread_mode", "errors")

    def __init__(
        self,
        on_event: Optional[Callable[[Event], None]],
        on_log: Optional[Callable[[int, str], None]],
        thread_mode: bool,
        errors: Deque[BaseException],
    ) -> None:
        self.on_event = on_event
        self.on_log = on_log
        self.thread_mode = thread_mode
        self.errors = errors


def register_node(cbs: NodeCallbacks) -> int:
    with _registry_lock:
        token = next(_tokens)
        _nodes[token] = cbs
    return token


def unregister_node(token: Optional[int]) -> None:
    if token is not None:
        with _registry_lock:
            _nodes.pop(token, None)


def _event_trampoline(event: Any, token: Optional[int]) -> None:
    try:
        cbs = _nodes.get(token) if token is not None else None
        if cbs is None or cbs.on_event is None or not event:
            return
        ev = event.contents
        try:
            kind: Any = EventKind(ev.kind)
        except ValueError:  # a kind newer than this binding
            kind = int(ev.kind)
        peer = peer_of(ev.peer) if ev.has_peer else None
        detail = _text(ev.detail) if ev.detail else None
        _run(
            cbs.on_event,
            (
                Event(
                    kind,
                    peer,
                    int(ev.count),
                    int(ev.weight),
                    ev.sip_address.decode("utf-8", "replace") or None,
                    aor=_text(ev.aor) if ev.aor else None,
                    expires=int(ev.expires),
                    retry_ms=int(ev.retry_ms),
                    error=error_for(ev.result, detail) if ev.result else None,
                ),
            ),
            cbs.thread_mode,
            "Exception ignored in chordsip on_event callback",
            cbs.errors,
        )
    except BaseException as e:  # noqa: B036
        report(e, "Exception ignored in the chordsip event trampoline")


def _log_trampoline(level: int, message: Optional[bytes], token: Optional[int]) -> None:
    try:
        cbs = _nodes.get(token) if token is not None else None
        if cbs is None or cbs.on_log is None:
            return
        text = (message or b"").decode("utf-8", "replace")
        _run(
            cbs.on_log,
            (int(level), text),
            cbs.thread_mode,
            "Exception ignored in chordsip on_log callback",
            cbs.errors,
        )
    except BaseException as e:  # noqa: B036
        report(e, "Exception ignored in the chordsip log trampoline")


EVENT_TRAMPOLINE = _lib.chordsip_event_cb(_event_trampoline)
LOG_TRAMPOLINE = _lib.chordsip_log_cb(_log_trampoline)


def node_freed(callbacks_token: Optional[int], pending: Set[int], run_cancellations: bool) -> None:
    """After ``chordsip_node_free`` returned: forget the node's callbacks and
    complete the operations the library dropped (a node freed from one of its
    own callbacks drops them) with ``Cancelled``, so each runs exactly once.
    In a forked child the parent's operations are dropped silently."""
    unregister_node(callbacks_token)
    with _registry_lock:
        left = [(t, _ops.pop(t)) for t in list(pending) if t in _ops]
        pending.clear()
    if run_cancellations:
        for _, op in left:
            op.finish(Cancelled(detail=op.what))


def new_errors() -> Deque[BaseException]:
    return collections.deque(maxlen=64)


# ---------------------------------------------------------------------------
# C struct -> Python conversions (copies)
# ---------------------------------------------------------------------------


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def peer_of(p: "_lib.chordsip_peer") -> Peer:
    return Peer(_text(p.id), _text(p.addr))


def lookup_info(i: "_lib.chordsip_lookup_info") -> LookupInfo:
    return LookupInfo(_text(i.node.id), _text(i.node.addr), int(i.hops), int(i.latency_us))


def values_list(lib: ctypes.CDLL, values: Any) -> List[Value]:
    """Copies a ``chordsip_values`` list (not freed here)."""
    out: List[Value] = []
    n = lib.chordsip_values_len(values)
    v = _lib.chordsip_value()
    for i in range(n):
        rc = lib.chordsip_values_get(values, i, ctypes.byref(v))
        if rc != _lib.CHORDSIP_OK:
            raise error_for(rc, "chordsip_values_get")
        writer = ctypes.string_at(v.writer, v.writer_len) if v.writer_len else b""
        data = ctypes.string_at(v.data, v.data_len) if v.data_len else b""
        owner = bytes(v.owner)
        out.append(Value(_text(writer), data, int(v.version), int(v.expires_in_ms), owner))
    return out


def ability_peers_list(lib: ctypes.CDLL, peers: Any) -> List[AbilityPeer]:
    """Copies a ``chordsip_ability_peers`` list (not freed here)."""
    out: List[AbilityPeer] = []
    p = _lib.chordsip_ability_peer()
    for i in range(lib.chordsip_ability_peers_len(peers)):
        rc = lib.chordsip_ability_peers_get(peers, i, ctypes.byref(p))
        if rc != _lib.CHORDSIP_OK:
            raise error_for(rc, "chordsip_ability_peers_get")
        attrs = {}
        for pair in _text(p.attrs or b"").split(","):
            if "=" in pair:
                k, v = pair.split("=", 1)
                attrs[k] = v
        out.append(
            AbilityPeer(
                _text(p.peer.id),
                _text(p.peer.addr),
                _text(p.name or b""),
                int(p.capacity),
                int(p.load),
                attrs,
                int(p.expires_in_ms),
            )
        )
    return out


def peers_list(lib: ctypes.CDLL, peers: Any) -> List[Peer]:
    """Copies a ``chordsip_peers`` list (not freed here)."""
    out: List[Peer] = []
    n = lib.chordsip_peers_len(peers)
    p = _lib.chordsip_peer()
    for i in range(n):
        rc = lib.chordsip_peers_get(peers, i, ctypes.byref(p))
        if rc != _lib.CHORDSIP_OK:
            raise error_for(rc, "chordsip_peers_get")
        out.append(peer_of(p))
    return out
