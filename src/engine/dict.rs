//! The originator side of puts and gets: routing to the primary, following
//! pages, checking what remote nodes return, and retrying while the ring moves.

use super::dispatch::OnAnswer;
use super::lookup::LookupFor;
use super::maintain::SUSPECT_US;
use super::primary::ReplyTo;
use super::{Engine, OpKind, OpResult, Timer};
use crate::config::LogLevel;
use crate::error::Error;
use crate::id::Id;
use crate::types::{OpId, StoreReceipt, Value};
use crate::wire::{error_of, Body, NodeInfo, Status, WireEntry};
use std::cmp::Reverse;

#[derive(Clone, Debug)]
pub(super) struct PutJob {
    pub(super) op: OpId,
    pub(super) key: Id,
    pub(super) entry: WireEntry,
    pub(super) attempts: u8,
    /// Who said the node we send to is responsible (distrusted if it is not).
    pub(super) vouched_by: Option<NodeInfo>,
    /// A node named as responsible was not: check the next one first.
    pub(super) verify: bool,
}

#[derive(Clone, Debug)]
pub(super) struct GetJob {
    pub(super) op: OpId,
    pub(super) key: Id,
    pub(super) attempts: u8,
    /// Where the next page starts (None: at the first entry).
    pub(super) after: Option<Vec<u8>>,
    /// The entries of the pages read so far.
    pub(super) got: Vec<WireEntry>,
    /// A client handle pages through a key itself: answer after one page.
    pub(super) page_only: bool,
    /// Who said the node we read from is responsible.
    pub(super) vouched_by: Option<NodeInfo>,
    pub(super) verify: bool,
    /// The primary's successors (its replicas), read instead when the
    /// primary answers with forged entries.
    pub(super) backups: Vec<NodeInfo>,
    /// Reading a replica: its local copy, without the responsibility check.
    pub(super) from_replica: bool,
}

/// Routings of one put/get when the ring moves under it; after the first,
/// each waits twice as long as the one before (from `OP_RETRY_BASE_US`), so a
/// ring still settling after a join or failure (responsibility moves within
/// a stabilize round) gets time to agree.
pub(super) const MAX_ATTEMPTS: u8 = 8;
pub(super) const OP_RETRY_BASE_US: u64 = 50_000;

impl Engine {
    pub(super) fn store_reply(
        &mut self,
        mut job: PutJob,
        from: NodeInfo,
        status: Status,
        copies: u8,
    ) {
        if !self.op_live(job.op) {
            return;
        }
        match status {
            Status::Ok => {
                self.stats.puts_ok += 1;
                self.complete(job.op, OpResult::Put(Ok(StoreReceipt { copies })));
            }
            Status::NotResponsible | Status::Leaving => {
                if status == Status::Leaving {
                    self.suspect(from.id, self.now + SUSPECT_US);
                    self.forget_node(&from.id);
                    self.repair_successor();
                } else {
                    self.distrust(job.vouched_by.take());
                    job.verify = true;
                }
                self.retry_put(job);
            }
            other => {
                if other == Status::ClockSkew {
                    let (wall, version) = (self.wall_ms(), job.entry.version);
                    self.log(LogLevel::Warn, || {
                        format!(
                            "clock skew: {} at {} refused our write as expired or from its \
                             future (our clock {wall} ms, version {version}); check NTP",
                            from.id.to_hex(),
                            from.addr
                        )
                    });
                }
                self.stats.puts_failed += 1;
                self.complete(job.op, OpResult::Put(Err(error_of(other))));
            }
        }
    }

    pub(super) fn retry_put(&mut self, job: PutJob) {
        self.retry(LookupFor::Put(job));
    }

    pub(super) fn retry_get(&mut self, job: GetJob) {
        self.retry(LookupFor::Get(job));
    }

    /// Routes a put or get again after the ring moved under it (or its
    /// primary failed it), until its routings run out.
    fn retry(&mut self, mut purpose: LookupFor) {
        let (op, attempts, kind) = match &mut purpose {
            LookupFor::Put(j) => (j.op, &mut j.attempts, OpKind::Put),
            LookupFor::Get(j) => (j.op, &mut j.attempts, OpKind::Get),
            _ => return,
        };
        if !self.op_live(op) {
            return;
        }
        *attempts += 1;
        let attempts = *attempts;
        if attempts >= MAX_ATTEMPTS {
            self.count_failure(kind);
            self.complete(op, kind.fail(Error::NoRoute));
            return;
        }
        self.route_again(op, attempts, purpose);
    }

    /// Routes a put/get again: at once the first time, later after a growing pause.
    pub(super) fn route_again(&mut self, op: OpId, attempts: u8, purpose: LookupFor) {
        if attempts <= 1 {
            self.reroute(op, purpose);
            return;
        }
        let delay = OP_RETRY_BASE_US << (attempts - 2).min(10);
        self.op_retries.insert(op, purpose);
        self.timers
            .push(Reverse((self.now + delay, Timer::OpRetry(op))));
    }

    /// Looks up the key of a put or get again, within what is left of its deadline.
    pub(super) fn reroute(&mut self, op: OpId, purpose: LookupFor) {
        let key = match &purpose {
            LookupFor::Put(j) => j.key,
            LookupFor::Get(j) => j.key,
            _ => return,
        };
        let remaining = self.op_remaining(op);
        self.start_lookup(key, purpose, remaining);
    }

    /// Asks `node` (the key's primary) for the job's next page.
    pub(super) fn fetch_page(&mut self, job: GetJob, node: NodeInfo) {
        let (key, after, replica) = (job.key, job.after.clone(), job.from_replica);
        if node.id == self.me.id {
            self.primary_fetch(key, replica, after, None, ReplyTo::LocalGet(job));
        } else {
            let body = Body::Fetch {
                key,
                replica,
                after,
            };
            let tries = self.cfg.rpc_retries + 1;
            self.send_request(node.addr, Some(node.id), body, OnAnswer::Fetch(job), tries);
        }
    }

    pub(super) fn fetch_reply(
        &mut self,
        mut job: GetJob,
        from: NodeInfo,
        status: Status,
        entries: Vec<WireEntry>,
        next: Option<Vec<u8>>,
    ) {
        if !self.op_live(job.op) {
            return;
        }
        // A cursor that does not move forward would page for ever.
        let stuck = matches!((&next, &job.after), (Some(n), Some(a)) if n <= a);
        if status != Status::Ok || stuck {
            if status == Status::NotResponsible {
                self.distrust(job.vouched_by.take());
                job.verify = true;
            }
            self.retry_get(job);
            return;
        }
        let mut next = next;
        let replica_here = match self.by_points() {
            true => {
                from.id != self.me.id && self.holds_copy(&job.key, self.cfg.replicas) == Some(true)
            }
            false => self.rt.predecessor().is_some_and(|p| p.id == from.id),
        };
        let entries = if entries.is_empty() && replica_here {
            // Our predecessor is the primary and has nothing (it may have just
            // joined, its handoff still on the way), and it does not ask us,
            // its successor, back: our replica answers.
            let (mine, cursor) = self.local_page(&job.key, job.after.as_deref());
            next = cursor;
            mine
        } else if from.id == self.me.id {
            entries // checked when they were stored
        } else {
            // What a remote node returns is believed only when its owner
            // signed it, and never for longer than the owner said.
            let total = entries.len();
            let mut forged = 0;
            let live: Vec<WireEntry> = entries
                .into_iter()
                .filter_map(|mut e| {
                    if e.tombstone {
                        return None; // readers never see removals
                    }
                    e.lifetime_ms = self.signed_lifetime_ms(&e);
                    (e.lifetime_ms > 0).then_some(e)
                })
                .collect();
            // Checked together first; one by one only when the batch fails.
            let batch: Vec<(Id, &WireEntry)> = live.iter().map(|e| (job.key, e)).collect();
            let checked: Vec<WireEntry> = if live.len() > 1 && self.verifier.verify_all(&batch) {
                live
            } else {
                live.into_iter()
                    .filter(|e| {
                        let ok = self.authentic(&job.key, e);
                        forged += usize::from(!ok);
                        ok
                    })
                    .collect()
            };
            if forged > 0 && !job.backups.is_empty() {
                // A node that forges may hide genuine entries too: read this
                // page from the next replica instead.
                self.log(LogLevel::Warn, || {
                    format!("{forged} of {total} entries from {} are forged", from.addr)
                });
                let backup = job.backups.remove(0);
                job.from_replica = true;
                self.fetch_page(job, backup);
                return;
            }
            checked
        };
        job.got.extend(entries);
        if job.page_only {
            self.stats.gets_ok += 1;
            self.complete_client_page(job.op, job.got, next);
            return;
        }
        if let Some(n) = next {
            job.after = Some(n);
            self.fetch_page(job, from);
            return;
        }
        self.stats.gets_ok += 1;
        let mut values: Vec<Value> = job.got.into_iter().filter_map(Value::from_wire).collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.version));
        self.complete(job.op, OpResult::Get(Ok(values)));
    }
}
