"""``chordsip.Client``: a handle to one peer of an overlay (no local node)."""

from __future__ import annotations

import ctypes
from typing import Optional, Union

from . import _callbacks, _lib
from ._dict_calls import DictCalls
from ._handle import Handle
from ._types import InfoKind, LookupInfo
from ._util import check, cstr, data_bytes, handle_out, read_text, track, u32
from .node import _INFO, _enum_arg


class Client(DictCalls):
    """Talks to the node at ``peer``: ``"ip:port"`` (UDP) or
    ``"unix:/path"`` (the node's ``client_socket``), in overlay ``overlay``.
    ``key`` (bytes or None) is the node's client credential (its
    ``client_key``), which a UDP client needs (without it the node answers
    :class:`Unauthorized`); on the UNIX socket it is not used: the socket's
    file permissions admit the caller. Every call gives up after
    ``timeout_ms``. Starts no thread; owns one socket; sends nothing until
    the first call. Calls from several threads are serialised. A Client
    belongs to the process that created it (create it after ``fork()``).
    put/get/remove/register/lookup_aor work as on a Node, through the peer.
    """

    _PREFIX = "chordsip_client_"

    def __init__(
        self,
        peer: str,
        overlay: Optional[str] = "chordsip",
        key: Optional[bytes] = None,
        timeout_ms: int = 5000,
    ) -> None:
        self._h: Optional[Handle] = None
        p = cstr(peer, "peer")
        o = None if overlay is None else cstr(overlay, "overlay")
        k = b"" if key is None else data_bytes(key, "key")
        t = u32(timeout_ms, "timeout_ms")
        lib = _lib.get()
        self._lib = lib
        out = ctypes.c_void_p()
        check(
            lib.chordsip_client_new(p, o, k or None, len(k), t, ctypes.byref(out)),
            "client for %s" % peer,
        )
        self._peer = peer
        self._timeout_ms = t or 5000
        self._h = Handle(handle_out(out, "chordsip_client_new"), lib.chordsip_client_free, "the Client")
        track(self)

    # -- lifetime -----------------------------------------------------------

    def close(self) -> None:
        """Closes the socket and frees the handle; idempotent. Waits for calls
        other threads are making to return (each at most the timeout)."""
        h = getattr(self, "_h", None)
        if h is not None:
            h.close(defer=_callbacks.in_library_thread())

    @property
    def closed(self) -> bool:
        h = self._h
        return h is None or h.closed

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except BaseException:  # noqa: B036 - never raise from __del__
            pass

    def __repr__(self) -> str:
        return "<chordsip.Client %s%s>" % (self._peer, " closed" if self.closed else "")

    def _use(self) -> Handle:
        h = self._h
        if h is None:
            from .errors import Closed

            raise Closed(detail="the Client is closed")
        return h

    # -- settings -----------------------------------------------------------

    @property
    def peer(self) -> str:
        return self._peer

    @property
    def timeout_ms(self) -> int:
        return self._timeout_ms

    @timeout_ms.setter
    def timeout_ms(self, value: int) -> None:
        self.set_timeout(value)

    def set_timeout(self, timeout_ms: int) -> None:
        """Changes the hard timeout of every later call (0: 5000 ms)."""
        t = u32(timeout_ms, "timeout_ms")
        with self._use() as p:
            check(self._lib.chordsip_client_set_timeout(p, t), "set_timeout")
        self._timeout_ms = t or 5000

    def set_credential_trust(self, credentials_key: str, admins: Union[str, list]) -> None:
        """Lets this handle read SIP credentials (:meth:`credential_ha1`):
        ``credentials_key`` is 64 hex digits (the key file's content),
        ``admins`` the administrators' public writer keys (a list, or a
        comma-separated str). They stay in this process."""
        if not isinstance(admins, str):
            admins = ",".join(admins)
        k, a = cstr(credentials_key.strip(), "credentials_key"), cstr(admins, "admins")
        with self._use() as p:
            check(self._lib.chordsip_client_set_credential_trust(p, k, a), "set_credential_trust")

    # -- calls --------------------------------------------------------------

    def lookup(self, key: str) -> LookupInfo:
        """The bare Chord lookup run by the peer (latency measured here): a
        ring node, not SIP contacts (that is :meth:`lookup_aor`)."""
        k = cstr(key, "key")
        info = _lib.chordsip_lookup_info()
        with self._use() as p:
            check(self._lib.chordsip_client_lookup(p, k, ctypes.byref(info)), "lookup")
        return _callbacks.lookup_info(info)

    def info(self, what: Union[int, str, InfoKind] = InfoKind.RING) -> str:
        """The peer's report: ``"ring"`` (0), ``"stats"`` (1) or ``"metrics"`` (2)."""
        w = _enum_arg(what, _INFO, "what")
        with self._use() as p:
            return read_text(
                lambda buf, n, needed: self._lib.chordsip_client_info(p, w, buf, n, needed), "info"
            )

    def metrics(self) -> str:
        """The peer's counters as OpenMetrics text (as :meth:`Node.metrics`)."""
        return self.info(InfoKind.METRICS)
