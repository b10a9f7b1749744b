//! Lookups that start at the likely owner: what the location cache
//! (crate::routing::LocationCache) learns from answers, and the one-step
//! probe of the node it names for a key, judged as a checked lookup's end is.

use super::dispatch::OnAnswer;
use super::lookup::{placed_by, Candidate, LookupFor};
use super::Engine;
use crate::id::Id;
use crate::wire::{Body, NodeInfo};
use std::time::Duration;

/// How long a node named by an answer is offered as a lookup's first stop
/// (one that failed or left is dropped at once).
pub(super) const LOCATION_FRESH_US: u64 = 30_000_000;

impl Engine {
    /// Whether a lookup may start from the location cache: Chord routing by
    /// the ring (one-hop tables and virtual points have their own), and a
    /// node that has a table (a join does not yet).
    pub(super) fn uses_location_cache(&self, purpose: &LookupFor) -> bool {
        let own_routing = self.one_hop() || (self.by_points() && purpose.is_for_data());
        // A trace shows the ring's own route, not the cache's shortcut.
        !own_routing && !matches!(purpose, LookupFor::Join { .. }) && !self.traced(purpose)
    }

    /// The node the location cache believes responsible for `key`, when it
    /// is another node that may be asked.
    pub(super) fn cached_owner(&self, key: &Id) -> Option<NodeInfo> {
        let usable = |n: &NodeInfo| n.id != self.me.id && self.not_suspected(n);
        self.locations.owner_of(key, self.now, usable)
    }

    /// Whether `n` may enter the location cache: not this node, not one
    /// that just left, and not in one-hop mode (whose table knows everyone).
    fn cacheable(&self, n: &NodeInfo) -> bool {
        !self.one_hop() && n.id != self.me.id && !self.departed.contains_key(&n.id)
    }

    /// Remembers the answerer and the nodes its answer named.
    pub(super) fn learn_from_answer(&mut self, answerer: &NodeInfo, named: &[NodeInfo]) {
        for n in std::iter::once(answerer).chain(named) {
            if self.cacheable(n) {
                self.locations.learn(n, &answerer.id, self.now);
            }
        }
    }

    /// Remembers that `succ` follows `pred`, as `told_by` (one of the two)
    /// said in an answer.
    pub(super) fn learn_pair(&mut self, pred: &NodeInfo, succ: &NodeInfo, told_by: &Id) {
        if self.cacheable(pred) && self.cacheable(succ) {
            self.locations.learn_pair(pred, succ, told_by, self.now);
        }
    }

    /// Remembers what a node said of its own neighbours (a Neighbors answer).
    pub(super) fn learn_neighbours_of(
        &mut self,
        x: &NodeInfo,
        preds: &[NodeInfo],
        succs: &[NodeInfo],
    ) {
        self.learn_from_answer(x, preds);
        self.learn_from_answer(x, succs);
        if let Some(p) = preds.first() {
            self.learn_pair(p, x, &x.id);
        }
        if let Some(s) = succs.first() {
            self.learn_pair(x, s, &x.id);
        }
    }

    /// Starts a lookup at the node the location cache believes responsible:
    /// it is asked for its neighbours, and judged as the node a lookup ended
    /// at is ([`Self::verified`]): responsible when the key lies between its
    /// predecessor and itself, one round trip for the whole lookup. Else its
    /// predecessors name the node to check, or the lookup routes from the
    /// table's `candidates` as it would have without the cache. One
    /// transmission: a silent owner costs one retransmission timeout.
    pub(super) fn probe_owner(
        &mut self,
        key: Id,
        purpose: LookupFor,
        candidates: Vec<Candidate>,
        owner: NodeInfo,
        timeout: Duration,
    ) {
        let (id, mut l) = self.new_lookup(key, purpose, candidates, timeout);
        l.tried.insert(owner.addr);
        self.lookups.insert(id, l);
        self.stats.owner_probes += 1;
        let ctx = OnAnswer::OwnerProbe { lookup: id, owner };
        self.send_request(owner.addr, Some(owner.id), Body::GetNeighbors, ctx, 1);
    }

    /// The cached owner's neighbours: see [`Self::probe_owner`]. A node
    /// without a predecessor confirms nothing (it is not, or not yet, part
    /// of the ring we know).
    pub(super) fn owner_answered(
        &mut self,
        id: u64,
        owner: NodeInfo,
        preds: Vec<NodeInfo>,
        succs: Vec<NodeInfo>,
    ) {
        let Some(mut l) = self.lookups.remove(&id) else {
            return;
        };
        self.learn_neighbours_of(&owner, &preds, &succs);
        l.hops += 1;
        // The owner vouches for what it says, so that a NotResponsible from
        // it later (to a put or get) distrusts it.
        l.vouched_by = Some((owner, id));
        match placed_by(&l.key, owner, &preds) {
            Some(r) if r.id == owner.id => {
                self.stats.owner_probes_confirmed += 1;
                let mut nodes = Vec::with_capacity(succs.len() + 1);
                nodes.push(owner);
                nodes.extend(succs.into_iter().filter(|n| n.id != owner.id));
                self.lookup_done(l, nodes);
            }
            // A node joined before it since we heard of it: the one its
            // predecessors name is checked in turn.
            Some(r) if r.id != self.me.id && self.not_suspected(&r) => self.lookup_done(l, vec![r]),
            _ => {
                l.vouched_by = None;
                self.lookup_next(id, l)
            }
        }
    }

    /// The cached owner did not answer: it leaves the cache and the lookup
    /// routes from the table.
    pub(super) fn owner_silent(&mut self, id: u64, owner: NodeInfo) {
        self.locations.forget(&owner.id);
        if let Some(l) = self.lookups.remove(&id) {
            self.lookup_next(id, l);
        }
    }
}
