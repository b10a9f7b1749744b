//! Ring maintenance: joining, stabilize and notify (with Zave's rules),
//! the predecessor check, fingers, failure suspicion, and the merge of rings
//! that a network split left apart.

use super::dispatch::OnAnswer;
use super::lookup::{Candidate, LookupFor, SOFT_SUSPECT_US};
use super::{Engine, OpResult, Phase, EXPIRE_EVERY_US};
use crate::config::LogLevel;
use crate::error::Error;
use crate::id::{Id, ID_BITS};
use crate::types::OpId;
use crate::wire::{Body, NodeInfo};
use std::collections::HashSet;
use std::net::SocketAddr;

/// A peer is declared failed after this many unanswered transmissions of one
/// request (a lookup step sends exactly this many, maintenance and storage
/// requests `rpc_retries + 1`); fewer only make it suspected for a moment.
pub(super) const HARD_FAILURE_ATTEMPTS: u32 = 3;
/// How long a node that failed to answer is avoided unless it speaks again.
pub(super) const SUSPECT_US: u64 = 30_000_000;

/// How often a node probes one peer that stopped answering, to find the rest
/// of the ring again after a network split heals, and how long it keeps such
/// peers (at most MAX_REMEMBERED).
pub(super) const MERGE_EVERY_US: u64 = 2_000_000;

pub(super) const REMEMBER_US: u64 = 3_600_000_000;

pub(super) const MAX_REMEMBERED: usize = 64;

/// How long after a neighbour's Leaving its Notify is ignored whatever its
/// stamp: longer than a request's retransmissions last (4 transmissions,
/// RTO at most 1 s by default), short enough for a restarted node to rejoin.
pub(super) const DEPARTED_ECHO_US: u64 = 5_000_000;

/// A neighbour that said it leaves: its Notify sent before then is ignored,
/// and the handoff it sent around its Leaving is still taken.
#[derive(Clone, Copy, Debug)]
pub(super) struct Departed {
    pub(super) addr: SocketAddr,
    /// Its clock when it sent the Leaving.
    pub(super) left_at_ms: u64,
    /// Our clock when it arrived.
    pub(super) seen: u64,
}

/// Peers suspected at once, at most: a flood of silent or leaving peers
/// cannot grow the map without bound.
pub(super) const MAX_SUSPECTS: usize = 4096;

/// Shrinks `map` to its `keep` entries of largest `rank` (when larger).
fn keep_latest<V>(
    map: &mut std::collections::HashMap<Id, V>,
    keep: usize,
    rank: impl Fn(&V) -> u64,
) {
    if map.len() <= keep {
        return;
    }
    let mut ranks: Vec<u64> = map.values().map(&rank).collect();
    let cut = ranks.len() - keep;
    let (_, threshold, _) = ranks.select_nth_unstable(cut);
    let threshold = *threshold;
    map.retain(|_, v| rank(v) >= threshold);
}

impl Engine {
    pub(super) fn join_found(&mut self, op: OpId, nodes: Vec<NodeInfo>) {
        if !self.op_live(op) {
            return;
        }
        if nodes
            .iter()
            .any(|n| n.id == self.me.id && n.addr != self.me.addr)
        {
            self.phase = Phase::Idle;
            self.complete(op, OpResult::Join(Err(Error::IdCollision)));
            return;
        }
        // A stale entry for this very node (restart at the same address) is skipped.
        self.rt
            .set_successors(nodes.into_iter().filter(|n| n.id != self.me.id));
        if self.rt.successor().is_none() {
            self.phase = Phase::Idle;
            let why = "the ring named only this node's own id as the joiner's successor \
                       (a stale entry of an earlier run at this address?)";
            self.log(LogLevel::Warn, || format!("join failed: {why}"));
            self.complete(op, OpResult::Join(Err(Error::JoinFailed(why.into()))));
            return;
        }
        self.become_joined(self.now);
        let succ = *self.rt.successor().expect("set above");
        self.log(LogLevel::Info, || {
            format!("joined; successor {}", succ.addr)
        });
        self.send_request(succ.addr, Some(succ.id), Body::Notify, OnAnswer::Notify, 2);
        self.complete(op, OpResult::Join(Ok(())));
    }

    pub(super) fn become_joined(&mut self, now: u64) {
        self.phase = Phase::Joined;
        self.next_stabilize = now;
        self.next_check_pred = now + self.jitter(self.cfg.check_predecessor_interval);
        self.next_fix_finger = now;
        self.next_sync = now + self.jitter(self.cfg.sync_interval);
        self.next_expire = now + EXPIRE_EVERY_US;
        self.members_joined();
    }

    /// Whether `n` may be asked: not suspected of failure (or the suspicion ran out).
    pub(super) fn not_suspected(&self, n: &NodeInfo) -> bool {
        match self.suspects.get(&n.id) {
            Some(until) => *until <= self.now,
            None => true,
        }
    }

    /// A peer stopped answering: avoid it and forget it everywhere.
    pub(super) fn peer_failed(&mut self, addr: SocketAddr, id: Option<Id>) {
        let Some(id) = id else { return };
        if id == self.me.id {
            return;
        }
        self.log(LogLevel::Info, || {
            format!("peer {} at {addr} is not answering", id.to_hex())
        });
        self.stats.nodes_failed_detected += 1;
        self.remember(NodeInfo { id, addr });
        self.suspect(id, self.now + SUSPECT_US);
        let neighbour = self.rt.predecessor().is_some_and(|p| p.id == id)
            || self.rt.successor().is_some_and(|s| s.id == id);
        self.member_failed(id, neighbour);
        self.forget_node(&id);
        self.repair_successor();
    }

    /// Drops a node that failed or left from the table and the location cache.
    pub(super) fn forget_node(&mut self, id: &Id) {
        self.rt.remove(id);
        self.locations.forget(id);
    }

    /// Whether `peer` is one of our current neighbours, at the address we
    /// know it by.
    pub(super) fn is_neighbour(&self, peer: Option<NodeInfo>) -> bool {
        let Some(peer) = peer else { return false };
        let known = |n: &NodeInfo| *n == peer;
        self.rt.predecessors().iter().any(known) || self.rt.successors().iter().any(known)
    }

    /// Whether `peer` may push us copies: a current neighbour at its known
    /// address, or anyone while our predecessor list is still filling in
    /// (after a join, or in a ring smaller than the list). A primary that
    /// joined behind us since our list was made is refused until our next
    /// predecessor check learns of it; replica sync then brings its copies.
    pub(super) fn in_neighbourhood(&self, peer: Option<NodeInfo>) -> bool {
        peer.is_some()
            && (self.is_neighbour(peer)
                || self.rt.predecessors().len() < self.rt.predecessor_capacity())
    }

    /// Whether `peer` left the ring a moment ago from this address (its
    /// handoff may arrive after its Leaving).
    pub(super) fn just_departed(&self, peer: Option<NodeInfo>) -> bool {
        peer.and_then(|p| self.departed.get(&p.id).map(|d| (p, d)))
            .is_some_and(|(p, d)| d.addr == p.addr && self.now.saturating_sub(d.seen) < SUSPECT_US)
    }

    /// Avoids `id` until `until`.
    pub(super) fn suspect(&mut self, id: Id, until: u64) {
        self.suspects.insert(id, until);
        self.bound_suspects();
    }

    /// Keeps the suspects map within `MAX_SUSPECTS`: the expired go first,
    /// then those whose suspicion ends soonest.
    fn bound_suspects(&mut self) {
        if self.suspects.len() <= MAX_SUSPECTS {
            return;
        }
        let now = self.now;
        self.suspects.retain(|_, until| *until > now);
        keep_latest(&mut self.suspects, MAX_SUSPECTS * 3 / 4, |until| *until);
    }

    pub(super) fn remember(&mut self, node: NodeInfo) {
        let until = self.now + REMEMBER_US;
        if let Some(r) = self.remembered.iter_mut().find(|(n, _)| n.id == node.id) {
            *r = (node, until);
            return;
        }
        if self.remembered.len() >= MAX_REMEMBERED {
            self.remembered.remove(0);
        }
        self.remembered.push((node, until));
    }

    /// Pings one remembered peer that our routing state no longer knows. If it
    /// answers, the network between us works again: [`Self::merge_via`] looks
    /// for our successor in its ring, so two rings formed during a split
    /// merge back into one (stabilize and notify do the rest).
    pub(super) fn probe_remembered(&mut self) {
        let now = self.now;
        let known: HashSet<Id> = self.rt.known_nodes().iter().map(|n| n.id).collect();
        self.remembered
            .retain(|(n, until)| *until > now && !known.contains(&n.id));
        if self.remembered.is_empty() {
            return;
        }
        self.merge_cursor = (self.merge_cursor + 1) % self.remembered.len();
        let node = self.remembered[self.merge_cursor].0;
        self.send_request(
            node.addr,
            Some(node.id),
            Body::Ping,
            OnAnswer::MergeProbe { node },
            1,
        );
    }

    /// A remembered peer answered: the first node after us in its view of the
    /// ring may be a closer successor than ours (it is, when the two were
    /// separate rings).
    pub(super) fn merge_via(&mut self, node: NodeInfo) {
        let key = self.rt.finger_start(0);
        let timeout = self.cfg.op_timeout;
        self.start_lookup_via(key, LookupFor::Merge, vec![Candidate::from(&node)], timeout);
    }

    pub(super) fn merge_found(&mut self, node: NodeInfo) {
        if node.id == self.me.id || !self.not_suspected(&node) {
            return;
        }
        let closer = match self.rt.successor() {
            Some(s) => node.id.in_open(&self.me.id, &s.id),
            None => true,
        };
        if closer {
            self.log(LogLevel::Info, || {
                format!(
                    "merging with the ring of {} {}",
                    node.id.to_hex(),
                    node.addr
                )
            });
            let mut list = vec![node];
            list.extend(self.rt.successors().iter().copied());
            self.rt.set_successors(list);
            self.next_stabilize = self.now;
            self.send_request(node.addr, Some(node.id), Body::Notify, OnAnswer::Notify, 2);
        }
    }

    /// Keeps a successor whenever any other node is known, so the ring can heal.
    pub(super) fn repair_successor(&mut self) {
        if self.rt.successor().is_some() {
            return;
        }
        let me = self.me.id;
        let mut best: Option<NodeInfo> = None;
        for n in self.rt.known_nodes() {
            if !self.not_suspected(&n) {
                continue;
            }
            if best.is_none_or(|b| me.distance_to(&n.id) < me.distance_to(&b.id)) {
                best = Some(n);
            }
        }
        if let Some(b) = best {
            self.rt.set_successors([b]);
        }
    }

    /// Rectify: adopt the notifier as predecessor if it is closer (Zave's rule:
    /// a live predecessor is only replaced by a node between it and us).
    pub(super) fn notified(&mut self, cand: NodeInfo) {
        let old = self.rt.predecessor().copied();
        let adopt = match old {
            None => true,
            Some(p) => cand.id.in_open(&p.id, &self.me.id) || !self.not_suspected(&p),
        };
        if adopt && old.map(|p| p.id) != Some(cand.id) {
            let mut list = vec![cand];
            if let Some(p) = old {
                if p.id != cand.id && self.not_suspected(&p) {
                    list.push(p);
                    list.extend(self.rt.predecessors().iter().skip(1).copied());
                }
            }
            self.rt.set_predecessors(list);
            self.log(LogLevel::Debug, || {
                format!("predecessor is now {}", cand.addr)
            });
            // Hand the newcomer the keys it is now primary for: (old pred, cand]
            // (with virtual points, replica sync moves keys instead).
            if let Some(p) = old.filter(|_| !self.by_points()) {
                if cand.id.in_open(&p.id, &self.me.id) {
                    let keys = self.store.keys_in(&p.id, &cand.id);
                    if !keys.is_empty() {
                        self.push_keys(cand, &keys, || OnAnswer::Push);
                    }
                }
            }
        }
        if self.rt.successor().is_none() {
            self.rt.set_successors([cand]);
        }
    }

    pub(super) fn neighbour_leaving(
        &mut self,
        who: NodeInfo,
        preds: Vec<NodeInfo>,
        succs: Vec<NodeInfo>,
    ) {
        self.suspect(who.id, self.now + SUSPECT_US);
        let neighbour = self.rt.predecessor().is_some_and(|p| p.id == who.id)
            || self.rt.successor().is_some_and(|s| s.id == who.id);
        self.member_failed(who.id, neighbour);
        if self.rt.predecessor().map(|p| p.id) == Some(who.id) {
            self.rt.set_predecessors(preds);
        }
        if self.rt.successor().map(|s| s.id) == Some(who.id) {
            let mut list: Vec<NodeInfo> = succs.into_iter().filter(|n| n.id != who.id).collect();
            list.extend(
                self.rt
                    .successors()
                    .iter()
                    .copied()
                    .filter(|n| n.id != who.id),
            );
            self.rt.set_successors(list);
        }
        self.forget_node(&who.id);
        self.repair_successor();
        if self.rt.successor().is_none() {
            // Last two nodes: the leaver's predecessor list may name us only.
            self.rt.set_predecessors(Vec::new());
        }
        self.next_stabilize = self.now;
    }

    pub(super) fn stabilize(&mut self) {
        if self.rt.successor().is_none() {
            // Alone, or every successor failed: a known predecessor closes the ring.
            if let Some(p) = self.rt.predecessor().copied() {
                self.rt.set_successors([p]);
            } else {
                self.repair_successor();
            }
        }
        let Some(succ) = self.rt.successor().copied() else {
            return;
        };
        self.send_request(
            succ.addr,
            Some(succ.id),
            Body::GetNeighbors,
            OnAnswer::Stabilize { succ },
            self.cfg.rpc_retries + 1,
        );
    }

    pub(super) fn stabilize_reply(
        &mut self,
        succ: NodeInfo,
        preds: Vec<NodeInfo>,
        succs: Vec<NodeInfo>,
    ) {
        if self.rt.successor().map(|s| s.id) != Some(succ.id) {
            return;
        }
        self.learn_neighbours_of(&succ, &preds, &succs);
        let mut list = Vec::with_capacity(succs.len() + 2);
        // Any of the successor's predecessors that lies between us and it is a
        // closer successor (Zave's rule). Taking the closest one, and stabilizing
        // with it at once instead of next round, lets a node that joined with a
        // far successor (many concurrent joins) walk back in round trips, not
        // in stabilize intervals.
        let me = self.me.id;
        let mut closer: Option<NodeInfo> = None;
        let mut probed = false;
        for x in preds.iter().filter(|x| x.id.in_open(&me, &succ.id)) {
            if !self.not_suspected(x) {
                if !probed {
                    // Our successor hears from a node we think failed (it may have
                    // restarted): probe it. An answer clears the suspicion, and the
                    // next round adopts it.
                    self.send_request(x.addr, Some(x.id), Body::Notify, OnAnswer::Notify, 2);
                    probed = true;
                }
                continue;
            }
            if closer.is_none_or(|c| me.distance_to(&x.id) < me.distance_to(&c.id)) {
                closer = Some(*x);
            }
        }
        if let Some(x) = closer {
            list.push(x);
            self.next_stabilize = self.now;
        }
        list.push(succ);
        list.extend(succs.into_iter().filter(|n| self.not_suspected(n)));
        self.rt.set_successors(list);
        let target = *self.rt.successor().expect("non-empty");
        // A successor that already names us its predecessor would learn
        // nothing from a Notify (a signed message, so not free to send).
        if target.id == succ.id && preds.first() == Some(&self.me) {
            return;
        }
        self.send_request(
            target.addr,
            Some(target.id),
            Body::Notify,
            OnAnswer::Notify,
            2,
        );
    }

    pub(super) fn check_predecessor(&mut self) {
        if let Some(pred) = self.rt.predecessor().copied() {
            self.send_request(
                pred.addr,
                Some(pred.id),
                Body::GetNeighbors,
                OnAnswer::CheckPred { pred },
                self.cfg.rpc_retries + 1,
            );
        }
    }

    pub(super) fn fix_next_finger(&mut self) {
        let Some(succ) = self.rt.successor().copied() else {
            return;
        };
        // Fingers whose start lies before the successor are the successor itself.
        let mut i = self.next_finger;
        let mut scanned = 0;
        while scanned < ID_BITS {
            let start = self.rt.finger_start(i);
            if start.in_open_closed(&self.me.id, &succ.id) {
                self.rt.set_finger(i, Some(succ));
                i = (i + 1) % ID_BITS;
                scanned += 1;
            } else {
                break;
            }
        }
        if scanned == ID_BITS {
            return;
        }
        self.next_finger = (i + 1) % ID_BITS;
        let start = self.rt.finger_start(i);
        let timeout = self.cfg.op_timeout;
        self.start_lookup(start, LookupFor::Finger(i), timeout);
    }

    pub(super) fn finger_found(&mut self, i: usize, node: NodeInfo) {
        let start = self.rt.finger_start(i);
        self.rt.set_finger(i, Some(node));
        // Following fingers whose start also precedes `node` point at it too.
        let mut j = i + 1;
        while j < ID_BITS {
            let s = self.rt.finger_start(j);
            if s.in_open_closed(&start, &node.id) {
                self.rt.set_finger(j, Some(node));
                j += 1;
            } else {
                break;
            }
        }
        if j > i + 1 {
            self.next_finger = j % ID_BITS;
        }
    }

    pub(super) fn answer_neighbors(&mut self, from: SocketAddr, rid: u64) {
        let preds = self.rt.predecessors().to_vec();
        let succs = self.rt.successors().to_vec();
        self.reply(from, rid, Body::Neighbors { preds, succs });
    }

    /// A peer (None: a client handle) says it may be our predecessor.
    pub(super) fn on_notify(
        &mut self,
        from: SocketAddr,
        rid: u64,
        peer: Option<NodeInfo>,
        sent_ms: u64,
    ) {
        let joined = matches!(self.phase, Phase::Joined | Phase::Leaving);
        if let Some(sender) = peer.filter(|p| joined && p.id != self.me.id) {
            // A Notify sent before its sender left, or retransmitted (and so
            // stamped again) while its Leaving was on the way, must not bring
            // the departed node back.
            let now = self.now;
            let stale = self.departed.get(&sender.id).is_some_and(|d| {
                sent_ms <= d.left_at_ms
                    || (d.addr == sender.addr && now.saturating_sub(d.seen) < DEPARTED_ECHO_US)
            });
            if !stale {
                self.notified(sender);
            }
        }
        self.reply(from, rid, Body::NotifyAck);
    }

    /// A peer (None: a client handle) says it leaves the ring.
    pub(super) fn on_leaving(
        &mut self,
        from: SocketAddr,
        rid: u64,
        peer: Option<NodeInfo>,
        sent_ms: u64,
        preds: Vec<NodeInfo>,
        succs: Vec<NodeInfo>,
    ) {
        // Only a current neighbour, from the address we know it by, with a
        // timestamp our clock accepts, can take itself out of our lists.
        let window_ms = self.expiry_slack_ms();
        let wall = self.wall_ms();
        let timely = sent_ms.abs_diff(wall) <= window_ms;
        match peer {
            Some(sender) if timely && self.is_neighbour(peer) => {
                if self.departed.len() >= MAX_REMEMBERED {
                    let now = self.now;
                    self.departed
                        .retain(|_, d| now.saturating_sub(d.seen) < SUSPECT_US);
                    keep_latest(&mut self.departed, MAX_REMEMBERED / 2, |d| d.seen);
                }
                let departed = Departed {
                    addr: sender.addr,
                    left_at_ms: sent_ms,
                    seen: self.now,
                };
                self.departed.insert(sender.id, departed);
                self.neighbour_leaving(sender, preds, succs);
            }
            Some(_) => self.stats.refused_membership += 1,
            None => {}
        }
        self.reply(from, rid, Body::LeavingAck);
    }

    /// Our predecessor is alive: its own predecessors follow it in our list.
    pub(super) fn predecessor_answered(&mut self, pred: NodeInfo, preds: Vec<NodeInfo>) {
        if self.rt.predecessor().map(|p| p.id) == Some(pred.id) {
            let mut list = vec![pred];
            list.extend(preds);
            self.rt.set_predecessors(list);
        }
    }

    /// Our predecessor did not answer the check: it is dropped when it timed out.
    pub(super) fn predecessor_silent(&mut self, pred: NodeInfo, timed_out: bool) {
        if timed_out && self.rt.predecessor().map(|p| p.id) == Some(pred.id) {
            self.forget_node(&pred.id);
        }
    }

    /// Stabilize again at once (with the next successor, after a failure).
    pub(super) fn stabilize_now(&mut self) {
        self.next_stabilize = self.now;
    }

    /// A request went unanswered after `attempts` transmissions.
    pub(super) fn peer_silent(&mut self, to: SocketAddr, to_id: Option<Id>, attempts: u32) {
        if attempts < HARD_FAILURE_ATTEMPTS {
            // A request that gives up fast (notifications, join steps, merge
            // probes) is no proof of death under packet loss: the peer is only
            // avoided for a moment.
            if let Some(id) = to_id {
                let until = self.now + SOFT_SUSPECT_US;
                let e = self.suspects.entry(id).or_insert(until);
                *e = (*e).max(until);
                self.bound_suspects();
            }
        } else {
            self.peer_failed(to, to_id);
        }
    }
}
