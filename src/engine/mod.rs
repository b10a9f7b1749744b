//! The node's protocol engine: Chord maintenance, iterative lookups, replicated
//! storage. Sans-I/O: it never touches a socket, a clock or a thread. The
//! caller feeds it datagrams, the current time and API requests, and drains
//! datagrams to send, completed operations and events. The UDP runtime and the
//! in-memory test network drive the very same engine.
//!
//! This file holds the engine's state, its inputs and outputs and the timer
//! loop; each concern lives in a file of its own:
//! - [`ops`]: the API entry points and the bookkeeping of operations;
//! - [`rpc`]: requests, retransmission, round-trip times, the rate limit;
//! - [`admission`]: receiver binding, replay cache, node signatures and
//!   return routability (cookies) before a request is served;
//! - [`dispatch`]: routing of requests, responses and failures to the concerns;
//! - [`lookup`]: the iterative lookup state machine and the check of its answer;
//! - [`maintain`]: join, stabilize, notify, predecessor check, fingers,
//!   failure suspicion and the merge of rings split by the network;
//! - [`primary`]: storing and serving as the node responsible for a key;
//! - [`replicate`]: replica sync, handoff of keys, and the graceful leave;
//! - [`dict`]: the originator side of puts and gets, and their retries;
//! - [`serve`]: the service of client handles;
//! - [`txn`]: the atomic read-plan-write transaction on one key.

mod admission;
mod announce;
mod dict;
mod dispatch;
mod lookup;
mod maintain;
mod members;
mod ops;
mod owner_probe;
mod placement;
mod primary;
mod replicate;
mod rpc;
mod serve;
#[cfg(test)]
mod tests;
mod txn;

pub use crate::types::{LookupOutcome, OpId, StoreReceipt, Value};
pub use crate::wire::{error_of, status_of};

use self::lookup::{Lookup, LookupFor};
use self::maintain::MERGE_EVERY_US;
use self::primary::PendingReplication;
use self::replicate::LeaveState;
use self::rpc::{Rpc, Rtt};
use self::txn::{QueuedTxn, TxnJob};
use crate::config::{Config, LogLevel};
use crate::error::Error;
use crate::id::Id;
use crate::identity::{NodeKey, PairKeys, ProofChecker};
use crate::membership::Membership;
use crate::owner::{Owner, Verifier, WriterKey};
use crate::routing::{LocationCache, RoutingTable};
use crate::stats::Stats;
use crate::storage::Store;
use crate::wire::{Codec, MemberRecord, NodeInfo, WireEntry};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq)]
pub enum OpResult {
    Lookup(Result<LookupOutcome, Error>),
    Put(Result<StoreReceipt, Error>),
    Get(Result<Vec<Value>, Error>),
    Join(Result<(), Error>),
    Leave(Result<(), Error>),
    Ping(Result<Duration, Error>),
    /// A transaction ended (`Engine::transaction`); its answer is in the
    /// transaction object.
    Transaction(Result<(), Error>),
}

/// `OpResult::into_put()` and friends: the result of an operation of a known kind.
/// A result of another kind cannot happen (operation ids are unique per node);
/// should it, it reads as an error instead of being dropped.
macro_rules! result_of_kind {
    ($($method:ident => $variant:ident: $t:ty),* $(,)?) => {
        impl OpResult {
            $(
                pub fn $method(self) -> Result<$t, Error> {
                    match self {
                        OpResult::$variant(r) => r,
                        other => Err(Error::Io(format!(
                            "{} expected, got {other:?}",
                            stringify!($variant)
                        ))),
                    }
                }
            )*
        }
    };
}

result_of_kind! {
    into_lookup => Lookup: LookupOutcome,
    into_put => Put: StoreReceipt,
    into_get => Get: Vec<Value>,
    into_join => Join: (),
    into_leave => Leave: (),
    into_ping => Ping: Duration,
    into_transaction => Transaction: (),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub op: OpId,
    pub result: OpResult,
}

/// A datagram for the transport to send.
#[derive(Clone, Debug)]
pub struct Transmit {
    pub to: SocketAddr,
    pub data: Vec<u8>,
}

/// Something the host may want to know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    PredecessorChanged(Option<NodeInfo>),
    SuccessorChanged(Option<NodeInfo>),
    /// Entries arrived that this node now holds (join handoff, replication, repair).
    KeysIn(usize),
    /// Entries this node handed away and dropped.
    KeysOut(usize),
    /// A one-hop overlay: a member joined (or announced new details).
    MemberUp(MemberRecord),
    /// A one-hop overlay: a member left or failed.
    MemberDown(NodeInfo),
    /// This node publishes the overlay's members in DNS (it is responsible
    /// for the published domain): the live members, and the ids of members
    /// removed lately whose records must go.
    Publish {
        members: Vec<MemberRecord>,
        removed: Vec<Id>,
    },
    /// Another member publishes now.
    PublishStopped,
    Log(LogLevel, String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Idle,
    Joining,
    Joined,
    Leaving,
    Left,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OpKind {
    Lookup,
    Put,
    Get,
    Join,
    Leave,
    Ping,
    Transaction,
}

impl OpKind {
    fn fail(self, e: Error) -> OpResult {
        match self {
            OpKind::Lookup => OpResult::Lookup(Err(e)),
            OpKind::Put => OpResult::Put(Err(e)),
            OpKind::Get => OpResult::Get(Err(e)),
            OpKind::Join => OpResult::Join(Err(e)),
            OpKind::Leave => OpResult::Leave(Err(e)),
            OpKind::Ping => OpResult::Ping(Err(e)),
            OpKind::Transaction => OpResult::Transaction(Err(e)),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Rpc(u64),
    Lookup(u64),
    LookupRetry(u64),
    /// A put or get that met a node not (yet) responsible tries again.
    OpRetry(OpId),
}

const EXPIRE_EVERY_US: u64 = 1_000_000;

/// One Chord node's complete protocol state.
pub struct Engine {
    cfg: Config,
    me: NodeInfo,
    codec: Codec,
    rt: RoutingTable,
    /// Nodes named by recent answers: a Chord lookup's likely owner.
    locations: LocationCache,
    store: Store,
    /// Signs this node's writes; the verifier checks everyone else's.
    writer: WriterKey,
    /// The node key as a writer: signs this node's ability announcements.
    announcer: WriterKey,
    announce: announce::Announcements,
    verifier: Verifier,
    /// Checks the node signatures on membership and data messages.
    proofs: ProofChecker,
    /// The keys shared with peers, for pair proofs.
    pair_keys: PairKeys,
    /// Peers' node public keys, checked against their ids: whom this node
    /// can prove its requests to with a pair proof.
    peer_keys: HashMap<Id, [u8; 32]>,
    /// The request being served carried a signature: its answer names our
    /// key, so that its sender can use pair proofs with us from now on.
    reply_with_key: bool,
    /// Makes the cookies that prove a requester receives at its address.
    cookie_secret: [u8; 32],
    /// Cookies other nodes gave us for our address, by their address.
    cookies: HashMap<SocketAddr, u64>,
    budgets: admission::Budgets,
    replays: admission::ReplayCache,
    rng: ChaCha8Rng,
    phase: Phase,
    now: u64,
    wall_offset_ms: u64,
    next_request: u64,
    next_lookup: u64,
    next_pending: u64,
    rpcs: HashMap<u64, Rpc>,
    lookups: HashMap<u64, Lookup>,
    /// Puts and gets waiting to be routed again.
    op_retries: HashMap<OpId, LookupFor>,
    /// Live API operations: kind and absolute deadline.
    ops: HashMap<OpId, (OpKind, u64)>,
    /// The live operations by deadline. Apart from `timers`: most operations
    /// end at once (a key this node holds), and a heap keeps a dead timer
    /// until its deadline, so a busy registrar popped thousands a second.
    op_deadlines: BTreeSet<(u64, OpId)>,
    replications: HashMap<u64, PendingReplication>,
    /// Copies of this step's writes, to be sent per holder (flush_replicates).
    replicate_outbox: Vec<(NodeInfo, Id, WireEntry, u64)>,
    /// Stores received in this step, served together (flush_stores).
    store_inbox: Vec<(Id, WireEntry, primary::ReplyTo)>,
    timers: BinaryHeap<Reverse<(u64, Timer)>>,
    suspects: HashMap<Id, u64>,
    rtt: HashMap<SocketAddr, Rtt>,
    next_stabilize: u64,
    next_check_pred: u64,
    next_fix_finger: u64,
    next_sync: u64,
    next_expire: u64,
    next_merge: u64,
    /// Transactions run for client handles, and which job each internal operation serves.
    transactions: HashMap<u64, TxnJob>,
    /// Keys with a transaction running, and the ones waiting behind it.
    txn_queue: HashMap<Id, std::collections::VecDeque<QueuedTxn>>,
    /// Keys whose transaction ended while [`Engine::txn_next`] ran.
    txn_ready: Vec<Id>,
    txn_draining: bool,
    txn_ops: HashMap<OpId, u64>,
    last_version: u64,
    /// Nodes that left gracefully: (their Leaving's timestamp, when we heard it).
    departed: HashMap<Id, maintain::Departed>,
    /// Per-source request budgets: (tokens, last refill).
    buckets: HashMap<SocketAddr, (f64, u64)>,
    /// Peers that stopped answering (and when to forget them): after a split
    /// heals they lead back to the other part of the ring.
    remembered: Vec<(NodeInfo, u64)>,
    merge_cursor: usize,
    next_finger: usize,
    handoffs_in_flight: usize,
    /// Entries of each handed-off key still unanswered, and whether all
    /// answered so far were taken.
    handoff_entries: HashMap<Id, (usize, bool)>,
    leave: Option<LeaveState>,
    last_pred: Option<Id>,
    last_succ: Option<Id>,
    /// Operations run for client handles: op -> (client address, request id).
    client_ops: HashMap<OpId, (SocketAddr, u64)>,
    client_reqs: HashMap<(SocketAddr, u64), OpId>,
    /// Lookups (by operation) that record their path (`trace`).
    traced_ops: HashSet<OpId>,
    next_client_op: u64,
    /// The full membership (one-hop mode; empty otherwise).
    members: Membership,
    /// This incarnation's announcement time (ms), in its member record.
    my_since_ms: u64,
    next_member_sync: u64,
    /// The table version the fingers were derived from.
    fingers_version: u64,
    /// Hash of the DNS domain this overlay publishes (its member publishes).
    publish_key: Option<Id>,
    publishing: bool,
    published: u64,
    next_republish: u64,
    /// Which of this node's arcs the next replica sync starts at (virtual points).
    arc_cursor: usize,
    /// The table holds the whole membership (the join sync is over): only
    /// then may it place keys (virtual points).
    members_ready: bool,
    /// The table version whose misplaced keys were all handed off (virtual points).
    placement_scanned: Option<u64>,
    /// The peer that refused our join because it routes in the other mode.
    mode_refused_by: Option<SocketAddr>,
    stats: Stats,
    transmits: Vec<Transmit>,
    completions: Vec<Completion>,
    events: Vec<Event>,
}

impl Engine {
    /// A node that will be reachable at `addr`. `seed` drives timer jitter and request ids.
    /// Without `node_key` it draws one from `seed` (the Node API draws it
    /// from the OS); the node id derives from the key unless `node_id` is set.
    pub fn new(cfg: Config, addr: SocketAddr, seed: u64, wall_offset_ms: u64) -> Engine {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ Id::from_addr(&addr).high_u64());
        let node_secret: [u8; 32] = cfg.node_key.unwrap_or_else(|| rng.gen());
        let node_key = NodeKey::from_secret(&node_secret);
        let announcer = WriterKey::from_secret(&node_secret);
        let id = cfg.node_id.unwrap_or_else(|| node_key.id());
        let me = NodeInfo { id, addr };
        let codec = Codec::new(&cfg.overlay, cfg.overlay_key.as_deref(), cfg.max_datagram)
            .with_client_key(cfg.client_key.as_deref())
            .with_signer(Arc::new(node_key.clone()));
        let next_request = rng.gen::<u64>() >> 1;
        let cookie_secret = rng.gen();
        let writer = WriterKey::from_secret(&cfg.writer_key.unwrap_or_else(|| rng.gen()));
        let mut verifier = Verifier::default();
        verifier.trust_tags_of(&writer);
        // This node's own key keeps room under every key, as trusted keys do.
        let mut limits = cfg.limits.clone();
        limits.main_writers.push(*writer.owner());
        let open_off_loopback = cfg.overlay_key.is_none() && !addr.ip().is_loopback();
        let virtual_nodes = match cfg.routing {
            crate::config::RoutingMode::OneHop => cfg.virtual_nodes,
            crate::config::RoutingMode::MultiHop => 1,
        };
        let announce = announce::Announcements {
            list: cfg.abilities.clone(),
            ..Default::default()
        };
        let mut engine = Engine {
            writer,
            announcer,
            announce,
            verifier,
            proofs: ProofChecker::default(),
            pair_keys: PairKeys::new(node_key),
            peer_keys: HashMap::new(),
            reply_with_key: false,
            cookie_secret,
            cookies: HashMap::new(),
            budgets: admission::Budgets::default(),
            replays: admission::ReplayCache::default(),
            rt: RoutingTable::new(
                me,
                cfg.successors,
                cfg.replicas.max(3) + replicate::HOLDER_SLACK,
            ),
            locations: LocationCache::new(cfg.location_cache, owner_probe::LOCATION_FRESH_US),
            store: Store::new(limits),
            cfg,
            me,
            codec,
            rng,
            phase: Phase::Idle,
            now: 0,
            wall_offset_ms,
            next_request,
            next_lookup: 1,
            next_pending: 1,
            rpcs: HashMap::new(),
            lookups: HashMap::new(),
            op_retries: HashMap::new(),
            ops: HashMap::new(),
            op_deadlines: BTreeSet::new(),
            replications: HashMap::new(),
            replicate_outbox: Vec::new(),
            store_inbox: Vec::new(),
            timers: BinaryHeap::new(),
            suspects: HashMap::new(),
            rtt: HashMap::new(),
            next_stabilize: 0,
            next_check_pred: 0,
            next_fix_finger: 0,
            next_sync: 0,
            next_expire: 0,
            next_merge: 0,
            buckets: HashMap::new(),
            departed: HashMap::new(),
            transactions: HashMap::new(),
            txn_queue: HashMap::new(),
            txn_ready: Vec::new(),
            txn_draining: false,
            txn_ops: HashMap::new(),
            last_version: 0,
            remembered: Vec::new(),
            merge_cursor: 0,
            next_finger: 0,
            handoffs_in_flight: 0,
            handoff_entries: HashMap::new(),
            leave: None,
            last_pred: None,
            last_succ: None,
            client_ops: HashMap::new(),
            client_reqs: HashMap::new(),
            traced_ops: HashSet::new(),
            next_client_op: 0,
            members: Membership::with_virtual_nodes(virtual_nodes),
            arc_cursor: 0,
            placement_scanned: None,
            members_ready: false,
            my_since_ms: 0,
            next_member_sync: 0,
            fingers_version: u64::MAX,
            publish_key: None,
            publishing: false,
            published: 0,
            next_republish: 0,
            mode_refused_by: None,
            stats: Stats::default(),
            transmits: Vec::new(),
            completions: Vec::new(),
            events: Vec::new(),
        };
        if engine.cfg.routing == crate::config::RoutingMode::OneHop
            && engine.cfg.dns.server.is_some()
        {
            engine.publish_key = Some(Id::from_name(engine.cfg.dns.domain()));
        }
        if open_off_loopback {
            engine.log(LogLevel::Warn, || {
                format!(
                    "open overlay on {addr}: no overlay key, so anyone who reaches this \
                     node may join, read and write (open_overlay)"
                )
            });
        }
        engine
    }

    pub fn me(&self) -> &NodeInfo {
        &self.me
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn routing(&self) -> &RoutingTable {
        &self.rt
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// How this node encodes its datagrams (its keys, its signature).
    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    /// The public key this node signs its writes with: whose slots they fill.
    pub fn owner(&self) -> &Owner {
        self.writer.owner()
    }

    /// Statistics, with the storage gauges filled in.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.joined = self.phase == Phase::Joined;
        s.entries_checked_signature = self.verifier.by_signature;
        s.entries_checked_tag = self.verifier.by_tag;
        s.stored_keys = self.store.key_count() as u64;
        s.stored_entries = self.store.entry_count() as u64;
        s.stored_value_bytes = self.store.value_bytes() as u64;
        s.members = self.members.len() as u64;
        s.dns_publisher = self.publishing as u64;
        s.primary_entries = match self.rt.predecessor() {
            _ if self.by_points() => self.primary_entry_count(),
            Some(p) => self
                .store
                .keys_in(&p.id, &self.me.id)
                .iter()
                .map(|k| self.store.entries(k, self.now).len() as u64)
                .sum(),
            None => s.stored_entries,
        };
        s
    }

    pub fn drain_transmits(&mut self) -> std::vec::Drain<'_, Transmit> {
        self.transmits.drain(..)
    }

    pub fn drain_completions(&mut self) -> std::vec::Drain<'_, Completion> {
        self.completions.drain(..)
    }

    pub fn drain_events(&mut self) -> std::vec::Drain<'_, Event> {
        self.events.drain(..)
    }

    /// Counts a datagram the transport could not send.
    pub fn record_send_error(&mut self) {
        self.stats.send_errors += 1;
    }

    pub fn has_output(&self) -> bool {
        !self.transmits.is_empty() || !self.completions.is_empty() || !self.events.is_empty()
    }

    /// When `handle_timeout` must next be called (absolute microseconds).
    pub fn next_timeout(&self) -> Option<u64> {
        if !self.replicate_outbox.is_empty() || !self.store_inbox.is_empty() {
            return Some(self.now);
        }
        let mut t = self.timers.peek().map(|Reverse((t, _))| *t);
        if let Some(&(d, _)) = self.op_deadlines.first() {
            t = Some(t.map_or(d, |x| x.min(d)));
        }
        if matches!(self.phase, Phase::Joined | Phase::Leaving) {
            for p in [
                self.next_stabilize,
                self.next_check_pred,
                self.next_fix_finger,
                self.next_member_sync,
                self.next_sync,
                self.next_expire,
                self.next_merge,
            ] {
                t = Some(t.map_or(p, |x| x.min(p)));
            }
            if let Some(p) = self.next_announce().filter(|_| self.phase == Phase::Joined) {
                t = Some(t.map_or(p, |x| x.min(p)));
            }
        }
        t
    }

    /// Runs every timer that is due.
    pub fn handle_timeout(&mut self, now: u64) {
        self.now = now;
        self.flush_stores();
        self.flush_replicates();
        while let Some(Reverse((t, timer))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            match timer {
                Timer::Rpc(id) => self.rpc_timer(id, t),
                Timer::Lookup(id) => {
                    if let Some(l) = self.lookups.remove(&id) {
                        self.lookup_failed(l, Error::Timeout);
                    }
                }
                Timer::LookupRetry(id) => {
                    if let Some(mut l) = self.lookups.remove(&id) {
                        l.tried.clear();
                        if let lookup::LookupFor::Join { via, .. } = l.purpose {
                            l.candidates = vec![lookup::Candidate {
                                addr: via,
                                id: None,
                            }];
                            self.lookup_next(id, l);
                            continue;
                        }
                        match self.local_route(&l.key, l.purpose.is_for_data()) {
                            Ok(nodes) => self.lookup_done(l, nodes),
                            Err(candidates) => {
                                l.candidates = candidates;
                                self.lookup_next(id, l);
                            }
                        }
                    }
                }
                Timer::OpRetry(op) => {
                    if let Some(purpose) = self.op_retries.remove(&op) {
                        if self.op_live(op) {
                            self.reroute(op, purpose);
                        }
                    }
                }
            }
        }
        while let Some(&(t, op)) = self.op_deadlines.first() {
            if t > now {
                break;
            }
            self.op_deadlines.pop_first();
            self.op_retries.remove(&op);
            if let Some((kind, _)) = self.ops.get(&op).copied() {
                if kind == OpKind::Leave {
                    self.finish_leave(Err(Error::Timeout));
                } else {
                    self.count_failure(kind);
                    self.complete(op, kind.fail(Error::Timeout));
                }
            }
        }
        if matches!(self.phase, Phase::Joined | Phase::Leaving) {
            if now >= self.next_stabilize {
                self.next_stabilize = now + self.jitter(self.cfg.stabilize_interval);
                self.stabilize();
            }
            if now >= self.next_check_pred {
                self.next_check_pred = now + self.jitter(self.cfg.check_predecessor_interval);
                self.check_predecessor();
            }
            if now >= self.next_fix_finger {
                self.next_fix_finger = now + self.jitter(self.cfg.fix_fingers_interval);
                if self.phase == Phase::Joined {
                    if self.one_hop() {
                        self.fingers_from_table();
                        self.check_publication();
                    } else {
                        self.fix_next_finger();
                    }
                }
            }
            if now >= self.next_member_sync {
                self.next_member_sync = match self.one_hop() {
                    true => now + self.jitter(self.cfg.membership_sync_interval),
                    false => u64::MAX,
                };
                if self.phase == Phase::Joined && self.one_hop() {
                    self.sync_members();
                }
            }
            if now >= self.next_sync {
                self.next_sync = now + self.jitter(self.cfg.sync_interval);
                if self.phase == Phase::Joined {
                    self.sync_replicas();
                }
            }
            if now >= self.next_expire {
                self.next_expire = now + EXPIRE_EVERY_US;
                self.store.expire(now);
            }
            if self.phase == Phase::Joined {
                self.announce_due();
            }
            if now >= self.next_merge {
                self.next_merge = now + self.jitter(Duration::from_micros(MERGE_EVERY_US));
                if self.phase == Phase::Joined {
                    self.probe_remembered();
                }
            }
        }
        self.after_step();
    }

    pub(super) fn jitter(&mut self, d: Duration) -> u64 {
        let base = d.as_micros() as u64;
        let spread = base / 4;
        base - spread + self.rng.gen_range(0..=spread * 2)
    }

    pub(super) fn log(&mut self, level: LogLevel, msg: impl FnOnce() -> String) {
        if level <= self.cfg.log_level && level != LogLevel::Off {
            let text = msg();
            self.events.push(Event::Log(level, text));
        }
    }

    /// Emits neighbour-change events after any step.
    pub(super) fn after_step(&mut self) {
        let pred = self.rt.predecessor().copied();
        let succ = self.rt.successor().copied();
        if pred.map(|p| p.id) != self.last_pred {
            self.last_pred = pred.map(|p| p.id);
            self.events.push(Event::PredecessorChanged(pred));
        }
        if succ.map(|s| s.id) != self.last_succ {
            self.last_succ = succ.map(|s| s.id);
            self.events.push(Event::SuccessorChanged(succ));
        }
    }
}
