//! Node configuration. Defaults suit a LAN/loopback overlay of SIP servers.

use crate::id::Id;
use crate::storage::StoreLimits;
use std::net::SocketAddr;
use std::time::Duration;

/// Severity of a log line handed to the host's logger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum LogLevel {
    Off = 0,
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
    Trace = 5,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// Address the node's UDP socket binds to (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Address other peers use to reach this node, when it differs from `listen`
    /// (e.g. a wildcard bind). Defaults to the bound address.
    pub advertise: Option<SocketAddr>,
    /// Fixed node id; by default SHA-1 of the advertised address.
    pub node_id: Option<Id>,
    /// Overlay name: datagrams of other overlays are dropped.
    pub overlay: String,
    /// Shared secret that admits members: every datagram carries an HMAC-SHA256 tag.
    pub overlay_key: Option<Vec<u8>>,
    /// Length of the successor list (ring survives this many minus one adjacent failures).
    pub successors: usize,
    /// Copies of each value: the responsible node and its next successors.
    pub replicas: usize,
    pub stabilize_interval: Duration,
    pub check_predecessor_interval: Duration,
    /// One finger is refreshed per interval.
    pub fix_fingers_interval: Duration,
    /// Replica synchronisation and handoff of misplaced keys.
    pub sync_interval: Duration,
    /// Lower bound of the adaptive retransmission timeout.
    pub rpc_timeout_min: Duration,
    /// Retransmission timeout toward a peer with no RTT sample yet.
    pub rpc_timeout_initial: Duration,
    pub rpc_timeout_max: Duration,
    /// Retransmissions before a peer is considered failed.
    pub rpc_retries: u32,
    /// Default deadline for lookups and storage operations.
    pub op_timeout: Duration,
    /// Largest datagram sent or accepted.
    pub max_datagram: usize,
    pub limits: StoreLimits,
    /// How long a removal marker outlives the removal.
    pub tombstone_lifetime: Duration,
    /// Log lines below this severity are never produced.
    pub log_level: LogLevel,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:0".parse().expect("valid address"),
            advertise: None,
            node_id: None,
            overlay: "chordsip".into(),
            overlay_key: None,
            successors: 8,
            replicas: 3,
            stabilize_interval: Duration::from_millis(250),
            check_predecessor_interval: Duration::from_millis(250),
            fix_fingers_interval: Duration::from_millis(100),
            sync_interval: Duration::from_millis(1000),
            rpc_timeout_min: Duration::from_millis(40),
            rpc_timeout_initial: Duration::from_millis(200),
            rpc_timeout_max: Duration::from_millis(1000),
            rpc_retries: 3,
            op_timeout: Duration::from_secs(5),
            max_datagram: 32 * 1024,
            limits: StoreLimits::default(),
            tombstone_lifetime: Duration::from_secs(600),
            log_level: LogLevel::Off,
        }
    }
}

impl Config {
    /// Checks the values that would make a node misbehave.
    pub fn validate(&self) -> crate::Result<()> {
        use crate::Error::InvalidArgument as Bad;
        if self.successors == 0 || self.successors > crate::wire::MAX_NODE_LIST {
            return Err(Bad(format!(
                "successors must be 1..={}",
                crate::wire::MAX_NODE_LIST
            )));
        }
        if self.replicas == 0 || self.replicas > self.successors + 1 {
            return Err(Bad("replicas must be 1..=successors+1".into()));
        }
        if self.overlay.is_empty() || self.overlay.len() > 255 {
            return Err(Bad("overlay name must be 1..=255 bytes".into()));
        }
        if let Some(k) = &self.overlay_key {
            if k.is_empty() {
                return Err(Bad("overlay key must not be empty".into()));
            }
        }
        if self.max_datagram < 1200 || self.max_datagram > crate::wire::MAX_DATAGRAM {
            return Err(Bad("max_datagram must be 1200..=65507".into()));
        }
        if self.limits.max_value_bytes + 512 > self.max_datagram {
            return Err(Bad("max value size must fit in a datagram".into()));
        }
        for (name, d) in [
            ("stabilize_interval", self.stabilize_interval),
            (
                "check_predecessor_interval",
                self.check_predecessor_interval,
            ),
            ("fix_fingers_interval", self.fix_fingers_interval),
            ("sync_interval", self.sync_interval),
            ("rpc_timeout_min", self.rpc_timeout_min),
            ("op_timeout", self.op_timeout),
        ] {
            if d.is_zero() {
                return Err(Bad(format!("{name} must be positive")));
            }
        }
        if self.rpc_timeout_min > self.rpc_timeout_max {
            return Err(Bad("rpc_timeout_min exceeds rpc_timeout_max".into()));
        }
        Ok(())
    }
}
