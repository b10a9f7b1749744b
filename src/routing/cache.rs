//! The location cache: nodes this node has heard of lately, and which of
//! them follow each other on the ring, so that a lookup can go straight to
//! the node that is probably responsible for a key.
//!
//! Chord's table knows O(log N) nodes and a lookup takes about ½·log2 N
//! steps plus one to hear the responsible node confirm it. Answers name
//! nodes, and a node's answer names its own neighbours (a `done` answer its
//! successor, a Neighbors answer its predecessor and successor): remembered
//! for a while, they say which node follows which. When the cache knows the
//! node p just before a key and that p's successor is s, s is probably
//! responsible, and asking s for its neighbours confirms it in one round
//! trip. When s is not (a node joined in between since), its predecessors
//! name the one to check. In an overlay of up to [`LocationCache::capacity`]
//! nodes a busy node thus finds most keys in one hop, without the full
//! membership of one-hop routing.
//!
//! What a peer may teach is limited to what it could do as a lookup's last
//! step anyway, so that a lie reaches no further through the cache than
//! through routing:
//! - a pair p → s counts only on the word of p or s (a node vouching for
//!   its own neighbour, as a `done` answer does), never on a third node's;
//! - a remembered node's address changes only on its own word (an answer
//!   from that address), not because another node names it elsewhere;
//! - a guess is made only from a known pair with no other remembered node
//!   in between, never from a gap in what the cache knows, so a sparse cache
//!   costs nothing: the lookup routes by the table as before.
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

    /// `node` was named at `now` by `told_by` (itself, when it answered).
    /// Another node's word does not move a fresh entry to another address.
    pub fn learn(&mut self, node: &NodeInfo, told_by: &Id, now: u64) {
        if self.capacity == 0 {
            return;
        }
        let fresh_for = self.fresh_for_us;
        let e = self.nodes.entry(node.id).or_insert(Entry {
            addr: node.addr,
            seen: now,
            next: None,
        });
        if e.addr != node.addr {
            if *told_by != node.id && now.saturating_sub(e.seen) < fresh_for {
                return;
            }
            // Another address: what followed it at the old one is unknown.
            e.addr = node.addr;
            e.next = None;
        }
        e.seen = now;
        if self.nodes.len() > self.capacity {
            self.shrink(now);
        }
    }

    /// `succ` follows `pred` on the ring, on the word of `told_by`: counted
    /// only when that is one of the two (see the module notes).
    pub fn learn_pair(&mut self, pred: &NodeInfo, succ: &NodeInfo, told_by: &Id, now: u64) {
        if pred.id == succ.id || (*told_by != pred.id && *told_by != succ.id) {
            return;
        }
        self.learn(pred, told_by, now);
        self.learn(succ, told_by, now);
        // Linked only if both are kept at the addresses named.
        let kept = |n: &NodeInfo| self.nodes.get(&n.id).is_some_and(|e| e.addr == n.addr);
        if kept(pred) && kept(succ) {
            if let Some(e) = self.nodes.get_mut(&pred.id) {
                e.next = Some(succ.id);
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
            let mut by_age: Vec<(u64, Id)> =
                self.nodes.iter().map(|(id, e)| (e.seen, *id)).collect();
            by_age.sort_unstable();
            for (_, id) in &by_age[..self.nodes.len() - keep] {
                self.nodes.remove(id);
            }
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
    use crate::routing::tests::n;

    const ALL: fn(&NodeInfo) -> bool = |_| true;

    /// Pairs along `ids`, each on the word of its first node.
    fn chain(c: &mut LocationCache, ids: &[u64], now: u64) {
        for w in ids.windows(2) {
            c.learn_pair(&n(w[0]), &n(w[1]), &n(w[0]).id, now);
        }
    }

    /// Node `id` at another port than `n(id)`'s.
    fn at(id: u64, port: u16) -> NodeInfo {
        NodeInfo {
            id: Id::from_u64(id),
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
        }
    }

    #[test]
    fn owner_is_the_known_successor_of_the_node_before_the_key() {
        let mut c = LocationCache::new(16, 1_000);
        chain(&mut c, &[10, 20, 30], 0);
        assert_eq!(c.owner_of(&Id::from_u64(15), 0, ALL), Some(n(20)));
        assert_eq!(c.owner_of(&Id::from_u64(20), 0, ALL), Some(n(20)));
        // After 30 nothing is known to follow: no guess.
        assert_eq!(c.owner_of(&Id::from_u64(31), 0, ALL), None);
        // Round the ring: 30's successor is 10.
        chain(&mut c, &[30, 10], 0);
        assert_eq!(c.owner_of(&Id::from_u64(31), 0, ALL), Some(n(10)));
        assert_eq!(c.owner_of(&Id::from_u64(5), 0, ALL), Some(n(10)));
        // A node the caller cannot use (suspected, itself) is no guess.
        assert_eq!(c.owner_of(&Id::from_u64(15), 0, |x| x.id != n(20).id), None);
    }

    #[test]
    fn nodes_heard_of_alone_make_no_guess_and_break_one_that_skips_them() {
        let mut c = LocationCache::new(16, 1_000);
        for v in [10, 20, 30] {
            c.learn(&n(v), &n(v).id, 0);
        }
        assert_eq!(c.owner_of(&Id::from_u64(15), 0, ALL), None);
        chain(&mut c, &[40, 60], 0);
        assert_eq!(c.owner_of(&Id::from_u64(55), 0, ALL), Some(n(60)));
        // 50 lies between 40 and 60: 40's successor is no longer a safe guess.
        c.learn(&n(50), &n(10).id, 0);
        assert_eq!(c.owner_of(&Id::from_u64(45), 0, ALL), None);
        assert_eq!(c.owner_of(&Id::from_u64(55), 0, ALL), None);
    }

    #[test]
    fn a_pair_counts_only_on_the_word_of_one_of_its_nodes() {
        let mut c = LocationCache::new(16, 1_000);
        // 99 says that 20 follows 10: hearsay, no guess.
        c.learn_pair(&n(10), &n(20), &n(99).id, 0);
        assert_eq!(c.owner_of(&Id::from_u64(15), 0, ALL), None);
        // 20 says it follows 10 (its predecessor, as a Neighbors answer does).
        c.learn_pair(&n(10), &n(20), &n(20).id, 0);
        assert_eq!(c.owner_of(&Id::from_u64(15), 0, ALL), Some(n(20)));
    }

    #[test]
    fn only_a_node_itself_moves_it_to_another_address() {
        let mut c = LocationCache::new(16, 1_000);
        chain(&mut c, &[10, 20], 0);
        // 10 names its successor 20 at another address (its own, say): the
        // fresh entry stays where it was, and so does the pair.
        c.learn_pair(&n(10), &at(20, 9), &n(10).id, 1);
        assert_eq!(c.owner_of(&Id::from_u64(15), 1, ALL), Some(n(20)));
        c.learn(&at(20, 9), &n(30).id, 1);
        assert_eq!(c.owner_of(&Id::from_u64(15), 1, ALL), Some(n(20)));
        // 20 answering from the new address moves it, and what followed it
        // at the old one is forgotten; 10's word links it again.
        chain(&mut c, &[20, 30], 1);
        c.learn(&at(20, 9), &n(20).id, 2);
        assert_eq!(c.owner_of(&Id::from_u64(25), 2, ALL), None);
        c.learn_pair(&n(10), &at(20, 9), &n(10).id, 2);
        assert_eq!(c.owner_of(&Id::from_u64(15), 2, ALL), Some(at(20, 9)));
        // Once stale, an entry takes the address it is named at.
        c.learn_pair(&n(10), &n(20), &n(10).id, 2_000);
        assert_eq!(c.owner_of(&Id::from_u64(15), 2_000, ALL), Some(n(20)));
    }

    #[test]
    fn stale_and_forgotten_nodes_are_not_offered() {
        let mut c = LocationCache::new(16, 1_000);
        chain(&mut c, &[10, 20, 30], 0);
        // At 1,000 µs the pairs are stale.
        assert_eq!(c.owner_of(&Id::from_u64(15), 1_000, ALL), None);
        // Named again, the pair counts again.
        chain(&mut c, &[10, 20], 1_000);
        assert_eq!(c.owner_of(&Id::from_u64(15), 1_000, ALL), Some(n(20)));
        c.forget(&n(20).id);
        assert_eq!(c.owner_of(&Id::from_u64(15), 1_000, ALL), None);
    }

    #[test]
    fn capacity_holds_and_the_most_recently_named_stay() {
        let mut c = LocationCache::new(8, 1_000_000);
        for v in 0..100u64 {
            chain(&mut c, &[v, v + 1], v);
            assert!(c.len() <= 8, "{} entries", c.len());
        }
        // The last pair named is kept.
        assert_eq!(c.owner_of(&Id::from_u64(100), 100, ALL), Some(n(100)));
        // Pairs named long ago are gone.
        assert_eq!(c.owner_of(&Id::from_u64(1), 100, ALL), None);
        // Named all at the same moment, more nodes than fit still keep to it.
        let mut c = LocationCache::new(8, 1_000_000);
        for v in 0..20u64 {
            c.learn(&n(v), &n(v).id, 5);
            assert!(c.len() <= 8, "{} entries", c.len());
        }
        let mut off = LocationCache::new(0, 1_000);
        chain(&mut off, &[1, 2], 0);
        assert!(off.is_empty());
    }
}
