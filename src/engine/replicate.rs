//! Keeping copies where they belong: replica sync by range digests, handoff
//! of keys this node no longer holds, and the graceful leave.

use super::dispatch::OnAnswer;
use super::lookup::LookupFor;
use super::Event;
use super::{Engine, OpResult, Phase};
use crate::error::Error;
use crate::id::Id;
use crate::types::OpId;
use crate::wire;
use crate::wire::{Body, NodeInfo, WireEntry};
use crate::wire::{ItemSummary, Status};
use std::net::SocketAddr;

#[derive(Debug)]
pub(super) struct LeaveState {
    pub(super) op: OpId,
    pub(super) outstanding: usize,
    pub(super) failed: bool,
}

/// Places past its replica range at which a node still takes a pushed copy
/// (and its predecessor list keeps this many more than `replicas`).
pub(super) const HOLDER_SLACK: usize = 2;

/// Misplaced keys handed off per sync round.
pub(super) const HANDOFF_BATCH: usize = 64;

/// Splits `items` into runs whose encoded sizes fit `budget` (and a u16 count).
pub(super) fn batches<T>(budget: usize, items: Vec<T>, len: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut batch = Vec::new();
    let mut used = 0;
    for item in items {
        let l = len(&item);
        if (used + l > budget || batch.len() == u16::MAX as usize) && !batch.is_empty() {
            out.push(std::mem::take(&mut batch));
            used = 0;
        }
        used += l;
        batch.push(item);
    }
    if !batch.is_empty() {
        out.push(batch);
    }
    out
}

impl Engine {
    /// Sends the entries of `keys` to `to` in datagram-sized Replicate batches.
    pub(super) fn push_keys(
        &mut self,
        to: NodeInfo,
        keys: &[Id],
        ctx: impl Fn() -> OnAnswer,
    ) -> usize {
        let now = self.now;
        let items: Vec<(Id, WireEntry)> = keys
            .iter()
            .flat_map(|k| {
                self.store
                    .entries(k, now)
                    .into_iter()
                    .map(move |e| (*k, e.to_wire(now)))
            })
            .collect();
        self.push_items(to, items, ctx, self.cfg.rpc_retries + 1)
    }

    /// Sends `items` to `to` in datagram-sized Replicate batches; returns the requests sent.
    pub(super) fn push_items(
        &mut self,
        to: NodeInfo,
        mut items: Vec<(Id, WireEntry)>,
        ctx: impl Fn() -> OnAnswer,
        attempts: u32,
    ) -> usize {
        items.iter_mut().for_each(|(k, e)| self.sign_outgoing(k, e));
        let mut sent = 0;
        for batch in batches(self.body_budget(), items, |(_, e)| {
            wire::replicate_item_len(e)
        }) {
            let body = Body::Replicate { items: batch };
            sent += self.send_request(to.addr, Some(to.id), body, ctx(), attempts) as usize;
        }
        sent
    }

    /// Sends summaries of what we hold in (lo, hi] so `peer` can pull what it lacks.
    pub(super) fn offer_range(&mut self, peer: NodeInfo, lo: Id, hi: Id) {
        let summaries = self.store.range_summaries(&lo, &hi, self.now);
        for items in batches(self.body_budget(), summaries, wire::summary_item_len) {
            let body = Body::SyncItems {
                items: items.clone(),
            };
            self.send_request(
                peer.addr,
                Some(peer.id),
                body,
                OnAnswer::SyncItems { peer, items },
                2,
            );
        }
    }

    /// Bytes a message body may take in one datagram: what is left after
    /// the header, a node signature (Replicate carries one), the tag and
    /// the body's own count fields.
    pub(super) fn body_budget(&self) -> usize {
        self.cfg
            .max_datagram
            .saturating_sub(wire::HEADER_LEN + wire::PROOF_LEN + wire::TAG_LEN + 8)
    }

    /// The successors that hold copies of what this node is primary for.
    pub(super) fn replica_holders(&self) -> Vec<NodeInfo> {
        let copies = self.cfg.replicas.saturating_sub(1);
        self.rt.successors().iter().take(copies).copied().collect()
    }

    /// Every sync round: the digest of each range this node is primary for
    /// goes to the nodes holding its copies, and keys this node no longer
    /// holds a copy of go to their primary, then are dropped. On the ring
    /// the range is (predecessor, me]; with virtual points, a few of this
    /// node's arcs a round.
    pub(super) fn sync_replicas(&mut self) {
        let ranges: Vec<(Id, Id, Vec<NodeInfo>)> = if self.by_points() {
            let arcs = self.arcs_to_sync();
            arcs.into_iter()
                .map(|(lo, hi)| (lo, hi, self.replica_holders_for(&hi)))
                .collect()
        } else {
            let me = self.me.id;
            let pred = self.rt.predecessor().map(|p| p.id);
            pred.map(|p| (p, me, self.replica_holders()))
                .into_iter()
                .collect()
        };
        for (lo, hi, holders) in ranges {
            let (digest, count) = self.store.range_digest(&lo, &hi, self.now);
            for s in holders {
                let body = Body::SyncDigest {
                    lo,
                    hi,
                    digest,
                    count,
                };
                let ctx = OnAnswer::SyncDigest { peer: s, lo, hi };
                self.send_request(s.addr, Some(s.id), body, ctx, 2);
            }
        }
        if self.handoffs_in_flight > 0 {
            return;
        }
        let keys = if self.by_points() {
            self.misplaced_keys(HANDOFF_BATCH)
        } else {
            match self.rt.predecessors().get(self.cfg.replicas.max(1) - 1) {
                Some(far) => self.store.keys_outside(&far.id, &self.me.id, HANDOFF_BATCH),
                None => Vec::new(),
            }
        };
        let timeout = self.cfg.op_timeout;
        for k in keys {
            self.handoffs_in_flight += 1;
            self.start_lookup(k, LookupFor::Handoff(k), timeout);
        }
    }

    /// Virtual points: the keys this node holds, each to the member that
    /// becomes one of its holders when this node is gone.
    fn leave_handoff_by_points(&mut self) -> usize {
        let me = self.me.id;
        let mut by_target: std::collections::HashMap<Id, (NodeInfo, Vec<Id>)> =
            std::collections::HashMap::new();
        let keys: Vec<Id> = self.store.all_keys().copied().collect();
        for k in keys {
            let holders = self.members.placement(&k, self.cfg.replicas + 1);
            if !holders
                .iter()
                .take(self.cfg.replicas)
                .any(|m| m.node.id == me)
            {
                continue;
            }
            if let Some(next) = holders.iter().find(|m| m.node.id != me).map(|m| m.node) {
                // The first other holder is sure to hold it after us (it may
                // already: versions make a second copy harmless).
                by_target
                    .entry(next.id)
                    .or_insert((next, Vec::new()))
                    .1
                    .push(k);
            }
            if let Some(last) = holders.get(self.cfg.replicas).map(|m| m.node) {
                if last.id != me {
                    by_target
                        .entry(last.id)
                        .or_insert((last, Vec::new()))
                        .1
                        .push(k);
                }
            }
        }
        let mut sent = 0;
        for (_, (to, keys)) in by_target {
            let ctx = || OnAnswer::LeaveStep {
                successor: Some(to.id),
            };
            sent += self.push_keys(to, &keys, ctx);
        }
        sent
    }

    /// Hands every stored entry to the first successor and tells it we leave;
    /// returns the requests sent (0: no successor left to hand to).
    pub(super) fn leave_handoff(&mut self) -> usize {
        let Some(succ) = self.rt.successor().copied() else {
            return 0;
        };
        let preds = self.rt.predecessors().to_vec();
        let succs = self.rt.successors().to_vec();
        let ctx = || OnAnswer::LeaveStep {
            successor: Some(succ.id),
        };
        let mut sent = if self.by_points() {
            self.leave_handoff_by_points()
        } else {
            let keys: Vec<Id> = self.store.all_keys().copied().collect();
            self.push_keys(succ, &keys, ctx)
        };
        sent += self.send_request(
            succ.addr,
            Some(succ.id),
            Body::Leaving { preds, succs },
            ctx(),
            self.cfg.rpc_retries + 1,
        ) as usize;
        if let Some(l) = self.leave.as_mut() {
            l.outstanding += sent;
        }
        sent
    }

    /// One leave message answered (`failed` None) or given up on.
    pub(super) fn leave_step_done(&mut self, failed: Option<Id>) {
        if let Some(l) = self.leave.as_mut() {
            l.outstanding = l.outstanding.saturating_sub(1);
            if let Some(id) = failed {
                l.failed = true;
                // The handoff target died: the next successor takes over.
                self.forget_node(&id);
                if self.by_points() {
                    self.members.forget(&id);
                }
            }
        }
        self.maybe_finish_leave();
    }

    pub(super) fn maybe_finish_leave(&mut self) {
        let done = self.leave.as_ref().map(|l| (l.outstanding == 0, l.failed));
        match done {
            Some((true, false)) => self.finish_leave(Ok(())),
            Some((true, true)) => {
                if let Some(l) = self.leave.as_mut() {
                    l.failed = false;
                }
                if self.leave_handoff() == 0 {
                    let r = if self.store.entry_count() == 0 {
                        Ok(()) // nothing to hand over, nobody left to tell
                    } else {
                        Err(Error::NoRoute)
                    };
                    self.finish_leave(r);
                }
            }
            _ => {}
        }
    }

    pub(super) fn finish_leave(&mut self, result: Result<(), Error>) {
        if let Some(l) = self.leave.take() {
            self.phase = Phase::Left;
            self.complete(l.op, OpResult::Leave(result));
        }
    }

    /// Copies pushed by a neighbour (replication, handoff, repair). Only a
    /// current neighbour (or one that just left) may push, and only keys we
    /// hold a copy of: checked before any signature is, so a stranger's
    /// datagram costs no signature check.
    pub(super) fn on_replicate(
        &mut self,
        from: SocketAddr,
        rid: u64,
        peer: Option<NodeInfo>,
        mut items: Vec<(Id, WireEntry)>,
    ) {
        if !self.may_push(peer) && !self.just_departed(peer) {
            self.stats.refused_membership += 1;
            let status = Status::NotResponsible;
            self.reply(from, rid, Body::ReplicateAck { status });
            return;
        }
        let offered = items.len();
        // A sender whose lists lag ours by a join or two may count us among
        // a key's holders a little too far out; beyond that, it is wrong.
        let reach = self.cfg.replicas + HOLDER_SLACK;
        items.retain(|(k, _)| self.holds_copy(k, reach) != Some(false));
        let kept = items.len();
        let mut status = self.accept_items(items);
        if kept < offered {
            self.stats.refused_membership += 1;
            status = Status::NotResponsible;
        }
        self.reply(from, rid, Body::ReplicateAck { status });
    }

    /// The primary's digest of a range we replicate: say whether ours
    /// matches, and when it does not (and a peer asked), offer what we hold
    /// so the primary can pull what it lacks.
    pub(super) fn on_sync_digest(
        &mut self,
        from: SocketAddr,
        rid: u64,
        peer: Option<NodeInfo>,
        (lo, hi): (Id, Id),
        theirs: (u64, u32),
    ) {
        // The offer goes to a neighbour only: anyone else could aim it
        // (many times the digest's size) at a spoofed address.
        if !self.may_sync(peer) {
            self.stats.refused_membership += 1;
            let status = Status::NotResponsible;
            self.reply(from, rid, Body::Error { status });
            return;
        }
        let in_sync = self.store.range_digest(&lo, &hi, self.now) == theirs;
        self.reply(from, rid, Body::SyncDigestReply { in_sync });
        if let Some(sender) = peer.filter(|_| !in_sync) {
            self.offer_range(sender, lo, hi);
        }
    }

    /// Summaries a peer holds: answer with the ones we lack or hold older.
    pub(super) fn on_sync_items(
        &mut self,
        from: SocketAddr,
        rid: u64,
        peer: Option<NodeInfo>,
        items: Vec<ItemSummary>,
    ) {
        if !self.may_sync(peer) {
            self.stats.refused_membership += 1;
            let status = Status::NotResponsible;
            self.reply(from, rid, Body::Error { status });
            return;
        }
        let now = self.now;
        let indices: Vec<u16> = items
            .iter()
            .enumerate()
            .filter(|(_, it)| self.store.needs(it, now))
            .map(|(i, _)| i as u16)
            .collect();
        self.reply(from, rid, Body::SyncNeed { indices });
    }

    /// A replica answered our digest.
    pub(super) fn sync_digest_answered(&mut self, peer: NodeInfo, lo: Id, hi: Id, in_sync: bool) {
        if !in_sync {
            self.offer_range(peer, lo, hi);
        }
    }

    /// A peer named the offered items it needs: push them.
    pub(super) fn push_needed(
        &mut self,
        peer: NodeInfo,
        items: Vec<ItemSummary>,
        indices: Vec<u16>,
    ) {
        let now = self.now;
        let mut push = Vec::new();
        for i in indices {
            if let Some(it) = items.get(i as usize) {
                if let Some(e) = self.store.entry(&it.key, &it.writer, now) {
                    push.push((it.key, e.to_wire(now)));
                }
            }
        }
        self.push_items(peer, push, || OnAnswer::Push, 2);
    }

    /// The primary answered (`taken`) or never answered one entry of a
    /// handed-off key. When every entry was taken the key is dropped here
    /// (if we still hold no copy of it); otherwise it goes again next round.
    pub(super) fn handoff_entry_done(&mut self, key: Id, taken: bool) {
        let Some((left, all_taken)) = self.handoff_entries.get_mut(&key) else {
            return;
        };
        *left -= 1;
        *all_taken &= taken;
        if *left > 0 {
            return;
        }
        let all_taken = *all_taken;
        if !all_taken {
            self.rescan_placement();
        }
        self.handoff_entries.remove(&key);
        self.handoffs_in_flight = self.handoffs_in_flight.saturating_sub(1);
        if all_taken && self.holds_copy(&key, self.cfg.replicas) == Some(false) {
            let gone = self.store.remove_key(&key);
            if gone > 0 {
                self.events.push(Event::KeysOut(gone));
            }
        }
    }
}
