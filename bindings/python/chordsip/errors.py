"""Exceptions raised by the chordsip binding.

Every failed call of the C library raises a :class:`ChordsipError` (or one of
its subclasses) carrying the library's ``chordsip_result`` code, its C name
and the library's own description (``chordsip_result_str``).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple, Type

from . import _lib
from ._missing import LibraryNotFound

__all__ = [
    "RESULT_NAMES",
    "ChordsipError",
    "LibraryNotFound",
    "ChordsipTimeout",
    "NoRoute",
    "NotJoined",
    "JoinFailed",
    "IdCollision",
    "TooLarge",
    "StorageFull",
    "Stale",
    "Shutdown",
    "InvalidArgument",
    "NullPointer",
    "BadUtf8",
    "Refused",
    "IoError",
    "Forked",
    "Cancelled",
    "InCallback",
    "BufferTooSmall",
    "BadState",
    "OutOfRange",
    "Panic",
    "OutOfOrder",
    "IntervalTooBrief",
    "ClockSkew",
    "Unauthorized",
    "NotFound",
    "ModeMismatch",
    "Closed",
    "error_for",
]

#: ``chordsip_result`` codes (stable numbers) and their C names.
RESULT_NAMES: Dict[int, str] = {
    0: "CHORDSIP_OK",
    1: "CHORDSIP_ERR_TIMEOUT",
    2: "CHORDSIP_ERR_NO_ROUTE",
    3: "CHORDSIP_ERR_NOT_JOINED",
    4: "CHORDSIP_ERR_JOIN_FAILED",
    5: "CHORDSIP_ERR_ID_COLLISION",
    6: "CHORDSIP_ERR_TOO_LARGE",
    7: "CHORDSIP_ERR_FULL",
    8: "CHORDSIP_ERR_STALE",
    9: "CHORDSIP_ERR_SHUTDOWN",
    10: "CHORDSIP_ERR_INVALID_ARGUMENT",
    11: "CHORDSIP_ERR_NULL_POINTER",
    12: "CHORDSIP_ERR_BAD_UTF8",
    13: "CHORDSIP_ERR_REFUSED",
    14: "CHORDSIP_ERR_IO",
    15: "CHORDSIP_ERR_FORKED",
    16: "CHORDSIP_ERR_CANCELLED",
    17: "CHORDSIP_ERR_IN_CALLBACK",
    18: "CHORDSIP_ERR_BUFFER_TOO_SMALL",
    19: "CHORDSIP_ERR_BAD_STATE",
    20: "CHORDSIP_ERR_OUT_OF_RANGE",
    21: "CHORDSIP_ERR_PANIC",
    22: "CHORDSIP_ERR_OUT_OF_ORDER",
    23: "CHORDSIP_ERR_INTERVAL_TOO_BRIEF",
    24: "CHORDSIP_ERR_CLOCK_SKEW",
    25: "CHORDSIP_ERR_UNAUTHORIZED",
    26: "CHORDSIP_ERR_NOT_FOUND",
    27: "CHORDSIP_ERR_MODE_MISMATCH",
}


class ChordsipError(Exception):
    """A chordsip call failed.

    Attributes:
        code: the ``chordsip_result`` number (stable across releases).
        name: its C name, e.g. ``"CHORDSIP_ERR_TIMEOUT"``.
        description: the library's text for the code (``chordsip_result_str``).
        detail: the call and, when the library gave one, its reason in
            words (``chordsip_error_detail``: which argument and why, what to
            call first, the overlay's answer), or ``None``.
    """

    #: The code this class stands for (0 for the generic base class).
    default_code = 0

    def __init__(
        self,
        code: Optional[int] = None,
        detail: Optional[str] = None,
        description: Optional[str] = None,
    ) -> None:
        self.code: int = self.default_code if code is None else int(code)
        self.name: str = RESULT_NAMES.get(self.code, "CHORDSIP_ERR_UNKNOWN_%d" % self.code)
        if description is None:
            description = _lib.result_str(self.code)
        self.description: str = description
        self.detail: Optional[str] = detail
        text = "%s (%s)" % (description, self.name)
        if detail:
            text = "%s: %s" % (detail, text)
        super().__init__(text)

    def __reduce__(
        self,
    ) -> Tuple[Any, Tuple[int, Optional[str], str]]:  # keep pickling (e.g. across processes) working
        return (type(self), (self.code, self.detail, self.description))


class ChordsipTimeout(ChordsipError, TimeoutError):
    """CHORDSIP_ERR_TIMEOUT: the operation did not finish before its deadline."""

    default_code = 1


class NoRoute(ChordsipError):
    """CHORDSIP_ERR_NO_ROUTE: no live node could be reached for the key."""

    default_code = 2


class NotJoined(ChordsipError):
    """CHORDSIP_ERR_NOT_JOINED: the node has not joined an overlay (or left it)."""

    default_code = 3


class JoinFailed(ChordsipError):
    """CHORDSIP_ERR_JOIN_FAILED: none of the bootstrap peers answered."""

    default_code = 4


class IdCollision(ChordsipError):
    """CHORDSIP_ERR_ID_COLLISION: another live node uses this node id."""

    default_code = 5


class InvalidArgument(ChordsipError, ValueError):
    """CHORDSIP_ERR_INVALID_ARGUMENT (also raised by the binding's own checks)."""

    default_code = 10


class TooLarge(InvalidArgument):
    """CHORDSIP_ERR_TOO_LARGE: a key, writer, value or message exceeds a limit."""

    default_code = 6


class StorageFull(ChordsipError):
    """CHORDSIP_ERR_FULL: a per-key or per-node storage limit is reached."""

    default_code = 7


class Stale(ChordsipError):
    """CHORDSIP_ERR_STALE: a newer version of the entry is already stored."""

    default_code = 8


class Shutdown(ChordsipError):
    """CHORDSIP_ERR_SHUTDOWN: the node is shutting down or has stopped."""

    default_code = 9


class NullPointer(InvalidArgument):
    """CHORDSIP_ERR_NULL_POINTER (a binding bug if it ever surfaces)."""

    default_code = 11


class BadUtf8(InvalidArgument):
    """CHORDSIP_ERR_BAD_UTF8: a string argument is not valid UTF-8."""

    default_code = 12


class Refused(ChordsipError):
    """CHORDSIP_ERR_REFUSED: a remote peer refused the request."""

    default_code = 13


class IoError(ChordsipError):
    """CHORDSIP_ERR_IO: a socket or system call failed."""

    default_code = 14


class Forked(ChordsipError):
    """CHORDSIP_ERR_FORKED: the object was created by the parent process."""

    default_code = 15


class Cancelled(ChordsipError):
    """CHORDSIP_ERR_CANCELLED: the node stopped before the operation finished."""

    default_code = 16


class InCallback(ChordsipError):
    """CHORDSIP_ERR_IN_CALLBACK: a blocking call from a library-thread callback."""

    default_code = 17


class BufferTooSmall(ChordsipError):
    """CHORDSIP_ERR_BUFFER_TOO_SMALL (handled inside the binding)."""

    default_code = 18


class BadState(ChordsipError):
    """CHORDSIP_ERR_BAD_STATE: the call does not fit the object's state."""

    default_code = 19


class OutOfRange(ChordsipError, IndexError):
    """CHORDSIP_ERR_OUT_OF_RANGE: an index is past the end of a list."""

    default_code = 20


class Panic(ChordsipError):
    """CHORDSIP_ERR_PANIC: a bug in chordsip (a Rust panic was caught)."""

    default_code = 21


class OutOfOrder(ChordsipError):
    """CHORDSIP_ERR_OUT_OF_ORDER: a REGISTER's CSeq is not newer than the
    stored binding's of the same Call-ID (a registrar answers SIP 500,
    RFC 3261 §10.3 step 7). Nothing was changed."""

    default_code = 22


class IntervalTooBrief(ChordsipError):
    """CHORDSIP_ERR_INTERVAL_TOO_BRIEF: a REGISTER's expires is below the
    registrar's minimum (a registrar answers SIP 423 with ``Min-Expires``;
    chordsip's minimum is :attr:`min_expires` seconds). Nothing was changed."""

    default_code = 23

    @property
    def min_expires(self) -> int:
        """The registrar's minimum expires in seconds (``CHORDSIP_MIN_EXPIRES``,
        read from the library)."""
        return _lib.min_expires()


class ClockSkew(ChordsipError):
    """CHORDSIP_ERR_CLOCK_SKEW: the responsible node's clock differs from
    this one's by more than the replay window: the write arrived past its
    signed expiry there, or its version lies in that node's future. Nothing
    was stored; fix the clocks (NTP)."""

    default_code = 24


class Unauthorized(ChordsipError, PermissionError):
    """CHORDSIP_ERR_UNAUTHORIZED: the node refused a client request (no
    client credential, a wrong one, or a namespace it does not allow)."""

    default_code = 25


class NotFound(ChordsipError, LookupError):
    """CHORDSIP_ERR_NOT_FOUND: there is no record of what was asked (e.g. no
    SIP credential for this user and realm)."""

    default_code = 26


class ModeMismatch(ChordsipError):
    """CHORDSIP_ERR_MODE_MISMATCH: the overlay joined routes in the other
    mode (``routing=one-hop`` against ``multi-hop``); every member must be
    configured alike."""

    default_code = 27


class Closed(BadState):
    """The Node or Client was closed; raised by the binding without calling C."""

    default_code = 19


_BY_CODE: Dict[int, Type[ChordsipError]] = {
    cls.default_code: cls
    for cls in (
        ChordsipTimeout,
        NoRoute,
        NotJoined,
        JoinFailed,
        IdCollision,
        TooLarge,
        StorageFull,
        Stale,
        Shutdown,
        InvalidArgument,
        NullPointer,
        BadUtf8,
        Refused,
        IoError,
        Forked,
        Cancelled,
        InCallback,
        BufferTooSmall,
        BadState,
        OutOfRange,
        Panic,
        OutOfOrder,
        IntervalTooBrief,
        ClockSkew,
        Unauthorized,
        NotFound,
        ModeMismatch,
    )
}


def error_for(code: int, detail: Optional[str] = None) -> ChordsipError:
    """The exception for a ``chordsip_result`` code (the most specific class)."""
    return _BY_CODE.get(int(code), ChordsipError)(code, detail)
