//! Where keys live. By default a key belongs to the ring: its primary is
//! the node that follows it, its replicas that node's successors. A one-hop
//! overlay with `virtual_nodes` > 1 places keys by virtual points instead
//! (crate::membership): each member owns many small arcs, so every member
//! holds about the same share, and a key's holders are the owners of the
//! points that follow it, each member once. The ring itself (stabilize,
//! failure detection, the membership) is kept by node ids either way; only
//! the decisions below change.

use super::lookup::Candidate;
use super::Engine;
use crate::id::Id;
use crate::wire::NodeInfo;

/// Arcs synchronised with their replicas per sync round (each arc's
/// digest goes to its replicas; all arcs come round every V / this rounds).
pub(super) const ARCS_PER_SYNC: usize = 16;

impl Engine {
    /// Keys are placed by virtual points (one-hop with `virtual_nodes` > 1).
    pub(super) fn by_points(&self) -> bool {
        self.one_hop() && self.members.is_virtual()
    }

    /// The members that hold `key`, primary first (virtual points only).
    fn placed(&self, key: &Id, count: usize) -> Vec<NodeInfo> {
        self.members
            .placement(key, count)
            .into_iter()
            .map(|m| m.node)
            .collect()
    }

    /// Whether this node is the primary of `key`.
    pub(super) fn responsible_here(&self, key: &Id) -> bool {
        if self.by_points() {
            match self.placed(key, 1).first() {
                Some(n) => n.id == self.me.id,
                None => true,
            }
        } else {
            self.rt.is_responsible(key)
        }
    }

    /// The nodes that hold the other copies of a key this node is primary for.
    pub(super) fn replica_holders_for(&self, key: &Id) -> Vec<NodeInfo> {
        if self.by_points() {
            let me = self.me.id;
            self.placed(key, self.cfg.replicas)
                .into_iter()
                .filter(|n| n.id != me)
                .collect()
        } else {
            self.replica_holders()
        }
    }

    /// Whether this node is among the first `reach` holders of `key`
    /// (None: cannot tell yet, too few predecessors known).
    pub(super) fn holds_copy(&self, key: &Id, reach: usize) -> Option<bool> {
        if self.by_points() {
            Some(self.placed(key, reach).iter().any(|n| n.id == self.me.id))
        } else {
            self.rt.is_holder(key, reach)
        }
    }

    /// Whether `peer` may push copies and compare digests with us: a
    /// neighbour on the ring, or (virtual points) any member at its known
    /// address, since any member may share an arc with us.
    pub(super) fn may_push(&self, peer: Option<NodeInfo>) -> bool {
        if self.by_points() {
            peer.is_some_and(|p| {
                self.members
                    .get(&p.id)
                    .is_some_and(|m| m.node.addr == p.addr)
            })
        } else {
            self.in_neighbourhood(peer)
        }
    }

    /// Whether `peer` may compare digests and trade sync summaries with us:
    /// a ring neighbour, or (virtual points) any member.
    pub(super) fn may_sync(&self, peer: Option<NodeInfo>) -> bool {
        self.is_neighbour(peer) || (self.by_points() && self.may_push(peer))
    }

    /// Virtual points: what the table says of `key` (this node and the
    /// other holders when it is the primary; else the primary to ask).
    pub(super) fn placed_route(&self, key: &Id) -> Result<Vec<NodeInfo>, Vec<Candidate>> {
        let holders = self.placed(key, self.cfg.successors.max(self.cfg.replicas));
        match holders.first() {
            None => Ok(vec![self.me]),
            Some(p) if p.id == self.me.id => Ok(holders),
            Some(_) => Err(holders
                .iter()
                .filter(|n| n.id != self.me.id)
                .map(Candidate::from)
                .collect()),
        }
    }

    /// Virtual points: the arcs whose digests go to their replicas this round.
    pub(super) fn arcs_to_sync(&mut self) -> Vec<(Id, Id)> {
        let arcs = self.members.arcs_of(&self.me.id);
        if arcs.is_empty() {
            return arcs;
        }
        let start = self.arc_cursor % arcs.len();
        self.arc_cursor = (start + ARCS_PER_SYNC) % arcs.len();
        arcs.iter()
            .cycle()
            .skip(start)
            .take(ARCS_PER_SYNC.min(arcs.len()))
            .copied()
            .collect()
    }

    /// Virtual points: keys held here that this node no longer holds a copy of.
    pub(super) fn misplaced_keys(&self, max: usize) -> Vec<Id> {
        let reach = self.cfg.replicas;
        self.store
            .all_keys()
            .filter(|k| self.holds_copy(k, reach) == Some(false))
            .take(max)
            .copied()
            .collect()
    }

    /// Virtual points: entries of the keys this node is primary for.
    pub(super) fn primary_entry_count(&self) -> u64 {
        self.store
            .all_keys()
            .filter(|k| self.responsible_here(k))
            .map(|k| self.store.entries(k, self.now).len() as u64)
            .sum()
    }
}
