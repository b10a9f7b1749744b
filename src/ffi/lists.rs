//! Result types handed to C: fixed-size peer records and opaque lists with
//! accessor functions, so that future fields never break the ABI of a list.

use super::chordsip_result::*;
use super::{chordsip_result, guard, guard_void, write_out};
use crate::engine::{LookupOutcome, Value};
use crate::wire::NodeInfo;
use std::ffi::c_char;

/// A node of the overlay: its ring id and address, both NUL-terminated.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct chordsip_peer {
    /// 40 hex digits.
    pub id: [c_char; 41],
    /// `ip:port` or `[ipv6]:port`.
    pub addr: [c_char; 64],
}

pub(crate) fn fill<const N: usize>(s: &str) -> [c_char; N] {
    let mut out = [0 as c_char; N];
    for (o, b) in out.iter_mut().zip(s.bytes().take(N - 1)) {
        *o = b as c_char;
    }
    out
}

impl From<&NodeInfo> for chordsip_peer {
    fn from(n: &NodeInfo) -> Self {
        chordsip_peer {
            id: fill(&n.id.to_hex()),
            addr: fill(&n.addr.to_string()),
        }
    }
}

impl chordsip_peer {
    pub(crate) fn empty() -> Self {
        chordsip_peer {
            id: [0; 41],
            addr: [0; 64],
        }
    }
}

/// The answer of the bare Chord lookup.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct chordsip_lookup_info {
    /// The node responsible for the key.
    pub node: chordsip_peer,
    /// Remote nodes asked on the way (0: the asking node's own links answered,
    /// i.e. it or its immediate successor is responsible).
    pub hops: u32,
    /// Time the lookup took, in microseconds.
    pub latency_us: u64,
}

impl From<&LookupOutcome> for chordsip_lookup_info {
    fn from(o: &LookupOutcome) -> Self {
        chordsip_lookup_info {
            node: (&o.node).into(),
            hops: o.hops,
            latency_us: o.latency.as_micros() as u64,
        }
    }
}

/// A list of peers (ring neighbours). Free with `chordsip_peers_free`.
pub struct chordsip_peers {
    pub(crate) items: Vec<chordsip_peer>,
}

/// Number of peers in the list; 0 for NULL.
///
/// # Safety
/// `peers` is NULL or a live list.
#[no_mangle]
pub unsafe extern "C" fn chordsip_peers_len(peers: *const chordsip_peers) -> usize {
    // SAFETY: NULL or a live list by the caller's contract.
    std::panic::catch_unwind(|| unsafe { peers.as_ref() }.map_or(0, |p| p.items.len())).unwrap_or(0)
}

/// Copies peer `index` into `out`.
///
/// # Safety
/// `peers` is NULL or a live list; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chordsip_peers_get(
    peers: *const chordsip_peers,
    index: usize,
    out: *mut chordsip_peer,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live list by the caller's contract.
        let peers = unsafe { peers.as_ref() }.ok_or(CHORDSIP_ERR_NULL_POINTER)?;
        let p = *peers.items.get(index).ok_or(CHORDSIP_ERR_OUT_OF_RANGE)?;
        // SAFETY: NULL or writable by the caller's contract.
        unsafe { write_out(out, p) }
    })
}

/// Frees a peer list. NULL is a no-op.
///
/// # Safety
/// `peers` is NULL or a list from this library not yet freed.
#[no_mangle]
pub unsafe extern "C" fn chordsip_peers_free(peers: *mut chordsip_peers) {
    guard_void(|| {
        if !peers.is_null() {
            // SAFETY: created by Box::into_raw in this library, freed once.
            drop(unsafe { Box::from_raw(peers) });
        }
    })
}

/// One stored value, borrowed from its `chordsip_values` list: the pointers
/// stay valid until the list is freed.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct chordsip_value {
    /// The writer (device/instance) that owns this entry, NUL-terminated.
    pub writer: *const c_char,
    pub writer_len: usize,
    /// The value bytes (not NUL-terminated; may be empty).
    pub data: *const u8,
    pub data_len: usize,
    /// Writer-chosen version: a larger one replaces a smaller one.
    pub version: u64,
    /// Remaining lifetime when read, in milliseconds.
    pub expires_in_ms: u64,
    /// Public key of the writer that signed the value: only the holder of
    /// its secret (`writer_key`) can change or remove it.
    pub owner: [u8; super::CHORDSIP_OWNER_LEN],
}

pub(crate) struct OwnedValue {
    /// Writer bytes followed by a NUL.
    writer: Vec<u8>,
    data: Vec<u8>,
    version: u64,
    expires_in_ms: u64,
    owner: crate::owner::Owner,
}

/// The values stored under a key, one per writer. Free with `chordsip_values_free`.
pub struct chordsip_values {
    items: Vec<OwnedValue>,
}

impl chordsip_values {
    pub(crate) fn new(values: Vec<Value>) -> chordsip_values {
        chordsip_values {
            items: values
                .into_iter()
                .map(|v| {
                    let mut writer = v.writer;
                    writer.push(0);
                    OwnedValue {
                        writer,
                        data: v.data,
                        version: v.version,
                        expires_in_ms: v.lifetime.as_millis() as u64,
                        owner: v.owner,
                    }
                })
                .collect(),
        }
    }
}

/// Number of values in the list; 0 for NULL.
///
/// # Safety
/// `values` is NULL or a live list.
#[no_mangle]
pub unsafe extern "C" fn chordsip_values_len(values: *const chordsip_values) -> usize {
    // SAFETY: NULL or a live list by the caller's contract.
    std::panic::catch_unwind(|| unsafe { values.as_ref() }.map_or(0, |v| v.items.len()))
        .unwrap_or(0)
}

/// Describes value `index` in `out`; its pointers borrow from the list.
///
/// # Safety
/// `values` is NULL or a live list; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chordsip_values_get(
    values: *const chordsip_values,
    index: usize,
    out: *mut chordsip_value,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live list by the caller's contract.
        let values = unsafe { values.as_ref() }.ok_or(CHORDSIP_ERR_NULL_POINTER)?;
        let v = values.items.get(index).ok_or(CHORDSIP_ERR_OUT_OF_RANGE)?;
        let view = chordsip_value {
            writer: v.writer.as_ptr().cast(),
            writer_len: v.writer.len() - 1,
            data: v.data.as_ptr(),
            data_len: v.data.len(),
            version: v.version,
            expires_in_ms: v.expires_in_ms,
            owner: v.owner,
        };
        // SAFETY: NULL or writable by the caller's contract.
        unsafe { write_out(out, view) }
    })
}

/// Frees a value list. NULL is a no-op.
///
/// # Safety
/// `values` is NULL or a list from this library not yet freed (never one
/// lent to a callback).
#[no_mangle]
pub unsafe extern "C" fn chordsip_values_free(values: *mut chordsip_values) {
    guard_void(|| {
        if !values.is_null() {
            // SAFETY: created by Box::into_raw in this library, freed once.
            drop(unsafe { Box::from_raw(values) });
        }
    })
}
