"""chordsip: a Chord overlay for SIP location services (ctypes binding).

    import chordsip

    with chordsip.Node({"listen": "127.0.0.1:0"}) as a, chordsip.Node() as b:
        a.join()                      # a new ring
        b.join(a.addr)
        a.put("sip:alice@example.org", "phone-1", b"sip:alice@10.0.0.7", 3600)
        print(b.get("sip:alice@example.org"))

Importing this package has no side effects: libchordsip.so is loaded on the
first call that needs it (``$CHORDSIP_LIBRARY``, then the system loader,
then ``target/release`` of the checkout), and no thread starts before a node
starts.
"""

from __future__ import annotations

import ctypes
from typing import Union

from . import _lib, errors
from ._types import (
    AbilityPeer,
    AuthResult,
    AuthVerdict,
    Binding,
    Contact,
    Delivery,
    Event,
    EventKind,
    Hop,
    InfoKind,
    LogLevel,
    LookupInfo,
    Neighbours,
    Peer,
    RegisterResult,
    RingSnapshot,
    SipReply,
    Value,
)
from ._dict_calls import digest_ha1
from ._util import check, cstr
from .client import Client
from .errors import *  # noqa: F403  (the exceptions, listed once in errors.__all__)
from .node import Node

__version__ = "0.1.0"

#: Longest key accepted, in UTF-8 bytes.
MAX_KEY_LEN = _lib.CHORDSIP_MAX_KEY_LEN
#: Longest writer accepted, in UTF-8 bytes (a node's ``max_writer_bytes`` may be lower).
MAX_WRITER_LEN = _lib.CHORDSIP_MAX_WRITER_LEN

__all__ = [
    "Node",
    "Client",
    "Value",
    "Contact",
    "Binding",
    "AuthVerdict",
    "AuthResult",
    "digest_ha1",
    "Hop",
    "RegisterResult",
    "RingSnapshot",
    "SipReply",
    "LookupInfo",
    "Peer",
    "AbilityPeer",
    "Event",
    "EventKind",
    "Delivery",
    "Neighbours",
    "InfoKind",
    "LogLevel",
    "version",
    "key_id",
    "result_str",
    "sip_reply",
    "min_expires",
    "library_path",
    "MAX_KEY_LEN",
    "MAX_WRITER_LEN",
]
__all__ += errors.__all__


def version() -> str:
    """The library's version, e.g. ``"0.1.0"`` (loads the library)."""
    raw: bytes = _lib.get().chordsip_version()
    return raw.decode()


def key_id(key: str) -> str:
    """The 40-hex-digit ring id of ``key`` (SHA-1 of its UTF-8 bytes)."""
    k = cstr(key, "key")
    buf = ctypes.create_string_buffer(41)
    check(_lib.get().chordsip_key_id(k, buf, len(buf)), "key_id")
    return buf.value.decode()


def result_str(code: int) -> str:
    """The library's description of a ``chordsip_result`` code."""
    return _lib.result_str(code)


def sip_reply(result: Union[int, errors.ChordsipError]) -> SipReply:
    """The SIP answer a registrar or proxy sends for a result code (or a
    :class:`ChordsipError`), from the library's one table
    (``chordsip_result_sip_status`` and friends): 0 is 200 OK, a malformed
    REGISTER 400, too many bindings 403, :class:`IntervalTooBrief` 423 with
    ``"Min-Expires: %d\\r\\n" % min_expires()``, an overlay that cannot
    answer now 503 with ``Retry-After``, anything else 500."""
    code = result.code if isinstance(result, errors.ChordsipError) else int(result)
    lib = _lib.get()
    return SipReply(
        int(lib.chordsip_result_sip_status(code)),
        lib.chordsip_result_sip_reason(code).decode("utf-8", "replace"),
        lib.chordsip_result_sip_headers(code).decode("utf-8", "replace"),
    )


def min_expires() -> int:
    """The registrar's shortest accepted registration in seconds
    (``CHORDSIP_MIN_EXPIRES``; a shorter one raises :class:`IntervalTooBrief`)."""
    return _lib.min_expires()


def library_path() -> str:
    """Where libchordsip.so was loaded from (loads it if needed)."""
    _lib.get()
    return _lib.path() or ""
