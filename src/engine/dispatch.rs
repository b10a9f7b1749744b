//! Routes each request, response and failure to the concern that handles it.
//! `OnAnswer` is what a request remembers until it is answered or given up on.

use super::dict::{GetJob, PutJob};
use super::lookup::Lookup;
use super::members::MemberSync;
use super::primary::ReplyTo;
use super::rpc::Rpc;
use super::{Engine, OpResult};
use crate::config::LogLevel;
use crate::error::Error;
use crate::id::Id;
use crate::types::OpId;
use crate::wire::{Body, ItemSummary, MemberChange, Message, NodeInfo, Status, FLAG_CLIENT};
use std::net::SocketAddr;

/// What to do when a request is answered or given up on.
#[derive(Debug)]
pub(super) enum OnAnswer {
    LookupStep {
        lookup: u64,
    },
    Stabilize {
        succ: NodeInfo,
    },
    CheckPred {
        pred: NodeInfo,
    },
    Notify,
    Store(PutJob),
    Fetch(GetJob),
    FetchFallback {
        key: Id,
        after: Option<Vec<u8>>,
        reply: ReplyTo,
    },
    /// A Replicate carrying the copies of several writes (one per entry of
    /// `pendings`, in the order of its items).
    ReplicateFor {
        pendings: Vec<u64>,
    },
    Push,
    /// One entry of a key this node no longer holds, written to its primary.
    Handoff {
        key: Id,
    },
    SyncDigest {
        peer: NodeInfo,
        lo: Id,
        hi: Id,
    },
    SyncItems {
        peer: NodeInfo,
        items: Vec<ItemSummary>,
    },
    /// Part of a graceful leave; `successor` names the handoff target, whose
    /// failure moves the handoff to the next successor.
    LeaveStep {
        successor: Option<Id>,
    },
    Ping {
        op: OpId,
    },
    /// Asking the node the location cache names for a lookup's key whether
    /// it is responsible.
    OwnerProbe {
        lookup: u64,
        owner: NodeInfo,
    },
    /// Asking the node a lookup ended at whether it is responsible.
    Verify {
        id: u64,
        lookup: Box<Lookup>,
        nodes: Vec<NodeInfo>,
        vouched_by: NodeInfo,
    },
    MergeProbe {
        node: NodeInfo,
    },
    /// Membership changes sent down the tree to `target`, for (target, limit).
    Members {
        target: NodeInfo,
        limit: Id,
        changes: Vec<MemberChange>,
    },
    MembersSync(MemberSync),
    /// A member a peer's table lacks: is it alive?
    MemberProbe,
}

impl Engine {
    pub(super) fn handle_request(&mut self, from: SocketAddr, msg: Message, tagged: bool) {
        let rid = msg.request_id;
        if msg.body.is_client_request() && !self.client_allowed(from, msg.flags, tagged) {
            return self.refuse_client(from, rid);
        }
        // A client handle takes no place in the ring: it is never a neighbour.
        let peer = (msg.flags & FLAG_CLIENT == 0).then_some(NodeInfo {
            id: msg.sender,
            addr: from,
        });
        let sent_ms = msg.timestamp_ms;
        match msg.body {
            Body::Ping => self.reply(from, rid, Body::Pong),
            Body::FindSuccessor { key } => self.answer_find(from, rid, key),
            Body::FindHolder { key } => self.answer_holder(from, rid, key),
            Body::GetNeighbors => self.answer_neighbors(from, rid),
            Body::Notify => self.on_notify(from, rid, peer, sent_ms),
            Body::Leaving { preds, succs } => {
                self.on_leaving(from, rid, peer, sent_ms, preds, succs)
            }
            // Served at the end of this burst, its signature checked
            // together with the other Stores of the burst (flush_stores).
            Body::Store { key, entry } => {
                (self.store_inbox).push((key, entry, ReplyTo::remote(from, rid)))
            }
            Body::Fetch {
                key,
                replica,
                after,
            } => self.primary_fetch(key, replica, after, Some(from), ReplyTo::remote(from, rid)),
            Body::Replicate { items } => self.on_replicate(from, rid, peer, items),
            Body::SyncDigest {
                lo,
                hi,
                digest,
                count,
            } => self.on_sync_digest(from, rid, peer, (lo, hi), (digest, count)),
            Body::SyncItems { items } => self.on_sync_items(from, rid, peer, items),
            Body::ClientLookup { key } => self.serve_lookup(from, rid, key),
            Body::ClientPut { key, entry } => self.serve_put(from, rid, key, entry),
            Body::ClientGet { key, after } => self.serve_get(from, rid, key, after),
            Body::ClientTransaction { request } => self.client_transaction(from, rid, &request),
            Body::ClientInfo { what } => self.serve_info(from, rid, what),
            Body::ClientPing { addr } => self.serve_ping(from, rid, addr),
            Body::ClientTrace { key } => self.serve_trace(from, rid, key),
            Body::Members { limit, changes } => self.on_members(from, rid, peer, limit, changes),
            Body::MembersDigest { after, buckets } => {
                self.on_members_digest(from, rid, peer, after, buckets)
            }
            other => self.drop_unexpected(format!("unexpected request {}", other.name())),
        }
    }

    /// Routes an answer to the concern whose request it answers.
    pub(super) fn dispatch_response(&mut self, rpc: Rpc, sender: NodeInfo, body: Body) {
        match (rpc.ctx, body) {
            (OnAnswer::LookupStep { lookup }, Body::FindReply { done, nodes }) => {
                self.lookup_reply(lookup, sender, done, nodes)
            }
            (OnAnswer::Stabilize { succ }, Body::Neighbors { preds, succs }) => {
                self.stabilize_reply(succ, preds, succs)
            }
            (OnAnswer::CheckPred { pred }, Body::Neighbors { preds, .. }) => {
                self.predecessor_answered(pred, preds)
            }
            (OnAnswer::Notify, Body::NotifyAck) | (OnAnswer::Push, Body::ReplicateAck { .. }) => {}
            (OnAnswer::Store(job), Body::StoreReply { status, copies }) => {
                self.store_reply(job, sender, status, copies)
            }
            (
                OnAnswer::Fetch(job),
                Body::FetchReply {
                    status,
                    entries,
                    next,
                },
            ) => self.fetch_reply(job, sender, status, entries, next),
            (
                OnAnswer::FetchFallback { key, after, reply },
                Body::FetchReply { entries, next, .. },
            ) => self.fallback_fetched(key, after, reply, entries, next),
            (OnAnswer::ReplicateFor { pendings }, Body::ReplicateAck { status }) => pendings
                .into_iter()
                .for_each(|p| self.replication_done(p, status == Status::Ok)),
            (OnAnswer::Handoff { key }, Body::StoreReply { status, .. }) => {
                self.handoff_entry_done(key, matches!(status, Status::Ok | Status::Stale))
            }
            (OnAnswer::SyncDigest { peer, lo, hi }, Body::SyncDigestReply { in_sync }) => {
                self.sync_digest_answered(peer, lo, hi, in_sync)
            }
            (OnAnswer::SyncItems { peer, items }, Body::SyncNeed { indices }) => {
                self.push_needed(peer, items, indices)
            }
            (OnAnswer::LeaveStep { .. }, _) => self.leave_step_done(None),
            (OnAnswer::MergeProbe { node }, Body::Pong) => self.merge_via(node),
            (
                OnAnswer::Verify {
                    id,
                    lookup,
                    nodes,
                    vouched_by,
                },
                Body::Neighbors { preds, .. },
            ) => self.verified(id, *lookup, nodes, vouched_by, preds),
            (OnAnswer::OwnerProbe { lookup, owner }, Body::Neighbors { preds, succs }) => {
                self.owner_answered(lookup, owner, preds, succs)
            }
            (OnAnswer::Ping { op }, Body::Pong) => self.pinged(op, rpc.sent_at),
            (OnAnswer::Members { .. }, Body::MembersAck) | (OnAnswer::MemberProbe, Body::Pong) => {}
            (
                OnAnswer::MembersSync(sync),
                Body::MembersPage {
                    more,
                    buckets,
                    changes,
                },
            ) => self.member_page(sync, more, &buckets, changes),
            (ctx, body) => {
                self.drop_unexpected(format!("reply {} does not fit {ctx:?}", body.name()));
                self.rpc_failed(rpc.to, rpc.to_id, ctx, false, rpc.attempts);
            }
        }
    }

    /// A request failed: `timed_out` when the peer never answered (it is then
    /// suspected, or treated as failed), otherwise it answered with an error
    /// or could not be sent.
    pub(super) fn rpc_failed(
        &mut self,
        to: SocketAddr,
        to_id: Option<Id>,
        ctx: OnAnswer,
        timed_out: bool,
        attempts: u32,
    ) {
        if timed_out {
            self.peer_silent(to, to_id, attempts);
        }
        match ctx {
            OnAnswer::LookupStep { lookup } => self.lookup_step_failed(lookup, to),
            OnAnswer::Stabilize { .. } => self.stabilize_now(),
            OnAnswer::CheckPred { pred } => self.predecessor_silent(pred, timed_out),
            OnAnswer::Notify
            | OnAnswer::Push
            | OnAnswer::SyncDigest { .. }
            | OnAnswer::SyncItems { .. } => {}
            OnAnswer::MergeProbe { .. } | OnAnswer::MemberProbe => {}
            OnAnswer::Members {
                target,
                limit,
                changes,
            } => self.members_undelivered(target, limit, changes),
            OnAnswer::MembersSync(sync) => {
                if sync.announce {
                    self.announce_self();
                }
            }
            OnAnswer::Store(job) => self.retry_put(job),
            OnAnswer::Fetch(job) => self.retry_get(job),
            OnAnswer::FetchFallback { key, after, reply } => {
                self.fallback_failed(key, after, reply)
            }
            OnAnswer::ReplicateFor { pendings } => pendings
                .into_iter()
                .for_each(|p| self.replication_done(p, false)),
            OnAnswer::Handoff { key } => self.handoff_entry_done(key, false),
            OnAnswer::LeaveStep { successor } => self.leave_step_done(successor),
            OnAnswer::Ping { op } => self.complete(op, OpResult::Ping(Err(Error::Timeout))),
            OnAnswer::Verify { id, lookup, .. } => self.retry_lookup_now(id, *lookup),
            OnAnswer::OwnerProbe { lookup, owner } => self.owner_silent(lookup, owner),
        }
    }

    /// Counts and logs a message that fits no exchange.
    fn drop_unexpected(&mut self, what: String) {
        self.stats.dropped_malformed += 1;
        self.log(LogLevel::Debug, || what);
    }
}
