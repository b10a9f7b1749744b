//! The service of client handles: their requests run as operations of this
//! node and their completions become replies.

use super::primary::page;
use super::{Engine, OpResult};
use crate::id::Id;
use crate::owner;
use crate::types::{OpId, Value};
use crate::wire;
use crate::wire::{status_of, Body, InfoKind, NodeInfo, Status, WireEntry, FLAG_CLIENT};
use std::net::SocketAddr;

/// Operation ids of requests run for client handles (never chosen by the API caller).
pub(super) const CLIENT_OP_BASE: u64 = 1 << 63;

/// Stored keys the ring report names (the rest are counted).
const INFO_KEYS_LISTED: usize = 50;

/// Client requests served at once; more are refused with `Full`.
pub(super) const MAX_CLIENT_OPS: usize = 4096;

/// A client's answer to its operation's result; `traced`: the operation
/// was a `ClientTrace`, answered with the route.
pub(super) fn client_reply(result: OpResult, traced: bool) -> Body {
    match result {
        OpResult::Lookup(Ok(o)) if traced => Body::ClientTraceReply {
            status: Status::Ok,
            node: Some(o.node),
            path: o
                .path
                .iter()
                .take(wire::MAX_NODE_LIST)
                .map(|h| (h.node, h.rtt.as_micros().min(u32::MAX as u128) as u32))
                .collect(),
        },
        OpResult::Lookup(Err(e)) if traced => Body::ClientTraceReply {
            status: status_of(&e),
            node: None,
            path: Vec::new(),
        },
        OpResult::Ping(Ok(rtt)) => Body::ClientPingReply {
            status: Status::Ok,
            rtt_us: rtt.as_micros().min(u32::MAX as u128) as u32,
        },
        OpResult::Ping(Err(e)) => Body::ClientPingReply {
            status: status_of(&e),
            rtt_us: 0,
        },
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
        OpResult::Join(_) | OpResult::Leave(_) | OpResult::Transaction(_) => Body::Error {
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
            self.reply_client(
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
        if !self.end_op(op) {
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
        self.reply_client(
            addr,
            rid,
            Body::FetchReply {
                status: Status::Ok,
                entries,
                next,
            },
        );
    }

    /// A text report for `chordsip ring` / `chordsip stats` (one `name value`
    /// line each) or the OpenMetrics text (`--metrics`).
    pub fn info_text(&self, kind: InfoKind) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        match kind {
            InfoKind::Ring => {
                let fmt_node = |n: &NodeInfo| format!("{} {}", n.id.to_hex(), n.addr);
                let _ = writeln!(out, "node {}", fmt_node(&self.me));
                let _ = writeln!(out, "phase {:?}", self.phase);
                let _ = writeln!(out, "writer {}", owner::hex(self.writer.owner()));
                for t in &self.cfg.limits.main_writers {
                    let _ = writeln!(out, "trusted {}", owner::hex(t));
                }
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
                for k in self.store.all_keys().take(INFO_KEYS_LISTED) {
                    let _ = writeln!(out, "key {}", k.to_hex());
                }
            }
            InfoKind::Stats => {
                for (name, value) in self.stats().report() {
                    let _ = writeln!(out, "{name} {value}");
                }
            }
            InfoKind::Metrics => out = crate::metrics::render(&self.me, &self.stats()),
        }
        out
    }

    /// Whether a client request may be served: from the UNIX socket (its
    /// file permissions admit the caller), or over UDP with a tag made with
    /// this node's client key. Members get no more than strangers: their
    /// overlay key is not a client credential.
    pub(super) fn client_allowed(&self, from: SocketAddr, flags: u8, tagged: bool) -> bool {
        flags & FLAG_CLIENT != 0 && (wire::is_unix_alias(&from) || tagged)
    }

    /// Tells a client it lacks the credential, in a datagram no larger than
    /// its request (so a spoofed request cannot be turned into a flood).
    pub(super) fn refuse_client(&mut self, from: SocketAddr, rid: u64) {
        self.stats.dropped_unauthenticated += 1;
        let status = Status::Unauthorized;
        let msg = self.response(from, rid, FLAG_CLIENT, Body::Error { status });
        self.send_reply(from, &msg, true);
    }

    /// A client's ping of a peer: one Ping from this node, no larger than
    /// the client's own request, and only for a client with its credential.
    pub(super) fn serve_ping(&mut self, from: SocketAddr, rid: u64, addr: SocketAddr) {
        // Only a peer's unicast address: nothing is sent to a group, a
        // broadcast, an unspecified address, port 0 or a UNIX alias.
        let ip = addr.ip();
        let broadcast = matches!(ip, std::net::IpAddr::V4(v4) if v4.is_broadcast());
        if addr.port() == 0
            || ip.is_unspecified()
            || ip.is_multicast()
            || broadcast
            || wire::is_unix_alias(&addr)
        {
            let status = Status::BadRequest;
            self.reply_client(from, rid, Body::Error { status });
            return;
        }
        if let Some(op) = self.client_op(from, rid) {
            let timeout = self.cfg.op_timeout;
            self.ping(self.now, op, addr, timeout);
        }
    }

    pub(super) fn serve_trace(&mut self, from: SocketAddr, rid: u64, key: Id) {
        if let Some(op) = self.client_op(from, rid) {
            let timeout = self.cfg.op_timeout;
            self.trace(self.now, op, key, timeout);
        }
    }

    pub(super) fn serve_lookup(&mut self, from: SocketAddr, rid: u64, key: Id) {
        if let Some(op) = self.client_op(from, rid) {
            let timeout = self.cfg.op_timeout;
            self.lookup(self.now, op, key, timeout);
        }
    }

    /// A client's write: the node puts the label in its own slot and signs
    /// it, with a version of its own clock and a lifetime of at most
    /// `max_client_lifetime`, never in a slot that only transactions write.
    pub(super) fn serve_put(&mut self, from: SocketAddr, rid: u64, key: Id, mut entry: WireEntry) {
        let reserved = self.cfg.transactions.as_ref();
        if reserved.is_some_and(|d| (d.reserves)(&entry.writer)) {
            self.stats.dropped_unauthenticated += 1;
            let status = Status::Unauthorized;
            self.reply_client(from, rid, Body::Error { status });
            return;
        }
        if let Some(op) = self.client_op(from, rid) {
            entry.version = self.next_version();
            entry.lifetime_ms = entry.lifetime_ms.min(self.client_lifetime_cap_ms());
            let timeout = self.cfg.op_timeout;
            self.start_put(op, key, entry, timeout);
        }
    }

    /// A client's read of one page: the client pages through a key itself.
    pub(super) fn serve_get(
        &mut self,
        from: SocketAddr,
        rid: u64,
        key: Id,
        after: Option<Vec<u8>>,
    ) {
        if let Some(op) = self.client_op(from, rid) {
            let timeout = self.cfg.op_timeout;
            self.start_get(op, key, after, true, timeout);
        }
    }

    /// The longest lifetime a client's write gets (`max_client_lifetime`).
    pub(super) fn client_lifetime_cap_ms(&self) -> u32 {
        self.cfg
            .max_client_lifetime
            .as_millis()
            .min(u32::MAX as u128) as u32
    }

    pub(super) fn serve_info(&mut self, from: SocketAddr, rid: u64, what: u8) {
        let kind = InfoKind::from_code(what);
        let mut text = self.info_text(kind).into_bytes();
        let room = self
            .cfg
            .max_datagram
            .saturating_sub(wire::HEADER_LEN + wire::TAG_LEN + 4);
        if kind == InfoKind::Metrics && text.len() > room {
            // Cut OpenMetrics text is no longer valid: say so instead.
            let status = Status::TooLarge;
            self.reply_client(from, rid, Body::Error { status });
            return;
        }
        text.truncate(room);
        self.reply_client(from, rid, Body::ClientInfoReply { text });
    }
}
