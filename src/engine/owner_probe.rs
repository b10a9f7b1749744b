//! Lookups that start at the likely owner: what the location cache
//! (crate::routing::LocationCache) learns from answers, and the one-step
//! probe of the node it names for a key, judged as a checked lookup's end is.

use super::dispatch::OnAnswer;
use super::lookup::{Candidate, Lookup, LookupFor};
use super::{Engine, Timer};
use crate::id::Id;
use crate::wire::{Body, NodeInfo};
use std::cmp::Reverse;
use std::collections::HashSet;
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
        !own_routing && !matches!(purpose, LookupFor::Join { .. })
    }

    /// The node the location cache believes responsible for `key`, when it
    /// is another node that may be asked.
    pub(super) fn cached_owner(&self, key: &Id) -> Option<NodeInfo> {
        let usable = |n: &NodeInfo| n.id != self.me.id && self.not_suspected(n);
        self.locations.owner_of(key, self.now, usable)
    }

    /// Remembers nodes an answer named (see [`crate::routing::LocationCache`]).
    pub(super) fn learn_locations<'a>(&mut self, nodes: impl IntoIterator<Item = &'a NodeInfo>) {
        if self.one_hop() {
            return;
        }
        for n in nodes {
            if n.id != self.me.id && !self.departed.contains_key(&n.id) {
                self.locations.learn(n, self.now);
            }
        }
    }

    /// Remembers a run of nodes an answer named as following each other
    /// clockwise. The run is cut at this node and at nodes that just left:
    /// whoever stands either side of them is not each other's neighbour.
    pub(super) fn learn_neighbours<'a>(&mut self, run: impl IntoIterator<Item = &'a NodeInfo>) {
        if self.one_hop() {
            return;
        }
        let mut part: Vec<NodeInfo> = Vec::with_capacity(16);
        for n in run {
            if n.id == self.me.id || self.departed.contains_key(&n.id) {
                self.locations.learn_run(&part, self.now);
                part.clear();
            } else {
                part.push(*n);
            }
        }
        self.locations.learn_run(&part, self.now);
    }

    /// Starts a lookup at the node the location cache believes responsible:
    /// it is asked for its neighbours, and judged as the node a lookup ended
    /// at is ([`Self::verified`]): responsible when the key lies between its
    /// predecessor and itself, one round trip for the whole lookup. Else its
    /// predecessors name the node to check, or the lookup routes from the
    /// table's `candidates` as it would have without the cache. One
    /// transmission: a silent owner costs one retransmission timeout and
    /// leaves the cache, not the ring (no proof of death).
    pub(super) fn probe_owner(
        &mut self,
        key: Id,
        purpose: LookupFor,
        candidates: Vec<Candidate>,
        owner: NodeInfo,
        timeout: Duration,
    ) {
        let id = self.next_lookup;
        self.next_lookup += 1;
        let deadline = self.now + timeout.as_micros().min(u64::MAX as u128 / 2) as u64;
        self.timers.push(Reverse((deadline, Timer::Lookup(id))));
        let mut tried = HashSet::new();
        tried.insert(owner.addr);
        let l = Lookup {
            key,
            purpose,
            started: self.now,
            hops: 0,
            candidates,
            tried,
            restarts: 0,
            deadline,
            vouched_by: None,
        };
        self.lookups.insert(id, l);
        let ctx = OnAnswer::OwnerProbe { lookup: id, owner };
        self.send_request(owner.addr, Some(owner.id), Body::GetNeighbors, ctx, 1);
    }

    /// The cached owner's neighbours: see [`Self::probe_owner`].
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
        self.learn_neighbours(preds.iter().rev().chain([&owner]).chain(&succs));
        l.hops += 1;
        let key = l.key;
        if preds
            .first()
            .is_none_or(|p| key.in_open_closed(&p.id, &owner.id))
        {
            let mut nodes = Vec::with_capacity(succs.len() + 1);
            nodes.push(owner);
            nodes.extend(succs.into_iter().filter(|n| n.id != owner.id));
            return self.lookup_done(l, nodes);
        }
        // Not responsible: a node joined before it since we heard of it, or
        // the key lies behind one we never heard of. Its predecessors may
        // name the responsible node, whose own word is then checked.
        let mut chain = vec![owner];
        chain.extend(preds);
        let found = chain
            .windows(2)
            .find(|w| key.in_open_closed(&w[1].id, &w[0].id))
            .map(|w| w[0]);
        match found {
            Some(r) if r.id != self.me.id && self.not_suspected(&r) => {
                l.vouched_by = Some((owner, id));
                self.lookup_done(l, vec![r]);
            }
            _ => self.lookup_next(id, l),
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

    pub(super) fn start_lookup_via(
        &mut self,
        key: Id,
        purpose: LookupFor,
        candidates: Vec<Candidate>,
        timeout: Duration,
    ) {
        let id = self.next_lookup;
        self.next_lookup += 1;
        let deadline = self.now + timeout.as_micros().min(u64::MAX as u128 / 2) as u64;
        self.timers.push(Reverse((deadline, Timer::Lookup(id))));
        let l = Lookup {
            key,
            purpose,
            started: self.now,
            hops: 0,
            candidates,
            tried: HashSet::new(),
            restarts: 0,
            deadline,
            vouched_by: None,
        };
        self.lookup_next(id, l);
    }
}
