//! A registrar's digest authentication with the credentials kept in the
//! overlay: the realm is the AOR's domain, the user must be the AOR's user,
//! the HA1 comes from `credentials`. Hosts with their own digest code
//! (Kamailio's auth module) take the HA1 alone ([`ha1`]).

use super::credentials;
pub use super::digest::AuthSettings;
use super::digest::{self, Algorithm, Precheck, Verdict};
use super::uri::Uri;
use crate::error::Error;
use crate::types::DictStore;

/// The user and realm an AOR authenticates as: its user part and its domain.
pub fn aor_user_realm(aor: &str) -> Result<(String, String), Error> {
    let uri = Uri::parse(aor).map_err(|e| Error::InvalidArgument(format!("AOR {aor:?}: {e}")))?;
    let user = uri
        .user
        .filter(|u| !u.is_empty())
        .ok_or_else(|| Error::InvalidArgument(format!("AOR {aor:?} has no user part")))?;
    Ok((user, uri.host.to_ascii_lowercase()))
}

/// A user's HA1 for `alg` in lower-case hex; `Ok(None)` when the overlay
/// holds no credential of that user (or none for that algorithm).
pub fn ha1(
    store: &mut impl DictStore,
    user: &str,
    realm: &str,
    alg: Algorithm,
) -> Result<Option<String>, Error> {
    let trust = store.credential_trust()?;
    Ok(credentials::fetch(store, &trust, user, realm)?.and_then(|c| c.ha1_hex(alg)))
}

/// Checks the credentials of a request acting for `aor` (a REGISTER's To).
/// `authorization`: its Authorization value for the AOR's realm, if any.
pub fn authenticate(
    store: &mut impl DictStore,
    settings: &AuthSettings,
    method: &str,
    aor: &str,
    authorization: Option<&str>,
) -> Result<Verdict, Error> {
    let (user, realm) = aor_user_realm(aor)?;
    // Checked before the first fetch, so that a misconfigured registrar
    // says so instead of refusing every user.
    let trust = store.credential_trust()?;
    digest::authenticate(
        settings,
        unix_now_s(),
        method,
        &user,
        &realm,
        authorization,
        |u, alg| Ok(credentials::fetch(store, &trust, u, &realm)?.and_then(|c| c.ha1_hex(alg))),
    )
}

/// [`authenticate`] through a node without blocking: `cb` gets the verdict
/// on the node's worker thread (after a read of the user's record when the
/// request carries credentials worth checking). An error before anything
/// starts (a malformed AOR, no `credentials_key`) is returned and `cb`
/// dropped.
pub fn authenticate_async(
    node: &crate::Node,
    settings: &AuthSettings,
    method: &str,
    aor: &str,
    authorization: Option<&str>,
    cb: impl FnOnce(Result<Verdict, Error>) + Send + 'static,
) -> Result<(), Error> {
    let (user, realm) = aor_user_realm(aor)?;
    let trust = node.credential_trust()?;
    let answer = match digest::precheck(settings, unix_now_s(), &realm, authorization) {
        Precheck::Done(v) => return node.on_worker(move || cb(Ok(v))),
        Precheck::NeedHa1(answer) => answer,
    };
    let key = credentials::fetch_key(answer.username(), &realm)?;
    let method = method.to_string();
    node.get_async(key, move |values| {
        let ha1 = values.and_then(|v| {
            let record = credentials::from_values(v, &trust, key, answer.username(), &realm)?;
            Ok(record.and_then(|c| c.ha1_hex(answer.algorithm())))
        });
        cb(ha1.map(|h| answer.verdict(&method, &user, h.as_deref())))
    })
}

/// The `WWW-Authenticate` value for a 401 to a request acting for `aor`.
pub fn challenge(settings: &AuthSettings, aor: &str, stale: bool) -> Result<String, Error> {
    let (_, realm) = aor_user_realm(aor)?;
    let nonce = settings.nonces.issue(&realm, unix_now_s());
    Ok(digest::challenge(&realm, &nonce, settings.algorithm, stale))
}

fn unix_now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
