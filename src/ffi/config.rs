//! `chordsip_config`: a node's settings, copied into the node at
//! `chordsip_node_new`, so a config may be freed or reused right after.

use super::chordsip_result::*;
use super::events::{chordsip_event_cb, chordsip_log_cb};
use super::{bytes_arg, guard, guard_void, str_arg, write_out, write_str, UserData};
use super::{chordsip_result, FfiResult};
use crate::config::{Config, LogLevel};
use std::ffi::{c_char, c_void};

/// How a node delivers completions and events (`chordsip_config_set_delivery`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum chordsip_delivery {
    /// Callbacks run on library threads as soon as results arrive (default).
    CHORDSIP_DELIVER_THREAD = 0,
    /// Callbacks are queued; the node's event fd (a socket) becomes readable
    /// and `chordsip_node_process()` runs them on the caller's thread.
    CHORDSIP_DELIVER_FD = 1,
}

/// Called on each library thread as it starts and just before it exits
/// (e.g. to call PJSIP's `pj_thread_register`).
pub type chordsip_thread_cb = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

#[derive(Clone, Copy)]
pub(crate) struct ThreadHooksC {
    pub start: chordsip_thread_cb,
    pub stop: chordsip_thread_cb,
    pub user_data: UserData,
}

impl ThreadHooksC {
    /// Identity used to tell whether running threads already use these hooks.
    pub fn identity(&self) -> (usize, usize, usize) {
        (
            self.start.map_or(0, |f| f as usize),
            self.stop.map_or(0, |f| f as usize),
            self.user_data.0 as usize,
        )
    }
}

/// Settings of a node. Create with `chordsip_config_new`, free with
/// `chordsip_config_free`. Not thread-safe: configure from one thread.
pub struct chordsip_config {
    pub(crate) cfg: Config,
    pub(crate) delivery: chordsip_delivery,
    pub(crate) event_cb: Option<(chordsip_event_cb, UserData)>,
    pub(crate) log_cb: Option<(chordsip_log_cb, UserData)>,
    pub(crate) hooks: Option<ThreadHooksC>,
}

/// # Safety
/// `p` is NULL or a pointer from `chordsip_config_new` not yet freed.
pub(crate) unsafe fn config_mut<'a>(p: *mut chordsip_config) -> FfiResult<&'a mut chordsip_config> {
    // SAFETY: NULL or a live config by the caller's contract.
    unsafe { p.as_mut() }.ok_or(CHORDSIP_ERR_NULL_POINTER)
}

/// Creates a config with the defaults: listen on 127.0.0.1 with a free port,
/// overlay "chordsip", no key, 8 successors, 3 copies, 5 s operation timeout,
/// callbacks on library threads, no logging. Free it with `chordsip_config_free`.
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chordsip_config_new(out: *mut *mut chordsip_config) -> chordsip_result {
    guard(|| {
        if out.is_null() {
            return Err(CHORDSIP_ERR_NULL_POINTER);
        }
        let cfg = Box::new(chordsip_config {
            cfg: Config::default(),
            delivery: chordsip_delivery::CHORDSIP_DELIVER_THREAD,
            event_cb: None,
            log_cb: None,
            hooks: None,
        });
        // SAFETY: out is non-NULL and writable by the caller's contract.
        unsafe { write_out(out, Box::into_raw(cfg)) }
    })
}

/// Frees a config. NULL is a no-op. Nodes created from it keep their own copy.
///
/// # Safety
/// `cfg` is NULL or a pointer from `chordsip_config_new` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn chordsip_config_free(cfg: *mut chordsip_config) {
    guard_void(|| {
        if !cfg.is_null() {
            // SAFETY: a pointer from Box::into_raw in chordsip_config_new, freed once.
            drop(unsafe { Box::from_raw(cfg) });
        }
    })
}

/// Sets one option by name from text. Options (durations in ms unless the name
/// says `_s`):
///
/// | name | meaning | default |
/// |---|---|---|
/// | `listen` | UDP address to bind, `127.0.0.1:5000` or `[::1]:5000` (port 0: any) | `127.0.0.1:0` |
/// | `advertise` | address peers use, when it differs from `listen` | bound address |
/// | `client_socket` | UNIX datagram socket path served for client handles | none |
/// | `overlay` | overlay name (datagrams of other overlays are dropped) | `chordsip` |
/// | `node_key`, `node_key_file` | secret of this node's identity (64 hex digits, or a file holding them: `chordsip keygen`); the node id is SHA-1("chordsip-node-id-1" ‖ its public key), and membership and data messages are signed with it | a new key at each start |
/// | `node_id`, `insecure_chosen_ids` | a chosen node id, and accepting peers' chosen ids: for the simulator and tests only (peers refuse a chosen id's signed messages) | derived from the node key; `false` |
/// | `writer_key`, `writer_key_file` | secret (64 hex digits, or a file holding them: `chordsip keygen`) this node signs its writes with; only its holder can change or remove them. Servers acting as one registrar share one | a new key at each start |
/// | `device_key_file` | a P2P user agent's writer key, one per device: read from the file, or made there on first use (64 hex digits, mode 0600, never over an existing file). A UA restarted with it replaces and removes (`Contact: *`) its own earlier bindings | none (a new key at each start) |
/// | `successors` | successor list length | 8 |
/// | `replicas` | copies of each value | 3 |
/// | `location_cache` | nodes remembered from recent answers, so that a lookup asks the key's likely owner first (a busy node of an overlay up to this size finds most keys in one round trip); 0: pure Chord routing | 512 |
/// | `stabilize_ms`, `check_predecessor_ms`, `fix_fingers_ms`, `sync_ms` | maintenance periods | 250, 250, 100, 1000 |
/// | `rpc_timeout_min_ms`, `rpc_timeout_initial_ms`, `rpc_timeout_max_ms` | retransmission timer | 40, 200, 1000 |
/// | `rpc_retries` | retransmissions before a peer counts as failed | 3 |
/// | `op_timeout_ms` | default deadline of lookups and storage calls | 5000 |
/// | `max_datagram` | largest datagram | 32768 |
/// | `max_value_bytes`, `max_writer_bytes`, `max_entries_per_key`, `max_keys` | storage limits | 4096, 128, 64, 1000000 |
/// | `max_store_bytes` | bytes this node stores at most (values, slots and 128 per entry); more is refused (`CHORDSIP_ERR_FULL`) | 268435456 |
/// | `max_entries_per_owner` | entries one writer key may hold under a key; the main writers (this node's key and `trusted_writers`) are exempt, and as many places stay free for them | 16 |
/// | `trusted_writers` | comma-separated public keys (64 hex digits; `chordsip keygen` prints one) counted as main writers, e.g. the registrar's; registrar lookups route only to bindings of this node's writer key and these | none |
/// | `open_overlay` | `true`: start off loopback without an overlay key (anyone who reaches the node may join, read and write; a warning is logged) | `false` |
/// | `client_key`, `client_key_file` | credential (at least 16 bytes; the text, or a file's bytes) of client handles over UDP; without it only the UNIX socket serves clients | none |
/// | `client_socket_group` | group (name or number) that may use the UNIX client socket (mode 0660; else 0600, this user only) | none |
/// | `max_client_lifetime_s` | longest lifetime a client's write gets (longer ones are cut) | 86400 |
/// | `max_lifetime_s`, `tombstone_lifetime_s` | longest value lifetime; removal marker lifetime | 604800, 600 |
/// | `log_level` | `off`, `error`, `warn`, `info`, `debug`, `trace` | `off` |
/// | `replay_window_ms` | with an overlay key: datagrams stamped further from the local clock are dropped as replays | 30000 |
/// | `max_requests_per_source` | requests per second one source address may send (as many again in a burst); 0: no limit | 20000 |
/// | `threads` | library threads of the process, 1 to 64, shared by all its nodes: taken when the first node starts them (later nodes use them as they are; `chordsip_node_config_get(node, "threads", ...)` reads the count running) | the environment's `CHORDSIP_THREADS`, else min(cores, 4) |
/// | `publish_refresh_ms` | how often bindings published with `chordsip_node_publish` are refreshed (never later than at half their granted lifetime); 0: at half their lifetime | 0 |
///
/// `chordsip_node_config_get` reads any of these back by name.
///
/// On `CHORDSIP_ERR_INVALID_ARGUMENT` a description is written to `err_buf`
/// (NUL-terminated, truncated to `err_len`) when `err_buf` is not NULL.
///
/// # Safety
/// `cfg` is NULL or live; `name`, `value` NULL or NUL-terminated;
/// `err_buf` NULL or writable for `err_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn chordsip_config_set(
    cfg: *mut chordsip_config,
    name: *const c_char,
    value: *const c_char,
    err_buf: *mut c_char,
    err_len: usize,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live config by the caller's contract.
        let cfg = unsafe { config_mut(cfg) }?;
        // SAFETY: NULL or NUL-terminated by the caller's contract.
        let (name, value) = unsafe { (str_arg(name)?, str_arg(value)?) };
        cfg.cfg.set(name, value).map_err(|e| {
            // SAFETY: err_buf is NULL or writable for err_len bytes.
            unsafe { write_truncated(&e.to_string(), err_buf, err_len) };
            CHORDSIP_ERR_INVALID_ARGUMENT
        })
    })
}

/// Checks the whole configuration as `chordsip_node_new` will. On
/// `CHORDSIP_ERR_INVALID_ARGUMENT` the reason goes to `err_buf` (may be NULL).
///
/// # Safety
/// `cfg` is NULL or live; `err_buf` NULL or writable for `err_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn chordsip_config_check(
    cfg: *const chordsip_config,
    err_buf: *mut c_char,
    err_len: usize,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live config by the caller's contract.
        let cfg = unsafe { cfg.as_ref() }.ok_or(CHORDSIP_ERR_NULL_POINTER)?;
        cfg.cfg.validate().map_err(|e| {
            // SAFETY: err_buf is NULL or writable for err_len bytes.
            unsafe { write_truncated(&e.to_string(), err_buf, err_len) };
            CHORDSIP_ERR_INVALID_ARGUMENT
        })
    })
}

/// Sets the overlay key that admits members: every datagram then carries an
/// HMAC-SHA256 tag under it. `len` 0 removes the key. The bytes are copied.
///
/// # Safety
/// `cfg` is NULL or live; `key` NULL or readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn chordsip_config_set_overlay_key(
    cfg: *mut chordsip_config,
    key: *const u8,
    len: usize,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live config by the caller's contract.
        let cfg = unsafe { config_mut(cfg) }?;
        // SAFETY: NULL or readable for len bytes by the caller's contract.
        let key = unsafe { bytes_arg(key, len) }?;
        if key.len() > 1024 {
            return Err(CHORDSIP_ERR_TOO_LARGE);
        }
        cfg.cfg.overlay_key = (!key.is_empty()).then(|| key.to_vec());
        Ok(())
    })
}

/// Chooses how completions and events reach the host: `mode` is a
/// `chordsip_delivery` value.
///
/// # Safety
/// `cfg` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn chordsip_config_set_delivery(
    cfg: *mut chordsip_config,
    mode: u32,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live config by the caller's contract.
        let cfg = unsafe { config_mut(cfg) }?;
        cfg.delivery = match mode {
            0 => chordsip_delivery::CHORDSIP_DELIVER_THREAD,
            1 => chordsip_delivery::CHORDSIP_DELIVER_FD,
            _ => return Err(CHORDSIP_ERR_INVALID_ARGUMENT),
        };
        Ok(())
    })
}

/// Sets the callback that receives membership changes and keys moving in or
/// out (see `chordsip_event`). NULL `cb` removes it. It runs where the
/// delivery mode says; it must not block and must not call a blocking
/// function of the same node (those return `CHORDSIP_ERR_IN_CALLBACK` on
/// library threads).
///
/// # Safety
/// `cfg` is NULL or live; `cb` is NULL or a valid function; `user_data` is
/// passed back untouched and must stay valid until the node is freed.
#[no_mangle]
pub unsafe extern "C" fn chordsip_config_set_event_callback(
    cfg: *mut chordsip_config,
    cb: chordsip_event_cb,
    user_data: *mut c_void,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live config by the caller's contract.
        let cfg = unsafe { config_mut(cfg) }?;
        cfg.event_cb = cb.is_some().then_some((cb, UserData(user_data)));
        Ok(())
    })
}

/// Sends the library's log lines at `level` (1 error .. 5 trace) and more
/// severe to `cb`; the library never prints by itself. NULL `cb` or level 0
/// turns logging off. Delivered like the other events.
///
/// # Safety
/// As `chordsip_config_set_event_callback`.
#[no_mangle]
pub unsafe extern "C" fn chordsip_config_set_log_callback(
    cfg: *mut chordsip_config,
    level: u32,
    cb: chordsip_log_cb,
    user_data: *mut c_void,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live config by the caller's contract.
        let cfg = unsafe { config_mut(cfg) }?;
        let level = LogLevel::from_u32(level).ok_or(CHORDSIP_ERR_INVALID_ARGUMENT)?;
        if cb.is_none() || level == LogLevel::Off {
            cfg.log_cb = None;
            cfg.cfg.log_level = LogLevel::Off;
        } else {
            cfg.log_cb = Some((cb, UserData(user_data)));
            cfg.cfg.log_level = level;
        }
        Ok(())
    })
}

/// Sets hooks run on every library thread as it starts (`start`) and before it
/// exits (`stop`). Library threads are shared by all nodes of the process, so
/// hooks take effect when the first node starts; starting a node whose hooks
/// differ from those of the running threads fails with `CHORDSIP_ERR_BAD_STATE`.
/// Either function may be NULL.
///
/// # Safety
/// `cfg` is NULL or live; the functions are NULL or valid; `user_data` stays
/// valid while library threads run (until the last node is freed).
#[no_mangle]
pub unsafe extern "C" fn chordsip_config_set_thread_hooks(
    cfg: *mut chordsip_config,
    start: chordsip_thread_cb,
    stop: chordsip_thread_cb,
    user_data: *mut c_void,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live config by the caller's contract.
        let cfg = unsafe { config_mut(cfg) }?;
        cfg.hooks = (start.is_some() || stop.is_some()).then_some(ThreadHooksC {
            start,
            stop,
            user_data: UserData(user_data),
        });
        Ok(())
    })
}

/// Writes as much of `s` as fits, always NUL-terminated; does nothing for a NULL or empty buffer.
///
/// # Safety
/// `buf` is NULL or writable for `len` bytes.
pub(crate) unsafe fn write_truncated(s: &str, buf: *mut c_char, len: usize) {
    if buf.is_null() || len == 0 {
        return;
    }
    let mut n = s.len().min(len - 1);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    // SAFETY: n < len, so the slice and the NUL fit the caller's buffer.
    let _ = unsafe { write_str(&s[..n], buf, len, None) };
}

/// Reads a node's setting back by the name `chordsip_config_set` takes, as
/// the same text: the value it runs with, defaults included (durations in
/// the unit the name says, an unset option empty). `threads` gives the
/// library threads running once the node started. Secrets (keys) read
/// `set` or `unset`, never their value. An unknown name gives
/// `CHORDSIP_ERR_INVALID_ARGUMENT`; a small `buf`,
/// `CHORDSIP_ERR_BUFFER_TOO_SMALL`; `needed` (may be NULL) gets the size,
/// NUL included. Works before `chordsip_node_start`.
///
/// # Safety
/// `node` NULL or live; `name` NULL or NUL-terminated; `buf` NULL or
/// writable for `len` bytes; `needed` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_config_get(
    node: *mut super::node::chordsip_node,
    name: *const c_char,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { super::node::node_ref(node) }?;
        // SAFETY: NULL or NUL-terminated by the caller's contract.
        let name = unsafe { str_arg(name) }?;
        let value: String = super::code(match n.started_node() {
            Some(node) => node.config_get(name),
            None => n.cfg.get(name),
        })?;
        // SAFETY: buf/needed NULL or writable by the caller's contract.
        unsafe { write_str(&value, buf, len, Some(needed)) }
    })
}
