//! The C ABI: the only module with `unsafe`. Every export is wrapped in
//! [`guard`], which turns a panic into `CHORDSIP_ERR_PANIC` instead of
//! unwinding into C; every pointer is checked; strings are validated UTF-8;
//! out-parameters are written only on success; `_free(NULL)` does nothing.
//!
//! `include/chordsip.h` is generated from this module by cbindgen
//! (`scripts/gen-header.sh`); the doc comments here are the header's.

#![allow(non_camel_case_types)]

pub mod abilities;
pub mod auth;
pub mod client;
pub mod config;
pub mod diag;
pub mod events;
pub mod lists;
pub mod node;
pub mod registrar;
pub mod sip;
pub mod ua;

use crate::error::Error;
use std::ffi::{c_char, c_int, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Result of every fallible call. The numbers are stable across releases;
/// new codes are only ever added.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum chordsip_result {
    CHORDSIP_OK = 0,
    /// The operation did not finish before its deadline.
    CHORDSIP_ERR_TIMEOUT = 1,
    /// No live node could be reached to route the request.
    CHORDSIP_ERR_NO_ROUTE = 2,
    /// The node has not joined an overlay (or has left it).
    CHORDSIP_ERR_NOT_JOINED = 3,
    /// None of the bootstrap peers answered.
    CHORDSIP_ERR_JOIN_FAILED = 4,
    /// Another live node already uses this node id.
    CHORDSIP_ERR_ID_COLLISION = 5,
    /// A key, writer, value or message exceeds a limit.
    CHORDSIP_ERR_TOO_LARGE = 6,
    /// A per-key or per-node storage limit is reached.
    CHORDSIP_ERR_FULL = 7,
    /// A newer version of the entry is already stored.
    CHORDSIP_ERR_STALE = 8,
    /// The node is shutting down or has stopped.
    CHORDSIP_ERR_SHUTDOWN = 9,
    /// An argument is invalid (the details buffer, where a call has one, says which).
    CHORDSIP_ERR_INVALID_ARGUMENT = 10,
    /// A required pointer argument is NULL.
    CHORDSIP_ERR_NULL_POINTER = 11,
    /// A string argument is not valid UTF-8.
    CHORDSIP_ERR_BAD_UTF8 = 12,
    /// A remote peer refused the request.
    CHORDSIP_ERR_REFUSED = 13,
    /// A socket or system call failed.
    CHORDSIP_ERR_IO = 14,
    /// The object belongs to the parent process: it was used after fork().
    CHORDSIP_ERR_FORKED = 15,
    /// The node was stopped or freed before the operation finished.
    CHORDSIP_ERR_CANCELLED = 16,
    /// A blocking call was made from a library callback, where it would deadlock.
    CHORDSIP_ERR_IN_CALLBACK = 17,
    /// The caller's buffer is too small; the needed size is reported where the call allows.
    CHORDSIP_ERR_BUFFER_TOO_SMALL = 18,
    /// The call does not fit the object's state (e.g. starting or joining a
    /// node twice, asking for the event fd of a node that delivers on library threads).
    CHORDSIP_ERR_BAD_STATE = 19,
    /// An index is past the end of a list.
    CHORDSIP_ERR_OUT_OF_RANGE = 20,
    /// A bug in chordsip: a Rust panic was caught at the boundary.
    CHORDSIP_ERR_PANIC = 21,
    /// A REGISTER's CSeq is not newer than the stored binding's of the same
    /// Call-ID (SIP 500 per RFC 3261 §10.3).
    CHORDSIP_ERR_OUT_OF_ORDER = 22,
    /// A REGISTER's expires is below the registrar's minimum (SIP 423).
    CHORDSIP_ERR_INTERVAL_TOO_BRIEF = 23,
    /// The responsible node's clock differs from ours by more than the
    /// replay window (`replay_window_ms`): the write arrived past its signed
    /// expiry there, or its version lies in that node's future. Fix the clocks (NTP).
    CHORDSIP_ERR_CLOCK_SKEW = 24,
    /// The node refused a client request: no client credential, a wrong
    /// one, or a namespace the credential does not allow.
    CHORDSIP_ERR_UNAUTHORIZED = 25,
    /// There is no record of what was asked (e.g. no SIP credential for
    /// this user and realm).
    CHORDSIP_ERR_NOT_FOUND = 26,
    /// The overlay joined routes in the other mode (`routing=one-hop`
    /// against `multi-hop`): every member must be configured alike.
    CHORDSIP_ERR_MODE_MISMATCH = 27,
}

use chordsip_result::*;

impl From<&Error> for chordsip_result {
    fn from(e: &Error) -> Self {
        match e {
            Error::Timeout => CHORDSIP_ERR_TIMEOUT,
            Error::NoRoute => CHORDSIP_ERR_NO_ROUTE,
            Error::NotJoined => CHORDSIP_ERR_NOT_JOINED,
            Error::JoinFailed(_) => CHORDSIP_ERR_JOIN_FAILED,
            Error::IdCollision => CHORDSIP_ERR_ID_COLLISION,
            Error::TooLarge => CHORDSIP_ERR_TOO_LARGE,
            Error::Full => CHORDSIP_ERR_FULL,
            Error::Stale => CHORDSIP_ERR_STALE,
            Error::Shutdown => CHORDSIP_ERR_SHUTDOWN,
            Error::InvalidArgument(_) => CHORDSIP_ERR_INVALID_ARGUMENT,
            Error::Refused(_) => CHORDSIP_ERR_REFUSED,
            Error::Io(_) => CHORDSIP_ERR_IO,
            Error::Forked => CHORDSIP_ERR_FORKED,
            Error::InCallback => CHORDSIP_ERR_IN_CALLBACK,
            Error::Cancelled => CHORDSIP_ERR_CANCELLED,
            Error::BadState(_) => CHORDSIP_ERR_BAD_STATE,
            Error::ClockSkew => CHORDSIP_ERR_CLOCK_SKEW,
            Error::Unauthorized(_) => CHORDSIP_ERR_UNAUTHORIZED,
            Error::ModeMismatch(_) => CHORDSIP_ERR_MODE_MISMATCH,
        }
    }
}

impl From<Error> for chordsip_result {
    fn from(e: Error) -> Self {
        (&e).into()
    }
}

/// The library version, e.g. "0.1.0" (static storage; never free it).
#[no_mangle]
pub extern "C" fn chordsip_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// A short English description of a result code (static storage; never
/// free it). Unknown codes give "unknown result code".
#[no_mangle]
pub extern "C" fn chordsip_result_str(result: c_int) -> *const c_char {
    let s: &'static str = match result {
        0 => "ok\0",
        1 => "timed out\0",
        2 => "no live node reachable for this key\0",
        3 => "node has not joined an overlay\0",
        4 => "no bootstrap peer answered\0",
        5 => "node id already in use by another live node\0",
        6 => "key, writer, value or message too large\0",
        7 => "storage limit reached\0",
        8 => "a newer version is already stored\0",
        9 => "node is shutting down\0",
        10 => "invalid argument\0",
        11 => "NULL pointer argument\0",
        12 => "string is not valid UTF-8\0",
        13 => "refused by peer\0",
        14 => "I/O error\0",
        15 => "object belongs to the parent process (used after fork)\0",
        16 => "cancelled: the node stopped before the operation finished\0",
        17 => "blocking call from a library callback would deadlock\0",
        18 => "buffer too small\0",
        19 => "call does not fit the object's state\0",
        20 => "index out of range\0",
        21 => "internal error (panic caught)\0",
        22 => "CSeq not newer than the stored binding's\0",
        23 => "expires below the registrar's minimum\0",
        24 => "clocks differ by more than the replay window\0",
        25 => "not authorized by the node\0",
        26 => "not found\0",
        27 => "the overlay routes in another mode (one-hop against multi-hop)\0",
        _ => "unknown result code\0",
    };
    s.as_ptr().cast()
}

/// Writes the 40-hex-digit ring id of `key` (SHA-1 of its UTF-8 bytes) and a
/// NUL into `buf`, which must hold at least 41 bytes.
///
/// # Safety
/// `key` is NULL or a NUL-terminated string; `buf` is NULL or writable for `buf_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn chordsip_key_id(
    key: *const c_char,
    buf: *mut c_char,
    buf_len: usize,
) -> chordsip_result {
    guard(|| {
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let key = unsafe { key_arg(key) }?;
        // SAFETY: the caller passes NULL or a buffer of buf_len bytes.
        unsafe { write_str(&crate::id::Id::from_name(key).to_hex(), buf, buf_len, None) }
    })
}

thread_local! {
    /// Why the last call of this thread failed (`chordsip_error_detail`):
    /// cleared when an export starts, set where the reason is known.
    static DETAIL: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    /// How many exports this thread is inside: a reason is recorded only
    /// there, never by work a library thread does for a completion (which
    /// no host call would clear).
    static IN_CALL: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Records why the current call fails (the first reason given wins: it is
/// the most specific).
pub(crate) fn set_detail(why: impl Into<String>) {
    if IN_CALL.try_with(|c| c.get()).unwrap_or(0) == 0 {
        return;
    }
    let _ = DETAIL.try_with(|d| {
        let mut d = d.borrow_mut();
        if d.is_empty() {
            *d = why.into();
        }
    });
}

/// Runs an export's body; a panic becomes `CHORDSIP_ERR_PANIC`.
pub(crate) fn guard(f: impl FnOnce() -> Result<(), chordsip_result>) -> chordsip_result {
    let outer = IN_CALL.try_with(|c| c.replace(c.get() + 1)).unwrap_or(1);
    if outer == 0 {
        let _ = DETAIL.try_with(|d| d.borrow_mut().clear());
    }
    let r = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => CHORDSIP_OK,
        Ok(Err(r)) => r,
        Err(_) => {
            set_detail("a bug in chordsip was caught at the C boundary");
            CHORDSIP_ERR_PANIC
        }
    };
    let _ = IN_CALL.try_with(|c| c.set(outer));
    r
}

/// Why the last failing chordsip call of this thread failed, in words:
/// which argument and what is wrong with it ("contact: a bare SIP URI is
/// expected, not a Contact header value"), what to call first, or the
/// overlay's reason. Empty when that call gave no more than its code, or
/// when the last call returning a `chordsip_result` succeeded (each of them
/// clears it; this one does not). Results delivered to callbacks carry
/// their code only.
/// Sized like `chordsip_node_info`: `CHORDSIP_ERR_BUFFER_TOO_SMALL` when it
/// does not fit, `needed` (may be NULL) gets the size, NUL included. Read it
/// right after the failing call, on the same thread (like `errno`).
///
/// # Safety
/// `buf` NULL or writable for `len` bytes; `needed` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chordsip_error_detail(
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> chordsip_result {
    let text = DETAIL.try_with(|d| d.borrow().clone()).unwrap_or_default();
    match catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: buf/needed NULL or writable by the caller's contract.
        unsafe { write_str(&text, buf, len, Some(needed)) }
    })) {
        Ok(Ok(())) => CHORDSIP_OK,
        Ok(Err(r)) => r,
        Err(_) => CHORDSIP_ERR_PANIC,
    }
}

/// Runs an export's body that returns nothing (the `_free` functions).
pub(crate) fn guard_void(f: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(f));
}

pub(crate) type FfiResult<T> = Result<T, chordsip_result>;

/// Converts a library error to its code, keeping its words for
/// `chordsip_error_detail`.
pub(crate) fn code<T>(r: crate::Result<T>) -> FfiResult<T> {
    r.map_err(|e| {
        set_detail(e.to_string());
        chordsip_result::from(e)
    })
}

/// Longest key string accepted (a SIP AOR is far shorter).
pub const CHORDSIP_MAX_KEY_LEN: usize = 1024;

/// Longest writer string accepted (the node's `max_writer_bytes` may be lower).
pub const CHORDSIP_MAX_WRITER_LEN: usize = 223;
const _: () = assert!(CHORDSIP_MAX_WRITER_LEN == crate::wire::MAX_LABEL_LEN);

/// Bytes of a writer's public key (`chordsip_value.owner`).
pub const CHORDSIP_OWNER_LEN: usize = 32;
const _: () = assert!(CHORDSIP_OWNER_LEN == crate::owner::OWNER_LEN);

/// Longest URI the registrar accepts (an AOR, a contact or a Request-URI
/// to look up; a SIP URI is rarely over 256 bytes).
pub const CHORDSIP_MAX_URI_LEN: usize = 1024;
const _: () = assert!(CHORDSIP_MAX_URI_LEN == crate::sip::uri::MAX_URI_LEN);

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char) -> FfiResult<&'a str> {
    if p.is_null() {
        return Err(CHORDSIP_ERR_NULL_POINTER);
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().map_err(|_| CHORDSIP_ERR_BAD_UTF8)
}

/// An optional string argument: NULL gives None.
///
/// # Safety
/// As [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(p: *const c_char) -> FfiResult<Option<&'a str>> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded contract.
        unsafe { str_arg(p) }.map(Some)
    }
}

/// A key: non-empty UTF-8, at most [`CHORDSIP_MAX_KEY_LEN`] bytes.
///
/// # Safety
/// As [`str_arg`].
pub(crate) unsafe fn key_arg<'a>(p: *const c_char) -> FfiResult<&'a str> {
    // SAFETY: forwarded contract.
    let k = unsafe { str_arg(p) }?;
    if k.is_empty() {
        return Err(CHORDSIP_ERR_INVALID_ARGUMENT);
    }
    if k.len() > CHORDSIP_MAX_KEY_LEN {
        return Err(CHORDSIP_ERR_TOO_LARGE);
    }
    Ok(k)
}

/// A byte-buffer argument; `len` 0 accepts a NULL pointer.
///
/// # Safety
/// `p` is NULL or readable for `len` bytes that outlive `'a`.
pub(crate) unsafe fn bytes_arg<'a>(p: *const u8, len: usize) -> FfiResult<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(CHORDSIP_ERR_NULL_POINTER);
    }
    if len > isize::MAX as usize {
        return Err(CHORDSIP_ERR_TOO_LARGE);
    }
    // SAFETY: non-NULL, readable for len bytes by the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Writes `s` and a NUL into a caller buffer, or reports the size needed.
///
/// # Safety
/// `buf` is NULL or writable for `len` bytes; `needed` is NULL or writable.
pub(crate) unsafe fn write_str(
    s: &str,
    buf: *mut c_char,
    len: usize,
    needed: Option<*mut usize>,
) -> FfiResult<()> {
    if let Some(n) = needed.filter(|n| !n.is_null()) {
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { *n = s.len() + 1 };
    }
    if buf.is_null() {
        return Err(CHORDSIP_ERR_NULL_POINTER);
    }
    if len < s.len() + 1 {
        return Err(CHORDSIP_ERR_BUFFER_TOO_SMALL);
    }
    // SAFETY: buf holds at least s.len()+1 bytes (checked above) and cannot
    // overlap a Rust-owned &str.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), buf.cast::<u8>(), s.len());
        *buf.add(s.len()) = 0;
    }
    Ok(())
}

/// Writes an out-parameter, which must not be NULL.
///
/// # Safety
/// `out` is NULL or valid for writing a `T`.
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T) -> FfiResult<()> {
    if out.is_null() {
        return Err(CHORDSIP_ERR_NULL_POINTER);
    }
    // SAFETY: non-NULL and writable by the caller's contract.
    unsafe { out.write(value) };
    Ok(())
}

/// Writes an optional out-parameter (NULL means the caller does not want it).
///
/// # Safety
/// `out` is NULL or valid for writing a `T`.
pub(crate) unsafe fn write_opt<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: non-NULL and writable by the caller's contract.
        unsafe { out.write(value) };
    }
}

/// Milliseconds from C, where 0 means "the configured default".
pub(crate) fn timeout_arg(ms: u32, default: std::time::Duration) -> std::time::Duration {
    if ms == 0 {
        default
    } else {
        std::time::Duration::from_millis(ms as u64)
    }
}

/// A `void *user_data` that the host promises may be used from library threads.
#[derive(Clone, Copy)]
pub(crate) struct UserData(pub *mut std::ffi::c_void);

impl UserData {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    pub fn get(&self) -> *mut std::ffi::c_void {
        self.0
    }
}

// SAFETY: the header documents that user_data is handed to callbacks on
// library threads (or the host's thread in fd mode); the host chooses what it
// points to, and chordsip never dereferences it.
unsafe impl Send for UserData {}
// SAFETY: as above; chordsip only copies the pointer value.
unsafe impl Sync for UserData {}
