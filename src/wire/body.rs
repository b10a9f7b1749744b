//! The message bodies: one variant per request and reply kind (numbers in `Body::kind`).

use super::{ItemSummary, MemberChange, NodeInfo, Status, WireEntry};
use crate::id::Id;
use std::net::SocketAddr;

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
    /// From a client handle: a transaction on one key, run by the peer (for
    /// the SIP registrar a whole REGISTER: sip::remote).
    ClientTransaction {
        request: Vec<u8>,
    },
    ClientTransactionReply {
        status: Status,
        outcome: Vec<u8>,
    },
    /// From a client handle: ping the peer at `addr` from the node.
    ClientPing {
        addr: SocketAddr,
    },
    ClientPingReply {
        status: Status,
        rtt_us: u32,
    },
    /// From a client handle: a lookup that reports its route.
    ClientTrace {
        key: Id,
    },
    /// Each answered step (the answerer and the step's round trip in µs)
    /// and the node found responsible.
    ClientTraceReply {
        status: Status,
        node: Option<NodeInfo>,
        path: Vec<(NodeInfo, u32)>,
    },
    /// "Ask again with this cookie (and my id), in the header": the answer to
    /// a request from an address not yet proven, when the real answer would
    /// be larger than the request or the request changes state.
    Retry,
    /// Membership changes of a one-hop overlay, spread over a tree: the
    /// receiver applies them and passes them on to the members it knows in
    /// (itself, `limit`).
    Members {
        limit: Id,
        changes: Vec<MemberChange>,
    },
    MembersAck,
    /// "My membership digests, bucket by bucket: send me what differs",
    /// from the first id after `after` on (a page at a time).
    MembersDigest {
        after: Id,
        buckets: Vec<u64>,
    },
    /// Members and removals in the buckets that differ; `more` when the
    /// page could not hold them all (ask again after the last id). The
    /// answerer's own digests tell which buckets it sent whole.
    MembersPage {
        more: bool,
        buckets: Vec<u64>,
        changes: Vec<MemberChange>,
    },
    /// Lookup step of an overlay that places keys by virtual points: "who
    /// holds `key` by your table?" (answered with FindReply; FindSuccessor
    /// stays the ring's question, for joins).
    FindHolder {
        key: Id,
    },
}

impl Body {
    pub(super) fn kind(&self) -> u8 {
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
            Body::ClientTransaction { .. } => 28,
            Body::ClientTransactionReply { .. } => 29,
            Body::ClientInfoReply { .. } => 27,
            Body::Retry => 30,
            Body::Members { .. } => 31,
            Body::MembersAck => 32,
            Body::MembersDigest { .. } => 33,
            Body::MembersPage { .. } => 34,
            Body::FindHolder { .. } => 35,
            Body::ClientPing { .. } => 36,
            Body::ClientPingReply { .. } => 37,
            Body::ClientTrace { .. } => 38,
            Body::ClientTraceReply { .. } => 39,
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
            Body::ClientTransaction { .. } => "client_transaction",
            Body::ClientTransactionReply { .. } => "client_transaction_reply",
            Body::ClientInfoReply { .. } => "client_info_reply",
            Body::ClientPing { .. } => "client_ping",
            Body::ClientPingReply { .. } => "client_ping_reply",
            Body::ClientTrace { .. } => "client_trace",
            Body::ClientTraceReply { .. } => "client_trace_reply",
            Body::Retry => "retry",
            Body::Members { .. } => "members",
            Body::MembersAck => "members_ack",
            Body::MembersDigest { .. } => "members_digest",
            Body::MembersPage { .. } => "members_page",
            Body::FindHolder { .. } => "find_holder",
        }
    }

    /// Whether this body answers a request (it must carry FLAG_RESPONSE).
    /// Requests only client handles send: the node runs them on its own
    /// behalf (and signs their writes), so they need a client credential.
    pub fn is_client_request(&self) -> bool {
        matches!(
            self,
            Body::ClientLookup { .. }
                | Body::ClientPut { .. }
                | Body::ClientGet { .. }
                | Body::ClientInfo { .. }
                | Body::ClientTransaction { .. }
                | Body::ClientPing { .. }
                | Body::ClientTrace { .. }
        )
    }

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
                | Body::ClientTransactionReply { .. }
                | Body::ClientPingReply { .. }
                | Body::ClientTraceReply { .. }
                | Body::Retry
                | Body::MembersAck
                | Body::MembersPage { .. }
        )
    }

    /// Requests that move neighbours or data: they carry the sender's
    /// signature, and the sender's id must derive from the signing key.
    /// (SyncDigest and SyncItems move nothing themselves: they are taken
    /// from neighbours only, and what they lead to is a signed Replicate.)
    pub fn needs_signature(&self) -> bool {
        matches!(
            self,
            Body::Notify | Body::Leaving { .. } | Body::Replicate { .. } | Body::Members { .. }
        )
    }

    /// Requests whose answer is never larger than the request (an ack or a
    /// status): they may be served to an address not yet proven. Any other
    /// request from such an address is answered Retry before it is served,
    /// so that nothing is done twice and no work is done for a spoofer.
    pub fn answer_never_larger(&self) -> bool {
        matches!(
            self,
            Body::Ping
                | Body::Leaving { .. }
                | Body::Store { .. }
                | Body::Replicate { .. }
                | Body::SyncDigest { .. }
                | Body::SyncItems { .. }
                | Body::ClientPut { .. }
                | Body::Members { .. }
        )
    }

    /// Requests a sender may address to a node whose id it does not know yet
    /// (the first contact of a join, a read): none changes state.
    pub fn may_be_unaddressed(&self) -> bool {
        matches!(
            self,
            Body::Ping | Body::FindSuccessor { .. } | Body::GetNeighbors | Body::Fetch { .. }
        ) || self.is_client_request()
    }
}
