//! The registrar through the C ABI: REGISTER processing and AOR lookup on a
//! node or a client handle, with bindings returned as an opaque list.

use super::chordsip_result::*;
use super::client::client_ref;
use super::events::Completion;
use super::node::{chordsip_node, node_ref};
use super::{
    chordsip_result, guard, guard_void, opt_str_arg, str_arg, write_opt, write_out, write_str,
    FfiResult, UserData,
};
use crate::sip::binding::{
    Binding, ContactSpec, NextHop, RegisterError, RegisterRequest, RegistrarLimits,
};
use crate::sip::registrar::{self, live_bindings, RegistrarError, Trust};
use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

/// Most Contact values one REGISTER may carry (`contacts_len`); more give
/// `CHORDSIP_ERR_TOO_LARGE`.
pub const CHORDSIP_MAX_CONTACTS: usize = 64;

/// Most Path values one REGISTER may carry (`path_len`); more give
/// `CHORDSIP_ERR_TOO_LARGE`.
pub const CHORDSIP_MAX_PATH: usize = 32;

/// One Contact of a REGISTER.
#[repr(C)]
pub struct chordsip_contact {
    /// The contact URI (`sip:alice@192.0.2.1:5060;transport=tcp`), required.
    pub uri: *const c_char,
    /// The contact's `expires` parameter in seconds, or -1 when absent.
    pub expires: i64,
    /// The `q` parameter as written (`"0.5"`), or NULL (q = 1).
    pub q: *const c_char,
    /// `+sip.instance` (RFC 5626), or NULL.
    pub instance: *const c_char,
    /// `reg-id` (RFC 5626), or -1 when absent (requires `instance`).
    pub reg_id: i64,
}

/// A REGISTER request as the registrar needs it.
#[repr(C)]
pub struct chordsip_register {
    /// The To URI: the address-of-record (canonicalised per RFC 3261 §10.3).
    pub aor: *const c_char,
    pub call_id: *const c_char,
    pub cseq: u32,
    /// Non-zero for `Contact: *` (remove every binding; needs `expires` 0 and no contacts).
    pub star: u32,
    /// The Expires header in seconds, or -1 when absent.
    pub expires: i64,
    pub contacts: *const chordsip_contact,
    pub contacts_len: usize,
    /// Path header values in order (may be NULL when `path_len` is 0).
    pub path: *const *const c_char,
    pub path_len: usize,
    /// Where the REGISTER came from, when it differs from the contact, or NULL.
    pub received: *const c_char,
}

/// What a REGISTER changed (mirrors registrar's `save()` outcomes).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct chordsip_register_outcome {
    pub inserted: u32,
    pub updated: u32,
    pub deleted: u32,
}

/// One binding, borrowed from its `chordsip_bindings` list.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct chordsip_binding {
    pub contact: *const c_char,
    /// q in thousandths (1000 is q=1).
    pub q: u32,
    /// Remaining lifetime in seconds.
    pub expires: u32,
    /// NULL when absent.
    pub instance: *const c_char,
    /// -1 when absent.
    pub reg_id: i64,
    /// NULL when absent.
    pub received: *const c_char,
    pub call_id: *const c_char,
    pub cseq: u32,
    pub path_len: usize,
}

/// Where a request for a binding is sent first (`chordsip_bindings_next_hop`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum chordsip_hop {
    /// To the contact itself: the Request-URI is the whole route.
    CHORDSIP_HOP_CONTACT = 0,
    /// To the address the REGISTER came from (an RFC 5626 flow, or a UA
    /// behind NAT): the destination URI (Kamailio's `$du`).
    CHORDSIP_HOP_RECEIVED = 1,
    /// To the first Path entry (RFC 3327): the destination URI, with the
    /// binding's Path values as Route headers.
    CHORDSIP_HOP_PATH = 2,
}

struct OwnedBinding {
    contact: CString,
    instance: Option<CString>,
    received: Option<CString>,
    call_id: CString,
    path: Vec<CString>,
    owner: Option<CString>,
    /// The next hop's kind and URI (None: the contact).
    hop: (chordsip_hop, Option<CString>),
    b: Binding,
    expires: u32,
}

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

/// The bindings of an AOR, highest q first. Free with `chordsip_bindings_free`.
pub struct chordsip_bindings {
    items: Vec<OwnedBinding>,
}

impl chordsip_bindings {
    fn new(list: Vec<(Binding, u32)>) -> chordsip_bindings {
        chordsip_bindings {
            items: list
                .into_iter()
                .map(|(b, expires)| OwnedBinding {
                    contact: cstring(&b.contact),
                    instance: b.instance.as_deref().map(cstring),
                    received: b.received.as_deref().map(cstring),
                    call_id: cstring(&b.call_id),
                    path: b.path.iter().map(|p| cstring(p)).collect(),
                    owner: b.owner.as_ref().map(|o| cstring(&crate::owner::hex(o))),
                    hop: match b.next_hop() {
                        NextHop::Contact => (chordsip_hop::CHORDSIP_HOP_CONTACT, None),
                        NextHop::Received(r) => {
                            (chordsip_hop::CHORDSIP_HOP_RECEIVED, Some(cstring(&r)))
                        }
                        NextHop::Path(p) => (chordsip_hop::CHORDSIP_HOP_PATH, Some(cstring(&p))),
                    },
                    b,
                    expires,
                })
                .collect(),
        }
    }
}

/// Number of bindings; 0 for NULL.
///
/// # Safety
/// `list` is NULL or a live list.
#[no_mangle]
pub unsafe extern "C" fn chordsip_bindings_len(list: *const chordsip_bindings) -> usize {
    // SAFETY: NULL or a live list by the caller's contract.
    std::panic::catch_unwind(|| unsafe { list.as_ref() }.map_or(0, |l| l.items.len())).unwrap_or(0)
}

/// Describes binding `index` in `out`; its strings borrow from the list.
///
/// # Safety
/// `list` NULL or live; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chordsip_bindings_get(
    list: *const chordsip_bindings,
    index: usize,
    out: *mut chordsip_binding,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live list by the caller's contract.
        let l = unsafe { list.as_ref() }.ok_or(CHORDSIP_ERR_NULL_POINTER)?;
        let o = l.items.get(index).ok_or(CHORDSIP_ERR_OUT_OF_RANGE)?;
        let view = chordsip_binding {
            contact: o.contact.as_ptr(),
            q: o.b.q as u32,
            expires: o.expires,
            instance: o.instance.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            reg_id: o.b.reg_id.map_or(-1, |r| r as i64),
            received: o.received.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            call_id: o.call_id.as_ptr(),
            cseq: o.b.cseq,
            path_len: o.path.len(),
        };
        // SAFETY: NULL or writable by the caller's contract.
        unsafe { write_out(out, view) }
    })
}

/// The writer key binding `index` is stored under, as 64 hex digits: who
/// wrote it (borrowed from the list). NULL when out of range, and for the
/// bindings of a REGISTER's answer (what the registrar itself wrote).
/// An accessor rather than a field of `chordsip_binding`, so that hosts
/// built against an older header keep working.
///
/// # Safety
/// `list` is NULL or a live list.
#[no_mangle]
pub unsafe extern "C" fn chordsip_bindings_owner(
    list: *const chordsip_bindings,
    index: usize,
) -> *const c_char {
    std::panic::catch_unwind(|| {
        // SAFETY: NULL or a live list by the caller's contract.
        unsafe { list.as_ref() }
            .and_then(|l| l.items.get(index))
            .and_then(|o| o.owner.as_ref())
            .map_or(std::ptr::null(), |c| c.as_ptr())
    })
    .unwrap_or(std::ptr::null())
}

/// Path entry `path_index` of binding `index`, or NULL when out of range
/// (borrowed from the list).
///
/// # Safety
/// `list` is NULL or a live list.
#[no_mangle]
pub unsafe extern "C" fn chordsip_bindings_path(
    list: *const chordsip_bindings,
    index: usize,
    path_index: usize,
) -> *const c_char {
    std::panic::catch_unwind(|| {
        // SAFETY: NULL or a live list by the caller's contract.
        unsafe { list.as_ref() }
            .and_then(|l| l.items.get(index))
            .and_then(|o| o.path.get(path_index))
            .map_or(std::ptr::null(), |c| c.as_ptr())
    })
    .unwrap_or(std::ptr::null())
}

/// Where a request for binding `index` goes first, decided once for every
/// host: to its first Path entry when it has one (RFC 3327); else to the
/// address its REGISTER came from (`received`) when the contact cannot be
/// reached directly: an RFC 5626 flow (`reg_id`), or a contact whose host is
/// a name or another IP than that source (a UA behind NAT); else to the
/// contact. A UA registering from another port of its own IP keeps its
/// contact. `*kind` (may be NULL) receives a `chordsip_hop`; `*uri` the hop
/// as a SIP URI (the Path entry without its angle brackets; `received` with
/// `sip:` added when it has no scheme; or the contact), borrowed from the
/// list. The Request-URI stays the contact in every case.
///
/// # Safety
/// `list` NULL or live; `kind` NULL or writable; `uri` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chordsip_bindings_next_hop(
    list: *const chordsip_bindings,
    index: usize,
    kind: *mut u32,
    uri: *mut *const c_char,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live list by the caller's contract.
        let l = unsafe { list.as_ref() }.ok_or(CHORDSIP_ERR_NULL_POINTER)?;
        if uri.is_null() {
            return Err(CHORDSIP_ERR_NULL_POINTER);
        }
        let o = l.items.get(index).ok_or(CHORDSIP_ERR_OUT_OF_RANGE)?;
        let (k, hop) = &o.hop;
        let text = hop.as_ref().unwrap_or(&o.contact).as_ptr();
        // SAFETY: non-NULL (checked) and writable by the caller's contract.
        unsafe { write_out(uri, text) }?;
        // SAFETY: NULL or writable by the caller's contract.
        unsafe { write_opt(kind, *k as u32) };
        Ok(())
    })
}

/// The Contact header value that lists binding `index` in a 200 OK (RFC 3261
/// §10.3 step 8), written with a NUL into `buf`: `<uri>;expires=N` (the
/// remaining lifetime), then `;q=0.5` when q is not 1, `;+sip.instance="..."`
/// and `;reg-id=N` when present. The one formatting sip-proxy, the Kamailio
/// module and the KEMI script send. `*needed` (may be NULL) receives the
/// bytes needed with the NUL, also when `buf` is too small
/// (`CHORDSIP_ERR_BUFFER_TOO_SMALL`); 1200 bytes hold any binding this
/// registrar accepts (contact 512 bytes, `+sip.instance` 256).
///
/// # Safety
/// `list` NULL or live; `buf` NULL or writable for `buf_len` bytes; `needed` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chordsip_bindings_contact(
    list: *const chordsip_bindings,
    index: usize,
    buf: *mut c_char,
    buf_len: usize,
    needed: *mut usize,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live list by the caller's contract.
        let l = unsafe { list.as_ref() }.ok_or(CHORDSIP_ERR_NULL_POINTER)?;
        let o = l.items.get(index).ok_or(CHORDSIP_ERR_OUT_OF_RANGE)?;
        let value = super::sip::contact_value(&o.b, o.expires);
        // SAFETY: buf and needed are NULL or writable by the caller's contract.
        unsafe { write_str(&value, buf, buf_len, Some(needed)) }
    })
}

/// Frees a binding list. NULL is a no-op.
///
/// # Safety
/// `list` is NULL or a list from this library not yet freed (never one lent to a callback).
#[no_mangle]
pub unsafe extern "C" fn chordsip_bindings_free(list: *mut chordsip_bindings) {
    guard_void(|| {
        if !list.is_null() {
            // SAFETY: created by Box::into_raw in this library, freed once.
            drop(unsafe { Box::from_raw(list) });
        }
    })
}

/// Completion of `chordsip_node_lookup_aor_async`: `bindings` is NULL unless
/// `result` is `CHORDSIP_OK`; lent for the duration of the call.
pub type chordsip_bindings_cb = Option<
    unsafe extern "C" fn(
        result: chordsip_result,
        bindings: *const chordsip_bindings,
        user_data: *mut c_void,
    ),
>;

/// -1 (absent) or a u32.
fn opt_u32(v: i64) -> FfiResult<Option<u32>> {
    match v {
        -1 => Ok(None),
        0..=0xFFFF_FFFE => Ok(Some(v as u32)),
        _ => Err(CHORDSIP_ERR_INVALID_ARGUMENT),
    }
}

/// # Safety
/// `req` is NULL or points to a request whose pointers follow the header's contract.
unsafe fn request_arg(req: *const chordsip_register) -> FfiResult<RegisterRequest> {
    // SAFETY: NULL or a valid request by the caller's contract.
    let r = unsafe { req.as_ref() }.ok_or(CHORDSIP_ERR_NULL_POINTER)?;
    if r.contacts_len > CHORDSIP_MAX_CONTACTS || r.path_len > CHORDSIP_MAX_PATH {
        return Err(CHORDSIP_ERR_TOO_LARGE);
    }
    let mut contacts = Vec::with_capacity(r.contacts_len);
    if r.contacts_len > 0 {
        if r.contacts.is_null() {
            return Err(CHORDSIP_ERR_NULL_POINTER);
        }
        // SAFETY: non-NULL and readable for contacts_len entries by the caller's contract.
        let cs = unsafe { std::slice::from_raw_parts(r.contacts, r.contacts_len) };
        for c in cs {
            contacts.push(ContactSpec {
                // SAFETY: NULL or NUL-terminated strings by the caller's contract.
                uri: unsafe { str_arg(c.uri) }?.to_string(),
                expires: opt_u32(c.expires)?,
                // SAFETY: as above.
                q: unsafe { opt_str_arg(c.q) }?.map(String::from),
                // SAFETY: as above.
                instance: unsafe { opt_str_arg(c.instance) }?.map(String::from),
                reg_id: opt_u32(c.reg_id)?,
            });
        }
    }
    let mut path = Vec::with_capacity(r.path_len);
    if r.path_len > 0 {
        if r.path.is_null() {
            return Err(CHORDSIP_ERR_NULL_POINTER);
        }
        // SAFETY: non-NULL and readable for path_len pointers by the caller's contract.
        for p in unsafe { std::slice::from_raw_parts(r.path, r.path_len) } {
            // SAFETY: NULL or NUL-terminated by the caller's contract.
            path.push(unsafe { str_arg(*p) }?.to_string());
        }
    }
    Ok(RegisterRequest {
        // SAFETY: NULL or NUL-terminated strings by the caller's contract.
        to: unsafe { str_arg(r.aor) }?.to_string(),
        // SAFETY: as above.
        call_id: unsafe { str_arg(r.call_id) }?.to_string(),
        cseq: r.cseq,
        star: r.star != 0,
        contacts,
        expires: opt_u32(r.expires)?,
        path,
        // SAFETY: as above.
        received: unsafe { opt_str_arg(r.received) }?.map(String::from),
    })
}

/// The code of a registrar error, with its reason recorded for
/// `chordsip_error_detail`.
pub(crate) fn registrar_code(e: RegistrarError) -> chordsip_result {
    super::set_detail(e.to_string());
    registrar_result(&e)
}

/// The code of a registrar error.
pub(crate) fn registrar_result(e: &RegistrarError) -> chordsip_result {
    match e {
        RegistrarError::Overlay(e) => e.into(),
        RegistrarError::Request(RegisterError::Bad(_)) => CHORDSIP_ERR_INVALID_ARGUMENT,
        RegistrarError::Request(RegisterError::OutOfOrder) => CHORDSIP_ERR_OUT_OF_ORDER,
        RegistrarError::Request(RegisterError::TooManyBindings(_)) => CHORDSIP_ERR_FULL,
        RegistrarError::Request(RegisterError::IntervalTooBrief(_)) => {
            CHORDSIP_ERR_INTERVAL_TOO_BRIEF
        }
    }
}

/// Registrar defaults: 16 bindings per AOR, expires 3600 s by default,
/// `CHORDSIP_MIN_EXPIRES` minimum, 86400 s maximum, contact URIs up to 512 bytes.
fn limits() -> RegistrarLimits {
    RegistrarLimits::default()
}

/// What a REGISTER's plan changed, as the C API counts it.
fn outcome_of(p: &crate::sip::binding::Plan) -> chordsip_register_outcome {
    chordsip_register_outcome {
        inserted: p.inserted as u32,
        updated: p.updated as u32,
        deleted: p.deleted as u32,
    }
}

fn finish_register(
    p: crate::sip::binding::Plan,
    out: *mut *mut chordsip_bindings,
    outcome: *mut chordsip_register_outcome,
) {
    // SAFETY: NULL or writable by the caller's contract.
    unsafe { write_opt(outcome, outcome_of(&p)) };
    if !out.is_null() {
        let list = Box::into_raw(Box::new(chordsip_bindings::new(p.result)));
        // SAFETY: non-NULL and writable by the caller's contract.
        unsafe { out.write(list) };
    }
}

/// Processes a REGISTER (RFC 3261 §10.3, RFC 5626 flows): bindings are
/// stored per device under the canonical AOR, `Expires: 0` removes one,
/// `Contact: *` all; an older CSeq of the same Call-ID gives
/// `CHORDSIP_ERR_OUT_OF_ORDER`, too many bindings `CHORDSIP_ERR_FULL`, a too
/// short expires `CHORDSIP_ERR_INTERVAL_TOO_BRIEF`, a malformed request or
/// a field over its limit `CHORDSIP_ERR_INVALID_ARGUMENT` (contact URI 512
/// bytes, all Path values 1024, `+sip.instance` 256, `received` 512,
/// Call-ID 256, an encoded binding over the node's `max_value_bytes`), more
/// than `CHORDSIP_MAX_CONTACTS` contacts or `CHORDSIP_MAX_PATH` Path values
/// `CHORDSIP_ERR_TOO_LARGE`; overlay
/// failures give their own codes (`CHORDSIP_ERR_TIMEOUT`...). All or nothing:
/// a refused request stores nothing, and when the overlay fails a later
/// write the earlier ones are undone (best effort; through a client handle
/// the node's value limit shows only as `CHORDSIP_ERR_TOO_LARGE` from that
/// write). On success `*bindings` (if `bindings` is not NULL) receives the
/// AOR's bindings for the 200 OK (free it), and `outcome` (may be NULL) what
/// changed. Blocks at most a few operation timeouts.
///
/// # Safety
/// `node` NULL or live; `req` NULL or valid; `bindings`, `outcome` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_register(
    node: *mut chordsip_node,
    req: *const chordsip_register,
    bindings: *mut *mut chordsip_bindings,
    outcome: *mut chordsip_register_outcome,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { node_ref(node) }?.started()?;
        // SAFETY: NULL or a valid request by the caller's contract.
        let r = unsafe { request_arg(req) }?;
        if crate::runtime::on_worker_thread() {
            return Err(CHORDSIP_ERR_IN_CALLBACK);
        }
        let p = registrar::register(&mut &n, &r, &limits()).map_err(registrar_code)?;
        finish_register(p, bindings, outcome);
        Ok(())
    })
}

/// Completion of `chordsip_node_register_async`: `bindings` (the AOR's
/// bindings for the 200 OK) and `outcome` are NULL unless `result` is
/// `CHORDSIP_OK`; both are lent for the duration of the call.
pub type chordsip_register_cb = Option<
    unsafe extern "C" fn(
        result: chordsip_result,
        bindings: *const chordsip_bindings,
        outcome: *const chordsip_register_outcome,
        user_data: *mut c_void,
    ),
>;

/// Asynchronous `chordsip_node_register`: the same rules and the same all
/// or nothing, its writes made in parallel on the node's thread while the
/// caller goes on. The request is copied before this returns (its strings
/// need not outlive the call). `cb` runs exactly once when this returns
/// `CHORDSIP_OK` (see `chordsip_node_lookup_async`), with the result
/// `chordsip_node_register` would have returned; a request refused before
/// anything is read (a NULL or malformed argument, an AOR that is no SIP
/// URI) is returned here instead, and `cb` never runs.
///
/// # Safety
/// `node` NULL or live; `req` NULL or valid; `cb` valid; `user_data` valid until the callback ran.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_register_async(
    node: *mut chordsip_node,
    req: *const chordsip_register,
    cb: chordsip_register_cb,
    user_data: *mut c_void,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let nref = unsafe { node_ref(node) }?;
        let n = nref.started()?;
        // SAFETY: NULL or a valid request by the caller's contract.
        let r = unsafe { request_arg(req) }?;
        let cb = cb.ok_or(CHORDSIP_ERR_NULL_POINTER)?;
        let ud = UserData(user_data);
        // Completion's own error is a cancellation; the registrar's are codes.
        type Answer = Result<crate::sip::binding::Plan, chordsip_result>;
        let deliver = move |r: crate::Result<Answer>| {
            let ud = ud;
            match r.map_err(chordsip_result::from).and_then(|a| a) {
                Ok(p) => {
                    let outcome = outcome_of(&p);
                    let list = chordsip_bindings::new(p.result);
                    // SAFETY: the host's callback; list and outcome live until it returns.
                    unsafe { cb(CHORDSIP_OK, &list, &outcome, ud.get()) }
                }
                Err(code) => {
                    let (list, outcome) = (std::ptr::null(), std::ptr::null());
                    // SAFETY: the host's callback; NULL lists on error as documented.
                    unsafe { cb(code, list, outcome, ud.get()) }
                }
            }
        };
        let mut refused = CHORDSIP_OK;
        let started = Completion::new(Arc::clone(&nref.dispatcher), deliver).start(|c| {
            registrar::register_async(&n, &r, &limits(), move |res| {
                c.complete(Ok(res.map_err(registrar_code)))
            })
            .map_err(|e| {
                refused = registrar_code(e);
                crate::Error::Cancelled
            })
        });
        match started {
            Ok(()) => Ok(()),
            Err(_) => Err(refused),
        }
    })
}

/// `chordsip_node_register` through a client handle, in one exchange: the
/// node reads the AOR, applies the same rules and writes the changes.
///
/// # Safety
/// As `chordsip_node_register`, with `client` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn chordsip_client_register(
    client: *mut super::client::chordsip_client,
    req: *const chordsip_register,
    bindings: *mut *mut chordsip_bindings,
    outcome: *mut chordsip_register_outcome,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live client by the caller's contract.
        let c = unsafe { client_ref(client) }?;
        // SAFETY: NULL or a valid request by the caller's contract.
        let r = unsafe { request_arg(req) }?;
        // One round trip: the node runs the registrar (RegistrarLimits::default()).
        let p = c.inner.lock().register(&r).map_err(registrar_code)?;
        finish_register(p, bindings, outcome);
        Ok(())
    })
}

/// # Safety
/// `aor` is NULL or NUL-terminated.
unsafe fn aor_arg(aor: *const c_char) -> FfiResult<crate::id::Id> {
    // SAFETY: NULL or NUL-terminated by the caller's contract.
    let aor = unsafe { str_arg(aor) }?;
    registrar::aor_key(aor).map(|(_, k)| k).map_err(|e| {
        super::set_detail(e.to_string());
        CHORDSIP_ERR_INVALID_ARGUMENT
    })
}

/// The bindings of `aor` in `store`: the trusted ones, or (`all`) every one.
fn find_bindings(
    store: &mut impl registrar::DictStore,
    aor: &str,
    all: bool,
) -> FfiResult<Vec<(Binding, u32)>> {
    match all {
        true => registrar::lookup_trusting(store, aor, Trust::All),
        false => registrar::lookup(store, aor),
    }
    .map_err(registrar_code)
}

/// The common part of the AOR lookups: checks `aor` and `out`, runs `find`
/// and hands the caller the new list.
///
/// # Safety
/// `aor` NULL or NUL-terminated; `out` NULL or writable.
unsafe fn lookup_aor_into(
    aor: *const c_char,
    out: *mut *mut chordsip_bindings,
    find: impl FnOnce(&str) -> FfiResult<Vec<(Binding, u32)>>,
) -> FfiResult<()> {
    // SAFETY: NULL or NUL-terminated by the caller's contract.
    let aor = unsafe { str_arg(aor) }?;
    if out.is_null() {
        return Err(CHORDSIP_ERR_NULL_POINTER);
    }
    let list = Box::into_raw(Box::new(chordsip_bindings::new(find(aor)?)));
    // SAFETY: non-NULL (checked) and writable by the caller's contract.
    unsafe { write_out(out, list) }
}

/// The live bindings of `aor` (any spelling of it: it is canonicalised)
/// that are safe to route to: written under the node's writer key or one of
/// its `trusted_writers` (a binding another member wrote under a key of its
/// own is left out). Highest q first, in a new list the caller frees; an
/// unknown AOR gives an empty list. `chordsip_node_lookup_aor_all` returns
/// every binding with its owner.
///
/// # Safety
/// `node` NULL or live; `aor` NULL or NUL-terminated; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_lookup_aor(
    node: *mut chordsip_node,
    aor: *const c_char,
    out: *mut *mut chordsip_bindings,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { node_ref(node) }?.started()?;
        // SAFETY: as this function's contract.
        unsafe { lookup_aor_into(aor, out, |a| find_bindings(&mut &n, a, false)) }
    })
}

/// Every live binding of `aor`, whoever wrote it, each with its `owner`:
/// for callers that judge trust themselves. `chordsip_node_lookup_aor`
/// returns only the bindings of the node's writer key and
/// `trusted_writers`, the ones it is safe to route to.
///
/// # Safety
/// As `chordsip_node_lookup_aor`.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_lookup_aor_all(
    node: *mut chordsip_node,
    aor: *const c_char,
    out: *mut *mut chordsip_bindings,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { node_ref(node) }?.started()?;
        // SAFETY: as this function's contract.
        unsafe { lookup_aor_into(aor, out, |a| find_bindings(&mut &n, a, true)) }
    })
}

/// `chordsip_node_lookup_aor` through a client handle.
///
/// # Safety
/// As `chordsip_node_lookup_aor`, with `client` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn chordsip_client_lookup_aor(
    client: *mut super::client::chordsip_client,
    aor: *const c_char,
    out: *mut *mut chordsip_bindings,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live client by the caller's contract.
        let c = unsafe { client_ref(client) }?;
        // SAFETY: as this function's contract.
        unsafe { lookup_aor_into(aor, out, |a| find_bindings(&mut *c.inner.lock(), a, false)) }
    })
}

/// `chordsip_node_lookup_aor_all` through a client handle.
///
/// # Safety
/// As `chordsip_node_lookup_aor`, with `client` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn chordsip_client_lookup_aor_all(
    client: *mut super::client::chordsip_client,
    aor: *const c_char,
    out: *mut *mut chordsip_bindings,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live client by the caller's contract.
        let c = unsafe { client_ref(client) }?;
        // SAFETY: as this function's contract.
        unsafe { lookup_aor_into(aor, out, |a| find_bindings(&mut *c.inner.lock(), a, true)) }
    })
}

/// Asynchronous `chordsip_node_lookup_aor`; `cb` runs exactly once when this
/// returns `CHORDSIP_OK` (see `chordsip_node_lookup_async`).
///
/// # Safety
/// `node` NULL or live; `aor` NULL or NUL-terminated; `cb` valid; `user_data` valid until the callback ran.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_lookup_aor_async(
    node: *mut chordsip_node,
    aor: *const c_char,
    cb: chordsip_bindings_cb,
    user_data: *mut c_void,
) -> chordsip_result {
    // SAFETY: forwarded caller contract.
    unsafe { lookup_aor_async(node, aor, cb, user_data, false) }
}

/// Asynchronous `chordsip_node_lookup_aor_all`: every live binding, whoever
/// wrote it, each with its `owner` (a P2P user agent reads the other
/// devices' bindings this way, from its event loop); `cb` as for
/// `chordsip_node_lookup_aor_async`.
///
/// # Safety
/// As `chordsip_node_lookup_aor_async`.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_lookup_aor_all_async(
    node: *mut chordsip_node,
    aor: *const c_char,
    cb: chordsip_bindings_cb,
    user_data: *mut c_void,
) -> chordsip_result {
    // SAFETY: forwarded caller contract.
    unsafe { lookup_aor_async(node, aor, cb, user_data, true) }
}

/// Both asynchronous AOR lookups: `all` every writer's bindings, else the
/// node's own writer key's and its `trusted_writers`'.
///
/// # Safety
/// As `chordsip_node_lookup_aor_async`.
unsafe fn lookup_aor_async(
    node: *mut chordsip_node,
    aor: *const c_char,
    cb: chordsip_bindings_cb,
    user_data: *mut c_void,
    all: bool,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let nref = unsafe { node_ref(node) }?;
        let n = nref.started()?;
        // SAFETY: NULL or NUL-terminated by the caller's contract.
        let key = unsafe { aor_arg(aor) }?;
        let cb = cb.ok_or(CHORDSIP_ERR_NULL_POINTER)?;
        let trusted = if all {
            Vec::new()
        } else {
            n.trusted_writers()?
        };
        let ud = UserData(user_data);
        let deliver = move |r: crate::Result<Vec<crate::Value>>| {
            let ud = ud;
            match r {
                Ok(v) => {
                    let trust = match all {
                        true => Trust::All,
                        false => Trust::Writers(&trusted),
                    };
                    let list = chordsip_bindings::new(live_bindings(v, trust));
                    // SAFETY: the host's callback; the list lives until it returns.
                    unsafe { cb(CHORDSIP_OK, &list, ud.get()) }
                }
                // SAFETY: the host's callback; NULL list on error as documented.
                Err(e) => unsafe { cb(e.into(), std::ptr::null(), ud.get()) },
            }
        };
        super::code(
            Completion::new(Arc::clone(&nref.dispatcher), deliver)
                .start(|c| n.get_async(key, move |r| c.complete(r))),
        )
    })
}
