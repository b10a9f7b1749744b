//! Routing state of one Chord node: predecessor list, successor list, fingers.
//!
//! Pure data and decisions, no I/O: the engine feeds it what it learns from the
//! network and asks it where a key should go next. Kept apart so routing rules
//! can be tested exhaustively without sockets or timers.

mod cache;

pub use cache::LocationCache;

use crate::id::{Id, ID_BITS};
use crate::wire::NodeInfo;

/// What a node answers to "who is responsible for this key?"
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The first node is responsible; the rest are its successors.
    Done(Vec<NodeInfo>),
    /// Closer nodes to ask next, best first (may be empty if nothing is known).
    Next(Vec<NodeInfo>),
}

/// Which list [`RoutingTable::clean`] makes.
#[derive(Clone, Copy)]
enum Side {
    Successors,
    Predecessors,
}

/// A node's view of its neighbourhood on the ring.
#[derive(Clone, Debug)]
pub struct RoutingTable {
    me: NodeInfo,
    succ_len: usize,
    pred_len: usize,
    /// preds[0] is the predecessor, preds[1] its predecessor, and so on.
    preds: Vec<NodeInfo>,
    succs: Vec<NodeInfo>,
    fingers: Vec<Option<NodeInfo>>,
}

impl RoutingTable {
    pub fn new(me: NodeInfo, succ_len: usize, pred_len: usize) -> RoutingTable {
        RoutingTable {
            me,
            succ_len: succ_len.max(1),
            pred_len: pred_len.max(1),
            preds: Vec::new(),
            succs: Vec::new(),
            fingers: vec![None; ID_BITS],
        }
    }

    pub fn me(&self) -> &NodeInfo {
        &self.me
    }

    pub fn predecessor(&self) -> Option<&NodeInfo> {
        self.preds.first()
    }

    pub fn predecessors(&self) -> &[NodeInfo] {
        &self.preds
    }

    pub fn successors(&self) -> &[NodeInfo] {
        &self.succs
    }

    /// The successor, or None when this node believes it is alone.
    pub fn successor(&self) -> Option<&NodeInfo> {
        self.succs.first()
    }

    /// Distinct finger nodes, each with the lowest finger index pointing at it.
    pub fn distinct_fingers(&self) -> Vec<(usize, NodeInfo)> {
        let mut out: Vec<(usize, NodeInfo)> = Vec::new();
        for (i, f) in self.fingers.iter().enumerate() {
            if let Some(f) = f {
                if !out.iter().any(|(_, o)| o.id == f.id) {
                    out.push((i, *f));
                }
            }
        }
        out
    }

    /// Sets the successor list: in ring order from this node on, see [`Self::clean`].
    pub fn set_successors(&mut self, list: impl IntoIterator<Item = NodeInfo>) -> bool {
        let new = self.clean(list, self.succ_len, Side::Successors);
        let changed = new.first().map(|n| n.id) != self.succs.first().map(|n| n.id);
        self.succs = new;
        changed
    }

    /// How many predecessors the list keeps when the ring is large enough.
    pub fn predecessor_capacity(&self) -> usize {
        self.pred_len
    }

    /// Sets the predecessor list: in ring order from this node back, see
    /// [`Self::clean`]. Returns whether the predecessor changed.
    pub fn set_predecessors(&mut self, list: impl IntoIterator<Item = NodeInfo>) -> bool {
        let new = self.clean(list, self.pred_len, Side::Predecessors);
        let changed = new.first().map(|n| n.id) != self.preds.first().map(|n| n.id);
        self.preds = new;
        changed
    }

    /// The first `max` nodes of `list` that keep going one way around the
    /// ring from this node: each successor lies between the one kept before
    /// it and us, each predecessor between us and the one kept before it;
    /// any other entry is dropped (so are this node and duplicates). A list
    /// thus ends where it would come round past this node. In a ring with
    /// fewer nodes than a list holds, a neighbour's list names us and then
    /// wraps: to nodes listed already, or to a dead node that would take
    /// the slot the wrap left free and be handed on from list to list
    /// around the ring for ever (at the end of a predecessor list it bounds
    /// [`Self::is_holder`] at a node that is not there, and copies of the
    /// range behind it are refused).
    fn clean(
        &self,
        list: impl IntoIterator<Item = NodeInfo>,
        max: usize,
        side: Side,
    ) -> Vec<NodeInfo> {
        let me = self.me.id;
        let mut out: Vec<NodeInfo> = Vec::with_capacity(max);
        for n in list {
            let last = out.last().map_or(me, |l| l.id);
            let in_order = match side {
                Side::Successors => n.id.in_open(&last, &me),
                Side::Predecessors => n.id.in_open(&me, &last),
            };
            if !in_order {
                continue;
            }
            out.push(n);
            if out.len() == max {
                break;
            }
        }
        out
    }

    pub fn set_finger(&mut self, i: usize, node: Option<NodeInfo>) {
        if i < ID_BITS {
            self.fingers[i] = node.filter(|n| n.id != self.me.id);
        }
    }

    /// Where finger i should point: me + 2^i.
    pub fn finger_start(&self, i: usize) -> Id {
        self.me.id.add_pow2(i)
    }

    /// Forgets a node everywhere (it failed or left). Returns (pred changed, succ changed).
    pub fn remove(&mut self, id: &Id) -> (bool, bool) {
        let pred_changed = self.preds.first().map(|p| p.id == *id).unwrap_or(false);
        let succ_changed = self.succs.first().map(|s| s.id == *id).unwrap_or(false);
        self.preds.retain(|n| n.id != *id);
        self.succs.retain(|n| n.id != *id);
        for f in self.fingers.iter_mut() {
            if f.map(|n| n.id == *id).unwrap_or(false) {
                *f = None;
            }
        }
        (pred_changed, succ_changed)
    }

    /// Whether this node stores `key` as its primary copy: key in (pred, me].
    /// Without a known predecessor a node claims everything not owned by its successor.
    pub fn is_responsible(&self, key: &Id) -> bool {
        match (self.preds.first(), self.succs.first()) {
            (Some(p), _) => key.in_open_closed(&p.id, &self.me.id),
            (None, None) => true,
            (None, Some(s)) => !key.in_open_closed(&self.me.id, &s.id),
        }
    }

    /// Whether this node is among the `replicas` holders of `key`:
    /// key in (preds[replicas-1], me]. Unknown when too few predecessors are known.
    pub fn is_holder(&self, key: &Id, replicas: usize) -> Option<bool> {
        let idx = replicas.max(1) - 1;
        let far = self.preds.get(idx)?;
        if far.id == self.me.id {
            return Some(true);
        }
        Some(key.in_open_closed(&far.id, &self.me.id))
    }

    /// Answers a lookup step using everything this node knows.
    pub fn answer(
        &self,
        key: &Id,
        not_suspected: impl Fn(&NodeInfo) -> bool,
        fanout: usize,
    ) -> Answer {
        // Failed successors are removed from the list by the engine; a merely
        // suspected one stays authoritative for the interval it closes.
        match self.succs.first() {
            None if self.preds.is_empty() => return Answer::Done(vec![self.me]),
            None => {}
            Some(first) => {
                if let Some(p) = self.preds.first() {
                    if key.in_open_closed(&p.id, &self.me.id) {
                        let mut list = Vec::with_capacity(self.succs.len() + 1);
                        list.push(self.me);
                        list.extend_from_slice(&self.succs);
                        return Answer::Done(list);
                    }
                }
                // Only the first successor link is authoritative; farther successor-list
                // entries may be stale, so they serve as routing candidates instead.
                if key.in_open_closed(&self.me.id, &first.id) {
                    return Answer::Done(self.succs.clone());
                }
            }
        }
        Answer::Next(self.closest_preceding(key, not_suspected, fanout))
    }

    /// Known nodes in (me, key), closest to the key first.
    pub fn closest_preceding(
        &self,
        key: &Id,
        not_suspected: impl Fn(&NodeInfo) -> bool,
        count: usize,
    ) -> Vec<NodeInfo> {
        let mut best: Vec<(Id, NodeInfo)> = Vec::with_capacity(count + 1);
        let mut consider = |n: &NodeInfo| {
            if !n.id.in_open(&self.me.id, key) || !not_suspected(n) {
                return;
            }
            if best.iter().any(|(_, b)| b.id == n.id) {
                return;
            }
            let dist = n.id.distance_to(key);
            let pos = best.partition_point(|(d, _)| *d < dist);
            if pos < count {
                best.insert(pos, (dist, *n));
                best.truncate(count);
            }
        };
        let mut last: Option<Id> = None;
        for f in self.fingers.iter().rev().flatten() {
            if last == Some(f.id) {
                continue;
            }
            last = Some(f.id);
            consider(f);
        }
        for s in &self.succs {
            consider(s);
        }
        for p in &self.preds {
            consider(p);
        }
        best.into_iter().map(|(_, n)| n).collect()
    }

    /// Every distinct node this table references.
    pub fn known_nodes(&self) -> Vec<NodeInfo> {
        let mut out: Vec<NodeInfo> = Vec::new();
        for n in self
            .preds
            .iter()
            .chain(self.succs.iter())
            .chain(self.fingers.iter().flatten())
        {
            if !out.iter().any(|o| o.id == n.id) {
                out.push(*n);
            }
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Node `v` of the tests: id v, port 1000 + v.
    pub(crate) fn n(v: u64) -> NodeInfo {
        NodeInfo {
            id: Id::from_u64(v),
            addr: format!("127.0.0.1:{}", 1000 + v).parse().unwrap(),
        }
    }

    fn table(me: u64, preds: &[u64], succs: &[u64]) -> RoutingTable {
        let mut t = RoutingTable::new(n(me), 4, 3);
        t.set_predecessors(preds.iter().map(|&v| n(v)));
        t.set_successors(succs.iter().map(|&v| n(v)));
        t
    }

    #[test]
    fn alone_node_owns_everything() {
        let t = RoutingTable::new(n(50), 4, 3);
        assert!(t.is_responsible(&Id::from_u64(7)));
        assert_eq!(
            t.answer(&Id::from_u64(7), |_| true, 3),
            Answer::Done(vec![n(50)])
        );
    }

    #[test]
    fn responsibility_is_pred_exclusive_me_inclusive() {
        let t = table(50, &[40, 30, 20], &[60, 70]);
        assert!(t.is_responsible(&Id::from_u64(50)));
        assert!(t.is_responsible(&Id::from_u64(41)));
        assert!(!t.is_responsible(&Id::from_u64(40)));
        assert!(!t.is_responsible(&Id::from_u64(51)));
        assert_eq!(t.is_holder(&Id::from_u64(25), 3), Some(true));
        assert_eq!(t.is_holder(&Id::from_u64(15), 3), Some(false));
        assert_eq!(t.is_holder(&Id::from_u64(15), 5), None);
    }

    #[test]
    fn answer_uses_pred_and_successor_list() {
        let t = table(50, &[40], &[60, 70, 80]);
        assert_eq!(
            t.answer(&Id::from_u64(45), |_| true, 3),
            Answer::Done(vec![n(50), n(60), n(70), n(80)])
        );
        assert_eq!(
            t.answer(&Id::from_u64(55), |_| true, 3),
            Answer::Done(vec![n(60), n(70), n(80)])
        );
        // Farther successor-list entries are candidates, not answers.
        assert_eq!(
            t.answer(&Id::from_u64(75), |_| true, 3),
            Answer::Next(vec![n(70), n(60)])
        );
        // Beyond the successor list: ask the closest preceding node.
        assert_eq!(
            t.answer(&Id::from_u64(90), |_| true, 3),
            Answer::Next(vec![n(80), n(70), n(60)])
        );
        // Wraps: key 10 lies between 80 and (next around the ring) 40.
        assert_eq!(
            t.answer(&Id::from_u64(10), |_| true, 2),
            Answer::Next(vec![n(80), n(70)])
        );
    }

    #[test]
    fn dead_nodes_are_skipped() {
        let t = table(50, &[40], &[60, 70, 80]);
        let dead = Id::from_u64(60);
        assert_eq!(
            t.answer(&Id::from_u64(75), |x| x.id != dead, 3),
            Answer::Next(vec![n(70)])
        );
    }

    #[test]
    fn fingers_give_long_jumps() {
        let mut t = table(0, &[], &[1]);
        t.set_finger(4, Some(n(16)));
        t.set_finger(6, Some(n(64)));
        t.set_finger(10, Some(n(1100)));
        t.set_finger(11, Some(n(1100)));
        assert_eq!(
            t.distinct_fingers(),
            vec![(4, n(16)), (6, n(64)), (10, n(1100))]
        );
        assert_eq!(
            t.closest_preceding(&Id::from_u64(1000), |_| true, 2),
            vec![n(64), n(16)]
        );
        t.remove(&Id::from_u64(64));
        assert_eq!(
            t.closest_preceding(&Id::from_u64(1000), |_| true, 1),
            vec![n(16)]
        );
    }

    /// In a ring of five (10 to 50) with lists longer than that, a
    /// neighbour's list comes round past us: what follows, here the dead
    /// node 35, must not take the free slot at the end.
    #[test]
    fn lists_end_where_they_come_round() {
        let mut t = RoutingTable::new(n(20), 8, 5);
        // Our predecessor 10 lists 50, 40, 30, us, and the dead 35.
        t.set_predecessors([n(10), n(50), n(40), n(30), n(20), n(35)]);
        assert_eq!(t.predecessors(), &[n(10), n(50), n(40), n(30)]);
        // Not a bound at 35 that would refuse the keys in (30, 35].
        assert_eq!(t.is_holder(&Id::from_u64(32), 5), None);
        assert_eq!(t.is_holder(&Id::from_u64(32), 4), Some(true));
        // Our successor 30 lists 40, 50, 10, us, and the dead 25.
        t.set_successors([n(30), n(40), n(50), n(10), n(20), n(25)]);
        assert_eq!(t.successors(), &[n(30), n(40), n(50), n(10)]);
        // Entries out of ring order are dropped, the rest kept.
        t.set_successors([n(30), n(25), n(40), n(35), n(50)]);
        assert_eq!(t.successors(), &[n(30), n(40), n(50)]);
        t.set_predecessors([n(10), n(15), n(50), n(30), n(40)]);
        assert_eq!(t.predecessors(), &[n(10), n(50), n(30)]);
    }

    #[test]
    fn lists_drop_self_and_duplicates() {
        let mut t = RoutingTable::new(n(5), 3, 3);
        t.set_successors([n(6), n(5), n(6), n(7), n(8), n(9)]);
        assert_eq!(t.successors(), &[n(6), n(7), n(8)]);
        let (p, s) = t.remove(&Id::from_u64(6));
        assert!(s && !p);
        assert_eq!(t.successor(), Some(&n(7)));
    }
}
