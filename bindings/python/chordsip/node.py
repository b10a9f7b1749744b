"""``chordsip.Node``: one peer of the overlay, running in this process."""

from __future__ import annotations

import ctypes
import os
from concurrent.futures import Future
from typing import Any, Callable, Deque, Dict, Iterable, List, Mapping, Optional, Set, Union

from . import _callbacks, _lib, _registrar
from ._dict_calls import DictCalls
from ._publish import PublishCalls
from ._handle import Handle
from ._types import (
    AuthResult,
    AuthVerdict,
    Binding,
    Contact,
    Delivery,
    Event,
    InfoKind,
    LogLevel,
    LookupInfo,
    Neighbours,
    Peer,
    RegisterResult,
    RingSnapshot,
    Value,
)
from ._util import addr_list, check, cstr, data_bytes, handle_out, read_text, track, u32
from .errors import InvalidArgument

OptionValue = Union[str, int, "os.PathLike[str]"]
Outcome = Any  # the result of an async operation, or a ChordsipError instance

_LOG_NAMES = {
    "off": LogLevel.OFF,
    "error": LogLevel.ERROR,
    "warn": LogLevel.WARN,
    "warning": LogLevel.WARN,
    "info": LogLevel.INFO,
    "debug": LogLevel.DEBUG,
    "trace": LogLevel.TRACE,
}

_NEIGHBOURS = {
    "predecessors": Neighbours.PREDECESSORS,
    "successors": Neighbours.SUCCESSORS,
    "fingers": Neighbours.FINGERS,
    "members": Neighbours.MEMBERS,
}

_INFO = {
    "ring": InfoKind.RING,
    "stats": InfoKind.STATS,
    "statistics": InfoKind.STATS,
    "metrics": InfoKind.METRICS,
}


def _option_text(name: str, value: Any) -> bytes:
    if isinstance(value, bool):
        raise TypeError("option %s: bool is not an option value" % name)
    if isinstance(value, int):
        value = str(value)
    elif isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise TypeError("option %s must be str or int, not %s" % (name, type(value).__name__))
    return cstr(value, "option %s" % name)


def _log_level(level: Union[None, int, str]) -> int:
    if level is None:
        return int(LogLevel.INFO)
    if isinstance(level, str):
        try:
            return int(_LOG_NAMES[level.lower()])
        except KeyError:
            raise InvalidArgument(detail="log_level %r: one of %s" % (level, ", ".join(_LOG_NAMES))) from None
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 5:
        raise InvalidArgument(detail="log_level %r: 0..5 or a name" % (level,))
    return int(level)


def _enum_arg(value: Any, names: Mapping[str, int], what: str) -> int:
    if isinstance(value, str):
        try:
            return int(names[value.lower()])
        except KeyError:
            raise InvalidArgument(detail="%s %r: one of %s" % (what, value, ", ".join(names))) from None
    return u32(value, what)


class Node(DictCalls, PublishCalls):
    """One peer of a chordsip overlay in this process.

    ``options`` are the library's options by name (``chordsip_config_set``:
    ``listen``, ``client_socket``, ``overlay``, ``replicas``,
    ``op_timeout_ms``, ...); keyword arguments not named below are options
    too. ``overlay_key`` (bytes) admits members by HMAC. ``delivery`` is
    ``"thread"`` (callbacks on library threads) or ``"fd"`` (callbacks run
    inside :meth:`process` when :meth:`event_fd` is readable).
    ``on_event(Event)`` receives membership/storage events;
    ``on_log(level, message)`` log lines at ``log_level`` (1 error .. 5
    trace, or a name; default ``"info"``) and more severe.

    Creating a Node binds nothing and starts no thread: :meth:`start` or
    :meth:`join` does. A Node belongs to the process that created it (create
    it after ``fork()``). Close it with :meth:`close` or a ``with`` block.
    """

    _PREFIX = "chordsip_node_"

    def __init__(
        self,
        options: Optional[Mapping[str, OptionValue]] = None,
        *,
        overlay_key: Optional[bytes] = None,
        delivery: Union[str, Delivery] = "thread",
        on_event: Optional[Callable[[Event], None]] = None,
        on_log: Optional[Callable[[int, str], None]] = None,
        log_level: Union[None, int, str] = None,
        **more_options: OptionValue,
    ) -> None:
        self._h: Optional[Handle] = None
        self._cb_token: Optional[int] = None
        self._pending: Set[int] = set()
        #: Exceptions raised by this node's Python callbacks (newest last, at most 64).
        self.callback_errors: Deque[BaseException] = _callbacks.new_errors()

        opts: Dict[str, Any] = dict(options or {})
        opts.update(more_options)
        try:
            mode = Delivery(delivery.value if isinstance(delivery, Delivery) else delivery)
        except ValueError:
            raise InvalidArgument(detail="delivery %r: 'thread' or 'fd'" % (delivery,)) from None
        if on_event is not None and not callable(on_event):
            raise TypeError("on_event must be callable")
        if on_log is not None and not callable(on_log):
            raise TypeError("on_log must be callable")
        if log_level is not None and on_log is None:
            raise InvalidArgument(detail="log_level needs an on_log callback")
        key = None if overlay_key is None else data_bytes(overlay_key, "overlay_key")
        encoded = [(cstr(str(k), "option name"), _option_text(str(k), v)) for k, v in opts.items()]
        level = _log_level(log_level)

        lib = _lib.get()
        self._lib = lib
        self._delivery = mode
        thread_mode = mode is Delivery.THREAD
        self._thread_mode = thread_mode

        cfg = ctypes.c_void_p()
        check(lib.chordsip_config_new(ctypes.byref(cfg)), "chordsip_config_new")
        err = ctypes.create_string_buffer(512)
        try:
            for name, value in encoded:
                rc = lib.chordsip_config_set(cfg, name, value, err, len(err))
                check(rc, err.value.decode("utf-8", "replace") or "option %s" % name.decode())
            if key is not None:
                check(lib.chordsip_config_set_overlay_key(cfg, key, len(key)), "overlay_key")
            check(
                lib.chordsip_config_set_delivery(
                    cfg, _lib.CHORDSIP_DELIVER_THREAD if thread_mode else _lib.CHORDSIP_DELIVER_FD
                ),
                "delivery",
            )
            if on_event is not None or on_log is not None:
                self._cb_token = _callbacks.register_node(
                    _callbacks.NodeCallbacks(on_event, on_log, thread_mode, self.callback_errors)
                )
                if on_event is not None:
                    check(
                        lib.chordsip_config_set_event_callback(
                            cfg, _callbacks.EVENT_TRAMPOLINE, self._cb_token
                        ),
                        "on_event",
                    )
                if on_log is not None:
                    check(
                        lib.chordsip_config_set_log_callback(
                            cfg, level, _callbacks.LOG_TRAMPOLINE, self._cb_token
                        ),
                        "on_log",
                    )
            out = ctypes.c_void_p()
            err.value = b""
            rc = lib.chordsip_node_new(cfg, ctypes.byref(out), err, len(err))
            check(rc, err.value.decode("utf-8", "replace") or "chordsip_node_new")
        except BaseException:
            _callbacks.unregister_node(self._cb_token)
            self._cb_token = None
            raise
        finally:
            lib.chordsip_config_free(cfg)

        token, pending = self._cb_token, self._pending

        def after_free(same_process: bool) -> None:
            _callbacks.node_freed(token, pending, same_process)

        self._h = Handle(handle_out(out, "chordsip_node_new"), lib.chordsip_node_free, "the Node", after_free)
        track(self)

    # -- lifetime -----------------------------------------------------------

    def close(self) -> None:
        """Stops the node at once (no graceful leave) and frees it; idempotent.

        Pending asynchronous operations complete with ``Cancelled`` before
        this returns (in fd mode on this thread); no callback of this node
        runs afterwards. Waits for calls other threads are making on the node
        to return. Called from one of the node's own thread-delivered
        callbacks it does not wait (pending completions are then cancelled by
        the binding).
        """
        h = getattr(self, "_h", None)
        if h is not None:
            h.close(defer=_callbacks.in_library_thread())

    @property
    def closed(self) -> bool:
        h = self._h
        return h is None or h.closed

    def __enter__(self) -> "Node":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except BaseException:  # noqa: B036 - never raise from __del__
            pass

    def __repr__(self) -> str:
        if self.closed:
            return "<chordsip.Node closed>"
        try:
            return "<chordsip.Node %s>" % self.addr
        except Exception:
            return "<chordsip.Node not started>"

    def _use(self) -> Handle:
        h = self._h
        if h is None:  # __init__ failed half-way
            from .errors import Closed

            raise Closed(detail="the Node is closed")
        return h

    # -- membership ---------------------------------------------------------

    def start(self) -> "Node":
        """Binds the socket and starts servicing it (not in a ring yet)."""
        with self._use() as p:
            check(self._lib.chordsip_node_start(p), "start")
        return self

    def join(self, bootstrap: Union[None, str, Iterable[str]] = None) -> None:
        """Joins through the first answering peer of ``bootstrap`` (an address,
        a comma/space-separated list, or a list); None or empty starts a new
        ring. Starts the node if needed. Blocks up to twice the op timeout."""
        boot = addr_list(bootstrap)
        with self._use() as p:
            check(self._lib.chordsip_node_join(p, boot), "join")

    def join_async(
        self,
        bootstrap: Union[None, str, Iterable[str]] = None,
        callback: Optional[Callable[[Outcome], None]] = None,
        *,
        future: bool = True,
    ) -> "Optional[Future[None]]":
        """:meth:`join` without waiting, so one thread can join many nodes
        at once. ``callback`` receives None or a :class:`ChordsipError`
        (e.g. :class:`JoinFailed`) exactly once, within twice the op timeout
        (on a library thread, or in :meth:`process` in fd mode); the Future
        resolves likewise. A malformed ``bootstrap`` raises here."""
        boot = addr_list(bootstrap)
        lib = self._lib
        return self._start_async(
            "join",
            callback,
            lambda p, tok: lib.chordsip_node_join_async(p, boot, _callbacks.DONE_TRAMPOLINE, tok),
            future,
        )

    def config(self, name: str) -> str:
        """A setting as the node runs with it, by its option name
        (``config("successors")`` is ``"8"`` unless set; ``config("threads")``
        the library threads running once started). Secrets read ``"set"`` or
        ``"unset"``. An unknown name raises :class:`InvalidArgument`."""
        n = cstr(name, "name")
        with self._use() as p:
            return read_text(
                lambda buf, size, needed: self._lib.chordsip_node_config_get(p, n, buf, size, needed),
                "config %s" % name,
            )

    def ring(self) -> RingSnapshot:
        """The node's view of the ring at one moment: neighbours, fingers,
        one-hop members and what it stores, read in one step (four calls
        to :meth:`neighbours` could each see a different ring)."""
        raw = ctypes.c_void_p()
        with self._use() as p:
            check(self._lib.chordsip_node_ring(p, ctypes.byref(raw)), "ring")
        out = ctypes.cast(raw, ctypes.POINTER(_lib.chordsip_ring))
        try:
            r = out.contents
            lists = [
                _callbacks.peers_list(self._lib, ptr)
                for ptr in (r.predecessors, r.successors, r.fingers, r.members)
            ]
            return RingSnapshot(
                _callbacks.peer_of(r.node), bool(r.joined), r.stored_keys, r.stored_entries, *lists
            )
        finally:
            self._lib.chordsip_ring_free(out)

    def set_abilities(
        self, abilities: Union[str, Iterable[str], Mapping[str, Mapping[str, Any]]]
    ) -> None:
        """Replaces what this node offers, e.g.
        ``{"relay": {"capacity": 100, "load": 3, "turn": "10.0.0.5:3478"}}``,
        ``["relay:capacity=100,load=3", "voicemail"]`` or the option's text
        ``"relay:capacity=100;voicemail"`` ([] or "": none). Announced at once
        (when joined) and kept announced; abilities left out are withdrawn,
        and :meth:`leave` withdraws them all. Call it again to report a new
        load. Raises :class:`InvalidArgument` for a malformed list. Before
        the node starts, use the ``abilities`` option instead."""
        if isinstance(abilities, str):
            text = abilities
        elif isinstance(abilities, Mapping):
            parts = []
            for name, attrs in abilities.items():
                pairs = ",".join("%s=%s" % (k, v) for k, v in dict(attrs or {}).items())
                parts.append(str(name) + (":" + pairs if pairs else ""))
            text = ";".join(parts)
        else:
            text = ";".join(str(a) for a in abilities)
        t = cstr(text, "abilities")
        with self._use() as p:
            check(self._lib.chordsip_node_set_abilities(p, t), "set_abilities")

    def leave(self, timeout_ms: int = 0) -> None:
        """Withdraws what :meth:`publish` published (within a third of the
        time), hands this node's keys to its successor and tells its
        neighbours (at most ``timeout_ms``; 0: the op timeout). The node is
        stopped afterwards whatever the outcome; :meth:`close` it."""
        t = u32(timeout_ms, "timeout_ms")
        with self._use() as p:
            check(self._lib.chordsip_node_leave(p, t), "leave")

    # -- identity -----------------------------------------------------------

    @property
    def addr(self) -> str:
        """The node's ``ip:port`` (after :meth:`start`)."""
        buf = ctypes.create_string_buffer(64)
        with self._use() as p:
            check(self._lib.chordsip_node_addr(p, buf, len(buf)), "addr")
        return buf.value.decode()

    @property
    def id(self) -> str:
        """The node's ring id, 40 hex digits (after :meth:`start`)."""
        buf = ctypes.create_string_buffer(41)
        with self._use() as p:
            check(self._lib.chordsip_node_id(p, buf, len(buf)), "id")
        return buf.value.decode()

    def trusts_writer(self, owner: bytes) -> bool:
        """Whether ``owner`` (a :attr:`Value.owner`) is this node's writer key or
        one of its ``trusted_writers``: keep only such values, as the
        registrar's lookups do."""
        if len(owner) != 32:
            raise ValueError("owner must be 32 bytes")
        out = ctypes.c_uint32(0)
        with self._use() as p:
            check(self._lib.chordsip_node_writer_trusted(p, bytes(owner), ctypes.byref(out)), "trusts_writer")
        return bool(out.value)

    @property
    def delivery(self) -> Delivery:
        return self._delivery

    # -- storage ------------------------------------------------------------

    def lookup(self, key: str, timeout_ms: int = 0) -> LookupInfo:
        """The bare Chord lookup: the ring node responsible for ``key`` and the
        hops it took. Not where a SIP AOR is reachable: that is
        :meth:`lookup_aor`."""
        k, t = cstr(key, "key"), u32(timeout_ms, "timeout_ms")
        info = _lib.chordsip_lookup_info()
        with self._use() as p:
            check(self._lib.chordsip_node_lookup(p, k, t, ctypes.byref(info)), "lookup")
        return _callbacks.lookup_info(info)

    # -- asynchronous storage -----------------------------------------------

    def _start_async(
        self,
        what: str,
        callback: Optional[Callable[[Outcome], None]],
        submit: Callable[[int, int], int],
        future: bool = True,
    ) -> "Optional[Future[Any]]":
        # Errors in the arguments or the node's state raise here (the
        # library then never calls back); everything after reaches the
        # callback and the Future, exactly once, as in C.
        if callback is not None and not callable(callback):
            raise TypeError("callback must be callable")
        if not future and callback is None:
            raise InvalidArgument(detail="%s: future=False needs a callback" % what)
        fut: "Optional[Future[Any]]" = Future() if future else None
        op = _callbacks.Op(what, callback, fut, self._pending, self._thread_mode, self.callback_errors)
        with self._use() as p:
            token = _callbacks.register_op(op)
            try:
                rc = submit(p, token)
            except BaseException:
                _callbacks.take_op(token)
                raise
            if rc != _lib.CHORDSIP_OK:
                # The library never calls back for an operation it did not start.
                _callbacks.take_op(token)
                check(rc, what)
        return fut

    def lookup_async(
        self,
        key: str,
        callback: Optional[Callable[[Outcome], None]] = None,
        timeout_ms: int = 0,
        *,
        future: bool = True,
    ) -> "Future[LookupInfo]":
        """Starts :meth:`lookup`. ``callback`` receives a :class:`LookupInfo`
        or a :class:`ChordsipError` exactly once (on a library thread, or in
        :meth:`process` in fd mode); the returned Future resolves likewise."""
        k, t = cstr(key, "key"), u32(timeout_ms, "timeout_ms")
        lib = self._lib
        return self._start_async(
            "lookup",
            callback,
            lambda p, tok: lib.chordsip_node_lookup_async(p, k, t, _callbacks.LOOKUP_TRAMPOLINE, tok),
            future,
        )

    def put_async(
        self,
        key: str,
        writer: str,
        data: bytes,
        lifetime_s: int,
        callback: Optional[Callable[[Outcome], None]] = None,
        *,
        future: bool = True,
    ) -> "Future[int]":
        """Starts :meth:`put`; ``callback`` receives the copies (int) or an error."""
        k, w, d = cstr(key, "key"), cstr(writer, "writer"), data_bytes(data)
        lt = u32(lifetime_s, "lifetime_s")
        lib = self._lib
        return self._start_async(
            "put",
            callback,
            lambda p, tok: lib.chordsip_node_put_async(
                p, k, w, d, len(d), lt, _callbacks.STORE_TRAMPOLINE, tok
            ),
            future,
        )

    def get_async(
        self, key: str, callback: Optional[Callable[[Outcome], None]] = None,
        *,
        future: bool = True,
    ) -> "Future[List[Value]]":
        """Starts :meth:`get`; ``callback`` receives a list of :class:`Value` or an error."""
        k = cstr(key, "key")
        lib = self._lib
        return self._start_async(
            "get",
            callback,
            lambda p, tok: lib.chordsip_node_get_async(p, k, _callbacks.GET_TRAMPOLINE, tok),
            future,
        )

    def remove_async(
        self, key: str, writer: str, callback: Optional[Callable[[Outcome], None]] = None,
        *,
        future: bool = True,
    ) -> "Future[int]":
        """Starts :meth:`remove`; ``callback`` receives the copies (int) or an error."""
        k, w = cstr(key, "key"), cstr(writer, "writer")
        lib = self._lib
        return self._start_async(
            "remove",
            callback,
            lambda p, tok: lib.chordsip_node_remove_async(p, k, w, _callbacks.STORE_TRAMPOLINE, tok),
            future,
        )

    # -- SIP registrar ------------------------------------------------------

    def lookup_aor_async(
        self, aor: str, callback: Optional[Callable[[Outcome], None]] = None,
        *,
        future: bool = True,
        all: bool = False,
    ) -> "Future[List[Binding]]":
        """Starts :meth:`lookup_aor` (``all=True``: every writer's bindings,
        as a P2P agent reads the other devices'); ``callback`` receives a list
        of :class:`Binding` or a :class:`ChordsipError` exactly once (on a
        library thread, or in :meth:`process` in fd mode); the Future resolves
        likewise."""
        a = cstr(aor, "aor")
        lib = self._lib
        start = lib.chordsip_node_lookup_aor_all_async if all else lib.chordsip_node_lookup_aor_async
        return self._start_async(
            "lookup_aor",
            callback,
            lambda p, tok: start(p, a, _callbacks.BINDINGS_TRAMPOLINE, tok),
            future,
        )

    def register_async(
        self,
        aor: str,
        call_id: str,
        cseq: int,
        contacts: Iterable[Union[Contact, str]] = (),
        expires: Optional[int] = None,
        star: bool = False,
        path: Iterable[str] = (),
        received: Optional[str] = None,
        callback: Optional[Callable[[Outcome], None]] = None,
        *,
        future: bool = True,
    ) -> "Future[RegisterResult]":
        """Starts :meth:`register` without waiting for it: the node reads
        and writes the AOR's bindings on its own thread (REGISTERs of one AOR
        run one after another). ``callback`` receives a
        :class:`RegisterResult` or a :class:`ChordsipError` (e.g.
        :class:`OutOfOrder`) exactly once (on a library thread, or in
        :meth:`process` in fd mode); the Future resolves likewise. A request
        refused before anything is read (malformed) raises here."""
        req = _registrar.request(aor, call_id, cseq, contacts, expires, star, path, received)
        lib = self._lib
        return self._start_async(
            "register %s" % aor,
            callback,
            # The library copies the request before it returns.
            lambda p, tok: lib.chordsip_node_register_async(
                p, req.ref(), _callbacks.REGISTER_TRAMPOLINE, tok
            ),
            future,
        )

    def authenticate_async(
        self,
        method: str,
        aor: str,
        authorization: Optional[str] = None,
        callback: Optional[Callable[[Outcome], None]] = None,
        *,
        future: bool = True,
    ) -> "Future[AuthResult]":
        """Starts :meth:`authenticate`; ``callback`` receives an
        :class:`AuthResult` or a :class:`ChordsipError` exactly once, the
        Future resolves likewise. Raises :class:`Unauthorized` at once when
        the node has no ``credentials_key``."""
        m, a = cstr(method, "method"), cstr(aor, "aor")
        au = None if authorization is None else cstr(authorization, "authorization")
        lib = self._lib
        return self._start_async(
            "authenticate %s" % aor,
            callback,
            lambda p, tok: lib.chordsip_node_authenticate_async(
                p, m, a, au, _callbacks.AUTH_TRAMPOLINE, tok
            ),
            future,
        )

    # -- fd delivery --------------------------------------------------------

    def authenticate(
        self, method: str, aor: str, authorization: Optional[str] = None
    ) -> AuthResult:
        """Checks the digest credentials of a request (a REGISTER) acting for
        ``aor`` against the credentials in the overlay: the realm is the
        AOR's domain, the user must be the AOR's user. ``authorization`` is
        the request's Authorization value (None when it has none). Returns
        the verdict, the SIP status/reason to answer with and, for 401, the
        ``WWW-Authenticate`` value. Raises :class:`Unauthorized` when the node
        has no ``credentials_key`` (answer 500, not 401)."""
        m, a = cstr(method, "method"), cstr(aor, "aor")
        au = None if authorization is None else cstr(authorization, "authorization")
        verdict = ctypes.c_uint32(0)
        buf = ctypes.create_string_buffer(_lib.CHORDSIP_MAX_CHALLENGE_LEN)
        with self._use() as p:
            check(
                self._lib.chordsip_node_authenticate(
                    p, m, a, au, ctypes.byref(verdict), buf, len(buf)
                ),
                "authenticate %s" % aor,
            )
        reason = ctypes.c_char_p()
        status = self._lib.chordsip_auth_status(verdict.value, ctypes.byref(reason))
        return AuthResult(
            AuthVerdict(verdict.value),
            int(status),
            (reason.value or b"").decode(),
            buf.value.decode(),
        )

    def event_fd(self) -> int:
        """In fd mode, the socket that becomes readable when callbacks wait
        (poll it for reading, then call :meth:`process`). The node owns it:
        never read, write or close it. Raises BadState in thread mode."""
        fd = ctypes.c_int(-1)
        with self._use() as p:
            check(self._lib.chordsip_node_event_fd(p, ctypes.byref(fd)), "event_fd")
        return fd.value

    def fileno(self) -> int:
        """:meth:`event_fd`, so a fd-mode Node can be passed to select()/selectors."""
        return self.event_fd()

    def process(self) -> int:
        """In fd mode, runs the waiting callbacks on this thread; returns how
        many ran (0 in thread mode). Callbacks may call any method, including
        blocking ones and :meth:`close`."""
        ran = ctypes.c_size_t(0)
        with self._use() as p:
            check(self._lib.chordsip_node_process(p, ctypes.byref(ran)), "process")
        return ran.value

    # -- introspection ------------------------------------------------------

    def ping(self, addr: str) -> int:
        """Round trip to the peer at ``addr`` (``ip:port``), in microseconds."""
        a = cstr(addr, "addr")
        rtt = ctypes.c_uint64(0)
        with self._use() as p:
            check(self._lib.chordsip_node_ping(p, a, ctypes.byref(rtt)), "ping")
        return rtt.value

    def stats(self) -> Dict[str, Union[int, float, bool]]:
        """The node's counters (``chordsip_stats``) by field name."""
        s = _lib.chordsip_stats()
        with self._use() as p:
            check(self._lib.chordsip_node_stats(p, ctypes.byref(s)), "stats")
        out: Dict[str, Union[int, float, bool]] = {}
        for field in _lib.chordsip_stats._fields_:
            out[field[0]] = getattr(s, field[0])
        out["joined"] = bool(s.joined)
        return out

    @property
    def joined(self) -> bool:
        """True while the node is a member of a ring."""
        return bool(self.stats()["joined"])

    def info(self, what: Union[int, str, InfoKind] = InfoKind.RING) -> str:
        """A report: ``"ring"`` (0: neighbours and fingers), ``"stats"``
        (1: statistics as ``name value`` lines) or ``"metrics"`` (2: the
        OpenMetrics text of :meth:`metrics`)."""
        w = _enum_arg(what, _INFO, "what")
        with self._use() as p:
            return read_text(
                lambda buf, n, needed: self._lib.chordsip_node_info(p, w, buf, n, needed), "info"
            )

    def metrics(self) -> str:
        """The node's counters as OpenMetrics text (the Prometheus exposition
        format, ending in ``# EOF``); names in docs/METRICS.md."""
        with self._use() as p:
            return read_text(
                lambda buf, n, needed: self._lib.chordsip_node_metrics(p, buf, n, needed),
                "metrics",
            )

    def neighbours(self, kind: Union[int, str, Neighbours] = Neighbours.SUCCESSORS) -> List[Peer]:
        """The node's ``"predecessors"``, ``"successors"``, ``"fingers"`` or
        (one-hop overlays) ``"members"``."""
        k = _enum_arg(kind, _NEIGHBOURS, "kind")
        out = ctypes.c_void_p()
        with self._use() as p:
            check(self._lib.chordsip_node_neighbours(p, k, ctypes.byref(out)), "neighbours")
        try:
            return _callbacks.peers_list(self._lib, out)
        finally:
            self._lib.chordsip_peers_free(out)
