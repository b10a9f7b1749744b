"""Publishing for pure P2P user agents: a UA that never sends REGISTER
publishes its contact, and the library keeps it alive (``chordsip_node_publish``)."""

from __future__ import annotations

import ctypes
from concurrent.futures import Future
from typing import Any, Callable, Optional, Union

from . import _callbacks, _lib
from ._handle import Handle
from ._registrar import q_text
from ._util import check, cstr, opt_cstr, u32

Outcome = Any


class PublishCalls:
    """publish/refresh/withdraw of ``Node`` (blocking and asynchronous);
    ``Node`` provides ``_lib``, ``_use()`` and ``_start_async()``."""

    _lib: Any
    _use: Callable[[], Handle]
    _start_async: Callable[..., Any]

    @staticmethod
    def _publication(
        aor: str,
        contact: str,
        expires: int,
        q: Union[None, float, str],
        instance: Optional[str],
    ) -> "_lib.chordsip_publication":
        # The struct keeps its bytes objects alive while it lives.
        return _lib.chordsip_publication(
            cstr(aor, "aor"),
            cstr(contact, "contact"),
            u32(expires, "expires"),
            q_text(q),
            opt_cstr(instance, "instance"),
        )

    def _blocking(self, what: str, call: Callable[[int, Any], int]) -> int:
        """Runs ``call(handle, &granted)``; returns the granted lifetime."""
        granted = ctypes.c_uint32(0)
        with self._use() as h:
            check(call(h, ctypes.byref(granted)), what)
        return granted.value

    def _aor_async(
        self,
        what: str,
        c_function: Any,
        aor: str,
        callback: Optional[Callable[[Outcome], None]],
        future: bool,
    ) -> "Future[int]":
        a = cstr(aor, "aor")
        return self._start_async(  # type: ignore[no-any-return]
            "%s %s" % (what, aor),
            callback,
            lambda h, tok: c_function(h, a, _callbacks.PUBLISH_TRAMPOLINE, tok),
            future,
        )

    def publish(
        self,
        aor: str,
        contact: str,
        expires: int = 3600,
        q: Union[None, float, str] = None,
        instance: Optional[str] = None,
    ) -> int:
        """Publishes ``contact`` (a bare SIP URI) for ``aor`` and keeps it
        alive, for a user agent that never sends REGISTER: the library keeps
        the Call-ID and CSeq, refreshes the binding on its own timers at half
        its lifetime (or every ``publish_refresh_ms``) and reports a failed
        refresh as an :class:`Event` of kind ``REFRESH_FAILED`` (a success
        as ``REFRESHED``), until :meth:`withdraw` or :meth:`leave`.
        Publishing the AOR again with another contact replaces the old one.
        ``q`` as for :class:`Contact`; ``instance`` is the device's
        ``+sip.instance`` (``"<urn:uuid:...>"``). Blocks until the overlay
        stored it; returns the granted lifetime in seconds. Raises
        :class:`InvalidArgument` (with the reason in ``.detail``) for a bad
        argument, :class:`IntervalTooBrief` for ``expires`` under 60."""
        p = self._publication(aor, contact, expires, q, instance)
        return self._blocking(
            "publish %s" % aor,
            lambda h, granted: self._lib.chordsip_node_publish(h, ctypes.byref(p), granted),
        )

    def publish_async(
        self,
        aor: str,
        contact: str,
        expires: int = 3600,
        q: Union[None, float, str] = None,
        instance: Optional[str] = None,
        callback: Optional[Callable[[Outcome], None]] = None,
        *,
        future: bool = True,
    ) -> "Future[int]":
        """Starts :meth:`publish` without waiting (an event loop's thread
        never blocks): ``callback`` receives the granted lifetime or a
        :class:`ChordsipError` exactly once (on a library thread, or in
        :meth:`process` in fd mode); the Future resolves likewise. A bad
        argument raises here."""
        p = self._publication(aor, contact, expires, q, instance)
        lib = self._lib
        return self._start_async(  # type: ignore[no-any-return]
            "publish %s" % aor,
            callback,
            # The library copies the publication before it returns.
            lambda h, tok: lib.chordsip_node_publish_async(
                h, ctypes.byref(p), _callbacks.PUBLISH_TRAMPOLINE, tok
            ),
            future,
        )

    def refresh(self, aor: str) -> int:
        """Refreshes the binding published for ``aor`` now (after an address
        change, say) and restarts its timer; returns the granted lifetime.
        Raises :class:`InvalidArgument` for an AOR this node does not publish."""
        a = cstr(aor, "aor")
        return self._blocking(
            "refresh %s" % aor, lambda h, granted: self._lib.chordsip_node_refresh(h, a, granted)
        )

    def refresh_async(
        self,
        aor: str,
        callback: Optional[Callable[[Outcome], None]] = None,
        *,
        future: bool = True,
    ) -> "Future[int]":
        """Starts :meth:`refresh`; the outcome as for :meth:`publish_async`."""
        return self._aor_async("refresh", self._lib.chordsip_node_refresh_async, aor, callback, future)

    def withdraw(self, aor: str) -> None:
        """Removes the binding published for ``aor`` and stops refreshing it
        (the refreshes stop even when the overlay fails the removal, which
        then raises; the binding lapses within its lifetime)."""
        a = cstr(aor, "aor")
        self._blocking("withdraw %s" % aor, lambda h, _: self._lib.chordsip_node_withdraw(h, a))

    def withdraw_async(
        self,
        aor: str,
        callback: Optional[Callable[[Outcome], None]] = None,
        *,
        future: bool = True,
    ) -> "Future[int]":
        """Starts :meth:`withdraw`; the outcome (0 on success) as for :meth:`publish_async`."""
        return self._aor_async("withdraw", self._lib.chordsip_node_withdraw_async, aor, callback, future)
