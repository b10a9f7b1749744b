//! The vocabulary the engine, the node, the client handle and the SIP layer
//! share: what a reader sees, what a write and a lookup report, the
//! dictionary a registrar runs on, and the atomic read-plan-write
//! transaction on one key (which the engine runs for client handles and
//! [`run_transaction`] runs through any dictionary).

use crate::error::Error;
use crate::id::Id;
use crate::owner::{self, Owner};
use crate::wire::{NodeInfo, WireEntry, SIGNATURE_LEN};
use std::sync::Arc;
use std::time::Duration;

/// Identifies an API operation; chosen by the caller and echoed in its completion.
pub type OpId = u64;

/// A value as a reader sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    /// The writer's label for its slot.
    pub writer: Vec<u8>,
    /// The public key the value is signed with: whose slot it is.
    pub owner: Owner,
    pub data: Vec<u8>,
    pub version: u64,
    /// Remaining lifetime when the value was read.
    pub lifetime: Duration,
}

impl Value {
    /// The value a reader sees in a stored entry; None for removals and expired entries.
    pub fn from_wire(e: WireEntry) -> Option<Value> {
        if e.tombstone || e.lifetime_ms == 0 {
            return None;
        }
        let (owner, label) = owner::split_slot(&e.writer)?;
        Some(Value {
            writer: label.to_vec(),
            owner: *owner,
            data: e.data,
            version: e.version,
            lifetime: Duration::from_millis(e.lifetime_ms as u64),
        })
    }

    /// The value as a FetchReply carries it to a client handle (which trusts its node).
    pub fn to_wire(&self) -> WireEntry {
        let mut writer = self.owner.to_vec();
        writer.extend_from_slice(&self.writer);
        WireEntry {
            writer,
            version: self.version,
            lifetime_ms: self.lifetime.as_millis().min(u32::MAX as u128) as u32,
            expires_ms: 0,
            tombstone: false,
            data: self.data.clone(),
            signature: [0; SIGNATURE_LEN],
            writer_tag: None,
        }
    }
}

/// Result of the bare Chord lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupOutcome {
    /// The node responsible for the key.
    pub node: NodeInfo,
    /// Remote nodes asked on the way.
    pub hops: u32,
    pub latency: Duration,
    /// Each node that answered a step, in order, with the step's round trip
    /// (retransmissions included): filled by a traced lookup
    /// (`Node::trace`), empty otherwise.
    pub path: Vec<TraceHop>,
}

/// One answered step of a traced lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceHop {
    pub node: NodeInfo,
    pub rtt: Duration,
}

/// Acknowledgement of a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreReceipt {
    /// Copies known to hold the write when it was acknowledged.
    pub copies: u8,
}

/// Bytes of a credentials key (64 hex digits in its file, as `chordsip keygen` writes).
pub const CREDENTIALS_KEY_LEN: usize = 32;

/// What a registrar needs to read SIP credentials (`sip::credentials`): the
/// key that opens the records, and the writer keys allowed to write them.
#[derive(Clone)]
pub struct CredentialTrust {
    pub key: [u8; CREDENTIALS_KEY_LEN],
    pub admins: Vec<Owner>,
}

impl std::fmt::Debug for CredentialTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialTrust")
            .field("admins", &self.admins.len())
            .finish_non_exhaustive()
    }
}

/// The dictionary operations a registrar needs; implemented by nodes
/// (`node.rs`) and client handles (`client.rs`).
pub trait DictStore {
    fn dict_get(&mut self, key: Id) -> Result<Vec<Value>, Error>;
    fn dict_put(
        &mut self,
        key: Id,
        writer: &[u8],
        data: &[u8],
        lifetime: Duration,
    ) -> Result<StoreReceipt, Error>;
    fn dict_remove(&mut self, key: Id, writer: &[u8]) -> Result<StoreReceipt, Error>;
    /// The key this store's writes are signed with: the slots a transaction may change.
    fn owner(&mut self) -> Result<Owner, Error>;
    /// The writer keys whose registrar bindings this store's lookups trust:
    /// its own, and the ones it was told to trust (`trusted_writers`).
    fn trusted_writers(&mut self) -> Result<Vec<Owner>, Error> {
        Ok(vec![self.owner()?])
    }
    /// The key and admins this store reads SIP credentials with; an
    /// `Unauthorized` error when it was given none.
    fn credential_trust(&mut self) -> Result<CredentialTrust, Error> {
        Err(Error::Unauthorized(
            "no credentials_key: this handle cannot read SIP credentials".into(),
        ))
    }
    /// The largest value the store takes, when known before writing.
    fn value_limit(&self) -> Option<usize> {
        None
    }
}

/// Implements [`DictStore`] for a handle whose own `get`, `put`, `remove`
/// and `owner` methods do the work (a node and a client handle, each in its
/// own file), with an optional value limit.
macro_rules! dict_store_by_methods {
    ($ty:ty, methods of $inherent:ty $(, value_limit: |$s:ident| $limit:expr)?) => {
        impl $crate::types::DictStore for $ty {
            fn dict_get(&mut self, key: $crate::id::Id) -> $crate::error::Result<Vec<$crate::types::Value>> {
                self.get(key)
            }
            fn dict_put(
                &mut self,
                key: $crate::id::Id,
                writer: &[u8],
                data: &[u8],
                lifetime: std::time::Duration,
            ) -> $crate::error::Result<$crate::types::StoreReceipt> {
                self.put(key, writer, data, lifetime)
            }
            fn dict_remove(
                &mut self,
                key: $crate::id::Id,
                writer: &[u8],
            ) -> $crate::error::Result<$crate::types::StoreReceipt> {
                self.remove(key, writer)
            }
            fn owner(&mut self) -> $crate::error::Result<$crate::owner::Owner> {
                <$inherent>::owner(self)
            }
            fn trusted_writers(&mut self) -> $crate::error::Result<Vec<$crate::owner::Owner>> {
                <$inherent>::trusted_writers(self)
            }
            fn credential_trust(&mut self) -> $crate::error::Result<$crate::types::CredentialTrust> {
                <$inherent>::credential_trust(self)
            }
            $(fn value_limit(&self) -> Option<usize> {
                let $s = self;
                $limit
            })?
        }
    };
}
pub(crate) use dict_store_by_methods;

/// One slot write of a transaction: a value that lives `lifetime`, or
/// (`None`) a removal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotWrite {
    /// The writer's label for the slot.
    pub label: Vec<u8>,
    pub value: Option<(Vec<u8>, Duration)>,
}

/// An atomic read-plan-write on one key. Whoever runs it reads the key's
/// values in the slots its writer key owns, asks [`Transaction::plan`] for
/// the writes, and makes all of them; when one fails, it puts back what the
/// slots held before ([`undo_writes`]). The engine runs transactions that
/// client handles send (in one exchange, its writes in parallel), and
/// [`run_transaction`] runs one through any [`DictStore`]: the plan, the
/// limits and the undo exist once.
pub trait Transaction: Send {
    /// The key the transaction reads and writes.
    fn key(&self) -> Id;
    /// The writes to make, given the writer's own live values of the key;
    /// `None` refuses (then [`Transaction::reply`] says why). `value_limit`
    /// is the largest value the overlay stores, when known.
    fn plan(&mut self, mine: &[Value], value_limit: Option<usize>) -> Option<Vec<SlotWrite>>;
    /// The answer for the requester once the plan refused or every write was
    /// made, in at most `budget` bytes.
    fn reply(&self, budget: usize) -> Vec<u8>;
}

/// What a node makes of the bytes of a client's transaction request.
pub enum Decoded {
    Run(Box<dyn Transaction>),
    /// Refused before anything is read: the reply to send.
    Answer(Vec<u8>),
    /// Not a request at all.
    Malformed,
}

/// Turns a client's transaction request into a [`Transaction`]. Whoever
/// builds a node passes one in (`Config::transactions`; the SIP registrar's is
/// `sip::remote::transactions()`); a node without one refuses client
/// transactions.
#[derive(Clone)]
pub struct TransactionDecoder {
    pub decode: Arc<DecodeFn>,
    /// The labels only these transactions may write (for the registrar:
    /// binding slots): a client's plain put of one is refused, so that a
    /// generic write cannot replace or pin a registration.
    pub reserves: fn(&[u8]) -> bool,
}

/// The function behind a [`TransactionDecoder`].
pub type DecodeFn = dyn Fn(&[u8]) -> Decoded + Send + Sync;

impl std::fmt::Debug for TransactionDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TransactionDecoder")
    }
}

/// The writes that put back what `before` (the writer's own values of the
/// key) held in the slots that `writes` touch: the old value with what was
/// left of its lifetime, or a removal where there was none.
pub fn undo_writes(before: &[Value], writes: &[SlotWrite]) -> Vec<SlotWrite> {
    writes
        .iter()
        .map(|w| SlotWrite {
            label: w.label.clone(),
            value: before
                .iter()
                .find(|v| v.writer == w.label && !v.lifetime.is_zero())
                .map(|v| (v.data.clone(), v.lifetime)),
        })
        .collect()
}

/// Runs `txn` through `store`: one read, the writes in order and, when one
/// fails, the undo of those already made, newest first (best effort: a store
/// that fails the undo too keeps what it took). Returns the first failure.
pub fn run_transaction(store: &mut impl DictStore, txn: &mut dyn Transaction) -> Result<(), Error> {
    let key = txn.key();
    let owner = store.owner()?;
    let mut mine = store.dict_get(key)?;
    mine.retain(|v| v.owner == owner);
    let Some(writes) = txn.plan(&mine, store.value_limit()) else {
        return Ok(());
    };
    for (done, w) in writes.iter().enumerate() {
        if let Err(e) = write_slot(store, key, w) {
            for u in undo_writes(&mine, &writes[..done]).iter().rev() {
                let _ = write_slot(store, key, u);
            }
            return Err(e);
        }
    }
    Ok(())
}

fn write_slot(store: &mut impl DictStore, key: Id, w: &SlotWrite) -> Result<StoreReceipt, Error> {
    match &w.value {
        Some((data, lifetime)) => store.dict_put(key, &w.label, data, *lifetime),
        None => store.dict_remove(key, &w.label),
    }
}
