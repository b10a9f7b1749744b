//! Registrar bindings (RFC 3261 §10.3, RFC 5626) as dictionary entries: one
//! entry per binding under the key of the canonical AOR, so bindings of
//! different devices never overwrite each other, and storage expiry makes an
//! expired binding vanish on every replica.
//!
//! Pure logic: [`plan`] turns a REGISTER into puts and removals against the
//! bindings currently stored; the I/O lives in [`super::registrar`].

use super::bytes::{Reader, Writer};
use super::uri::{Uri, UriError};
use sha1::{Digest, Sha1};
use std::fmt;

/// One contact binding of an AOR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The contact URI as registered.
    pub contact: String,
    /// q-value in thousandths (RFC 3261 `q=0.5` is 500); default 1000.
    pub q: u16,
    /// `+sip.instance` (RFC 5626), without the angle brackets' quoting.
    pub instance: Option<String>,
    /// `reg-id` (RFC 5626): with the instance, identifies one flow.
    pub reg_id: Option<u32>,
    /// Path header values (RFC 3327), in order.
    pub path: Vec<String>,
    /// Source address the REGISTER came from, when it differs from the contact.
    pub received: Option<String>,
    pub call_id: String,
    pub cseq: u32,
    /// The writer key the binding is stored under (its slot's owner): set
    /// on bindings read from the overlay, `None` on the ones a REGISTER
    /// writes. Not part of the encoded value: the overlay's record
    /// ownership vouches for it.
    pub owner: Option<crate::owner::Owner>,
}

/// Why a REGISTER was refused; maps to a SIP status (400, 403, 423, 500...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterError {
    /// Malformed request (SIP 400).
    Bad(String),
    /// A binding with the same Call-ID already has this or a newer CSeq (SIP 500 per §10.3 step 7);
    /// the same request again (a retransmission) is not refused but changes nothing.
    OutOfOrder,
    /// More bindings than the AOR may hold (SIP 403 in Kamailio's registrar).
    TooManyBindings(usize),
    /// Expires shorter than the minimum (SIP 423 Interval Too Brief); carries the minimum.
    IntervalTooBrief(u32),
}

impl fmt::Display for RegisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegisterError::Bad(s) => f.write_str(s),
            RegisterError::OutOfOrder => f.write_str("CSeq not newer than the stored binding's"),
            RegisterError::TooManyBindings(n) => write!(f, "more than {n} bindings for this AOR"),
            RegisterError::IntervalTooBrief(m) => write!(f, "expires below the minimum of {m} s"),
        }
    }
}

impl std::error::Error for RegisterError {}

/// Why a contact is refused, naming the argument; a Contact header value
/// (`<sip:...>`, a display name, header parameters) gets its own advice.
fn contact_error(uri: &str, e: UriError) -> RegisterError {
    if uri.contains('<') || uri.contains('"') {
        return RegisterError::Bad(format!(
            "contact {uri:?}: a bare SIP URI is expected (sip:bob@192.0.2.1:5060), not a \
             Contact header value with <> or a display name; give q, expires and \
             +sip.instance as the contact's own fields"
        ));
    }
    RegisterError::Bad(format!("contact {uri:?}: {e}"))
}

impl From<UriError> for RegisterError {
    fn from(e: UriError) -> Self {
        RegisterError::Bad(e.to_string())
    }
}

/// The shortest registration accepted by default, in seconds (SIP 423
/// Interval Too Brief below it; the C ABI's `CHORDSIP_MIN_EXPIRES`).
pub const MIN_EXPIRES: u32 = 60;

/// Registrar limits and defaults.
#[derive(Clone, Debug)]
pub struct RegistrarLimits {
    pub max_bindings: usize,
    pub default_expires: u32,
    pub min_expires: u32,
    pub max_expires: u32,
    pub max_contact_len: usize,
    /// All Path values together.
    pub max_path_len: usize,
    pub max_instance_len: usize,
    pub max_received_len: usize,
}

impl Default for RegistrarLimits {
    fn default() -> Self {
        RegistrarLimits {
            max_bindings: 16,
            default_expires: 3600,
            min_expires: MIN_EXPIRES,
            max_expires: 86_400,
            max_contact_len: 512,
            max_path_len: 1024,
            max_instance_len: 256,
            max_received_len: 512,
        }
    }
}

/// A contact of a REGISTER, as parsed from its Contact header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContactSpec {
    pub uri: String,
    /// The contact's `expires` parameter.
    pub expires: Option<u32>,
    /// The `q` parameter as written (`0.5`).
    pub q: Option<String>,
    pub instance: Option<String>,
    pub reg_id: Option<u32>,
}

/// What a REGISTER asks for.
#[derive(Clone, Debug, Default)]
pub struct RegisterRequest {
    /// The To URI (the AOR).
    pub to: String,
    pub call_id: String,
    pub cseq: u32,
    /// `Contact: *` (remove all; only with `Expires: 0`).
    pub star: bool,
    pub contacts: Vec<ContactSpec>,
    /// The Expires header.
    pub expires: Option<u32>,
    pub path: Vec<String>,
    pub received: Option<String>,
}

/// A stored binding as read back, with its dictionary slot and remaining life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBinding {
    pub writer: Vec<u8>,
    pub binding: Binding,
    pub expires_in_s: u32,
    pub version: u64,
}

/// One storage step of a REGISTER.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Put {
        writer: Vec<u8>,
        binding: Binding,
        expires: u32,
    },
    Remove {
        writer: Vec<u8>,
    },
}

/// The storage steps of a REGISTER and the bindings that hold afterwards.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// (binding, expires in s) after the request, highest q first.
    pub result: Vec<(Binding, u32)>,
    pub inserted: usize,
    pub updated: usize,
    pub deleted: usize,
}

/// Parses a q-value (`0`, `0.5`, `1.000`) into thousandths.
pub fn parse_q(q: &str) -> Result<u16, RegisterError> {
    let bad = || RegisterError::Bad(format!("bad q-value {q:?}"));
    let (int, frac) = q.trim().split_once('.').unwrap_or((q.trim(), ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let whole = match int {
        "0" => 0u16,
        "1" => 1000,
        _ => return Err(bad()),
    };
    let mut f = 0u16;
    for (i, d) in frac.bytes().enumerate() {
        f += (d - b'0') as u16 * [100, 10, 1][i];
    }
    if whole == 1000 && f != 0 {
        return Err(bad());
    }
    Ok(whole + f)
}

/// Formats thousandths as a q-value (`0.5`, `1`).
pub fn format_q(q: u16) -> String {
    if q >= 1000 {
        return "1".into();
    }
    let s = format!("0.{q:03}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The dictionary slot of a binding: one flow of one instance (RFC 5626),
/// one instance, or else the contact URI under §19.1.4 comparison. Long
/// identities are hashed to stay within the writer limit.
pub fn binding_writer(contact: &Uri, instance: Option<&str>, reg_id: Option<u32>) -> Vec<u8> {
    let identity = match (instance, reg_id) {
        (Some(i), Some(r)) => format!("i:{i};reg-id={r}"),
        (Some(i), None) => format!("i:{i}"),
        _ => format!("c:{}", contact.contact_identity()),
    };
    if identity.len() <= 100 {
        identity.into_bytes()
    } else {
        let d = Sha1::digest(identity.as_bytes());
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        format!("h:{hex}").into_bytes()
    }
}

/// Whether `label` has the form of a binding slot (`i:`, `c:` or `h:`, as
/// [`binding_writer`] makes them): only a REGISTER writes these.
pub fn is_binding_label(label: &[u8]) -> bool {
    [&b"i:"[..], b"c:", b"h:"]
        .iter()
        .any(|p| label.starts_with(p))
}

/// Decides the storage steps of `req` given the AOR's `current` bindings.
pub fn plan(
    req: &RegisterRequest,
    current: &[StoredBinding],
    limits: &RegistrarLimits,
) -> Result<Plan, RegisterError> {
    if req.call_id.is_empty() {
        return Err(RegisterError::Bad(
            "call_id is empty: every REGISTER needs a Call-ID (a UA keeps one per run)".into(),
        ));
    }
    if req.call_id.len() > 256 {
        return Err(RegisterError::Bad(format!(
            "call_id is {} bytes long, over 256",
            req.call_id.len()
        )));
    }
    let path_len: usize = req.path.iter().map(|p| p.len()).sum();
    if path_len > limits.max_path_len {
        return Err(RegisterError::Bad(format!(
            "path: {path_len} bytes in all, over {}",
            limits.max_path_len
        )));
    }
    if req.received.as_ref().map_or(0, |r| r.len()) > limits.max_received_len {
        return Err(RegisterError::Bad(format!(
            "received: over {} bytes",
            limits.max_received_len
        )));
    }
    let mut plan = Plan::default();
    // Working view of the AOR: writer -> (binding, expires).
    let mut view: Vec<(Vec<u8>, Binding, u32)> = current
        .iter()
        .map(|s| (s.writer.clone(), s.binding.clone(), s.expires_in_s))
        .collect();
    if req.star {
        // §10.3 step 6: "*" only alone and with Expires: 0.
        if !req.contacts.is_empty() || req.expires != Some(0) {
            return Err(RegisterError::Bad(
                "star (Contact: *) needs expires 0 and no other contact".into(),
            ));
        }
        for (writer, b, _) in &view {
            if b.call_id == req.call_id && req.cseq <= b.cseq {
                return Err(RegisterError::OutOfOrder);
            }
            plan.changes.push(Change::Remove {
                writer: writer.clone(),
            });
            plan.deleted += 1;
        }
        return Ok(plan);
    }
    for c in &req.contacts {
        if c.uri.len() > limits.max_contact_len {
            return Err(RegisterError::Bad(format!(
                "contact: {} bytes, over {}",
                c.uri.len(),
                limits.max_contact_len
            )));
        }
        let uri = Uri::parse(&c.uri).map_err(|e| contact_error(&c.uri, e))?;
        let expires = c
            .expires
            .or(req.expires)
            .unwrap_or(limits.default_expires)
            .min(limits.max_expires);
        if expires != 0 && expires < limits.min_expires {
            return Err(RegisterError::IntervalTooBrief(limits.min_expires));
        }
        let q = match &c.q {
            Some(q) => parse_q(q)?,
            None => 1000,
        };
        if c.instance.as_ref().map_or(0, |i| i.len()) > limits.max_instance_len {
            return Err(RegisterError::Bad("+sip.instance too long".into()));
        }
        if c.reg_id.is_some() && c.instance.is_none() {
            return Err(RegisterError::Bad("reg-id without +sip.instance".into()));
        }
        let writer = binding_writer(&uri, c.instance.as_deref(), c.reg_id);
        let existing = view.iter().position(|(w, _, _)| *w == writer);
        if let Some(i) = existing {
            let b = &view[i].1;
            if b.call_id == req.call_id
                && req.cseq == b.cseq
                && expires != 0
                && b.contact == c.uri
                && b.q == q
            {
                // A stateless registrar sees retransmissions: this very binding
                // was stored by this request, which was applied (perhaps with
                // changes made since): the whole request changes nothing and
                // gets the current bindings, as its first answer did.
                return Ok(Plan {
                    result: order(
                        current
                            .iter()
                            .map(|s| (without_owner(&s.binding), s.expires_in_s))
                            .collect(),
                    ),
                    ..Plan::default()
                });
            }
            if b.call_id == req.call_id && req.cseq <= b.cseq {
                return Err(RegisterError::OutOfOrder);
            }
        }
        if expires == 0 {
            if let Some(i) = existing {
                view.remove(i);
                plan.changes.push(Change::Remove { writer });
                plan.deleted += 1;
            }
            continue;
        }
        let binding = Binding {
            contact: c.uri.clone(),
            q,
            instance: c.instance.clone(),
            reg_id: c.reg_id,
            path: req.path.clone(),
            received: req.received.clone(),
            call_id: req.call_id.clone(),
            cseq: req.cseq,
            owner: None,
        };
        match existing {
            Some(i) => {
                view[i].1 = binding.clone();
                view[i].2 = expires;
                plan.updated += 1;
            }
            None => {
                if view.len() >= limits.max_bindings {
                    return Err(RegisterError::TooManyBindings(limits.max_bindings));
                }
                view.push((writer.clone(), binding.clone(), expires));
                plan.inserted += 1;
            }
        }
        plan.changes.push(Change::Put {
            writer,
            binding,
            expires,
        });
    }
    // A REGISTER's answer lists what the registrar itself wrote: no owner.
    plan.result = order(
        view.into_iter()
            .map(|(_, mut b, e)| {
                b.owner = None;
                (b, e)
            })
            .collect(),
    );
    Ok(plan)
}

fn without_owner(b: &Binding) -> Binding {
    Binding {
        owner: None,
        ..b.clone()
    }
}

/// Highest q first; equal q keep their order (stable sort).
pub fn order(mut bindings: Vec<(Binding, u32)>) -> Vec<(Binding, u32)> {
    bindings.sort_by_key(|b| std::cmp::Reverse(b.0.q));
    bindings
}

// ----- where requests for a binding go ---------------------------------------

/// The first hop of a request sent to a binding (see [`Binding::next_hop`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NextHop {
    /// The contact itself (the Request-URI).
    Contact,
    /// The address the REGISTER came from, as a SIP URI (`sip:192.0.2.4:5060`).
    Received(String),
    /// The first Path entry's URI (RFC 3327), without its angle brackets.
    Path(String),
}

impl Binding {
    /// Where a request for this binding is sent first: its first Path entry
    /// when it has one (RFC 3327); else the address its REGISTER came from
    /// when the contact cannot be reached directly: an RFC 5626 flow
    /// (reg-id), or a contact whose host is a name or another IP than that
    /// source (a UA behind NAT); else the contact itself. A UA registering
    /// from another port of its own IP keeps its contact. A `received`
    /// written without a scheme (`192.0.2.4:5060`) is given as `sip:` URI.
    pub fn next_hop(&self) -> NextHop {
        if let Some(p) = self.path.first() {
            return NextHop::Path(name_addr_uri(p).to_string());
        }
        let Some(received) = self.received.as_deref() else {
            return NextHop::Contact;
        };
        let received = match received.split_once(':') {
            Some((s, _)) if s.eq_ignore_ascii_case("sip") || s.eq_ignore_ascii_case("sips") => {
                received.to_string()
            }
            _ => format!("sip:{received}"),
        };
        if self.reg_id.is_none() {
            if let (Some(c), Some(r)) = (uri_ip(&self.contact), uri_ip(&received)) {
                if c == r {
                    return NextHop::Contact;
                }
            }
        }
        NextHop::Received(received)
    }
}

/// The URI of a name-addr (`"Edge" <sip:edge.example.com;lr>`), or the
/// text itself when it has no angle brackets.
fn name_addr_uri(s: &str) -> &str {
    match (s.find('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => s[a + 1..b].trim(),
        _ => s.trim(),
    }
}

/// The host of a SIP URI when it is an IP address.
fn uri_ip(uri: &str) -> Option<std::net::IpAddr> {
    let host = Uri::parse(uri).ok()?.host;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(&host);
    host.parse().ok()
}

// ----- value encoding ------------------------------------------------------

const FORMAT: u8 = 1;

impl Binding {
    /// The stored form: format byte, q u16, cseq u32, reg-id u32 (all-ones:
    /// none), then length-prefixed contact, instance, call-id, received, and
    /// a path count with its entries.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(FORMAT);
        w.u16(self.q);
        w.u32(self.cseq);
        w.u32(self.reg_id.unwrap_or(u32::MAX));
        for s in [
            self.contact.as_str(),
            self.instance.as_deref().unwrap_or(""),
            &self.call_id,
            self.received.as_deref().unwrap_or(""),
        ] {
            w.bytes(s.as_bytes());
        }
        w.u8(self.path.len().min(255) as u8);
        for p in self.path.iter().take(255) {
            w.bytes(p.as_bytes());
        }
        w.into_inner()
    }

    /// Reads [`encode`](Self::encode)'s form; None for anything else.
    pub fn decode(data: &[u8]) -> Option<Binding> {
        let mut r = Reader::new(data);
        if r.u8()? != FORMAT {
            return None;
        }
        let q = r.u16()?;
        let cseq = r.u32()?;
        let reg = r.u32()?;
        let contact = r.string()?;
        let instance = r.string()?;
        let call_id = r.string()?;
        let received = r.string()?;
        let n = r.u8()?;
        let path = (0..n).map(|_| r.string()).collect::<Option<Vec<_>>>()?;
        if !r.is_empty() || q > 1000 {
            return None;
        }
        Some(Binding {
            contact,
            q,
            instance: (!instance.is_empty()).then_some(instance),
            reg_id: (reg != u32::MAX).then_some(reg),
            path,
            received: (!received.is_empty()).then_some(received),
            call_id,
            cseq,
            owner: None,
        })
    }
}

#[cfg(test)]
#[path = "binding_tests.rs"]
mod tests;
