//! One-hop routing: the full membership table of a hybrid overlay kept up
//! to date (docs/PROTOCOL.md, "One-hop membership").
//!
//! - A node that joined pulls the table from its successor, then announces
//!   itself; a member's successor announces its predecessor's departure or
//!   failure, and its predecessor announces its successor's (one of the two
//!   suffices; the second copy dies out, as members pass on only changes
//!   that changed their table).
//! - Changes spread over a tree (the members after each finger start), so
//!   each member receives one datagram per change and the whole overlay is
//!   reached in O(log N) steps; a silent member's part of the tree goes to
//!   the next member of that part.
//! - Every few seconds a member compares bucket digests with a random one
//!   and pulls what differs (anti-entropy): lost changes, and a joiner's table.
//! - A member that hears of its own removal (a false suspicion) announces
//!   itself again as a new incarnation.
//! - Lookups ask the member the table names; a stale table only costs the
//!   Chord routing that follows (lookup.rs).

use super::dispatch::OnAnswer;
use super::{Engine, Event};
use crate::config::{LogLevel, RoutingMode};
use crate::id::{Id, ID_BITS};
use crate::membership::{differing, Applied};
use crate::wire::{
    member_change_len, Body, MemberChange, MemberRecord, NodeInfo, FLAG_ONE_HOP, HEADER_LEN,
    MEMBERS_OVERHEAD, MEMBERS_PAGE_OVERHEAD, MEMBER_BUCKETS, PROOF_LEN, TAG_LEN,
};
use rand::Rng;
use std::net::SocketAddr;

/// Members a sync probes at most when the peer did not list them.
const MAX_PROBES: usize = 4;

/// Room for changes in one datagram (a Members body or a page).
fn change_room(max_datagram: usize, overhead: usize) -> usize {
    max_datagram.saturating_sub(HEADER_LEN + TAG_LEN + PROOF_LEN + overhead)
}

/// What a member-table sync remembers until its page arrives.
#[derive(Debug)]
pub(super) struct MemberSync {
    pub(super) peer: NodeInfo,
    /// Our digests when we asked (to tell which buckets the page covers).
    pub(super) ours: [u64; MEMBER_BUCKETS],
    /// The first page of the exchange (only then are unlisted members probed).
    pub(super) first: bool,
    /// Announce ourselves when the table is in (the sync after our join).
    pub(super) announce: bool,
}

impl Engine {
    pub(super) fn one_hop(&self) -> bool {
        self.cfg.routing == RoutingMode::OneHop
    }

    /// The mode flag every datagram of this node carries.
    pub(super) fn mode_flag(&self) -> u8 {
        if self.one_hop() {
            FLAG_ONE_HOP
        } else {
            0
        }
    }

    fn my_record(&self) -> MemberRecord {
        MemberRecord {
            node: self.me,
            since_ms: self.my_since_ms,
            weight: self.cfg.capacity,
            sip: self.cfg.sip_address,
            points: self.cfg.virtual_nodes.min(u16::MAX as usize) as u16,
        }
    }

    /// Members of the table, in id order (empty in multi-hop mode).
    pub fn members(&self) -> Vec<MemberRecord> {
        self.members.members().copied().collect()
    }

    /// The table's version: it moves with every change applied.
    pub fn members_version(&self) -> u64 {
        self.members.version()
    }

    /// The member this node's table holds responsible for `key`, when that
    /// is another live-looking member: the one to ask first.
    pub(super) fn one_hop_hint(&self, key: &Id) -> Option<Vec<NodeInfo>> {
        if !self.one_hop() {
            return None;
        }
        if self.by_points() {
            if !self.members_ready {
                return None;
            }
            let holders = self.placed(key, self.cfg.successors.max(self.cfg.replicas));
            let x = *holders.first()?;
            return (x.id != self.me.id && self.not_suspected(&x)).then_some(holders);
        }
        let x = self.members.responsible(key)?.node;
        if x.id == self.me.id || !self.not_suspected(&x) {
            return None;
        }
        let mut nodes = vec![x];
        nodes.extend(
            self.members
                .after(&x.id, self.cfg.successors)
                .into_iter()
                .map(|m| m.node)
                .filter(|n| n.id != x.id),
        );
        Some(nodes)
    }

    /// Called when the node joined (or started a ring): it enters its own
    /// table as a new incarnation, and (with a successor) pulls the table.
    pub(super) fn members_joined(&mut self) {
        if !self.one_hop() {
            return;
        }
        // A table from before a leave is stale: the join sync brings it anew.
        self.members = crate::membership::Membership::with_virtual_nodes(self.cfg.virtual_nodes);
        self.fingers_version = u64::MAX;
        self.my_since_ms = self.wall_ms().max(self.my_since_ms + 1);
        let me = self.my_record();
        self.members.apply(&MemberChange::Up(me), self.wall_ms());
        self.next_member_sync = self.now + self.jitter(self.cfg.membership_sync_interval);
        // Until the join sync brought the table in, it names only us.
        self.members_ready = self.rt.successor().is_none();
        if let Some(succ) = self.rt.successor().copied() {
            self.sync_members_with(succ, true);
        }
    }

    /// Applies one change and tells the host; true when the table moved.
    fn apply_member_change(&mut self, change: &MemberChange) -> bool {
        if change.id() == self.me.id {
            if let MemberChange::Down { since_ms, .. } = *change {
                if since_ms >= self.my_since_ms && self.phase == super::Phase::Joined {
                    // Someone thought we failed: come back as a new incarnation.
                    self.my_since_ms = self.wall_ms().max(since_ms + 1);
                    let me = self.my_record();
                    self.members.apply(&MemberChange::Up(me), self.wall_ms());
                    self.spread_members(vec![MemberChange::Up(me)], self.me.id);
                }
            }
            return false;
        }
        if let MemberChange::Up(m) = change {
            let mine = self.cfg.virtual_nodes.min(u16::MAX as usize) as u16;
            if m.points != mine {
                // Placements would differ: keys would be looked for where
                // they are not. The member stays out of our table.
                self.stats.refused_membership += 1;
                self.log(LogLevel::Error, || {
                    format!(
                        "member {} at {} places keys by {} virtual points, this node by {}: \
                         every member must use the same virtual_nodes",
                        m.node.id.to_hex(),
                        m.node.addr,
                        m.points,
                        mine
                    )
                });
                return false;
            }
        }
        match self.members.apply(change, self.wall_ms()) {
            Applied::Joined | Applied::Updated => {
                if let MemberChange::Up(m) = change {
                    self.events.push(Event::MemberUp(*m));
                }
                true
            }
            Applied::Removed => {
                if let MemberChange::Down { node, .. } = change {
                    self.events.push(Event::MemberDown(*node));
                }
                true
            }
            Applied::Unchanged => false,
        }
    }

    /// Sends `changes` down the tree under this node, for (me, limit).
    pub(super) fn spread_members(&mut self, changes: Vec<MemberChange>, limit: Id) {
        if changes.is_empty() {
            return;
        }
        let room = change_room(self.cfg.max_datagram, MEMBERS_OVERHEAD);
        let mut batches: Vec<Vec<MemberChange>> = vec![Vec::new()];
        let mut used = 0;
        for c in changes {
            let len = member_change_len(&c);
            if used + len > room && !batches.last().expect("one").is_empty() {
                batches.push(Vec::new());
                used = 0;
            }
            used += len;
            batches.last_mut().expect("one").push(c);
        }
        let targets = self.members.spread_targets(&self.me.id, &limit);
        self.stats.member_changes_spread += 1;
        for batch in batches {
            for (m, end) in &targets {
                self.send_members(m.node, *end, batch.clone());
            }
        }
    }

    fn send_members(&mut self, to: NodeInfo, limit: Id, changes: Vec<MemberChange>) {
        let body = Body::Members {
            limit,
            changes: changes.clone(),
        };
        let ctx = OnAnswer::Members {
            target: to,
            limit,
            changes,
        };
        self.send_request(to.addr, Some(to.id), body, ctx, self.cfg.rpc_retries + 1);
    }

    /// A member of our part of the tree did not take the changes: the next
    /// member of its part does (the silent one is handled as failed).
    pub(super) fn members_undelivered(
        &mut self,
        target: NodeInfo,
        limit: Id,
        changes: Vec<MemberChange>,
    ) {
        if let Some(next) = self.members.next_within(&target.id, &limit) {
            if next.node.id != self.me.id {
                self.send_members(next.node, limit, changes);
            }
        }
    }

    /// Changes arrived down the tree: apply them, and pass on the ones that
    /// changed our table to our part of the tree.
    pub(super) fn on_members(
        &mut self,
        from: SocketAddr,
        rid: u64,
        peer: Option<NodeInfo>,
        limit: Id,
        changes: Vec<MemberChange>,
    ) {
        if peer.is_none() || !self.one_hop() {
            self.stats.refused_membership += 1;
            self.reply(from, rid, Body::MembersAck);
            return;
        }
        let fresh: Vec<MemberChange> = changes
            .into_iter()
            .filter(|c| self.apply_member_change(c))
            .collect();
        self.reply(from, rid, Body::MembersAck);
        if !fresh.is_empty() {
            self.after_member_changes();
            self.spread_members(fresh, limit);
        }
    }

    /// Derived state follows the table: fingers now, the DNS set on the next tick.
    fn after_member_changes(&mut self) {
        self.fingers_from_table();
    }

    /// In one-hop mode the fingers come from the table, not from lookups.
    pub(super) fn fingers_from_table(&mut self) {
        if self.fingers_version == self.members.version() {
            return;
        }
        self.fingers_version = self.members.version();
        for i in 0..ID_BITS {
            let start = self.rt.finger_start(i);
            let f = self.members.responsible(&start).map(|m| m.node);
            self.rt.set_finger(i, f);
        }
    }

    /// A peer failed (`announce`: it was our predecessor or successor, so
    /// we tell everyone) or only went silent to us (we forget it here; a
    /// sync brings it back if others still see it).
    pub(super) fn member_failed(&mut self, id: Id, announce: bool) {
        if !self.one_hop() {
            return;
        }
        let Some(m) = self.members.get(&id).copied() else {
            return;
        };
        if announce {
            let down = MemberChange::Down {
                node: m.node,
                since_ms: m.since_ms,
            };
            if self.apply_member_change(&down) {
                self.after_member_changes();
                self.spread_members(vec![down], self.me.id);
            }
        } else if self.members.forget(&id).is_some() {
            self.events.push(Event::MemberDown(m.node));
            self.after_member_changes();
        }
    }

    /// The periodic anti-entropy round: compare tables with a random member.
    pub(super) fn sync_members(&mut self) {
        let n = self.members.len();
        if n < 2 {
            return;
        }
        let pick = self.rng.gen_range(0..n);
        let Some(peer) = self.members.members().nth(pick).map(|m| m.node) else {
            return;
        };
        let peer = if peer.id == self.me.id {
            match self.members.after(&self.me.id, 1).first() {
                Some(m) => m.node,
                None => return,
            }
        } else {
            peer
        };
        self.members.expire(self.wall_ms());
        self.sync_members_with(peer, false);
    }

    fn sync_members_with(&mut self, peer: NodeInfo, announce: bool) {
        self.request_member_page(peer, Id::ZERO, true, announce);
    }

    fn request_member_page(&mut self, peer: NodeInfo, after: Id, first: bool, announce: bool) {
        let ours = self.members.bucket_digests();
        let body = Body::MembersDigest {
            after,
            buckets: ours.to_vec(),
        };
        let ctx = OnAnswer::MembersSync(MemberSync {
            peer,
            ours,
            first,
            announce,
        });
        self.send_request(
            peer.addr,
            Some(peer.id),
            body,
            ctx,
            self.cfg.rpc_retries + 1,
        );
    }

    /// A member asks what differs from its digests: one page of it.
    /// Client handles are not members: they get no member list.
    pub(super) fn on_members_digest(
        &mut self,
        from: SocketAddr,
        rid: u64,
        peer: Option<NodeInfo>,
        after: Id,
        theirs: Vec<u64>,
    ) {
        if peer.is_none() || !self.one_hop() {
            self.stats.refused_membership += 1;
            let status = crate::wire::Status::BadRequest;
            return self.reply(from, rid, Body::Error { status });
        }
        let mut room = change_room(self.cfg.max_datagram, MEMBERS_PAGE_OVERHEAD);
        let (changes, more) = self.members.page(&theirs, &after, |c| {
            let len = member_change_len(c);
            let fits = len <= room;
            room = room.saturating_sub(len);
            fits
        });
        let buckets = self.members.bucket_digests().to_vec();
        let page = Body::MembersPage {
            more,
            buckets,
            changes,
        };
        self.reply(from, rid, page);
    }

    /// A page of a peer's table arrived.
    pub(super) fn member_page(
        &mut self,
        sync: MemberSync,
        more: bool,
        theirs: &[u64],
        changes: Vec<MemberChange>,
    ) {
        let mut moved = false;
        for c in &changes {
            moved |= self.apply_member_change(c);
        }
        if moved {
            self.after_member_changes();
        }
        if more {
            if let Some(last) = changes.last() {
                return self.request_member_page(sync.peer, last.id(), false, sync.announce);
            }
        }
        if sync.first && !more {
            // The peer sent the buckets whose digests differed whole: the
            // members of ours it did not list may be gone. Ask them (one
            // silent to every try is handled as failed).
            let differing = differing(&sync.ours, theirs);
            let me = self.me.id;
            let unknown: Vec<MemberRecord> = self
                .members
                .unlisted(&differing, &changes)
                .into_iter()
                .filter(|m| m.node.id != me && m.node.id != sync.peer.id)
                .take(MAX_PROBES)
                .collect();
            for m in unknown {
                let ctx = OnAnswer::MemberProbe;
                self.send_request(m.node.addr, Some(m.node.id), Body::Ping, ctx, 3);
            }
        }
        if sync.announce && !more {
            self.announce_self();
        }
    }

    /// The first sync after a join failed or finished: tell everyone we are here.
    pub(super) fn announce_self(&mut self) {
        self.members_ready = true;
        if self.phase != super::Phase::Joined {
            return;
        }
        let me = self.my_record();
        self.fingers_from_table();
        self.spread_members(vec![MemberChange::Up(me)], self.me.id);
    }

    /// The host's view of the table changed: hand it the members to publish
    /// when this node is the one that publishes (the member responsible for
    /// the hash of the published domain).
    pub(super) fn check_publication(&mut self) {
        let Some(domain_key) = self.publish_key else {
            return;
        };
        let publisher = self
            .members
            .responsible(&domain_key)
            .is_some_and(|m| m.node.id == self.me.id)
            && self.phase == super::Phase::Joined;
        let version = self.members.version();
        let due = self.now >= self.next_republish;
        if publisher == self.publishing && (!publisher || (version == self.published && !due)) {
            return;
        }
        self.publishing = publisher;
        self.published = version;
        if publisher {
            self.next_republish = self.now + REPUBLISH_US;
            let members = self.members();
            let removed = self.members.removals().map(|c| c.id()).collect();
            self.events.push(Event::Publish { members, removed });
        } else {
            self.events.push(Event::PublishStopped);
        }
    }
}

/// The publisher states the whole record set again this often, so that a
/// lost update or a record changed by hand is put right.
pub(super) const REPUBLISH_US: u64 = 60_000_000;
