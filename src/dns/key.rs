//! TSIG keys (RFC 8945) and the text forms operators already have: the
//! `[alg:]name:secret` of `nsupdate -y` / `knsupdate -y`, a BIND key file
//! (`tsig-keygen`, `keymgr -t`) and a Knot `key:` section.

use super::DnsError;
use base64ct::{Base64, Encoding};
use std::fmt;

/// The HMAC of a TSIG key. Only the SHA-2 ones: HMAC-MD5 and HMAC-SHA1 are
/// deprecated for TSIG (RFC 8945 §6) and Knot/BIND generate SHA-256 keys by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsigAlgorithm {
    HmacSha256,
    HmacSha512,
}

impl TsigAlgorithm {
    /// Parses "hmac-sha256", "HMAC-SHA512." and the like.
    pub fn parse(text: &str) -> Result<TsigAlgorithm, DnsError> {
        let t = text.trim().trim_end_matches('.').to_ascii_lowercase();
        match t.as_str() {
            "hmac-sha256" => Ok(TsigAlgorithm::HmacSha256),
            "hmac-sha512" => Ok(TsigAlgorithm::HmacSha512),
            _ => Err(DnsError::Invalid(format!(
                "unsupported TSIG algorithm '{}' (hmac-sha256 or hmac-sha512)",
                text.trim()
            ))),
        }
    }

    /// The algorithm's domain name as written in the TSIG RR.
    pub fn name(self) -> &'static str {
        match self {
            TsigAlgorithm::HmacSha256 => "hmac-sha256",
            TsigAlgorithm::HmacSha512 => "hmac-sha512",
        }
    }

    /// Length of the full (untruncated) MAC.
    pub fn mac_len(self) -> usize {
        match self {
            TsigAlgorithm::HmacSha256 => 32,
            TsigAlgorithm::HmacSha512 => 64,
        }
    }
}

impl fmt::Display for TsigAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A shared TSIG key: its name (a domain name, as the server knows it), HMAC and secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKey {
    pub name: String,
    pub algorithm: TsigAlgorithm,
    pub secret: Vec<u8>,
}

/// Never prints the secret (keys end up in logged configs and error chains).
impl fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &"<hidden>")
            .finish()
    }
}

impl TsigKey {
    /// Accepts `name:base64`, `alg:name:base64` (the `-y` argument of nsupdate
    /// and knsupdate; without an algorithm, hmac-sha256 as knsupdate assumes),
    /// a BIND key statement `key "name" { algorithm hmac-sha256; secret "..."; };`
    /// and a Knot `key:` section (`- id: name`, `algorithm:`, `secret:`).
    /// The first key of a file is taken.
    pub fn parse(text: &str) -> Result<TsigKey, DnsError> {
        let text = text.trim();
        let (name, alg, secret) = if text.contains('{') {
            parse_bind(text)?
        } else if text.lines().any(|l| l.trim_start().starts_with("secret:")) {
            parse_knot(text)?
        } else {
            parse_colon(text)?
        };
        let name = name.trim().trim_end_matches('.').to_string();
        super::msg::check_name(&name)
            .map_err(|e| DnsError::Invalid(format!("TSIG key name: {e}")))?;
        let algorithm = TsigAlgorithm::parse(&alg)?;
        let secret = Base64::decode_vec(secret.trim())
            .map_err(|_| DnsError::Invalid("TSIG secret is not valid base64".into()))?;
        if secret.is_empty() {
            return Err(DnsError::Invalid("TSIG secret is empty".into()));
        }
        Ok(TsigKey {
            name,
            algorithm,
            secret,
        })
    }
}

type Parts = (String, String, String);

fn parse_colon(text: &str) -> Result<Parts, DnsError> {
    let parts: Vec<&str> = text.split(':').collect();
    match parts.as_slice() {
        [name, secret] => Ok((name.to_string(), "hmac-sha256".into(), secret.to_string())),
        [alg, name, secret] => Ok((name.to_string(), alg.to_string(), secret.to_string())),
        _ => Err(DnsError::Invalid(
            "TSIG key: expected [algorithm:]name:secret or a BIND/Knot key file".into(),
        )),
    }
}

/// Tokens of BIND's configuration syntax: words, quoted strings and `{ } ;`,
/// comments (`#`, `//`, `/* */`) dropped.
fn bind_tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' | '}' | ';' => out.push(c.to_string()),
            '"' => {
                let s: String = chars.by_ref().take_while(|&c| c != '"').collect();
                out.push(s);
            }
            '#' => while chars.next().is_some_and(|c| c != '\n') {},
            '/' if chars.peek() == Some(&'/') => while chars.next().is_some_and(|c| c != '\n') {},
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
            }
            c if c.is_whitespace() => {}
            c => {
                let mut s = c.to_string();
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || matches!(n, '{' | '}' | ';' | '"') {
                        break;
                    }
                    s.push(n);
                    chars.next();
                }
                out.push(s);
            }
        }
    }
    out
}

fn parse_bind(text: &str) -> Result<Parts, DnsError> {
    let bad = |what: &str| DnsError::Invalid(format!("BIND key file: {what}"));
    let tokens = bind_tokens(text);
    let start = tokens
        .iter()
        .position(|t| t == "key")
        .ok_or_else(|| bad("no 'key' statement"))?;
    let name = tokens.get(start + 1).ok_or_else(|| bad("no key name"))?;
    if tokens.get(start + 2).map(String::as_str) != Some("{") {
        return Err(bad("expected '{' after the key name"));
    }
    let (mut alg, mut secret) = (None, None);
    let mut i = start + 3;
    while i < tokens.len() && tokens[i] != "}" {
        let value = tokens.get(i + 1).cloned();
        match tokens[i].as_str() {
            "algorithm" => alg = value,
            "secret" => secret = value,
            _ => {}
        }
        // Skip to the statement's end.
        while i < tokens.len() && tokens[i] != ";" && tokens[i] != "}" {
            i += 1;
        }
        if i < tokens.len() && tokens[i] == ";" {
            i += 1;
        }
    }
    Ok((
        name.clone(),
        alg.ok_or_else(|| bad("no algorithm"))?,
        secret.ok_or_else(|| bad("no secret"))?,
    ))
}

fn parse_knot(text: &str) -> Result<Parts, DnsError> {
    let (mut name, mut alg, mut secret) = (None, None, None);
    for line in text.lines() {
        let line = line.trim().trim_start_matches('-').trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim().trim_matches(|c| c == '"' || c == '\'').to_string();
        match k.trim() {
            // A second key starts: the first one is complete.
            "id" if name.is_some() => break,
            "id" => name = Some(v),
            "algorithm" => alg = Some(v),
            "secret" => secret = Some(v),
            _ => {}
        }
    }
    let bad = |what: &str| DnsError::Invalid(format!("Knot key section: no {what}"));
    Ok((
        name.ok_or_else(|| bad("id"))?,
        alg.ok_or_else(|| bad("algorithm"))?,
        secret.ok_or_else(|| bad("secret"))?,
    ))
}
