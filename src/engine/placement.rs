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

/// Sync rounds in which all of a member's arcs come round (each round
/// sends the digests of V / this arcs to their replicas): with the default
/// 1 s rounds, a copy lost in a crash is back within about this many seconds.
pub(super) const ROUNDS_PER_ARC_CYCLE: usize = 8;

impl Engine {
    /// Keys are placed by virtual points (one-hop with `virtual_nodes` > 1).
    pub(super) fn by_points(&self) -> bool {
        self.one_hop() && self.members.is_virtual()
    }

    /// The members that hold `key`, primary first (virtual points only).
    pub(super) fn placed(&self, key: &Id, count: usize) -> Vec<NodeInfo> {
        self.members
            .placement(key, count)
            .into_iter()
            .map(|m| m.node)
            .collect()
    }

    /// Whether this node is the primary of `key`. A node whose table is not
    /// in yet (it just joined) is no one's primary.
    pub(super) fn responsible_here(&self, key: &Id) -> bool {
        if self.by_points() {
            self.members_ready && self.members.owner(key).is_none_or(|o| o == self.me.id)
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
            self.members_ready
                .then(|| self.members.holds(key, &self.me.id, reach))
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
        if !self.members_ready {
            // Our table is not in yet: our successor's answers from its own.
            return Err(self.rt.successors().iter().map(Candidate::from).collect());
        }
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
        let per_round = arcs.len().div_ceil(ROUNDS_PER_ARC_CYCLE);
        let start = self.arc_cursor % arcs.len();
        self.arc_cursor = (start + per_round) % arcs.len();
        arcs.iter()
            .cycle()
            .skip(start)
            .take(per_round)
            .copied()
            .collect()
    }

    /// Virtual points: keys held here that this node no longer holds a copy
    /// of. Which keys a node holds changes only with the table, so the store
    /// is scanned once per table version (again after a handoff that failed).
    pub(super) fn misplaced_keys(&mut self, max: usize) -> Vec<Id> {
        let version = self.members.version();
        if self.placement_scanned == Some(version) {
            return Vec::new();
        }
        let keys = self.scan_misplaced(max);
        if keys.len() < max {
            self.placement_scanned = Some(version);
        }
        keys
    }

    /// A handoff did not complete: the next round scans the store again.
    pub(super) fn rescan_placement(&mut self) {
        self.placement_scanned = None;
    }

    fn scan_misplaced(&self, max: usize) -> Vec<Id> {
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
