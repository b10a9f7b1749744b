"""The storage and registrar calls that ``Node`` and ``Client`` share: the C
functions differ only in their prefix (``chordsip_node_`` / ``chordsip_client_``)."""

from __future__ import annotations

import ctypes
from typing import Any, Iterable, List, Optional, Union

from . import _callbacks, _lib, _registrar, errors
from ._handle import Handle
from ._types import AbilityPeer, Binding, Contact, RegisterResult, Value
from ._util import check, cstr, data_bytes, u32


class DictCalls:
    """put/get/remove and register/lookup_aor over ``self._lib`` and ``self._use()``."""

    _PREFIX = ""
    _lib: Any

    def _use(self) -> Handle:  # pragma: no cover - provided by the class
        raise NotImplementedError

    def _c(self, name: str) -> Any:
        return getattr(self._lib, self._PREFIX + name)

    def put(self, key: str, writer: str, data: bytes, lifetime_s: int) -> int:
        """Stores ``data`` (copied) as ``writer``'s entry under ``key`` for
        ``lifetime_s`` seconds; returns the number of copies acknowledged."""
        k, w, d = cstr(key, "key"), cstr(writer, "writer"), data_bytes(data)
        lt = u32(lifetime_s, "lifetime_s")
        copies = ctypes.c_uint32(0)
        with self._use() as p:
            check(self._c("put")(p, k, w, d, len(d), lt, ctypes.byref(copies)), "put")
        return copies.value

    def get(self, key: str) -> List[Value]:
        """Every live value under ``key`` (one per writer; [] if none)."""
        k = cstr(key, "key")
        out = ctypes.c_void_p()
        with self._use() as p:
            check(self._c("get")(p, k, ctypes.byref(out)), "get")
        try:
            return _callbacks.values_list(self._lib, out)
        finally:
            self._lib.chordsip_values_free(out)

    def find_peers(self, ability: str, count: int = 8) -> List[AbilityPeer]:
        """Up to ``count`` live peers that announce ``ability`` (e.g.
        ``"relay"``), least loaded first (load per capacity, then the larger
        capacity): one lookup and one read, whatever the overlay's size. A
        peer that left is not found; one that died is found until its
        announcement expires (``ability_ttl_s``, 30 s by default). Raises
        :class:`InvalidArgument` for a malformed name."""
        name = cstr(ability, "ability")
        if not isinstance(count, int) or count < 0:
            raise errors.InvalidArgument(detail="count must be a non-negative int, got %r" % (count,))
        out = ctypes.c_void_p()
        with self._use() as p:
            check(self._c("find_peers")(p, name, count, ctypes.byref(out)), "find_peers")
        try:
            return _callbacks.ability_peers_list(self._lib, out)
        finally:
            self._lib.chordsip_ability_peers_free(out)

    def remove(self, key: str, writer: str) -> int:
        """Removes ``writer``'s entry under ``key``; returns the copies acknowledged."""
        k, w = cstr(key, "key"), cstr(writer, "writer")
        copies = ctypes.c_uint32(0)
        with self._use() as p:
            check(self._c("remove")(p, k, w, ctypes.byref(copies)), "remove")
        return copies.value

    def register(
        self,
        aor: str,
        call_id: str,
        cseq: int,
        contacts: Iterable[Union[Contact, str]],
        expires: Optional[int] = None,
        star: bool = False,
        path: Iterable[str] = (),
        received: Optional[str] = None,
    ) -> RegisterResult:
        """Processes a REGISTER for ``aor`` (the To URI; any spelling, it is
        canonicalised) as a registrar would (RFC 3261 §10.3, RFC 5626 flows).

        ``contacts`` are :class:`Contact` values (a str is a contact URI
        with no parameters); ``expires`` is the Expires header (None:
        absent); ``star=True`` is ``Contact: *`` (needs ``expires=0`` and no
        contacts); ``path`` the Path header values; ``received`` where the
        request came from. Returns the bindings this writer holds for the AOR
        afterwards (highest q first; other writers' are not included:
        ``lookup_aor(aor, all=True)`` lists every one) and the
        inserted/updated/deleted counts. Raises
        :class:`OutOfOrder` (CSeq not newer for the same Call-ID),
        :class:`StorageFull` (over 16 bindings), :class:`IntervalTooBrief`
        (expires 1..59) or :class:`InvalidArgument` (malformed). Blocks at
        most a few operation timeouts. On a Client the REGISTER is processed
        here and the peer stores and reads the bindings."""
        req = _registrar.request(aor, call_id, cseq, contacts, expires, star, path, received)
        out = ctypes.c_void_p()
        outcome = _lib.chordsip_register_outcome()
        with self._use() as p:
            check(
                self._c("register")(p, req.ref(), ctypes.byref(out), ctypes.byref(outcome)),
                "register %s" % aor,
            )
        return _registrar.register_result(self._lib, out, outcome)

    def lookup_aor(self, aor: str, all: bool = False) -> List[Binding]:
        """The live bindings of ``aor`` (any spelling), highest q first; []
        for an unknown AOR. Only bindings written under the node's writer
        key or its ``trusted_writers`` (the ones safe to route to), unless
        ``all``: then every binding, each with its :attr:`Binding.owner`."""
        a = cstr(aor, "aor")
        out = ctypes.c_void_p()
        call = "lookup_aor_all" if all else "lookup_aor"
        with self._use() as p:
            check(self._c(call)(p, a, ctypes.byref(out)), "lookup_aor %s" % aor)
        return _registrar.take_bindings(self._lib, out)

    def credential_ha1(self, user: str, realm: str, algorithm: str = "MD5") -> Optional[str]:
        """The HA1 of ``user`` in ``realm`` (lower-case hex) for ``algorithm``
        ("MD5" or "SHA-256") from the credentials an administrator stored in
        the overlay (``chordsip user add``); None when there is no such user.
        Raises :class:`Unauthorized` when this handle cannot read credentials
        (no credentials key, no admins, or a record sealed with another key)."""
        u, r = cstr(user, "user"), cstr(realm, "realm")
        alg = _digest_algorithm(algorithm)
        buf = ctypes.create_string_buffer(65)
        with self._use() as p:
            rc = self._c("credential_ha1")(p, u, r, alg, buf, len(buf))
        if rc == _lib.CHORDSIP_ERR_NOT_FOUND:
            return None
        check(rc, "credential_ha1 %s@%s" % (user, realm))
        return buf.value.decode()


def _digest_algorithm(name: str) -> int:
    algs = {"MD5": _lib.CHORDSIP_DIGEST_MD5, "SHA-256": _lib.CHORDSIP_DIGEST_SHA256}
    try:
        return algs[name.upper()]
    except (KeyError, AttributeError):
        raise errors.InvalidArgument(detail="algorithm %r: MD5 or SHA-256" % (name,)) from None


def digest_ha1(user: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """HA1 = H(user:realm:password) in lower-case hex (``chordsip_digest_ha1``)."""
    u, r, pw = cstr(user, "user"), cstr(realm, "realm"), cstr(password, "password")
    buf = ctypes.create_string_buffer(65)
    check(
        _lib.get().chordsip_digest_ha1(_digest_algorithm(algorithm), u, r, pw, buf, len(buf)),
        "digest_ha1",
    )
    return buf.value.decode()

