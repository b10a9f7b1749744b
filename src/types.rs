//! The vocabulary the engine, the node, the client handle and the SIP layer
//! share: what a reader sees, what a write and a lookup report, and the
//! dictionary a registrar runs on.

use crate::owner::{self, Owner};
use crate::wire::{NodeInfo, WireEntry};
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
            signature: [0; 64],
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
}

/// Acknowledgement of a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreReceipt {
    /// Copies known to hold the write when it was acknowledged.
    pub copies: u8,
}
