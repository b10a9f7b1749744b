//! Routes each request, response and failure to the concern that handles it.
//! `Ctx` is what a request remembers until it is answered or given up on.

use crate::config::LogLevel;
use crate::error::Error;
use crate::id::Id;
use crate::routing::Answer;
use crate::wire;

use super::dict::{GetJob, PutJob};
use super::lookup::{Lookup, FANOUT, SOFT_SUSPECT_US};
use super::maintain::{MAX_REMEMBERED, SUSPECT_US};
use super::primary::ReplyTo;
use super::{Engine, Event, OpResult, Phase};
use crate::types::OpId;
use crate::wire::{Body, ItemSummary, Message, NodeInfo, Status, FLAG_CLIENT};
use std::net::SocketAddr;
use std::time::Duration;

/// What to do when a request is answered or given up on.
#[derive(Debug)]
pub(super) enum Ctx {
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
    ReplicateFor {
        pending: u64,
    },
    Push,
    Handoff {
        keys: Vec<Id>,
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
}

/// A peer is declared failed only after this many unanswered transmissions of one request.
pub(super) const HARD_FAILURE_ATTEMPTS: u32 = 3;

impl Engine {
    pub(super) fn handle_request(&mut self, from: SocketAddr, msg: Message) {
        let rid = msg.request_id;
        let is_client = msg.flags & FLAG_CLIENT != 0;
        let sender = NodeInfo {
            id: msg.sender,
            addr: from,
        };
        let joined = matches!(self.phase, Phase::Joined | Phase::Leaving);
        match msg.body {
            Body::Ping => self.reply(from, rid, Body::Pong),
            Body::FindSuccessor { key } => {
                if !joined {
                    self.reply(
                        from,
                        rid,
                        Body::Error {
                            status: Status::NotResponsible,
                        },
                    );
                    return;
                }
                let body = match self.rt.answer(&key, |n| self.usable(n), FANOUT) {
                    Answer::Done(mut nodes) => {
                        nodes.truncate(wire::MAX_NODE_LIST);
                        Body::FindReply { done: true, nodes }
                    }
                    Answer::Next(nodes) => Body::FindReply { done: false, nodes },
                };
                self.reply(from, rid, body);
            }
            Body::GetNeighbors => {
                let preds = self.rt.predecessors().to_vec();
                let succs = self.rt.successors().to_vec();
                self.reply(from, rid, Body::Neighbors { preds, succs });
            }
            Body::Notify => {
                // A Notify sent before its sender left (a late retransmission)
                // must not bring the departed node back.
                let stale = self
                    .departed
                    .get(&sender.id)
                    .is_some_and(|(left_at, _)| msg.timestamp_ms <= *left_at);
                if !is_client && joined && sender.id != self.me.id && !stale {
                    self.notified(sender);
                }
                self.reply(from, rid, Body::NotifyAck);
            }
            Body::Leaving { preds, succs } => {
                if !is_client {
                    if self.departed.len() >= MAX_REMEMBERED {
                        let now = self.now;
                        self.departed
                            .retain(|_, (_, seen)| now.saturating_sub(*seen) < SUSPECT_US);
                    }
                    self.departed
                        .insert(sender.id, (msg.timestamp_ms, self.now));
                    self.neighbour_leaving(sender, preds, succs);
                }
                self.reply(from, rid, Body::LeavingAck);
            }
            Body::Store { key, entry } => {
                self.primary_store(
                    key,
                    entry,
                    ReplyTo::Remote {
                        addr: from,
                        request_id: rid,
                    },
                );
            }
            Body::Fetch {
                key,
                replica,
                after,
            } => {
                self.primary_fetch(
                    key,
                    replica,
                    after,
                    Some(from),
                    ReplyTo::Remote {
                        addr: from,
                        request_id: rid,
                    },
                );
            }
            Body::Replicate { items } => {
                let status = self.accept_items(items);
                self.reply(from, rid, Body::ReplicateAck { status });
            }
            Body::SyncDigest {
                lo,
                hi,
                digest,
                count,
            } => {
                let mine = self.store.range_digest(&lo, &hi, self.now);
                let in_sync = mine == (digest, count);
                self.reply(from, rid, Body::SyncDigestReply { in_sync });
                if !in_sync && !is_client {
                    // Offer what we hold too, so the primary can pull what it lacks.
                    self.offer_range(sender, lo, hi);
                }
            }
            Body::SyncItems { items } => {
                let now = self.now;
                let indices: Vec<u16> = items
                    .iter()
                    .enumerate()
                    .filter(|(_, it)| self.store.needs(it, now))
                    .map(|(i, _)| i as u16)
                    .collect();
                self.reply(from, rid, Body::SyncNeed { indices });
            }
            Body::ClientLookup { key } => {
                if let Some(op) = self.client_op(from, rid) {
                    let timeout = self.cfg.op_timeout;
                    self.lookup(self.now, op, key, timeout);
                }
            }
            Body::ClientPut { key, entry } => {
                if let Some(op) = self.client_op(from, rid) {
                    let timeout = self.cfg.op_timeout;
                    self.start_put(op, key, entry, timeout);
                }
            }
            Body::ClientGet { key, after } => {
                if let Some(op) = self.client_op(from, rid) {
                    let timeout = self.cfg.op_timeout;
                    self.start_get(op, key, after, true, timeout);
                }
            }
            Body::ClientRegister { request } => self.client_register(from, rid, &request),
            Body::ClientInfo { what } => {
                let mut text = self.info_text(what).into_bytes();
                text.truncate(
                    self.cfg
                        .max_datagram
                        .saturating_sub(wire::HEADER_LEN + wire::TAG_LEN + 4),
                );
                self.reply(from, rid, Body::ClientInfoReply { text });
            }
            other => {
                self.stats.dropped_malformed += 1;
                self.log(LogLevel::Debug, || {
                    format!("unexpected request {}", other.name())
                });
            }
        }
    }

    pub(super) fn handle_response(&mut self, from: SocketAddr, msg: Message) {
        let Some(rpc) = self.rpcs.get(&msg.request_id) else {
            self.stats.dropped_unmatched += 1;
            return;
        };
        // Only the peer we asked may answer (a forged source still needs the overlay key).
        if rpc.to != from {
            self.stats.dropped_unmatched += 1;
            return;
        }
        let rpc = self.rpcs.remove(&msg.request_id).expect("present");
        if rpc.attempts == 1 {
            self.sample_rtt(from, self.now.saturating_sub(rpc.sent_at));
        }
        let sender = NodeInfo {
            id: msg.sender,
            addr: from,
        };
        if let Body::Error { status } = msg.body {
            self.log(LogLevel::Debug, || format!("{from} answered {status:?}"));
            self.rpc_failed(rpc.to, rpc.to_id, rpc.ctx, false, rpc.attempts);
            return;
        }
        match (rpc.ctx, msg.body) {
            (Ctx::LookupStep { lookup }, Body::FindReply { done, nodes }) => {
                self.lookup_reply(lookup, sender, done, nodes)
            }
            (Ctx::Stabilize { succ }, Body::Neighbors { preds, succs }) => {
                self.stabilize_reply(succ, preds, succs)
            }
            (Ctx::CheckPred { pred }, Body::Neighbors { preds, .. }) => {
                if self.rt.predecessor().map(|p| p.id) == Some(pred.id) {
                    let mut list = vec![pred];
                    list.extend(preds);
                    self.rt.set_predecessors(list);
                }
            }
            (Ctx::Notify, Body::NotifyAck) => {}
            (Ctx::Store(job), Body::StoreReply { status, copies }) => {
                self.store_reply(job, sender, status, copies)
            }
            (
                Ctx::Fetch(job),
                Body::FetchReply {
                    status,
                    entries,
                    next,
                },
            ) => self.fetch_reply(job, sender, status, entries, next),
            (Ctx::FetchFallback { key, after, reply }, Body::FetchReply { entries, next, .. }) => {
                let items = entries.into_iter().map(|e| (key, e)).collect();
                self.accept_items(items);
                let (mut entries, mine_next) = self.local_page(&key, after.as_deref());
                if matches!(reply, ReplyTo::Remote { .. }) {
                    entries.iter_mut().for_each(|e| self.export(&key, e));
                }
                // The successor's page decides whether more follow; ours may be
                // cut shorter by what we already held.
                let next = mine_next.or(next);
                self.answer(
                    reply,
                    Body::FetchReply {
                        status: Status::Ok,
                        entries,
                        next,
                    },
                );
            }
            (Ctx::ReplicateFor { pending }, Body::ReplicateAck { status }) => {
                self.replication_done(pending, status == Status::Ok)
            }
            (Ctx::Push, Body::ReplicateAck { .. }) => {}
            (Ctx::Handoff { keys }, Body::ReplicateAck { status }) => {
                self.handoffs_in_flight = self.handoffs_in_flight.saturating_sub(1);
                if status == Status::Ok {
                    let mut gone = 0;
                    for k in keys {
                        if self.rt.is_holder(&k, self.cfg.replicas) == Some(false) {
                            gone += self.store.remove_key(&k);
                        }
                    }
                    if gone > 0 {
                        self.events.push(Event::KeysOut(gone));
                    }
                }
            }
            (Ctx::SyncDigest { peer, lo, hi }, Body::SyncDigestReply { in_sync }) => {
                if !in_sync {
                    self.offer_range(peer, lo, hi);
                }
            }
            (Ctx::SyncItems { peer, items }, Body::SyncNeed { indices }) => {
                let now = self.now;
                let mut push = Vec::new();
                for i in indices {
                    if let Some(it) = items.get(i as usize) {
                        if let Some(e) = self.store.entry(&it.key, &it.writer, now) {
                            push.push((it.key, e.to_wire(now)));
                        }
                    }
                }
                self.push_items(peer, push, || Ctx::Push, 2);
            }
            (Ctx::LeaveStep { .. }, _) => self.leave_step_done(None),
            (Ctx::MergeProbe { node }, Body::Pong) => self.merge_via(node),
            (
                Ctx::Verify {
                    id,
                    lookup,
                    nodes,
                    vouched_by,
                },
                Body::Neighbors { preds, .. },
            ) => {
                let x = nodes[0];
                let responsible = preds
                    .first()
                    .is_none_or(|p| lookup.key.in_open_closed(&p.id, &x.id));
                if responsible {
                    self.lookup_done(*lookup, nodes);
                } else {
                    self.log(LogLevel::Info, || {
                        format!(
                            "{} {} named {} as responsible for {}, which it is not",
                            vouched_by.id.to_hex(),
                            vouched_by.addr,
                            x.addr,
                            lookup.key.to_hex()
                        )
                    });
                    self.distrust(Some(vouched_by));
                    // The node named wrongly is honest: its predecessors show
                    // who is responsible (checked in turn, like any claim).
                    let mut chain = vec![x];
                    chain.extend(preds);
                    let key = lookup.key;
                    let found = chain
                        .windows(2)
                        .find(|w| key.in_open_closed(&w[1].id, &w[0].id))
                        .map(|w| w[0]);
                    match found {
                        Some(r) if r.id != x.id && self.usable(&r) => {
                            let mut l = *lookup;
                            l.vouched_by = Some((x, id));
                            self.lookup_done(l, vec![r]);
                        }
                        _ => self.retry_lookup_now(id, *lookup),
                    }
                }
            }
            (Ctx::Ping { op }, Body::Pong) => {
                let rtt = Duration::from_micros(self.now.saturating_sub(rpc.sent_at));
                self.complete(op, OpResult::Ping(Ok(rtt)));
            }
            (ctx, body) => {
                self.stats.dropped_malformed += 1;
                self.log(LogLevel::Debug, || {
                    format!("reply {} does not fit {ctx:?}", body.name())
                });
                self.rpc_failed(rpc.to, rpc.to_id, ctx, false, rpc.attempts);
            }
        }
    }

    /// A request failed: `timed_out` when the peer never answered (it is then
    /// treated as failed), otherwise it answered with an error or could not be sent.
    pub(super) fn rpc_failed(
        &mut self,
        to: SocketAddr,
        to_id: Option<Id>,
        ctx: Ctx,
        timed_out: bool,
        attempts: u32,
    ) {
        if timed_out {
            if attempts < HARD_FAILURE_ATTEMPTS {
                // A request that gives up fast (lookup steps, notifications) is no
                // proof of death under packet loss: the peer is only avoided for a moment.
                if let Some(id) = to_id {
                    let until = self.now + SOFT_SUSPECT_US;
                    let e = self.suspects.entry(id).or_insert(until);
                    *e = (*e).max(until);
                }
            } else {
                self.peer_failed(to, to_id);
            }
        }
        match ctx {
            Ctx::LookupStep { lookup } => {
                if let Some(mut l) = self.lookups.remove(&lookup) {
                    l.tried.insert(to);
                    self.lookup_next(lookup, l);
                }
            }
            Ctx::Stabilize { .. } => {
                // Try the next successor right away.
                self.next_stabilize = self.now;
            }
            Ctx::CheckPred { pred } => {
                if timed_out && self.rt.predecessor().map(|p| p.id) == Some(pred.id) {
                    self.rt.remove(&pred.id);
                }
            }
            Ctx::Notify | Ctx::Push => {}
            Ctx::Store(job) => self.retry_put(job),
            Ctx::Fetch(job) => self.retry_get(job),
            Ctx::FetchFallback { key, after, reply } => {
                let (entries, next) = self.local_page(&key, after.as_deref());
                self.answer(
                    reply,
                    Body::FetchReply {
                        status: Status::Ok,
                        entries,
                        next,
                    },
                );
            }
            Ctx::ReplicateFor { pending } => self.replication_done(pending, false),
            Ctx::Handoff { .. } => {
                self.handoffs_in_flight = self.handoffs_in_flight.saturating_sub(1);
            }
            Ctx::SyncDigest { .. } | Ctx::SyncItems { .. } => {}
            Ctx::LeaveStep { successor } => self.leave_step_done(successor),
            Ctx::Ping { op } => self.complete(op, OpResult::Ping(Err(Error::Timeout))),
            Ctx::MergeProbe { .. } => {}
            Ctx::Verify { id, lookup, .. } => self.retry_lookup_now(id, *lookup),
        }
    }
}
