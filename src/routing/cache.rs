//! The location cache: nodes this node has heard of lately, and which of
//! them follow each other on the ring, so that a lookup can go straight to
//! the node that is probably responsible for a key.
//!
//! Chord's table knows O(log N) nodes and a lookup takes about ½·log2 N
//! steps plus one to hear the responsible node confirm it. Answers name
//! runs of neighbours (a responsible node and its successors, a node's
//! predecessors and successors): remembered for a while, they say which
//! node follows which. When the cache knows the node p just before a key
//! and that p's successor is s, s is probably responsible, and asking s for
//! its neighbours confirms it in one round trip. When s is not (a node
//! joined in between since), its predecessors name the one to check. A
//! guess is made only from a known pair of neighbours, never from a gap in
//! what the cache knows, so a sparse cache costs nothing: the lookup routes
//! by the table as before. In an overlay of up to [`LocationCache::capacity`]
//! nodes a busy node thus finds most keys in one hop, without the full
//! membership of one-hop routing.
//!
//! Pure data: the engine tells it what it learned and what failed, with the
//! time; it never asks the network.

use crate::id::Id;
use crate::wire::NodeInfo;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Bound::{Excluded, Unbounded};

#[derive(Clone, Copy, Debug)]
struct Entry {
    addr: SocketAddr,
    /// When it was last named (µs, the engine's clock).
    seen: u64,
    /// Its successor, as the last run of neighbours naming both said.
    next: Option<Id>,
}

/// Nodes heard of lately, by id.
#[derive(Clone, Debug)]
pub struct LocationCache {
    capacity: usize,
    fresh_for_us: u64,
    nodes: BTreeMap<Id, Entry>,
}

impl LocationCache {
    /// A cache of at most `capacity` nodes (0 turns it off), each used for
    /// `fresh_for_us` after it was last named.
    pub fn new(capacity: usize, fresh_for_us: u64) -> LocationCache {
        LocationCache {
            capacity,
            fresh_for_us,
            nodes: BTreeMap::new(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// `node` was named at `now` by a peer (or answered itself).
    pub fn learn(&mut self, node: &NodeInfo, now: u64) {
        if self.capacity == 0 {
            return;
        }
        let e = self.nodes.entry(node.id).or_insert(Entry {
            addr: node.addr,
            seen: now,
            next: None,
        });
        if e.addr != node.addr {
            // Another address: what followed it at the old one is unknown.
            e.next = None;
        }
        e.addr = node.addr;
        e.seen = now;
        if self.nodes.len() > self.capacity {
            self.shrink(now);
        }
    }

    /// `run` names nodes that follow each other clockwise on the ring (a
    /// successor list behind its owner, or predecessors in reverse before
    /// their successor).
    pub fn learn_run(&mut self, run: &[NodeInfo], now: u64) {
        for n in run {
            self.learn(n, now);
        }
        for w in run.windows(2) {
            if w[0].id != w[1].id {
                if let Some(e) = self.nodes.get_mut(&w[0].id) {
                    e.next = Some(w[1].id);
                }
            }
        }
    }

    /// `id` failed or left: it is not offered again until named anew.
    pub fn forget(&mut self, id: &Id) {
        self.nodes.remove(id);
    }

    /// Over capacity: the stale go, then the least recently named until a
    /// quarter is free (so that the sweep runs once per capacity/4 learns).
    fn shrink(&mut self, now: u64) {
        let fresh_for = self.fresh_for_us;
        self.nodes
            .retain(|_, e| now.saturating_sub(e.seen) < fresh_for);
        let keep = self.capacity - self.capacity / 4;
        if self.nodes.len() > keep {
            let mut seen: Vec<u64> = self.nodes.values().map(|e| e.seen).collect();
            seen.sort_unstable();
            let cut = seen[self.nodes.len() - keep];
            self.nodes.retain(|_, e| e.seen >= cut);
            // Ties at the cut may keep a few more; the next shrink takes them.
        }
    }

    fn fresh(&self, e: &Entry, now: u64) -> bool {
        now.saturating_sub(e.seen) < self.fresh_for_us
    }

    /// The node probably responsible for `key`, if `usable` accepts it: the
    /// successor of the nearest fresh node before the key, as a run of
    /// neighbours named it, when no fresh node is known in between.
    pub fn owner_of(
        &self,
        key: &Id,
        now: u64,
        usable: impl Fn(&NodeInfo) -> bool,
    ) -> Option<NodeInfo> {
        let (p, pe) = self
            .nodes
            .range(..*key)
            .rev()
            .chain(self.nodes.range((Excluded(*key), Unbounded)).rev())
            .find(|(_, e)| self.fresh(e, now))?;
        let s = pe.next?;
        if !key.in_open_closed(p, &s) {
            return None;
        }
        let (first, e) = self
            .nodes
            .range(*key..)
            .chain(self.nodes.range(..*key))
            .find(|(_, e)| self.fresh(e, now))?;
        let owner = NodeInfo {
            id: *first,
            addr: e.addr,
        };
        (*first == s && usable(&owner)).then_some(owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: u64) -> NodeInfo {
        NodeInfo {
            id: Id::from_u64(v),
            addr: format!("127.0.0.1:{}", 1000 + v).parse().unwrap(),
        }
    }

    fn run(ids: &[u64]) -> Vec<NodeInfo> {
        ids.iter().map(|&v| n(v)).collect()
    }

    const ALL: fn(&NodeInfo) -> bool = |_| true;

    #[test]
    fn owner_is_the_known_successor_of_the_node_before_the_key() {
        let mut c = LocationCache::new(16, 1_000);
        c.learn_run(&run(&[10, 20, 30]), 0);
        assert_eq!(c.owner_of(&Id::from_u64(15), 0, ALL), Some(n(20)));
        assert_eq!(c.owner_of(&Id::from_u64(20), 0, ALL), Some(n(20)));
        // After 30 nothing is known to follow: no guess.
        assert_eq!(c.owner_of(&Id::from_u64(31), 0, ALL), None);
        // Round the ring: 30's successor is 10.
        c.learn_run(&run(&[30, 10]), 0);
        assert_eq!(c.owner_of(&Id::from_u64(31), 0, ALL), Some(n(10)));
        assert_eq!(c.owner_of(&Id::from_u64(5), 0, ALL), Some(n(10)));
        // A node the caller cannot use (suspected, itself) is no guess.
        assert_eq!(c.owner_of(&Id::from_u64(15), 0, |x| x.id != n(20).id), None);
    }

    #[test]
    fn nodes_heard_of_alone_make_no_guess_and_break_one_that_skips_them() {
        let mut c = LocationCache::new(16, 1_000);
        for v in [10, 20, 30] {
            c.learn(&n(v), 0);
        }
        assert_eq!(c.owner_of(&Id::from_u64(15), 0, ALL), None);
        c.learn_run(&run(&[40, 60]), 0);
        assert_eq!(c.owner_of(&Id::from_u64(55), 0, ALL), Some(n(60)));
        // 50 lies between 40 and 60: 40's successor is no longer a safe guess.
        c.learn(&n(50), 0);
        assert_eq!(c.owner_of(&Id::from_u64(45), 0, ALL), None);
        assert_eq!(c.owner_of(&Id::from_u64(55), 0, ALL), None);
    }

    #[test]
    fn stale_and_forgotten_nodes_are_not_offered() {
        let mut c = LocationCache::new(16, 1_000);
        c.learn_run(&run(&[10, 20, 30]), 0);
        // At 1,000 µs the run is stale.
        assert_eq!(c.owner_of(&Id::from_u64(15), 1_000, ALL), None);
        // Named again, the run counts again.
        c.learn_run(&run(&[10, 20]), 1_000);
        assert_eq!(c.owner_of(&Id::from_u64(15), 1_000, ALL), Some(n(20)));
        c.forget(&n(20).id);
        assert_eq!(c.owner_of(&Id::from_u64(15), 1_000, ALL), None);
        // A node named at another address has no known successor there.
        c.learn_run(&run(&[10, 20]), 1_000);
        let moved = NodeInfo {
            id: n(10).id,
            addr: "127.0.0.1:9".parse().unwrap(),
        };
        c.learn(&moved, 1_000);
        assert_eq!(c.owner_of(&Id::from_u64(15), 1_000, ALL), None);
    }

    #[test]
    fn capacity_holds_and_the_most_recently_named_stay() {
        let mut c = LocationCache::new(8, 1_000_000);
        for v in 0..100u64 {
            c.learn_run(&run(&[v, v + 1]), v);
            assert!(c.len() <= 8, "{} entries", c.len());
        }
        // The last pair named is kept.
        assert_eq!(c.owner_of(&Id::from_u64(100), 100, ALL), Some(n(100)));
        // Pairs named long ago are gone.
        assert_eq!(c.owner_of(&Id::from_u64(1), 100, ALL), None);
        let mut off = LocationCache::new(0, 1_000);
        off.learn_run(&run(&[1, 2]), 0);
        assert!(off.is_empty());
    }
}
