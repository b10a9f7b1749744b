//! SIP digest authentication through the C ABI: a user's HA1 from the
//! credentials kept in the overlay (for hosts with digest code of their
//! own, e.g. Kamailio's `pv_www_authenticate`), or the whole check of a
//! REGISTER's `Authorization` (for hosts without, e.g. the sip-proxy).

use super::chordsip_result::*;
use super::client::{chordsip_client, client_ref};
use super::events::Completion;
use super::node::{chordsip_node, node_ref};
use super::{
    chordsip_result, code, guard, opt_str_arg, str_arg, write_out, write_str, FfiResult, UserData,
};
use crate::sip::auth::{self, AuthSettings};
use crate::sip::digest::{self, Algorithm, NonceKey, Verdict};
use crate::types::{CredentialTrust, DictStore};
use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

/// A digest hash algorithm (RFC 8760).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum chordsip_digest_algorithm {
    /// MD5: an HA1 of 32 hex digits.
    CHORDSIP_DIGEST_MD5 = 1,
    /// SHA-256: an HA1 of 64 hex digits.
    CHORDSIP_DIGEST_SHA256 = 2,
}

/// What to answer a request whose credentials `chordsip_node_authenticate`
/// checked (`chordsip_auth_status` gives the SIP status and reason).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum chordsip_auth_verdict {
    /// Authenticated as the AOR's user: go on (e.g. `chordsip_node_register`).
    CHORDSIP_AUTH_OK = 0,
    /// No credentials for the AOR's realm, or on a nonce this node did not
    /// issue (another registrar's, without a shared `digest_nonce_secret`):
    /// 401 with the challenge given.
    CHORDSIP_AUTH_CHALLENGE = 1,
    /// Credentials on an expired nonce (e.g. a replayed request): 401 with
    /// the challenge given, which says `stale=true`.
    CHORDSIP_AUTH_STALE = 2,
    /// Wrong password or unknown user: 403.
    CHORDSIP_AUTH_FORBIDDEN = 3,
    /// Authenticated, but as another user than the AOR's: 403.
    CHORDSIP_AUTH_NOT_YOURS = 4,
    /// A malformed or oversized Authorization header: 400.
    CHORDSIP_AUTH_MALFORMED = 5,
}

/// Longest `WWW-Authenticate` value `chordsip_node_authenticate` writes,
/// terminating NUL included (the realm is at most 255 bytes).
pub const CHORDSIP_MAX_CHALLENGE_LEN: usize = 512;

fn algorithm_arg(a: u32) -> FfiResult<Algorithm> {
    match a {
        1 => Ok(Algorithm::Md5),
        2 => Ok(Algorithm::Sha256),
        _ => Err(CHORDSIP_ERR_INVALID_ARGUMENT),
    }
}

/// The common part of the two HA1 calls.
///
/// # Safety
/// `user`, `realm` NULL or NUL-terminated; `out` NULL or writable for `out_len` bytes.
unsafe fn ha1_into(
    store: &mut impl DictStore,
    user: *const c_char,
    realm: *const c_char,
    algorithm: u32,
    out: *mut c_char,
    out_len: usize,
) -> FfiResult<()> {
    // SAFETY: NULL or NUL-terminated by the caller's contract.
    let (user, realm) = unsafe { (str_arg(user)?, str_arg(realm)?) };
    let alg = algorithm_arg(algorithm)?;
    if out.is_null() {
        return Err(CHORDSIP_ERR_NULL_POINTER);
    }
    let ha1 = code(auth::ha1(store, user, realm, alg))?.ok_or(CHORDSIP_ERR_NOT_FOUND)?;
    // SAFETY: writable for out_len bytes by the caller's contract.
    unsafe { write_str(&ha1, out, out_len, None) }
}

/// Writes the HA1 of `user` in `realm` for `algorithm`
/// (`chordsip_digest_algorithm`) into `out` as lower-case hex with a NUL
/// (33 bytes for MD5, 65 for SHA-256): what Kamailio's
/// `pv_www_authenticate(realm, "$var(ha1)", 1)` takes. The record is one an
/// administrator stored (`chordsip user add`), opened with the node's
/// `credentials_key` and counted only if written by a key in its
/// `credential_admins`.
///
/// Returns `CHORDSIP_ERR_NOT_FOUND` when there is no such user (or no HA1
/// for that algorithm), `CHORDSIP_ERR_UNAUTHORIZED` when the node has no
/// `credentials_key` or `credential_admins`, or the record does not open
/// with its key, `CHORDSIP_ERR_BUFFER_TOO_SMALL` when `out_len` is short.
///
/// # Safety
/// `node` NULL or live; `user`, `realm` NULL or NUL-terminated; `out` NULL
/// or writable for `out_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_credential_ha1(
    node: *mut chordsip_node,
    user: *const c_char,
    realm: *const c_char,
    algorithm: u32,
    out: *mut c_char,
    out_len: usize,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { node_ref(node) }?.started()?;
        // SAFETY: as this function's contract.
        unsafe { ha1_into(&mut &n, user, realm, algorithm, out, out_len) }
    })
}

/// `chordsip_node_credential_ha1` through a client handle, which must have
/// been given the credentials key (`chordsip_client_set_credential_trust`):
/// the handle fetches the sealed record and opens it itself.
///
/// # Safety
/// As `chordsip_node_credential_ha1`, with `client` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn chordsip_client_credential_ha1(
    client: *mut chordsip_client,
    user: *const c_char,
    realm: *const c_char,
    algorithm: u32,
    out: *mut c_char,
    out_len: usize,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live client by the caller's contract.
        let c = unsafe { client_ref(client) }?;
        // SAFETY: as this function's contract.
        unsafe { ha1_into(&mut *c.inner.lock(), user, realm, algorithm, out, out_len) }
    })
}

/// Lets a client handle read SIP credentials: `credentials_key` is the key
/// as 64 hex digits (the content of the file `chordsip keygen` wrote),
/// `admins` the administrators' public writer keys, comma-separated (the
/// node options `credentials_key` and `credential_admins`). They stay in
/// this process: nothing of them is sent.
///
/// # Safety
/// `client` NULL or live; strings NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn chordsip_client_set_credential_trust(
    client: *mut chordsip_client,
    credentials_key: *const c_char,
    admins: *const c_char,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live client by the caller's contract.
        let c = unsafe { client_ref(client) }?;
        // SAFETY: NULL or NUL-terminated by the caller's contract.
        let (key, admins) = unsafe { (str_arg(credentials_key)?, str_arg(admins)?) };
        // The node's own parsers, so both take the same text.
        let mut cfg = crate::config::Config::default();
        code(cfg.set("credentials_key", key.trim()))?;
        code(cfg.set("credential_admins", admins))?;
        let trust = CredentialTrust {
            key: cfg.credentials_key.ok_or(CHORDSIP_ERR_INVALID_ARGUMENT)?,
            admins: cfg.credential_admins,
        };
        code(c.inner.lock().set_credential_trust(trust))
    })
}

/// Checks the digest credentials of a request (a REGISTER) acting for
/// `aor`: the realm is the AOR's domain, the user must be the AOR's user,
/// the HA1 comes from the overlay (as `chordsip_node_credential_ha1`).
/// `authorization` is the request's `Authorization` value (NULL or "" when
/// it has none); `method` its method. Nonces are the node's own (secret
/// `digest_nonce_secret`, stale after `digest_nonce_lifetime_s`), so
/// registrars that share the secret accept each other's.
///
/// `*verdict` receives a `chordsip_auth_verdict`; for
/// `CHORDSIP_AUTH_CHALLENGE` and `CHORDSIP_AUTH_STALE`, `challenge` receives
/// the `WWW-Authenticate` value to send with the 401 (NUL-terminated; at
/// most `CHORDSIP_MAX_CHALLENGE_LEN` bytes), else "". A failing call (e.g.
/// `CHORDSIP_ERR_UNAUTHORIZED`: the node has no `credentials_key`, or
/// `CHORDSIP_ERR_TIMEOUT`) leaves both untouched: answer 500, not 401.
///
/// # Safety
/// `node` NULL or live; strings NULL (where allowed) or NUL-terminated;
/// `verdict` NULL or writable; `challenge` NULL or writable for `challenge_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_authenticate(
    node: *mut chordsip_node,
    method: *const c_char,
    aor: *const c_char,
    authorization: *const c_char,
    verdict: *mut u32,
    challenge: *mut c_char,
    challenge_len: usize,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { node_ref(node) }?.started()?;
        // SAFETY: NULL or NUL-terminated by the caller's contract.
        let (method, aor, authorization) =
            unsafe { (str_arg(method)?, str_arg(aor)?, opt_str_arg(authorization)?) };
        if verdict.is_null() || challenge.is_null() {
            return Err(CHORDSIP_ERR_NULL_POINTER);
        }
        if challenge_len < CHORDSIP_MAX_CHALLENGE_LEN {
            return Err(CHORDSIP_ERR_BUFFER_TOO_SMALL);
        }
        let settings = auth_settings(&n);
        let v = code(auth::authenticate(
            &mut &n,
            &settings,
            method,
            aor,
            authorization,
        ))?;
        let (v, text) = verdict_answer(&settings, aor, v)?;
        // SAFETY: writable for challenge_len bytes by the caller's contract.
        unsafe { write_str(&text, challenge, challenge_len, None) }?;
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { write_out(verdict, v as u32) }
    })
}

/// How the node challenges and checks (its nonce secret and settings).
fn auth_settings(n: &crate::Node) -> AuthSettings {
    let cfg = n.config();
    AuthSettings {
        nonces: NonceKey::new(n.digest_nonce_secret()),
        nonce_lifetime_s: cfg.digest_nonce_lifetime.as_secs(),
        algorithm: Algorithm::from_name(&cfg.digest_algorithm).unwrap_or(Algorithm::Md5),
    }
}

/// A verdict as the C API gives it: its code and the challenge to send ("" when none).
fn verdict_answer(
    settings: &AuthSettings,
    aor: &str,
    v: Verdict,
) -> FfiResult<(chordsip_auth_verdict, String)> {
    use chordsip_auth_verdict::*;
    Ok(match v {
        Verdict::Ok { .. } => (CHORDSIP_AUTH_OK, String::new()),
        Verdict::Challenge => (
            CHORDSIP_AUTH_CHALLENGE,
            code(auth::challenge(settings, aor, false))?,
        ),
        Verdict::Stale => (
            CHORDSIP_AUTH_STALE,
            code(auth::challenge(settings, aor, true))?,
        ),
        Verdict::Forbidden => (CHORDSIP_AUTH_FORBIDDEN, String::new()),
        Verdict::NotYours { .. } => (CHORDSIP_AUTH_NOT_YOURS, String::new()),
        Verdict::Malformed(_) => (CHORDSIP_AUTH_MALFORMED, String::new()),
    })
}

/// Completion of `chordsip_node_authenticate_async`: `verdict` is a
/// `chordsip_auth_verdict` and `challenge` the `WWW-Authenticate` value for
/// a 401 ("" when the verdict needs none); when `result` is not
/// `CHORDSIP_OK`, `verdict` is 0 and `challenge` "" (answer 500, not 401).
/// `challenge` is lent for the duration of the call.
pub type chordsip_auth_cb = Option<
    unsafe extern "C" fn(
        result: chordsip_result,
        verdict: u32,
        challenge: *const c_char,
        user_data: *mut c_void,
    ),
>;

/// Asynchronous `chordsip_node_authenticate`: the verdict comes to `cb`
/// (after a read of the user's credential record when the request carries
/// credentials on a fresh nonce of this node's; at once, still through
/// `cb`, when it needs none). The strings are copied before this returns.
/// `cb` runs exactly once when this returns `CHORDSIP_OK` (see
/// `chordsip_node_lookup_async`); an argument refused at once (NULL, not
/// UTF-8, an AOR without a user part: `CHORDSIP_ERR_INVALID_ARGUMENT`, no
/// `credentials_key`: `CHORDSIP_ERR_UNAUTHORIZED`) is returned here
/// instead, and `cb` never runs.
///
/// # Safety
/// `node` NULL or live; strings NULL (where allowed) or NUL-terminated;
/// `cb` valid; `user_data` valid until the callback ran.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_authenticate_async(
    node: *mut chordsip_node,
    method: *const c_char,
    aor: *const c_char,
    authorization: *const c_char,
    cb: chordsip_auth_cb,
    user_data: *mut c_void,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let nref = unsafe { node_ref(node) }?;
        let n = nref.started()?;
        // SAFETY: NULL or NUL-terminated by the caller's contract.
        let (method, aor, authorization) =
            unsafe { (str_arg(method)?, str_arg(aor)?, opt_str_arg(authorization)?) };
        let cb = cb.ok_or(CHORDSIP_ERR_NULL_POINTER)?;
        let ud = UserData(user_data);
        let settings = auth_settings(&n);
        let aor_owned = aor.to_string();
        let answer_settings = settings.clone();
        let deliver = move |r: crate::Result<Verdict>| {
            let ud = ud;
            let answer = r
                .map_err(chordsip_result::from)
                .and_then(|v| verdict_answer(&answer_settings, &aor_owned, v));
            let (rc, v, text) = match answer {
                Ok((v, text)) => (CHORDSIP_OK, v as u32, text),
                Err(rc) => (rc, 0, String::new()),
            };
            // A challenge never holds a NUL (the realm is a checked host name).
            let text = CString::new(text).unwrap_or_default();
            // SAFETY: the host's callback; the text lives until it returns.
            unsafe { cb(rc, v, text.as_ptr(), ud.get()) }
        };
        code(
            Completion::new(Arc::clone(&nref.dispatcher), deliver).start(|c| {
                auth::authenticate_async(&n, &settings, method, aor, authorization, move |r| {
                    c.complete(r)
                })
            }),
        )
    })
}

/// The SIP status a verdict answers with (200 for `CHORDSIP_AUTH_OK`, 401,
/// 403 or 400), and its reason phrase in `*reason` (static storage; NULL
/// allowed). 0 for an unknown verdict.
///
/// # Safety
/// `reason` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chordsip_auth_status(verdict: u32, reason: *mut *const c_char) -> u16 {
    let (status, text): (u16, &'static [u8]) = match verdict {
        0 => (200, b"OK\0"),
        1 | 2 => (401, b"Unauthorized\0"),
        3 => (403, b"Forbidden\0"),
        4 => (403, b"Forbidden (not your AOR)\0"),
        5 => (400, b"Bad Request (Authorization)\0"),
        _ => (0, b"\0"),
    };
    if !reason.is_null() {
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { *reason = text.as_ptr().cast() };
    }
    status
}

/// Writes HA1 = H(user:realm:password) for `algorithm` as lower-case hex
/// with a NUL into `out` (33 bytes for MD5, 65 for SHA-256).
///
/// # Safety
/// Strings NULL or NUL-terminated; `out` NULL or writable for `out_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn chordsip_digest_ha1(
    algorithm: u32,
    user: *const c_char,
    realm: *const c_char,
    password: *const c_char,
    out: *mut c_char,
    out_len: usize,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or NUL-terminated by the caller's contract.
        let (user, realm, password) =
            unsafe { (str_arg(user)?, str_arg(realm)?, str_arg(password)?) };
        let h = digest::ha1(algorithm_arg(algorithm)?, user, realm, password);
        // SAFETY: writable for out_len bytes by the caller's contract.
        unsafe { write_str(&h, out, out_len, None) }
    })
}
