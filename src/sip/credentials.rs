//! SIP digest credentials kept in the overlay: no database of users.
//!
//! A user's record (both HA1s, never the password) is stored under
//! `sip-credential:USER@REALM` by an administrator's writer key. Two keys
//! guard it:
//! - only records signed by a key the registrar lists in `credential_admins`
//!   count, so another member of the overlay cannot plant a user;
//! - the record is sealed (ChaCha20-Poly1305) with the `credentials_key`
//!   that the administrator and the registrars share: any member can fetch
//!   the bytes (reads in a DHT are open to members), only they can read them.
//!
//! The users of a realm are listed in an index, sealed the same way and
//! spread over [`INDEX_SHARDS`] keys so that one value never holds them all.
//! Pure logic over any [`DictStore`]: a node and a client handle both serve.

use super::digest::Algorithm;
use crate::error::Error;
use crate::id::Id;
pub use crate::types::CredentialTrust;
use crate::types::{DictStore, Value};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use sha2::{Digest, Sha256};
use std::time::Duration;

pub use crate::types::CREDENTIALS_KEY_LEN;
/// The slot label of a user's record and of an index shard.
const RECORD_LABEL: &[u8] = b"sip-credential";
const INDEX_LABEL: &[u8] = b"sip-credential-index";
/// Keys a realm's user list is spread over.
pub const INDEX_SHARDS: u32 = 64;
/// The longest user name and realm a record takes (one length byte each).
pub const MAX_NAME_LEN: usize = 255;
const SEAL_NONCE_LEN: usize = 12;
const RECORD_FORMAT: u8 = 1;

/// One user's digest credentials: an HA1 per algorithm (either may be
/// missing when the administrator gave only one HA1).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub user: String,
    pub realm: String,
    pub ha1_md5: Option<[u8; 16]>,
    pub ha1_sha256: Option<[u8; 32]>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({}@{})", self.user, self.realm)
    }
}

impl Credential {
    /// Both HA1s of a password (the password itself is not kept).
    pub fn from_password(user: &str, realm: &str, password: &str) -> Result<Credential, Error> {
        check_names(user, realm)?;
        let md5 = super::digest::ha1(Algorithm::Md5, user, realm, password);
        let sha = super::digest::ha1(Algorithm::Sha256, user, realm, password);
        Ok(Credential {
            user: user.into(),
            realm: realm.into(),
            ha1_md5: Some(unhex(&md5).expect("hex we made")),
            ha1_sha256: Some(unhex(&sha).expect("hex we made")),
        })
    }

    /// A record from HA1s given in hex: 32 digits are an MD5 HA1, 64 a SHA-256 one.
    pub fn from_ha1s(user: &str, realm: &str, ha1s: &[&str]) -> Result<Credential, Error> {
        check_names(user, realm)?;
        let mut c = Credential {
            user: user.into(),
            realm: realm.into(),
            ha1_md5: None,
            ha1_sha256: None,
        };
        for h in ha1s {
            let bad = || {
                Error::InvalidArgument(format!(
                    "HA1 {h:?}: 32 (MD5) or 64 (SHA-256) hex digits expected"
                ))
            };
            match h.trim().len() {
                32 => c.ha1_md5 = Some(unhex(h.trim()).ok_or_else(bad)?),
                64 => c.ha1_sha256 = Some(unhex(h.trim()).ok_or_else(bad)?),
                _ => return Err(bad()),
            }
        }
        if c.ha1_md5.is_none() && c.ha1_sha256.is_none() {
            return Err(Error::InvalidArgument("no HA1 given".into()));
        }
        Ok(c)
    }

    /// The HA1 for `alg` in lower-case hex, as digest checks (and
    /// Kamailio's `pv_www_authenticate` with flag 1) take it.
    pub fn ha1_hex(&self, alg: Algorithm) -> Option<String> {
        match alg {
            Algorithm::Md5 => self.ha1_md5.map(|h| crate::owner::hex(&h)),
            Algorithm::Sha256 => self.ha1_sha256.map(|h| crate::owner::hex(&h)),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut p = vec![RECORD_FORMAT];
        p.push(self.ha1_md5.is_some() as u8 | (self.ha1_sha256.is_some() as u8) << 1);
        p.extend_from_slice(&self.ha1_md5.unwrap_or_default());
        p.extend_from_slice(&self.ha1_sha256.unwrap_or_default());
        for s in [&self.user, &self.realm] {
            p.push(s.len() as u8);
            p.extend_from_slice(s.as_bytes());
        }
        p
    }

    fn decode(p: &[u8]) -> Option<Credential> {
        let (&[format, flags], rest) = p.split_first_chunk::<2>()?;
        if format != RECORD_FORMAT {
            return None;
        }
        let (md5, rest) = rest.split_first_chunk::<16>()?;
        let (sha, mut rest) = rest.split_first_chunk::<32>()?;
        let mut names = Vec::new();
        for _ in 0..2 {
            let (&len, r) = rest.split_first()?;
            let s = r.get(..len as usize)?;
            names.push(String::from_utf8(s.to_vec()).ok()?);
            rest = &r[len as usize..];
        }
        let realm = names.pop()?;
        let user = names.pop()?;
        Some(Credential {
            user,
            realm,
            ha1_md5: (flags & 1 != 0).then_some(*md5),
            ha1_sha256: (flags & 2 != 0).then_some(*sha),
        })
    }
}

fn check_names(user: &str, realm: &str) -> Result<(), Error> {
    // A realm has no '@', so "USER@REALM" splits one way only; user names
    // are index lines, so no control characters in either.
    for (what, s) in [("user", user), ("realm", realm)] {
        if s.is_empty() || s.len() > MAX_NAME_LEN || s.chars().any(char::is_control) {
            return Err(Error::InvalidArgument(format!(
                "{what} {s:?}: 1 to {MAX_NAME_LEN} bytes, no control characters"
            )));
        }
    }
    if realm.contains('@') {
        return Err(Error::InvalidArgument(format!(
            "realm {realm:?} contains '@'"
        )));
    }
    Ok(())
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The ring key of a user's record.
pub fn record_key(user: &str, realm: &str) -> Id {
    Id::from_name(&format!("sip-credential:{user}@{realm}"))
}

/// The index shard a user is listed in.
fn index_key(user: &str, realm: &str) -> Id {
    let shard = Sha256::digest(user.as_bytes())[0] as u32 % INDEX_SHARDS;
    index_shard_key(realm, shard)
}

fn index_shard_key(realm: &str, shard: u32) -> Id {
    Id::from_name(&format!("sip-credential-index:{realm}:{shard}"))
}

/// Seals `plain` for `key` (the ring key it is stored under: a sealed
/// record cannot be moved to another user).
fn seal(secret: &[u8; CREDENTIALS_KEY_LEN], key: Id, plain: &[u8]) -> Vec<u8> {
    use rand::RngCore;
    let mut nonce = [0u8; SEAL_NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let aad = aad(key);
    let ct = ChaCha20Poly1305::new(secret.into())
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: &aad,
            },
        )
        .expect("ChaCha20-Poly1305 seals any length a value takes");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    out
}

fn open(secret: &[u8; CREDENTIALS_KEY_LEN], key: Id, sealed: &[u8]) -> Option<Vec<u8>> {
    let (nonce, ct) = sealed.split_first_chunk::<SEAL_NONCE_LEN>()?;
    let aad = aad(key);
    ChaCha20Poly1305::new(secret.into())
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
        .ok()
}

fn aad(key: Id) -> Vec<u8> {
    let mut a = b"chordsip-credential-1".to_vec();
    a.extend_from_slice(&key.0);
    a
}

/// A user's record as the registrar sees it: written by an admin and
/// opened with the credentials key. `Ok(None)` when there is none; an
/// `Unauthorized` error when admins wrote one that this key cannot open
/// (the registrar and the administrator hold different keys).
pub fn fetch(
    store: &mut impl DictStore,
    trust: &CredentialTrust,
    user: &str,
    realm: &str,
) -> Result<Option<Credential>, Error> {
    let key = fetch_key(user, realm)?;
    from_values(store.dict_get(key)?, trust, key, user, realm)
}

/// The key [`fetch`] reads a user's record under (names checked first).
pub fn fetch_key(user: &str, realm: &str) -> Result<Id, Error> {
    check_names(user, realm)?;
    Ok(record_key(user, realm))
}

/// [`fetch`]'s answer from the values read under [`fetch_key`]: for a
/// caller that reads them without blocking.
pub fn from_values(
    values: Vec<Value>,
    trust: &CredentialTrust,
    key: Id,
    user: &str,
    realm: &str,
) -> Result<Option<Credential>, Error> {
    let newest = values
        .into_iter()
        .filter(|v| v.writer == RECORD_LABEL && trust.admins.contains(&v.owner))
        .max_by_key(|v| v.version);
    let Some(v) = newest else {
        return Ok(None);
    };
    let plain = open(&trust.key, key, &v.data).ok_or_else(|| {
        Error::Unauthorized("the credential record does not open with this credentials_key".into())
    })?;
    match Credential::decode(&plain) {
        Some(c) if c.user == user && c.realm == realm => Ok(Some(c)),
        _ => Err(Error::Unauthorized(
            "the credential record is not this user's".into(),
        )),
    }
}

/// Stores a user's record and lists the user in the realm's index; the
/// store must sign with an administrator's writer key.
pub fn store(
    store: &mut impl DictStore,
    secret: &[u8; CREDENTIALS_KEY_LEN],
    cred: &Credential,
    lifetime: Duration,
) -> Result<(), Error> {
    check_names(&cred.user, &cred.realm)?;
    let key = record_key(&cred.user, &cred.realm);
    store.dict_put(
        key,
        RECORD_LABEL,
        &seal(secret, key, &cred.encode()),
        lifetime,
    )?;
    edit_index(store, secret, &cred.user, &cred.realm, lifetime, true)
}

/// Removes a user's record and its index line. `Ok(false)`: there was no record of ours.
pub fn remove(
    store: &mut impl DictStore,
    secret: &[u8; CREDENTIALS_KEY_LEN],
    user: &str,
    realm: &str,
    index_lifetime: Duration,
) -> Result<bool, Error> {
    check_names(user, realm)?;
    let key = record_key(user, realm);
    let me = store.owner()?;
    let had = store
        .dict_get(key)?
        .iter()
        .any(|v| v.writer == RECORD_LABEL && v.owner == me);
    if had {
        store.dict_remove(key, RECORD_LABEL)?;
    }
    edit_index(store, secret, user, realm, index_lifetime, false)?;
    Ok(had)
}

/// The users of a realm that the admins listed, sorted.
pub fn list(
    store: &mut impl DictStore,
    trust: &CredentialTrust,
    realm: &str,
) -> Result<Vec<String>, Error> {
    check_names("x", realm)?;
    let mut users = Vec::new();
    for shard in 0..INDEX_SHARDS {
        let key = index_shard_key(realm, shard);
        for v in store.dict_get(key)? {
            if v.writer != INDEX_LABEL || !trust.admins.contains(&v.owner) {
                continue;
            }
            let plain = open(&trust.key, key, &v.data).ok_or_else(|| {
                Error::Unauthorized(
                    "the realm's index does not open with this credentials_key".into(),
                )
            })?;
            users.extend(index_names(&plain));
        }
    }
    users.sort();
    users.dedup();
    Ok(users)
}

fn index_names(plain: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(plain)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Adds or drops `user` in its shard of the realm's index (this writer's entry).
fn edit_index(
    store: &mut impl DictStore,
    secret: &[u8; CREDENTIALS_KEY_LEN],
    user: &str,
    realm: &str,
    lifetime: Duration,
    add: bool,
) -> Result<(), Error> {
    let key = index_key(user, realm);
    let me = store.owner()?;
    let mut names = Vec::new();
    for v in store.dict_get(key)? {
        if v.writer == INDEX_LABEL && v.owner == me {
            let plain = open(secret, key, &v.data).ok_or_else(|| {
                Error::Unauthorized(
                    "the realm's index does not open with this credentials_key".into(),
                )
            })?;
            names = index_names(&plain);
        }
    }
    let before = names.len();
    names.retain(|n| n != user);
    if add {
        names.push(user.to_string());
    } else if names.len() == before {
        return Ok(());
    }
    if names.is_empty() {
        store.dict_remove(key, INDEX_LABEL)?;
        return Ok(());
    }
    names.sort();
    let sealed = seal(secret, key, names.join("\n").as_bytes());
    if store
        .value_limit()
        .is_some_and(|limit| sealed.len() > limit)
    {
        return Err(Error::Full);
    }
    store.dict_put(key, INDEX_LABEL, &sealed, lifetime)?;
    Ok(())
}

#[cfg(test)]
#[path = "credentials_tests.rs"]
mod tests;
