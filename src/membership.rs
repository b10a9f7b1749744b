//! The full membership table of a one-hop overlay: every member knows every
//! other, so the node responsible for a key is found in the local table and
//! is one hop away.
//!
//! Pure data and rules, no I/O: the engine feeds it the changes it hears
//! (`apply`) and asks who is responsible for a key, which members to pass a
//! change on to (`spread_targets`), and what differs from a peer's table
//! (`bucket_digests`, `page`). A change names an incarnation (`since_ms`, set
//! by the member itself), so late or repeated changes never undo newer ones.

use crate::id::Id;
use crate::wire::{MemberChange, MemberRecord, NodeInfo, MEMBER_BUCKETS};
use std::collections::{BTreeMap, HashMap};

/// How long the removal of a member is remembered: a late or repeated
/// announcement of the same incarnation within this time cannot bring it back.
pub const REMOVAL_MEMORY_MS: u64 = 600_000;

/// Removals remembered at once, at most (the oldest go first).
pub const MAX_REMOVALS: usize = 4096;

/// A member's place in the table, as the table applied a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// A member new to the table (or a new incarnation at another address).
    Joined,
    /// A known member announced a new incarnation or new details.
    Updated,
    Removed,
    /// Nothing changed (an old, repeated or superseded change).
    Unchanged,
}

#[derive(Clone, Copy, Debug)]
struct Removal {
    node: NodeInfo,
    since_ms: u64,
    /// Our clock (ms) when it was removed.
    at_ms: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Membership {
    members: BTreeMap<Id, MemberRecord>,
    /// Virtual points per member (0 or 1: none, keys go by member ids).
    virtual_nodes: usize,
    /// Each member's virtual points: point -> member id.
    points: BTreeMap<Id, Id>,
    removed: HashMap<Id, Removal>,
    digests: [u64; MEMBER_BUCKETS],
    /// Counts every change applied, so that derived state (fingers, the DNS
    /// record set) is rebuilt only when the table moved.
    version: u64,
}

/// The bucket of the id space an id falls in.
pub fn bucket_of(id: &Id) -> usize {
    (id.0[0] >> 4) as usize
}

/// The buckets whose digests differ: those a page answering `ours` sent whole.
pub fn differing(ours: &[u64], theirs: &[u64]) -> Vec<usize> {
    (0..MEMBER_BUCKETS)
        .filter(|b| ours.get(*b) != theirs.get(*b))
        .collect()
}

/// What one member contributes to its bucket's digest.
fn fingerprint(m: &MemberRecord) -> u64 {
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    h.update(m.node.id.0);
    h.update(m.since_ms.to_be_bytes());
    h.update(m.weight.to_be_bytes());
    h.update(format!("{}|{:?}", m.node.addr, m.sip).as_bytes());
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

/// The `i`th virtual point of member `id`: where it takes keys when keys
/// are placed by virtual points (spreads each member's share over many
/// small arcs, so the shares even out: p99/mean about 1 + 2.3/sqrt(V)).
pub fn virtual_point(id: &Id, i: usize) -> Id {
    let mut data = Vec::with_capacity(32);
    data.extend_from_slice(b"chordsip-vnode");
    data.extend_from_slice(&id.0);
    data.extend_from_slice(&(i as u32).to_be_bytes());
    Id::hash(&data)
}

impl Membership {
    pub fn new() -> Membership {
        Membership::default()
    }

    /// A table that places keys by `v` virtual points per member (v > 1).
    pub fn with_virtual_nodes(v: usize) -> Membership {
        Membership {
            virtual_nodes: if v > 1 { v } else { 0 },
            ..Membership::default()
        }
    }

    /// Whether keys are placed by virtual points.
    pub fn is_virtual(&self) -> bool {
        self.virtual_nodes > 1
    }

    fn add_points(&mut self, id: &Id) {
        for i in 0..self.virtual_nodes {
            self.points.insert(virtual_point(id, i), *id);
        }
    }

    fn remove_points(&mut self, id: &Id) {
        for i in 0..self.virtual_nodes {
            let p = virtual_point(id, i);
            if self.points.get(&p) == Some(id) {
                self.points.remove(&p);
            }
        }
    }

    /// The members that hold `key` (virtual points only): the owner of the
    /// first point at or after it, then the owners of the following
    /// points, each member once, `count` at most.
    pub fn placement(&self, key: &Id, count: usize) -> Vec<MemberRecord> {
        let mut out: Vec<MemberRecord> = Vec::with_capacity(count);
        for id in self.holder_ids(key, count) {
            if let Some(m) = self.members.get(&id) {
                out.push(*m);
            }
        }
        out
    }

    /// The ids of the first `count` holders of `key`, as [`Self::placement`],
    /// without copying records: what the per-request checks ask.
    fn holder_ids(&self, key: &Id, count: usize) -> impl Iterator<Item = Id> + '_ {
        let count = count.min(self.members.len());
        let mut seen: Vec<Id> = Vec::with_capacity(count);
        self.points
            .range(*key..)
            .chain(self.points.range(..*key))
            .map(|(_, id)| *id)
            .filter(move |id| {
                let new = !seen.contains(id);
                if new {
                    seen.push(*id);
                }
                new
            })
            .take(count)
    }

    /// Whether `id` is among the first `reach` holders of `key`.
    pub fn holds(&self, key: &Id, id: &Id, reach: usize) -> bool {
        self.holder_ids(key, reach).any(|h| h == *id)
    }

    /// The primary of `key` by virtual points (None: no member).
    pub fn owner(&self, key: &Id) -> Option<Id> {
        self.holder_ids(key, 1).next()
    }

    /// The arcs (previous point, point] whose point belongs to `id`.
    pub fn arcs_of(&self, id: &Id) -> Vec<(Id, Id)> {
        let mut out = Vec::new();
        let mut prev = self.points.iter().next_back().map(|(p, _)| *p);
        for (p, owner) in &self.points {
            if owner == id {
                if let Some(lo) = prev {
                    out.push((lo, *p));
                }
            }
            prev = Some(*p);
        }
        out
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn get(&self, id: &Id) -> Option<&MemberRecord> {
        self.members.get(id)
    }

    pub fn contains(&self, id: &Id) -> bool {
        self.members.contains_key(id)
    }

    /// Every member, in id order.
    pub fn members(&self) -> impl Iterator<Item = &MemberRecord> {
        self.members.values()
    }

    /// Removals still remembered, as changes (they travel in sync pages).
    pub fn removals(&self) -> impl Iterator<Item = MemberChange> + '_ {
        self.removed.values().map(|r| MemberChange::Down {
            node: r.node,
            since_ms: r.since_ms,
        })
    }

    /// Applies one change heard at our clock `now_ms`.
    pub fn apply(&mut self, change: &MemberChange, now_ms: u64) -> Applied {
        match *change {
            MemberChange::Up(m) => self.up(m),
            MemberChange::Down { node, since_ms } => self.down(node, since_ms, now_ms),
        }
    }

    fn up(&mut self, m: MemberRecord) -> Applied {
        if self
            .removed
            .get(&m.node.id)
            .is_some_and(|r| r.since_ms >= m.since_ms)
        {
            return Applied::Unchanged;
        }
        self.removed.remove(&m.node.id);
        let outcome = match self.members.get(&m.node.id) {
            Some(old) if old.since_ms > m.since_ms || *old == m => return Applied::Unchanged,
            Some(old) if old.since_ms == m.since_ms => {
                // Two versions of one incarnation: keep one, the same everywhere.
                if fingerprint(old) >= fingerprint(&m) {
                    return Applied::Unchanged;
                }
                Applied::Updated
            }
            Some(old) if old.node.addr == m.node.addr => Applied::Updated,
            Some(_) | None => Applied::Joined,
        };
        if let Some(old) = self.members.insert(m.node.id, m) {
            self.digests[bucket_of(&old.node.id)] ^= fingerprint(&old);
        } else {
            self.add_points(&m.node.id);
        }
        self.digests[bucket_of(&m.node.id)] ^= fingerprint(&m);
        self.version += 1;
        outcome
    }

    fn down(&mut self, node: NodeInfo, since_ms: u64, now_ms: u64) -> Applied {
        let id = node.id;
        let known = self.removed.get(&id).map_or(0, |r| r.since_ms);
        if since_ms > known || !self.removed.contains_key(&id) {
            self.removed.insert(
                id,
                Removal {
                    node,
                    since_ms: since_ms.max(known),
                    at_ms: now_ms,
                },
            );
            self.bound_removals(now_ms);
        }
        match self.members.get(&id) {
            Some(m) if m.since_ms <= since_ms => {
                let m = self.members.remove(&id).expect("present");
                self.remove_points(&id);
                self.digests[bucket_of(&id)] ^= fingerprint(&m);
                self.version += 1;
                Applied::Removed
            }
            _ => Applied::Unchanged,
        }
    }

    /// Drops a member from this table only, without remembering a removal:
    /// a peer that still lists it brings it back at the next sync (used when
    /// this node alone found it silent, which may be our own loss).
    pub fn forget(&mut self, id: &Id) -> Option<MemberRecord> {
        let m = self.members.remove(id)?;
        self.remove_points(id);
        self.digests[bucket_of(id)] ^= fingerprint(&m);
        self.version += 1;
        Some(m)
    }

    /// Forgets removals older than `REMOVAL_MEMORY_MS`.
    pub fn expire(&mut self, now_ms: u64) {
        self.removed
            .retain(|_, r| now_ms.saturating_sub(r.at_ms) < REMOVAL_MEMORY_MS);
    }

    fn bound_removals(&mut self, now_ms: u64) {
        if self.removed.len() <= MAX_REMOVALS {
            return;
        }
        self.expire(now_ms);
        while self.removed.len() > MAX_REMOVALS * 3 / 4 {
            let oldest = self
                .removed
                .iter()
                .min_by_key(|(_, r)| r.at_ms)
                .map(|(id, _)| *id)
                .expect("non-empty");
            self.removed.remove(&oldest);
        }
    }

    /// The member responsible for `key`: the first at or after it on the ring.
    pub fn responsible(&self, key: &Id) -> Option<&MemberRecord> {
        self.members
            .range(*key..)
            .next()
            .map(|(_, m)| m)
            .or_else(|| self.members.values().next())
    }

    /// The `count` members that follow `id` on the ring (not `id` itself).
    pub fn after(&self, id: &Id, count: usize) -> Vec<MemberRecord> {
        use std::ops::Bound::{Excluded, Unbounded};
        self.members
            .range((Excluded(*id), Unbounded))
            .chain(self.members.range(..*id))
            .map(|(_, m)| *m)
            .take(count)
            .collect()
    }

    /// Where a change spreading from `me` goes, over a tree that reaches
    /// every member of (me, limit) once (El-Ansary et al.'s broadcast over
    /// Chord fingers): the first member after each finger start within the
    /// range, each with the next one as the limit of its own part. `limit ==
    /// me` stands for the whole ring.
    pub fn spread_targets(&self, me: &Id, limit: &Id) -> Vec<(MemberRecord, Id)> {
        let inside = |x: &Id| x.in_open(me, limit);
        let mut picked: Vec<MemberRecord> = Vec::new();
        for i in 0..crate::id::ID_BITS {
            let start = me.add_pow2(i);
            let Some(m) = self.responsible(&start) else {
                break;
            };
            if !inside(&m.node.id) {
                continue;
            }
            if !picked.iter().any(|p| p.node.id == m.node.id) {
                picked.push(*m);
            }
        }
        // In ring order from `me`, each member's part ends where the next begins.
        picked.sort_by_key(|m| me.distance_to(&m.node.id));
        let mut out = Vec::with_capacity(picked.len());
        for (i, m) in picked.iter().enumerate() {
            let end = picked.get(i + 1).map_or(*limit, |n| n.node.id);
            out.push((*m, end));
        }
        out
    }

    /// The next member after `after` inside (after, limit): where a change
    /// goes when the member it was meant for does not answer.
    pub fn next_within(&self, after: &Id, limit: &Id) -> Option<MemberRecord> {
        self.after(after, 1)
            .into_iter()
            .find(|m| m.node.id.in_open(after, limit) && m.node.id != *limit)
    }

    /// Digest of each bucket: equal digests mean equal members there.
    pub fn bucket_digests(&self) -> [u64; MEMBER_BUCKETS] {
        self.digests
    }

    /// The members and remembered removals of the buckets whose digests
    /// differ from `theirs`, with ids after `after`, in id order, as many as
    /// `fits` accepts; and whether more remain.
    pub fn page(
        &self,
        theirs: &[u64],
        after: &Id,
        mut fits: impl FnMut(&MemberChange) -> bool,
    ) -> (Vec<MemberChange>, bool) {
        let differs = |id: &Id| theirs.get(bucket_of(id)) != Some(&self.digests[bucket_of(id)]);
        let mut all: Vec<MemberChange> = self
            .members
            .values()
            .filter(|m| differs(&m.node.id) && m.node.id > *after)
            .map(|m| MemberChange::Up(*m))
            .chain(
                self.removals()
                    .filter(|c| differs(&c.id()) && c.id() > *after),
            )
            .collect();
        all.sort_by_key(|c| c.id());
        let mut out = Vec::new();
        for (i, c) in all.iter().enumerate() {
            if !fits(c) {
                return (out, i < all.len());
            }
            out.push(*c);
        }
        (out, false)
    }

    /// Members of the buckets a complete page covered (`buckets`, see [`differing`]), in this
    /// table, that the page did not list: the peer does not know them.
    pub fn unlisted(&self, buckets: &[usize], listed: &[MemberChange]) -> Vec<MemberRecord> {
        self.members
            .values()
            .filter(|m| buckets.contains(&bucket_of(&m.node.id)))
            .filter(|m| !listed.iter().any(|c| c.id() == m.node.id))
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests;
