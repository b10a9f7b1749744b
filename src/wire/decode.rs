//! The decoder's half of the codec: a bounds-checked reader that never
//! panics on input, the message bodies it decodes, and the encoded sizes
//! that paging and batching rely on.

use super::codec::DecodeError;
use super::{
    Body, ItemSummary, NodeInfo, Status, WireEntry, ENTRY_TAGGED, ENTRY_TOMBSTONE, MAX_NODE_LIST,
    SIGNATURE_LEN, WRITER_TAG_LEN,
};
use crate::id::{Id, ID_LEN};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub(super) struct Reader<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        if end > self.buf.len() {
            return Err(DecodeError::Truncated);
        }
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    pub(super) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    pub(super) fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::BadValue("bool")),
        }
    }
    pub(super) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().expect("2")))
    }
    pub(super) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4")))
    }
    pub(super) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8")))
    }
    pub(super) fn id(&mut self) -> Result<Id, DecodeError> {
        Ok(Id(self.take(ID_LEN)?.try_into().expect("20")))
    }
    pub(super) fn addr(&mut self) -> Result<SocketAddr, DecodeError> {
        let ip = match self.u8()? {
            4 => IpAddr::V4(Ipv4Addr::from(
                <[u8; 4]>::try_from(self.take(4)?).expect("4"),
            )),
            6 => IpAddr::V6(Ipv6Addr::from(
                <[u8; 16]>::try_from(self.take(16)?).expect("16"),
            )),
            _ => return Err(DecodeError::BadValue("address family")),
        };
        let port = self.u16()?;
        if port == 0 {
            return Err(DecodeError::BadValue("port 0"));
        }
        Ok(SocketAddr::new(ip, port))
    }
    pub(super) fn node(&mut self) -> Result<NodeInfo, DecodeError> {
        Ok(NodeInfo {
            id: self.id()?,
            addr: self.addr()?,
        })
    }
    pub(super) fn nodes(&mut self) -> Result<Vec<NodeInfo>, DecodeError> {
        let n = self.u8()? as usize;
        if n > MAX_NODE_LIST {
            return Err(DecodeError::BadValue("node list length"));
        }
        (0..n).map(|_| self.node()).collect()
    }
    pub(super) fn short_bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let n = self.u8()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    pub(super) fn cursor(&mut self) -> Result<Option<Vec<u8>>, DecodeError> {
        Ok(if self.bool()? {
            Some(self.short_bytes()?)
        } else {
            None
        })
    }
    pub(super) fn entry(&mut self) -> Result<WireEntry, DecodeError> {
        let writer = self.short_bytes()?;
        let version = self.u64()?;
        let lifetime_ms = self.u32()?;
        let expires_ms = self.u64()?;
        let flags = self.u8()?;
        if flags & !(ENTRY_TOMBSTONE | ENTRY_TAGGED) != 0 {
            return Err(DecodeError::BadValue("entry flags"));
        }
        let len = self.u16()? as usize;
        let data = self.take(len)?.to_vec();
        let signature = self.take(SIGNATURE_LEN)?.try_into().expect("a signature");
        let writer_tag = match flags & ENTRY_TAGGED {
            0 => None,
            _ => Some(self.take(WRITER_TAG_LEN)?.try_into().expect("a tag")),
        };
        let tombstone = flags & ENTRY_TOMBSTONE != 0;
        Ok(WireEntry {
            writer,
            version,
            lifetime_ms,
            expires_ms,
            tombstone,
            data,
            signature,
            writer_tag,
        })
    }
    /// A list length, refused early when the remaining bytes cannot hold it.
    pub(super) fn count(&mut self, min_item: usize) -> Result<usize, DecodeError> {
        let n = self.u16()? as usize;
        if n * min_item > self.buf.len() - self.pos {
            return Err(DecodeError::Truncated);
        }
        Ok(n)
    }
}

const MIN_ENTRY: usize = 1 + 8 + 4 + 8 + 1 + 2 + SIGNATURE_LEN;

pub(super) fn decode_body(r: &mut Reader<'_>, kind: u8) -> Result<Body, DecodeError> {
    Ok(match kind {
        1 => Body::Ping,
        2 => Body::Pong,
        3 => Body::FindSuccessor { key: r.id()? },
        4 => Body::FindReply {
            done: r.bool()?,
            nodes: r.nodes()?,
        },
        5 => Body::GetNeighbors,
        6 => Body::Neighbors {
            preds: r.nodes()?,
            succs: r.nodes()?,
        },
        7 => Body::Notify,
        8 => Body::NotifyAck,
        9 => Body::Leaving {
            preds: r.nodes()?,
            succs: r.nodes()?,
        },
        10 => Body::LeavingAck,
        11 => Body::Store {
            key: r.id()?,
            entry: r.entry()?,
        },
        12 => Body::StoreReply {
            status: Status::from_u8(r.u8()?)?,
            copies: r.u8()?,
        },
        13 => Body::Fetch {
            key: r.id()?,
            replica: r.bool()?,
            after: r.cursor()?,
        },
        14 => {
            let status = Status::from_u8(r.u8()?)?;
            let next = r.cursor()?;
            let n = r.count(MIN_ENTRY)?;
            let entries = (0..n).map(|_| r.entry()).collect::<Result<_, _>>()?;
            Body::FetchReply {
                status,
                entries,
                next,
            }
        }
        15 => {
            let n = r.count(ID_LEN + MIN_ENTRY)?;
            let items = (0..n)
                .map(|_| Ok((r.id()?, r.entry()?)))
                .collect::<Result<_, DecodeError>>()?;
            Body::Replicate { items }
        }
        16 => Body::ReplicateAck {
            status: Status::from_u8(r.u8()?)?,
        },
        17 => Body::SyncDigest {
            lo: r.id()?,
            hi: r.id()?,
            digest: r.u64()?,
            count: r.u32()?,
        },
        18 => Body::SyncDigestReply { in_sync: r.bool()? },
        19 => {
            let n = r.count(ID_LEN + 1 + 8)?;
            let items = (0..n)
                .map(|_| {
                    Ok(ItemSummary {
                        key: r.id()?,
                        writer: r.short_bytes()?,
                        version: r.u64()?,
                    })
                })
                .collect::<Result<_, DecodeError>>()?;
            Body::SyncItems { items }
        }
        20 => {
            let n = r.count(2)?;
            let indices = (0..n).map(|_| r.u16()).collect::<Result<_, _>>()?;
            Body::SyncNeed { indices }
        }
        21 => Body::Error {
            status: Status::from_u8(r.u8()?)?,
        },
        22 => Body::ClientLookup { key: r.id()? },
        23 => {
            let status = Status::from_u8(r.u8()?)?;
            let hops = r.u8()?;
            let node = if r.bool()? { Some(r.node()?) } else { None };
            Body::ClientLookupReply { status, node, hops }
        }
        24 => Body::ClientPut {
            key: r.id()?,
            entry: r.entry()?,
        },
        25 => Body::ClientGet {
            key: r.id()?,
            after: r.cursor()?,
        },
        26 => Body::ClientInfo { what: r.u8()? },
        36 => Body::ClientPing { addr: r.addr()? },
        37 => Body::ClientPingReply {
            status: Status::from_u8(r.u8()?)?,
            rtt_us: r.u32()?,
        },
        38 => Body::ClientTrace { key: r.id()? },
        39 => {
            let status = Status::from_u8(r.u8()?)?;
            let node = if r.bool()? { Some(r.node()?) } else { None };
            let n = r.u8()? as usize;
            if n > MAX_NODE_LIST {
                return Err(DecodeError::BadValue("trace length"));
            }
            let path = (0..n)
                .map(|_| Ok((r.node()?, r.u32()?)))
                .collect::<Result<_, DecodeError>>()?;
            Body::ClientTraceReply { status, node, path }
        }
        27 => {
            let n = r.count(1)?;
            Body::ClientInfoReply {
                text: r.take(n)?.to_vec(),
            }
        }
        28 => {
            let n = r.count(1)?;
            Body::ClientTransaction {
                request: r.take(n)?.to_vec(),
            }
        }
        29 => {
            let status = Status::from_u8(r.u8()?)?;
            let n = r.count(1)?;
            Body::ClientTransactionReply {
                status,
                outcome: r.take(n)?.to_vec(),
            }
        }
        30 => Body::Retry,
        31..=35 => super::members::decode(r, kind)?,
        k => return Err(DecodeError::UnknownKind(k)),
    })
}

/// Encoded size of an entry inside a Replicate item (for batching under the datagram limit).
pub fn replicate_item_len(e: &WireEntry) -> usize {
    ID_LEN + fetch_entry_len(e)
}

/// Encoded size of an entry in a FetchReply.
pub fn fetch_entry_len(e: &WireEntry) -> usize {
    let tag = e.writer_tag.map_or(0, |t| t.len());
    MIN_ENTRY + e.writer.len() + e.data.len() + tag
}

/// Encoded size of a sync summary item.
pub fn summary_item_len(s: &ItemSummary) -> usize {
    ID_LEN + 1 + s.writer.len() + 8
}
