//! Publishing for pure P2P user agents (crate `ua`): a UA that never sends
//! a REGISTER publishes its contact and the library keeps it alive.

use super::chordsip_result::*;
use super::events::Completion;
use super::node::{chordsip_node, node_ref};
use super::registrar::registrar_code;
use super::{chordsip_result, guard, opt_str_arg, str_arg, write_opt, FfiResult, UserData};
use crate::sip::registrar::RegistrarError;
use crate::ua::{Done, Publication, UserAgent};
use std::ffi::{c_char, c_void};
use std::sync::Arc;

/// A binding a user agent publishes for itself (`chordsip_node_publish`).
#[repr(C)]
pub struct chordsip_publication {
    /// The address-of-record, e.g. `sip:alice@example.com`.
    pub aor: *const c_char,
    /// Where the UA takes requests: a bare SIP URI (`sip:alice@192.0.2.1:5060`).
    pub contact: *const c_char,
    /// The lifetime asked for, in seconds (`CHORDSIP_MIN_EXPIRES` to 86400).
    pub expires: u32,
    /// The contact's q-value (`"0.5"`), or NULL for 1.
    pub q: *const c_char,
    /// The device's `+sip.instance` (RFC 5626, e.g. `"<urn:uuid:...>"`), or NULL.
    pub instance: *const c_char,
}

/// Completion of the asynchronous publishing calls: `expires` is the
/// lifetime the registrar granted, in seconds (0 for a withdrawal and on
/// error).
pub type chordsip_publish_cb =
    Option<unsafe extern "C" fn(result: chordsip_result, expires: u32, user_data: *mut c_void)>;

/// # Safety
/// `p` is NULL or points to a publication whose strings follow the header's contract.
unsafe fn publication_arg(p: *const chordsip_publication) -> FfiResult<Publication> {
    // SAFETY: NULL or a valid publication by the caller's contract.
    let p = unsafe { p.as_ref() }.ok_or(CHORDSIP_ERR_NULL_POINTER)?;
    Ok(Publication {
        // SAFETY: NULL or NUL-terminated strings by the caller's contract.
        aor: unsafe { str_arg(p.aor) }?.to_string(),
        // SAFETY: as above.
        contact: unsafe { str_arg(p.contact) }?.to_string(),
        expires: p.expires,
        // SAFETY: as above.
        q: unsafe { opt_str_arg(p.q) }?.map(String::from),
        // SAFETY: as above.
        instance: unsafe { opt_str_arg(p.instance) }?.map(String::from),
    })
}

/// A `Done` that hands the outcome to the host's `cb` through the node's
/// dispatcher (exactly once, `CHORDSIP_ERR_CANCELLED` if the node stops first),
/// and the call that starts it.
fn start_async(
    n: &chordsip_node,
    cb: chordsip_publish_cb,
    user_data: *mut c_void,
    submit: impl FnOnce(Done) -> Result<(), RegistrarError>,
) -> FfiResult<()> {
    let cb = cb.ok_or(CHORDSIP_ERR_NULL_POINTER)?;
    let ud = UserData(user_data);
    type Answer = Result<u32, chordsip_result>;
    let deliver = move |r: crate::Result<Answer>| {
        let ud = ud;
        let (code, expires) = match r.map_err(chordsip_result::from).and_then(|a| a) {
            Ok(e) => (CHORDSIP_OK, e),
            Err(code) => (code, 0),
        };
        // SAFETY: the host's callback with its own user_data.
        unsafe { cb(code, expires, ud.get()) }
    };
    let mut refused = CHORDSIP_OK;
    let started = Completion::new(Arc::clone(&n.dispatcher), deliver).start(|c| {
        let done: Done = Box::new(move |r| {
            c.complete(Ok(r.map_err(|e| super::registrar::registrar_result(&e))))
        });
        submit(done).map_err(|e| {
            refused = registrar_code(e);
            crate::Error::Cancelled
        })
    });
    started.map_err(|_| refused)
}

/// Publishes a binding for a user agent that never sends REGISTER, and keeps
/// it alive: the library acts as the UA's registration client (one Call-ID
/// per AOR, a CSeq that rises with each request, RFC 3261 §10.2), runs the
/// same registrar rules a REGISTER meets, and refreshes the binding on its
/// own timers at half its granted lifetime (or every `publish_refresh_ms`),
/// until `chordsip_node_withdraw` or a graceful `chordsip_node_leave`. A
/// failed refresh is retried after 1 s, doubling up to 30 s, and reported
/// as `CHORDSIP_EVENT_REFRESH_FAILED` (a success as
/// `CHORDSIP_EVENT_REFRESHED`) to a host that set an event callback.
///
/// One binding per AOR and node: publishing the AOR again with another
/// contact replaces the old contact in the same request (a new address
/// after a network change). Keep the node's writer key across restarts
/// (`device_key_file`) so that a restarted UA replaces its own binding.
///
/// Blocks until the overlay stored the binding (at most three operation
/// timeouts; `CHORDSIP_ERR_IN_CALLBACK` from a library callback);
/// `*expires` (may be NULL) receives the granted lifetime in seconds. A bad
/// argument gives `CHORDSIP_ERR_INVALID_ARGUMENT` with its reason in
/// `chordsip_error_detail` (a contact that is no bare SIP URI, a q outside
/// 0..1, `expires` 0: use `chordsip_node_withdraw`), an `expires` under
/// `CHORDSIP_MIN_EXPIRES` `CHORDSIP_ERR_INTERVAL_TOO_BRIEF`; overlay failures
/// their own codes. A failed publish leaves nothing behind (an AOR already
/// published keeps its binding and its refreshes).
///
/// # Safety
/// `node` NULL or live; `p` NULL or valid; `expires` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_publish(
    node: *mut chordsip_node,
    p: *const chordsip_publication,
    expires: *mut u32,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { node_ref(node) }?;
        // SAFETY: NULL or a valid publication by the caller's contract.
        let p = unsafe { publication_arg(p) }?;
        let granted = n.user_agent()?.publish(p).map_err(registrar_code)?;
        // SAFETY: NULL or writable by the caller's contract.
        unsafe { write_opt(expires, granted) };
        Ok(())
    })
}

/// Asynchronous `chordsip_node_publish`, for a host's event loop (PJSIP's
/// polling thread): the publication is copied before this returns; `cb`
/// runs exactly once when this returns `CHORDSIP_OK` (see
/// `chordsip_node_lookup_async`). A bad argument is refused here, with its
/// reason in `chordsip_error_detail`, and `cb` never runs.
///
/// # Safety
/// `node` NULL or live; `p` NULL or valid; `cb` valid; `user_data` valid until the callback ran.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_publish_async(
    node: *mut chordsip_node,
    p: *const chordsip_publication,
    cb: chordsip_publish_cb,
    user_data: *mut c_void,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { node_ref(node) }?;
        // SAFETY: NULL or a valid publication by the caller's contract.
        let p = unsafe { publication_arg(p) }?;
        let ua = n.user_agent()?;
        start_async(n, cb, user_data, |done| ua.publish_async(p, done))
    })
}

/// The blocking calls on one published AOR: `call` on the node's user
/// agent; the granted lifetime goes to `*expires` (may be NULL).
///
/// # Safety
/// `node` NULL or live; `aor` NULL or NUL-terminated; `expires` NULL or writable.
unsafe fn on_aor(
    node: *mut chordsip_node,
    aor: *const c_char,
    expires: *mut u32,
    call: impl FnOnce(&UserAgent, &str) -> Result<u32, RegistrarError>,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { node_ref(node) }?;
        // SAFETY: NULL or NUL-terminated by the caller's contract.
        let aor = unsafe { str_arg(aor) }?;
        let granted = call(&*n.user_agent()?, aor).map_err(registrar_code)?;
        // SAFETY: NULL or writable by the caller's contract.
        unsafe { write_opt(expires, granted) };
        Ok(())
    })
}

/// The asynchronous calls on one published AOR: `start` on the node's user
/// agent, its outcome to `cb` (see `start_async`).
///
/// # Safety
/// `node` NULL or live; `aor` NULL or NUL-terminated; `cb` valid; `user_data` valid until the callback ran.
unsafe fn on_aor_async(
    node: *mut chordsip_node,
    aor: *const c_char,
    cb: chordsip_publish_cb,
    user_data: *mut c_void,
    start: impl FnOnce(&UserAgent, &str, Done) -> Result<(), RegistrarError>,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { node_ref(node) }?;
        // SAFETY: NULL or NUL-terminated by the caller's contract.
        let aor = unsafe { str_arg(aor) }?;
        let ua = n.user_agent()?;
        start_async(n, cb, user_data, |done| start(&ua, aor, done))
    })
}

/// Refreshes the binding published for `aor` now (after the host learnt
/// its address changed, say) and restarts its refresh timer; `*expires`
/// (may be NULL) receives the granted lifetime. An AOR this node does not
/// publish gives `CHORDSIP_ERR_INVALID_ARGUMENT` ("call publish first").
/// Blocks as `chordsip_node_publish` does.
///
/// # Safety
/// `node` NULL or live; `aor` NULL or NUL-terminated; `expires` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_refresh(
    node: *mut chordsip_node,
    aor: *const c_char,
    expires: *mut u32,
) -> chordsip_result {
    // SAFETY: forwarded caller contract.
    unsafe { on_aor(node, aor, expires, |ua, aor| ua.refresh(aor)) }
}

/// Asynchronous `chordsip_node_refresh`; `cb` as for `chordsip_node_publish_async`.
///
/// # Safety
/// `node` NULL or live; `aor` NULL or NUL-terminated; `cb` valid; `user_data` valid until the callback ran.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_refresh_async(
    node: *mut chordsip_node,
    aor: *const c_char,
    cb: chordsip_publish_cb,
    user_data: *mut c_void,
) -> chordsip_result {
    // SAFETY: forwarded caller contract.
    unsafe {
        on_aor_async(node, aor, cb, user_data, |ua, aor, done| {
            ua.refresh_async(aor, done)
        })
    }
}

/// Removes the binding published for `aor` (`expires=0`) and stops its
/// refreshes. The refreshes stop even when the overlay fails the removal
/// (the result says so); the binding then lapses within its lifetime.
/// Blocks as `chordsip_node_publish` does. A graceful `chordsip_node_leave`
/// withdraws every published AOR.
///
/// # Safety
/// `node` NULL or live; `aor` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_withdraw(
    node: *mut chordsip_node,
    aor: *const c_char,
) -> chordsip_result {
    // SAFETY: forwarded caller contract; no expires to write.
    unsafe {
        on_aor(node, aor, std::ptr::null_mut(), |ua, aor| {
            ua.withdraw(aor).map(|()| 0)
        })
    }
}

/// Asynchronous `chordsip_node_withdraw`; `cb` as for `chordsip_node_publish_async`.
///
/// # Safety
/// `node` NULL or live; `aor` NULL or NUL-terminated; `cb` valid; `user_data` valid until the callback ran.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_withdraw_async(
    node: *mut chordsip_node,
    aor: *const c_char,
    cb: chordsip_publish_cb,
    user_data: *mut c_void,
) -> chordsip_result {
    // SAFETY: forwarded caller contract.
    unsafe {
        on_aor_async(node, aor, cb, user_data, |ua, aor, done| {
            ua.withdraw_async(aor, done)
        })
    }
}
