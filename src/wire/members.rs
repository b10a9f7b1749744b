//! Membership of a one-hop overlay on the wire: what a member says about
//! itself, the changes that spread through the overlay, and the pages that
//! bring a member's table in line with a peer's (docs/PROTOCOL.md, "One-hop
//! membership").

use super::codec::{Reader, Writer};
use super::{Body, DecodeError, EncodeError, NodeInfo};
use crate::id::{Id, ID_LEN};
use std::net::SocketAddr;

/// Buckets of the id space whose digests two members compare (the top four
/// bits of an id name its bucket).
pub const MEMBER_BUCKETS: usize = 16;

/// One member of a one-hop overlay, as it announced itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemberRecord {
    pub node: NodeInfo,
    /// The member's clock (ms since the Unix epoch) when this incarnation
    /// announced itself: a later announcement replaces an earlier one, and
    /// a removal only removes the incarnation it names.
    pub since_ms: u64,
    /// Relative capacity, published as the SRV weight.
    pub weight: u16,
    /// Where the member serves SIP, when it does (published in DNS).
    pub sip: Option<SocketAddr>,
    /// The member's `virtual_nodes` (1: keys by member ids): every member
    /// must place keys alike.
    pub points: u16,
}

/// A change of the membership, as it spreads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemberChange {
    Up(MemberRecord),
    /// The incarnation `since_ms` of `node` left or failed.
    Down {
        node: NodeInfo,
        since_ms: u64,
    },
}

impl MemberChange {
    pub fn id(&self) -> Id {
        match self {
            MemberChange::Up(m) => m.node.id,
            MemberChange::Down { node, .. } => node.id,
        }
    }
}

const UP: u8 = 1;
const DOWN: u8 = 2;

/// Smallest encoded change (a Down with an IPv4 address), for early refusal
/// of a count the datagram cannot hold.
const MIN_CHANGE: usize = 1 + ID_LEN + 7 + 8;

fn addr_len(a: &SocketAddr) -> usize {
    match a {
        SocketAddr::V4(_) => 7,
        SocketAddr::V6(_) => 19,
    }
}

/// Encoded size of one change (for filling pages and batches).
pub fn member_change_len(c: &MemberChange) -> usize {
    match c {
        MemberChange::Up(m) => {
            1 + ID_LEN + addr_len(&m.node.addr) + 8 + 2 + 2 + 1 + m.sip.as_ref().map_or(0, addr_len)
        }
        MemberChange::Down { node, .. } => 1 + ID_LEN + addr_len(&node.addr) + 8,
    }
}

/// Bytes of a `Members` body besides its changes (limit and count).
pub const MEMBERS_OVERHEAD: usize = ID_LEN + 2;

/// Bytes of a `MembersPage` body besides its changes (more flag, digests, count).
pub const MEMBERS_PAGE_OVERHEAD: usize = 1 + 8 * MEMBER_BUCKETS + 2;

impl Writer {
    fn change(&mut self, c: &MemberChange) {
        match c {
            MemberChange::Up(m) => {
                self.u8(UP);
                self.node(&m.node);
                self.u64(m.since_ms);
                self.u16(m.weight);
                self.u16(m.points);
                match &m.sip {
                    Some(a) => {
                        self.u8(1);
                        self.addr(a);
                    }
                    None => self.u8(0),
                }
            }
            MemberChange::Down { node, since_ms } => {
                self.u8(DOWN);
                self.node(node);
                self.u64(*since_ms);
            }
        }
    }

    fn digests(&mut self, buckets: &[u64]) -> Result<(), EncodeError> {
        if buckets.len() != MEMBER_BUCKETS {
            return Err(EncodeError::ListTooLong);
        }
        buckets.iter().for_each(|d| self.u64(*d));
        Ok(())
    }

    fn changes(&mut self, list: &[MemberChange]) -> Result<(), EncodeError> {
        self.count(list.len())?;
        list.iter().for_each(|c| self.change(c));
        Ok(())
    }
}

impl Reader<'_> {
    fn change(&mut self) -> Result<MemberChange, DecodeError> {
        Ok(match self.u8()? {
            UP => {
                let node = self.node()?;
                let since_ms = self.u64()?;
                let weight = self.u16()?;
                let points = self.u16()?;
                let sip = if self.bool()? {
                    Some(self.addr()?)
                } else {
                    None
                };
                MemberChange::Up(MemberRecord {
                    node,
                    since_ms,
                    weight,
                    sip,
                    points,
                })
            }
            DOWN => MemberChange::Down {
                node: self.node()?,
                since_ms: self.u64()?,
            },
            _ => return Err(DecodeError::BadValue("member change")),
        })
    }

    fn digests(&mut self) -> Result<Vec<u64>, DecodeError> {
        (0..MEMBER_BUCKETS).map(|_| self.u64()).collect()
    }

    fn changes(&mut self) -> Result<Vec<MemberChange>, DecodeError> {
        let n = self.count(MIN_CHANGE)?;
        (0..n).map(|_| self.change()).collect()
    }
}

pub(super) fn encode(w: &mut Writer, body: &Body) -> Result<(), EncodeError> {
    match body {
        Body::Members { limit, changes } => {
            w.id(limit);
            w.changes(changes)?;
        }
        Body::MembersAck => {}
        Body::MembersDigest { buckets, after } => {
            w.id(after);
            w.digests(buckets)?;
        }
        Body::MembersPage {
            more,
            buckets,
            changes,
        } => {
            w.u8(*more as u8);
            w.digests(buckets)?;
            w.changes(changes)?;
        }
        Body::FindHolder { key } => w.id(key),
        _ => {}
    }
    Ok(())
}

pub(super) fn decode(r: &mut Reader<'_>, kind: u8) -> Result<Body, DecodeError> {
    Ok(match kind {
        31 => Body::Members {
            limit: r.id()?,
            changes: r.changes()?,
        },
        32 => Body::MembersAck,
        33 => Body::MembersDigest {
            after: r.id()?,
            buckets: r.digests()?,
        },
        35 => Body::FindHolder { key: r.id()? },
        _ => Body::MembersPage {
            more: r.bool()?,
            buckets: r.digests()?,
            changes: r.changes()?,
        },
    })
}
