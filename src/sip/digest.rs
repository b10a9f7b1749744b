//! SIP digest authentication, server side (RFC 3261 §22.4 with the hashes
//! of RFC 7616 that RFC 8760 brings to SIP): HA1s, the `Authorization`
//! header, stateless nonces and the check of a response. Pure logic: the
//! caller supplies the time and the HA1 (from the overlay, `credentials`).

use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};

/// The longest `Authorization` value taken, and the longest parameter in it:
/// a UA's real values are far shorter, so longer ones are refused (400),
/// never truncated.
pub const MAX_HEADER_LEN: usize = 4096;
pub const MAX_PARAM_LEN: usize = 512;

/// A digest hash algorithm (RFC 8760 §2.3; the `-sess` variants are not offered).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    pub const ALL: [Algorithm; 2] = [Algorithm::Md5, Algorithm::Sha256];

    /// The name in `algorithm=`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// The algorithm an `algorithm=` names (case-insensitive); None if unsupported.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// Bytes of a hash; its hex form has twice as many digits.
    pub fn hash_len(self) -> usize {
        match self {
            Algorithm::Md5 => 16,
            Algorithm::Sha256 => 32,
        }
    }

    /// The hash of `parts` joined with ':', in lower-case hex.
    fn hex(self, parts: &[&[u8]]) -> String {
        fn feed<D: Digest>(mut d: D, parts: &[&[u8]]) -> Vec<u8> {
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p);
            }
            d.finalize().to_vec()
        }
        let bytes = match self {
            Algorithm::Md5 => feed(Md5::new(), parts),
            Algorithm::Sha256 => feed(Sha256::new(), parts),
        };
        crate::owner::hex(&bytes)
    }
}

/// HA1 = H(user:realm:password), lower-case hex: what the overlay keeps
/// instead of the password.
pub fn ha1(alg: Algorithm, user: &str, realm: &str, password: &str) -> String {
    alg.hex(&[user.as_bytes(), realm.as_bytes(), password.as_bytes()])
}

/// Why an `Authorization` value cannot be checked (the request gets 400).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DigestError {
    /// Not the Digest scheme.
    NotDigest,
    /// The header or one of its parameters is longer than we take.
    TooLong,
    /// Unparsable, a parameter repeated or a required one missing.
    Malformed(&'static str),
    /// An algorithm or qop this server does not implement.
    Unsupported(String),
}

impl std::fmt::Display for DigestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DigestError::NotDigest => f.write_str("not a Digest authorization"),
            DigestError::TooLong => f.write_str("authorization header too long"),
            DigestError::Malformed(why) => write!(f, "malformed authorization: {why}"),
            DigestError::Unsupported(what) => write!(f, "unsupported digest {what}"),
        }
    }
}

/// The parameters of a Digest `Authorization` (RFC 3261 §25.1 `digest-response`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Option<String>,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
}

impl Credentials {
    /// Parses an `Authorization` (or `Proxy-Authorization`) value.
    pub fn parse(value: &str) -> Result<Credentials, DigestError> {
        if value.len() > MAX_HEADER_LEN {
            return Err(DigestError::TooLong);
        }
        let v = value.trim();
        let (scheme, rest) =
            v.split_at(v.find(|c: char| c.is_ascii_whitespace()).unwrap_or(v.len()));
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(DigestError::NotDigest);
        }
        let mut c = Credentials::default();
        let mut seen: Vec<String> = Vec::new();
        let mut rest = rest.trim_start();
        while !rest.is_empty() {
            let eq = rest
                .find('=')
                .ok_or(DigestError::Malformed("parameter without '='"))?;
            let name = rest[..eq].trim().to_ascii_lowercase();
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(DigestError::Malformed("bad parameter name"));
            }
            let (val, after) = param_value(rest[eq + 1..].trim_start())?;
            if val.len() > MAX_PARAM_LEN {
                return Err(DigestError::TooLong);
            }
            if seen.contains(&name) {
                return Err(DigestError::Malformed("parameter repeated"));
            }
            let slot = match name.as_str() {
                "username" => Some(&mut c.username),
                "realm" => Some(&mut c.realm),
                "nonce" => Some(&mut c.nonce),
                "uri" => Some(&mut c.uri),
                "response" => Some(&mut c.response),
                _ => None,
            };
            match slot {
                Some(s) => *s = val,
                None => {
                    let opt = match name.as_str() {
                        "algorithm" => Some(&mut c.algorithm),
                        "qop" => Some(&mut c.qop),
                        "nc" => Some(&mut c.nc),
                        "cnonce" => Some(&mut c.cnonce),
                        "opaque" => Some(&mut c.opaque),
                        _ => None, // extensions (auth-param) are ignored
                    };
                    if let Some(o) = opt {
                        *o = Some(val);
                    }
                }
            }
            seen.push(name);
            let after = after.trim_start();
            rest = match after.strip_prefix(',') {
                Some(r) => r.trim_start(),
                None if after.is_empty() => after,
                None => return Err(DigestError::Malformed("parameters not separated by ','")),
            };
        }
        for (name, v) in [
            ("username", &c.username),
            ("realm", &c.realm),
            ("nonce", &c.nonce),
            ("uri", &c.uri),
            ("response", &c.response),
        ] {
            if v.is_empty() && !seen.iter().any(|s| s == name) {
                return Err(DigestError::Malformed(match name {
                    "username" => "no username",
                    "realm" => "no realm",
                    "nonce" => "no nonce",
                    "uri" => "no uri",
                    _ => "no response",
                }));
            }
        }
        match c.qop.as_deref() {
            None => {}
            Some(q) if q.eq_ignore_ascii_case("auth") && (c.nc.is_none() || c.cnonce.is_none()) => {
                return Err(DigestError::Malformed("qop without nc or cnonce"));
            }
            Some(q) if q.eq_ignore_ascii_case("auth") => {}
            Some(q) => return Err(DigestError::Unsupported(format!("qop {q:?}"))),
        }
        let alg = c.algorithm()?;
        // A response that cannot be a hash of the algorithm is malformed, not a wrong password.
        if c.response.len() != 2 * alg.hash_len()
            || !c.response.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(DigestError::Malformed(
                "response is not a hash of the algorithm",
            ));
        }
        Ok(c)
    }

    /// The algorithm the UA answered with (MD5 when it names none, RFC 7616 §3.4).
    pub fn algorithm(&self) -> Result<Algorithm, DigestError> {
        match &self.algorithm {
            None => Ok(Algorithm::Md5),
            Some(a) => Algorithm::from_name(a)
                .ok_or_else(|| DigestError::Unsupported(format!("algorithm {a:?}"))),
        }
    }

    /// Whether `response` is right for `ha1` (lower-case hex, of this
    /// response's algorithm) and `method`. Compared in constant time.
    pub fn response_matches(&self, method: &str, ha1: &str) -> bool {
        let Ok(alg) = self.algorithm() else {
            return false;
        };
        let ha2 = alg.hex(&[method.as_bytes(), self.uri.as_bytes()]);
        let expected = match (&self.qop, &self.nc, &self.cnonce) {
            (Some(qop), Some(nc), Some(cnonce)) => alg.hex(&[
                ha1.as_bytes(),
                self.nonce.as_bytes(),
                nc.as_bytes(),
                cnonce.as_bytes(),
                qop.to_ascii_lowercase().as_bytes(),
                ha2.as_bytes(),
            ]),
            _ => alg.hex(&[ha1.as_bytes(), self.nonce.as_bytes(), ha2.as_bytes()]),
        };
        let got = self.response.to_ascii_lowercase();
        got.len() == expected.len()
            && got
                .bytes()
                .zip(expected.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// A parameter value: a quoted string (backslash escapes undone) or a token;
/// and what follows it.
fn param_value(s: &str) -> Result<(String, &str), DigestError> {
    if let Some(body) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.char_indices();
        while let Some((i, ch)) = chars.next() {
            match ch {
                '"' => return Ok((out, &body[i + 1..])),
                '\\' => match chars.next() {
                    Some((_, e)) => out.push(e),
                    None => break,
                },
                _ => out.push(ch),
            }
            if out.len() > MAX_PARAM_LEN {
                return Err(DigestError::TooLong);
            }
        }
        Err(DigestError::Malformed("unterminated quoted string"))
    } else {
        let end = s.find([',', ' ', '\t']).unwrap_or(s.len());
        if end == 0 {
            return Err(DigestError::Malformed("empty parameter value"));
        }
        Ok((s[..end].to_string(), &s[end..]))
    }
}

/// Stateless nonces: the issue time and a MAC over it and the realm, so any
/// server holding the same secret accepts them, and none needs memory per
/// challenge. A nonce older than the lifetime is stale: the UA is
/// challenged again (`stale=true`), so an old captured answer is worthless.
#[derive(Clone)]
pub struct NonceKey([u8; 32]);

/// What a nonce turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonceState {
    Fresh,
    /// Ours, but older than the lifetime.
    Stale,
    /// Not made with our secret (or for another realm), or from the future.
    Invalid,
}

/// How far in the future a nonce's time may lie (servers sharing a secret
/// with slightly different clocks).
const NONCE_DRIFT_S: u64 = 3;
const NONCE_MAC_LEN: usize = 16;

impl NonceKey {
    pub fn new(secret: [u8; 32]) -> NonceKey {
        NonceKey(secret)
    }

    pub fn random() -> NonceKey {
        NonceKey(crate::owner::random_secret())
    }

    fn mac(&self, realm: &str, issued_s: u64) -> [u8; NONCE_MAC_LEN] {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        m.update(b"chordsip-nonce-1");
        m.update(&issued_s.to_be_bytes());
        m.update(realm.as_bytes());
        let full = m.finalize().into_bytes();
        full[..NONCE_MAC_LEN].try_into().expect("16 bytes")
    }

    /// A nonce for `realm` issued at `now_s` (Unix seconds): 48 hex digits.
    pub fn issue(&self, realm: &str, now_s: u64) -> String {
        let mut n = crate::owner::hex(&now_s.to_be_bytes());
        n.push_str(&crate::owner::hex(&self.mac(realm, now_s)));
        n
    }

    pub fn check(&self, nonce: &str, realm: &str, now_s: u64, lifetime_s: u64) -> NonceState {
        if nonce.len() != 16 + 2 * NONCE_MAC_LEN || !nonce.is_ascii() {
            return NonceState::Invalid;
        }
        let Ok(issued) = u64::from_str_radix(&nonce[..16], 16) else {
            return NonceState::Invalid;
        };
        let want = crate::owner::hex(&self.mac(realm, issued));
        let got = nonce[16..].to_ascii_lowercase();
        let differs = got
            .bytes()
            .zip(want.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if differs != 0 || issued > now_s + NONCE_DRIFT_S {
            NonceState::Invalid
        } else if now_s.saturating_sub(issued) > lifetime_s {
            NonceState::Stale
        } else {
            NonceState::Fresh
        }
    }
}

/// The value of a `WWW-Authenticate` challenge (qop=auth, RFC 3261 §22.4).
pub fn challenge(realm: &str, nonce: &str, alg: Algorithm, stale: bool) -> String {
    let mut c = format!(
        "Digest realm=\"{}\", nonce=\"{nonce}\", qop=\"auth\", algorithm={}",
        quote(realm),
        alg.name()
    );
    if stale {
        c.push_str(", stale=true");
    }
    c
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// What a registrar does with a request, after checking its credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Authenticated as this user, who may act for the AOR.
    Ok { user: String },
    /// No credentials for this realm, or on a nonce this server did not
    /// issue: 401 with a challenge.
    Challenge,
    /// Credentials on an expired nonce: 401 with a challenge saying `stale=true`.
    Stale,
    /// Wrong password or unknown user: 403.
    Forbidden,
    /// Authenticated, but as another user than the AOR's: 403.
    NotYours { user: String },
    /// An unparsable Authorization header: 400.
    Malformed(DigestError),
}

impl Verdict {
    /// The SIP status and reason phrase the request gets (200 for `Ok`).
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            Verdict::Ok { .. } => (200, "OK"),
            Verdict::Challenge | Verdict::Stale => (401, "Unauthorized"),
            Verdict::Forbidden => (403, "Forbidden"),
            Verdict::NotYours { .. } => (403, "Forbidden (not your AOR)"),
            Verdict::Malformed(_) => (400, "Bad Request (Authorization)"),
        }
    }
}

/// How a registrar challenges and checks.
#[derive(Clone)]
pub struct AuthSettings {
    pub nonces: NonceKey,
    pub nonce_lifetime_s: u64,
    /// What challenges offer; answers with any supported algorithm are checked.
    pub algorithm: Algorithm,
}

/// Checks the credentials a request for `aor_user@realm` carries.
/// `authorization` is the request's Authorization value for this realm
/// (None when it has none); `ha1_of(user, algorithm)` fetches a user's HA1
/// (None: no such user, or none for that algorithm).
pub fn authenticate<E>(
    settings: &AuthSettings,
    now_s: u64,
    method: &str,
    aor_user: &str,
    realm: &str,
    authorization: Option<&str>,
    mut ha1_of: impl FnMut(&str, Algorithm) -> Result<Option<String>, E>,
) -> Result<Verdict, E> {
    match precheck(settings, now_s, realm, authorization) {
        Precheck::Done(v) => Ok(v),
        Precheck::NeedHa1(answer) => {
            let ha1 = ha1_of(&answer.creds.username, answer.algorithm)?;
            Ok(answer.verdict(method, aor_user, ha1.as_deref()))
        }
    }
}

/// The part of [`authenticate`] that needs no stored credential: a verdict
/// already, or the answer to check against the user's HA1, which a caller
/// that must not block fetches meanwhile.
pub enum Precheck {
    Done(Verdict),
    NeedHa1(Box<Answer>),
}

/// Well-formed credentials on a fresh nonce of ours, waiting for their HA1.
pub struct Answer {
    creds: Credentials,
    algorithm: Algorithm,
}

impl Answer {
    /// The user whose HA1 decides.
    pub fn username(&self) -> &str {
        &self.creds.username
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The verdict given the user's HA1 (None: no such user, or none for
    /// the algorithm).
    pub fn verdict(self, method: &str, aor_user: &str, ha1: Option<&str>) -> Verdict {
        let Some(ha1) = ha1 else {
            return Verdict::Forbidden;
        };
        if !self.creds.response_matches(method, ha1) {
            return Verdict::Forbidden;
        }
        if self.creds.username != aor_user {
            return Verdict::NotYours {
                user: self.creds.username,
            };
        }
        Verdict::Ok {
            user: self.creds.username,
        }
    }
}

/// Everything [`authenticate`] checks before it needs the HA1.
pub fn precheck(
    settings: &AuthSettings,
    now_s: u64,
    realm: &str,
    authorization: Option<&str>,
) -> Precheck {
    let Some(value) = authorization.filter(|v| !v.trim().is_empty()) else {
        return Precheck::Done(Verdict::Challenge);
    };
    let creds = match Credentials::parse(value) {
        Ok(c) => c,
        Err(DigestError::NotDigest) => return Precheck::Done(Verdict::Challenge),
        Err(e) => return Precheck::Done(Verdict::Malformed(e)),
    };
    if creds.realm != realm {
        // credentials for another realm are none for ours
        return Precheck::Done(Verdict::Challenge);
    }
    match settings
        .nonces
        .check(&creds.nonce, realm, now_s, settings.nonce_lifetime_s)
    {
        // Another registrar's nonce (no shared secret) or a forged one: a
        // new challenge lets a real UA recover; it tells a forger nothing.
        NonceState::Invalid => return Precheck::Done(Verdict::Challenge),
        NonceState::Stale => return Precheck::Done(Verdict::Stale),
        NonceState::Fresh => {}
    }
    match creds.algorithm() {
        Ok(algorithm) => Precheck::NeedHa1(Box::new(Answer { creds, algorithm })),
        Err(e) => Precheck::Done(Verdict::Malformed(e)),
    }
}

#[cfg(test)]
#[path = "digest_tests.rs"]
mod tests;
