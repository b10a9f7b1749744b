//! RFC 5626 flow tokens. An edge proxy that a user agent behind NAT reaches
//! names the flow (the UA's address as the proxy sees it: the NAT's mapping)
//! in the user part of the Path it stores with the binding and of its
//! Record-Route, so that other proxies send requests for that UA through it,
//! and it sends them on over the flow the NAT keeps open. The address is
//! authenticated with an HMAC under the proxy's secret: a forged or altered
//! token is refused, so nobody makes the proxy send to an address of their
//! choosing. Pure logic, no I/O.

use crate::owner::hex;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Tokens start with this (a SIP user part, RFC 3261 `unreserved`).
const PREFIX: &str = "ob";
/// Bytes of the HMAC-SHA256 tag kept in a token.
const TAG_LEN: usize = 10;
/// The shortest secret accepted.
pub const MIN_SECRET_LEN: usize = 16;

/// Why a token was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum FlowError {
    /// Not a flow token at all (another user part).
    Malformed,
    /// Shaped like one, but not made with this secret: tampered or foreign.
    Forged,
}

fn addr_bytes(addr: SocketAddr) -> Vec<u8> {
    let mut b = Vec::with_capacity(19);
    match addr.ip() {
        IpAddr::V4(ip) => {
            b.push(4);
            b.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            b.push(6);
            b.extend_from_slice(&ip.octets());
        }
    }
    b.extend_from_slice(&addr.port().to_be_bytes());
    b
}

fn tag(secret: &[u8], data: &[u8]) -> [u8; TAG_LEN] {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(b"chordsip-flow-1");
    m.update(data);
    let full = m.finalize().into_bytes();
    let mut t = [0u8; TAG_LEN];
    t.copy_from_slice(&full[..TAG_LEN]);
    t
}

/// The token naming the flow from `addr`.
pub fn make(secret: &[u8], addr: SocketAddr) -> String {
    let data = addr_bytes(addr);
    format!("{PREFIX}{}{}", hex(&data), hex(&tag(secret, &data)))
}

/// The address a token names, if this secret made it.
pub fn check(secret: &[u8], token: &str) -> Result<SocketAddr, FlowError> {
    let body = token.strip_prefix(PREFIX).ok_or(FlowError::Malformed)?;
    if body.len() % 2 != 0 || !body.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(FlowError::Malformed);
    }
    let bytes: Vec<u8> = (0..body.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&body[i..i + 2], 16).expect("hex checked"))
        .collect();
    let data_len = match bytes.first() {
        Some(4) => 1 + 4 + 2,
        Some(6) => 1 + 16 + 2,
        _ => return Err(FlowError::Malformed),
    };
    if bytes.len() != data_len + TAG_LEN {
        return Err(FlowError::Malformed);
    }
    let (data, got) = bytes.split_at(data_len);
    let want = tag(secret, data);
    // Constant time: the comparison must not tell how much of a guess was right.
    let diff = want.iter().zip(got).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff != 0 {
        return Err(FlowError::Forged);
    }
    let port = u16::from_be_bytes([data[data_len - 2], data[data_len - 1]]);
    let ip = match data[0] {
        4 => IpAddr::V4(Ipv4Addr::new(data[1], data[2], data[3], data[4])),
        _ => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&data[1..17]);
            IpAddr::V6(Ipv6Addr::from(o))
        }
    };
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn round_trips_v4_and_v6() {
        for a in ["198.51.100.7:40123", "[2001:db8::1]:5060", "10.0.0.1:1"] {
            let addr: SocketAddr = a.parse().unwrap();
            let t = make(SECRET, addr);
            assert!(t.bytes().all(|b| b.is_ascii_alphanumeric()), "{t}");
            assert_eq!(check(SECRET, &t), Ok(addr));
        }
    }

    #[test]
    fn refuses_tampered_foreign_and_malformed_tokens() {
        let addr: SocketAddr = "198.51.100.7:40123".parse().unwrap();
        let t = make(SECRET, addr);
        // Another secret, or the address changed: forged.
        assert_eq!(
            check(b"another secret, also 32 bytes!!!", &t),
            Err(FlowError::Forged)
        );
        let mut other = t.clone().into_bytes();
        other[5] = if other[5] == b'0' { b'1' } else { b'0' };
        let other = String::from_utf8(other).unwrap();
        assert_eq!(check(SECRET, &other), Err(FlowError::Forged));
        for bad in [
            "",
            "ob",
            "alice",
            "ob04",
            &t[..t.len() - 2],
            &format!("{t}00"),
            "obzz",
        ] {
            assert_eq!(check(SECRET, bad), Err(FlowError::Malformed), "{bad:?}");
        }
    }
}
