"""REGISTER requests and binding lists: Python values <-> the C structs.

``request()`` builds a ``chordsip_register`` (and keeps every buffer it points
to alive in the returned holder); ``bindings_list()`` copies a
``chordsip_bindings`` list into :class:`~chordsip.Binding` values.
"""

from __future__ import annotations

import ctypes
import math
import operator
from typing import Any, Iterable, List, Optional, Sequence, Tuple, Union

from . import _lib
from ._types import Binding, Contact, Hop, RegisterResult
from ._util import cstr, opt_cstr, read_text, u32
from .errors import InvalidArgument, error_for

#: Largest value of the C ``int64_t`` "-1 when absent" fields the library
#: accepts (they are uint32_t values inside).
OPT_U32_MAX = 0xFFFFFFFE


def opt_u32(value: Any, what: str) -> int:
    """None -> -1 (absent); otherwise an int within 0..0xFFFFFFFE."""
    if value is None:
        return -1
    if isinstance(value, bool):
        raise TypeError("%s must be an int or None, not bool" % what)
    try:
        n = operator.index(value)
    except TypeError:
        raise TypeError("%s must be an int or None, not %s" % (what, type(value).__name__)) from None
    if not 0 <= n <= OPT_U32_MAX:
        raise InvalidArgument(detail="%s must be within 0..%d, got %d" % (what, OPT_U32_MAX, n))
    return n


def q_text(q: Union[None, str, float, int], what: str = "q") -> Optional[bytes]:
    """A q-value as the text of a ``q`` parameter.

    A str is passed as written (the library checks it); a number within
    0..1 with at most three decimals is written the shortest way (``0.5``,
    ``1``, ``0.055``)."""
    if q is None:
        return None
    if isinstance(q, str):
        return cstr(q, what)
    if isinstance(q, bool) or not isinstance(q, (int, float)):
        raise TypeError("%s must be a str, a number or None, not %s" % (what, type(q).__name__))
    f = float(q)
    milli = round(f * 1000) if math.isfinite(f) else -1
    if not 0 <= milli <= 1000 or abs(f * 1000 - milli) > 1e-6:
        raise InvalidArgument(detail="%s must be within 0..1 with at most 3 decimals, got %r" % (what, q))
    if milli == 1000:
        return b"1"
    return ("0.%03d" % milli).rstrip("0").rstrip(".").encode()


class Request:
    """A ``chordsip_register`` and everything its pointers refer to."""

    __slots__ = ("struct", "_keep")

    def __init__(self, struct: "_lib.chordsip_register", keep: List[Any]) -> None:
        self.struct = struct
        self._keep = keep

    def ref(self) -> Any:
        return ctypes.byref(self.struct)


def _contact(c: Any, i: int) -> Contact:
    if isinstance(c, Contact):
        return c
    if isinstance(c, str):
        return Contact(c)
    raise TypeError("contacts[%d] must be a Contact or a str, not %s" % (i, type(c).__name__))


def request(
    aor: str,
    call_id: str,
    cseq: int,
    contacts: Iterable[Union[Contact, str]],
    expires: Optional[int],
    star: bool,
    path: Iterable[str],
    received: Optional[str],
) -> Request:
    """Checks and encodes the arguments of ``register()``."""
    if isinstance(contacts, (str, bytes, bytearray, Contact)):
        raise TypeError(
            "contacts must be a list of Contact (or str), not a single %s" % type(contacts).__name__
        )
    if isinstance(path, (str, bytes, bytearray)):
        raise TypeError(
            "path must be a list of str (Path header values), not a single %s" % type(path).__name__
        )
    if not isinstance(star, bool):
        raise TypeError("star must be a bool, not %s" % type(star).__name__)
    keep: List[Any] = []

    def text(value: Any, what: str) -> bytes:
        raw = cstr(value, what)
        keep.append(raw)
        return raw

    def opt_text(value: Any, what: str) -> Optional[bytes]:
        raw = opt_cstr(value, what)
        if raw is not None:
            keep.append(raw)
        return raw

    req = _lib.chordsip_register()
    req.aor = text(aor, "aor")
    req.call_id = text(call_id, "call_id")
    req.cseq = u32(cseq, "cseq")
    req.star = 1 if star else 0
    req.expires = opt_u32(expires, "expires")
    req.received = opt_text(received, "received")

    items: Sequence[Contact] = [_contact(c, i) for i, c in enumerate(contacts)]
    arr = (_lib.chordsip_contact * max(len(items), 1))()
    keep.append(arr)
    for i, c in enumerate(items):
        slot = arr[i]
        slot.uri = text(c.uri, "contacts[%d].uri" % i)
        slot.expires = opt_u32(c.expires, "contacts[%d].expires" % i)
        q = q_text(c.q, "contacts[%d].q" % i)
        if q is not None:
            keep.append(q)
        slot.q = q
        slot.instance = opt_text(c.instance, "contacts[%d].instance" % i)
        slot.reg_id = opt_u32(c.reg_id, "contacts[%d].reg_id" % i)
    req.contacts = ctypes.cast(arr, ctypes.POINTER(_lib.chordsip_contact)) if items else None
    req.contacts_len = len(items)

    hops = [text(p, "path[%d]" % i) for i, p in enumerate(path)]
    parr = (ctypes.c_char_p * max(len(hops), 1))(*hops)
    keep.append(parr)
    req.path = ctypes.cast(parr, ctypes.POINTER(ctypes.c_char_p)) if hops else None
    req.path_len = len(hops)
    return Request(req, keep)


def _text(raw: Optional[bytes]) -> Optional[str]:
    return None if raw is None else raw.decode("utf-8", "replace")


def bindings_list(lib: ctypes.CDLL, bindings: Any) -> List[Binding]:
    """Copies a ``chordsip_bindings`` list (not freed here)."""
    out: List[Binding] = []
    n = lib.chordsip_bindings_len(bindings)
    b = _lib.chordsip_binding()
    kind = ctypes.c_uint32()
    hop = ctypes.c_char_p()
    for i in range(n):
        rc = lib.chordsip_bindings_get(bindings, i, ctypes.byref(b))
        if rc != _lib.CHORDSIP_OK:
            raise error_for(rc, "chordsip_bindings_get")
        rc = lib.chordsip_bindings_next_hop(bindings, i, ctypes.byref(kind), ctypes.byref(hop))
        if rc != _lib.CHORDSIP_OK:
            raise error_for(rc, "chordsip_bindings_next_hop")
        contact_value = read_text(
            lambda buf, size, needed: lib.chordsip_bindings_contact(bindings, i, buf, size, needed),
            "chordsip_bindings_contact",
        )
        path: Tuple[str, ...] = tuple(
            (lib.chordsip_bindings_path(bindings, i, j) or b"").decode("utf-8", "replace")
            for j in range(b.path_len)
        )
        out.append(
            Binding(
                contact=_text(b.contact) or "",
                q=b.q / 1000.0,
                expires=int(b.expires),
                instance=_text(b.instance),
                reg_id=None if b.reg_id < 0 else int(b.reg_id),
                received=_text(b.received),
                call_id=_text(b.call_id) or "",
                cseq=int(b.cseq),
                path=path,
                next_hop=_text(hop.value) or "",
                next_hop_kind=Hop(kind.value),
                contact_value=contact_value,
                owner=_text(lib.chordsip_bindings_owner(bindings, i)),
            )
        )
    return out


def take_bindings(lib: ctypes.CDLL, ptr: ctypes.c_void_p) -> List[Binding]:
    """Copies and frees a list the caller owns."""
    try:
        return bindings_list(lib, ptr)
    finally:
        lib.chordsip_bindings_free(ptr)


def register_result(
    lib: ctypes.CDLL, ptr: ctypes.c_void_p, outcome: "_lib.chordsip_register_outcome"
) -> RegisterResult:
    return RegisterResult(
        bindings=take_bindings(lib, ptr),
        inserted=int(outcome.inserted),
        updated=int(outcome.updated),
        deleted=int(outcome.deleted),
    )
