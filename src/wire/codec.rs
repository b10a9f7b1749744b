//! Encoding, authentication (HMAC-SHA256 tag) and the decoder that never
//! panics on input; the encoded sizes that paging and batching rely on.

use super::{
    Body, DatagramSigner, Decoded, ItemSummary, Message, NodeInfo, PairProof, Proof, Status,
    WireEntry, FLAG_CLIENT, FLAG_PAIRED, FLAG_RESPONSE, FLAG_SENDER_KEY, FLAG_SIGNED, FLAG_TAGGED,
    HEADER_LEN, MAGIC, MAX_DATAGRAM, MAX_NODE_LIST, MAX_WRITER_LEN, OWNER_LEN, PAIR_PROOF_LEN,
    PROOF_LEN, SIGNATURE_LEN, TAG_LEN, VERSION,
};
use crate::id::{Id, ID_LEN};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

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

/// Encodes and authenticates datagrams for one overlay: peer datagrams with
/// the overlay key, client-handle datagrams (`FLAG_CLIENT`) with the client
/// key, a credential of its own so that a client cannot pass for a member.
#[derive(Clone)]
pub struct Codec {
    overlay: u32,
    key: Option<Hmac<Sha256>>,
    client_key: Option<Hmac<Sha256>>,
    signer: Option<Arc<dyn DatagramSigner>>,
    max_datagram: usize,
}

fn hmac_of(key: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length")
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
            key: key.map(hmac_of),
            client_key: None,
            signer: None,
            max_datagram: max_datagram.min(MAX_DATAGRAM),
        }
    }

    /// The same codec, tagging and checking client-handle datagrams with
    /// `key` (a node's `client_key`, or a UDP client handle's credential).
    pub fn with_client_key(mut self, key: Option<&[u8]>) -> Codec {
        self.client_key = key.map(hmac_of);
        self
    }

    /// The same codec, signing the requests that need it
    /// (`Body::needs_signature`) with a node key.
    pub fn with_signer(mut self, signer: Arc<dyn DatagramSigner>) -> Codec {
        self.signer = Some(signer);
        self
    }

    fn key_for(&self, flags: u8) -> Option<&Hmac<Sha256>> {
        match flags & FLAG_CLIENT {
            0 => self.key.as_ref(),
            _ => self.client_key.as_ref(),
        }
    }

    pub fn overlay(&self) -> u32 {
        self.overlay
    }

    /// Whether datagrams are authenticated (an overlay key is set).
    pub fn is_keyed(&self) -> bool {
        self.key.is_some()
    }

    /// Encodes a message (signed when its kind needs it and this codec has a
    /// signer). Fails only when it would exceed the datagram limit.
    pub fn encode(&self, msg: &Message) -> Result<Vec<u8>, EncodeError> {
        self.encode_with(msg, self.key_for(msg.flags), None)
    }

    /// Encodes a message whose kind needs a proof with a pair proof under
    /// `pair_key` (what this codec's signer shares with the receiver)
    /// instead of a signature.
    pub fn encode_paired(
        &self,
        msg: &Message,
        pair_key: &[u8; 32],
    ) -> Result<Vec<u8>, EncodeError> {
        self.encode_with(msg, self.key_for(msg.flags), Some(pair_key))
    }

    /// Encodes a message without a tag (for a client of the node's UNIX
    /// socket, or a refusal to a client that has no credential).
    pub fn encode_plain(&self, msg: &Message) -> Result<Vec<u8>, EncodeError> {
        self.encode_with(msg, None, None)
    }

    fn encode_with(
        &self,
        msg: &Message,
        key: Option<&Hmac<Sha256>>,
        pair_key: Option<&[u8; 32]>,
    ) -> Result<Vec<u8>, EncodeError> {
        let mut w = Writer(Vec::with_capacity(128));
        w.bytes(&MAGIC);
        w.u8(VERSION);
        w.u8(msg.body.kind());
        let signer = self
            .signer
            .as_ref()
            .filter(|_| msg.body.needs_signature() && msg.flags & FLAG_RESPONSE == 0);
        let mut flags = msg.flags & !(FLAG_TAGGED | FLAG_SIGNED | FLAG_PAIRED | FLAG_SENDER_KEY);
        if key.is_some() {
            flags |= FLAG_TAGGED;
        }
        let pair_key = pair_key.filter(|_| signer.is_some());
        match pair_key {
            Some(_) => flags |= FLAG_PAIRED,
            None if signer.is_some() => flags |= FLAG_SIGNED,
            None => {}
        }
        // Only a response names its sender's key, and only when there is one.
        let sender_key = self
            .signer
            .as_ref()
            .filter(|_| msg.flags & FLAG_SENDER_KEY != 0 && msg.flags & FLAG_RESPONSE != 0)
            .map(|s| s.public());
        if sender_key.is_some() {
            flags |= FLAG_SENDER_KEY;
        }
        w.u8(flags);
        w.u32(self.overlay);
        w.u64(msg.request_id);
        w.u64(msg.timestamp_ms);
        w.bytes(&msg.sender.0);
        w.bytes(&msg.receiver.0);
        w.u64(msg.cookie);
        encode_body(&mut w, &msg.body)?;
        match (signer, pair_key) {
            (Some(signer), Some(pair_key)) => {
                let mut mac = Hmac::<Sha256>::new_from_slice(pair_key).expect("any length");
                mac.update(&w.0);
                let mac = mac.finalize().into_bytes();
                w.bytes(&signer.public());
                w.bytes(&mac);
            }
            (Some(signer), None) => {
                let signature = signer.sign(&w.0);
                w.bytes(&signer.public());
                w.bytes(&signature);
            }
            _ => {}
        }
        if let Some(public) = sender_key {
            w.bytes(&public);
        }
        if let Some(mac) = key {
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

    /// Decodes and authenticates one datagram. Never panics. A client
    /// datagram without a tag is accepted here (a UNIX-socket client needs
    /// none); `decode_full` says whether it carried one.
    pub fn decode(&self, data: &[u8]) -> Result<Message, DecodeError> {
        self.decode_full(data).map(|d| d.msg)
    }

    /// Decodes one datagram, and whether it carried a valid tag.
    pub fn decode_authenticated(&self, data: &[u8]) -> Result<(Message, bool), DecodeError> {
        self.decode_full(data).map(|d| (d.msg, d.tagged))
    }

    /// Decodes one datagram with its tag checked and its proof (if signed)
    /// split off, for the receiver to check when it matters.
    pub fn decode_full(&self, data: &[u8]) -> Result<Decoded, DecodeError> {
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
        let client = flags & FLAG_CLIENT != 0;
        let mut end = match (self.key_for(flags), tagged) {
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
            (Some(_), false) if client => data.len(),
            _ => return Err(DecodeError::BadTag),
        };
        let sender_key = if flags & FLAG_SENDER_KEY != 0 {
            if end < HEADER_LEN + OWNER_LEN {
                return Err(DecodeError::Truncated);
            }
            end -= OWNER_LEN;
            Some(data[end..end + OWNER_LEN].try_into().expect("32 bytes"))
        } else {
            None
        };
        if flags & FLAG_SIGNED != 0 && flags & FLAG_PAIRED != 0 {
            return Err(DecodeError::BadValue("signed and paired"));
        }
        let pair_proof = if flags & FLAG_PAIRED != 0 {
            if end < HEADER_LEN + PAIR_PROOF_LEN {
                return Err(DecodeError::Truncated);
            }
            end -= PAIR_PROOF_LEN;
            Some(PairProof {
                public: data[end..end + OWNER_LEN].try_into().expect("32 bytes"),
                mac: data[end + OWNER_LEN..end + PAIR_PROOF_LEN]
                    .try_into()
                    .expect("32 bytes"),
                len: end,
            })
        } else {
            None
        };
        let proof = if flags & FLAG_SIGNED != 0 {
            if end < HEADER_LEN + PROOF_LEN {
                return Err(DecodeError::Truncated);
            }
            end -= PROOF_LEN;
            let public = data[end..end + OWNER_LEN].try_into().expect("32 bytes");
            let signature = data[end + OWNER_LEN..end + PROOF_LEN]
                .try_into()
                .expect("64 bytes");
            Some(Proof {
                public,
                signature,
                len: end,
            })
        } else {
            None
        };
        let mut r = Reader {
            buf: &data[..end],
            pos: 3,
        };
        let kind = r.u8()?;
        r.pos = 9;
        let request_id = r.u64()?;
        let timestamp_ms = r.u64()?;
        let sender = r.id()?;
        let receiver = r.id()?;
        let cookie = r.u64()?;
        let body = decode_body(&mut r, kind)?;
        if r.pos != r.buf.len() {
            return Err(DecodeError::TrailingBytes);
        }
        if body.is_response() != (flags & FLAG_RESPONSE != 0) {
            return Err(DecodeError::BadValue("response flag"));
        }
        if (proof.is_some() || pair_proof.is_some())
            && !(body.needs_signature() && flags & FLAG_RESPONSE == 0)
        {
            return Err(DecodeError::BadValue("signed flag"));
        }
        if sender_key.is_some() && flags & FLAG_RESPONSE == 0 {
            return Err(DecodeError::BadValue("sender key flag"));
        }
        let msg = Message {
            flags: flags & !(FLAG_TAGGED | FLAG_SIGNED | FLAG_PAIRED | FLAG_SENDER_KEY),
            overlay,
            request_id,
            timestamp_ms,
            sender,
            receiver,
            cookie,
            body,
        };
        Ok(Decoded {
            msg,
            tagged,
            proof,
            pair_proof,
            sender_key,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    TooLarge(usize),
    ListTooLong,
}

pub(super) struct Writer(pub(super) Vec<u8>);

impl Writer {
    pub(super) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(super) fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(super) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(super) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(super) fn bytes(&mut self, v: &[u8]) {
        self.0.extend_from_slice(v);
    }
    pub(super) fn id(&mut self, id: &Id) {
        self.bytes(&id.0);
    }
    pub(super) fn addr(&mut self, addr: &SocketAddr) {
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
    pub(super) fn node(&mut self, n: &NodeInfo) {
        self.id(&n.id);
        self.addr(&n.addr);
    }
    pub(super) fn nodes(&mut self, list: &[NodeInfo]) -> Result<(), EncodeError> {
        if list.len() > MAX_NODE_LIST {
            return Err(EncodeError::ListTooLong);
        }
        self.u8(list.len() as u8);
        for n in list {
            self.node(n);
        }
        Ok(())
    }
    pub(super) fn short_bytes(&mut self, v: &[u8]) -> Result<(), EncodeError> {
        if v.len() > MAX_WRITER_LEN {
            return Err(EncodeError::ListTooLong);
        }
        self.u8(v.len() as u8);
        self.bytes(v);
        Ok(())
    }
    /// A page cursor: 0, or 1 and a writer.
    pub(super) fn cursor(&mut self, c: &Option<Vec<u8>>) -> Result<(), EncodeError> {
        match c {
            None => self.u8(0),
            Some(w) => {
                self.u8(1);
                self.short_bytes(w)?;
            }
        }
        Ok(())
    }
    pub(super) fn entry(&mut self, e: &WireEntry) -> Result<(), EncodeError> {
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
    pub(super) fn count(&mut self, n: usize) -> Result<(), EncodeError> {
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
        | Body::LeavingAck
        | Body::Retry => {}
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
        Body::ClientTransaction { request } => {
            w.count(request.len())?;
            w.bytes(request);
        }
        Body::ClientTransactionReply { status, outcome } => {
            w.u8(*status as u8);
            w.count(outcome.len())?;
            w.bytes(outcome);
        }
        Body::Members { .. }
        | Body::MembersAck
        | Body::MembersDigest { .. }
        | Body::MembersPage { .. }
        | Body::FindHolder { .. } => super::members::encode(w, body)?,
    }
    Ok(())
}

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
        let tombstone = self.bool()?;
        let len = self.u16()? as usize;
        let data = self.take(len)?.to_vec();
        let signature = self.take(SIGNATURE_LEN)?.try_into().expect("a signature");
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
    pub(super) fn count(&mut self, min_item: usize) -> Result<usize, DecodeError> {
        let n = self.u16()? as usize;
        if n * min_item > self.buf.len() - self.pos {
            return Err(DecodeError::Truncated);
        }
        Ok(n)
    }
}

const MIN_ENTRY: usize = 1 + 8 + 4 + 8 + 1 + 2 + SIGNATURE_LEN;

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
