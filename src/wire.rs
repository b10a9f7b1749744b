//! The wire protocol: a compact, versioned binary datagram format.
//!
//! Every datagram is `header | body | tag`. The header names the protocol
//! version, the overlay (so two overlays on one host never mix), the request id
//! that pairs a response with its request, the sender's clock (for the replay
//! window) and the sender's node id. The tag is a truncated HMAC-SHA256 over
//! everything before it, present when the overlay has a key. The layout is
//! specified in `docs/PROTOCOL.md`; this module is the only code that reads or
//! writes it, and it never panics on input: any defect is a [`DecodeError`].

use crate::error::Error;
use crate::id::{Id, ID_LEN};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub const MAGIC: [u8; 2] = *b"CS";
pub const VERSION: u8 = 3;
pub const HEADER_LEN: usize = 2 + 1 + 1 + 1 + 4 + 8 + 8 + ID_LEN;
pub const TAG_LEN: usize = 16;
/// Hard ceiling for a datagram, whatever the configuration says.
pub const MAX_DATAGRAM: usize = 65_507;
/// Longest slot (owner key and label, crate::owner) accepted.
pub const MAX_WRITER_LEN: usize = 255;
/// Longest label a writer may give its slot.
pub const MAX_LABEL_LEN: usize = MAX_WRITER_LEN - crate::owner::OWNER_LEN;
/// Most nodes carried in one list (successor lists, lookup candidates).
pub const MAX_NODE_LIST: usize = 32;

pub const FLAG_RESPONSE: u8 = 0x01;
pub const FLAG_TAGGED: u8 = 0x02;
/// Sent by a client handle (no place on the ring): never adopt the sender as a neighbour.
pub const FLAG_CLIENT: u8 = 0x04;

/// The flags byte of a datagram that at least looks like one of ours, before
/// it is decoded (used to route local datagrams; decoding still decides).
pub fn peek_flags(data: &[u8]) -> Option<u8> {
    (data.len() >= HEADER_LEN && data[..2] == MAGIC).then(|| data[4])
}

/// A peer on the ring: its id and where to reach it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeInfo {
    pub id: Id,
    pub addr: SocketAddr,
}

/// Outcome carried in replies. Numbers are part of the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    Ok = 0,
    /// The receiver is not responsible for the key (the ring moved): look up again.
    NotResponsible = 1,
    TooLarge = 2,
    /// A per-key or per-node limit is reached.
    Full = 3,
    /// A newer version of the entry is already stored.
    Stale = 4,
    BadRequest = 5,
    NotFound = 6,
    /// The receiver is shutting down.
    Leaving = 7,
    /// The operation run on the client's behalf timed out.
    Timeout = 8,
    /// No live node could be reached.
    NoRoute = 9,
    /// The receiver has not joined a ring.
    NotJoined = 10,
}

impl Status {
    fn from_u8(v: u8) -> Result<Status, DecodeError> {
        Ok(match v {
            0 => Status::Ok,
            1 => Status::NotResponsible,
            2 => Status::TooLarge,
            3 => Status::Full,
            4 => Status::Stale,
            5 => Status::BadRequest,
            6 => Status::NotFound,
            7 => Status::Leaving,
            8 => Status::Timeout,
            9 => Status::NoRoute,
            10 => Status::NotJoined,
            _ => return Err(DecodeError::BadValue("status")),
        })
    }
}

/// One dictionary entry as it travels: the writer's slot in a key's dictionary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireEntry {
    /// The slot: the owner's public key, then the writer's label (crate::owner).
    /// In a ClientPut, the label alone: the node adds its key and signs.
    pub writer: Vec<u8>,
    pub version: u64,
    /// Remaining lifetime in milliseconds (relative: peers' clocks may differ).
    pub lifetime_ms: u32,
    /// Wall-clock expiry the writer signed (ms since the Unix epoch): a copy
    /// is never kept longer than this, whatever lifetime it arrives with.
    pub expires_ms: u64,
    /// A removal marker that keeps older writes from resurrecting the entry.
    pub tombstone: bool,
    pub data: Vec<u8>,
    /// The owner's Ed25519 signature (crate::owner); zeros in a ClientPut.
    pub signature: [u8; 64],
}

impl WireEntry {
    /// An entry as a writer asks for it: `writer` is its label, and the node
    /// that runs the write puts it in its own slot and signs it.
    pub fn unsigned(
        writer: Vec<u8>,
        version: u64,
        lifetime_ms: u32,
        tombstone: bool,
        data: Vec<u8>,
    ) -> WireEntry {
        WireEntry {
            writer,
            version,
            lifetime_ms,
            expires_ms: 0,
            tombstone,
            data,
            signature: [0; 64],
        }
    }
}

/// (key, writer, version): enough to tell which side of a sync holds what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemSummary {
    pub key: Id,
    pub writer: Vec<u8>,
    pub version: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    Ping,
    Pong,
    /// Iterative lookup step: "who is responsible for `key`, or who is closer?"
    FindSuccessor {
        key: Id,
    },
    /// `done`: nodes[0] is responsible and the rest are its successors.
    /// Otherwise nodes are closer candidates, best first.
    FindReply {
        done: bool,
        nodes: Vec<NodeInfo>,
    },
    GetNeighbors,
    /// preds[0] is the predecessor; succs[0] the successor.
    Neighbors {
        preds: Vec<NodeInfo>,
        succs: Vec<NodeInfo>,
    },
    /// "I think I am your predecessor."
    Notify,
    NotifyAck,
    /// The sender leaves the ring; these were its neighbours.
    Leaving {
        preds: Vec<NodeInfo>,
        succs: Vec<NodeInfo>,
    },
    LeavingAck,
    /// Write one entry at the node responsible for `key`.
    Store {
        key: Id,
        entry: WireEntry,
    },
    StoreReply {
        status: Status,
        copies: u8,
    },
    /// Read one page of a key's dictionary: the entries whose writer sorts after
    /// `after` (all when None), as many as fit. `replica`: answer from local data
    /// without the responsibility check (used by a new primary to read its successor).
    Fetch {
        key: Id,
        replica: bool,
        after: Option<Vec<u8>>,
    },
    /// `next`: the cursor for the following page, None when this page is the last.
    FetchReply {
        status: Status,
        entries: Vec<WireEntry>,
        next: Option<Vec<u8>>,
    },
    /// Push copies (replication, handoff, repair); no responsibility check.
    Replicate {
        items: Vec<(Id, WireEntry)>,
    },
    ReplicateAck {
        status: Status,
    },
    /// Digest of the live entries in (lo, hi]: equal digests mean nothing to sync.
    SyncDigest {
        lo: Id,
        hi: Id,
        digest: u64,
        count: u32,
    },
    SyncDigestReply {
        in_sync: bool,
    },
    /// A batch of what the sender holds; the receiver answers with what it lacks.
    SyncItems {
        items: Vec<ItemSummary>,
    },
    SyncNeed {
        indices: Vec<u16>,
    },
    Error {
        status: Status,
    },
    /// From a client handle: run a whole lookup on the client's behalf.
    ClientLookup {
        key: Id,
    },
    ClientLookupReply {
        status: Status,
        node: Option<NodeInfo>,
        hops: u8,
    },
    /// From a client handle: a whole put (answered with StoreReply).
    ClientPut {
        key: Id,
        entry: WireEntry,
    },
    /// From a client handle: one page of a get (answered with FetchReply).
    ClientGet {
        key: Id,
        after: Option<Vec<u8>>,
    },
    /// From a client handle: a text report (0 = ring neighbours, 1 = statistics).
    ClientInfo {
        what: u8,
    },
    ClientInfoReply {
        text: Vec<u8>,
    },
    /// From a client handle: a whole REGISTER, run by the peer (sip::remote).
    ClientRegister {
        request: Vec<u8>,
    },
    ClientRegisterReply {
        status: Status,
        outcome: Vec<u8>,
    },
}

impl Body {
    fn kind(&self) -> u8 {
        match self {
            Body::Ping => 1,
            Body::Pong => 2,
            Body::FindSuccessor { .. } => 3,
            Body::FindReply { .. } => 4,
            Body::GetNeighbors => 5,
            Body::Neighbors { .. } => 6,
            Body::Notify => 7,
            Body::NotifyAck => 8,
            Body::Leaving { .. } => 9,
            Body::LeavingAck => 10,
            Body::Store { .. } => 11,
            Body::StoreReply { .. } => 12,
            Body::Fetch { .. } => 13,
            Body::FetchReply { .. } => 14,
            Body::Replicate { .. } => 15,
            Body::ReplicateAck { .. } => 16,
            Body::SyncDigest { .. } => 17,
            Body::SyncDigestReply { .. } => 18,
            Body::SyncItems { .. } => 19,
            Body::SyncNeed { .. } => 20,
            Body::Error { .. } => 21,
            Body::ClientLookup { .. } => 22,
            Body::ClientLookupReply { .. } => 23,
            Body::ClientPut { .. } => 24,
            Body::ClientGet { .. } => 25,
            Body::ClientInfo { .. } => 26,
            Body::ClientRegister { .. } => 28,
            Body::ClientRegisterReply { .. } => 29,
            Body::ClientInfoReply { .. } => 27,
        }
    }

    /// Short name for logs and statistics.
    pub fn name(&self) -> &'static str {
        match self {
            Body::Ping => "ping",
            Body::Pong => "pong",
            Body::FindSuccessor { .. } => "find_successor",
            Body::FindReply { .. } => "find_reply",
            Body::GetNeighbors => "get_neighbors",
            Body::Neighbors { .. } => "neighbors",
            Body::Notify => "notify",
            Body::NotifyAck => "notify_ack",
            Body::Leaving { .. } => "leaving",
            Body::LeavingAck => "leaving_ack",
            Body::Store { .. } => "store",
            Body::StoreReply { .. } => "store_reply",
            Body::Fetch { .. } => "fetch",
            Body::FetchReply { .. } => "fetch_reply",
            Body::Replicate { .. } => "replicate",
            Body::ReplicateAck { .. } => "replicate_ack",
            Body::SyncDigest { .. } => "sync_digest",
            Body::SyncDigestReply { .. } => "sync_digest_reply",
            Body::SyncItems { .. } => "sync_items",
            Body::SyncNeed { .. } => "sync_need",
            Body::Error { .. } => "error",
            Body::ClientLookup { .. } => "client_lookup",
            Body::ClientLookupReply { .. } => "client_lookup_reply",
            Body::ClientPut { .. } => "client_put",
            Body::ClientGet { .. } => "client_get",
            Body::ClientInfo { .. } => "client_info",
            Body::ClientRegister { .. } => "client_register",
            Body::ClientRegisterReply { .. } => "client_register_reply",
            Body::ClientInfoReply { .. } => "client_info_reply",
        }
    }

    /// Whether this body answers a request (it must carry FLAG_RESPONSE).
    pub fn is_response(&self) -> bool {
        matches!(
            self,
            Body::Pong
                | Body::FindReply { .. }
                | Body::Neighbors { .. }
                | Body::NotifyAck
                | Body::LeavingAck
                | Body::StoreReply { .. }
                | Body::FetchReply { .. }
                | Body::ReplicateAck { .. }
                | Body::SyncDigestReply { .. }
                | Body::SyncNeed { .. }
                | Body::Error { .. }
                | Body::ClientLookupReply { .. }
                | Body::ClientInfoReply { .. }
                | Body::ClientRegisterReply { .. }
        )
    }
}

/// A decoded datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub flags: u8,
    pub overlay: u32,
    pub request_id: u64,
    /// Sender's wall clock in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    pub sender: Id,
    pub body: Body,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    Truncated,
    BadMagic,
    BadVersion(u8),
    UnknownKind(u8),
    WrongOverlay,
    /// Missing, unexpected or wrong authentication tag.
    BadTag,
    TooLong,
    BadValue(&'static str),
    TrailingBytes,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

/// The 32-bit overlay tag carried by every datagram, derived from the overlay name.
pub fn overlay_tag(name: &str) -> u32 {
    let id = Id::hash(format!("chordsip-overlay:{name}").as_bytes());
    u32::from_be_bytes(id.0[..4].try_into().expect("4 bytes"))
}

/// Encodes and authenticates datagrams for one overlay.
#[derive(Clone)]
pub struct Codec {
    overlay: u32,
    key: Option<Hmac<Sha256>>,
    max_datagram: usize,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field("overlay", &self.overlay)
            .field("keyed", &self.key.is_some())
            .finish()
    }
}

impl Codec {
    pub fn new(overlay_name: &str, key: Option<&[u8]>, max_datagram: usize) -> Codec {
        Codec {
            overlay: overlay_tag(overlay_name),
            key: key.map(|k| Hmac::<Sha256>::new_from_slice(k).expect("HMAC takes any key length")),
            max_datagram: max_datagram.min(MAX_DATAGRAM),
        }
    }

    pub fn overlay(&self) -> u32 {
        self.overlay
    }

    /// Whether datagrams are authenticated (an overlay key is set).
    pub fn is_keyed(&self) -> bool {
        self.key.is_some()
    }

    pub fn max_datagram(&self) -> usize {
        self.max_datagram
    }

    /// Encodes a message. Fails only when it would exceed the datagram limit.
    pub fn encode(&self, msg: &Message) -> Result<Vec<u8>, EncodeError> {
        let mut w = Writer(Vec::with_capacity(128));
        w.bytes(&MAGIC);
        w.u8(VERSION);
        w.u8(msg.body.kind());
        let mut flags = msg.flags & !FLAG_TAGGED;
        if self.key.is_some() {
            flags |= FLAG_TAGGED;
        }
        w.u8(flags);
        w.u32(self.overlay);
        w.u64(msg.request_id);
        w.u64(msg.timestamp_ms);
        w.bytes(&msg.sender.0);
        encode_body(&mut w, &msg.body)?;
        if let Some(mac) = &self.key {
            let mut mac = mac.clone();
            mac.update(&w.0);
            let tag = mac.finalize().into_bytes();
            w.bytes(&tag[..TAG_LEN]);
        }
        if w.0.len() > self.max_datagram {
            return Err(EncodeError::TooLarge(w.0.len()));
        }
        Ok(w.0)
    }

    /// Decodes and authenticates one datagram. Never panics.
    pub fn decode(&self, data: &[u8]) -> Result<Message, DecodeError> {
        if data.len() > self.max_datagram {
            return Err(DecodeError::TooLong);
        }
        if data.len() < HEADER_LEN {
            return Err(DecodeError::Truncated);
        }
        if data[..2] != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        if data[2] != VERSION {
            return Err(DecodeError::BadVersion(data[2]));
        }
        let flags = data[4];
        let overlay = u32::from_be_bytes(data[5..9].try_into().expect("4 bytes"));
        if overlay != self.overlay {
            return Err(DecodeError::WrongOverlay);
        }
        let tagged = flags & FLAG_TAGGED != 0;
        let signed_len = match (&self.key, tagged) {
            (Some(mac), true) => {
                if data.len() < HEADER_LEN + TAG_LEN {
                    return Err(DecodeError::Truncated);
                }
                let split = data.len() - TAG_LEN;
                let mut mac = mac.clone();
                mac.update(&data[..split]);
                mac.verify_truncated_left(&data[split..])
                    .map_err(|_| DecodeError::BadTag)?;
                split
            }
            (None, false) => data.len(),
            _ => return Err(DecodeError::BadTag),
        };
        let mut r = Reader {
            buf: &data[..signed_len],
            pos: 3,
        };
        let kind = r.u8()?;
        r.pos = 9;
        let request_id = r.u64()?;
        let timestamp_ms = r.u64()?;
        let sender = r.id()?;
        let body = decode_body(&mut r, kind)?;
        if r.pos != r.buf.len() {
            return Err(DecodeError::TrailingBytes);
        }
        if body.is_response() != (flags & FLAG_RESPONSE != 0) {
            return Err(DecodeError::BadValue("response flag"));
        }
        Ok(Message {
            flags: flags & !FLAG_TAGGED,
            overlay,
            request_id,
            timestamp_ms,
            sender,
            body,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    TooLarge(usize),
    ListTooLong,
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.0.extend_from_slice(v);
    }
    fn id(&mut self, id: &Id) {
        self.bytes(&id.0);
    }
    fn addr(&mut self, addr: &SocketAddr) {
        match addr.ip() {
            IpAddr::V4(ip) => {
                self.u8(4);
                self.bytes(&ip.octets());
            }
            IpAddr::V6(ip) => {
                self.u8(6);
                self.bytes(&ip.octets());
            }
        }
        self.u16(addr.port());
    }
    fn node(&mut self, n: &NodeInfo) {
        self.id(&n.id);
        self.addr(&n.addr);
    }
    fn nodes(&mut self, list: &[NodeInfo]) -> Result<(), EncodeError> {
        if list.len() > MAX_NODE_LIST {
            return Err(EncodeError::ListTooLong);
        }
        self.u8(list.len() as u8);
        for n in list {
            self.node(n);
        }
        Ok(())
    }
    fn short_bytes(&mut self, v: &[u8]) -> Result<(), EncodeError> {
        if v.len() > MAX_WRITER_LEN {
            return Err(EncodeError::ListTooLong);
        }
        self.u8(v.len() as u8);
        self.bytes(v);
        Ok(())
    }
    /// A page cursor: 0, or 1 and a writer.
    fn cursor(&mut self, c: &Option<Vec<u8>>) -> Result<(), EncodeError> {
        match c {
            None => self.u8(0),
            Some(w) => {
                self.u8(1);
                self.short_bytes(w)?;
            }
        }
        Ok(())
    }
    fn entry(&mut self, e: &WireEntry) -> Result<(), EncodeError> {
        self.short_bytes(&e.writer)?;
        self.u64(e.version);
        self.u32(e.lifetime_ms);
        self.u64(e.expires_ms);
        self.u8(e.tombstone as u8);
        if e.data.len() > u16::MAX as usize {
            return Err(EncodeError::TooLarge(e.data.len()));
        }
        self.u16(e.data.len() as u16);
        self.bytes(&e.data);
        self.bytes(&e.signature);
        Ok(())
    }
    fn count(&mut self, n: usize) -> Result<(), EncodeError> {
        if n > u16::MAX as usize {
            return Err(EncodeError::ListTooLong);
        }
        self.u16(n as u16);
        Ok(())
    }
}

fn encode_body(w: &mut Writer, body: &Body) -> Result<(), EncodeError> {
    match body {
        Body::Ping
        | Body::Pong
        | Body::GetNeighbors
        | Body::Notify
        | Body::NotifyAck
        | Body::LeavingAck => {}
        Body::FindSuccessor { key } => w.id(key),
        Body::FindReply { done, nodes } => {
            w.u8(*done as u8);
            w.nodes(nodes)?;
        }
        Body::Neighbors { preds, succs } | Body::Leaving { preds, succs } => {
            w.nodes(preds)?;
            w.nodes(succs)?;
        }
        Body::Store { key, entry } => {
            w.id(key);
            w.entry(entry)?;
        }
        Body::StoreReply { status, copies } => {
            w.u8(*status as u8);
            w.u8(*copies);
        }
        Body::Fetch {
            key,
            replica,
            after,
        } => {
            w.id(key);
            w.u8(*replica as u8);
            w.cursor(after)?;
        }
        Body::FetchReply {
            status,
            entries,
            next,
        } => {
            w.u8(*status as u8);
            w.cursor(next)?;
            w.count(entries.len())?;
            for e in entries {
                w.entry(e)?;
            }
        }
        Body::Replicate { items } => {
            w.count(items.len())?;
            for (key, e) in items {
                w.id(key);
                w.entry(e)?;
            }
        }
        Body::ReplicateAck { status } | Body::Error { status } => w.u8(*status as u8),
        Body::SyncDigest {
            lo,
            hi,
            digest,
            count,
        } => {
            w.id(lo);
            w.id(hi);
            w.u64(*digest);
            w.u32(*count);
        }
        Body::SyncDigestReply { in_sync } => w.u8(*in_sync as u8),
        Body::SyncItems { items } => {
            w.count(items.len())?;
            for it in items {
                w.id(&it.key);
                w.short_bytes(&it.writer)?;
                w.u64(it.version);
            }
        }
        Body::SyncNeed { indices } => {
            w.count(indices.len())?;
            for i in indices {
                w.u16(*i);
            }
        }
        Body::ClientLookup { key } => w.id(key),
        Body::ClientGet { key, after } => {
            w.id(key);
            w.cursor(after)?;
        }
        Body::ClientLookupReply { status, node, hops } => {
            w.u8(*status as u8);
            w.u8(*hops);
            match node {
                Some(n) => {
                    w.u8(1);
                    w.node(n);
                }
                None => w.u8(0),
            }
        }
        Body::ClientPut { key, entry } => {
            w.id(key);
            w.entry(entry)?;
        }
        Body::ClientInfo { what } => w.u8(*what),
        Body::ClientInfoReply { text } => {
            w.count(text.len())?;
            w.bytes(text);
        }
        Body::ClientRegister { request } => {
            w.count(request.len())?;
            w.bytes(request);
        }
        Body::ClientRegisterReply { status, outcome } => {
            w.u8(*status as u8);
            w.count(outcome.len())?;
            w.bytes(outcome);
        }
    }
    Ok(())
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        if end > self.buf.len() {
            return Err(DecodeError::Truncated);
        }
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::BadValue("bool")),
        }
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().expect("2")))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn id(&mut self) -> Result<Id, DecodeError> {
        Ok(Id(self.take(ID_LEN)?.try_into().expect("20")))
    }
    fn addr(&mut self) -> Result<SocketAddr, DecodeError> {
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
    fn node(&mut self) -> Result<NodeInfo, DecodeError> {
        Ok(NodeInfo {
            id: self.id()?,
            addr: self.addr()?,
        })
    }
    fn nodes(&mut self) -> Result<Vec<NodeInfo>, DecodeError> {
        let n = self.u8()? as usize;
        if n > MAX_NODE_LIST {
            return Err(DecodeError::BadValue("node list length"));
        }
        (0..n).map(|_| self.node()).collect()
    }
    fn short_bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let n = self.u8()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    fn cursor(&mut self) -> Result<Option<Vec<u8>>, DecodeError> {
        Ok(if self.bool()? {
            Some(self.short_bytes()?)
        } else {
            None
        })
    }
    fn entry(&mut self) -> Result<WireEntry, DecodeError> {
        let writer = self.short_bytes()?;
        let version = self.u64()?;
        let lifetime_ms = self.u32()?;
        let expires_ms = self.u64()?;
        let tombstone = self.bool()?;
        let len = self.u16()? as usize;
        let data = self.take(len)?.to_vec();
        let signature = self.take(64)?.try_into().expect("64 bytes");
        Ok(WireEntry {
            writer,
            version,
            lifetime_ms,
            expires_ms,
            tombstone,
            data,
            signature,
        })
    }
    /// A list length, refused early when the remaining bytes cannot hold it.
    fn count(&mut self, min_item: usize) -> Result<usize, DecodeError> {
        let n = self.u16()? as usize;
        if n * min_item > self.buf.len() - self.pos {
            return Err(DecodeError::Truncated);
        }
        Ok(n)
    }
}

const MIN_ENTRY: usize = 1 + 8 + 4 + 8 + 1 + 2 + 64;

fn decode_body(r: &mut Reader<'_>, kind: u8) -> Result<Body, DecodeError> {
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
        27 => {
            let n = r.count(1)?;
            Body::ClientInfoReply {
                text: r.take(n)?.to_vec(),
            }
        }
        28 => {
            let n = r.count(1)?;
            Body::ClientRegister {
                request: r.take(n)?.to_vec(),
            }
        }
        29 => {
            let status = Status::from_u8(r.u8()?)?;
            let n = r.count(1)?;
            Body::ClientRegisterReply {
                status,
                outcome: r.take(n)?.to_vec(),
            }
        }
        k => return Err(DecodeError::UnknownKind(k)),
    })
}

/// Encoded size of an entry inside a Replicate item (for batching under the datagram limit).
pub fn replicate_item_len(e: &WireEntry) -> usize {
    ID_LEN + MIN_ENTRY + e.writer.len() + e.data.len()
}

/// Encoded size of an entry in a FetchReply.
pub fn fetch_entry_len(e: &WireEntry) -> usize {
    MIN_ENTRY + e.writer.len() + e.data.len()
}

/// Encoded size of a sync summary item.
pub fn summary_item_len(s: &ItemSummary) -> usize {
    ID_LEN + 1 + s.writer.len() + 8
}

// ----- statuses and errors -------------------------------------------

/// Protocol status for an error reported to a client handle.
pub fn status_of(e: &Error) -> Status {
    match e {
        Error::Timeout => Status::Timeout,
        Error::NoRoute | Error::JoinFailed => Status::NoRoute,
        Error::NotJoined => Status::NotJoined,
        Error::TooLarge => Status::TooLarge,
        Error::Full => Status::Full,
        Error::Stale => Status::Stale,
        Error::Shutdown => Status::Leaving,
        _ => Status::BadRequest,
    }
}

/// The error a client handle reports for a protocol status.
pub fn error_of(s: Status) -> Error {
    match s {
        Status::Timeout => Error::Timeout,
        Status::NoRoute | Status::NotResponsible => Error::NoRoute,
        Status::NotJoined => Error::NotJoined,
        Status::TooLarge => Error::TooLarge,
        Status::Full => Error::Full,
        Status::Stale => Error::Stale,
        Status::Leaving => Error::Shutdown,
        Status::BadRequest => Error::InvalidArgument("request refused by the peer".into()),
        Status::NotFound | Status::Ok => Error::Refused(format!("{s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(i: u64) -> NodeInfo {
        NodeInfo {
            id: Id::from_u64(i),
            addr: format!("127.0.0.{}:{}", i % 250 + 1, 4000 + i)
                .parse()
                .unwrap(),
        }
    }

    fn entry(i: u8) -> WireEntry {
        WireEntry {
            writer: vec![i; 5],
            version: 7 + i as u64,
            lifetime_ms: 60_000,
            expires_ms: 1_700_000_000_000 + i as u64,
            tombstone: i % 2 == 0,
            data: vec![i; 30],
            signature: [i; 64],
        }
    }

    fn all_bodies() -> Vec<Body> {
        let v6: SocketAddr = "[::1]:5060".parse().unwrap();
        vec![
            Body::Ping,
            Body::Pong,
            Body::FindSuccessor { key: Id::MAX },
            Body::FindReply {
                done: true,
                nodes: vec![
                    node(1),
                    NodeInfo {
                        id: Id::ZERO,
                        addr: v6,
                    },
                ],
            },
            Body::GetNeighbors,
            Body::Neighbors {
                preds: vec![node(3)],
                succs: (0..8).map(node).collect(),
            },
            Body::Notify,
            Body::NotifyAck,
            Body::Leaving {
                preds: vec![],
                succs: vec![node(9)],
            },
            Body::LeavingAck,
            Body::Store {
                key: Id::from_u64(5),
                entry: entry(1),
            },
            Body::StoreReply {
                status: Status::Stale,
                copies: 3,
            },
            Body::Fetch {
                key: Id::from_u64(77),
                replica: true,
                after: None,
            },
            Body::Fetch {
                key: Id::from_u64(77),
                replica: false,
                after: Some(b"dev-1".to_vec()),
            },
            Body::FetchReply {
                status: Status::Ok,
                entries: vec![entry(1), entry(2)],
                next: None,
            },
            Body::FetchReply {
                status: Status::Ok,
                entries: vec![entry(1)],
                next: Some(b"w".to_vec()),
            },
            Body::Replicate {
                items: vec![(Id::from_u64(1), entry(3))],
            },
            Body::ReplicateAck { status: Status::Ok },
            Body::SyncDigest {
                lo: Id::ZERO,
                hi: Id::MAX,
                digest: 0xdead_beef,
                count: 12,
            },
            Body::SyncDigestReply { in_sync: false },
            Body::SyncItems {
                items: vec![ItemSummary {
                    key: Id::from_u64(3),
                    writer: b"dev".to_vec(),
                    version: 9,
                }],
            },
            Body::SyncNeed {
                indices: vec![0, 4, 9],
            },
            Body::Error {
                status: Status::BadRequest,
            },
            Body::ClientLookup {
                key: Id::from_u64(9),
            },
            Body::ClientLookupReply {
                status: Status::Ok,
                node: Some(node(4)),
                hops: 3,
            },
            Body::ClientLookupReply {
                status: Status::NotFound,
                node: None,
                hops: 0,
            },
            Body::ClientPut {
                key: Id::from_u64(2),
                entry: entry(5),
            },
            Body::ClientGet {
                key: Id::from_u64(2),
                after: None,
            },
            Body::ClientGet {
                key: Id::from_u64(2),
                after: Some(vec![0xff; 3]),
            },
            Body::ClientInfo { what: 1 },
            Body::ClientInfoReply {
                text: b"successor 127.0.0.1:5000".to_vec(),
            },
            Body::ClientRegister {
                request: b"\x00\x01a".to_vec(),
            },
            Body::ClientRegisterReply {
                status: Status::Ok,
                outcome: vec![0, 1, 2],
            },
        ]
    }

    fn msg(body: Body) -> Message {
        Message {
            flags: if body.is_response() { FLAG_RESPONSE } else { 0 },
            overlay: overlay_tag("test"),
            request_id: 0x0102_0304_0506_0708,
            timestamp_ms: 1_700_000_000_000,
            sender: Id::from_name("sender"),
            body,
        }
    }

    #[test]
    fn every_body_round_trips_with_and_without_key() {
        for key in [None, Some(&b"secret"[..])] {
            let codec = Codec::new("test", key, 8192);
            for body in all_bodies() {
                let m = msg(body);
                let bytes = codec.encode(&m).unwrap();
                assert_eq!(codec.decode(&bytes).unwrap(), m, "{}", m.body.name());
            }
        }
    }

    #[test]
    fn wrong_overlay_and_wrong_key_are_refused() {
        let a = Codec::new("a", Some(b"k1"), 8192);
        let b = Codec::new("b", Some(b"k1"), 8192);
        let c = Codec::new("a", Some(b"k2"), 8192);
        let open = Codec::new("a", None, 8192);
        let bytes = a.encode(&msg(Body::Ping)).unwrap();
        assert_eq!(b.decode(&bytes), Err(DecodeError::WrongOverlay));
        assert_eq!(c.decode(&bytes), Err(DecodeError::BadTag));
        assert_eq!(open.decode(&bytes), Err(DecodeError::BadTag));
        let plain = open.encode(&msg(Body::Ping)).unwrap();
        assert_eq!(a.decode(&plain), Err(DecodeError::BadTag));
    }

    #[test]
    fn any_flipped_bit_breaks_the_tag() {
        let codec = Codec::new("a", Some(b"key"), 8192);
        let bytes = codec
            .encode(&msg(Body::FindSuccessor { key: Id::MAX }))
            .unwrap();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut forged = bytes.clone();
                forged[i] ^= 1 << bit;
                assert!(codec.decode(&forged).is_err(), "byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        for key in [None, Some(&b"k"[..])] {
            let codec = Codec::new("t", key, 8192);
            for body in all_bodies() {
                let bytes = codec.encode(&msg(body)).unwrap();
                for len in 0..bytes.len() {
                    assert!(codec.decode(&bytes[..len]).is_err());
                }
            }
        }
    }

    #[test]
    fn oversized_is_refused_both_ways() {
        let codec = Codec::new("t", None, 200);
        let big = msg(Body::Store {
            key: Id::ZERO,
            entry: WireEntry {
                writer: vec![],
                version: 1,
                lifetime_ms: 1,
                expires_ms: 0,
                tombstone: false,
                data: vec![0; 500],
                signature: [0; 64],
            },
        });
        assert!(matches!(codec.encode(&big), Err(EncodeError::TooLarge(_))));
        let wide = Codec::new("t", None, 8192);
        let bytes = wide.encode(&big).unwrap();
        assert_eq!(codec.decode(&bytes), Err(DecodeError::TooLong));
    }

    proptest! {
        #[test]
        fn decoder_survives_garbage(data in prop::collection::vec(any::<u8>(), 0..600)) {
            let codec = Codec::new("t", None, 8192);
            let _ = codec.decode(&data);
        }

        #[test]
        fn decoder_survives_mutated_valid_datagrams(
            which in 0usize..28,
            edits in prop::collection::vec((any::<u16>(), any::<u8>()), 1..8),
        ) {
            let codec = Codec::new("test", None, 8192);
            let mut bytes = codec.encode(&msg(all_bodies()[which].clone())).unwrap();
            for (pos, val) in edits {
                let i = pos as usize % bytes.len();
                bytes[i] = val;
            }
            let _ = codec.decode(&bytes);
        }
    }
}
