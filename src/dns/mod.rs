//! Publishing the overlay's live SIP proxies in an authoritative DNS server:
//! `_sip._udp.<domain>` (and `_sip._tcp`) SRV records and the members'
//! A/AAAA records, replaced atomically by one RFC 2136 UPDATE signed with
//! TSIG (RFC 8945), sent over TCP.
//!
//! Written by hand rather than with `hickory-proto`: its TSIG signer needs a
//! `dnssec-ring`/`dnssec-aws-lc-rs` crypto backend (a C/assembly build) and its
//! default features bring tokio, while all this needs is a few hundred lines of
//! message writing and an HMAC the crate already has (`hmac`, `sha2`).
//!
//! Pure message code (`build_update`, `check_response`) plus one blocking
//! exchange (`send_update`); no thread, no runtime, nothing printed.

mod key;
mod msg;
#[cfg(test)]
mod tests;
mod tsig;

pub use key::{TsigAlgorithm, TsigKey};
pub use msg::rcode_name;

use msg::{Header, CLASS_IN, OPCODE_UPDATE, TYPE_A, TYPE_AAAA, TYPE_SOA, TYPE_SRV, TYPE_TSIG};
use std::collections::HashSet;
use std::fmt;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What can go wrong while building, sending or checking an update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsError {
    /// Bad input from the caller: a name, a key, duplicate members.
    Invalid(String),
    /// The update would not fit one DNS message (65,535 bytes).
    TooLarge,
    /// Socket error talking to the server.
    Io(String),
    /// The server did not answer within the target's timeout.
    Timeout,
    /// The response is not a well-formed DNS message.
    Malformed(String),
    /// A well-formed response that does not answer our update (id, QR, opcode).
    Mismatch(String),
    /// The server answered with an error RCODE; `tsig_error` is the TSIG
    /// error it reported about our signature (BADSIG, BADKEY, BADTIME), 0 if none.
    Refused { rcode: u16, tsig_error: u16 },
    /// The response's TSIG is missing or does not verify with our key.
    BadTsig(String),
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsError::Invalid(s) => write!(f, "invalid DNS update input: {s}"),
            DnsError::TooLarge => f.write_str("DNS update larger than 65535 bytes"),
            DnsError::Io(s) => write!(f, "DNS server I/O error: {s}"),
            DnsError::Timeout => f.write_str("DNS server did not answer in time"),
            DnsError::Malformed(s) => write!(f, "malformed DNS response: {s}"),
            DnsError::Mismatch(s) => write!(f, "DNS response does not match the update: {s}"),
            DnsError::Refused {
                rcode,
                tsig_error: 0,
            } => {
                write!(f, "DNS server refused the update: {}", rcode_name(*rcode))
            }
            DnsError::Refused { rcode, tsig_error } => write!(
                f,
                "DNS server refused the update: {} (TSIG error {})",
                rcode_name(*rcode),
                rcode_name(*tsig_error)
            ),
            DnsError::BadTsig(s) => write!(f, "DNS response TSIG check failed: {s}"),
        }
    }
}

impl std::error::Error for DnsError {}

impl From<DnsError> for crate::error::Error {
    fn from(e: DnsError) -> Self {
        use crate::error::Error;
        match e {
            DnsError::Invalid(s) => Error::InvalidArgument(s),
            DnsError::TooLarge => Error::TooLarge,
            DnsError::Timeout => Error::Timeout,
            DnsError::Io(_) | DnsError::Malformed(_) | DnsError::Mismatch(_) => {
                Error::Io(e.to_string())
            }
            DnsError::Refused { .. } | DnsError::BadTsig(_) => Error::Refused(e.to_string()),
        }
    }
}

/// The authoritative server and zone to update, and how.
#[derive(Clone, Debug)]
pub struct DnsTarget {
    pub server: SocketAddr,
    /// The zone the update names (its apex), e.g. "example.test".
    pub zone: String,
    /// Unsigned updates only work with servers that allow them by address.
    pub key: Option<TsigKey>,
    /// Bound on the whole exchange: connect, write and read.
    pub timeout: Duration,
}

/// The SIP transports whose SRV RRsets are published.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    fn label(self) -> &'static str {
        match self {
            Transport::Udp => "_udp",
            Transport::Tcp => "_tcp",
        }
    }
}

/// One live proxy: its host name `<host_label>.<domain>` and SRV fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// A single label, e.g. "n3fa29c1d0b2e".
    pub host_label: String,
    pub addrs: Vec<IpAddr>,
    pub port: u16,
    pub weight: u16,
    pub priority: u16,
}

/// The whole published state: the SRV RRsets become exactly `members`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordSet {
    /// SRV owner domain: "example.test" gives `_sip._udp.example.test`.
    pub domain: String,
    pub transports: Vec<Transport>,
    pub ttl: u32,
    pub members: Vec<Member>,
    /// Host labels of former members whose A/AAAA RRsets are deleted.
    pub removed: Vec<String>,
}

fn lower(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// Checks the set before anything is written: names within the zone, single
/// labels, no label twice (a second delete would wipe the first one's records).
fn validate(zone: &str, set: &RecordSet) -> Result<(), DnsError> {
    msg::check_name(zone).map_err(|e| DnsError::Invalid(format!("zone: {e}")))?;
    msg::check_name(&set.domain).map_err(|e| DnsError::Invalid(format!("domain: {e}")))?;
    let (zone, domain) = (lower(zone), lower(&set.domain));
    if domain != zone && !domain.ends_with(&format!(".{zone}")) {
        return Err(DnsError::Invalid(format!(
            "domain '{domain}' is not within zone '{zone}'"
        )));
    }
    if set.ttl > 0x7fff_ffff {
        return Err(DnsError::Invalid("TTL above 2^31-1 (RFC 2181)".into()));
    }
    let mut seen = HashSet::new();
    let labels = set
        .members
        .iter()
        .map(|m| &m.host_label)
        .chain(&set.removed);
    for label in labels {
        if label.contains('.') {
            return Err(DnsError::Invalid(format!(
                "host label '{label}' must be a single label"
            )));
        }
        msg::check_name(label).map_err(DnsError::Invalid)?;
        if !seen.insert(label.to_ascii_lowercase()) {
            return Err(DnsError::Invalid(format!(
                "host label '{label}' appears twice"
            )));
        }
    }
    for m in &set.members {
        if m.addrs.is_empty() {
            return Err(DnsError::Invalid(format!(
                "member '{}' has no address",
                m.host_label
            )));
        }
        if m.port == 0 {
            return Err(DnsError::Invalid(format!(
                "member '{}' has port 0",
                m.host_label
            )));
        }
    }
    Ok(())
}

/// Builds one UPDATE of `zone` that, applied in order (RFC 2136 §3.4.2),
/// deletes each transport's SRV RRset and adds one SRV per member (target
/// `<host_label>.<domain>.`), replaces each member's A and AAAA RRsets by its
/// addresses, and deletes the A/AAAA RRsets of `removed`. Signed with TSIG
/// (time `now_unix`) when a key is given.
pub fn build_update(
    zone: &str,
    set: &RecordSet,
    id: u16,
    key: Option<&TsigKey>,
    now_unix: u64,
) -> Result<Vec<u8>, DnsError> {
    validate(zone, set)?;
    let domain = lower(&set.domain);
    // Each transport once: a second pass would only delete and re-add the same set.
    let mut transports = set.transports.clone();
    let mut seen = HashSet::new();
    transports.retain(|t| seen.insert(*t));
    let host = |label: &str| format!("{}.{domain}", label.to_ascii_lowercase());

    let mut body = Vec::new();
    let mut count = 0usize;
    for t in &transports {
        let owner = format!("_sip.{}.{domain}", t.label());
        msg::put_delete_rrset(&mut body, &owner, TYPE_SRV)?;
        count += 1;
        for m in &set.members {
            msg::put_rr(&mut body, &owner, TYPE_SRV, CLASS_IN, set.ttl, |out| {
                msg::put_u16(out, m.priority);
                msg::put_u16(out, m.weight);
                msg::put_u16(out, m.port);
                msg::put_name(out, &host(&m.host_label))
            })?;
            count += 1;
        }
    }
    for m in &set.members {
        let name = host(&m.host_label);
        msg::put_delete_rrset(&mut body, &name, TYPE_A)?;
        msg::put_delete_rrset(&mut body, &name, TYPE_AAAA)?;
        count += 2;
        for addr in &m.addrs {
            let (rtype, bytes) = match addr {
                IpAddr::V4(a) => (TYPE_A, a.octets().to_vec()),
                IpAddr::V6(a) => (TYPE_AAAA, a.octets().to_vec()),
            };
            msg::put_rr(&mut body, &name, rtype, CLASS_IN, set.ttl, |out| {
                out.extend_from_slice(&bytes);
                Ok(())
            })?;
            count += 1;
        }
    }
    for label in &set.removed {
        msg::put_delete_rrset(&mut body, &host(label), TYPE_A)?;
        msg::put_delete_rrset(&mut body, &host(label), TYPE_AAAA)?;
        count += 2;
    }

    let header = Header {
        id,
        qr: false,
        opcode: OPCODE_UPDATE,
        rcode: 0,
        counts: [
            1,
            0,
            u16::try_from(count).map_err(|_| DnsError::TooLarge)?,
            0,
        ],
    };
    let mut out = Vec::with_capacity(body.len() + 200);
    header.write(&mut out);
    msg::put_name(&mut out, zone)?;
    msg::put_u16(&mut out, TYPE_SOA);
    msg::put_u16(&mut out, CLASS_IN);
    if body.len() + out.len() > msg::MAX_MESSAGE {
        return Err(DnsError::TooLarge);
    }
    out.extend_from_slice(&body);
    if let Some(key) = key {
        tsig::sign(&mut out, key, now_unix)?;
    }
    if out.len() > msg::MAX_MESSAGE {
        return Err(DnsError::TooLarge);
    }
    Ok(out)
}

/// Checks the server's answer to `request` (as built by `build_update`): same
/// id, a response, opcode UPDATE, RCODE NOERROR, and, when `key` signed the
/// request, a response TSIG that verifies (MAC over the request's MAC, time
/// within fudge of `now_unix`). Never panics, whatever `response` holds.
pub fn check_response(
    response: &[u8],
    request: &[u8],
    key: Option<&TsigKey>,
    now_unix: u64,
) -> Result<(), DnsError> {
    let request_mac = match key {
        Some(_) => Some(tsig::request_mac(request)?.ok_or_else(|| {
            DnsError::Invalid("the request carries no TSIG but a key was given".into())
        })?),
        None => None,
    };
    let request_id = match request {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => return Err(DnsError::Invalid("request shorter than a header".into())),
    };
    let parsed = msg::parse(response)?;
    let h = parsed.header;
    if h.id != request_id {
        return Err(DnsError::Mismatch(format!(
            "id {:#06x}, expected {request_id:#06x}",
            h.id
        )));
    }
    if !h.qr {
        return Err(DnsError::Mismatch("not a response (QR clear)".into()));
    }
    if h.opcode != OPCODE_UPDATE {
        return Err(DnsError::Mismatch(format!(
            "opcode {}, expected UPDATE",
            h.opcode
        )));
    }
    if parsed.misplaced_tsig {
        return Err(DnsError::Malformed(
            "TSIG record is not the last record".into(),
        ));
    }
    let rcode = u16::from(h.rcode);
    if let (Some(key), Some((_, mac))) = (key, request_mac) {
        match parsed.last_additional.filter(|r| r.rtype == TYPE_TSIG) {
            Some(rec) => {
                let t = tsig::read_rdata(response, &rec)?;
                // The server could not check our signature: its TSIG is unsigned (§5.3.2).
                if t.error != 0 {
                    return Err(DnsError::Refused {
                        rcode,
                        tsig_error: t.error,
                    });
                }
                tsig::verify(response, &rec, &t, key, &mac, now_unix)?;
            }
            None if rcode != 0 => {
                return Err(DnsError::Refused {
                    rcode,
                    tsig_error: 0,
                })
            }
            None => return Err(DnsError::BadTsig("the response is not signed".into())),
        }
    }
    if rcode != 0 {
        return Err(DnsError::Refused {
            rcode,
            tsig_error: 0,
        });
    }
    Ok(())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn io_error(server: SocketAddr, e: std::io::Error) -> DnsError {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => DnsError::Timeout,
        _ => DnsError::Io(format!("{server}: {e}")),
    }
}

/// Time left before `deadline`, or `Timeout` when none is.
fn remaining(deadline: Instant) -> Result<Duration, DnsError> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or(DnsError::Timeout)
}

/// Reads exactly `buf.len()` bytes before `deadline`. Bounded: every turn
/// either fills bytes or ends with an error, and the deadline shrinks.
fn read_full(
    stream: &mut TcpStream,
    buf: &mut [u8],
    deadline: Instant,
    server: SocketAddr,
) -> Result<(), DnsError> {
    let mut got = 0;
    while got < buf.len() {
        stream
            .set_read_timeout(Some(remaining(deadline)?))
            .map_err(|e| io_error(server, e))?;
        match stream.read(&mut buf[got..]) {
            Ok(0) => {
                return Err(DnsError::Io(format!(
                    "{server}: connection closed before the whole response"
                )))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(server, e)),
        }
    }
    Ok(())
}

/// Replaces the published records by `set`: builds the UPDATE with a random
/// id, sends it over TCP (2-byte length prefix, RFC 1035 §4.2.2), reads and
/// checks the answer. Blocks at most `target.timeout`.
pub fn send_update(target: &DnsTarget, set: &RecordSet) -> Result<(), DnsError> {
    let request = build_update(
        &target.zone,
        set,
        rand::random(),
        target.key.as_ref(),
        unix_now(),
    )?;
    let response = exchange(target.server, &request, target.timeout)?;
    check_response(&response, &request, target.key.as_ref(), unix_now())
}

/// One request/response over a fresh TCP connection, within `timeout`.
fn exchange(server: SocketAddr, request: &[u8], timeout: Duration) -> Result<Vec<u8>, DnsError> {
    let deadline = Instant::now() + timeout;
    let len = u16::try_from(request.len()).map_err(|_| DnsError::TooLarge)?;
    let mut stream =
        TcpStream::connect_timeout(&server, timeout).map_err(|e| io_error(server, e))?;
    // Best effort: a missing NODELAY only costs latency.
    let _ = stream.set_nodelay(true);
    stream
        .set_write_timeout(Some(remaining(deadline)?))
        .map_err(|e| io_error(server, e))?;
    let mut framed = Vec::with_capacity(request.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(request);
    stream.write_all(&framed).map_err(|e| io_error(server, e))?;
    let mut prefix = [0u8; 2];
    read_full(&mut stream, &mut prefix, deadline, server)?;
    let mut response = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
    read_full(&mut stream, &mut response, deadline, server)?;
    Ok(response)
}
