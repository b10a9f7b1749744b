//! Node configuration. Defaults suit a LAN/loopback overlay of SIP servers.

use crate::ability::Ability;
use crate::id::Id;
use crate::owner::Owner;
use crate::storage::StoreLimits;
use crate::types::TransactionDecoder;
use std::net::SocketAddr;
use std::time::Duration;

mod get;

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

/// How lookups find the responsible node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RoutingMode {
    /// Chord: O(log N) hops over fingers; for large overlays of user agents.
    #[default]
    MultiHop,
    /// Every member keeps the full membership, and the responsible node is
    /// one hop away (a lookup falls back to Chord routing when the table is
    /// stale); for small, stable overlays of SIP servers (the hybrid model).
    OneHop,
}

impl RoutingMode {
    pub fn parse(s: &str) -> crate::Result<RoutingMode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "multi-hop" | "multihop" | "chord" => Ok(RoutingMode::MultiHop),
            "one-hop" | "onehop" => Ok(RoutingMode::OneHop),
            _ => Err(crate::Error::InvalidArgument(format!(
                "routing: {s:?} is not one-hop or multi-hop"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RoutingMode::MultiHop => "multi-hop",
            RoutingMode::OneHop => "one-hop",
        }
    }
}

/// Where a one-hop overlay publishes its live members (docs/HYBRID.md):
/// `_sip._udp.<domain>` SRV records (and `_sip._tcp`) with A/AAAA records,
/// kept by RFC 2136 dynamic updates signed with TSIG.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsSettings {
    /// The authoritative server that takes the updates. None: nothing is published.
    pub server: Option<SocketAddr>,
    /// The zone the records live in.
    pub zone: String,
    /// Owner of the SRV records; the zone when empty.
    pub domain: String,
    /// The TSIG key: `name:base64`, `hmac-sha256:name:base64`, or the text
    /// of a BIND/Knot key file. None: updates go unsigned (the server must
    /// then allow them by address).
    pub key: Option<String>,
    /// TTL of the published records, in seconds: how long a resolver may
    /// keep a dead member's address.
    pub ttl: u32,
    /// Also publish `_sip._tcp` records.
    pub tcp: bool,
}

impl DnsSettings {
    /// The SRV owner domain.
    pub fn domain(&self) -> &str {
        if self.domain.is_empty() {
            &self.zone
        } else {
            &self.domain
        }
    }
}

/// Writer keys a node may trust besides its own: the node's ring report
/// lists them for client handles in one datagram of the smallest size.
const MAX_TRUSTED_WRITERS: usize = 12;

#[derive(Clone, Debug)]
pub struct Config {
    /// Address the node's UDP socket binds to (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Address other peers use to reach this node, when it differs from `listen`
    /// (e.g. a wildcard bind). Defaults to the bound address.
    pub advertise: Option<SocketAddr>,
    /// A UNIX datagram socket path on which the node also serves client handles
    /// of the same host (e.g. forked SIP workers). A stale socket file is replaced.
    pub client_socket: Option<std::path::PathBuf>,
    /// Secret (Ed25519 seed) of this node's identity: its node id derives
    /// from the public half (crate::identity), and its membership and data
    /// messages are signed with it. By default a new one at each start.
    pub node_key: Option<[u8; 32]>,
    /// A chosen node id instead of the one the node key gives. Peers refuse
    /// its signed messages unless they accept chosen ids: for the simulator
    /// and tests only.
    pub node_id: Option<Id>,
    /// Accept peers whose id does not derive from their node key (chosen
    /// ids): for the simulator and tests only, never in a real overlay.
    pub insecure_chosen_ids: bool,
    /// Overlay name: datagrams of other overlays are dropped.
    pub overlay: String,
    /// Shared secret that admits members: every datagram carries an HMAC-SHA256 tag.
    pub overlay_key: Option<Vec<u8>>,
    /// A node that listens or advertises off loopback refuses to start
    /// without an overlay key, unless this is set: anyone who can reach it
    /// may then join, read and write (a warning is logged at start).
    pub open_overlay: bool,
    /// Credential of client handles over UDP (their datagrams carry an
    /// HMAC-SHA256 tag made with it). None: UDP clients are refused, and
    /// clients are served only on the UNIX socket (`client_socket`).
    pub client_key: Option<Vec<u8>>,
    /// Group that may use the UNIX client socket (mode 0660); by default
    /// only the node's own user may (mode 0600).
    pub client_socket_group: Option<String>,
    /// Longest lifetime a client's write (a put, or a REGISTER's binding)
    /// gets; longer ones are cut to it.
    pub max_client_lifetime: Duration,
    /// Secret (Ed25519 seed) this node signs its writes with; its public half
    /// owns them (crate::owner). Servers that act as one registrar share one;
    /// by default each node makes its own at start.
    pub writer_key: Option<[u8; 32]>,
    /// Decodes the transactions client handles ask this node to run (for
    /// the SIP registrar: `sip::remote::transactions()`, which the C API, the
    /// CLI and `Testnet` pass in). None: such requests are refused.
    pub transactions: Option<TransactionDecoder>,
    /// Length of the successor list (ring survives this many minus one adjacent failures).
    pub successors: usize,
    /// Copies of each value: the responsible node and its next successors.
    pub replicas: usize,
    /// Nodes remembered from recent answers (routing::LocationCache), so that
    /// a Chord lookup asks the likely owner first: a busy node of an overlay
    /// up to this size finds most keys in one round trip. 0 turns it off
    /// (pure Chord routing).
    pub location_cache: usize,
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
    /// With an overlay key, datagrams whose (authenticated) timestamp is
    /// further than this from the local clock are dropped as replays.
    pub replay_window: Duration,
    /// Requests per second one source address may send (a burst of as many
    /// is allowed); more are dropped. 0: no limit.
    pub max_requests_per_source: u32,
    /// Opens the SIP credential records of the overlay (crate `sip::credentials`):
    /// the key the administrator sealed them with. None: this node cannot
    /// read credentials (it is no registrar that authenticates).
    pub credentials_key: Option<[u8; 32]>,
    /// Writer keys whose credential records count (the administrators').
    pub credential_admins: Vec<Owner>,
    /// Secret of the digest nonces this node issues. Registrars that share
    /// it accept each other's nonces; by default each node makes its own at start.
    pub digest_nonce_secret: Option<[u8; 32]>,
    /// A nonce older than this is stale: the UA is challenged again.
    pub digest_nonce_lifetime: Duration,
    /// The algorithm challenges offer, "MD5" (the default: every UA has it)
    /// or "SHA-256" (RFC 8760). Answers with either are checked.
    pub digest_algorithm: String,
    pub routing: RoutingMode,
    /// One-hop overlays: place keys by this many virtual points per member
    /// (1: by member ids). 256 keeps every member's share within 1.3 × the mean.
    pub virtual_nodes: usize,
    /// Relative capacity of this node, published as its SRV weight.
    pub capacity: u16,
    /// Where this node serves SIP (a hybrid overlay publishes it in DNS).
    pub sip_address: Option<SocketAddr>,
    /// How often a one-hop member compares its table with a random member's.
    pub membership_sync_interval: Duration,
    pub dns: DnsSettings,
    /// What this node offers (crate `ability`), announced once it joined
    /// and changeable while it runs.
    pub abilities: Vec<Ability>,
    /// How long an announcement lives unless refreshed (every third of it):
    /// the bound on how long a dead peer is still found by ability.
    pub ability_ttl: Duration,
    /// Library threads of the process (shared by all its nodes), taken
    /// when the first node starts them: None uses `CHORDSIP_THREADS` from
    /// the environment, else min(cores, 4). A node started while the
    /// threads run uses them as they are (`get("threads")` tells how many).
    pub threads: Option<usize>,
    /// How often the bindings a user agent publishes (crate `ua`) are
    /// refreshed; None: at half their granted lifetime (never later than that).
    pub publish_refresh: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:0".parse().expect("valid address"),
            advertise: None,
            client_socket: None,
            node_key: None,
            node_id: None,
            insecure_chosen_ids: false,
            overlay: "chordsip".into(),
            overlay_key: None,
            open_overlay: false,
            client_key: None,
            client_socket_group: None,
            max_client_lifetime: Duration::from_secs(86_400),
            writer_key: None,
            transactions: None,
            successors: 8,
            replicas: 3,
            location_cache: 512,
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
            replay_window: Duration::from_secs(30),
            max_requests_per_source: 20_000,
            credentials_key: None,
            credential_admins: Vec::new(),
            digest_nonce_secret: None,
            digest_nonce_lifetime: Duration::from_secs(300),
            digest_algorithm: "MD5".into(),
            routing: RoutingMode::MultiHop,
            virtual_nodes: 1,
            capacity: 100,
            sip_address: None,
            membership_sync_interval: Duration::from_secs(5),
            dns: DnsSettings {
                ttl: 5,
                ..DnsSettings::default()
            },
            abilities: Vec::new(),
            ability_ttl: Duration::from_secs(30),
            threads: None,
            publish_refresh: None,
        }
    }
}

impl Config {
    /// Checks the values that would make a node misbehave.
    pub fn validate(&self) -> crate::Result<()> {
        use crate::Error::InvalidArgument as Bad;
        if self.ability_ttl.as_millis() > self.limits.max_lifetime_ms as u128 {
            return Err(Bad("ability_ttl_s exceeds max_lifetime_s".into()));
        }
        if self.successors == 0 || self.successors > crate::wire::MAX_NODE_LIST {
            return Err(Bad(format!(
                "successors must be 1..={}",
                crate::wire::MAX_NODE_LIST
            )));
        }
        if self.replicas == 0 || self.replicas > self.successors + 1 {
            return Err(Bad("replicas must be 1..=successors+1".into()));
        }
        if self.location_cache > 1 << 20 {
            return Err(Bad("location_cache must be at most 1048576 nodes".into()));
        }
        if self.overlay.is_empty() || self.overlay.len() > 255 {
            return Err(Bad("overlay name must be 1..=255 bytes".into()));
        }
        if let Some(k) = &self.overlay_key {
            if k.is_empty() {
                return Err(Bad("overlay key must not be empty".into()));
            }
        }
        if self.client_key.as_ref().is_some_and(|k| k.len() < 16) {
            return Err(Bad("client_key must be at least 16 bytes".into()));
        }
        if self.max_client_lifetime.is_zero() {
            return Err(Bad("max_client_lifetime must be positive".into()));
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
        if self.dns.server.is_some() {
            if self.routing != RoutingMode::OneHop {
                return Err(Bad(
                    "dns_server: DNS publication needs routing=one-hop (every member knows every other)"
                        .into(),
                ));
            }
            if self.dns.zone.is_empty() {
                return Err(Bad("dns_server needs dns_zone".into()));
            }
        }
        if self.virtual_nodes == 0 || self.virtual_nodes > 1024 {
            return Err(Bad("virtual_nodes must be 1..=1024".into()));
        }
        if self.virtual_nodes > 1 && self.routing != RoutingMode::OneHop {
            return Err(Bad(
                "virtual_nodes needs routing=one-hop (every member must know every point)".into(),
            ));
        }
        if self.capacity == 0 {
            return Err(Bad("capacity must be 1..=65535".into()));
        }
        if self.membership_sync_interval.is_zero() {
            return Err(Bad("membership_sync_ms must be positive".into()));
        }
        if self.rpc_timeout_min > self.rpc_timeout_max {
            return Err(Bad("rpc_timeout_min exceeds rpc_timeout_max".into()));
        }
        Ok(())
    }

    /// Sets one option by name from text, the form hosts use for module
    /// parameters and the C/Python `set` calls. Durations are in
    /// milliseconds (`*_ms`) or seconds (`*_s`). `validate` still checks the
    /// combination when the node starts.
    pub fn set(&mut self, name: &str, value: &str) -> crate::Result<()> {
        use crate::Error::InvalidArgument as Bad;
        fn num<T: std::str::FromStr>(name: &str, v: &str) -> crate::Result<T> {
            v.trim()
                .parse()
                .map_err(|_| Bad(format!("{name}: {v:?} is not a valid number")))
        }
        let ms = |v: &str| num::<u64>(name, v).map(Duration::from_millis);
        fn flag(name: &str, v: &str) -> crate::Result<bool> {
            match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(Bad(format!("{name}: {v:?} is not true or false"))),
            }
        }
        let addr = |v: &str| {
            v.trim().parse::<SocketAddr>().map_err(|_| {
                Bad(format!(
                    "{name}: {v:?} is not an address like 127.0.0.1:5000 or [::1]:5000"
                ))
            })
        };
        match name {
            "listen" => self.listen = addr(value)?,
            "advertise" => {
                self.advertise = if value.is_empty() {
                    None
                } else {
                    Some(addr(value)?)
                }
            }
            "client_socket" => {
                self.client_socket = (!value.is_empty()).then(|| value.into());
            }
            "overlay" => self.overlay = value.to_string(),
            "open_overlay" => self.open_overlay = flag(name, value)?,
            "client_key" => {
                self.client_key = (!value.is_empty()).then(|| value.as_bytes().to_vec())
            }
            "client_key_file" => {
                let text = std::fs::read(value)
                    .map_err(|e| Bad(format!("client_key_file {value:?}: {e}")))?;
                let key = text.trim_ascii_end().to_vec();
                if key.is_empty() {
                    return Err(Bad(format!("client_key_file {value:?} is empty")));
                }
                self.client_key = Some(key);
            }
            "client_socket_group" => {
                self.client_socket_group = (!value.is_empty()).then(|| value.to_string())
            }
            "max_client_lifetime_s" => {
                self.max_client_lifetime = Duration::from_secs(num(name, value)?)
            }
            "trusted_writers" => self.limits.main_writers = owner_list(name, value)?,
            "credential_admins" => self.credential_admins = owner_list(name, value)?,
            "credentials_key" => self.credentials_key = secret_or_none(name, value)?,
            "credentials_key_file" => {
                self.credentials_key = Some(secret_file(name, value)?);
            }
            "digest_nonce_secret" => self.digest_nonce_secret = secret_or_none(name, value)?,
            "digest_nonce_lifetime_s" => {
                self.digest_nonce_lifetime = Duration::from_secs(num(name, value)?)
            }
            "digest_algorithm" => {
                let v = value.trim().to_ascii_uppercase();
                if v != "MD5" && v != "SHA-256" {
                    return Err(Bad(format!(
                        "digest_algorithm: {value:?} is not MD5 or SHA-256"
                    )));
                }
                self.digest_algorithm = v;
            }
            "max_store_bytes" => self.limits.max_store_bytes = num(name, value)?,
            "max_entries_per_owner" => self.limits.max_entries_per_owner = num(name, value)?,
            "node_id" => {
                self.node_id = if value.is_empty() {
                    None
                } else {
                    Some(
                        Id::from_hex(value)
                            .ok_or_else(|| Bad("node_id: 40 hex digits expected".into()))?,
                    )
                }
            }
            "writer_key" => {
                self.writer_key = if value.is_empty() {
                    None
                } else {
                    Some(
                        crate::owner::parse_secret(value)
                            .ok_or_else(|| Bad("writer_key: 64 hex digits expected".into()))?,
                    )
                }
            }
            "node_key" => {
                self.node_key = if value.is_empty() {
                    None
                } else {
                    Some(
                        crate::owner::parse_secret(value)
                            .ok_or_else(|| Bad("node_key: 64 hex digits expected".into()))?,
                    )
                }
            }
            "node_key_file" => {
                let text = std::fs::read_to_string(value)
                    .map_err(|e| Bad(format!("node_key_file {value:?}: {e}")))?;
                self.node_key = Some(crate::owner::parse_secret(&text).ok_or_else(|| {
                    Bad(format!(
                        "node_key_file {value:?}: 64 hex digits expected (chordsip keygen)"
                    ))
                })?);
            }
            "insecure_chosen_ids" => self.insecure_chosen_ids = flag(name, value)?,
            "writer_key_file" => {
                let text = std::fs::read_to_string(value)
                    .map_err(|e| Bad(format!("writer_key_file {value:?}: {e}")))?;
                self.writer_key = Some(crate::owner::parse_secret(&text).ok_or_else(|| {
                    Bad(format!(
                        "writer_key_file {value:?}: 64 hex digits expected (chordsip keygen)"
                    ))
                })?);
            }
            "device_key_file" => self.writer_key = Some(device_key(value)?),
            "successors" => self.successors = num(name, value)?,
            "replicas" => self.replicas = num(name, value)?,
            "location_cache" => self.location_cache = num(name, value)?,
            "stabilize_ms" => self.stabilize_interval = ms(value)?,
            "check_predecessor_ms" => self.check_predecessor_interval = ms(value)?,
            "fix_fingers_ms" => self.fix_fingers_interval = ms(value)?,
            "sync_ms" => self.sync_interval = ms(value)?,
            "rpc_timeout_min_ms" => self.rpc_timeout_min = ms(value)?,
            "rpc_timeout_initial_ms" => self.rpc_timeout_initial = ms(value)?,
            "rpc_timeout_max_ms" => self.rpc_timeout_max = ms(value)?,
            "rpc_retries" => self.rpc_retries = num(name, value)?,
            "op_timeout_ms" => self.op_timeout = ms(value)?,
            "max_datagram" => self.max_datagram = num(name, value)?,
            "max_value_bytes" => self.limits.max_value_bytes = num(name, value)?,
            "max_writer_bytes" => self.limits.max_writer_bytes = num(name, value)?,
            "max_entries_per_key" => self.limits.max_entries_per_key = num(name, value)?,
            "max_keys" => self.limits.max_keys = num(name, value)?,
            "max_lifetime_s" => {
                let s: u32 = num(name, value)?;
                self.limits.max_lifetime_ms = s.saturating_mul(1000);
            }
            "tombstone_lifetime_s" => {
                self.tombstone_lifetime = Duration::from_secs(num(name, value)?)
            }
            "log_level" => self.log_level = LogLevel::parse(value)?,
            "replay_window_ms" => self.replay_window = ms(value)?,
            "max_requests_per_source" => self.max_requests_per_source = num(name, value)?,
            "routing" => self.routing = RoutingMode::parse(value)?,
            "capacity" => self.capacity = num(name, value)?,
            "virtual_nodes" => self.virtual_nodes = num(name, value)?,
            "sip_address" => {
                self.sip_address = (!value.trim().is_empty())
                    .then(|| addr(value))
                    .transpose()?
            }
            "membership_sync_ms" => self.membership_sync_interval = ms(value)?,
            "dns_server" => {
                self.dns.server = (!value.trim().is_empty())
                    .then(|| addr(value))
                    .transpose()?
            }
            "dns_zone" => self.dns.zone = dns_name(name, value)?,
            "dns_domain" => self.dns.domain = dns_name(name, value)?,
            "dns_key" => self.dns.key = (!value.trim().is_empty()).then(|| value.to_string()),
            "dns_key_file" => {
                let text = std::fs::read_to_string(value.trim())
                    .map_err(|e| Bad(format!("{name} {value:?}: {e}")))?;
                self.dns.key = Some(text);
            }
            "dns_ttl_s" => self.dns.ttl = num(name, value)?,
            "dns_tcp" => self.dns.tcp = flag(name, value)?,
            "abilities" => self.abilities = crate::ability::parse_list(value)?,
            "threads" => {
                let n: usize = num(name, value)?;
                if !(1..=64).contains(&n) {
                    return Err(Bad(format!("{name}: 1 to 64 library threads")));
                }
                self.threads = Some(n);
            }
            "ability_ttl_s" => {
                let s: u64 = num(name, value)?;
                if !(3..=86_400).contains(&s) {
                    return Err(Bad(format!("{name}: 3 to 86400 seconds")));
                }
                self.ability_ttl = Duration::from_secs(s);
            }
            "publish_refresh_ms" => {
                let v: u64 = num(name, value)?;
                if v != 0 && !(100..=86_400_000).contains(&v) {
                    return Err(Bad(format!(
                        "{name}: 0 (half the granted lifetime) or 100 to 86400000 ms"
                    )));
                }
                self.publish_refresh = (v != 0).then(|| Duration::from_millis(v));
            }
            _ => return Err(Bad(format!("unknown option {name:?}"))),
        }
        Ok(())
    }
}

/// A DNS name, without the trailing dot, in lower case.
fn dns_name(name: &str, value: &str) -> crate::Result<String> {
    let v = value.trim().trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if v.len() > 253 || !v.split('.').all(label_ok) {
        return Err(crate::Error::InvalidArgument(format!(
            "{name}: {value:?} is not a DNS name like example.test"
        )));
    }
    Ok(v)
}

/// Public keys written as 64 hex digits, separated by commas.
fn owner_list(name: &str, value: &str) -> crate::Result<Vec<Owner>> {
    let mut keys = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if keys.len() == MAX_TRUSTED_WRITERS {
            return Err(crate::Error::InvalidArgument(format!(
                "{name}: at most {MAX_TRUSTED_WRITERS} keys"
            )));
        }
        keys.push(crate::owner::parse_owner(part).ok_or_else(|| {
            crate::Error::InvalidArgument(format!(
                "{name}: {part:?} is not a public key (64 hex digits)"
            ))
        })?);
    }
    Ok(keys)
}

/// A secret written as 64 hex digits; empty for none.
fn secret_or_none(name: &str, value: &str) -> crate::Result<Option<[u8; 32]>> {
    if value.is_empty() {
        return Ok(None);
    }
    crate::owner::parse_secret(value)
        .map(Some)
        .ok_or_else(|| crate::Error::InvalidArgument(format!("{name}: 64 hex digits expected")))
}

/// The writer key of one device (a P2P user agent): read from `path`, or
/// made there first (64 hex digits, mode 0600). The new key is written to a
/// file of its own and linked into place, so the file is never seen half
/// written and never replaced: two processes racing to make it end up with
/// the same key. A UA that keeps its key across restarts replaces and
/// removes its own bindings (`Contact: *` included) instead of leaving the
/// old ones beside them.
fn device_key(path: &str) -> crate::Result<[u8; 32]> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let bad =
        |e: std::io::Error| crate::Error::InvalidArgument(format!("device_key_file {path:?}: {e}"));
    if std::path::Path::new(path).exists() {
        return secret_file("device_key_file", path);
    }
    let tmp = format!(
        "{path}.{}.{:016x}.new",
        std::process::id(),
        rand::random::<u64>()
    );
    let secret = crate::owner::random_secret();
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(format!("{}\n", crate::owner::hex(&secret)).as_bytes())?;
            f.sync_all()
        })
        .and_then(|_| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    // The link itself must survive a power loss, or a fresh key would be
    // made at the next start: the directory entry is synced too.
    if written.is_ok() {
        let dir = std::path::Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    match written {
        Ok(()) => Ok(secret),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            secret_file("device_key_file", path)
        }
        Err(e) => Err(bad(e)),
    }
}

/// A secret from a file of 64 hex digits (as `chordsip keygen` writes).
fn secret_file(name: &str, path: &str) -> crate::Result<[u8; 32]> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| crate::Error::InvalidArgument(format!("{name} {path:?}: {e}")))?;
    crate::owner::parse_secret(&text).ok_or_else(|| {
        crate::Error::InvalidArgument(format!(
            "{name} {path:?}: 64 hex digits expected (chordsip keygen)"
        ))
    })
}

impl LogLevel {
    /// `off`, `error`, `warn`, `info`, `debug`, `trace`, or 0..=5.
    pub fn parse(s: &str) -> crate::Result<LogLevel> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "off" | "0" => LogLevel::Off,
            "error" | "1" => LogLevel::Error,
            "warn" | "warning" | "2" => LogLevel::Warn,
            "info" | "3" => LogLevel::Info,
            "debug" | "4" => LogLevel::Debug,
            "trace" | "5" => LogLevel::Trace,
            _ => {
                return Err(crate::Error::InvalidArgument(format!(
                    "log level {s:?}: off, error, warn, info, debug or trace"
                )))
            }
        })
    }

    pub fn from_u32(v: u32) -> Option<LogLevel> {
        [
            LogLevel::Off,
            LogLevel::Error,
            LogLevel::Warn,
            LogLevel::Info,
            LogLevel::Debug,
            LogLevel::Trace,
        ]
        .get(v as usize)
        .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_by_name() {
        let mut c = Config::default();
        c.set("listen", "127.0.0.1:5060").unwrap();
        c.set("replicas", "5").unwrap();
        c.set("op_timeout_ms", "1500").unwrap();
        c.set("log_level", "debug").unwrap();
        c.set("client_socket", "/tmp/x.sock").unwrap();
        assert_eq!(c.listen.port(), 5060);
        assert_eq!(c.replicas, 5);
        assert_eq!(c.op_timeout, Duration::from_millis(1500));
        assert_eq!(c.log_level, LogLevel::Debug);
        assert!(c.client_socket.is_some());
        for (n, v) in [
            ("listen", "nowhere"),
            ("replicas", "-1"),
            ("nope", "1"),
            ("node_id", "12"),
            ("log_level", "loud"),
        ] {
            assert!(
                matches!(c.set(n, v), Err(crate::Error::InvalidArgument(_))),
                "{n}={v}"
            );
        }
        c.set("replicas", "100").unwrap();
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.set("location_cache", "0").unwrap();
        assert_eq!(c.location_cache, 0);
        assert!(c.set("location_cache", "-1").is_err());
        c.set("location_cache", "1048577").unwrap();
        assert!(c.validate().is_err());
    }

    #[test]
    fn hybrid_options() {
        let mut c = Config::default();
        c.set("dns_server", "127.0.0.1:5353").unwrap();
        c.set("dns_zone", "Example.Test.").unwrap();
        assert_eq!(c.dns.zone, "example.test");
        assert_eq!(c.dns.domain(), "example.test");
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("routing=one-hop"), "{e}");
        c.set("routing", "one-hop").unwrap();
        c.set("capacity", "250").unwrap();
        c.set("sip_address", "127.0.0.1:5060").unwrap();
        c.validate().unwrap();
        assert_eq!(c.routing, RoutingMode::OneHop);
        assert!(c.set("routing", "two-hop").is_err());
        assert!(c.set("dns_zone", "bad name!").is_err());
        assert!(c.set("capacity", "0").is_ok() && c.validate().is_err());
    }
}
