//! The API entry points (join, lookup, put, remove, get, ping, leave) and the
//! bookkeeping every operation shares: ids, deadlines, completion.

use super::dict::{GetJob, PutJob};
use super::dispatch::OnAnswer;
use super::lookup::{Candidate, LookupFor};
use super::replicate::LeaveState;
use super::serve::{client_reply, CLIENT_OP_BASE};
use super::{Completion, Engine, OpKind, OpResult, Phase};
use crate::config::LogLevel;
use crate::error::Error;
use crate::id::Id;
use crate::types::OpId;
use crate::wire;
use crate::wire::{Body, WireEntry};
use std::net::SocketAddr;
use std::time::Duration;

impl Engine {
    /// Joins through the first bootstrap address that answers, or starts a new
    /// ring when the list is empty (or names only this node).
    pub fn join(&mut self, now: u64, op: OpId, bootstrap: &[SocketAddr], timeout: Duration) {
        self.now = now;
        if !self.begin_op(op, OpKind::Join, timeout) {
            return;
        }
        if !matches!(self.phase, Phase::Idle | Phase::Left) {
            self.complete(
                op,
                OpResult::Join(Err(Error::BadState(
                    "node already joined or joining".into(),
                ))),
            );
            return;
        }
        let mut rest: Vec<SocketAddr> = bootstrap
            .iter()
            .copied()
            .filter(|a| *a != self.me.addr)
            .collect();
        if rest.is_empty() {
            self.log(LogLevel::Info, || "starting a new ring".into());
            self.become_joined(now);
            self.complete(op, OpResult::Join(Ok(())));
            return;
        }
        self.phase = Phase::Joining;
        let first = rest.remove(0);
        self.start_lookup_via(
            self.me.id,
            LookupFor::Join {
                op,
                via: first,
                rest,
            },
            vec![Candidate {
                addr: first,
                id: None,
            }],
            timeout,
        );
        self.after_step();
    }

    /// Finds the node responsible for `key`.
    pub fn lookup(&mut self, now: u64, op: OpId, key: Id, timeout: Duration) {
        self.now = now;
        if self.begin_op(op, OpKind::Lookup, timeout) && self.require_joined(op, OpKind::Lookup) {
            self.start_lookup(key, LookupFor::User(op), timeout);
        }
        self.after_step();
    }

    /// Finds the node responsible for `key` by the ring's own route (never
    /// the location cache's shortcut), recording each step's answerer and
    /// round trip in the outcome's `path`.
    pub fn trace(&mut self, now: u64, op: OpId, key: Id, timeout: Duration) {
        self.now = now;
        if self.begin_op(op, OpKind::Lookup, timeout) {
            // Before require_joined: its refusal is a trace's answer too.
            self.traced_ops.insert(op);
            if self.require_joined(op, OpKind::Lookup) {
                self.start_lookup(key, LookupFor::User(op), timeout);
            }
        }
        self.after_step();
    }

    /// Writes `data` into the writer's slot of `key`'s dictionary.
    #[allow(clippy::too_many_arguments)]
    pub fn put(
        &mut self,
        now: u64,
        op: OpId,
        key: Id,
        writer: &[u8],
        data: &[u8],
        version: u64,
        lifetime: Duration,
        timeout: Duration,
    ) {
        self.now = now;
        let entry = WireEntry::unsigned(
            writer.to_vec(),
            version,
            lifetime.as_millis().min(u32::MAX as u128) as u32,
            false,
            data.to_vec(),
        );
        self.start_put(op, key, entry, timeout);
    }

    /// Removes the writer's entry of `key` (a tombstone with a newer version).
    pub fn remove(
        &mut self,
        now: u64,
        op: OpId,
        key: Id,
        writer: &[u8],
        version: u64,
        timeout: Duration,
    ) {
        self.now = now;
        let entry = self.tombstone(writer, version);
        self.start_put(op, key, entry, timeout);
    }

    /// A removal of the writer's entry (label `writer`) at `version`.
    pub(super) fn tombstone(&self, writer: &[u8], version: u64) -> WireEntry {
        let lifetime_ms = self
            .cfg
            .tombstone_lifetime
            .as_millis()
            .min(u32::MAX as u128) as u32;
        WireEntry::unsigned(writer.to_vec(), version, lifetime_ms, true, Vec::new())
    }

    /// Starts a write of `entry`, whose writer is a label: the node puts it
    /// in its own slot and signs it.
    pub(super) fn start_put(&mut self, op: OpId, key: Id, entry: WireEntry, timeout: Duration) {
        self.start_put_as(op, key, entry, timeout, false);
    }

    /// `start_put`, in the node key's slot when `as_node` (announcements).
    pub(super) fn start_put_as(
        &mut self,
        op: OpId,
        key: Id,
        mut entry: WireEntry,
        timeout: Duration,
        as_node: bool,
    ) {
        if !self.begin_op(op, OpKind::Put, timeout) || !self.require_joined(op, OpKind::Put) {
            self.after_step();
            return;
        }
        let limits = self.store.limits();
        let err = if limits.check_sizes(&entry.writer, &entry.data).is_err()
            || entry.writer.len() > wire::MAX_LABEL_LEN
        {
            Some(Error::TooLarge)
        } else if entry.lifetime_ms == 0 {
            Some(Error::InvalidArgument("lifetime must be positive".into()))
        } else if entry.lifetime_ms > limits.max_lifetime_ms {
            Some(Error::InvalidArgument(
                "lifetime exceeds the configured maximum".into(),
            ))
        } else {
            None
        };
        if let Some(e) = err {
            self.stats.puts_failed += 1;
            self.complete(op, OpResult::Put(Err(e)));
        } else {
            // Signed when a copy first leaves this node (`sign_outgoing`): a write
            // this node is primary for with no replicas is never signed.
            let signer = if as_node {
                &self.announcer
            } else {
                &self.writer
            };
            entry.writer = signer.slot(&entry.writer);
            // The node signs (and tags) its own writes itself: a signature
            // or tag that came with the request (a client's ClientPut) would
            // otherwise leave under the node's key unchecked.
            entry.signature = [0; wire::SIGNATURE_LEN];
            entry.writer_tag = None;
            entry.expires_ms = self.wall_ms() + entry.lifetime_ms as u64;
            let job = PutJob {
                op,
                key,
                entry,
                attempts: 0,
                vouched_by: None,
                verify: false,
            };
            let remaining = self.op_remaining(op);
            self.start_lookup(key, LookupFor::Put(job), remaining);
        }
        self.after_step();
    }

    /// Reads every live value of `key`, newest first, page by page when they
    /// do not fit in one datagram.
    pub fn get(&mut self, now: u64, op: OpId, key: Id, timeout: Duration) {
        self.now = now;
        self.start_get(op, key, None, false, timeout);
        self.after_step();
    }

    pub(super) fn start_get(
        &mut self,
        op: OpId,
        key: Id,
        after: Option<Vec<u8>>,
        page_only: bool,
        timeout: Duration,
    ) {
        if self.begin_op(op, OpKind::Get, timeout) && self.require_joined(op, OpKind::Get) {
            let job = GetJob {
                op,
                key,
                attempts: 0,
                after,
                got: Vec::new(),
                page_only,
                vouched_by: None,
                verify: false,
                backups: Vec::new(),
                from_replica: false,
            };
            self.start_lookup(key, LookupFor::Get(job), timeout);
        }
    }

    /// Measures the round trip to any peer address.
    pub fn ping(&mut self, now: u64, op: OpId, addr: SocketAddr, timeout: Duration) {
        self.now = now;
        if self.begin_op(op, OpKind::Ping, timeout) {
            self.send_request(
                addr,
                None,
                Body::Ping,
                OnAnswer::Ping { op },
                self.cfg.rpc_retries + 1,
            );
        }
        self.after_step();
    }

    /// Graceful leave: hand every stored entry to the successor, tell both
    /// neighbours, and finish when they acknowledged or the deadline passed.
    pub fn leave(&mut self, now: u64, op: OpId, timeout: Duration) {
        self.now = now;
        if !self.begin_op(op, OpKind::Leave, timeout) {
            return;
        }
        if self.phase != Phase::Joined {
            self.phase = Phase::Left;
            self.complete(op, OpResult::Leave(Ok(())));
            self.after_step();
            return;
        }
        self.phase = Phase::Leaving;
        // A Notify still being retransmitted would reach the neighbours after
        // our Leaving, stamped later than it, and bring us back into their
        // lists (the two-node leave that timed out under valgrind).
        self.rpcs.retain(|_, r| !matches!(r.body, Body::Notify));
        self.leave = Some(LeaveState {
            op,
            outstanding: 0,
            failed: false,
        });
        self.log(LogLevel::Info, || "leaving the ring".into());
        let preds = self.rt.predecessors().to_vec();
        let succs = self.rt.successors().to_vec();
        let mut sent = 0;
        if let Some(pred) = preds.first().copied() {
            if Some(pred.id) != succs.first().map(|s| s.id) {
                // A courtesy: a dead predecessor does not fail the leave.
                sent += self.send_request(
                    pred.addr,
                    Some(pred.id),
                    Body::Leaving { preds, succs },
                    OnAnswer::LeaveStep { successor: None },
                    self.cfg.rpc_retries + 1,
                ) as usize;
            }
        }
        if let Some(l) = self.leave.as_mut() {
            l.outstanding += sent;
        }
        self.leave_handoff();
        self.maybe_finish_leave();
        self.after_step();
    }

    pub(super) fn begin_op(&mut self, op: OpId, kind: OpKind, timeout: Duration) -> bool {
        if self.ops.contains_key(&op) {
            self.completions.push(Completion {
                op,
                result: kind.fail(Error::InvalidArgument("operation id in use".into())),
            });
            return false;
        }
        let deadline = self.now + timeout.as_micros().min(u64::MAX as u128 / 2) as u64;
        self.ops.insert(op, (kind, deadline));
        self.op_deadlines.insert((deadline, op));
        true
    }

    /// Forgets a finished operation; false when it was not live.
    pub(super) fn end_op(&mut self, op: OpId) -> bool {
        match self.ops.remove(&op) {
            Some((_, deadline)) => {
                self.op_deadlines.remove(&(deadline, op));
                true
            }
            None => false,
        }
    }

    pub(super) fn require_joined(&mut self, op: OpId, kind: OpKind) -> bool {
        if self.phase == Phase::Joined {
            return true;
        }
        let e = if self.phase == Phase::Leaving {
            Error::Shutdown
        } else {
            Error::NotJoined
        };
        self.complete(op, kind.fail(e));
        false
    }

    pub(super) fn op_remaining(&self, op: OpId) -> Duration {
        let deadline = self.ops.get(&op).map_or(self.now, |(_, d)| *d);
        Duration::from_micros(deadline.saturating_sub(self.now))
    }

    pub(super) fn complete(&mut self, op: OpId, result: OpResult) {
        if !self.end_op(op) {
            return;
        }
        let traced = self.traced_ops.remove(&op);
        if let Some(job) = self.txn_ops.remove(&op) {
            self.txn_step(job, result);
            return;
        }
        if self.announce_completed(op, &result) {
            return;
        }
        if let Some((addr, rid)) = self.client_ops.remove(&op) {
            self.client_reqs.remove(&(addr, rid));
            let body = client_reply(result, traced);
            self.reply_client(addr, rid, body);
            return;
        }
        self.completions.push(Completion { op, result });
    }

    /// An operation id for work this node starts on its own behalf.
    pub(super) fn internal_op(&mut self) -> OpId {
        self.next_client_op += 1;
        CLIENT_OP_BASE | self.next_client_op
    }

    pub(super) fn count_failure(&mut self, kind: OpKind) {
        match kind {
            OpKind::Lookup => self.stats.lookups_failed += 1,
            OpKind::Put => self.stats.puts_failed += 1,
            OpKind::Get => self.stats.gets_failed += 1,
            _ => {}
        }
    }

    pub(super) fn op_live(&self, op: OpId) -> bool {
        self.ops.contains_key(&op)
    }

    /// This node's wall clock, in milliseconds since the Unix epoch.
    pub(super) fn wall_ms(&self) -> u64 {
        self.wall_offset_ms + self.now / 1000
    }

    /// A version for a write this node makes itself: wall-clock microseconds,
    /// strictly increasing (like the Node API's).
    pub(super) fn next_version(&mut self) -> u64 {
        let wall = self.wall_offset_ms.saturating_mul(1000) + self.now;
        self.last_version = wall.max(self.last_version + 1);
        self.last_version
    }

    /// A ping was answered: its round trip is the result.
    pub(super) fn pinged(&mut self, op: OpId, sent_at: u64) {
        let rtt = Duration::from_micros(self.now.saturating_sub(sent_at));
        self.complete(op, OpResult::Ping(Ok(rtt)));
    }
}
