//! Abilities (logical overlays) in C: a node declares what it offers, anyone
//! finds peers by it. Before start, the config option `abilities` sets them.

use super::chordsip_result::*;
use super::client::client_ref;
use super::lists::chordsip_peer;
use super::node::node_ref;
use super::{chordsip_result, code, guard, guard_void, opt_str_arg, str_arg, write_out};
use crate::ability::{self, Peer};
use crate::wire::NodeInfo;
use std::ffi::{c_char, CString};

/// One peer found by ability. Its strings borrow from the list they came
/// from and stay valid until that list is freed.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct chordsip_ability_peer {
    /// The peer's id and overlay address.
    pub peer: chordsip_peer,
    /// The ability's name, NUL-terminated.
    pub name: *const c_char,
    /// How much the peer can take (0: not stated) and how much is in use.
    pub capacity: u32,
    pub load: u32,
    /// The other attributes as `name=value` pairs separated by `,`
    /// (e.g. `turn=10.0.0.5:3478`), NUL-terminated; "" when none.
    pub attrs: *const c_char,
    /// How long the announcement lives unless its peer refreshes it, in ms.
    pub expires_in_ms: u64,
}

struct OwnedPeer {
    peer: chordsip_peer,
    name: CString,
    attrs: CString,
    /// Each attribute's name and value, for `chordsip_ability_peers_attr`.
    pairs: Vec<(String, CString)>,
    capacity: u32,
    load: u32,
    expires_in_ms: u64,
}

/// Peers found by ability, least loaded first. Free with
/// `chordsip_ability_peers_free`.
pub struct chordsip_ability_peers {
    items: Vec<OwnedPeer>,
}

impl chordsip_ability_peers {
    fn new(peers: Vec<Peer>) -> chordsip_ability_peers {
        // Names and attributes are printable ASCII without NULs (crate `ability`).
        let cstring = |s: &str| CString::new(s).unwrap_or_default();
        let items = peers
            .into_iter()
            .map(|p| {
                let a = &p.ability;
                let attrs: Vec<String> = a.attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let mut pairs = vec![
                    ("capacity".to_string(), cstring(&a.capacity.to_string())),
                    ("load".to_string(), cstring(&a.load.to_string())),
                ];
                pairs.extend(a.attrs.iter().map(|(k, v)| (k.clone(), cstring(v))));
                OwnedPeer {
                    peer: chordsip_peer::from(&NodeInfo {
                        id: p.id,
                        addr: p.addr,
                    }),
                    name: cstring(&a.name),
                    attrs: cstring(&attrs.join(",")),
                    pairs,
                    capacity: a.capacity,
                    load: a.load,
                    expires_in_ms: p.lifetime.as_millis() as u64,
                }
            })
            .collect();
        chordsip_ability_peers { items }
    }
}

/// Replaces a started node's abilities with `abilities`, in the form of the
/// `abilities` option: `name[:attr=value,...]` separated by `;`, e.g.
/// `relay:capacity=100,load=3,turn=10.0.0.5:3478;voicemail` (NULL or "":
/// none). They are announced at once when the node is joined (else once it
/// joins) and refreshed every third of `ability_ttl_s` (30 s by default);
/// abilities left out are withdrawn, and a graceful leave withdraws them
/// all. Call it again to report a new load. Returns without waiting for the
/// writes. `CHORDSIP_ERR_INVALID_ARGUMENT` for a malformed list.
///
/// # Safety
/// `node` NULL or live; `abilities` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_set_abilities(
    node: *mut crate::ffi::node::chordsip_node,
    abilities: *const c_char,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { node_ref(node) }?.started()?;
        // SAFETY: NULL or NUL-terminated by the caller's contract.
        let text = unsafe { opt_str_arg(abilities) }?.unwrap_or("");
        let list = code(ability::parse_list(text))?;
        code(n.set_abilities(list))
    })
}

/// Finds up to `max` peers that announce ability `name`, least loaded first
/// (load per capacity, then the larger capacity): one lookup and one read,
/// whatever the overlay's size. A peer that left is not found; one that
/// died is found until its announcement expires (`ability_ttl_s`). `*out`
/// receives a list (possibly empty) to free with `chordsip_ability_peers_free`.
///
/// # Safety
/// `node` NULL or live; `name` NULL or NUL-terminated; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_find_peers(
    node: *mut crate::ffi::node::chordsip_node,
    name: *const c_char,
    max: usize,
    out: *mut *mut chordsip_ability_peers,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { node_ref(node) }?.started()?;
        // SAFETY: NULL or NUL-terminated by the caller's contract.
        let name = unsafe { str_arg(name) }?;
        if out.is_null() {
            return Err(CHORDSIP_ERR_NULL_POINTER);
        }
        let peers = code(n.find_peers(name, max))?;
        let list = Box::into_raw(Box::new(chordsip_ability_peers::new(peers)));
        // SAFETY: out is non-NULL (checked) and writable.
        unsafe { write_out(out, list) }
    })
}

/// `chordsip_node_find_peers` through the client handle's peer.
///
/// # Safety
/// As `chordsip_node_find_peers`, with `client` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn chordsip_client_find_peers(
    client: *mut crate::ffi::client::chordsip_client,
    name: *const c_char,
    max: usize,
    out: *mut *mut chordsip_ability_peers,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live client by the caller's contract.
        let c = unsafe { client_ref(client) }?;
        // SAFETY: NULL or NUL-terminated by the caller's contract.
        let name = unsafe { str_arg(name) }?;
        if out.is_null() {
            return Err(CHORDSIP_ERR_NULL_POINTER);
        }
        let peers = code(c.inner.lock().find_peers(name, max))?;
        let list = Box::into_raw(Box::new(chordsip_ability_peers::new(peers)));
        // SAFETY: out is non-NULL (checked) and writable.
        unsafe { write_out(out, list) }
    })
}

/// Number of peers in the list; 0 for NULL.
///
/// # Safety
/// `list` is NULL or a live list.
#[no_mangle]
pub unsafe extern "C" fn chordsip_ability_peers_len(list: *const chordsip_ability_peers) -> usize {
    // SAFETY: NULL or a live list by the caller's contract.
    std::panic::catch_unwind(|| unsafe { list.as_ref() }.map_or(0, |l| l.items.len())).unwrap_or(0)
}

/// Describes peer `index` in `out`; its strings borrow from the list.
///
/// # Safety
/// `list` NULL or live; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chordsip_ability_peers_get(
    list: *const chordsip_ability_peers,
    index: usize,
    out: *mut chordsip_ability_peer,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live list by the caller's contract.
        let list = unsafe { list.as_ref() }.ok_or(CHORDSIP_ERR_NULL_POINTER)?;
        let p = list.items.get(index).ok_or(CHORDSIP_ERR_OUT_OF_RANGE)?;
        let view = chordsip_ability_peer {
            peer: p.peer,
            name: p.name.as_ptr(),
            capacity: p.capacity,
            load: p.load,
            attrs: p.attrs.as_ptr(),
            expires_in_ms: p.expires_in_ms,
        };
        // SAFETY: NULL or writable by the caller's contract.
        unsafe { write_out(out, view) }
    })
}

/// The value of attribute `attr` of peer `index` (`capacity` and `load`
/// included, as decimal text), borrowed from the list; NULL when the peer
/// has no such attribute, or for a NULL list or name or an index out of range.
///
/// # Safety
/// `list` NULL or live; `attr` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn chordsip_ability_peers_attr(
    list: *const chordsip_ability_peers,
    index: usize,
    attr: *const c_char,
) -> *const c_char {
    std::panic::catch_unwind(|| {
        // SAFETY: NULL or a live list by the caller's contract.
        let list = unsafe { list.as_ref() }?;
        // SAFETY: NULL or NUL-terminated by the caller's contract.
        let attr = unsafe { str_arg(attr) }.ok()?;
        let p = list.items.get(index)?;
        p.pairs
            .iter()
            .find(|(k, _)| k == attr)
            .map(|(_, v)| v.as_ptr())
    })
    .ok()
    .flatten()
    .unwrap_or(std::ptr::null())
}

/// Frees a list from `chordsip_*_find_peers`. NULL is a no-op.
///
/// # Safety
/// `list` is NULL or a list from this library not yet freed.
#[no_mangle]
pub unsafe extern "C" fn chordsip_ability_peers_free(list: *mut chordsip_ability_peers) {
    guard_void(|| {
        if !list.is_null() {
            // SAFETY: created by Box::into_raw in this library, freed once.
            drop(unsafe { Box::from_raw(list) });
        }
    })
}
