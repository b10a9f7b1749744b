//! `chordsip_client`: a thread-free handle to one peer, for forked SIP
//! workers and hosts behind NAT. Every call blocks with a hard timeout.

use super::chordsip_result::*;
use super::lists::{chordsip_lookup_info, chordsip_values};
use super::node::{lifetime_arg, write_args};
use super::{
    bytes_arg, chordsip_result, code, guard, guard_void, key_arg, opt_str_arg, str_arg, write_opt,
    write_out, write_str, FfiResult,
};
use crate::client::{Client, PeerAddr};
use crate::id::Id;
use parking_lot::Mutex;
use std::ffi::c_char;
use std::time::{Duration, Instant};

/// A handle to one peer of an overlay. It starts no threads and owns one
/// socket. Calls from several threads are serialised; each blocks at most
/// the handle's timeout. It belongs to the process that created it: in a
/// forked child every call returns `CHORDSIP_ERR_FORKED` (create handles after
/// the fork, e.g. in Kamailio's `child_init`).
pub struct chordsip_client {
    pub(crate) inner: Mutex<Client>,
    pid: u32,
}

/// # Safety
/// `p` is NULL or a live client.
pub(crate) unsafe fn client_ref<'a>(p: *const chordsip_client) -> FfiResult<&'a chordsip_client> {
    // SAFETY: NULL or a live client by the caller's contract.
    let c = unsafe { p.as_ref() }.ok_or(CHORDSIP_ERR_NULL_POINTER)?;
    if std::process::id() != c.pid {
        // Checked before the lock, which another thread may have held at fork time.
        return Err(CHORDSIP_ERR_FORKED);
    }
    Ok(c)
}

/// Creates a handle to the peer at `peer`: `"ip:port"` (UDP) or
/// `"unix:/path"` (the node's `client_socket`). `overlay` is the overlay name
/// (NULL: "chordsip"); `key`/`key_len` its key (NULL/0: none). Every call
/// gives up after `timeout_ms` (0: 5000). Sends nothing yet.
///
/// # Safety
/// Strings NULL or NUL-terminated; `key` NULL or readable for `key_len` bytes; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chordsip_client_new(
    peer: *const c_char,
    overlay: *const c_char,
    key: *const u8,
    key_len: usize,
    timeout_ms: u32,
    out: *mut *mut chordsip_client,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or NUL-terminated by the caller's contract.
        let peer: PeerAddr = unsafe { str_arg(peer) }?
            .parse()
            .map_err(|_| CHORDSIP_ERR_INVALID_ARGUMENT)?;
        // SAFETY: NULL or NUL-terminated by the caller's contract.
        let overlay = unsafe { opt_str_arg(overlay) }?.unwrap_or("chordsip");
        // SAFETY: NULL or readable for key_len bytes by the caller's contract.
        let key = unsafe { bytes_arg(key, key_len) }?;
        if out.is_null() {
            return Err(CHORDSIP_ERR_NULL_POINTER);
        }
        let mut client = code(Client::connect_to(
            &peer,
            overlay,
            (!key.is_empty()).then_some(key),
        ))?;
        client.set_timeout(Duration::from_millis(if timeout_ms == 0 {
            5000
        } else {
            timeout_ms as u64
        }));
        let c = Box::new(chordsip_client {
            inner: Mutex::new(client),
            pid: std::process::id(),
        });
        // SAFETY: out is non-NULL (checked) and writable.
        unsafe { write_out(out, Box::into_raw(c)) }
    })
}

/// Frees a handle and closes its socket. NULL is a no-op. In a forked child
/// it releases the child's copy only (the parent's socket stays open there).
///
/// # Safety
/// `client` is NULL or live, and no other thread uses it during or after the call.
#[no_mangle]
pub unsafe extern "C" fn chordsip_client_free(client: *mut chordsip_client) {
    guard_void(|| {
        if !client.is_null() {
            // SAFETY: created by Box::into_raw in chordsip_client_new, freed once.
            // Dropping takes no lock, so this is safe in a forked child too,
            // where it closes only the child's copy of the socket.
            drop(unsafe { Box::from_raw(client) });
        }
    })
}

/// Changes the hard timeout of every later call (0: 5000 ms).
///
/// # Safety
/// `client` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn chordsip_client_set_timeout(
    client: *mut chordsip_client,
    timeout_ms: u32,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live client by the caller's contract.
        let c = unsafe { client_ref(client) }?;
        let ms = if timeout_ms == 0 { 5000 } else { timeout_ms };
        c.inner.lock().set_timeout(Duration::from_millis(ms as u64));
        Ok(())
    })
}

/// `chordsip_node_put` through the peer.
///
/// # Safety
/// As `chordsip_node_put`, with `client` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn chordsip_client_put(
    client: *mut chordsip_client,
    key: *const c_char,
    writer: *const c_char,
    data: *const u8,
    data_len: usize,
    lifetime_s: u32,
    copies: *mut u32,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live client by the caller's contract.
        let c = unsafe { client_ref(client) }?;
        // SAFETY: forwarded caller contract.
        let (key, writer, data) = unsafe { write_args(key, writer, data, data_len) }?;
        let lifetime = lifetime_arg(lifetime_s)?;
        let r = code(c.inner.lock().put(key, writer.as_bytes(), data, lifetime))?;
        // SAFETY: NULL or writable by the caller's contract.
        unsafe { write_opt(copies, r.copies as u32) };
        Ok(())
    })
}

/// `chordsip_node_remove` through the peer.
///
/// # Safety
/// As `chordsip_node_remove`, with `client` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn chordsip_client_remove(
    client: *mut chordsip_client,
    key: *const c_char,
    writer: *const c_char,
    copies: *mut u32,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live client by the caller's contract.
        let c = unsafe { client_ref(client) }?;
        // SAFETY: forwarded caller contract.
        let (key, writer, _) = unsafe { write_args(key, writer, std::ptr::null(), 0) }?;
        let r = code(c.inner.lock().remove(key, writer.as_bytes()))?;
        // SAFETY: NULL or writable by the caller's contract.
        unsafe { write_opt(copies, r.copies as u32) };
        Ok(())
    })
}

/// `chordsip_node_get` through the peer; free the list with `chordsip_values_free`.
///
/// # Safety
/// As `chordsip_node_get`, with `client` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn chordsip_client_get(
    client: *mut chordsip_client,
    key: *const c_char,
    out: *mut *mut chordsip_values,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live client by the caller's contract.
        let c = unsafe { client_ref(client) }?;
        // SAFETY: NULL or NUL-terminated by the caller's contract.
        let key = Id::from_name(unsafe { key_arg(key) }?);
        if out.is_null() {
            return Err(CHORDSIP_ERR_NULL_POINTER);
        }
        let values = code(c.inner.lock().get(key))?;
        let list = Box::into_raw(Box::new(chordsip_values::new(values)));
        // SAFETY: out is non-NULL (checked) and writable.
        unsafe { write_out(out, list) }
    })
}

/// The bare Chord lookup run by the peer; `latency_us` is measured here.
///
/// # Safety
/// As `chordsip_node_lookup`, with `client` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn chordsip_client_lookup(
    client: *mut chordsip_client,
    key: *const c_char,
    out: *mut chordsip_lookup_info,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live client by the caller's contract.
        let c = unsafe { client_ref(client) }?;
        // SAFETY: NULL or NUL-terminated by the caller's contract.
        let key = Id::from_name(unsafe { key_arg(key) }?);
        if out.is_null() {
            return Err(CHORDSIP_ERR_NULL_POINTER);
        }
        let t0 = Instant::now();
        let (node, hops) = code(c.inner.lock().lookup(key))?;
        let info = chordsip_lookup_info {
            node: (&node).into(),
            hops,
            latency_us: t0.elapsed().as_micros() as u64,
        };
        // SAFETY: out is non-NULL (checked) and writable.
        unsafe { write_out(out, info) }
    })
}

/// The peer's report (`what` a `chordsip_info`: 0 ring neighbours, 1
/// statistics, 2 OpenMetrics text) as text, like `chordsip_node_info`.
///
/// # Safety
/// `client` NULL or live; `buf` NULL or writable for `len` bytes; `needed` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chordsip_client_info(
    client: *mut chordsip_client,
    what: u32,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live client by the caller's contract.
        let c = unsafe { client_ref(client) }?;
        let text = match what {
            0 => code(c.inner.lock().ring_text())?,
            1 => code(c.inner.lock().stats_text())?,
            2 => code(c.inner.lock().metrics_text())?,
            _ => return Err(CHORDSIP_ERR_INVALID_ARGUMENT),
        };
        // SAFETY: buf/needed NULL or writable by the caller's contract.
        unsafe { write_str(&text, buf, len, Some(needed)) }
    })
}
