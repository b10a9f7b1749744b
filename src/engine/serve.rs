//! The service of client handles: their requests run as operations of this
//! node and their completions become replies.

use super::primary::page;
use super::{Engine, OpResult};
use crate::id::Id;
use crate::owner;
use crate::types::{OpId, Value};
use crate::wire::{status_of, Body, NodeInfo, Status, WireEntry};
use std::net::SocketAddr;

/// Operation ids of requests run for client handles (never chosen by the API caller).
pub(super) const CLIENT_OP_BASE: u64 = 1 << 63;

/// Client requests served at once; more are refused with `Full`.
pub(super) const MAX_CLIENT_OPS: usize = 4096;

pub(super) fn client_reply(result: OpResult) -> Body {
    match result {
        OpResult::Lookup(Ok(o)) => Body::ClientLookupReply {
            status: Status::Ok,
            node: Some(o.node),
            hops: o.hops.min(255) as u8,
        },
        OpResult::Lookup(Err(e)) => Body::ClientLookupReply {
            status: status_of(&e),
            node: None,
            hops: 0,
        },
        OpResult::Put(Ok(r)) => Body::StoreReply {
            status: Status::Ok,
            copies: r.copies,
        },
        OpResult::Put(Err(e)) => Body::StoreReply {
            status: status_of(&e),
            copies: 0,
        },
        OpResult::Get(Ok(values)) => Body::FetchReply {
            status: Status::Ok,
            entries: values.iter().map(Value::to_wire).collect(),
            next: None,
        },
        OpResult::Get(Err(e)) => Body::FetchReply {
            status: status_of(&e),
            entries: vec![],
            next: None,
        },
        OpResult::Join(_) | OpResult::Leave(_) | OpResult::Ping(_) => Body::Error {
            status: Status::BadRequest,
        },
    }
}

impl Engine {
    /// Registers a client request as an operation; None for a retransmission
    /// of one still running, or when too many are running.
    pub(super) fn client_op(&mut self, from: SocketAddr, rid: u64) -> Option<OpId> {
        if self.client_reqs.contains_key(&(from, rid)) {
            return None;
        }
        if self.client_ops.len() >= MAX_CLIENT_OPS {
            self.reply(
                from,
                rid,
                Body::Error {
                    status: Status::Full,
                },
            );
            return None;
        }
        self.next_client_op += 1;
        let op = CLIENT_OP_BASE | self.next_client_op;
        self.client_ops.insert(op, (from, rid));
        self.client_reqs.insert((from, rid), op);
        Some(op)
    }

    /// Answers a client's ClientGet with one page of live values.
    pub(super) fn complete_client_page(
        &mut self,
        op: OpId,
        entries: Vec<WireEntry>,
        next: Option<Vec<u8>>,
    ) {
        if self.ops.remove(&op).is_none() {
            return;
        }
        let Some((addr, rid)) = self.client_ops.remove(&op) else {
            return;
        };
        self.client_reqs.remove(&(addr, rid));
        let live = entries
            .into_iter()
            .filter(|e| !e.tombstone && e.lifetime_ms > 0)
            .collect();
        // Our datagrams may be smaller than the primary's: cut the page again.
        let (entries, cut) = page(live, None, self.page_budget());
        let next = cut.or(next);
        self.reply(
            addr,
            rid,
            Body::FetchReply {
                status: Status::Ok,
                entries,
                next,
            },
        );
    }

    /// A text report for `chordsip ring` / `chordsip stats`.
    pub fn info_text(&self, what: u8) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let fmt_node = |n: &NodeInfo| format!("{} {}", n.id.to_hex(), n.addr);
        if what == 0 {
            let _ = writeln!(out, "node {}", fmt_node(&self.me));
            let _ = writeln!(out, "phase {:?}", self.phase);
            let _ = writeln!(out, "writer {}", owner::hex(self.writer.owner()));
            for (i, p) in self.rt.predecessors().iter().enumerate() {
                let _ = writeln!(out, "predecessor[{i}] {}", fmt_node(p));
            }
            for (i, s) in self.rt.successors().iter().enumerate() {
                let _ = writeln!(out, "successor[{i}] {}", fmt_node(s));
            }
            for (i, f) in self.rt.distinct_fingers() {
                let _ = writeln!(out, "finger[{i}] {}", fmt_node(&f));
            }
            let _ = writeln!(out, "stored_keys {}", self.store.key_count());
            let _ = writeln!(out, "stored_entries {}", self.store.entry_count());
            let mut keys: Vec<&Id> = self.store.all_keys().collect();
            keys.truncate(50);
            for k in keys {
                let _ = writeln!(out, "key {}", k.to_hex());
            }
        } else {
            let s = self.stats();
            let _ = writeln!(
                out,
                "msgs_sent {}\nmsgs_received {}\nbytes_sent {}\nbytes_received {}",
                s.msgs_sent, s.msgs_received, s.bytes_sent, s.bytes_received
            );
            let _ = writeln!(
                out,
                "dropped_malformed {}\ndropped_unauthenticated {}\ndropped_unmatched {}\ndropped_rate_limited {}",
                s.dropped_malformed, s.dropped_unauthenticated, s.dropped_unmatched, s.dropped_rate_limited
            );
            let _ = writeln!(
                out,
                "wrong_answers {}\nforged_entries {}",
                s.wrong_answers, s.forged_entries
            );
            let _ = writeln!(
                out,
                "retransmits {}\nsend_errors {}\nrpc_timeouts {}\nnodes_failed_detected {}",
                s.retransmits, s.send_errors, s.rpc_timeouts, s.nodes_failed_detected
            );
            let _ = writeln!(out, "lookups_ok {}\nlookups_failed {}\nputs_ok {}\nputs_failed {}\ngets_ok {}\ngets_failed {}", s.lookups_ok, s.lookups_failed, s.puts_ok, s.puts_failed, s.gets_ok, s.gets_failed);
            let _ = writeln!(
                out,
                "hops_mean {:.3}\nhops_p99 {}",
                s.hops.mean(),
                s.hops.quantile(0.99)
            );
            let _ = writeln!(
                out,
                "lookup_latency_p50_us {}\nlookup_latency_p99_us {}",
                s.lookup_latency_us.quantile(0.5),
                s.lookup_latency_us.quantile(0.99)
            );
            let _ = writeln!(
                out,
                "stored_keys {}\nstored_entries {}\nprimary_entries {}\nstored_value_bytes {}",
                s.stored_keys, s.stored_entries, s.primary_entries, s.stored_value_bytes
            );
        }
        out
    }
}
