//! chordsip: a Chord overlay that replaces the central SIP registrar/location
//! database. Every SIP server or user agent becomes a peer that joins the ring,
//! stores address-of-record bindings in it and looks them up.
//!
//! Layers, from pure to I/O:
//! - [`id`]: the 160-bit identifier space;
//! - [`wire`]: the datagram format;
//! - [`owner`]: writers' signing keys: who may change an entry;
//! - [`ability`]: what peers offer and finding peers by it (logical overlays);
//! - [`storage`]: versioned, expiring dictionaries;
//! - [`routing`]: finger table, successor and predecessor lists;
//! - [`engine`]: the sans-I/O protocol state machine of one node;
//! - [`sim`]: an in-memory network that runs thousands of engines;
//! - [`runtime`] and [`node`]: the shared thread pool and real UDP nodes;
//! - [`client`]: the thread-free client handle;
//! - [`ffi`]: the C ABI (the only `unsafe` code).

pub mod ability;
pub mod client;
pub mod clock;
pub mod config;
pub mod dns;
pub mod engine;
pub mod error;
pub mod ffi;
pub mod id;
pub mod identity;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod owner;
pub mod publish;
pub mod routing;
pub mod runtime;
pub mod sim;
pub mod sip;
pub mod stats;
pub mod storage;
pub mod testnet;
pub mod types;
pub mod ua;
pub mod wire;

pub use config::{Config, LogLevel};
pub use engine::Event;
pub use error::{Error, Result};
pub use id::Id;
pub use node::{Node, RingInfo};
pub use stats::Stats;
pub use types::{LookupOutcome, StoreReceipt, Value};
pub use wire::NodeInfo;

/// The crate version, as reported by `chordsip_version()`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
