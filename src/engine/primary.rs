//! The node responsible for a key: stores writes (checking their signatures),
//! replicates them to its successors before acknowledging, and serves reads
//! page by page.

use super::dict::{GetJob, PutJob};
use super::dispatch::OnAnswer;
use super::replicate::batches;
use super::{Engine, Event, Phase};
use crate::id::Id;
use crate::owner;
use crate::storage::{Entry, PutOutcome, StoreError};
use crate::wire;
use crate::wire::{Body, NodeInfo, Status, WireEntry, SIGNATURE_LEN};
use std::net::SocketAddr;

/// Where the answer to a primary-side operation goes: a remote requester, or
/// an operation of this node that found itself responsible.
#[derive(Clone, Debug)]
pub(super) enum ReplyTo {
    Remote { addr: SocketAddr, request_id: u64 },
    LocalPut(Box<PutJob>),
    LocalGet(GetJob),
}

impl ReplyTo {
    pub(super) fn remote(addr: SocketAddr, request_id: u64) -> ReplyTo {
        ReplyTo::Remote { addr, request_id }
    }
}

#[derive(Debug)]
pub(super) struct PendingReplication {
    pub(super) reply: ReplyTo,
    pub(super) copies: u8,
    pub(super) outstanding: usize,
}

/// The entries after `after` in writer order, as many as fit in `budget`
/// bytes of a FetchReply, and the cursor of the next page when some are left.
pub(super) fn page(
    mut entries: Vec<WireEntry>,
    after: Option<&[u8]>,
    budget: usize,
) -> (Vec<WireEntry>, Option<Vec<u8>>) {
    entries.retain(|e| after.is_none_or(|a| e.writer.as_slice() > a));
    entries.sort_by(|a, b| a.writer.cmp(&b.writer));
    // status, cursor flag and length, entry count
    let mut used = 1 + 2 + 2;
    let mut out = Vec::new();
    let mut rest = entries.into_iter();
    for e in rest.by_ref() {
        // The cursor repeats the last writer.
        let len = wire::fetch_entry_len(&e);
        if used + len + e.writer.len() > budget && !out.is_empty() {
            let last = out.last().map(|l: &WireEntry| l.writer.clone());
            return (out, last);
        }
        used += len;
        out.push(e);
    }
    (out, None)
}

/// Why a received entry was not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    Limit(StoreError),
    /// Its signature does not match its owner.
    Forged,
    /// Its signed expiry had passed when it arrived.
    Expired,
    /// Its version lies further in the future than clocks may differ.
    FromTheFuture,
}

impl Refusal {
    pub(super) fn status(self) -> Status {
        match self {
            Refusal::Limit(StoreError::ValueTooLarge | StoreError::WriterTooLarge) => {
                Status::TooLarge
            }
            Refusal::Limit(StoreError::KeyFull | StoreError::NodeFull) => Status::Full,
            Refusal::Forged => Status::BadRequest,
            Refusal::Expired | Refusal::FromTheFuture => Status::ClockSkew,
        }
    }
}

impl Engine {
    /// Serves the Stores of this burst, their writers' signatures checked
    /// together first (one by one in store_entry when the batch fails).
    pub(super) fn flush_stores(&mut self) {
        let stores = std::mem::take(&mut self.store_inbox);
        let news: Vec<bool> = stores
            .iter()
            .map(|(k, e, _)| {
                e.lifetime_ms > 0 && self.store.is_news(k, &Entry::from_wire(k, e, self.now))
            })
            .collect();
        let batch: Vec<(Id, &WireEntry)> = (stores.iter().zip(&news))
            .filter(|(_, news)| **news)
            .map(|((k, e, _), _)| (*k, e))
            .collect();
        let checked = batch.len() > 1 && self.verifier.verify_all(&batch);
        for ((key, entry, reply), news) in stores.into_iter().zip(news) {
            self.primary_store_checked(key, entry, reply, checked && news);
        }
    }

    pub(super) fn primary_store(&mut self, key: Id, entry: WireEntry, reply: ReplyTo) {
        self.primary_store_checked(key, entry, reply, false)
    }

    /// A write at its primary; `checked`: its signature was checked already.
    fn primary_store_checked(
        &mut self,
        key: Id,
        mut entry: WireEntry,
        reply: ReplyTo,
        checked: bool,
    ) {
        let status = if self.phase == Phase::Leaving {
            Some(Status::Leaving)
        } else if self.phase != Phase::Joined || !self.responsible_here(&key) {
            Some(Status::NotResponsible)
        } else if entry.lifetime_ms == 0 {
            Some(Status::BadRequest)
        } else {
            None
        };
        if let Some(status) = status {
            self.answer(reply, Body::StoreReply { status, copies: 0 });
            return;
        }
        let signed = checked || matches!(reply, ReplyTo::LocalPut(_));
        let status = match self.store_entry(key, &entry, signed) {
            Ok(PutOutcome::Stored | PutOutcome::Unchanged) => Status::Ok,
            Ok(PutOutcome::Stale) => Status::Stale,
            Err(r) => r.status(),
        };
        if status != Status::Ok {
            self.answer(reply, Body::StoreReply { status, copies: 0 });
            return;
        }
        let holders = self.replica_holders_for(&key);
        if holders.is_empty() {
            self.answer(
                reply,
                Body::StoreReply {
                    status: Status::Ok,
                    copies: 1,
                },
            );
            return;
        }
        self.sign_for_holders(&key, &mut entry);
        let pending = self.next_pending;
        self.next_pending += 1;
        self.replications.insert(
            pending,
            PendingReplication {
                reply,
                copies: 1,
                outstanding: holders.len(),
            },
        );
        // Sent at the end of this step (flush_replicates), together with the
        // other writes that arrived in the same burst.
        for h in holders {
            self.replicate_outbox.push((h, key, entry.clone(), pending));
        }
    }

    /// Sends the copies of this step's writes: one Replicate (one node
    /// signature, one check at the holder, one datagram each way) per holder
    /// for as many writes as fit, instead of one per write.
    pub(super) fn flush_replicates(&mut self) {
        if self.replicate_outbox.is_empty() {
            return;
        }
        // Per holder: its copies, each with the write it completes.
        type Copies = Vec<((Id, WireEntry), u64)>;
        let mut by_holder: Vec<(NodeInfo, Copies)> = Vec::new();
        for (h, key, entry, pending) in std::mem::take(&mut self.replicate_outbox) {
            match by_holder.iter_mut().find(|(n, _)| *n == h) {
                Some((_, items)) => items.push(((key, entry), pending)),
                None => by_holder.push((h, vec![((key, entry), pending)])),
            }
        }
        let budget = self.body_budget();
        for (h, items) in by_holder {
            for batch in batches(budget, items, |((_, e), _)| wire::replicate_item_len(e)) {
                let (items, pendings): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                self.send_request(
                    h.addr,
                    Some(h.id),
                    Body::Replicate { items },
                    OnAnswer::ReplicateFor { pendings },
                    self.cfg.rpc_retries + 1,
                );
            }
        }
    }

    pub(super) fn replication_done(&mut self, pending: u64, ok: bool) {
        let Some(p) = self.replications.get_mut(&pending) else {
            return;
        };
        p.outstanding -= 1;
        if ok {
            p.copies = p.copies.saturating_add(1);
        }
        if p.outstanding == 0 {
            let p = self.replications.remove(&pending).expect("present");
            self.answer(
                p.reply,
                Body::StoreReply {
                    status: Status::Ok,
                    copies: p.copies,
                },
            );
        }
    }

    pub(super) fn primary_fetch(
        &mut self,
        key: Id,
        replica: bool,
        after: Option<Vec<u8>>,
        requester: Option<SocketAddr>,
        reply: ReplyTo,
    ) {
        if !replica
            && (!matches!(self.phase, Phase::Joined | Phase::Leaving)
                || !self.responsible_here(&key))
        {
            self.answer(
                reply,
                Body::FetchReply {
                    status: Status::NotResponsible,
                    entries: vec![],
                    next: None,
                },
            );
            return;
        }
        let (mut entries, next) = self.local_page(&key, after.as_deref());
        if matches!(reply, ReplyTo::Remote { .. }) {
            entries.iter_mut().for_each(|e| self.sign_outgoing(&key, e));
        }
        if entries.is_empty() && !replica {
            // A new primary may not have received its handoff yet, and a primary
            // that just took over may have missed a write: ask the successor.
            let next = match self.by_points() {
                true => self.replica_holders_for(&key).first().copied(),
                false => self.rt.successor().copied(),
            };
            if let Some(s) = next {
                if Some(s.addr) != requester {
                    self.send_request(
                        s.addr,
                        Some(s.id),
                        Body::Fetch {
                            key,
                            replica: true,
                            after: after.clone(),
                        },
                        OnAnswer::FetchFallback { key, after, reply },
                        2,
                    );
                    return;
                }
            }
        }
        self.answer(
            reply,
            Body::FetchReply {
                status: Status::Ok,
                entries,
                next,
            },
        );
    }

    /// One page of a key's stored entries (tombstones included, so replicas
    /// learn of removals), after `after` in writer order.
    pub(super) fn local_page(
        &self,
        key: &Id,
        after: Option<&[u8]>,
    ) -> (Vec<WireEntry>, Option<Vec<u8>>) {
        let entries = self
            .store
            .entries(key, self.now)
            .into_iter()
            .map(|e| e.to_wire(self.now))
            .collect();
        page(entries, after, self.page_budget())
    }

    /// Bytes the entries and cursor of a FetchReply may take.
    pub(super) fn page_budget(&self) -> usize {
        self.cfg
            .max_datagram
            .saturating_sub(wire::HEADER_LEN + wire::TAG_LEN)
    }

    /// Stores a received entry, its lifetime capped at the configured maximum
    /// (at the tombstone lifetime for a removal) and at its signed expiry. An
    /// entry that would change what is stored must carry its owner's
    /// signature (`signed`: this node signed it itself, or has just checked
    /// the signature in a batch).
    pub(super) fn store_entry(
        &mut self,
        key: Id,
        e: &WireEntry,
        signed: bool,
    ) -> Result<PutOutcome, Refusal> {
        let mut lifetime_ms = self
            .signed_lifetime_ms(e)
            .min(self.store.limits().max_lifetime_ms);
        if e.tombstone {
            lifetime_ms = lifetime_ms.min(self.tombstone_lifetime_ms());
        }
        if lifetime_ms == 0 {
            return Err(Refusal::Expired);
        }
        // Versions are wall-clock microseconds: one far ahead of ours would
        // lock the slot against its writer's next writes.
        let horizon_ms = self.wall_ms().saturating_add(self.expiry_slack_ms());
        if e.version > horizon_ms.saturating_mul(1000) {
            return Err(Refusal::FromTheFuture);
        }
        let mut entry = Entry::from_wire(&key, e, self.now);
        entry.expires_at = self.now + lifetime_ms as u64 * 1000;
        if !signed && self.store.is_news(&key, &entry) && !self.authentic(&key, e) {
            return Err(Refusal::Forged);
        }
        self.store.put(key, entry).map_err(Refusal::Limit)
    }

    fn tombstone_lifetime_ms(&self) -> u32 {
        self.cfg
            .tombstone_lifetime
            .as_millis()
            .min(u32::MAX as u128) as u32
    }

    pub(super) fn accept_items(&mut self, items: Vec<(Id, WireEntry)>) -> Status {
        let mut status = Status::Ok;
        let mut added = 0;
        // The copies that would change what we hold are checked together;
        // when the batch fails, store_entry checks each on its own.
        let news: Vec<bool> = items
            .iter()
            .map(|(k, e)| {
                e.lifetime_ms > 0 && self.store.is_news(k, &Entry::from_wire(k, e, self.now))
            })
            .collect();
        let batch: Vec<(Id, &WireEntry)> = (items.iter().zip(&news))
            .filter(|(_, news)| **news)
            .map(|((k, e), _)| (*k, e))
            .collect();
        let checked = batch.len() > 1 && self.verifier.verify_all(&batch);
        for ((key, e), news) in items.into_iter().zip(news) {
            if e.lifetime_ms == 0 {
                continue;
            }
            match self.store_entry(key, &e, checked && news) {
                Ok(PutOutcome::Stored) => added += 1,
                // A copy may expire on its way, during a handoff or sync.
                Ok(_) | Err(Refusal::Expired) => {}
                Err(r) => status = r.status(),
            }
        }
        if added > 0 {
            self.events.push(Event::KeysIn(added));
        }
        status
    }

    pub(super) fn answer(&mut self, reply: ReplyTo, body: Body) {
        match reply {
            ReplyTo::Remote { addr, request_id } => self.reply(addr, request_id, body),
            ReplyTo::LocalPut(job) => {
                if let Body::StoreReply { status, copies } = body {
                    let me = self.me;
                    self.store_reply(*job, me, status, copies);
                }
            }
            ReplyTo::LocalGet(job) => {
                if let Body::FetchReply {
                    status,
                    entries,
                    next,
                } = body
                {
                    let me = self.me;
                    self.fetch_reply(job, me, status, entries, next);
                }
            }
        }
    }

    /// Signs an entry of this node's own that is about to leave it, once (the
    /// store keeps the signature): writes are stored unsigned by their own
    /// node, which trusts them, until a copy goes to another node.
    pub(super) fn sign_outgoing(&mut self, key: &Id, e: &mut WireEntry) {
        let signer = match owner::split_slot(&e.writer) {
            Some((o, _)) if o == self.writer.owner() => &self.writer,
            Some((o, _)) if o == self.announcer.owner() => &self.announcer,
            _ => return,
        };
        if e.signature == [0; SIGNATURE_LEN] {
            signer.sign(key, e);
            self.store
                .set_signature(key, &e.writer, e.version, e.tombstone, e.signature);
        }
    }

    /// Signs a write about to go to its primary or replicas and, if it is
    /// this node's writer's, adds the writer tag: holders that share the
    /// writer key check that instead of the signature. (A write from another
    /// node keeps the tag it came with.)
    pub(super) fn sign_for_holders(&mut self, key: &Id, e: &mut WireEntry) {
        self.sign_outgoing(key, e);
        let mine = owner::split_slot(&e.writer).is_some_and(|(o, _)| o == self.writer.owner());
        if mine && e.writer_tag.is_none() {
            self.writer.tag(key, e);
        }
    }

    /// Whether `e` is signed by the owner of its slot; counts the forgeries.
    pub(super) fn authentic(&mut self, key: &Id, e: &WireEntry) -> bool {
        let ok = self.verifier.verify(key, e);
        if !ok {
            self.stats.forged_entries += 1;
        }
        ok
    }

    /// The lifetime `e` may still have here: what it arrived with, but never
    /// past the expiry its writer signed.
    pub(super) fn signed_lifetime_ms(&self, e: &WireEntry) -> u32 {
        let left =
            (e.expires_ms.saturating_add(self.expiry_slack_ms())).saturating_sub(self.wall_ms());
        e.lifetime_ms.min(left.min(u32::MAX as u64) as u32)
    }

    /// How much longer than its signed expiry a copy may live: the clock
    /// difference between peers that the replay window tolerates.
    pub(super) fn expiry_slack_ms(&self) -> u64 {
        self.cfg.replay_window.as_millis().min(u64::MAX as u128) as u64
    }

    /// The successor answered a primary's fallback read: take what it holds,
    /// then answer with our page.
    pub(super) fn fallback_fetched(
        &mut self,
        key: Id,
        after: Option<Vec<u8>>,
        reply: ReplyTo,
        entries: Vec<WireEntry>,
        next: Option<Vec<u8>>,
    ) {
        let items = entries.into_iter().map(|e| (key, e)).collect();
        self.accept_items(items);
        // The successor's page decides whether more follow; ours may be
        // cut shorter by what we already held.
        self.answer_local_page(key, after, reply, next);
    }

    /// The successor did not answer a primary's fallback read: answer with what we hold.
    pub(super) fn fallback_failed(&mut self, key: Id, after: Option<Vec<u8>>, reply: ReplyTo) {
        self.answer_local_page(key, after, reply, None);
    }

    /// Answers a read with a page of what this node holds (signed where this
    /// node's own entries leave it); `next` says more follow when our page
    /// does not.
    fn answer_local_page(
        &mut self,
        key: Id,
        after: Option<Vec<u8>>,
        reply: ReplyTo,
        next: Option<Vec<u8>>,
    ) {
        let (mut entries, mine_next) = self.local_page(&key, after.as_deref());
        if matches!(reply, ReplyTo::Remote { .. }) {
            entries.iter_mut().for_each(|e| self.sign_outgoing(&key, e));
        }
        let next = mine_next.or(next);
        let status = Status::Ok;
        self.answer(
            reply,
            Body::FetchReply {
                status,
                entries,
                next,
            },
        );
    }
}
