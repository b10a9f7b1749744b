//! The atomic read-plan-write transaction on one key, run for a client
//! handle in one exchange or for this node's own caller without a thread
//! waiting on it: read the key, keep the values in this node's own
//! slots, let the transaction plan its writes, make them in parallel and,
//! when one fails, put back what the slots held (all or nothing). What a
//! transaction means (a SIP REGISTER, say) is not the engine's business: the
//! decoder the node was built with ([`Config::transactions`]) knows.
//!
//! [`Config::transactions`]: crate::config::Config::transactions

use super::serve::MAX_CLIENT_OPS;
use super::{Engine, OpId, OpKind, OpResult};
use crate::config::LogLevel;
use crate::error::Error;
use crate::id::Id;
use crate::types::{undo_writes, Decoded, SlotWrite, Transaction, Value};
use crate::wire::{status_of, Body, Status, WireEntry};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

/// Who waits for a transaction's end.
#[derive(Clone, Copy)]
enum Requester {
    /// A client handle: its address and request id.
    Client(SocketAddr, u64),
    /// This node's caller: the operation completes.
    Local(OpId),
}

/// A transaction waiting for the one running on its key.
pub(super) struct QueuedTxn {
    job: u64,
    requester: Requester,
    txn: Box<dyn Transaction>,
    cap: u32,
}

/// A transaction a client handle or this node's caller asked it to run.
pub(super) struct TxnJob {
    requester: Requester,
    txn: Box<dyn Transaction>,
    /// The longest lifetime a write of it may ask for, in ms.
    lifetime_cap_ms: u32,
    /// This node's own values of the key when it was read: what an undo restores.
    before: Vec<Value>,
    /// The planned writes.
    writes: Vec<SlotWrite>,
    /// Reads or writes still outstanding.
    pending: usize,
    /// The first write that failed.
    failed: Option<Error>,
    /// The writes now outstanding are the undo.
    undoing: bool,
}

impl Engine {
    /// Starts a client's transaction: read the key first.
    pub(super) fn client_transaction(&mut self, from: SocketAddr, rid: u64, request: &[u8]) {
        if self.client_reqs.contains_key(&(from, rid)) {
            return; // a retransmission of one still running
        }
        if self.client_reqs.len() >= MAX_CLIENT_OPS {
            let status = Status::Full;
            self.reply_client(from, rid, Body::Error { status });
            return;
        }
        let decoded = match &self.cfg.transactions {
            Some(decoder) => (decoder.decode)(request),
            None => {
                self.log(LogLevel::Warn, || {
                    format!("refused a client transaction from {from}: this node serves none")
                });
                Decoded::Malformed
            }
        };
        let txn = match decoded {
            Decoded::Run(txn) => txn,
            Decoded::Answer(outcome) => {
                let status = Status::Ok;
                let body = Body::ClientTransactionReply { status, outcome };
                return self.reply_client(from, rid, body);
            }
            Decoded::Malformed => {
                let status = Status::BadRequest;
                return self.reply_client(from, rid, Body::Error { status });
            }
        };
        let job = self.internal_op();
        self.client_reqs.insert((from, rid), job);
        let cap = self.client_lifetime_cap_ms();
        self.start_txn(job, Requester::Client(from, rid), txn, cap);
    }

    /// Runs a transaction for this node's caller: `op` completes with
    /// [`OpResult::Transaction`] once it refused, succeeded or failed (the
    /// transaction object, which the caller keeps a handle to, holds its
    /// answer). Its writes are this node's own, as a blocking
    /// [`crate::types::run_transaction`] through the node would make them.
    pub fn transaction(
        &mut self,
        now: u64,
        op: OpId,
        txn: Box<dyn Transaction>,
        timeout: Duration,
    ) {
        self.now = now;
        if self.begin_op(op, OpKind::Transaction, timeout) {
            let job = self.internal_op();
            self.start_txn(job, Requester::Local(op), txn, u32::MAX);
        }
        self.after_step();
    }

    /// Starts transaction job `job` (its id) by reading its key, or queues it
    /// behind the one running on that key: transactions on one key run one
    /// after another on a node, so that each plans on what the one before
    /// wrote (two REGISTERs of one AOR in flight at once could otherwise
    /// both pass a limit of bindings, or undo each other's writes).
    fn start_txn(&mut self, job: u64, requester: Requester, txn: Box<dyn Transaction>, cap: u32) {
        let key = txn.key();
        match self.txn_queue.get_mut(&key) {
            Some(waiting) => waiting.push_back(QueuedTxn {
                job,
                requester,
                txn,
                cap,
            }),
            None => {
                self.txn_queue.insert(key, VecDeque::new());
                self.run_txn(job, requester, txn, cap);
            }
        }
    }

    /// A transaction on `key` ended: the next one waiting on it starts (one
    /// whose caller stopped waiting is dropped), or the key is free. A next
    /// one that ends at once (the node is leaving) comes back here: the
    /// outermost call drains those in a loop, so a long queue never turns
    /// into a deep recursion.
    fn txn_next(&mut self, key: Id) {
        self.txn_ready.push(key);
        if self.txn_draining {
            return;
        }
        self.txn_draining = true;
        while let Some(key) = self.txn_ready.pop() {
            self.start_next_txn(key);
        }
        self.txn_draining = false;
    }

    fn start_next_txn(&mut self, key: Id) {
        while let Some(next) = self.txn_queue.get_mut(&key).and_then(|q| q.pop_front()) {
            let live = match next.requester {
                Requester::Local(op) => self.op_live(op),
                Requester::Client(addr, rid) => self.client_reqs.contains_key(&(addr, rid)),
            };
            if live {
                return self.run_txn(next.job, next.requester, next.txn, next.cap);
            }
        }
        self.txn_queue.remove(&key);
    }

    fn run_txn(&mut self, job: u64, requester: Requester, txn: Box<dyn Transaction>, cap: u32) {
        let key = txn.key();
        self.transactions.insert(
            job,
            TxnJob {
                requester,
                txn,
                lifetime_cap_ms: cap,
                before: Vec::new(),
                writes: Vec::new(),
                pending: 1,
                failed: None,
                undoing: false,
            },
        );
        let op = self.internal_op();
        self.txn_ops.insert(op, job);
        let timeout = self.cfg.op_timeout;
        self.start_get(op, key, None, false, timeout);
    }

    /// One read, write or undo of a transaction finished.
    pub(super) fn txn_step(&mut self, id: u64, result: OpResult) {
        let Some(mut job) = self.transactions.remove(&id) else {
            return;
        };
        job.pending = job.pending.saturating_sub(1);
        match result {
            OpResult::Get(Ok(mut values)) => {
                values.retain(|v| v.owner == *self.writer.owner());
                let limit = self.store.limits().max_value_bytes;
                match job.txn.plan(&values, Some(limit)) {
                    None => self.txn_answer(job),
                    Some(writes) => {
                        job.before = values;
                        job.writes = writes.clone();
                        self.txn_writes(id, job, writes);
                    }
                }
            }
            OpResult::Get(Err(e)) => self.txn_failed(job, e),
            OpResult::Put(r) => {
                if let Err(e) = r {
                    job.failed.get_or_insert(e);
                }
                if job.pending > 0 {
                    self.transactions.insert(id, job);
                } else if let Some(e) = job.failed.take() {
                    if job.undoing {
                        self.txn_failed(job, e);
                    } else {
                        // All or nothing: put back what the slots held before.
                        let undo = undo_writes(&job.before, &job.writes);
                        job.undoing = true;
                        job.failed = Some(e);
                        self.txn_writes(id, job, undo);
                    }
                } else if job.undoing {
                    let e = job.failed.take().unwrap_or(Error::Timeout);
                    self.txn_failed(job, e);
                } else {
                    self.txn_answer(job);
                }
            }
            // Cannot happen (a transaction's steps are reads and writes);
            // should it, the job still ends and frees its key.
            other => self.txn_failed(job, Error::Io(format!("unexpected step {other:?}"))),
        }
    }

    /// Issues a job's slot writes in parallel.
    fn txn_writes(&mut self, id: u64, mut job: TxnJob, writes: Vec<SlotWrite>) {
        if writes.is_empty() {
            return self.txn_answer(job);
        }
        let key = job.txn.key();
        let job_cap = job.lifetime_cap_ms;
        job.pending = writes.len();
        self.transactions.insert(id, job);
        let timeout = self.cfg.op_timeout;
        let tombstone_ms = self
            .cfg
            .tombstone_lifetime
            .as_millis()
            .min(u32::MAX as u128) as u32;
        for w in writes {
            let op = self.internal_op();
            self.txn_ops.insert(op, id);
            let version = self.next_version();
            let entry = match w.value {
                Some((data, lifetime)) => {
                    let ms = lifetime.as_millis().min(u32::MAX as u128) as u32;
                    let ms = ms.min(job_cap);
                    WireEntry::unsigned(w.label, version, ms, false, data)
                }
                None => WireEntry::unsigned(w.label, version, tombstone_ms, true, Vec::new()),
            };
            self.start_put(op, key, entry, timeout);
        }
    }

    /// The transaction refused or succeeded: its own reply goes back.
    fn txn_answer(&mut self, job: TxnJob) {
        let key = job.txn.key();
        match job.requester {
            Requester::Client(addr, rid) => {
                self.client_reqs.remove(&(addr, rid));
                let budget = self.page_budget().saturating_sub(8);
                let body = Body::ClientTransactionReply {
                    status: Status::Ok,
                    outcome: job.txn.reply(budget),
                };
                self.reply_client(addr, rid, body);
            }
            Requester::Local(op) => self.complete(op, OpResult::Transaction(Ok(()))),
        }
        self.txn_next(key);
    }

    /// The overlay failed the transaction: the status says why.
    fn txn_failed(&mut self, job: TxnJob, e: Error) {
        let key = job.txn.key();
        match job.requester {
            Requester::Client(addr, rid) => {
                self.client_reqs.remove(&(addr, rid));
                let body = Body::ClientTransactionReply {
                    status: status_of(&e),
                    outcome: Vec::new(),
                };
                self.reply_client(addr, rid, body);
            }
            Requester::Local(op) => self.complete(op, OpResult::Transaction(Err(e))),
        }
        self.txn_next(key);
    }
}
