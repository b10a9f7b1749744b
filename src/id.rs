//! The 160-bit identifier space shared by nodes and keys.
//!
//! Ids are big-endian 160-bit unsigned integers on a ring modulo 2^160. Node ids
//! and keys live in the same space, so "the node responsible for a key" is the
//! first node clockwise from the key (its successor).

use sha1::{Digest, Sha1};
use std::fmt;
use std::net::SocketAddr;

/// Number of bytes in an id.
pub const ID_LEN: usize = 20;
/// Number of bits in an id (and entries in a full finger table).
pub const ID_BITS: usize = ID_LEN * 8;

/// A point on the 160-bit ring.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Id(pub [u8; ID_LEN]);

impl Id {
    pub const ZERO: Id = Id([0; ID_LEN]);
    pub const MAX: Id = Id([0xff; ID_LEN]);

    /// SHA-1 of arbitrary bytes: how resource names become keys.
    pub fn hash(data: &[u8]) -> Id {
        let digest = Sha1::digest(data);
        let mut out = [0u8; ID_LEN];
        out.copy_from_slice(&digest);
        Id(out)
    }

    /// The key of a resource name (for SIP: the canonical AOR).
    pub fn from_name(name: &str) -> Id {
        Id::hash(name.as_bytes())
    }

    /// The default node id: SHA-1 of the node's transport address, so a
    /// restarted node at the same address takes back its old place.
    pub fn from_addr(addr: &SocketAddr) -> Id {
        Id::hash(addr.to_string().as_bytes())
    }

    /// Parses 40 hex digits.
    pub fn from_hex(s: &str) -> Option<Id> {
        let s = s.trim();
        if s.len() != ID_LEN * 2 || !s.is_ascii() {
            return None;
        }
        let mut out = [0u8; ID_LEN];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Id(out))
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_u64(v: u64) -> Id {
        let mut out = [0u8; ID_LEN];
        out[ID_LEN - 8..].copy_from_slice(&v.to_be_bytes());
        Id(out)
    }

    /// The top 64 bits, handy for plots and fraction-of-ring arithmetic.
    pub fn high_u64(&self) -> u64 {
        u64::from_be_bytes(self.0[..8].try_into().expect("8 bytes"))
    }

    /// (self + other) mod 2^160.
    pub fn wrapping_add(&self, other: &Id) -> Id {
        let mut out = [0u8; ID_LEN];
        let mut carry = 0u16;
        for i in (0..ID_LEN).rev() {
            let s = self.0[i] as u16 + other.0[i] as u16 + carry;
            out[i] = s as u8;
            carry = s >> 8;
        }
        Id(out)
    }

    /// (self - other) mod 2^160: the clockwise distance from `other` to `self`.
    pub fn wrapping_sub(&self, other: &Id) -> Id {
        let mut out = [0u8; ID_LEN];
        let mut borrow = 0i16;
        for i in (0..ID_LEN).rev() {
            let mut d = self.0[i] as i16 - other.0[i] as i16 - borrow;
            if d < 0 {
                d += 256;
                borrow = 1;
            } else {
                borrow = 0;
            }
            out[i] = d as u8;
        }
        Id(out)
    }

    /// 2^k for k < 160.
    pub fn pow2(k: usize) -> Id {
        assert!(k < ID_BITS, "2^{k} is outside the id space");
        let mut out = [0u8; ID_LEN];
        out[ID_LEN - 1 - k / 8] = 1 << (k % 8);
        Id(out)
    }

    /// self + 2^k mod 2^160: the start of finger k.
    pub fn add_pow2(&self, k: usize) -> Id {
        self.wrapping_add(&Id::pow2(k))
    }

    /// Clockwise distance from self to `to`.
    pub fn distance_to(&self, to: &Id) -> Id {
        to.wrapping_sub(self)
    }

    /// x in (a, b) on the ring. When a == b the interval is the whole ring minus a.
    pub fn in_open(&self, a: &Id, b: &Id) -> bool {
        if a == b {
            return self != a;
        }
        if a < b {
            a < self && self < b
        } else {
            self > a || self < b
        }
    }

    /// x in (a, b] on the ring. When a == b the interval is the whole ring.
    pub fn in_open_closed(&self, a: &Id, b: &Id) -> bool {
        self == b || self.in_open(a, b)
    }

    /// x in [a, b) on the ring. When a == b the interval is the whole ring.
    pub fn in_closed_open(&self, a: &Id, b: &Id) -> bool {
        self == a || self.in_open(a, b)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", &self.to_hex()[..10])
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_id() -> impl Strategy<Value = Id> {
        prop::array::uniform20(any::<u8>()).prop_map(Id)
    }

    #[test]
    fn sha1_of_known_string() {
        assert_eq!(
            Id::from_name("abc").to_hex(),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn hex_round_trip_and_rejects() {
        let id = Id::from_name("sip:alice@example.com");
        assert_eq!(Id::from_hex(&id.to_hex()), Some(id));
        assert_eq!(Id::from_hex("zz"), None);
        assert_eq!(Id::from_hex(&"g".repeat(40)), None);
    }

    #[test]
    fn wrap_around_intervals() {
        let a = Id::from_u64(10);
        let b = Id::from_u64(20);
        assert!(Id::from_u64(15).in_open(&a, &b));
        assert!(!a.in_open(&a, &b));
        assert!(!b.in_open(&a, &b));
        assert!(b.in_open_closed(&a, &b));
        assert!(a.in_closed_open(&a, &b));
        // (20, 10) wraps through zero.
        assert!(Id::MAX.in_open(&b, &a));
        assert!(Id::ZERO.in_open(&b, &a));
        assert!(!Id::from_u64(15).in_open(&b, &a));
        // Degenerate interval: everything but the endpoint / everything.
        assert!(Id::from_u64(3).in_open(&a, &a));
        assert!(!a.in_open(&a, &a));
        assert!(a.in_open_closed(&a, &a));
    }

    #[test]
    fn pow2_and_fingers() {
        assert_eq!(Id::pow2(0), Id::from_u64(1));
        assert_eq!(Id::pow2(8), Id::from_u64(256));
        assert_eq!(Id::MAX.add_pow2(0), Id::ZERO);
        let mut top = [0u8; ID_LEN];
        top[0] = 0x80;
        assert_eq!(Id::pow2(159), Id(top));
    }

    proptest! {
        #[test]
        fn add_sub_inverse(a in arb_id(), b in arb_id()) {
            prop_assert_eq!(a.wrapping_add(&b).wrapping_sub(&b), a);
        }

        #[test]
        fn exactly_one_side(x in arb_id(), a in arb_id(), b in arb_id()) {
            prop_assume!(a != b && x != a && x != b);
            // Every point other than the endpoints lies in exactly one of (a,b), (b,a).
            prop_assert!(x.in_open(&a, &b) ^ x.in_open(&b, &a));
        }

        #[test]
        fn open_interval_matches_distance(x in arb_id(), a in arb_id(), b in arb_id()) {
            prop_assume!(a != b);
            let inside = a.distance_to(&x) < a.distance_to(&b) && x != a;
            prop_assert_eq!(x.in_open(&a, &b), inside);
        }

        #[test]
        fn closed_end_contains_endpoint(a in arb_id(), b in arb_id()) {
            prop_assert!(b.in_open_closed(&a, &b));
            prop_assert!(a.in_closed_open(&a, &b));
        }

        #[test]
        fn finger_start_in_range(n in arb_id(), k in 0usize..ID_BITS) {
            let start = n.add_pow2(k);
            prop_assert_eq!(n.distance_to(&start), Id::pow2(k));
        }
    }
}
