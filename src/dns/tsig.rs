//! TSIG (RFC 8945): signing a request (§4.3.3 digest: message, then the TSIG
//! variables) and verifying a response (§4.3.1: the request's MAC first, then
//! the response with its TSIG removed and ID restored, then the variables).

use super::key::{TsigAlgorithm, TsigKey};
use super::msg::{self, Reader, Record, CLASS_ANY, TYPE_TSIG};
use super::DnsError;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha512};

/// Allowed clock difference, the usual 300 s (RFC 8945 §10).
pub const FUDGE: u16 = 300;

/// The fields of a TSIG record's RDATA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsigRdata {
    /// Algorithm name in lowercase wire form.
    pub algorithm: Vec<u8>,
    pub time_signed: u64,
    pub fudge: u16,
    pub mac: Vec<u8>,
    pub original_id: u16,
    pub error: u16,
    pub other: Vec<u8>,
}

fn hmac(key: &TsigKey, parts: &[&[u8]]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(secret: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let mut m = <M as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().to_vec()
    }
    match key.algorithm {
        TsigAlgorithm::HmacSha256 => run::<Hmac<Sha256>>(&key.secret, parts),
        TsigAlgorithm::HmacSha512 => run::<Hmac<Sha512>>(&key.secret, parts),
    }
}

/// The TSIG variables of §4.3.3 in digest form.
fn variables(key: &TsigKey, class: u16, ttl: u32, t: &TsigRdata) -> Result<Vec<u8>, DnsError> {
    let mut v = Vec::with_capacity(64 + t.other.len());
    msg::put_name(&mut v, &key.name)?;
    msg::put_u16(&mut v, class);
    msg::put_u32(&mut v, ttl);
    v.extend_from_slice(&t.algorithm);
    v.extend_from_slice(&t.time_signed.to_be_bytes()[2..]);
    msg::put_u16(&mut v, t.fudge);
    msg::put_u16(&mut v, t.error);
    msg::put_u16(&mut v, t.other.len() as u16);
    v.extend_from_slice(&t.other);
    Ok(v)
}

fn algorithm_wire(alg: TsigAlgorithm) -> Vec<u8> {
    let mut v = Vec::new();
    msg::put_name(&mut v, alg.name()).expect("algorithm names are valid");
    v
}

/// Signs `message` (whose header's additional count does not include the
/// TSIG yet): appends the TSIG record, bumps ARCOUNT, and returns the MAC.
pub fn sign(message: &mut Vec<u8>, key: &TsigKey, now_unix: u64) -> Result<Vec<u8>, DnsError> {
    if message.len() < 12 {
        return Err(DnsError::Malformed("message shorter than a header".into()));
    }
    let mut t = TsigRdata {
        algorithm: algorithm_wire(key.algorithm),
        time_signed: now_unix & 0xffff_ffff_ffff,
        fudge: FUDGE,
        mac: Vec::new(),
        original_id: u16::from_be_bytes([message[0], message[1]]),
        error: 0,
        other: Vec::new(),
    };
    let vars = variables(key, CLASS_ANY, 0, &t)?;
    t.mac = hmac(key, &[message, &vars]);
    let arcount = u16::from_be_bytes([message[10], message[11]])
        .checked_add(1)
        .ok_or(DnsError::TooLarge)?;
    message[10..12].copy_from_slice(&arcount.to_be_bytes());
    msg::put_rr(message, &key.name, TYPE_TSIG, CLASS_ANY, 0, |out| {
        out.extend_from_slice(&t.algorithm);
        out.extend_from_slice(&t.time_signed.to_be_bytes()[2..]);
        msg::put_u16(out, t.fudge);
        msg::put_u16(out, t.mac.len() as u16);
        out.extend_from_slice(&t.mac);
        msg::put_u16(out, t.original_id);
        msg::put_u16(out, t.error);
        msg::put_u16(out, 0);
        Ok(())
    })?;
    Ok(t.mac)
}

/// Reads a TSIG record's RDATA; it must fill the RDATA exactly.
pub fn read_rdata(buf: &[u8], rec: &Record) -> Result<TsigRdata, DnsError> {
    let (at, len) = rec.rdata;
    let end = at + len;
    let mut r = Reader::new(buf.get(..end).ok_or_else(|| bad("rdata"))?);
    r.pos = at;
    let algorithm = r.name()?;
    let time_signed = r.u48()?;
    let fudge = r.u16()?;
    let mac_len = usize::from(r.u16()?);
    let mac = r.take(mac_len)?.to_vec();
    let original_id = r.u16()?;
    let error = r.u16()?;
    let other_len = usize::from(r.u16()?);
    let other = r.take(other_len)?.to_vec();
    if r.pos != end {
        return Err(bad("TSIG RDATA length"));
    }
    Ok(TsigRdata {
        algorithm,
        time_signed,
        fudge,
        mac,
        original_id,
        error,
        other,
    })
}

fn bad(what: &str) -> DnsError {
    DnsError::Malformed(format!("bad {what}"))
}

/// Verifies the TSIG `rec` that ends `buf` (a response to a request whose MAC
/// was `request_mac`): key name, algorithm, full-length MAC, time within fudge.
pub fn verify(
    buf: &[u8],
    rec: &Record,
    t: &TsigRdata,
    key: &TsigKey,
    request_mac: &[u8],
    now_unix: u64,
) -> Result<(), DnsError> {
    let mut name = Vec::new();
    msg::put_name(&mut name, &key.name)?;
    if rec.name != name {
        return Err(DnsError::BadTsig("response signed with another key".into()));
    }
    if t.algorithm != algorithm_wire(key.algorithm) {
        return Err(DnsError::BadTsig(
            "response signed with another algorithm".into(),
        ));
    }
    if t.mac.len() != key.algorithm.mac_len() {
        return Err(DnsError::BadTsig(format!(
            "MAC of {} bytes, expected {}",
            t.mac.len(),
            key.algorithm.mac_len()
        )));
    }
    // The response as it was before the TSIG was added: ARCOUNT one less, original ID.
    let mut unsigned = buf
        .get(..rec.start)
        .ok_or_else(|| bad("TSIG position"))?
        .to_vec();
    if unsigned.len() < 12 {
        return Err(bad("header"));
    }
    let arcount = u16::from_be_bytes([unsigned[10], unsigned[11]]).saturating_sub(1);
    unsigned[10..12].copy_from_slice(&arcount.to_be_bytes());
    unsigned[0..2].copy_from_slice(&t.original_id.to_be_bytes());
    let mac_len = (request_mac.len() as u16).to_be_bytes();
    let vars = variables(key, rec.class, rec.ttl, t)?;
    let expected = hmac(key, &[&mac_len, request_mac, &unsigned, &vars]);
    // Fixed-time comparison, so timing says nothing about how much of a forged MAC matched.
    if !constant_time_eq(&expected, &t.mac) {
        return Err(DnsError::BadTsig("response MAC does not verify".into()));
    }
    if now_unix.abs_diff(t.time_signed) > u64::from(t.fudge) {
        return Err(DnsError::BadTsig(format!(
            "response signed at {} but now is {} (fudge {} s)",
            t.time_signed, now_unix, t.fudge
        )));
    }
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The MAC of a request this module signed (its last record is our TSIG).
pub fn request_mac(request: &[u8]) -> Result<Option<(u16, Vec<u8>)>, DnsError> {
    let parsed = msg::parse(request)?;
    match parsed.last_additional {
        Some(rec) if rec.rtype == TYPE_TSIG => {
            let t = read_rdata(request, &rec)?;
            Ok(Some((parsed.header.id, t.mac)))
        }
        _ => Ok(None),
    }
}
