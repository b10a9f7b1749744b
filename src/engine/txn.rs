//! A REGISTER run for a client handle: read, plan, parallel writes, undo.

use super::serve::MAX_CLIENT_OPS;
use super::{Engine, OpResult};
use crate::error::Error;
use crate::id::Id;
use crate::sip::binding::{
    plan, Change, Plan, RegisterError, RegisterRequest, RegistrarLimits, StoredBinding,
};
use crate::sip::remote::Outcome;
use crate::sip::{registrar, remote};
use crate::wire::{status_of, Body, Status, WireEntry};
use std::net::SocketAddr;

/// One binding slot's write in a REGISTER job: (writer, Some((data,
/// lifetime in s))) stores, (writer, None) removes.
pub(super) type SlotWrite = (Vec<u8>, Option<(Vec<u8>, u32)>);

/// A REGISTER a client handle asked this node to run (ClientRegister): the
/// read of the AOR, then its writes in parallel, then (if one failed) the undo.
#[derive(Debug)]
pub(super) struct RegisterJob {
    client: (SocketAddr, u64),
    key: Id,
    req: RegisterRequest,
    current: Vec<StoredBinding>,
    plan: Plan,
    pending: usize,
    failed: Option<Error>,
    undoing: bool,
}

impl Engine {
    /// Starts a REGISTER for a client handle: read the AOR's bindings first.
    pub(super) fn client_register(&mut self, from: SocketAddr, rid: u64, request: &[u8]) {
        if self.client_reqs.contains_key(&(from, rid)) {
            return; // a retransmission of one still running
        }
        if self.client_reqs.len() >= MAX_CLIENT_OPS {
            self.reply(
                from,
                rid,
                Body::Error {
                    status: Status::Full,
                },
            );
            return;
        }
        let Some(req) = remote::decode_request(request) else {
            let status = Status::BadRequest;
            self.reply(from, rid, Body::Error { status });
            return;
        };
        let key = match registrar::aor_key(&req.to) {
            Ok((_, key)) => key,
            Err(e) => return self.register_answer((from, rid), Outcome::Refused(e)),
        };
        let job = self.internal_op();
        self.client_reqs.insert((from, rid), job);
        self.registers.insert(
            job,
            RegisterJob {
                client: (from, rid),
                key,
                req,
                current: Vec::new(),
                plan: Plan::default(),
                pending: 1,
                failed: None,
                undoing: false,
            },
        );
        let op = self.internal_op();
        self.register_ops.insert(op, job);
        let timeout = self.cfg.op_timeout;
        self.start_get(op, key, None, false, timeout);
    }

    /// One read, write or undo of a REGISTER job finished.
    pub(super) fn register_step(&mut self, id: u64, result: OpResult) {
        let Some(mut job) = self.registers.remove(&id) else {
            return;
        };
        job.pending = job.pending.saturating_sub(1);
        match result {
            OpResult::Get(Ok(values)) => {
                job.current = registrar::stored_by(values, self.writer.owner());
                match plan(&job.req, &job.current, &RegistrarLimits::default()) {
                    Err(e) => self.register_answer(job.client, Outcome::Refused(e)),
                    Ok(p) => {
                        let limit = self.store.limits().max_value_bytes;
                        let too_large = p.changes.iter().any(|c| {
                            matches!(c, Change::Put { binding, .. } if binding.encode().len() > limit)
                        });
                        if too_large {
                            let e = RegisterError::Bad(format!(
                                "a binding is larger than the overlay's {limit}-byte values"
                            ));
                            return self.register_answer(job.client, Outcome::Refused(e));
                        }
                        job.plan = p;
                        let writes: Vec<SlotWrite> = job
                            .plan
                            .changes
                            .iter()
                            .map(|c| match c {
                                Change::Put {
                                    writer,
                                    binding,
                                    expires,
                                } => (writer.clone(), Some((binding.encode(), *expires))),
                                Change::Remove { writer } => (writer.clone(), None),
                            })
                            .collect();
                        self.register_writes(id, job, writes);
                    }
                }
            }
            OpResult::Get(Err(e)) => self.register_failed(job.client, e),
            OpResult::Put(r) => {
                if let Err(e) = r {
                    job.failed.get_or_insert(e);
                }
                if job.pending > 0 {
                    self.registers.insert(id, job);
                } else if let Some(e) = job.failed.take() {
                    if job.undoing {
                        self.register_failed(job.client, e);
                    } else {
                        // All or nothing: put back what the AOR held before.
                        let undo: Vec<SlotWrite> = job
                            .plan
                            .changes
                            .iter()
                            .map(|c| {
                                let writer = match c {
                                    Change::Put { writer, .. } | Change::Remove { writer } => {
                                        writer
                                    }
                                };
                                let old = job.current.iter().find(|s| s.writer == *writer);
                                let value = old
                                    .filter(|s| s.expires_in_s > 0)
                                    .map(|s| (s.binding.encode(), s.expires_in_s));
                                (writer.clone(), value)
                            })
                            .collect();
                        job.undoing = true;
                        job.failed = Some(e);
                        self.register_writes(id, job, undo);
                    }
                } else if job.undoing {
                    let e = job.failed.take().unwrap_or(Error::Timeout);
                    self.register_failed(job.client, e);
                } else {
                    let plan = std::mem::take(&mut job.plan);
                    self.register_answer(job.client, Outcome::Done { plan, listed: true });
                }
            }
            _ => {}
        }
    }

    /// Issues a job's writes (a value and lifetime, or a removal) in parallel.
    pub(super) fn register_writes(
        &mut self,
        id: u64,
        mut job: RegisterJob,
        writes: Vec<SlotWrite>,
    ) {
        if writes.is_empty() {
            let plan = std::mem::take(&mut job.plan);
            return self.register_answer(job.client, Outcome::Done { plan, listed: true });
        }
        let key = job.key;
        job.pending = writes.len();
        self.registers.insert(id, job);
        let timeout = self.cfg.op_timeout;
        let tombstone_ms = self
            .cfg
            .tombstone_lifetime
            .as_millis()
            .min(u32::MAX as u128) as u32;
        for (writer, value) in writes {
            let op = self.internal_op();
            self.register_ops.insert(op, id);
            let version = self.next_version();
            let entry = match value {
                Some((data, expires)) => {
                    WireEntry::unsigned(writer, version, expires.saturating_mul(1000), false, data)
                }
                None => WireEntry::unsigned(writer, version, tombstone_ms, true, Vec::new()),
            };
            self.start_put(op, key, entry, timeout);
        }
    }

    pub(super) fn register_answer(&mut self, client: (SocketAddr, u64), outcome: Outcome) {
        self.client_reqs.remove(&client);
        let budget = self.page_budget().saturating_sub(8);
        let outcome = remote::encode_outcome(&outcome, budget);
        let body = Body::ClientRegisterReply {
            status: Status::Ok,
            outcome,
        };
        self.reply(client.0, client.1, body);
    }

    pub(super) fn register_failed(&mut self, client: (SocketAddr, u64), e: Error) {
        self.client_reqs.remove(&client);
        let body = Body::ClientRegisterReply {
            status: status_of(&e),
            outcome: Vec::new(),
        };
        self.reply(client.0, client.1, body);
    }
}
