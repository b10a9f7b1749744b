//! SIP and tel URIs as a registrar needs them: parsing, the equivalence rules
//! of RFC 3261 §19.1.4, and the canonical address-of-record of §10.3.
//!
//! Deliberate choices (documented in docs/SIP.md):
//! - `sip:` and `sips:` URIs are never equivalent (§19.1.4), but they name the
//!   same address-of-record: the AOR key is always written `sip:` (RFC 5630
//!   §3.1.3 keeps one registration for both); a `sips` contact is kept as is.
//! - The AOR drops the port: it names a user of a domain, not a listening
//!   socket. Full URI comparison keeps §19.1.4's rule that an omitted port and
//!   an explicit default port differ.
//! - `tel:` numbers compare without visual separators (RFC 3966 §4);
//!   a local number keeps its `phone-context`.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uri {
    pub scheme: Scheme,
    /// Unescaped user part (case-sensitive); for `tel:` the number.
    pub user: Option<String>,
    pub password: Option<String>,
    /// Lower-cased host (IPv6 with brackets); empty for `tel:`.
    pub host: String,
    pub port: Option<u16>,
    /// Parameters with lower-cased names; values unescaped, case kept.
    pub params: Vec<(String, Option<String>)>,
    /// Headers (`?a=b&c=d`), names lower-cased, values unescaped.
    pub headers: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UriError(pub String);

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad URI: {}", self.0)
    }
}

impl std::error::Error for UriError {}

/// Longest URI accepted (a SIP URI is rarely over 256 bytes).
pub const MAX_URI_LEN: usize = 1024;

fn bad(s: impl Into<String>) -> UriError {
    UriError(s.into())
}

/// Decodes `%HH` escapes; a malformed escape or non-UTF-8 result is an error.
fn unescape(s: &str) -> Result<String, UriError> {
    if !s.contains('%') {
        return Ok(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad("malformed %-escape"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad("escape decodes to invalid UTF-8"))
}

/// Escapes what cannot appear literally in a user part of our output.
fn escape(s: &str) -> String {
    escape_except(s, "-_.!~*'()&=+$,;?/")
}

/// Escapes what cannot appear literally in a parameter value of our output.
fn escape_param(s: &str) -> String {
    escape_except(s, "-_.!~*'()+$,/:[]&")
}

fn escape_except(s: &str, literal: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || literal.contains(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

fn valid_host(h: &str) -> bool {
    if let Some(inner) = h.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
        && !h.starts_with('.')
        && !h.starts_with('-')
}

impl Uri {
    /// Parses `sip:`, `sips:` or `tel:` URIs (scheme case-insensitive); any
    /// other input is an error, never a panic. URIs are ASCII (RFC 3261 §25:
    /// other characters travel %-escaped), and the canonical AOR of an
    /// accepted URI is itself within the length limit, so it parses again.
    pub fn parse(s: &str) -> Result<Uri, UriError> {
        let uri = Self::parse_unchecked(s)?;
        if uri.aor().len() > MAX_URI_LEN {
            return Err(bad("too long once canonical"));
        }
        Ok(uri)
    }

    fn parse_unchecked(s: &str) -> Result<Uri, UriError> {
        let s = s.trim();
        if s.len() > MAX_URI_LEN {
            return Err(bad("too long"));
        }
        if !s.is_ascii() {
            return Err(bad("non-ASCII characters (escape them as %XX)"));
        }
        if s.bytes().any(|c| c.is_ascii_control() || c == b' ') {
            return Err(bad("contains spaces or control characters"));
        }
        let colon = s.find(':').ok_or_else(|| bad("no scheme"))?;
        let scheme = match s[..colon].to_ascii_lowercase().as_str() {
            "sip" => Scheme::Sip,
            "sips" => Scheme::Sips,
            "tel" => Scheme::Tel,
            other => return Err(bad(format!("unsupported scheme {other:?}"))),
        };
        let rest = &s[colon + 1..];
        if scheme == Scheme::Tel {
            return Self::parse_tel(rest);
        }
        // '@' cannot appear unescaped in a user or password (which may hold
        // ';' and '?'), so the first one ends the userinfo.
        let (userinfo, hostpart) = match rest.find('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (hostpart, headers) = match hostpart.split_once('?') {
            Some((r, h)) => (r, Self::parse_headers(h)?),
            None => (hostpart, Vec::new()),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(ui) => {
                let (u, p) = match ui.split_once(':') {
                    Some((u, p)) => (u, Some(unescape(p)?)),
                    None => (ui, None),
                };
                if u.is_empty() {
                    return Err(bad("empty user"));
                }
                (Some(unescape(u)?), p)
            }
        };
        let mut parts = hostpart.split(';');
        let hostport = parts.next().unwrap_or("");
        let (host, port) = if let Some(end) = hostport.find(']') {
            let host = &hostport[..=end];
            let port = match &hostport[end + 1..] {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| bad("junk after IPv6 host"))?,
                ),
            };
            (host, port)
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        let host = host.to_ascii_lowercase();
        if !valid_host(&host) {
            return Err(bad(format!("bad host {host:?}")));
        }
        let port = match port {
            None => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| bad(format!("bad port {p:?}")))?,
            ),
        };
        let mut params = Vec::new();
        for p in parts {
            if p.is_empty() {
                continue;
            }
            let (name, value) = match p.split_once('=') {
                Some((n, v)) => (n, Some(unescape(v)?)),
                None => (p, None),
            };
            if name.is_empty() {
                return Err(bad("empty parameter name"));
            }
            let name = unescape(name)?.to_ascii_lowercase();
            if params.iter().any(|(n, _): &(String, _)| *n == name) {
                return Err(bad(format!("parameter {name} given twice")));
            }
            params.push((name, value));
        }
        Ok(Uri {
            scheme,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }

    fn parse_headers(h: &str) -> Result<Vec<(String, String)>, UriError> {
        let mut out = Vec::new();
        for kv in h.split('&').filter(|s| !s.is_empty()) {
            let (n, v) = kv.split_once('=').unwrap_or((kv, ""));
            out.push((unescape(n)?.to_ascii_lowercase(), unescape(v)?));
        }
        Ok(out)
    }

    fn parse_tel(rest: &str) -> Result<Uri, UriError> {
        let mut parts = rest.split(';');
        let raw = parts.next().unwrap_or("");
        let global = raw.starts_with('+');
        let digits: String = raw
            .chars()
            .filter(|c| !matches!(c, '-' | '.' | '(' | ')'))
            .collect();
        let body = digits.strip_prefix('+').unwrap_or(&digits);
        if body.is_empty()
            || !body
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == '*' || c == '#')
        {
            return Err(bad(format!("bad telephone number {raw:?}")));
        }
        let mut params = Vec::new();
        for p in parts.filter(|p| !p.is_empty()) {
            let (n, v) = match p.split_once('=') {
                Some((n, v)) => (n.to_ascii_lowercase(), Some(unescape(v)?)),
                None => (p.to_ascii_lowercase(), None),
            };
            params.push((n, v));
        }
        // RFC 3966: a local number is only meaningful with a (non-empty) context.
        let context = params
            .iter()
            .any(|(n, v)| n == "phone-context" && v.as_deref().is_some_and(|v| !v.is_empty()));
        if !global && !context {
            return Err(bad("a local tel number needs a phone-context"));
        }
        Ok(Uri {
            scheme: Scheme::Tel,
            user: Some(digits.to_ascii_uppercase()),
            password: None,
            host: String::new(),
            port: None,
            params,
            headers: Vec::new(),
        })
    }

    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_deref())
    }

    /// RFC 3261 §19.1.4 equivalence.
    pub fn equivalent(&self, other: &Uri) -> bool {
        if self.scheme != other.scheme {
            return false;
        }
        if self.scheme == Scheme::Tel {
            // RFC 3966 §4: numbers without separators, parameters as a set
            // (names and values compared case-insensitively).
            let norm = |u: &Uri| {
                let mut p: Vec<(String, Option<String>)> = u
                    .params
                    .iter()
                    .map(|(n, v)| (n.clone(), v.as_ref().map(|v| v.to_ascii_lowercase())))
                    .collect();
                p.sort();
                p
            };
            return self.user == other.user && norm(self) == norm(other);
        }
        if self.user != other.user
            || self.password != other.password
            || self.host != other.host
            || self.port != other.port
        {
            return false;
        }
        // user, ttl, method, maddr and transport must match if either has them;
        // other parameters must match only where both have them.
        const STRICT: [&str; 5] = ["user", "ttl", "method", "maddr", "transport"];
        let eq = |a: Option<&str>, b: Option<&str>| match (a, b) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            (None, None) => true,
            _ => false,
        };
        for (name, value) in &self.params {
            match other.param(name) {
                Some(v) if !eq(value.as_deref(), v) => return false,
                Some(_) => {}
                None if STRICT.contains(&name.as_str()) => return false,
                None => {}
            }
        }
        for (name, _) in &other.params {
            if STRICT.contains(&name.as_str()) && self.param(name).is_none() {
                return false;
            }
        }
        // Headers: all must be present in both with equal values.
        let mut a = self.headers.clone();
        let mut b = other.headers.clone();
        a.sort();
        b.sort();
        a == b
    }

    /// The canonical address-of-record (RFC 3261 §10.3): parameters,
    /// headers, password and port removed, escapes decoded, `sips` written as
    /// `sip`, host lower-case. The key under which bindings are stored.
    pub fn aor(&self) -> String {
        match self.scheme {
            Scheme::Tel => {
                let mut s = format!("tel:{}", self.user.as_deref().unwrap_or(""));
                if let Some(Some(ctx)) = self.param("phone-context") {
                    s.push_str(";phone-context=");
                    s.push_str(&escape_param(&ctx.to_ascii_lowercase()));
                }
                s
            }
            Scheme::Sip | Scheme::Sips => match &self.user {
                Some(u) => format!("sip:{}@{}", escape(u), self.host),
                None => format!("sip:{}", self.host),
            },
        }
    }

    /// A string equal for two URIs exactly when they are [`equivalent`](Self::equivalent)
    /// after dropping the parameters that only one side might carry (all but
    /// user, ttl, method, maddr, transport): the identity of a contact binding.
    pub fn contact_identity(&self) -> String {
        self.to_string_with(|n| ["user", "ttl", "method", "maddr", "transport"].contains(&n))
    }

    fn to_string_with(&self, keep: impl Fn(&str) -> bool) -> String {
        let mut s = String::new();
        s.push_str(match self.scheme {
            Scheme::Sip => "sip:",
            Scheme::Sips => "sips:",
            Scheme::Tel => "tel:",
        });
        if self.scheme == Scheme::Tel {
            s.push_str(self.user.as_deref().unwrap_or(""));
        } else {
            if let Some(u) = &self.user {
                s.push_str(&escape(u));
                if let Some(p) = &self.password {
                    s.push(':');
                    s.push_str(&escape(p));
                }
                s.push('@');
            }
            s.push_str(&self.host);
            if let Some(p) = self.port {
                s.push_str(&format!(":{p}"));
            }
        }
        let mut params: Vec<&(String, Option<String>)> =
            self.params.iter().filter(|(n, _)| keep(n)).collect();
        params.sort();
        for (n, v) in params {
            s.push(';');
            s.push_str(&escape(n));
            if let Some(v) = v {
                s.push('=');
                s.push_str(&escape(&v.to_ascii_lowercase()));
            }
        }
        s
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.to_string_with(|_| true);
        if !self.headers.is_empty() {
            s.push('?');
            let h: Vec<String> = self
                .headers
                .iter()
                .map(|(n, v)| format!("{}={}", escape(n), escape(v)))
                .collect();
            s.push_str(&h.join("&"));
        }
        f.write_str(&s)
    }
}

/// The canonical AOR of a URI given as text.
pub fn canonical_aor(uri: &str) -> Result<String, UriError> {
    Uri::parse(uri).map(|u| u.aor())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eqv(a: &str, b: &str) -> bool {
        Uri::parse(a).unwrap().equivalent(&Uri::parse(b).unwrap())
    }

    /// The pairs of RFC 3261 §19.1.4.
    #[test]
    fn rfc3261_equivalent_pairs() {
        for (a, b) in [
            (
                "sip:%61lice@atlanta.com;transport=TCP",
                "sip:alice@AtLanTa.CoM;Transport=tcp",
            ),
            ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
            ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
            (
                "sip:carol@chicago.com;newparam=5",
                "sip:carol@chicago.com;security=on",
            ),
            (
                "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
                "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
            ),
            (
                "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
                "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
            ),
        ] {
            assert!(eqv(a, b), "{a} == {b}");
            assert!(eqv(b, a), "{b} == {a}");
        }
    }

    #[test]
    fn rfc3261_unequal_pairs() {
        for (a, b) in [
            (
                "SIP:ALICE@AtLanTa.CoM;Transport=udp",
                "sip:alice@AtLanTa.CoM;Transport=UDP",
            ),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
            (
                "sip:bob@biloxi.com",
                "sip:bob@biloxi.com:6000;transport=tcp",
            ),
            (
                "sip:carol@chicago.com",
                "sip:carol@chicago.com?Subject=next%20meeting",
            ),
            ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
            ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
            ("sip:alice:secret@atlanta.com", "sip:alice@atlanta.com"),
        ] {
            assert!(!eqv(a, b), "{a} != {b}");
            assert!(!eqv(b, a), "{b} != {a}");
        }
    }

    #[test]
    fn aor_canonical_form() {
        for (uri, aor) in [
            (
                "sip:%61lice@AtLanTa.CoM:5060;transport=tcp",
                "sip:alice@atlanta.com",
            ),
            ("SIPS:alice@atlanta.com", "sip:alice@atlanta.com"),
            (
                "sip:alice@atlanta.com;user=phone?subject=x",
                "sip:alice@atlanta.com",
            ),
            ("sip:Alice@atlanta.com", "sip:Alice@atlanta.com"),
            ("sip:atlanta.com", "sip:atlanta.com"),
            ("sip:alice@[2001:DB8::1]:5070", "sip:alice@[2001:db8::1]"),
            ("tel:+1-201-555-0123", "tel:+12015550123"),
            (
                "tel:7042;phone-context=Example.com",
                "tel:7042;phone-context=example.com",
            ),
            ("sip:a%20b@x.org", "sip:a%20b@x.org"),
            (
                "sip:alice;day=tuesday@atlanta.com",
                "sip:alice;day=tuesday@atlanta.com",
            ),
        ] {
            assert_eq!(canonical_aor(uri).unwrap(), aor, "{uri}");
        }
        // User parts are case-sensitive.
        assert_ne!(
            canonical_aor("sip:alice@x.org").unwrap(),
            canonical_aor("sip:ALICE@x.org").unwrap()
        );
    }

    #[test]
    fn tel_numbers_ignore_visual_separators() {
        assert!(eqv("tel:+1-201-555-0123", "tel:+1.201.555.0123"));
        assert!(eqv("tel:+1(201)5550123", "tel:+12015550123"));
        assert!(!eqv("tel:+12015550123", "tel:+12015550124"));
        assert!(!eqv("tel:+12015550123", "sip:+12015550123@x.org"));
    }

    #[test]
    fn contact_identity_matches_equivalence() {
        let a = Uri::parse("sip:alice@PC33.atlanta.com:5060;transport=TCP;ob").unwrap();
        let b = Uri::parse("sip:alice@pc33.atlanta.com:5060;transport=tcp").unwrap();
        let c = Uri::parse("sip:alice@pc33.atlanta.com:5061;transport=tcp").unwrap();
        assert_eq!(a.contact_identity(), b.contact_identity());
        assert_ne!(a.contact_identity(), c.contact_identity());
    }

    #[test]
    fn malformed_uris_are_errors() {
        for s in [
            "",
            "alice@atlanta.com",
            "http://x.org",
            "sip:",
            "sip:@x.org",
            "sip:alice@",
            "sip:alice@x.org:0",
            "sip:alice@x.org:99999",
            "sip:alice@x.org:port",
            "sip:al ice@x.org",
            "sip:alice@x.org;a=1;a=2",
            "sip:%zz@x.org",
            "sip:%ff@x.org",
            "sip:alice@[::1",
            "sip:alice@[zz::1]",
            "tel:12345",
            "tel:+",
            "tel:+12-ab-x",
        ] {
            assert!(Uri::parse(s).is_err(), "{s:?} should not parse");
        }
        assert!(Uri::parse(&format!("sip:{}@x.org", "a".repeat(2000))).is_err());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,200}") {
            let _ = Uri::parse(&s);
        }

        #[test]
        fn display_round_trips(user in "[a-zA-Z0-9%_.!~]{1,20}", host in "[a-z0-9]{1,10}\\.[a-z]{2,5}", port in proptest::option::of(1u16..), t in proptest::option::of("udp|tcp|tls")) {
            let mut s = format!("sip:{user}@{host}");
            if let Some(p) = port { s.push_str(&format!(":{p}")); }
            if let Some(t) = t { s.push_str(&format!(";transport={t}")); }
            if let Ok(u) = Uri::parse(&s) {
                let again = Uri::parse(&u.to_string()).unwrap();
                proptest::prop_assert!(u.equivalent(&again));
                proptest::prop_assert_eq!(u.aor(), again.aor());
            }
        }
    }
}
