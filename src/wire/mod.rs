//! The wire protocol: a compact, versioned binary datagram format.
//!
//! Every datagram is `header | body | tag`. The header names the protocol
//! version, the overlay (so two overlays on one host never mix), the request id
//! that pairs a response with its request, the sender's clock (for the replay
//! window) and the sender's node id. The tag is a truncated HMAC-SHA256 over
//! everything before it, present when the overlay has a key. The layout is
//! specified in `docs/PROTOCOL.md`; this module is the only code that reads or
//! writes it, and it never panics on input: any defect is a [`DecodeError`].

//!
//! Files: the vocabulary here (constants, flags, nodes, entries, messages);
//! [`body`] the message bodies; [`codec`] encoding, authentication and the
//! decoder; [`status`] the protocol statuses and their mapping to errors.

mod body;
mod codec;
mod decode;
mod members;
mod status;
#[cfg(test)]
mod tests;

pub use body::Body;
pub use codec::{
    fetch_entry_len, overlay_tag, replicate_item_len, summary_item_len, Codec, DecodeError,
    EncodeError,
};
pub use members::{
    member_change_len, MemberChange, MemberRecord, MEMBERS_OVERHEAD, MEMBERS_PAGE_OVERHEAD,
    MEMBER_BUCKETS,
};
pub use status::{error_of, status_of, Status};

use crate::id::{Id, ID_LEN};
use std::net::SocketAddr;

pub const MAGIC: [u8; 2] = *b"CS";

pub const VERSION: u8 = 5;

/// Magic, version, kind, flags, overlay, request id, clock, sender id,
/// receiver id, cookie.
pub const HEADER_LEN: usize = 2 + 1 + 1 + 1 + 4 + 8 + 8 + ID_LEN + ID_LEN + 8;

/// A signed datagram's proof after its body: the sender's node public key
/// and its Ed25519 signature over everything before it.
pub const PROOF_LEN: usize = OWNER_LEN + SIGNATURE_LEN;

pub const TAG_LEN: usize = 16;

/// Hard ceiling for a datagram, whatever the configuration says.
pub const MAX_DATAGRAM: usize = 65_507;

/// Bytes of a writer's public key, the first part of every slot (crate::owner).
pub const OWNER_LEN: usize = 32;

/// Bytes of an entry's signature.
pub const SIGNATURE_LEN: usize = 64;

/// Bytes of a writer tag: an entry's HMAC under a key derived from its
/// writer's secret (crate::owner), which nodes holding that secret check
/// instead of the Ed25519 signature.
pub const WRITER_TAG_LEN: usize = 16;

/// An entry's flags byte: a removal.
pub(crate) const ENTRY_TOMBSTONE: u8 = 0x01;
/// An entry's flags byte: a writer tag follows the signature.
pub(crate) const ENTRY_TAGGED: u8 = 0x02;

/// Longest slot (owner key and label, crate::owner) accepted.
pub const MAX_WRITER_LEN: usize = 255;

/// Longest label a writer may give its slot.
pub const MAX_LABEL_LEN: usize = MAX_WRITER_LEN - OWNER_LEN;

/// Most nodes carried in one list (successor lists, lookup candidates).
pub const MAX_NODE_LIST: usize = 32;

pub const FLAG_RESPONSE: u8 = 0x01;

pub const FLAG_TAGGED: u8 = 0x02;

/// Sent by a client handle (no place on the ring): never adopt the sender as a neighbour.
pub const FLAG_CLIENT: u8 = 0x04;

/// Carries a proof (`PROOF_LEN`) signed with the sender's node key.
pub const FLAG_SIGNED: u8 = 0x08;

/// Sent by a node of a one-hop overlay (every member knows every other):
/// a node of the other routing mode refuses its requests, and it theirs.
pub const FLAG_ONE_HOP: u8 = 0x10;

/// Carries a pair proof (`PAIR_PROOF_LEN`) instead of a signature: the
/// sender's node public key and an HMAC-SHA256, under the key only the
/// sender and the receiver can compute (crate::identity::NodeKey::pair_key),
/// of everything before it. A signature's cost for the price of a hash.
pub const FLAG_PAIRED: u8 = 0x20;

/// A response that carries its sender's node public key (`OWNER_LEN` bytes
/// after the body): the answer to a signed request, so that the asker can
/// prove its next requests to this node with pair proofs.
pub const FLAG_SENDER_KEY: u8 = 0x40;

/// A pair proof: the sender's node public key and the HMAC-SHA256.
pub const PAIR_PROOF_LEN: usize = OWNER_LEN + 32;

/// Signs datagrams with a node key (crate::owner implements it, so that this
/// module needs no signature scheme of its own).
pub trait DatagramSigner: Send + Sync {
    fn public(&self) -> [u8; OWNER_LEN];
    fn sign(&self, bytes: &[u8]) -> [u8; SIGNATURE_LEN];
}

/// The proof a signed datagram carried: its first `len` bytes were signed,
/// so it says, with `public`. Whoever needs it checks it (crate::owner).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proof {
    pub public: [u8; OWNER_LEN],
    pub signature: [u8; SIGNATURE_LEN],
    pub len: usize,
}

/// The pair proof a datagram carried: its first `len` bytes were MACed
/// under the key its sender (`public`) shares with the receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PairProof {
    pub public: [u8; OWNER_LEN],
    pub mac: [u8; 32],
    pub len: usize,
}

/// A decoded datagram with what authenticated it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    pub msg: Message,
    /// It carried a valid HMAC tag (overlay key, or client key for a client's).
    pub tagged: bool,
    pub proof: Option<Proof>,
    pub pair_proof: Option<PairProof>,
    /// A response's sender's node public key (`FLAG_SENDER_KEY`), unchecked.
    pub sender_key: Option<[u8; OWNER_LEN]>,
}

impl Decoded {
    /// Whether it carried a tag or a proof of either kind (then it counts
    /// against the replay window).
    pub fn authenticated(&self) -> bool {
        self.tagged || self.proof.is_some() || self.pair_proof.is_some()
    }
}

/// Whether `addr` stands for a client of a node's UNIX socket: the runtime
/// gives each one an alias in the discard-only prefix `100::/64` (RFC 6666),
/// which no real peer can have. Such a client is trusted by the socket's
/// file permissions, and needs no client key.
pub fn is_unix_alias(addr: &std::net::SocketAddr) -> bool {
    matches!(addr.ip(), std::net::IpAddr::V6(ip) if ip.segments()[..4] == [0x100, 0, 0, 0])
}

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
    pub signature: [u8; SIGNATURE_LEN],
    /// The writer tag of a write on its way from its writer to its holders
    /// (crate::owner): never stored, so a later copy goes without.
    pub writer_tag: Option<[u8; WRITER_TAG_LEN]>,
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
            signature: [0; SIGNATURE_LEN],
            writer_tag: None,
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

/// A decoded datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub flags: u8,
    pub overlay: u32,
    pub request_id: u64,
    /// Sender's wall clock in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    pub sender: Id,
    /// The node the datagram is for (zero: not yet known to the sender),
    /// so that a captured datagram is refused at any other node.
    pub receiver: Id,
    /// In a request: the receiver's cookie for the sender's address (zero:
    /// none yet), which proves the sender receives at that address. In a
    /// response: the responder's cookie for the requester's address.
    pub cookie: u64,
    pub body: Body,
}

/// What a `ClientInfo` asks for (its `what` byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InfoKind {
    /// The node, its phase, writer key, neighbours, fingers and some stored keys.
    Ring,
    /// The node's statistics, one `name value` line each.
    Stats,
    /// The node's counters as OpenMetrics text (`crate::metrics`).
    Metrics,
}

impl InfoKind {
    pub fn code(self) -> u8 {
        match self {
            InfoKind::Ring => 0,
            InfoKind::Stats => 1,
            InfoKind::Metrics => 2,
        }
    }

    /// Any other byte asks for statistics, as it always has.
    pub fn from_code(what: u8) -> InfoKind {
        match what {
            0 => InfoKind::Ring,
            2 => InfoKind::Metrics,
            _ => InfoKind::Stats,
        }
    }
}
