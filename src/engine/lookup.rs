//! The iterative lookup: candidates asked in order of closeness, dead ends
//! routed around, restarts within the deadline, and the check that the node
//! named as responsible really is.

use super::dict::{GetJob, PutJob};
use super::dispatch::OnAnswer;
use super::primary::ReplyTo;
use super::{Engine, OpResult, Phase, Timer};
use crate::config::LogLevel;
use crate::error::Error;
use crate::id::Id;
use crate::routing::Answer;
use crate::types::{LookupOutcome, OpId, TraceHop};
use crate::wire;
use crate::wire::Status;
use crate::wire::{Body, NodeInfo, WireEntry};
use std::cmp::Reverse;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

impl LookupFor {
    /// Lookups for a key's data (by virtual points when the overlay places
    /// keys so), as opposed to the ring's own (joins, fingers, merges).
    pub(super) fn is_for_data(&self) -> bool {
        matches!(
            self,
            LookupFor::User(_) | LookupFor::Put(_) | LookupFor::Get(_) | LookupFor::Handoff(_)
        )
    }
}

#[derive(Clone, Debug)]
pub(super) enum LookupFor {
    User(OpId),
    Join {
        op: OpId,
        /// The bootstrap peer this attempt started from: a restart asks it
        /// again, once it has had time to notice a dead node it named.
        via: SocketAddr,
        rest: Vec<SocketAddr>,
    },
    Finger(usize),
    /// Our successor as a remembered peer's ring sees it (merging after a split).
    Merge,
    Put(PutJob),
    Get(GetJob),
    Handoff(Id),
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Candidate {
    pub(super) addr: SocketAddr,
    pub(super) id: Option<Id>,
}

impl From<&NodeInfo> for Candidate {
    fn from(n: &NodeInfo) -> Candidate {
        Candidate {
            addr: n.addr,
            id: Some(n.id),
        }
    }
}

#[derive(Debug)]
pub(super) struct Lookup {
    pub(super) key: Id,
    pub(super) purpose: LookupFor,
    pub(super) started: u64,
    pub(super) hops: u32,
    pub(super) candidates: Vec<Candidate>,
    pub(super) tried: HashSet<SocketAddr>,
    pub(super) restarts: u8,
    pub(super) deadline: u64,
    /// The peer whose answer ended the lookup (and the lookup's id): its word
    /// on who is responsible is checked before anyone relies on it.
    pub(super) vouched_by: Option<(NodeInfo, u64)>,
    /// A traced lookup's answered steps (None: not traced), and when the
    /// step in flight was sent.
    pub(super) path: Option<Vec<TraceHop>>,
    pub(super) step_sent: u64,
}

/// How long a peer that missed one lookup step is avoided by new lookups.
pub(super) const SOFT_SUSPECT_US: u64 = 2_000_000;

/// Fresh starts of a lookup whose candidates all failed, and the first pause before one.
pub(super) const MAX_LOOKUP_RESTARTS: u8 = 8;

pub(super) const RETRY_BASE_US: u64 = 100_000;

/// Candidates returned per lookup step.
pub(super) const FANOUT: usize = 3;

impl Engine {
    /// Whether a lookup records its path: a user's lookup started by `trace`.
    pub(super) fn traced(&self, purpose: &LookupFor) -> bool {
        matches!(purpose, LookupFor::User(op) if self.traced_ops.contains(op))
    }

    /// What this node's own table says about `key`: the responsible node and its
    /// successors, or the first candidates to ask (the successor as a last resort).
    /// `for_data`: the lookup is for a key's data, which an overlay with
    /// virtual points places by its table rather than by the ring.
    pub(super) fn local_route(
        &self,
        key: &Id,
        for_data: bool,
    ) -> Result<Vec<NodeInfo>, Vec<Candidate>> {
        if for_data && self.by_points() {
            return self.placed_route(key);
        }
        match self.rt.answer(key, |n| self.not_suspected(n), FANOUT) {
            Answer::Done(nodes) => Ok(nodes),
            Answer::Next(nodes) => {
                let mut cands: Vec<Candidate> = nodes.iter().map(Candidate::from).collect();
                if let Some(s) = self.rt.successor() {
                    if !nodes.iter().any(|n| n.id == s.id) {
                        cands.push(Candidate::from(s));
                    }
                }
                Err(cands)
            }
        }
    }

    pub(super) fn start_lookup(&mut self, key: Id, purpose: LookupFor, timeout: Duration) {
        // One-hop mode: the member the table names is asked first (a lookup
        // the caller trusts), or written to at once (a put or get, which the
        // member itself refuses if it is not responsible); Chord routing
        // follows only if it fails.
        let for_data = purpose.is_for_data();
        let route = match (self.local_route(&key, for_data), self.one_hop_hint(&key)) {
            (Err(mut candidates), Some(hint)) if for_data || !self.by_points() => {
                let trusting = match &purpose {
                    LookupFor::Put(j) => !j.verify,
                    LookupFor::Get(j) => !j.verify,
                    LookupFor::Handoff(_) => true,
                    _ => false,
                };
                if trusting {
                    Ok(hint)
                } else {
                    candidates.retain(|c| c.id != Some(hint[0].id));
                    candidates.insert(0, Candidate::from(&hint[0]));
                    Err(candidates)
                }
            }
            (route, _) => route,
        };
        match route {
            Ok(nodes) => {
                let l = Lookup {
                    key,
                    path: self.traced(&purpose).then(Vec::new),
                    purpose,
                    started: self.now,
                    hops: 0,
                    candidates: Vec::new(),
                    tried: HashSet::new(),
                    restarts: 0,
                    deadline: self.now,
                    vouched_by: None,
                    step_sent: self.now,
                };
                self.lookup_done(l, nodes);
            }
            Err(candidates) => {
                let owner = match self.uses_location_cache(&purpose) {
                    true => self.cached_owner(&key),
                    false => None,
                };
                match owner {
                    Some(owner) => self.probe_owner(key, purpose, candidates, owner, timeout),
                    None => self.start_lookup_via(key, purpose, candidates, timeout),
                }
            }
        }
    }

    /// A new lookup's id and state, its deadline timer set; not yet started.
    pub(super) fn new_lookup(
        &mut self,
        key: Id,
        purpose: LookupFor,
        candidates: Vec<Candidate>,
        timeout: Duration,
    ) -> (u64, Lookup) {
        let id = self.next_lookup;
        self.next_lookup += 1;
        let deadline = self.now + timeout.as_micros().min(u64::MAX as u128 / 2) as u64;
        self.timers.push(Reverse((deadline, Timer::Lookup(id))));
        let l = Lookup {
            key,
            path: self.traced(&purpose).then(Vec::new),
            purpose,
            started: self.now,
            hops: 0,
            candidates,
            tried: HashSet::new(),
            restarts: 0,
            deadline,
            vouched_by: None,
            step_sent: self.now,
        };
        (id, l)
    }

    pub(super) fn start_lookup_via(
        &mut self,
        key: Id,
        purpose: LookupFor,
        candidates: Vec<Candidate>,
        timeout: Duration,
    ) {
        let (id, l) = self.new_lookup(key, purpose, candidates, timeout);
        self.lookup_next(id, l);
    }

    /// A peer pointed a lookup at the wrong node: avoid it for a while, and
    /// forget what the location cache holds of it.
    pub(super) fn distrust(&mut self, peer: Option<NodeInfo>) {
        if let Some(p) = peer.filter(|p| p.id != self.me.id) {
            self.stats.wrong_answers += 1;
            self.suspect(p.id, self.now + SOFT_SUSPECT_US);
            self.locations.forget(&p.id);
        }
    }

    /// Starts a lookup again from the local table (same id and deadline).
    pub(super) fn retry_lookup_now(&mut self, id: u64, l: Lookup) {
        self.lookups.insert(id, l);
        self.timers
            .push(Reverse((self.now, Timer::LookupRetry(id))));
    }

    /// Asks the best untried candidate; when none is left, starts again from
    /// the local table after a pause, or fails at the deadline.
    pub(super) fn lookup_next(&mut self, id: u64, mut l: Lookup) {
        if let LookupFor::User(op)
        | LookupFor::Put(PutJob { op, .. })
        | LookupFor::Get(GetJob { op, .. }) = &l.purpose
        {
            if !self.op_live(*op) {
                return;
            }
        }
        // Suspected peers are passed over while others remain; when none do,
        // the first of them is tried anyway (under heavy loss most peers have
        // missed an answer lately, and a suspicion is a preference, not a verdict).
        let mut passed_over: Option<Candidate> = None;
        loop {
            let c = match (!l.candidates.is_empty()).then(|| l.candidates.remove(0)) {
                Some(c) => c,
                None => match passed_over.take() {
                    Some(c) => c,
                    None => break,
                },
            };
            if l.tried.contains(&c.addr) {
                continue;
            }
            if let Some(cid) = c.id {
                let eligible = self.not_suspected(&NodeInfo {
                    id: cid,
                    addr: c.addr,
                });
                if !eligible && !l.candidates.is_empty() {
                    passed_over.get_or_insert(c);
                    continue;
                }
            }
            l.tried.insert(c.addr);
            let key = l.key;
            // Three transmissions per step ride out heavy loss, and a peer
            // silent to all three is as dead as one silent to any request
            // (HARD_FAILURE_ATTEMPTS): it is declared failed. A join tries its
            // bootstrap peers in turn and gives up on a silent one after two,
            // which only makes it suspected for a moment.
            let attempts = if matches!(l.purpose, LookupFor::Join { .. }) {
                self.cfg.rpc_retries.min(1) + 1
            } else {
                self.cfg.rpc_retries.min(2) + 1
            };
            let body = match self.by_points() && l.purpose.is_for_data() {
                true => Body::FindHolder { key },
                false => Body::FindSuccessor { key },
            };
            l.step_sent = self.now;
            self.lookups.insert(id, l);
            self.send_request(
                c.addr,
                c.id,
                body,
                OnAnswer::LookupStep { lookup: id },
                attempts,
            );
            return;
        }
        // Every candidate failed: under loss or churn that is usually transient, so
        // try again from the local table after a pause, until the deadline. A
        // join has no table yet: it starts again from its bootstrap peer, but
        // only one that answered (a silent one gives way to the next).
        let delay = RETRY_BASE_US << l.restarts.min(4);
        let may_restart = match &mut l.purpose {
            // Other bootstrap peers come first; one that answered is asked
            // again after them (it may have noticed the dead node by then).
            LookupFor::Join { rest, via, .. } if !rest.is_empty() => {
                if l.hops > 0 {
                    rest.push(*via);
                }
                false
            }
            LookupFor::Join { .. } => l.hops > 0,
            _ => true,
        };
        if may_restart && l.restarts < MAX_LOOKUP_RESTARTS && self.now + delay < l.deadline {
            l.restarts += 1;
            self.timers
                .push(Reverse((self.now + delay, Timer::LookupRetry(id))));
            self.lookups.insert(id, l);
            return;
        }
        self.lookup_failed(l, Error::NoRoute);
    }

    pub(super) fn lookup_reply(
        &mut self,
        id: u64,
        from: NodeInfo,
        done: bool,
        nodes: Vec<NodeInfo>,
    ) {
        let Some(mut l) = self.lookups.remove(&id) else {
            return;
        };
        l.hops += 1;
        if let Some(path) = l.path.as_mut() {
            let rtt = Duration::from_micros(self.now.saturating_sub(l.step_sent));
            path.push(TraceHop { node: from, rtt });
        }
        let by_points = self.by_points() && l.purpose.is_for_data();
        self.learn_from_answer(&from, &nodes);
        if done && !by_points {
            // The responsible node and its successors: the answerer's own
            // successor is the first of them, or the second when it is the
            // responsible node itself.
            let skip = nodes.first().is_some_and(|n| n.id == from.id) as usize;
            if let Some(succ) = nodes.get(skip) {
                self.learn_pair(&from, succ, &from.id);
            }
        }
        if by_points && done && nodes.first().is_some_and(|n| n.id != from.id) {
            // Virtual points: only a holder's own word counts. Ours, when we
            // are the one named and our table agrees; else the one named is asked.
            if nodes[0].id == self.me.id && self.responsible_here(&l.key) {
                return self.lookup_done(l, nodes);
            }
            let named = Candidate::from(&nodes[0]);
            if nodes[0].id != self.me.id && !l.tried.contains(&named.addr) {
                l.candidates.insert(0, named);
            }
            return self.lookup_next(id, l);
        }
        if done && !nodes.is_empty() {
            let mut nodes = nodes;
            if matches!(l.purpose, LookupFor::Join { .. }) && nodes.iter().all(|n| n.id != from.id)
            {
                // The answerer precedes the joiner: as the last successor-list
                // entry it keeps the joiner attached to the ring even if every
                // successor it was given has just died.
                nodes.push(from);
            }
            l.vouched_by = Some((from, id));
            self.lookup_done(l, nodes);
            return;
        }
        // Only nodes strictly closer to the key than the one that answered
        // count as progress (with virtual points there is no such order: the
        // nodes named are holders by the answerer's table, each asked once).
        let mut closer: Vec<Candidate> = nodes
            .into_iter()
            .filter(|n| (by_points || n.id.in_open(&from.id, &l.key)) && n.id != self.me.id)
            .map(|n| Candidate::from(&n))
            .collect();
        closer.append(&mut l.candidates);
        let key = l.key;
        if !by_points {
            closer.sort_by_key(|c| c.id.map(|i| i.distance_to(&key)).unwrap_or(Id::MAX));
        }
        l.candidates = closer;
        self.lookup_next(id, l);
    }

    pub(super) fn lookup_done(&mut self, mut l: Lookup, nodes: Vec<NodeInfo>) {
        let vouched = l.vouched_by.take();
        // Lookups the caller trusts are checked always; puts and gets once a
        // node named for them turned out not to be responsible (the node
        // itself refuses what is not its own, so trusting first costs nothing).
        let check = match &l.purpose {
            LookupFor::User(_) => true,
            LookupFor::Put(j) => j.verify,
            LookupFor::Get(j) => j.verify,
            _ => false,
        };
        if let (true, Some((v, id))) = (check, vouched) {
            let x = nodes[0];
            if v.id != x.id && x.id == self.me.id {
                // Named ourselves: our own predecessor list says whether we are.
                let preds = self.rt.predecessors().to_vec();
                return self.verified(id, l, nodes, v, preds);
            }
            if v.id != x.id && x.id != self.me.id {
                // A peer's word that x is responsible is not enough for a result
                // the caller will trust: x itself must place the key between
                // its predecessor and itself.
                let ctx = OnAnswer::Verify {
                    id,
                    lookup: Box::new(l),
                    nodes,
                    vouched_by: v,
                };
                let tries = self.cfg.rpc_retries + 1;
                self.send_request(x.addr, Some(x.id), Body::GetNeighbors, ctx, tries);
                return;
            }
        }
        let vouched = vouched.map(|(v, _)| v);
        let latency = self.now.saturating_sub(l.started);
        match l.purpose {
            LookupFor::User(op) => {
                if self.op_live(op) {
                    self.record_lookup(l.hops, latency);
                    self.complete(
                        op,
                        OpResult::Lookup(Ok(LookupOutcome {
                            node: nodes[0],
                            hops: l.hops,
                            latency: Duration::from_micros(latency),
                            path: l.path.take().unwrap_or_default(),
                        })),
                    );
                }
            }
            LookupFor::Join { op, .. } => self.join_found(op, nodes),
            LookupFor::Finger(i) => self.finger_found(i, nodes[0]),
            LookupFor::Merge => self.merge_found(nodes[0]),
            LookupFor::Put(mut job) => {
                if !self.op_live(job.op) {
                    return;
                }
                job.vouched_by = vouched;
                self.record_lookup(l.hops, latency);
                let node = nodes[0];
                if node.id == self.me.id {
                    let (key, entry) = (job.key, job.entry.clone());
                    self.primary_store(key, entry, ReplyTo::LocalPut(Box::new(job)));
                } else {
                    let key = job.key;
                    self.sign_for_holders(&key, &mut job.entry);
                    let body = Body::Store {
                        key: job.key,
                        entry: job.entry.clone(),
                    };
                    self.send_request(
                        node.addr,
                        Some(node.id),
                        body,
                        OnAnswer::Store(job),
                        self.cfg.rpc_retries + 1,
                    );
                }
            }
            LookupFor::Get(mut job) => {
                if !self.op_live(job.op) {
                    return;
                }
                job.vouched_by = vouched;
                self.record_lookup(l.hops, latency);
                let replicas = self.cfg.replicas.saturating_sub(1);
                job.backups = nodes.iter().skip(1).take(replicas).copied().collect();
                job.from_replica = false;
                self.fetch_page(job, nodes[0]);
            }
            LookupFor::Handoff(key) => {
                let node = nodes[0];
                self.handoffs_in_flight = self.handoffs_in_flight.saturating_sub(1);
                if node.id != self.me.id {
                    let mut items: Vec<(Id, WireEntry)> = self
                        .store
                        .entries(&key, self.now)
                        .into_iter()
                        .map(|e| (key, e.to_wire(self.now)))
                        .collect();
                    items.iter_mut().for_each(|(k, e)| self.sign_outgoing(k, e));
                    // Written to the primary as any writer would (Replicate
                    // is taken from neighbours only); it replicates them.
                    if !items.is_empty() && !self.handoff_entries.contains_key(&key) {
                        self.handoffs_in_flight += 1;
                        self.handoff_entries.insert(key, (items.len(), true));
                        for (key, entry) in items {
                            self.send_request(
                                node.addr,
                                Some(node.id),
                                Body::Store { key, entry },
                                OnAnswer::Handoff { key },
                                2,
                            );
                        }
                    }
                }
            }
        }
    }

    pub(super) fn record_lookup(&mut self, hops: u32, latency_us: u64) {
        self.stats.lookups_ok += 1;
        self.stats.hops.record(hops as u64);
        self.stats.lookup_latency_us.record(latency_us);
    }

    pub(super) fn lookup_failed(&mut self, l: Lookup, e: Error) {
        match l.purpose {
            LookupFor::User(op) => {
                if self.op_live(op) {
                    self.stats.lookups_failed += 1;
                    self.complete(op, OpResult::Lookup(Err(e)));
                }
            }
            LookupFor::Join { op, mut rest, via } => {
                // Which step failed: the bootstrap peer itself, or the nodes it named.
                let named: Vec<String> = l
                    .tried
                    .iter()
                    .filter(|a| **a != via)
                    .map(|a| a.to_string())
                    .collect();
                let why = if l.hops == 0 {
                    format!("no bootstrap peer answered ({via} was the last asked: {e})")
                } else {
                    format!(
                        "bootstrap peer {via} answered, but the nodes it named ({}) did not \
                         answer before the join's deadline ({e})",
                        named.join(", ")
                    )
                };
                if rest.is_empty() || !self.op_live(op) {
                    self.phase = Phase::Idle;
                    let e = match self.mode_refused_by.take() {
                        Some(peer) => Error::ModeMismatch(format!(
                            "{peer} belongs to an overlay that routes in another mode; this \
                             node is configured routing={} (all members must agree)",
                            self.cfg.routing.name()
                        )),
                        None => Error::JoinFailed(why),
                    };
                    self.log(LogLevel::Warn, || format!("join failed: {e}"));
                    self.complete(op, OpResult::Join(Err(e)));
                } else {
                    self.log(LogLevel::Info, || {
                        format!("join: {why}; trying {}", rest[0])
                    });
                    let next = rest.remove(0);
                    let remaining = self.op_remaining(op);
                    self.start_lookup_via(
                        self.me.id,
                        LookupFor::Join {
                            op,
                            via: next,
                            rest,
                        },
                        vec![Candidate {
                            addr: next,
                            id: None,
                        }],
                        remaining,
                    );
                }
            }
            LookupFor::Finger(_) | LookupFor::Merge => {}
            LookupFor::Put(job) => {
                if self.op_live(job.op) {
                    self.stats.puts_failed += 1;
                    self.complete(job.op, OpResult::Put(Err(e)));
                }
            }
            LookupFor::Get(job) => {
                if self.op_live(job.op) {
                    self.stats.gets_failed += 1;
                    self.complete(job.op, OpResult::Get(Err(e)));
                }
            }
            LookupFor::Handoff(_) => {
                self.handoffs_in_flight = self.handoffs_in_flight.saturating_sub(1);
                self.rescan_placement();
            }
        }
    }

    /// Answers a FindSuccessor: the responsible node and its successors, or
    /// the closest nodes this one knows.
    pub(super) fn answer_find(&mut self, from: SocketAddr, rid: u64, key: Id) {
        if !matches!(self.phase, Phase::Joined | Phase::Leaving) {
            let status = Status::NotResponsible;
            self.reply(from, rid, Body::Error { status });
            return;
        }
        let body = match self.rt.answer(&key, |n| self.not_suspected(n), FANOUT) {
            Answer::Done(mut nodes) => {
                nodes.truncate(wire::MAX_NODE_LIST);
                Body::FindReply { done: true, nodes }
            }
            Answer::Next(nodes) => Body::FindReply { done: false, nodes },
        };
        self.reply(from, rid, body);
    }

    /// Answers a FindHolder (virtual points): the holders of the key by our
    /// table when we are its primary, otherwise the primary to ask.
    pub(super) fn answer_holder(&mut self, from: SocketAddr, rid: u64, key: Id) {
        if !matches!(self.phase, Phase::Joined | Phase::Leaving) || !self.by_points() {
            let status = Status::NotResponsible;
            self.reply(from, rid, Body::Error { status });
            return;
        }
        {
            let body = match self.placed_route(&key) {
                Ok(mut nodes) => {
                    nodes.truncate(wire::MAX_NODE_LIST);
                    Body::FindReply { done: true, nodes }
                }
                Err(c) => Body::FindReply {
                    done: false,
                    nodes: c
                        .iter()
                        .filter_map(|c| c.id.map(|id| NodeInfo { id, addr: c.addr }))
                        .take(FANOUT)
                        .collect(),
                },
            };
            self.reply(from, rid, body);
        }
    }

    /// A lookup step went unanswered: ask the next candidate.
    pub(super) fn lookup_step_failed(&mut self, id: u64, to: SocketAddr) {
        if let Some(mut l) = self.lookups.remove(&id) {
            l.tried.insert(to);
            self.lookup_next(id, l);
        }
    }

    /// The node a lookup ended at showed its predecessors: it is responsible
    /// when the key lies between the first of them and itself. When it is
    /// not, the peer that named it is distrusted, and the node's own
    /// predecessors show who is (checked in turn, like any claim).
    pub(super) fn verified(
        &mut self,
        id: u64,
        lookup: Lookup,
        nodes: Vec<NodeInfo>,
        vouched_by: NodeInfo,
        preds: Vec<NodeInfo>,
    ) {
        let x = nodes[0];
        let key = lookup.key;
        self.learn_neighbours_of(&x, &preds, &[]);
        let placed = placed_by(&key, x, &preds);
        if preds.is_empty() || placed.is_some_and(|r| r.id == x.id) {
            self.lookup_done(lookup, nodes);
            return;
        }
        self.log(LogLevel::Info, || {
            format!(
                "{} {} named {} as responsible for {}, which it is not",
                vouched_by.id.to_hex(),
                vouched_by.addr,
                x.addr,
                key.to_hex()
            )
        });
        self.distrust(Some(vouched_by));
        match placed {
            Some(r) if self.not_suspected(&r) => {
                let mut l = lookup;
                l.vouched_by = Some((x, id));
                self.lookup_done(l, vec![r]);
            }
            _ => self.retry_lookup_now(id, lookup),
        }
    }
}

/// Whom `x`'s own predecessor list places `key` at: `x` when the key lies
/// between its first predecessor and it, else the first of its predecessors
/// whose own predecessor in the list the key follows; None when the list
/// does not reach back to the key (or is empty).
pub(super) fn placed_by(key: &Id, x: NodeInfo, preds: &[NodeInfo]) -> Option<NodeInfo> {
    std::iter::once(&x)
        .chain(preds)
        .zip(preds)
        .find(|(n, p)| key.in_open_closed(&p.id, &n.id))
        .map(|(n, _)| *n)
}
