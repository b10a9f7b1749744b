//! Encoding, authentication (HMAC-SHA256 tag) and the decoder that never
//! panics on input; the encoded sizes that paging and batching rely on.

use super::{
    Body, DatagramSigner, Decoded, Message, NodeInfo, PairProof, Proof, WireEntry, ENTRY_TAGGED,
    FLAG_CLIENT, FLAG_PAIRED, FLAG_RESPONSE, FLAG_SENDER_KEY, FLAG_SIGNED, FLAG_TAGGED, HEADER_LEN,
    MAGIC, MAX_DATAGRAM, MAX_NODE_LIST, MAX_WRITER_LEN, OWNER_LEN, PAIR_PROOF_LEN, PROOF_LEN,
    TAG_LEN, VERSION,
};
use crate::id::Id;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::net::{IpAddr, SocketAddr};
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
        let tag_flag = if e.writer_tag.is_some() {
            ENTRY_TAGGED
        } else {
            0
        };
        self.u8(e.tombstone as u8 | tag_flag);
        if e.data.len() > u16::MAX as usize {
            return Err(EncodeError::TooLarge(e.data.len()));
        }
        self.u16(e.data.len() as u16);
        self.bytes(&e.data);
        self.bytes(&e.signature);
        if let Some(tag) = &e.writer_tag {
            self.bytes(tag);
        }
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
        Body::ClientPing { addr } => w.addr(addr),
        Body::ClientPingReply { status, rtt_us } => {
            w.u8(*status as u8);
            w.u32(*rtt_us);
        }
        Body::ClientTrace { key } => w.id(key),
        Body::ClientTraceReply { status, node, path } => {
            if path.len() > MAX_NODE_LIST {
                return Err(EncodeError::ListTooLong);
            }
            w.u8(*status as u8);
            match node {
                Some(n) => {
                    w.u8(1);
                    w.node(n);
                }
                None => w.u8(0),
            }
            w.u8(path.len() as u8);
            for (n, rtt) in path {
                w.node(n);
                w.u32(*rtt);
            }
        }
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

use super::decode::decode_body;
pub(super) use super::decode::Reader;
pub use super::decode::{fetch_entry_len, replicate_item_len, summary_item_len};
