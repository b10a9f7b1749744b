//! Diagnostics of a `chordsip_node`: round trips, counters, the ring report
//! and the neighbour lists.

use super::chordsip_result::*;
use super::lists::{chordsip_peer, chordsip_peers};
use super::node::{chordsip_node, node_ref};
use super::{chordsip_result, code, guard, str_arg, write_opt, write_out, write_str};
use std::ffi::c_char;
use std::net::SocketAddr;

/// Which neighbours `chordsip_node_neighbours` lists.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum chordsip_neighbours {
    CHORDSIP_PREDECESSORS = 0,
    CHORDSIP_SUCCESSORS = 1,
    /// Distinct finger-table nodes, nearest finger first.
    CHORDSIP_FINGERS = 2,
    /// One-hop overlays: every member of the table (this node included), in
    /// id order; empty in multi-hop mode.
    CHORDSIP_MEMBERS = 3,
}

/// A node's counters (`chordsip_node_stats`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct chordsip_stats {
    /// 1 while the node is a member of a ring.
    pub joined: u32,
    pub msgs_sent: u64,
    pub msgs_received: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Datagrams that failed to decode.
    pub dropped_malformed: u64,
    /// Datagrams with a missing or wrong tag, or of another overlay.
    pub dropped_unauthenticated: u64,
    /// Responses matching no outstanding request.
    pub dropped_unmatched: u64,
    pub retransmits: u64,
    pub send_errors: u64,
    pub rpc_timeouts: u64,
    pub lookups_ok: u64,
    pub lookups_failed: u64,
    pub puts_ok: u64,
    pub puts_failed: u64,
    pub gets_ok: u64,
    pub gets_failed: u64,
    /// Mean lookup path length in hops.
    pub hops_mean: f64,
    pub hops_max: u64,
    pub lookup_p50_us: u64,
    pub lookup_p99_us: u64,
    pub stored_keys: u64,
    pub stored_entries: u64,
    /// Entries of keys this node is responsible for (the rest are replicas).
    pub primary_entries: u64,
    pub stored_value_bytes: u64,
    /// Peers this node found dead.
    pub nodes_failed_detected: u64,
    /// Events dropped because the host did not drain the event fd (fd mode).
    pub events_dropped: u64,
    /// Requests dropped over the per-source rate limit (`max_requests_per_source`).
    pub dropped_rate_limited: u64,
    /// Lookup answers that named a node not responsible for the key.
    pub wrong_answers: u64,
    /// Entries refused or dropped because their owner's signature did not match.
    pub forged_entries: u64,
    /// Membership and data messages refused before any other work: a
    /// Leaving, Replicate or handoff not from a current neighbour at its known
    /// address, outside the clock window, or for keys this node does not hold.
    pub refused_membership: u64,
    /// Requests answered with a Retry (from an address not yet proven, when
    /// the answer would have been larger than the request).
    pub retries_sent: u64,
}

/// Measures the round trip to the peer at `addr` (`ip:port`) in microseconds.
///
/// # Safety
/// `node` NULL or live; `addr` NULL or NUL-terminated; `rtt_us` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_ping(
    node: *mut chordsip_node,
    addr: *const c_char,
    rtt_us: *mut u64,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { node_ref(node) }?.started()?;
        // SAFETY: NULL or NUL-terminated by the caller's contract.
        let addr: SocketAddr = unsafe { str_arg(addr) }?
            .parse()
            .map_err(|_| CHORDSIP_ERR_INVALID_ARGUMENT)?;
        let rtt = code(n.ping(addr))?;
        // SAFETY: NULL or writable by the caller's contract.
        unsafe { write_opt(rtt_us, rtt.as_micros() as u64) };
        Ok(())
    })
}

/// Copies the node's counters into `out`.
///
/// # Safety
/// `node` NULL or live; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_stats(
    node: *mut chordsip_node,
    out: *mut chordsip_stats,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let nref = unsafe { node_ref(node) }?;
        let n = nref.started()?;
        if out.is_null() {
            return Err(CHORDSIP_ERR_NULL_POINTER);
        }
        let s = code(n.stats())?;
        let st = chordsip_stats {
            joined: s.joined as u32,
            msgs_sent: s.msgs_sent,
            msgs_received: s.msgs_received,
            bytes_sent: s.bytes_sent,
            bytes_received: s.bytes_received,
            dropped_malformed: s.dropped_malformed,
            dropped_unauthenticated: s.dropped_unauthenticated,
            dropped_unmatched: s.dropped_unmatched,
            retransmits: s.retransmits,
            send_errors: s.send_errors,
            rpc_timeouts: s.rpc_timeouts,
            lookups_ok: s.lookups_ok,
            lookups_failed: s.lookups_failed,
            puts_ok: s.puts_ok,
            puts_failed: s.puts_failed,
            gets_ok: s.gets_ok,
            gets_failed: s.gets_failed,
            hops_mean: s.hops.mean(),
            hops_max: s.hops.max(),
            lookup_p50_us: s.lookup_latency_us.quantile(0.5),
            lookup_p99_us: s.lookup_latency_us.quantile(0.99),
            stored_keys: s.stored_keys,
            stored_entries: s.stored_entries,
            primary_entries: s.primary_entries,
            stored_value_bytes: s.stored_value_bytes,
            nodes_failed_detected: s.nodes_failed_detected,
            events_dropped: nref
                .dispatcher
                .dropped_events
                .load(std::sync::atomic::Ordering::Relaxed),
            dropped_rate_limited: s.dropped_rate_limited,
            wrong_answers: s.wrong_answers,
            forged_entries: s.forged_entries,
            refused_membership: s.refused_membership,
            retries_sent: s.retries_sent,
        };
        // SAFETY: out is non-NULL (checked) and writable.
        unsafe { write_out(out, st) }
    })
}

/// What `chordsip_node_info` and `chordsip_client_info` report.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum chordsip_info {
    /// The node, its neighbours, fingers and some stored keys.
    CHORDSIP_INFO_RING = 0,
    /// The statistics as `name value` lines.
    CHORDSIP_INFO_STATS = 1,
    /// The counters as OpenMetrics text ending in `# EOF`, the text
    /// `chordsip_node_metrics` gives.
    CHORDSIP_INFO_METRICS = 2,
}

/// Writes a report into `buf`: `what` is a `chordsip_info` (0 the ring
/// neighbours and fingers, 1 the statistics as `name value` lines, 2 the
/// OpenMetrics text). If `buf`
/// is too small the call fails with `CHORDSIP_ERR_BUFFER_TOO_SMALL`; `needed`
/// (may be NULL) always receives the size needed, NUL included.
///
/// # Safety
/// `node` NULL or live; `buf` NULL or writable for `len` bytes; `needed` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_info(
    node: *mut chordsip_node,
    what: u32,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { node_ref(node) }?.started()?;
        if what > chordsip_info::CHORDSIP_INFO_METRICS as u32 {
            return Err(CHORDSIP_ERR_INVALID_ARGUMENT);
        }
        let text = code(n.info_text(what as u8))?;
        // SAFETY: buf/needed NULL or writable by the caller's contract.
        unsafe { write_str(&text, buf, len, Some(needed)) }
    })
}

/// Writes the node's counters as OpenMetrics text (the Prometheus exposition
/// format, ending in `# EOF`) into `buf`, sized like `chordsip_node_info`:
/// `CHORDSIP_ERR_BUFFER_TOO_SMALL` when it does not fit, `needed` (may be
/// NULL) always gets the size, NUL included. Serve it with the content type
/// `application/openmetrics-text; version=1.0.0; charset=utf-8`. The names
/// and labels are listed in docs/METRICS.md.
///
/// # Safety
/// `node` NULL or live; `buf` NULL or writable for `len` bytes; `needed` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_metrics(
    node: *mut chordsip_node,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> chordsip_result {
    // SAFETY: the caller's contract is chordsip_node_info's.
    unsafe {
        chordsip_node_info(
            node,
            chordsip_info::CHORDSIP_INFO_METRICS as u32,
            buf,
            len,
            needed,
        )
    }
}

/// A node's view of the ring at one moment (`chordsip_node_ring`): every
/// list is read in the same step of the node, so they agree with each
/// other. Free with `chordsip_ring_free`; the lists belong to the snapshot.
#[repr(C)]
pub struct chordsip_ring {
    /// This node.
    pub node: chordsip_peer,
    /// 1 while the node is a member of a ring.
    pub joined: u32,
    pub stored_keys: u64,
    pub stored_entries: u64,
    /// Nearest first.
    pub predecessors: *const chordsip_peers,
    /// Nearest first.
    pub successors: *const chordsip_peers,
    /// The distinct finger-table nodes, nearest finger first.
    pub fingers: *const chordsip_peers,
    /// One-hop overlays: every member, this node included, in id order;
    /// empty in multi-hop mode.
    pub members: *const chordsip_peers,
}

/// Takes a snapshot of the node's ring view (`chordsip_ring`) into a new
/// object the caller frees with `chordsip_ring_free`: one call instead of
/// `chordsip_node_neighbours` four times, and its lists agree.
///
/// # Safety
/// `node` NULL or live; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_ring(
    node: *mut chordsip_node,
    out: *mut *mut chordsip_ring,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { node_ref(node) }?.started()?;
        if out.is_null() {
            return Err(CHORDSIP_ERR_NULL_POINTER);
        }
        let r = code(n.ring())?;
        let list = |nodes: &mut dyn Iterator<Item = &crate::wire::NodeInfo>| {
            let items = nodes.map(Into::into).collect();
            Box::into_raw(Box::new(chordsip_peers { items })) as *const chordsip_peers
        };
        let ring = chordsip_ring {
            node: (&r.me).into(),
            joined: r.joined as u32,
            stored_keys: r.stored_keys as u64,
            stored_entries: r.stored_entries as u64,
            predecessors: list(&mut r.predecessors.iter()),
            successors: list(&mut r.successors.iter()),
            fingers: list(&mut r.fingers.iter().map(|(_, f)| f)),
            members: list(&mut r.members.iter()),
        };
        let ring = Box::into_raw(Box::new(ring));
        // SAFETY: out is non-NULL (checked) and writable.
        unsafe { write_out(out, ring) }
    })
}

/// Frees a snapshot of `chordsip_node_ring` and its lists; NULL is a no-op.
///
/// # Safety
/// `ring` NULL or from `chordsip_node_ring`, not freed before.
#[no_mangle]
pub unsafe extern "C" fn chordsip_ring_free(ring: *mut chordsip_ring) {
    super::guard_void(|| {
        if ring.is_null() {
            return;
        }
        // SAFETY: created by Box::into_raw in chordsip_node_ring, freed once.
        let r = unsafe { Box::from_raw(ring) };
        for list in [r.predecessors, r.successors, r.fingers, r.members] {
            // SAFETY: each list was made by Box::into_raw above and belongs to the snapshot.
            unsafe { super::lists::chordsip_peers_free(list as *mut chordsip_peers) };
        }
    })
}

/// Lists the node's predecessors, successors, fingers or (one-hop) members (`which` is a
/// `chordsip_neighbours` value) in a new list the caller frees with
/// `chordsip_peers_free`.
///
/// # Safety
/// `node` NULL or live; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_neighbours(
    node: *mut chordsip_node,
    which: u32,
    out: *mut *mut chordsip_peers,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { node_ref(node) }?.started()?;
        if out.is_null() {
            return Err(CHORDSIP_ERR_NULL_POINTER);
        }
        if which > 3 {
            return Err(CHORDSIP_ERR_INVALID_ARGUMENT);
        }
        let items = if which == 3 {
            let members = code(n.members())?;
            members.iter().map(|m| (&m.node).into()).collect()
        } else {
            let ring = code(n.ring())?;
            match which {
                0 => ring.predecessors.iter().map(Into::into).collect(),
                1 => ring.successors.iter().map(Into::into).collect(),
                _ => ring.fingers.iter().map(|(_, n)| n.into()).collect(),
            }
        };
        let list = Box::into_raw(Box::new(chordsip_peers { items }));
        // SAFETY: out is non-NULL (checked) and writable.
        unsafe { write_out(out, list) }
    })
}
