"""Argument checks and conversions shared by Node and Client."""

from __future__ import annotations

import atexit
import ctypes
import operator
import threading
import weakref
from typing import Any, Iterable, Optional, Union

from . import _lib
from .errors import BadUtf8, InvalidArgument, error_for

U32_MAX = 0xFFFFFFFF


def handle_out(out: ctypes.c_void_p, what: str) -> int:
    """The pointer a successful ``_new`` wrote (a NULL would be a library bug)."""
    if not out.value:
        raise error_for(21, "%s returned OK without an object" % what)
    return int(out.value)


def library_detail() -> Optional[str]:
    """Why the last failing library call of this thread failed, in the
    library's words (``chordsip_error_detail``), or None."""
    try:
        lib = _lib.get()
    except Exception:  # noqa: BLE001 - no library: no words to add
        return None
    size = 1024
    needed = ctypes.c_size_t(0)
    for _ in range(3):
        buf = ctypes.create_string_buffer(size)
        rc = lib.chordsip_error_detail(buf, size, ctypes.byref(needed))
        if rc == _lib.CHORDSIP_ERR_BUFFER_TOO_SMALL and needed.value > size:
            size = needed.value
            continue
        if rc != _lib.CHORDSIP_OK:
            return None
        return buf.value.decode("utf-8", "replace") or None
    return None


def check(rc: int, detail: Optional[str] = None) -> None:
    """Raises the exception for a non-OK ``chordsip_result``, its
    ``detail`` the call (``detail``) and the library's reason."""
    if rc != _lib.CHORDSIP_OK:
        why = library_detail()
        if why and detail:
            detail = "%s: %s" % (detail, why)
        raise error_for(rc, detail or why)


def cstr(value: Any, what: str) -> bytes:
    """A str argument as NUL-terminated UTF-8 (bytes without a NUL)."""
    if not isinstance(value, str):
        raise TypeError("%s must be str, not %s" % (what, type(value).__name__))
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise BadUtf8(detail="%s is not encodable as UTF-8 (%s)" % (what, e.reason)) from None
    if b"\0" in raw:
        raise InvalidArgument(detail="%s contains a NUL character" % what)
    return raw


def opt_cstr(value: Any, what: str) -> Optional[bytes]:
    return None if value is None else cstr(value, what)


def data_bytes(value: Any, what: str = "data") -> bytes:
    """Bytes-like data (copied into an immutable bytes object)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError("%s must be bytes-like, not %s" % (what, type(value).__name__))


def u32(value: Any, what: str) -> int:
    """A non-negative integer that fits the C uint32_t parameter."""
    if isinstance(value, bool):
        raise TypeError("%s must be an int, not bool" % what)
    try:
        n = operator.index(value)
    except TypeError:
        raise TypeError("%s must be an int, not %s" % (what, type(value).__name__)) from None
    if not 0 <= n <= U32_MAX:
        raise InvalidArgument(detail="%s must be within 0..%d, got %d" % (what, U32_MAX, n))
    return n


def addr_list(bootstrap: Union[None, str, Iterable[str]]) -> Optional[bytes]:
    """A bootstrap list (str or iterable of str) as the C comma-separated text."""
    if bootstrap is None:
        return None
    if isinstance(bootstrap, str):
        return cstr(bootstrap, "bootstrap")
    if isinstance(bootstrap, (bytes, bytearray)):
        raise TypeError("bootstrap must be str or a list of str")
    items = [cstr(a, "bootstrap address") for a in bootstrap]
    return b",".join(items)


def read_text(call: Any, what: str) -> str:
    """Runs ``call(buf, len, needed_ptr)`` growing the buffer as the library asks."""
    size = 4096
    needed = ctypes.c_size_t(0)
    for _ in range(8):
        buf = ctypes.create_string_buffer(size)
        rc = call(buf, size, ctypes.byref(needed))
        if rc == _lib.CHORDSIP_ERR_BUFFER_TOO_SMALL and needed.value > size:
            size = needed.value
            continue
        check(rc, what)
        return buf.value.decode("utf-8", "replace")
    check(rc, what)
    return buf.value.decode("utf-8", "replace")


# ---------------------------------------------------------------------------
# Closing whatever is still open at interpreter exit (library threads must not
# call into a finalizing interpreter). Registered on first use, not at import.
# ---------------------------------------------------------------------------

_live: "weakref.WeakSet[Any]" = weakref.WeakSet()
_live_lock = threading.Lock()
_atexit_registered = False


def track(obj: Any) -> None:
    """Closes ``obj`` at interpreter exit if it is still alive then."""
    global _atexit_registered
    with _live_lock:
        _live.add(obj)
        if not _atexit_registered:
            _atexit_registered = True
            atexit.register(_close_all)


def _close_all() -> None:
    with _live_lock:
        objs = list(_live)
    for obj in objs:
        try:
            obj.close()
        except Exception:
            pass
