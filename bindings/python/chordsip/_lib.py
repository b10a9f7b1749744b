"""ctypes mirror of include/chordsip.h and the lazy loader of libchordsip.

Nothing here touches the file system or loads a library at import time: the
library is found and loaded by :func:`get` on first use.

Search order:

1. ``$CHORDSIP_LIBRARY`` (full path of libchordsip.so); if set it must load.
2. The system loader: ``ctypes.util.find_library("chordsip")``, then
   ``libchordsip.so.0`` (an installed library, ``make install``).
3. ``target/release/libchordsip.so`` of the checkout this package sits in
   (``bindings/python/chordsip`` -> repository root).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char,
    c_char_p,
    c_double,
    c_int,
    c_int64,
    c_size_t,
    c_uint8,
    c_uint16,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ._missing import LibraryNotFound

ENV_VAR = "CHORDSIP_LIBRARY"
SONAME = "libchordsip.so.0"

# ---------------------------------------------------------------------------
# Constants of the header
# ---------------------------------------------------------------------------

CHORDSIP_MAX_KEY_LEN = 1024
CHORDSIP_MAX_WRITER_LEN = 223
CHORDSIP_OWNER_LEN = 32

CHORDSIP_OK = 0
CHORDSIP_ERR_BUFFER_TOO_SMALL = 18
CHORDSIP_ERR_CANCELLED = 16
CHORDSIP_ERR_OUT_OF_ORDER = 22
CHORDSIP_ERR_INTERVAL_TOO_BRIEF = 23
CHORDSIP_ERR_CLOCK_SKEW = 24
CHORDSIP_ERR_UNAUTHORIZED = 25
CHORDSIP_ERR_NOT_FOUND = 26
CHORDSIP_ERR_MODE_MISMATCH = 27
CHORDSIP_DIGEST_MD5 = 1
CHORDSIP_DIGEST_SHA256 = 2
CHORDSIP_MAX_CHALLENGE_LEN = 512

CHORDSIP_DELIVER_THREAD = 0
CHORDSIP_DELIVER_FD = 1

# ---------------------------------------------------------------------------
# Structs (field for field as in chordsip.h)
# ---------------------------------------------------------------------------


class chordsip_peer(Structure):
    _fields_ = [
        ("id", c_char * 41),
        ("addr", c_char * 64),
    ]


class chordsip_ability_peer(Structure):
    _fields_ = [
        ("peer", chordsip_peer),
        ("name", c_char_p),
        ("capacity", c_uint32),
        ("load", c_uint32),
        ("attrs", c_char_p),
        ("expires_in_ms", c_uint64),
    ]


class chordsip_ring(Structure):
    _fields_ = [
        ("node", chordsip_peer),
        ("joined", c_uint32),
        ("stored_keys", c_uint64),
        ("stored_entries", c_uint64),
        ("predecessors", c_void_p),
        ("successors", c_void_p),
        ("fingers", c_void_p),
        ("members", c_void_p),
    ]


class chordsip_lookup_info(Structure):
    _fields_ = [
        ("node", chordsip_peer),
        ("hops", c_uint32),
        ("latency_us", c_uint64),
    ]


class chordsip_event(Structure):
    _fields_ = [
        ("kind", c_int),  # chordsip_event_kind (a C enum: int)
        ("has_peer", c_uint32),
        ("peer", chordsip_peer),
        ("count", c_uint64),
        ("weight", c_uint32),
        ("sip_address", c_char * 64),
        ("aor", c_char_p),
        ("result", c_int),  # chordsip_result
        ("expires", c_uint32),
        ("retry_ms", c_uint32),
        ("detail", c_char_p),
    ]


class chordsip_value(Structure):
    _fields_ = [
        ("writer", POINTER(c_char)),
        ("writer_len", c_size_t),
        ("data", POINTER(c_uint8)),
        ("data_len", c_size_t),
        ("version", c_uint64),
        ("expires_in_ms", c_uint64),
        ("owner", c_uint8 * CHORDSIP_OWNER_LEN),
    ]


class chordsip_stats(Structure):
    _fields_ = [
        ("joined", c_uint32),
        ("msgs_sent", c_uint64),
        ("msgs_received", c_uint64),
        ("bytes_sent", c_uint64),
        ("bytes_received", c_uint64),
        ("dropped_malformed", c_uint64),
        ("dropped_unauthenticated", c_uint64),
        ("dropped_unmatched", c_uint64),
        ("retransmits", c_uint64),
        ("send_errors", c_uint64),
        ("rpc_timeouts", c_uint64),
        ("lookups_ok", c_uint64),
        ("lookups_failed", c_uint64),
        ("puts_ok", c_uint64),
        ("puts_failed", c_uint64),
        ("gets_ok", c_uint64),
        ("gets_failed", c_uint64),
        ("hops_mean", c_double),
        ("hops_max", c_uint64),
        ("lookup_p50_us", c_uint64),
        ("lookup_p99_us", c_uint64),
        ("stored_keys", c_uint64),
        ("stored_entries", c_uint64),
        ("primary_entries", c_uint64),
        ("stored_value_bytes", c_uint64),
        ("nodes_failed_detected", c_uint64),
        ("events_dropped", c_uint64),
        ("dropped_rate_limited", c_uint64),
        ("wrong_answers", c_uint64),
        ("forged_entries", c_uint64),
        ("refused_membership", c_uint64),
        ("retries_sent", c_uint64),
    ]


class chordsip_binding(Structure):
    """One binding, borrowed from its ``chordsip_bindings`` list."""

    _fields_ = [
        ("contact", c_char_p),
        ("q", c_uint32),  # thousandths
        ("expires", c_uint32),  # remaining seconds
        ("instance", c_char_p),  # NULL when absent
        ("reg_id", c_int64),  # -1 when absent
        ("received", c_char_p),  # NULL when absent
        ("call_id", c_char_p),
        ("cseq", c_uint32),
        ("path_len", c_size_t),
    ]


class chordsip_contact(Structure):
    """One Contact of a REGISTER (the strings are kept alive by the caller)."""

    _fields_ = [
        ("uri", c_char_p),
        ("expires", c_int64),  # -1 when absent
        ("q", c_char_p),  # as written ("0.5"), or NULL
        ("instance", c_char_p),
        ("reg_id", c_int64),  # -1 when absent
    ]


class chordsip_register(Structure):
    """A REGISTER request as the registrar needs it."""

    _fields_ = [
        ("aor", c_char_p),
        ("call_id", c_char_p),
        ("cseq", c_uint32),
        ("star", c_uint32),
        ("expires", c_int64),  # -1 when absent
        ("contacts", POINTER(chordsip_contact)),
        ("contacts_len", c_size_t),
        ("path", POINTER(c_char_p)),  # const char *const *
        ("path_len", c_size_t),
        ("received", c_char_p),
    ]


class chordsip_publication(Structure):
    _fields_ = [
        ("aor", c_char_p),
        ("contact", c_char_p),
        ("expires", c_uint32),
        ("q", c_char_p),
        ("instance", c_char_p),
    ]


class chordsip_register_outcome(Structure):
    _fields_ = [
        ("inserted", c_uint32),
        ("updated", c_uint32),
        ("deleted", c_uint32),
    ]


#: The structs mirrored from the header, by C name (used by the layout test).
STRUCTS: Dict[str, Any] = {
    "chordsip_peer": chordsip_peer,
    "chordsip_ability_peer": chordsip_ability_peer,
    "chordsip_lookup_info": chordsip_lookup_info,
    "chordsip_event": chordsip_event,
    "chordsip_value": chordsip_value,
    "chordsip_stats": chordsip_stats,
    "chordsip_binding": chordsip_binding,
    "chordsip_contact": chordsip_contact,
    "chordsip_register": chordsip_register,
    "chordsip_register_outcome": chordsip_register_outcome,
    "chordsip_publication": chordsip_publication,
    "chordsip_ring": chordsip_ring,
}

# ---------------------------------------------------------------------------
# Callback types. user_data is passed as c_void_p: the binding hands the
# library a small integer token, never a pointer to a Python object.
# ---------------------------------------------------------------------------

chordsip_event_cb = CFUNCTYPE(None, POINTER(chordsip_event), c_void_p)
chordsip_log_cb = CFUNCTYPE(None, c_uint32, c_char_p, c_void_p)
chordsip_thread_cb = CFUNCTYPE(None, c_void_p)
chordsip_lookup_cb = CFUNCTYPE(None, c_int, POINTER(chordsip_lookup_info), c_void_p)
chordsip_store_cb = CFUNCTYPE(None, c_int, c_uint32, c_void_p)
chordsip_done_cb = CFUNCTYPE(None, c_int, c_void_p)
chordsip_get_cb = CFUNCTYPE(None, c_int, c_void_p, c_void_p)
chordsip_bindings_cb = CFUNCTYPE(None, c_int, c_void_p, c_void_p)
chordsip_register_cb = CFUNCTYPE(
    None, c_int, c_void_p, POINTER(chordsip_register_outcome), c_void_p
)
chordsip_auth_cb = CFUNCTYPE(None, c_int, c_uint32, c_char_p, c_void_p)
chordsip_publish_cb = CFUNCTYPE(None, c_int, c_uint32, c_void_p)

CALLBACK_TYPES: Dict[str, Any] = {
    "chordsip_event_cb": chordsip_event_cb,
    "chordsip_log_cb": chordsip_log_cb,
    "chordsip_thread_cb": chordsip_thread_cb,
    "chordsip_lookup_cb": chordsip_lookup_cb,
    "chordsip_store_cb": chordsip_store_cb,
    "chordsip_done_cb": chordsip_done_cb,
    "chordsip_get_cb": chordsip_get_cb,
    "chordsip_bindings_cb": chordsip_bindings_cb,
    "chordsip_register_cb": chordsip_register_cb,
    "chordsip_auth_cb": chordsip_auth_cb,
    "chordsip_publish_cb": chordsip_publish_cb,
}

# ---------------------------------------------------------------------------
# Prototypes: (restype, argtypes) of every function in chordsip.h.
# Opaque handles (chordsip_node *, chordsip_config *, ...) are c_void_p;
# chordsip_result is c_int; `const uint8_t *` buffers take bytes (c_char_p);
# `char *` output buffers are POINTER(c_char) (a create_string_buffer).
# tests/test_header.py checks this table against the header.
# ---------------------------------------------------------------------------

_R = c_int  # chordsip_result
_H = c_void_p  # any opaque handle pointer
_HH = POINTER(c_void_p)  # handle out-parameter (chordsip_x **)
_BUF = POINTER(c_char)  # char * output buffer
_BYTES = c_char_p  # const uint8_t * input buffer

PROTOTYPES: Dict[str, Tuple[Any, List[Any]]] = {
    "chordsip_version": (c_char_p, []),
    # abilities
    "chordsip_node_set_abilities": (_R, [_H, c_char_p]),
    "chordsip_node_find_peers": (_R, [_H, c_char_p, c_size_t, _HH]),
    "chordsip_client_find_peers": (_R, [_H, c_char_p, c_size_t, _HH]),
    "chordsip_ability_peers_len": (c_size_t, [_H]),
    "chordsip_ability_peers_get": (_R, [_H, c_size_t, POINTER(chordsip_ability_peer)]),
    "chordsip_ability_peers_attr": (c_char_p, [_H, c_size_t, c_char_p]),
    "chordsip_ability_peers_free": (None, [_H]),
    "chordsip_result_str": (c_char_p, [c_int]),
    "chordsip_key_id": (_R, [c_char_p, _BUF, c_size_t]),
    # client
    "chordsip_client_new": (_R, [c_char_p, c_char_p, _BYTES, c_size_t, c_uint32, _HH]),
    "chordsip_client_free": (None, [_H]),
    "chordsip_client_set_timeout": (_R, [_H, c_uint32]),
    "chordsip_client_put": (
        _R,
        [_H, c_char_p, c_char_p, _BYTES, c_size_t, c_uint32, POINTER(c_uint32)],
    ),
    "chordsip_client_remove": (_R, [_H, c_char_p, c_char_p, POINTER(c_uint32)]),
    "chordsip_client_get": (_R, [_H, c_char_p, _HH]),
    "chordsip_client_lookup": (_R, [_H, c_char_p, POINTER(chordsip_lookup_info)]),
    "chordsip_client_info": (_R, [_H, c_uint32, _BUF, c_size_t, POINTER(c_size_t)]),
    "chordsip_client_register": (
        _R,
        [_H, POINTER(chordsip_register), _HH, POINTER(chordsip_register_outcome)],
    ),
    "chordsip_client_lookup_aor": (_R, [_H, c_char_p, _HH]),
    "chordsip_client_lookup_aor_all": (_R, [_H, c_char_p, _HH]),
    "chordsip_client_set_credential_trust": (_R, [_H, c_char_p, c_char_p]),
    "chordsip_client_credential_ha1": (_R, [_H, c_char_p, c_char_p, c_uint32, _BUF, c_size_t]),
    # config
    "chordsip_config_new": (_R, [_HH]),
    "chordsip_config_free": (None, [_H]),
    "chordsip_config_set": (_R, [_H, c_char_p, c_char_p, _BUF, c_size_t]),
    "chordsip_config_check": (_R, [_H, _BUF, c_size_t]),
    "chordsip_config_set_overlay_key": (_R, [_H, _BYTES, c_size_t]),
    "chordsip_config_set_delivery": (_R, [_H, c_uint32]),
    "chordsip_config_set_event_callback": (_R, [_H, chordsip_event_cb, c_void_p]),
    "chordsip_config_set_log_callback": (_R, [_H, c_uint32, chordsip_log_cb, c_void_p]),
    "chordsip_config_set_thread_hooks": (
        _R,
        [_H, chordsip_thread_cb, chordsip_thread_cb, c_void_p],
    ),
    # lists
    "chordsip_peers_len": (c_size_t, [_H]),
    "chordsip_peers_get": (_R, [_H, c_size_t, POINTER(chordsip_peer)]),
    "chordsip_peers_free": (None, [_H]),
    "chordsip_values_len": (c_size_t, [_H]),
    "chordsip_values_get": (_R, [_H, c_size_t, POINTER(chordsip_value)]),
    "chordsip_values_free": (None, [_H]),
    # node
    "chordsip_node_new": (_R, [_H, _HH, _BUF, c_size_t]),
    "chordsip_node_start": (_R, [_H]),
    "chordsip_error_detail": (_R, [_BUF, c_size_t, POINTER(c_size_t)]),
    "chordsip_node_join": (_R, [_H, c_char_p]),
    "chordsip_node_join_async": (_R, [_H, c_char_p, chordsip_done_cb, c_void_p]),
    "chordsip_node_config_get": (_R, [_H, c_char_p, _BUF, c_size_t, POINTER(c_size_t)]),
    "chordsip_node_ring": (_R, [_H, _HH]),
    "chordsip_ring_free": (None, [POINTER(chordsip_ring)]),
    "chordsip_node_leave": (_R, [_H, c_uint32]),
    "chordsip_node_free": (None, [_H]),
    "chordsip_node_addr": (_R, [_H, _BUF, c_size_t]),
    "chordsip_node_id": (_R, [_H, _BUF, c_size_t]),
    "chordsip_node_writer_trusted": (_R, [_H, c_char_p, POINTER(c_uint32)]),
    "chordsip_node_put": (
        _R,
        [_H, c_char_p, c_char_p, _BYTES, c_size_t, c_uint32, POINTER(c_uint32)],
    ),
    "chordsip_node_remove": (_R, [_H, c_char_p, c_char_p, POINTER(c_uint32)]),
    "chordsip_node_get": (_R, [_H, c_char_p, _HH]),
    "chordsip_node_lookup": (_R, [_H, c_char_p, c_uint32, POINTER(chordsip_lookup_info)]),
    "chordsip_node_lookup_async": (_R, [_H, c_char_p, c_uint32, chordsip_lookup_cb, c_void_p]),
    "chordsip_node_put_async": (
        _R,
        [_H, c_char_p, c_char_p, _BYTES, c_size_t, c_uint32, chordsip_store_cb, c_void_p],
    ),
    "chordsip_node_remove_async": (_R, [_H, c_char_p, c_char_p, chordsip_store_cb, c_void_p]),
    "chordsip_node_get_async": (_R, [_H, c_char_p, chordsip_get_cb, c_void_p]),
    "chordsip_node_ping": (_R, [_H, c_char_p, POINTER(c_uint64)]),
    "chordsip_node_stats": (_R, [_H, POINTER(chordsip_stats)]),
    "chordsip_node_info": (_R, [_H, c_uint32, _BUF, c_size_t, POINTER(c_size_t)]),
    "chordsip_node_metrics": (_R, [_H, _BUF, c_size_t, POINTER(c_size_t)]),
    "chordsip_node_neighbours": (_R, [_H, c_uint32, _HH]),
    "chordsip_node_event_fd": (_R, [_H, POINTER(c_int)]),
    "chordsip_node_process": (_R, [_H, POINTER(c_size_t)]),
    # registrar
    "chordsip_bindings_len": (c_size_t, [_H]),
    "chordsip_bindings_get": (_R, [_H, c_size_t, POINTER(chordsip_binding)]),
    "chordsip_bindings_path": (c_char_p, [_H, c_size_t, c_size_t]),
    "chordsip_bindings_owner": (c_char_p, [_H, c_size_t]),
    "chordsip_bindings_next_hop": (_R, [_H, c_size_t, POINTER(c_uint32), POINTER(c_char_p)]),
    "chordsip_bindings_contact": (_R, [_H, c_size_t, _BUF, c_size_t, POINTER(c_size_t)]),
    "chordsip_bindings_free": (None, [_H]),
    "chordsip_node_register": (
        _R,
        [_H, POINTER(chordsip_register), _HH, POINTER(chordsip_register_outcome)],
    ),
    "chordsip_node_lookup_aor": (_R, [_H, c_char_p, _HH]),
    "chordsip_node_lookup_aor_all": (_R, [_H, c_char_p, _HH]),
    "chordsip_node_credential_ha1": (_R, [_H, c_char_p, c_char_p, c_uint32, _BUF, c_size_t]),
    "chordsip_node_authenticate": (
        _R,
        [_H, c_char_p, c_char_p, c_char_p, POINTER(c_uint32), _BUF, c_size_t],
    ),
    "chordsip_auth_status": (c_uint16, [c_uint32, POINTER(c_char_p)]),
    "chordsip_digest_ha1": (_R, [c_uint32, c_char_p, c_char_p, c_char_p, _BUF, c_size_t]),
    "chordsip_node_lookup_aor_async": (_R, [_H, c_char_p, chordsip_bindings_cb, c_void_p]),
    "chordsip_node_lookup_aor_all_async": (_R, [_H, c_char_p, chordsip_bindings_cb, c_void_p]),
    "chordsip_node_publish": (_R, [_H, POINTER(chordsip_publication), POINTER(c_uint32)]),
    "chordsip_node_publish_async": (
        _R,
        [_H, POINTER(chordsip_publication), chordsip_publish_cb, c_void_p],
    ),
    "chordsip_node_refresh": (_R, [_H, c_char_p, POINTER(c_uint32)]),
    "chordsip_node_refresh_async": (_R, [_H, c_char_p, chordsip_publish_cb, c_void_p]),
    "chordsip_node_withdraw": (_R, [_H, c_char_p]),
    "chordsip_node_withdraw_async": (_R, [_H, c_char_p, chordsip_publish_cb, c_void_p]),
    "chordsip_node_register_async": (
        _R,
        [_H, POINTER(chordsip_register), chordsip_register_cb, c_void_p],
    ),
    "chordsip_node_authenticate_async": (
        _R,
        [_H, c_char_p, c_char_p, c_char_p, chordsip_auth_cb, c_void_p],
    ),
    # SIP answers
    "chordsip_result_sip_status": (c_uint32, [c_int]),
    "chordsip_result_sip_reason": (c_char_p, [c_int]),
    "chordsip_result_sip_headers": (c_char_p, [c_int]),
    "chordsip_min_expires": (c_uint32, []),
    "chordsip_sip_flow_token": (_R, [_BYTES, c_size_t, c_char_p, _BUF, c_size_t]),
    "chordsip_sip_flow_address": (_R, [_BYTES, c_size_t, c_char_p, _BUF, c_size_t]),
}

# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------

_lock = threading.Lock()
_lib: Optional[ctypes.CDLL] = None
_path: Optional[str] = None


def _checkout_library() -> Path:
    # bindings/python/chordsip/_lib.py -> repository root
    return Path(__file__).resolve().parents[3] / "target" / "release" / "libchordsip.so"


def candidates() -> List[str]:
    """Where :func:`get` looks, in order (for messages and tests)."""
    out: List[str] = []
    env = os.environ.get(ENV_VAR)
    if env:
        out.append(env)
    out.append("find_library('chordsip')")
    out.append(SONAME)
    out.append(str(_checkout_library()))
    return out


def _configure(lib: ctypes.CDLL) -> ctypes.CDLL:
    missing = []
    for name, (restype, argtypes) in PROTOTYPES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            missing.append(name)
            continue
        fn.restype = restype
        fn.argtypes = argtypes
    if missing:
        raise LibraryNotFound(
            "%s lacks functions this binding needs (an older library?): %s"
            % (getattr(lib, "_name", "libchordsip"), ", ".join(missing))
        )
    return lib


def _load() -> Tuple[ctypes.CDLL, str]:
    errors: List[str] = []
    env = os.environ.get(ENV_VAR)
    if env:
        try:
            return ctypes.CDLL(env), env
        except OSError as e:
            raise LibraryNotFound("%s=%r could not be loaded: %s" % (ENV_VAR, env, e)) from e
    found = ctypes.util.find_library("chordsip")
    for name in ([found] if found else []) + [SONAME]:
        try:
            return ctypes.CDLL(name), name
        except OSError as e:
            errors.append("%s: %s" % (name, e))
    local = _checkout_library()
    if local.is_file():
        try:
            return ctypes.CDLL(str(local)), str(local)
        except OSError as e:
            errors.append("%s: %s" % (local, e))
    else:
        errors.append("%s: no such file" % local)
    raise LibraryNotFound(
        "libchordsip.so not found. Set %s to its full path, install it "
        "(`make install`), or build it in the checkout (`cargo build --release "
        "--lib`). Tried: %s" % (ENV_VAR, "; ".join(errors))
    )


def get() -> ctypes.CDLL:
    """The loaded and configured library (loaded on the first call)."""
    global _lib, _path
    lib = _lib
    if lib is not None:
        return lib
    with _lock:
        if _lib is None:
            lib, path = _load()
            _lib = _configure(lib)
            _path = path
        return _lib


def loaded() -> Optional[ctypes.CDLL]:
    """The library if it is loaded already, else None (never loads it)."""
    return _lib


def path() -> Optional[str]:
    """What the library was loaded from (None before the first use)."""
    return _path


_FALLBACK_TEXT = "chordsip error"


def result_str(code: int) -> str:
    """``chordsip_result_str(code)``; a generic text if the library is absent."""
    try:
        lib = get()
    except ImportError:
        return _FALLBACK_TEXT
    raw = lib.chordsip_result_str(int(code))
    return raw.decode("utf-8", "replace") if raw else _FALLBACK_TEXT


def min_expires() -> int:
    """``chordsip_min_expires()``: the registrar's minimum expires in seconds."""
    return int(get().chordsip_min_expires())
