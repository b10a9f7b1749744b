//! The registrar on top of the overlay: REGISTER processing and AOR lookup
//! against any dictionary store (a node or a client handle: both implement
//! [`DictStore`] in their own files, so this module needs neither).

use super::binding::{
    Binding, Plan, RegisterError, RegisterRequest, RegistrarLimits, StoredBinding,
};
use super::remote::RegisterTxn;
use super::uri::Uri;
use crate::error::Error;
use crate::id::Id;
use crate::owner::Owner;
use crate::types::{run_transaction, Value};

pub use crate::types::DictStore;

/// Why a register or lookup failed: the request, or the overlay.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    let canonical = Uri::parse(aor)
        .map_err(|e| {
            RegisterError::Bad(format!(
                "aor {aor:?}: {e} (an address-of-record is a SIP URI like sip:alice@example.com)"
            ))
        })?
        .aor();
    let key = Id::from_name(&canonical);
    Ok((canonical, key))
}

/// The bindings among an AOR's stored values (undecodable entries skipped).
pub fn stored(values: Vec<Value>) -> Vec<StoredBinding> {
    values
        .into_iter()
        .filter_map(|v| {
            Binding::decode(&v.data).map(|b| StoredBinding {
                writer: v.writer,
                binding: Binding {
                    owner: Some(v.owner),
                    ..b
                },
                expires_in_s: v.lifetime.as_secs().min(u32::MAX as u64) as u32,
                version: v.version,
            })
        })
        .collect()
}

/// Processes a REGISTER: reads the AOR's bindings, applies RFC 3261 §10.3
/// and RFC 5626, stores the changes and returns the plan (its `result` is
/// what the 200 OK lists). It runs the same transaction ([`RegisterTxn`]) that
/// a node runs for a client handle's REGISTER.
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
    let mut txn = RegisterTxn::new(req.clone(), limits.clone())?;
    run_transaction(store, &mut txn)?;
    Ok(txn.into_result()?)
}

/// [`register`] through a node without blocking: the node runs the same
/// transaction on its worker thread (its writes in parallel) and `cb` gets
/// the plan there. A request refused before anything is read (an AOR that
/// is no SIP URI) is returned as an error and `cb` dropped.
pub fn register_async(
    node: &crate::Node,
    req: &RegisterRequest,
    limits: &RegistrarLimits,
    cb: impl FnOnce(Result<Plan, RegistrarError>) + Send + 'static,
) -> Result<(), RegistrarError> {
    let txn = RegisterTxn::new(req.clone(), limits.clone())?;
    node.transaction_async(txn, move |r| {
        cb(r.map_err(RegistrarError::Overlay)
            .and_then(|t| Ok(t.into_result()?)))
    })?;
    Ok(())
}

/// Whose bindings a lookup returns. Any member of the overlay can store
/// a binding under an AOR with a writer key of its own; routing to it would
/// let that member take the AOR's calls.
#[derive(Clone, Copy, Debug)]
pub enum Trust<'a> {
    /// Only bindings written under these keys.
    Writers(&'a [Owner]),
    /// Every binding, each with its owner, for callers that judge for themselves.
    All,
}

impl Trust<'_> {
    fn admits(&self, owner: Option<&Owner>) -> bool {
        match self {
            Trust::All => true,
            Trust::Writers(keys) => owner.is_some_and(|o| keys.contains(o)),
        }
    }
}

/// The live bindings of an AOR that the store trusts (its own writer key
/// and `trusted_writers`: [`DictStore::trusted_writers`]), highest q first
/// (ties: most recently written first).
pub fn lookup(
    store: &mut impl DictStore,
    aor: &str,
) -> Result<Vec<(Binding, u32)>, RegistrarError> {
    let trusted = store.trusted_writers()?;
    lookup_trusting(store, aor, Trust::Writers(&trusted))
}

/// [`lookup`] with the trust given: `Trust::All` returns every live binding.
pub fn lookup_trusting(
    store: &mut impl DictStore,
    aor: &str,
    trust: Trust,
) -> Result<Vec<(Binding, u32)>, RegistrarError> {
    let (_, key) = aor_key(aor)?;
    Ok(live_bindings(store.dict_get(key)?, trust))
}

/// The bindings among an AOR's stored values that `trust` admits, each
/// with its owner, ordered as [`lookup`] returns them.
pub fn live_bindings(values: Vec<Value>, trust: Trust) -> Vec<(Binding, u32)> {
    let mut list = stored(values);
    list.retain(|s| s.expires_in_s > 0 && trust.admits(s.binding.owner.as_ref()));
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
