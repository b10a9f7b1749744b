//! The registrar on top of the overlay: REGISTER processing and AOR lookup
//! against any dictionary store (a [`Node`] or a [`Client`]).

use super::binding::{
    plan, Binding, Change, Plan, RegisterError, RegisterRequest, RegistrarLimits, StoredBinding,
};
use super::uri::Uri;
use crate::client::Client;
use crate::engine::{StoreReceipt, Value};
use crate::error::Error;
use crate::id::Id;
use crate::node::Node;
use crate::owner::Owner;
use std::time::Duration;

/// The dictionary operations a registrar needs; implemented by nodes and client handles.
pub trait DictStore {
    fn dict_get(&mut self, key: Id) -> crate::Result<Vec<Value>>;
    fn dict_put(
        &mut self,
        key: Id,
        writer: &[u8],
        data: &[u8],
        lifetime: Duration,
    ) -> crate::Result<StoreReceipt>;
    fn dict_remove(&mut self, key: Id, writer: &[u8]) -> crate::Result<StoreReceipt>;
    /// The key this store's writes are signed with: the bindings a REGISTER may change.
    fn owner(&mut self) -> crate::Result<Owner>;
    /// The largest value the store takes, when known before writing.
    fn value_limit(&self) -> Option<usize> {
        None
    }
}

impl DictStore for &Node {
    fn dict_get(&mut self, key: Id) -> crate::Result<Vec<Value>> {
        self.get(key)
    }
    fn dict_put(
        &mut self,
        key: Id,
        writer: &[u8],
        data: &[u8],
        lifetime: Duration,
    ) -> crate::Result<StoreReceipt> {
        self.put(key, writer, data, lifetime)
    }
    fn dict_remove(&mut self, key: Id, writer: &[u8]) -> crate::Result<StoreReceipt> {
        self.remove(key, writer)
    }
    fn owner(&mut self) -> crate::Result<Owner> {
        Node::owner(self)
    }
    fn value_limit(&self) -> Option<usize> {
        Some(self.config().limits.max_value_bytes)
    }
}

impl DictStore for Client {
    fn dict_get(&mut self, key: Id) -> crate::Result<Vec<Value>> {
        self.get(key)
    }
    fn dict_put(
        &mut self,
        key: Id,
        writer: &[u8],
        data: &[u8],
        lifetime: Duration,
    ) -> crate::Result<StoreReceipt> {
        self.put(key, writer, data, lifetime)
    }
    fn dict_remove(&mut self, key: Id, writer: &[u8]) -> crate::Result<StoreReceipt> {
        self.remove(key, writer)
    }
    fn owner(&mut self) -> crate::Result<Owner> {
        Client::owner(self)
    }
}

/// Why a register or lookup failed: the request, or the overlay.
#[derive(Debug, PartialEq, Eq)]
pub enum RegistrarError {
    Request(RegisterError),
    Overlay(Error),
}

impl std::fmt::Display for RegistrarError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegistrarError::Request(e) => e.fmt(f),
            RegistrarError::Overlay(e) => write!(f, "overlay: {e}"),
        }
    }
}

impl std::error::Error for RegistrarError {}

impl From<RegisterError> for RegistrarError {
    fn from(e: RegisterError) -> Self {
        RegistrarError::Request(e)
    }
}

impl From<Error> for RegistrarError {
    fn from(e: Error) -> Self {
        RegistrarError::Overlay(e)
    }
}

/// The ring key of an AOR: SHA-1 of its canonical form.
pub fn aor_key(aor: &str) -> Result<(String, Id), RegisterError> {
    let canonical = Uri::parse(aor)?.aor();
    let key = Id::from_name(&canonical);
    Ok((canonical, key))
}

/// The bindings of an AOR that `owner` wrote: the ones a REGISTER through
/// its node may refresh, replace or remove. Other writers' bindings are theirs
/// (crate::owner); a lookup still returns them.
pub fn stored_by(values: Vec<Value>, owner: &Owner) -> Vec<StoredBinding> {
    stored(values.into_iter().filter(|v| v.owner == *owner).collect())
}

/// The bindings among an AOR's stored values (undecodable entries skipped).
pub fn stored(values: Vec<Value>) -> Vec<StoredBinding> {
    values
        .into_iter()
        .filter_map(|v| {
            Binding::decode(&v.data).map(|b| StoredBinding {
                writer: v.writer,
                binding: b,
                expires_in_s: v.lifetime.as_secs().min(u32::MAX as u64) as u32,
                version: v.version,
            })
        })
        .collect()
}

/// Processes a REGISTER: reads the AOR's bindings, applies RFC 3261 §10.3
/// and RFC 5626, stores the changes and returns the plan (its `result` is
/// what the 200 OK lists).
///
/// All or nothing (§10.3 step 8): the request is checked whole before the
/// first write, and when the overlay refuses or loses a later write, the
/// writes already made are undone (best effort: an overlay that fails the
/// undo too leaves what it took) and that error is returned.
pub fn register(
    store: &mut impl DictStore,
    req: &RegisterRequest,
    limits: &RegistrarLimits,
) -> Result<Plan, RegistrarError> {
    let (_, key) = aor_key(&req.to)?;
    let owner = store.owner()?;
    let current = stored_by(store.dict_get(key)?, &owner);
    let p = plan(req, &current, limits)?;
    let encoded: Vec<Option<Vec<u8>>> = p
        .changes
        .iter()
        .map(|c| match c {
            Change::Put { binding, .. } => Some(binding.encode()),
            Change::Remove { .. } => None,
        })
        .collect();
    if let Some(limit) = store.value_limit() {
        if encoded.iter().flatten().any(|e| e.len() > limit) {
            return Err(RegisterError::Bad(format!(
                "a binding is larger than the overlay's {limit}-byte values"
            ))
            .into());
        }
    }
    for (done, (c, data)) in p.changes.iter().zip(&encoded).enumerate() {
        let result = match (c, data) {
            (
                Change::Put {
                    writer, expires, ..
                },
                Some(data),
            ) => store
                .dict_put(key, writer, data, Duration::from_secs(*expires as u64))
                .map(drop),
            (Change::Remove { writer }, _) => store.dict_remove(key, writer).map(drop),
            (Change::Put { .. }, None) => unreachable!("every put was encoded"),
        };
        if let Err(e) = result {
            undo(store, key, &current, &p.changes[..done]);
            return Err(e.into());
        }
    }
    Ok(p)
}

/// Restores the bindings that `applied` changed to what `before` held.
fn undo(store: &mut impl DictStore, key: Id, before: &[StoredBinding], applied: &[Change]) {
    for c in applied.iter().rev() {
        let writer = match c {
            Change::Put { writer, .. } | Change::Remove { writer } => writer,
        };
        let old = before.iter().find(|s| s.writer == *writer);
        let _ = match old {
            Some(s) if s.expires_in_s > 0 => store
                .dict_put(
                    key,
                    writer,
                    &s.binding.encode(),
                    Duration::from_secs(s.expires_in_s as u64),
                )
                .map(drop),
            _ => store.dict_remove(key, writer).map(drop),
        };
    }
}

/// The live bindings of an AOR, highest q first (ties: most recently written first).
pub fn lookup(
    store: &mut impl DictStore,
    aor: &str,
) -> Result<Vec<(Binding, u32)>, RegistrarError> {
    let (_, key) = aor_key(aor)?;
    Ok(live_bindings(store.dict_get(key)?))
}

/// The bindings among an AOR's stored values, ordered as [`lookup`] returns them.
pub fn live_bindings(values: Vec<Value>) -> Vec<(Binding, u32)> {
    let mut list = stored(values);
    list.retain(|s| s.expires_in_s > 0);
    list.sort_by(|a, b| {
        b.binding
            .q
            .cmp(&a.binding.q)
            .then(b.version.cmp(&a.version))
    });
    list.into_iter()
        .map(|s| (s.binding, s.expires_in_s))
        .collect()
}
