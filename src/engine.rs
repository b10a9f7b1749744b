//! The node's protocol engine: Chord maintenance, iterative lookups, replicated
//! storage. Sans-I/O: it never touches a socket, a clock or a thread. The
//! caller feeds it datagrams, the current time and API requests, and drains
//! datagrams to send, completed operations and events. The UDP runtime and the
//! in-memory test network drive the very same engine.

use crate::config::{Config, LogLevel};
use crate::error::Error;
use crate::id::{Id, ID_BITS};
use crate::owner::{self, Owner, Verifier, WriterKey};
use crate::routing::{Answer, RoutingTable};
use crate::sip::binding::{
    plan, Change, Plan, RegisterError, RegisterRequest, RegistrarLimits, StoredBinding,
};
use crate::sip::registrar;
use crate::sip::remote::{self, Outcome};
use crate::stats::Stats;
use crate::storage::{Entry, PutOutcome, Store, StoreError};
use crate::wire::{
    self, Body, Codec, ItemSummary, Message, NodeInfo, Status, WireEntry, FLAG_CLIENT,
    FLAG_RESPONSE,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::SocketAddr;
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

#[derive(Clone, Debug, PartialEq)]
pub enum OpResult {
    Lookup(Result<LookupOutcome, Error>),
    Put(Result<StoreReceipt, Error>),
    Get(Result<Vec<Value>, Error>),
    Join(Result<(), Error>),
    Leave(Result<(), Error>),
    Ping(Result<Duration, Error>),
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
        }
    }
}

/// One binding slot's write in a REGISTER job: (writer, Some((data,
/// lifetime in s))) stores, (writer, None) removes.
type SlotWrite = (Vec<u8>, Option<(Vec<u8>, u32)>);

/// A REGISTER a client handle asked this node to run (ClientRegister): the
/// read of the AOR, then its writes in parallel, then (if one failed) the undo.
#[derive(Debug)]
struct RegisterJob {
    client: (SocketAddr, u64),
    key: Id,
    req: RegisterRequest,
    current: Vec<StoredBinding>,
    plan: Plan,
    pending: usize,
    failed: Option<Error>,
    undoing: bool,
}

/// Where the answer to a primary-side operation goes: a remote requester, or
/// an operation of this node that found itself responsible.
#[derive(Clone, Debug)]
enum ReplyTo {
    Remote { addr: SocketAddr, request_id: u64 },
    LocalPut(Box<PutJob>),
    LocalGet(GetJob),
}

#[derive(Clone, Debug)]
struct PutJob {
    op: OpId,
    key: Id,
    entry: WireEntry,
    attempts: u8,
    /// Who said the node we send to is responsible (distrusted if it is not).
    vouched_by: Option<NodeInfo>,
    /// A node named as responsible was not: check the next one first.
    verify: bool,
}

#[derive(Clone, Debug)]
struct GetJob {
    op: OpId,
    key: Id,
    attempts: u8,
    /// Where the next page starts (None: at the first entry).
    after: Option<Vec<u8>>,
    /// The entries of the pages read so far.
    got: Vec<WireEntry>,
    /// A client handle pages through a key itself: answer after one page.
    page_only: bool,
    /// Who said the node we read from is responsible.
    vouched_by: Option<NodeInfo>,
    verify: bool,
    /// The primary's successors (its replicas), read instead when the
    /// primary answers with forged entries.
    backups: Vec<NodeInfo>,
    /// Reading a replica: its local copy, without the responsibility check.
    from_replica: bool,
}

#[derive(Clone, Debug)]
enum Purpose {
    User(OpId),
    Join {
        op: OpId,
        rest: Vec<SocketAddr>,
    },
    Finger(usize),
    /// Our successor as a remembered peer's ring sees it (merging after a split).
    Merge,
    Put(PutJob),
    Get(GetJob),
    Handoff(Id),
}

#[derive(Clone, Copy, Debug)]
struct Candidate {
    addr: SocketAddr,
    id: Option<Id>,
}

impl From<&NodeInfo> for Candidate {
    fn from(n: &NodeInfo) -> Candidate {
        Candidate {
            addr: n.addr,
            id: Some(n.id),
        }
    }
}

#[derive(Debug)]
struct Lookup {
    key: Id,
    purpose: Purpose,
    started: u64,
    hops: u32,
    candidates: Vec<Candidate>,
    tried: HashSet<SocketAddr>,
    restarts: u8,
    deadline: u64,
    /// The peer whose answer ended the lookup (and the lookup's id): its word
    /// on who is responsible is checked before anyone relies on it.
    vouched_by: Option<(NodeInfo, u64)>,
}

/// What to do when a request is answered or given up on.
#[derive(Debug)]
enum Ctx {
    LookupStep {
        lookup: u64,
    },
    Stabilize {
        succ: NodeInfo,
    },
    CheckPred {
        pred: NodeInfo,
    },
    Notify,
    Store(PutJob),
    Fetch(GetJob),
    FetchFallback {
        key: Id,
        after: Option<Vec<u8>>,
        reply: ReplyTo,
    },
    ReplicateFor {
        pending: u64,
    },
    Push,
    Handoff {
        keys: Vec<Id>,
    },
    SyncDigest {
        peer: NodeInfo,
        lo: Id,
        hi: Id,
    },
    SyncItems {
        peer: NodeInfo,
        items: Vec<ItemSummary>,
    },
    /// Part of a graceful leave; `successor` names the handoff target, whose
    /// failure moves the handoff to the next successor.
    LeaveStep {
        successor: Option<Id>,
    },
    Ping {
        op: OpId,
    },
    /// Asking the node a lookup ended at whether it is responsible.
    Verify {
        id: u64,
        lookup: Box<Lookup>,
        nodes: Vec<NodeInfo>,
        vouched_by: NodeInfo,
    },
    MergeProbe {
        node: NodeInfo,
    },
}

#[derive(Debug)]
struct Rpc {
    to: SocketAddr,
    to_id: Option<Id>,
    data: Vec<u8>,
    sent_at: u64,
    attempts: u32,
    max_attempts: u32,
    rto: u64,
    due: u64,
    ctx: Ctx,
}

#[derive(Debug)]
struct PendingReplication {
    reply: ReplyTo,
    copies: u8,
    outstanding: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Rpc(u64),
    Lookup(u64),
    LookupRetry(u64),
    Op(OpId),
    /// A put or get that met a node not (yet) responsible tries again.
    OpRetry(OpId),
}

#[derive(Clone, Copy, Debug, Default)]
struct Rtt {
    srtt: u64,
    rttvar: u64,
}

#[derive(Debug)]
struct LeaveState {
    op: OpId,
    outstanding: usize,
    failed: bool,
}

/// How long a node that failed to answer is avoided unless it speaks again.
const SUSPECT_US: u64 = 30_000_000;
/// How long a peer that missed one lookup step is avoided by new lookups.
const SOFT_SUSPECT_US: u64 = 2_000_000;
/// A peer is declared failed only after this many unanswered transmissions of one request.
const HARD_FAILURE_ATTEMPTS: u32 = 3;
/// Fresh starts of a lookup whose candidates all failed, and the first pause before one.
const MAX_LOOKUP_RESTARTS: u8 = 8;
const RETRY_BASE_US: u64 = 100_000;
/// Candidates returned per lookup step.
const FANOUT: usize = 3;
/// Storage operations re-route this many times when the ring moves under them.
/// Routings of one put/get; after the first, each waits twice as long as the
/// one before (from 50 ms), so a ring still settling after a join or failure
/// (responsibility moves within a stabilize round) gets time to agree.
const MAX_ATTEMPTS: u8 = 8;
const OP_RETRY_BASE_US: u64 = 50_000;
/// Misplaced keys handed off per sync round.
const HANDOFF_BATCH: usize = 64;
const EXPIRE_EVERY_US: u64 = 1_000_000;
/// How often a node probes one peer that stopped answering, to find the rest
/// of the ring again after a network split heals, and how long it keeps such
/// peers (at most MAX_REMEMBERED).
const MERGE_EVERY_US: u64 = 2_000_000;
const REMEMBER_US: u64 = 3_600_000_000;
const MAX_REMEMBERED: usize = 64;
/// Sources whose request rate is tracked at once.
const MAX_BUCKETS: usize = 65_536;
/// Operation ids of requests run for client handles (never chosen by the API caller).
const CLIENT_OP_BASE: u64 = 1 << 63;
/// Client requests served at once; more are refused with `Full`.
const MAX_CLIENT_OPS: usize = 4096;

/// One Chord node's complete protocol state.
pub struct Engine {
    cfg: Config,
    me: NodeInfo,
    codec: Codec,
    rt: RoutingTable,
    store: Store,
    /// Signs this node's writes; the verifier checks everyone else's.
    writer: WriterKey,
    verifier: Verifier,
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
    op_retries: HashMap<OpId, Purpose>,
    /// Live API operations: kind and absolute deadline.
    ops: HashMap<OpId, (OpKind, u64)>,
    replications: HashMap<u64, PendingReplication>,
    timers: BinaryHeap<Reverse<(u64, Timer)>>,
    suspects: HashMap<Id, u64>,
    rtt: HashMap<SocketAddr, Rtt>,
    next_stabilize: u64,
    next_check_pred: u64,
    next_fix_finger: u64,
    next_sync: u64,
    next_expire: u64,
    next_merge: u64,
    /// REGISTERs run for client handles, and which job each internal operation serves.
    registers: HashMap<u64, RegisterJob>,
    register_ops: HashMap<OpId, u64>,
    last_version: u64,
    /// Nodes that left gracefully: (their Leaving's timestamp, when we heard it).
    departed: HashMap<Id, (u64, u64)>,
    /// Per-source request budgets: (tokens, last refill).
    buckets: HashMap<SocketAddr, (f64, u64)>,
    /// Peers that stopped answering (and when to forget them): after a split
    /// heals they lead back to the other part of the ring.
    remembered: Vec<(NodeInfo, u64)>,
    merge_cursor: usize,
    next_finger: usize,
    handoffs_in_flight: usize,
    leave: Option<LeaveState>,
    last_pred: Option<Id>,
    last_succ: Option<Id>,
    /// Operations run for client handles: op -> (client address, request id).
    client_ops: HashMap<OpId, (SocketAddr, u64)>,
    client_reqs: HashMap<(SocketAddr, u64), OpId>,
    next_client_op: u64,
    stats: Stats,
    transmits: Vec<Transmit>,
    completions: Vec<Completion>,
    events: Vec<Event>,
}

impl Engine {
    /// A node that will be reachable at `addr`. `seed` drives timer jitter and request ids.
    pub fn new(cfg: Config, addr: SocketAddr, seed: u64, wall_offset_ms: u64) -> Engine {
        let id = cfg.node_id.unwrap_or_else(|| Id::from_addr(&addr));
        let me = NodeInfo { id, addr };
        let codec = Codec::new(&cfg.overlay, cfg.overlay_key.as_deref(), cfg.max_datagram);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ id.high_u64());
        let next_request = rng.gen::<u64>() >> 1;
        let writer = WriterKey::from_secret(&cfg.writer_key.unwrap_or_else(|| rng.gen()));
        Engine {
            writer,
            verifier: Verifier::default(),
            rt: RoutingTable::new(me, cfg.successors, cfg.replicas.max(3)),
            store: Store::new(cfg.limits.clone()),
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
            replications: HashMap::new(),
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
            registers: HashMap::new(),
            register_ops: HashMap::new(),
            last_version: 0,
            remembered: Vec::new(),
            merge_cursor: 0,
            next_finger: 0,
            handoffs_in_flight: 0,
            leave: None,
            last_pred: None,
            last_succ: None,
            client_ops: HashMap::new(),
            client_reqs: HashMap::new(),
            next_client_op: 0,
            stats: Stats::default(),
            transmits: Vec::new(),
            completions: Vec::new(),
            events: Vec::new(),
        }
    }

    // ----- introspection -------------------------------------------------

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

    /// The public key this node signs its writes with: whose slots they fill.
    pub fn owner(&self) -> &Owner {
        self.writer.owner()
    }

    /// Statistics, with the storage gauges filled in.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.joined = self.phase == Phase::Joined;
        s.stored_keys = self.store.key_count() as u64;
        s.stored_entries = self.store.entry_count() as u64;
        s.stored_value_bytes = self.store.value_bytes() as u64;
        s.primary_entries = match self.rt.predecessor() {
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

    // ----- outputs -------------------------------------------------------

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
        let mut t = self.timers.peek().map(|Reverse((t, _))| *t);
        if matches!(self.phase, Phase::Joined | Phase::Leaving) {
            for p in [
                self.next_stabilize,
                self.next_check_pred,
                self.next_fix_finger,
                self.next_sync,
                self.next_expire,
                self.next_merge,
            ] {
                t = Some(t.map_or(p, |x| x.min(p)));
            }
        }
        t
    }

    // ----- API -----------------------------------------------------------

    /// Joins through the first bootstrap address that answers, or starts a new
    /// ring when the list is empty (or names only this node).
    pub fn join(&mut self, now: u64, op: OpId, bootstrap: &[SocketAddr], timeout: Duration) {
        self.now = now;
        if !self.begin_op(op, OpKind::Join, timeout) {
            return;
        }
        if !matches!(self.phase, Phase::Idle | Phase::Left) {
            self.complete(
                op,
                OpResult::Join(Err(Error::BadState(
                    "node already joined or joining".into(),
                ))),
            );
            return;
        }
        let mut rest: Vec<SocketAddr> = bootstrap
            .iter()
            .copied()
            .filter(|a| *a != self.me.addr)
            .collect();
        if rest.is_empty() {
            self.log(LogLevel::Info, || "starting a new ring".into());
            self.become_joined(now);
            self.complete(op, OpResult::Join(Ok(())));
            return;
        }
        self.phase = Phase::Joining;
        let first = rest.remove(0);
        self.start_lookup_via(
            self.me.id,
            Purpose::Join { op, rest },
            vec![Candidate {
                addr: first,
                id: None,
            }],
            timeout,
        );
        self.after_step();
    }

    /// Finds the node responsible for `key`.
    pub fn lookup(&mut self, now: u64, op: OpId, key: Id, timeout: Duration) {
        self.now = now;
        if self.begin_op(op, OpKind::Lookup, timeout) && self.require_joined(op, OpKind::Lookup) {
            self.start_lookup(key, Purpose::User(op), timeout);
        }
        self.after_step();
    }

    /// Writes `data` into the writer's slot of `key`'s dictionary.
    #[allow(clippy::too_many_arguments)]
    pub fn put(
        &mut self,
        now: u64,
        op: OpId,
        key: Id,
        writer: &[u8],
        data: &[u8],
        version: u64,
        lifetime: Duration,
        timeout: Duration,
    ) {
        self.now = now;
        let entry = WireEntry::unsigned(
            writer.to_vec(),
            version,
            lifetime.as_millis().min(u32::MAX as u128) as u32,
            false,
            data.to_vec(),
        );
        self.start_put(op, key, entry, timeout);
    }

    /// Removes the writer's entry of `key` (a tombstone with a newer version).
    pub fn remove(
        &mut self,
        now: u64,
        op: OpId,
        key: Id,
        writer: &[u8],
        version: u64,
        timeout: Duration,
    ) {
        self.now = now;
        let lifetime_ms = self
            .cfg
            .tombstone_lifetime
            .as_millis()
            .min(u32::MAX as u128) as u32;
        let entry = WireEntry::unsigned(writer.to_vec(), version, lifetime_ms, true, Vec::new());
        self.start_put(op, key, entry, timeout);
    }

    /// Starts a write of `entry`, whose writer is a label: the node puts it
    /// in its own slot and signs it.
    fn start_put(&mut self, op: OpId, key: Id, mut entry: WireEntry, timeout: Duration) {
        if !self.begin_op(op, OpKind::Put, timeout) || !self.require_joined(op, OpKind::Put) {
            self.after_step();
            return;
        }
        let limits = self.store.limits();
        let err = if limits.check_sizes(&entry.writer, &entry.data).is_err()
            || entry.writer.len() > wire::MAX_LABEL_LEN
        {
            Some(Error::TooLarge)
        } else if entry.lifetime_ms == 0 {
            Some(Error::InvalidArgument("lifetime must be positive".into()))
        } else if entry.lifetime_ms > limits.max_lifetime_ms {
            Some(Error::InvalidArgument(
                "lifetime exceeds the configured maximum".into(),
            ))
        } else {
            None
        };
        if let Some(e) = err {
            self.stats.puts_failed += 1;
            self.complete(op, OpResult::Put(Err(e)));
        } else {
            // Signed when a copy first leaves this node (`export`): a write
            // this node is primary for with no replicas is never signed.
            entry.writer = self.writer.slot(&entry.writer);
            entry.expires_ms = self.wall_ms() + entry.lifetime_ms as u64;
            let job = PutJob {
                op,
                key,
                entry,
                attempts: 0,
                vouched_by: None,
                verify: false,
            };
            let remaining = self.op_remaining(op);
            self.start_lookup(key, Purpose::Put(job), remaining);
        }
        self.after_step();
    }

    /// Reads every live value of `key`, newest first, page by page when they
    /// do not fit in one datagram.
    pub fn get(&mut self, now: u64, op: OpId, key: Id, timeout: Duration) {
        self.now = now;
        self.start_get(op, key, None, false, timeout);
        self.after_step();
    }

    fn start_get(
        &mut self,
        op: OpId,
        key: Id,
        after: Option<Vec<u8>>,
        page_only: bool,
        timeout: Duration,
    ) {
        if self.begin_op(op, OpKind::Get, timeout) && self.require_joined(op, OpKind::Get) {
            let job = GetJob {
                op,
                key,
                attempts: 0,
                after,
                got: Vec::new(),
                page_only,
                vouched_by: None,
                verify: false,
                backups: Vec::new(),
                from_replica: false,
            };
            self.start_lookup(key, Purpose::Get(job), timeout);
        }
    }

    /// Measures the round trip to any peer address.
    pub fn ping(&mut self, now: u64, op: OpId, addr: SocketAddr, timeout: Duration) {
        self.now = now;
        if self.begin_op(op, OpKind::Ping, timeout) {
            self.send_request(
                addr,
                None,
                Body::Ping,
                Ctx::Ping { op },
                self.cfg.rpc_retries + 1,
            );
        }
        self.after_step();
    }

    /// Graceful leave: hand every stored entry to the successor, tell both
    /// neighbours, and finish when they acknowledged or the deadline passed.
    pub fn leave(&mut self, now: u64, op: OpId, timeout: Duration) {
        self.now = now;
        if !self.begin_op(op, OpKind::Leave, timeout) {
            return;
        }
        if self.phase != Phase::Joined {
            self.phase = Phase::Left;
            self.complete(op, OpResult::Leave(Ok(())));
            self.after_step();
            return;
        }
        self.phase = Phase::Leaving;
        self.leave = Some(LeaveState {
            op,
            outstanding: 0,
            failed: false,
        });
        self.log(LogLevel::Info, || "leaving the ring".into());
        let preds = self.rt.predecessors().to_vec();
        let succs = self.rt.successors().to_vec();
        let mut sent = 0;
        if let Some(pred) = preds.first().copied() {
            if Some(pred.id) != succs.first().map(|s| s.id) {
                // A courtesy: a dead predecessor does not fail the leave.
                sent += self.send_request(
                    pred.addr,
                    Some(pred.id),
                    Body::Leaving { preds, succs },
                    Ctx::LeaveStep { successor: None },
                    self.cfg.rpc_retries + 1,
                ) as usize;
            }
        }
        if let Some(l) = self.leave.as_mut() {
            l.outstanding += sent;
        }
        self.leave_handoff();
        self.maybe_finish_leave();
        self.after_step();
    }

    // ----- inputs --------------------------------------------------------

    /// Processes one received datagram. Never panics on bad input.
    pub fn handle_datagram(&mut self, now: u64, from: SocketAddr, data: &[u8]) {
        self.now = now;
        self.stats.msgs_received += 1;
        self.stats.bytes_received += data.len() as u64;
        let msg = match self.codec.decode(data) {
            Ok(m) => m,
            Err(wire::DecodeError::WrongOverlay | wire::DecodeError::BadTag) => {
                self.stats.dropped_unauthenticated += 1;
                return;
            }
            Err(e) => {
                self.stats.dropped_malformed += 1;
                self.log(LogLevel::Debug, || {
                    format!("dropped datagram from {from}: {e}")
                });
                return;
            }
        };
        if self.codec.is_keyed() && !self.fresh(msg.timestamp_ms) {
            // Authentic but old (or from a clock far off): a replay.
            self.stats.dropped_unauthenticated += 1;
            self.log(LogLevel::Debug, || {
                format!("dropped a datagram from {from} outside the replay window")
            });
            return;
        }
        if matches!(self.phase, Phase::Idle | Phase::Left) && msg.flags & FLAG_RESPONSE == 0 {
            return;
        }
        let peer = msg.flags & FLAG_CLIENT == 0;
        if peer && msg.sender != self.me.id {
            self.suspects.remove(&msg.sender);
        }
        if msg.flags & FLAG_RESPONSE != 0 {
            self.handle_response(from, msg);
        } else if self.admit(from) {
            self.handle_request(from, msg);
        } else {
            self.stats.dropped_rate_limited += 1;
        }
        self.after_step();
    }

    /// Per-source token bucket for requests: a flood from one address costs
    /// that address its answers, not everyone else theirs.
    fn admit(&mut self, from: SocketAddr) -> bool {
        let rate = self.cfg.max_requests_per_source;
        if rate == 0 {
            return true;
        }
        let now = self.now;
        if self.buckets.len() >= MAX_BUCKETS && !self.buckets.contains_key(&from) {
            // Forget sources idle for a second (their bucket is full again anyway).
            self.buckets
                .retain(|_, (_, last)| now.saturating_sub(*last) < 1_000_000);
            if self.buckets.len() >= MAX_BUCKETS {
                return false;
            }
        }
        let (tokens, last) = self.buckets.entry(from).or_insert((rate as f64, now));
        let refill = now.saturating_sub(*last) as f64 * rate as f64 / 1e6;
        *tokens = (*tokens + refill).min(rate as f64);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether a datagram's timestamp lies within the replay window of our clock.
    fn fresh(&self, timestamp_ms: u64) -> bool {
        let mine = self.wall_offset_ms + self.now / 1000;
        mine.abs_diff(timestamp_ms) <= self.cfg.replay_window.as_millis() as u64
    }

    /// Runs every timer that is due.
    pub fn handle_timeout(&mut self, now: u64) {
        self.now = now;
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
                        match self.local_route(&l.key) {
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
                Timer::Op(op) => {
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
                    self.fix_next_finger();
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
            if now >= self.next_merge {
                self.next_merge = now + self.jitter(Duration::from_micros(MERGE_EVERY_US));
                if self.phase == Phase::Joined {
                    self.probe_remembered();
                }
            }
        }
        self.after_step();
    }

    // ----- operations bookkeeping ---------------------------------------

    fn begin_op(&mut self, op: OpId, kind: OpKind, timeout: Duration) -> bool {
        if self.ops.contains_key(&op) {
            self.completions.push(Completion {
                op,
                result: kind.fail(Error::InvalidArgument("operation id in use".into())),
            });
            return false;
        }
        let deadline = self.now + timeout.as_micros().min(u64::MAX as u128 / 2) as u64;
        self.ops.insert(op, (kind, deadline));
        self.timers.push(Reverse((deadline, Timer::Op(op))));
        true
    }

    fn require_joined(&mut self, op: OpId, kind: OpKind) -> bool {
        if self.phase == Phase::Joined {
            return true;
        }
        let e = if self.phase == Phase::Leaving {
            Error::Shutdown
        } else {
            Error::NotJoined
        };
        self.complete(op, kind.fail(e));
        false
    }

    fn op_remaining(&self, op: OpId) -> Duration {
        let deadline = self.ops.get(&op).map_or(self.now, |(_, d)| *d);
        Duration::from_micros(deadline.saturating_sub(self.now))
    }

    fn complete(&mut self, op: OpId, result: OpResult) {
        if self.ops.remove(&op).is_none() {
            return;
        }
        if let Some(job) = self.register_ops.remove(&op) {
            self.register_step(job, result);
            return;
        }
        if let Some((addr, rid)) = self.client_ops.remove(&op) {
            self.client_reqs.remove(&(addr, rid));
            let body = client_reply(result);
            self.reply(addr, rid, body);
            return;
        }
        self.completions.push(Completion { op, result });
    }

    /// An operation id for work this node starts on its own behalf.
    fn internal_op(&mut self) -> OpId {
        self.next_client_op += 1;
        CLIENT_OP_BASE | self.next_client_op
    }

    /// A version for a write this node makes itself: wall-clock microseconds,
    /// strictly increasing (like the Node API's).
    /// This node's wall clock, in milliseconds since the Unix epoch.
    fn wall_ms(&self) -> u64 {
        self.wall_offset_ms + self.now / 1000
    }

    /// How much longer than its signed expiry a copy may live: the clock
    /// difference between peers that the replay window tolerates.
    fn expiry_slack_ms(&self) -> u64 {
        self.cfg.replay_window.as_millis().min(u64::MAX as u128) as u64
    }

    /// The lifetime `e` may still have here: what it arrived with, but never
    /// past the expiry its writer signed.
    fn signed_lifetime_ms(&self, e: &WireEntry) -> u32 {
        let left =
            (e.expires_ms.saturating_add(self.expiry_slack_ms())).saturating_sub(self.wall_ms());
        e.lifetime_ms.min(left.min(u32::MAX as u64) as u32)
    }

    /// Signs an entry of this node's own that is about to leave it, once (the
    /// store keeps the signature): writes are stored unsigned by their own
    /// node, which trusts them, until a copy goes to another node.
    fn export(&mut self, key: &Id, e: &mut WireEntry) {
        let mine = owner::split_slot(&e.writer).is_some_and(|(o, _)| o == self.writer.owner());
        if mine && e.signature == [0; 64] {
            self.writer.sign(key, e);
            self.store
                .set_signature(key, &e.writer, e.version, e.tombstone, e.signature);
        }
    }

    /// Whether `e` is signed by the owner of its slot; counts the forgeries.
    fn authentic(&mut self, key: &Id, e: &WireEntry) -> bool {
        let ok = self.verifier.verify(key, e);
        if !ok {
            self.stats.forged_entries += 1;
        }
        ok
    }

    fn next_version(&mut self) -> u64 {
        let wall = self.wall_offset_ms.saturating_mul(1000) + self.now;
        self.last_version = wall.max(self.last_version + 1);
        self.last_version
    }

    /// Starts a REGISTER for a client handle: read the AOR's bindings first.
    fn client_register(&mut self, from: SocketAddr, rid: u64, request: &[u8]) {
        if self.client_reqs.contains_key(&(from, rid)) {
            return; // a retransmission of one still running
        }
        if self.client_reqs.len() >= MAX_CLIENT_OPS {
            self.reply(
                from,
                rid,
                Body::Error {
                    status: Status::Full,
                },
            );
            return;
        }
        let Some(req) = remote::decode_request(request) else {
            let status = Status::BadRequest;
            self.reply(from, rid, Body::Error { status });
            return;
        };
        let key = match registrar::aor_key(&req.to) {
            Ok((_, key)) => key,
            Err(e) => return self.register_answer((from, rid), Outcome::Refused(e)),
        };
        let job = self.internal_op();
        self.client_reqs.insert((from, rid), job);
        self.registers.insert(
            job,
            RegisterJob {
                client: (from, rid),
                key,
                req,
                current: Vec::new(),
                plan: Plan::default(),
                pending: 1,
                failed: None,
                undoing: false,
            },
        );
        let op = self.internal_op();
        self.register_ops.insert(op, job);
        let timeout = self.cfg.op_timeout;
        self.start_get(op, key, None, false, timeout);
    }

    /// One read, write or undo of a REGISTER job finished.
    fn register_step(&mut self, id: u64, result: OpResult) {
        let Some(mut job) = self.registers.remove(&id) else {
            return;
        };
        job.pending = job.pending.saturating_sub(1);
        match result {
            OpResult::Get(Ok(values)) => {
                job.current = registrar::stored_by(values, self.writer.owner());
                match plan(&job.req, &job.current, &RegistrarLimits::default()) {
                    Err(e) => self.register_answer(job.client, Outcome::Refused(e)),
                    Ok(p) => {
                        let limit = self.store.limits().max_value_bytes;
                        let too_large = p.changes.iter().any(|c| {
                            matches!(c, Change::Put { binding, .. } if binding.encode().len() > limit)
                        });
                        if too_large {
                            let e = RegisterError::Bad(format!(
                                "a binding is larger than the overlay's {limit}-byte values"
                            ));
                            return self.register_answer(job.client, Outcome::Refused(e));
                        }
                        job.plan = p;
                        let writes: Vec<SlotWrite> = job
                            .plan
                            .changes
                            .iter()
                            .map(|c| match c {
                                Change::Put {
                                    writer,
                                    binding,
                                    expires,
                                } => (writer.clone(), Some((binding.encode(), *expires))),
                                Change::Remove { writer } => (writer.clone(), None),
                            })
                            .collect();
                        self.register_writes(id, job, writes);
                    }
                }
            }
            OpResult::Get(Err(e)) => self.register_failed(job.client, e),
            OpResult::Put(r) => {
                if let Err(e) = r {
                    job.failed.get_or_insert(e);
                }
                if job.pending > 0 {
                    self.registers.insert(id, job);
                } else if let Some(e) = job.failed.take() {
                    if job.undoing {
                        self.register_failed(job.client, e);
                    } else {
                        // All or nothing: put back what the AOR held before.
                        let undo: Vec<SlotWrite> = job
                            .plan
                            .changes
                            .iter()
                            .map(|c| {
                                let writer = match c {
                                    Change::Put { writer, .. } | Change::Remove { writer } => {
                                        writer
                                    }
                                };
                                let old = job.current.iter().find(|s| s.writer == *writer);
                                let value = old
                                    .filter(|s| s.expires_in_s > 0)
                                    .map(|s| (s.binding.encode(), s.expires_in_s));
                                (writer.clone(), value)
                            })
                            .collect();
                        job.undoing = true;
                        job.failed = Some(e);
                        self.register_writes(id, job, undo);
                    }
                } else if job.undoing {
                    let e = job.failed.take().unwrap_or(Error::Timeout);
                    self.register_failed(job.client, e);
                } else {
                    let plan = std::mem::take(&mut job.plan);
                    self.register_answer(job.client, Outcome::Done { plan, listed: true });
                }
            }
            _ => {}
        }
    }

    /// Issues a job's writes (a value and lifetime, or a removal) in parallel.
    fn register_writes(&mut self, id: u64, mut job: RegisterJob, writes: Vec<SlotWrite>) {
        if writes.is_empty() {
            let plan = std::mem::take(&mut job.plan);
            return self.register_answer(job.client, Outcome::Done { plan, listed: true });
        }
        let key = job.key;
        job.pending = writes.len();
        self.registers.insert(id, job);
        let timeout = self.cfg.op_timeout;
        let tombstone_ms = self
            .cfg
            .tombstone_lifetime
            .as_millis()
            .min(u32::MAX as u128) as u32;
        for (writer, value) in writes {
            let op = self.internal_op();
            self.register_ops.insert(op, id);
            let version = self.next_version();
            let entry = match value {
                Some((data, expires)) => {
                    WireEntry::unsigned(writer, version, expires.saturating_mul(1000), false, data)
                }
                None => WireEntry::unsigned(writer, version, tombstone_ms, true, Vec::new()),
            };
            self.start_put(op, key, entry, timeout);
        }
    }

    fn register_answer(&mut self, client: (SocketAddr, u64), outcome: Outcome) {
        self.client_reqs.remove(&client);
        let budget = self.page_budget().saturating_sub(8);
        let outcome = remote::encode_outcome(&outcome, budget);
        let body = Body::ClientRegisterReply {
            status: Status::Ok,
            outcome,
        };
        self.reply(client.0, client.1, body);
    }

    fn register_failed(&mut self, client: (SocketAddr, u64), e: Error) {
        self.client_reqs.remove(&client);
        let body = Body::ClientRegisterReply {
            status: status_of(&e),
            outcome: Vec::new(),
        };
        self.reply(client.0, client.1, body);
    }

    /// Registers a client request as an operation; None for a retransmission
    /// of one still running, or when too many are running.
    fn client_op(&mut self, from: SocketAddr, rid: u64) -> Option<OpId> {
        if self.client_reqs.contains_key(&(from, rid)) {
            return None;
        }
        if self.client_ops.len() >= MAX_CLIENT_OPS {
            self.reply(
                from,
                rid,
                Body::Error {
                    status: Status::Full,
                },
            );
            return None;
        }
        self.next_client_op += 1;
        let op = CLIENT_OP_BASE | self.next_client_op;
        self.client_ops.insert(op, (from, rid));
        self.client_reqs.insert((from, rid), op);
        Some(op)
    }

    /// A text report for `chordsip ring` / `chordsip stats`.
    pub fn info_text(&self, what: u8) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let fmt_node = |n: &NodeInfo| format!("{} {}", n.id.to_hex(), n.addr);
        if what == 0 {
            let _ = writeln!(out, "node {}", fmt_node(&self.me));
            let _ = writeln!(out, "phase {:?}", self.phase);
            let _ = writeln!(out, "writer {}", owner::hex(self.writer.owner()));
            for (i, p) in self.rt.predecessors().iter().enumerate() {
                let _ = writeln!(out, "predecessor[{i}] {}", fmt_node(p));
            }
            for (i, s) in self.rt.successors().iter().enumerate() {
                let _ = writeln!(out, "successor[{i}] {}", fmt_node(s));
            }
            for (i, f) in self.rt.distinct_fingers() {
                let _ = writeln!(out, "finger[{i}] {}", fmt_node(&f));
            }
            let _ = writeln!(out, "stored_keys {}", self.store.key_count());
            let _ = writeln!(out, "stored_entries {}", self.store.entry_count());
            let mut keys: Vec<&Id> = self.store.all_keys().collect();
            keys.truncate(50);
            for k in keys {
                let _ = writeln!(out, "key {}", k.to_hex());
            }
        } else {
            let s = self.stats();
            let _ = writeln!(
                out,
                "msgs_sent {}\nmsgs_received {}\nbytes_sent {}\nbytes_received {}",
                s.msgs_sent, s.msgs_received, s.bytes_sent, s.bytes_received
            );
            let _ = writeln!(
                out,
                "dropped_malformed {}\ndropped_unauthenticated {}\ndropped_unmatched {}\ndropped_rate_limited {}",
                s.dropped_malformed, s.dropped_unauthenticated, s.dropped_unmatched, s.dropped_rate_limited
            );
            let _ = writeln!(
                out,
                "wrong_answers {}\nforged_entries {}",
                s.wrong_answers, s.forged_entries
            );
            let _ = writeln!(
                out,
                "retransmits {}\nsend_errors {}\nrpc_timeouts {}\nnodes_failed_detected {}",
                s.retransmits, s.send_errors, s.rpc_timeouts, s.nodes_failed_detected
            );
            let _ = writeln!(out, "lookups_ok {}\nlookups_failed {}\nputs_ok {}\nputs_failed {}\ngets_ok {}\ngets_failed {}", s.lookups_ok, s.lookups_failed, s.puts_ok, s.puts_failed, s.gets_ok, s.gets_failed);
            let _ = writeln!(
                out,
                "hops_mean {:.3}\nhops_p99 {}",
                s.hops.mean(),
                s.hops.quantile(0.99)
            );
            let _ = writeln!(
                out,
                "lookup_latency_p50_us {}\nlookup_latency_p99_us {}",
                s.lookup_latency_us.quantile(0.5),
                s.lookup_latency_us.quantile(0.99)
            );
            let _ = writeln!(
                out,
                "stored_keys {}\nstored_entries {}\nprimary_entries {}\nstored_value_bytes {}",
                s.stored_keys, s.stored_entries, s.primary_entries, s.stored_value_bytes
            );
        }
        out
    }

    fn count_failure(&mut self, kind: OpKind) {
        match kind {
            OpKind::Lookup => self.stats.lookups_failed += 1,
            OpKind::Put => self.stats.puts_failed += 1,
            OpKind::Get => self.stats.gets_failed += 1,
            _ => {}
        }
    }

    fn op_live(&self, op: OpId) -> bool {
        self.ops.contains_key(&op)
    }

    fn jitter(&mut self, d: Duration) -> u64 {
        let base = d.as_micros() as u64;
        let spread = base / 4;
        base - spread + self.rng.gen_range(0..=spread * 2)
    }

    fn log(&mut self, level: LogLevel, msg: impl FnOnce() -> String) {
        if level <= self.cfg.log_level && level != LogLevel::Off {
            let text = msg();
            self.events.push(Event::Log(level, text));
        }
    }

    /// Emits neighbour-change events after any step.
    fn after_step(&mut self) {
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

    fn become_joined(&mut self, now: u64) {
        self.phase = Phase::Joined;
        self.next_stabilize = now;
        self.next_check_pred = now + self.jitter(self.cfg.check_predecessor_interval);
        self.next_fix_finger = now;
        self.next_sync = now + self.jitter(self.cfg.sync_interval);
        self.next_expire = now + EXPIRE_EVERY_US;
    }

    fn usable(&self, n: &NodeInfo) -> bool {
        match self.suspects.get(&n.id) {
            Some(until) => *until <= self.now,
            None => true,
        }
    }

    // ----- sending -------------------------------------------------------

    fn header(&self, request_id: u64, flags: u8, body: Body) -> Message {
        Message {
            flags,
            overlay: self.codec.overlay(),
            request_id,
            timestamp_ms: self.wall_offset_ms + self.now / 1000,
            sender: self.me.id,
            body,
        }
    }

    fn rto(&self, addr: &SocketAddr) -> u64 {
        let min = self.cfg.rpc_timeout_min.as_micros() as u64;
        let max = self.cfg.rpc_timeout_max.as_micros() as u64;
        match self.rtt.get(addr) {
            Some(r) => (r.srtt + 4 * r.rttvar).clamp(min, max),
            None => (self.cfg.rpc_timeout_initial.as_micros() as u64).clamp(min, max),
        }
    }

    /// Sends a request and tracks it until answered or given up. Returns false
    /// (and runs the failure path) when it cannot even be encoded.
    fn send_request(
        &mut self,
        to: SocketAddr,
        to_id: Option<Id>,
        body: Body,
        ctx: Ctx,
        max_attempts: u32,
    ) -> bool {
        self.next_request = self.next_request.wrapping_add(1);
        let request_id = self.next_request;
        let msg = self.header(request_id, 0, body);
        let data = match self.codec.encode(&msg) {
            Ok(d) => d,
            Err(e) => {
                self.log(LogLevel::Warn, || format!("cannot encode request: {e:?}"));
                self.rpc_failed(to, to_id, ctx, false, 0);
                return false;
            }
        };
        let rto = self.rto(&to);
        let due = self.now + rto;
        self.stats.msgs_sent += 1;
        self.stats.bytes_sent += data.len() as u64;
        self.transmits.push(Transmit {
            to,
            data: data.clone(),
        });
        self.rpcs.insert(
            request_id,
            Rpc {
                to,
                to_id,
                data,
                sent_at: self.now,
                attempts: 1,
                max_attempts: max_attempts.max(1),
                rto,
                due,
                ctx,
            },
        );
        self.timers.push(Reverse((due, Timer::Rpc(request_id))));
        true
    }

    fn reply(&mut self, to: SocketAddr, request_id: u64, body: Body) {
        let msg = self.header(request_id, FLAG_RESPONSE, body);
        match self.codec.encode(&msg) {
            Ok(data) => {
                self.stats.msgs_sent += 1;
                self.stats.bytes_sent += data.len() as u64;
                self.transmits.push(Transmit { to, data });
            }
            Err(e) => self.log(LogLevel::Warn, || format!("cannot encode reply: {e:?}")),
        }
    }

    fn answer(&mut self, reply: ReplyTo, body: Body) {
        match reply {
            ReplyTo::Remote { addr, request_id } => self.reply(addr, request_id, body),
            ReplyTo::LocalPut(job) => {
                if let Body::StoreReply { status, copies } = body {
                    let me = self.me;
                    self.store_reply(*job, me, status, copies);
                }
            }
            ReplyTo::LocalGet(job) => {
                if let Body::FetchReply {
                    status,
                    entries,
                    next,
                } = body
                {
                    let me = self.me;
                    self.fetch_reply(job, me, status, entries, next);
                }
            }
        }
    }

    fn rpc_timer(&mut self, id: u64, t: u64) {
        let Some(rpc) = self.rpcs.get_mut(&id) else {
            return;
        };
        if rpc.due != t {
            return;
        }
        if rpc.attempts < rpc.max_attempts {
            rpc.attempts += 1;
            rpc.rto = (rpc.rto * 2).min(self.cfg.rpc_timeout_max.as_micros() as u64);
            rpc.due = self.now + rpc.rto;
            let (to, data, due) = (rpc.to, rpc.data.clone(), rpc.due);
            self.stats.retransmits += 1;
            self.stats.msgs_sent += 1;
            self.stats.bytes_sent += data.len() as u64;
            self.transmits.push(Transmit { to, data });
            self.timers.push(Reverse((due, Timer::Rpc(id))));
        } else if let Some(rpc) = self.rpcs.remove(&id) {
            self.stats.rpc_timeouts += 1;
            self.rpc_failed(rpc.to, rpc.to_id, rpc.ctx, true, rpc.attempts);
        }
    }

    /// A peer stopped answering: avoid it and forget it everywhere.
    fn peer_failed(&mut self, addr: SocketAddr, id: Option<Id>) {
        let Some(id) = id else { return };
        if id == self.me.id {
            return;
        }
        self.log(LogLevel::Info, || {
            format!("peer {} at {addr} is not answering", id.to_hex())
        });
        self.stats.nodes_failed_detected += 1;
        self.remember(NodeInfo { id, addr });
        self.suspects.insert(id, self.now + SUSPECT_US);
        if self.suspects.len() > 4096 {
            let now = self.now;
            self.suspects.retain(|_, until| *until > now);
        }
        self.rt.remove(&id);
        self.repair_successor();
    }

    fn remember(&mut self, node: NodeInfo) {
        let until = self.now + REMEMBER_US;
        if let Some(r) = self.remembered.iter_mut().find(|(n, _)| n.id == node.id) {
            *r = (node, until);
            return;
        }
        if self.remembered.len() >= MAX_REMEMBERED {
            self.remembered.remove(0);
        }
        self.remembered.push((node, until));
    }

    /// Pings one remembered peer that our routing state no longer knows. If it
    /// answers, the network between us works again: [`Self::merge_via`] looks
    /// for our successor in its ring, so two rings formed during a split
    /// merge back into one (stabilize and notify do the rest).
    fn probe_remembered(&mut self) {
        let now = self.now;
        let known: HashSet<Id> = self.rt.known_nodes().iter().map(|n| n.id).collect();
        self.remembered
            .retain(|(n, until)| *until > now && !known.contains(&n.id));
        if self.remembered.is_empty() {
            return;
        }
        self.merge_cursor = (self.merge_cursor + 1) % self.remembered.len();
        let node = self.remembered[self.merge_cursor].0;
        self.send_request(
            node.addr,
            Some(node.id),
            Body::Ping,
            Ctx::MergeProbe { node },
            1,
        );
    }

    /// A remembered peer answered: the first node after us in its view of the
    /// ring may be a closer successor than ours (it is, when the two were
    /// separate rings).
    fn merge_via(&mut self, node: NodeInfo) {
        let key = self.rt.finger_start(0);
        let timeout = self.cfg.op_timeout;
        self.start_lookup_via(key, Purpose::Merge, vec![Candidate::from(&node)], timeout);
    }

    fn merge_found(&mut self, node: NodeInfo) {
        if node.id == self.me.id || !self.usable(&node) {
            return;
        }
        let closer = match self.rt.successor() {
            Some(s) => node.id.in_open(&self.me.id, &s.id),
            None => true,
        };
        if closer {
            self.log(LogLevel::Info, || {
                format!(
                    "merging with the ring of {} {}",
                    node.id.to_hex(),
                    node.addr
                )
            });
            let mut list = vec![node];
            list.extend(self.rt.successors().iter().copied());
            self.rt.set_successors(list);
            self.next_stabilize = self.now;
            self.send_request(node.addr, Some(node.id), Body::Notify, Ctx::Notify, 2);
        }
    }

    /// Keeps a successor whenever any other node is known, so the ring can heal.
    fn repair_successor(&mut self) {
        if self.rt.successor().is_some() {
            return;
        }
        let me = self.me.id;
        let mut best: Option<NodeInfo> = None;
        for n in self.rt.known_nodes() {
            if !self.usable(&n) {
                continue;
            }
            if best.is_none_or(|b| me.distance_to(&n.id) < me.distance_to(&b.id)) {
                best = Some(n);
            }
        }
        if let Some(b) = best {
            self.rt.set_successors([b]);
        }
    }

    // ----- requests ------------------------------------------------------

    fn handle_request(&mut self, from: SocketAddr, msg: Message) {
        let rid = msg.request_id;
        let is_client = msg.flags & FLAG_CLIENT != 0;
        let sender = NodeInfo {
            id: msg.sender,
            addr: from,
        };
        let joined = matches!(self.phase, Phase::Joined | Phase::Leaving);
        match msg.body {
            Body::Ping => self.reply(from, rid, Body::Pong),
            Body::FindSuccessor { key } => {
                if !joined {
                    self.reply(
                        from,
                        rid,
                        Body::Error {
                            status: Status::NotResponsible,
                        },
                    );
                    return;
                }
                let body = match self.rt.answer(&key, |n| self.usable(n), FANOUT) {
                    Answer::Done(mut nodes) => {
                        nodes.truncate(wire::MAX_NODE_LIST);
                        Body::FindReply { done: true, nodes }
                    }
                    Answer::Next(nodes) => Body::FindReply { done: false, nodes },
                };
                self.reply(from, rid, body);
            }
            Body::GetNeighbors => {
                let preds = self.rt.predecessors().to_vec();
                let succs = self.rt.successors().to_vec();
                self.reply(from, rid, Body::Neighbors { preds, succs });
            }
            Body::Notify => {
                // A Notify sent before its sender left (a late retransmission)
                // must not bring the departed node back.
                let stale = self
                    .departed
                    .get(&sender.id)
                    .is_some_and(|(left_at, _)| msg.timestamp_ms <= *left_at);
                if !is_client && joined && sender.id != self.me.id && !stale {
                    self.notified(sender);
                }
                self.reply(from, rid, Body::NotifyAck);
            }
            Body::Leaving { preds, succs } => {
                if !is_client {
                    if self.departed.len() >= MAX_REMEMBERED {
                        let now = self.now;
                        self.departed
                            .retain(|_, (_, seen)| now.saturating_sub(*seen) < SUSPECT_US);
                    }
                    self.departed
                        .insert(sender.id, (msg.timestamp_ms, self.now));
                    self.neighbour_leaving(sender, preds, succs);
                }
                self.reply(from, rid, Body::LeavingAck);
            }
            Body::Store { key, entry } => {
                self.primary_store(
                    key,
                    entry,
                    ReplyTo::Remote {
                        addr: from,
                        request_id: rid,
                    },
                );
            }
            Body::Fetch {
                key,
                replica,
                after,
            } => {
                self.primary_fetch(
                    key,
                    replica,
                    after,
                    Some(from),
                    ReplyTo::Remote {
                        addr: from,
                        request_id: rid,
                    },
                );
            }
            Body::Replicate { items } => {
                let status = self.accept_items(items);
                self.reply(from, rid, Body::ReplicateAck { status });
            }
            Body::SyncDigest {
                lo,
                hi,
                digest,
                count,
            } => {
                let mine = self.store.range_digest(&lo, &hi, self.now);
                let in_sync = mine == (digest, count);
                self.reply(from, rid, Body::SyncDigestReply { in_sync });
                if !in_sync && !is_client {
                    // Offer what we hold too, so the primary can pull what it lacks.
                    self.offer_range(sender, lo, hi);
                }
            }
            Body::SyncItems { items } => {
                let now = self.now;
                let indices: Vec<u16> = items
                    .iter()
                    .enumerate()
                    .filter(|(_, it)| self.store.needs(it, now))
                    .map(|(i, _)| i as u16)
                    .collect();
                self.reply(from, rid, Body::SyncNeed { indices });
            }
            Body::ClientLookup { key } => {
                if let Some(op) = self.client_op(from, rid) {
                    let timeout = self.cfg.op_timeout;
                    self.lookup(self.now, op, key, timeout);
                }
            }
            Body::ClientPut { key, entry } => {
                if let Some(op) = self.client_op(from, rid) {
                    let timeout = self.cfg.op_timeout;
                    self.start_put(op, key, entry, timeout);
                }
            }
            Body::ClientGet { key, after } => {
                if let Some(op) = self.client_op(from, rid) {
                    let timeout = self.cfg.op_timeout;
                    self.start_get(op, key, after, true, timeout);
                }
            }
            Body::ClientRegister { request } => self.client_register(from, rid, &request),
            Body::ClientInfo { what } => {
                let mut text = self.info_text(what).into_bytes();
                text.truncate(
                    self.cfg
                        .max_datagram
                        .saturating_sub(wire::HEADER_LEN + wire::TAG_LEN + 4),
                );
                self.reply(from, rid, Body::ClientInfoReply { text });
            }
            other => {
                self.stats.dropped_malformed += 1;
                self.log(LogLevel::Debug, || {
                    format!("unexpected request {}", other.name())
                });
            }
        }
    }

    /// Rectify: adopt the notifier as predecessor if it is closer (Zave's rule:
    /// a live predecessor is only replaced by a node between it and us).
    fn notified(&mut self, cand: NodeInfo) {
        let old = self.rt.predecessor().copied();
        let adopt = match old {
            None => true,
            Some(p) => cand.id.in_open(&p.id, &self.me.id) || !self.usable(&p),
        };
        if adopt && old.map(|p| p.id) != Some(cand.id) {
            let mut list = vec![cand];
            if let Some(p) = old {
                if p.id != cand.id && self.usable(&p) {
                    list.push(p);
                    list.extend(self.rt.predecessors().iter().skip(1).copied());
                }
            }
            self.rt.set_predecessors(list);
            self.log(LogLevel::Debug, || {
                format!("predecessor is now {}", cand.addr)
            });
            // Hand the newcomer the keys it is now primary for: (old pred, cand].
            if let Some(p) = old {
                if cand.id.in_open(&p.id, &self.me.id) {
                    let keys = self.store.keys_in(&p.id, &cand.id);
                    if !keys.is_empty() {
                        self.push_keys(cand, &keys, || Ctx::Push);
                    }
                }
            }
        }
        if self.rt.successor().is_none() {
            self.rt.set_successors([cand]);
        }
    }

    fn neighbour_leaving(&mut self, who: NodeInfo, preds: Vec<NodeInfo>, succs: Vec<NodeInfo>) {
        self.suspects.insert(who.id, self.now + SUSPECT_US);
        if self.rt.predecessor().map(|p| p.id) == Some(who.id) {
            self.rt.set_predecessors(preds);
        }
        if self.rt.successor().map(|s| s.id) == Some(who.id) {
            let mut list: Vec<NodeInfo> = succs.into_iter().filter(|n| n.id != who.id).collect();
            list.extend(
                self.rt
                    .successors()
                    .iter()
                    .copied()
                    .filter(|n| n.id != who.id),
            );
            self.rt.set_successors(list);
        }
        self.rt.remove(&who.id);
        self.repair_successor();
        if self.rt.successor().is_none() {
            // Last two nodes: the leaver's predecessor list may name us only.
            self.rt.set_predecessors(Vec::new());
        }
        self.next_stabilize = self.now;
    }

    fn primary_store(&mut self, key: Id, mut entry: WireEntry, reply: ReplyTo) {
        let status = if self.phase == Phase::Leaving {
            Some(Status::Leaving)
        } else if self.phase != Phase::Joined || !self.rt.is_responsible(&key) {
            Some(Status::NotResponsible)
        } else if entry.lifetime_ms == 0 {
            Some(Status::BadRequest)
        } else {
            None
        };
        if let Some(status) = status {
            self.answer(reply, Body::StoreReply { status, copies: 0 });
            return;
        }
        let signed = matches!(reply, ReplyTo::LocalPut(_));
        let status = match self.store_entry(key, &entry, signed) {
            Ok(Some(PutOutcome::Stored | PutOutcome::Unchanged)) => Status::Ok,
            Ok(Some(PutOutcome::Stale)) => Status::Stale,
            Ok(None) => Status::BadRequest,
            Err(e) => store_status(e),
        };
        if status != Status::Ok {
            self.answer(reply, Body::StoreReply { status, copies: 0 });
            return;
        }
        let holders: Vec<NodeInfo> = self
            .rt
            .successors()
            .iter()
            .take(self.cfg.replicas.saturating_sub(1))
            .copied()
            .collect();
        if holders.is_empty() {
            self.answer(
                reply,
                Body::StoreReply {
                    status: Status::Ok,
                    copies: 1,
                },
            );
            return;
        }
        self.export(&key, &mut entry);
        let pending = self.next_pending;
        self.next_pending += 1;
        self.replications.insert(
            pending,
            PendingReplication {
                reply,
                copies: 1,
                outstanding: holders.len(),
            },
        );
        for h in holders {
            self.send_request(
                h.addr,
                Some(h.id),
                Body::Replicate {
                    items: vec![(key, entry.clone())],
                },
                Ctx::ReplicateFor { pending },
                self.cfg.rpc_retries + 1,
            );
        }
    }

    fn replication_done(&mut self, pending: u64, ok: bool) {
        let Some(p) = self.replications.get_mut(&pending) else {
            return;
        };
        p.outstanding -= 1;
        if ok {
            p.copies = p.copies.saturating_add(1);
        }
        if p.outstanding == 0 {
            let p = self.replications.remove(&pending).expect("present");
            self.answer(
                p.reply,
                Body::StoreReply {
                    status: Status::Ok,
                    copies: p.copies,
                },
            );
        }
    }

    fn primary_fetch(
        &mut self,
        key: Id,
        replica: bool,
        after: Option<Vec<u8>>,
        requester: Option<SocketAddr>,
        reply: ReplyTo,
    ) {
        if !replica
            && (!matches!(self.phase, Phase::Joined | Phase::Leaving)
                || !self.rt.is_responsible(&key))
        {
            self.answer(
                reply,
                Body::FetchReply {
                    status: Status::NotResponsible,
                    entries: vec![],
                    next: None,
                },
            );
            return;
        }
        let (mut entries, next) = self.local_page(&key, after.as_deref());
        if matches!(reply, ReplyTo::Remote { .. }) {
            entries.iter_mut().for_each(|e| self.export(&key, e));
        }
        if entries.is_empty() && !replica {
            // A new primary may not have received its handoff yet, and a primary
            // that just took over may have missed a write: ask the successor.
            if let Some(s) = self.rt.successor().copied() {
                if Some(s.addr) != requester {
                    self.send_request(
                        s.addr,
                        Some(s.id),
                        Body::Fetch {
                            key,
                            replica: true,
                            after: after.clone(),
                        },
                        Ctx::FetchFallback { key, after, reply },
                        2,
                    );
                    return;
                }
            }
        }
        self.answer(
            reply,
            Body::FetchReply {
                status: Status::Ok,
                entries,
                next,
            },
        );
    }

    /// One page of a key's stored entries (tombstones included, so replicas
    /// learn of removals), after `after` in writer order.
    fn local_page(&self, key: &Id, after: Option<&[u8]>) -> (Vec<WireEntry>, Option<Vec<u8>>) {
        let entries = self
            .store
            .entries(key, self.now)
            .into_iter()
            .map(|e| e.to_wire(self.now))
            .collect();
        page(entries, after, self.page_budget())
    }

    /// Bytes the entries and cursor of a FetchReply may take.
    fn page_budget(&self) -> usize {
        self.cfg
            .max_datagram
            .saturating_sub(wire::HEADER_LEN + wire::TAG_LEN)
    }

    /// Stores a received entry, its lifetime capped at the configured maximum
    /// and at its signed expiry. An entry that would change what is stored
    /// must carry its owner's signature (`signed`: this node signed it itself);
    /// a forged one is refused as a bad request.
    fn store_entry(
        &mut self,
        key: Id,
        e: &WireEntry,
        signed: bool,
    ) -> Result<Option<PutOutcome>, StoreError> {
        let max_lifetime_ms = self.store.limits().max_lifetime_ms;
        let lifetime_ms = self.signed_lifetime_ms(e).min(max_lifetime_ms);
        if lifetime_ms == 0 {
            return Ok(Some(PutOutcome::Unchanged)); // expired on the way
        }
        let mut entry = Entry::from_wire(&key, e, self.now);
        entry.expires_at = self.now + lifetime_ms as u64 * 1000;
        if !signed && self.store.is_news(&key, &entry) && !self.authentic(&key, e) {
            return Ok(None);
        }
        self.store.put(key, entry).map(Some)
    }

    fn accept_items(&mut self, items: Vec<(Id, WireEntry)>) -> Status {
        let mut status = Status::Ok;
        let mut added = 0;
        for (key, e) in items {
            if e.lifetime_ms == 0 {
                continue;
            }
            match self.store_entry(key, &e, false) {
                Ok(Some(PutOutcome::Stored)) => added += 1,
                Ok(Some(_)) => {}
                Ok(None) => status = Status::BadRequest,
                Err(e) => status = store_status(e),
            }
        }
        if added > 0 {
            self.events.push(Event::KeysIn(added));
        }
        status
    }

    /// Sends the entries of `keys` to `to` in datagram-sized Replicate batches.
    fn push_keys(&mut self, to: NodeInfo, keys: &[Id], ctx: impl Fn() -> Ctx) -> usize {
        let now = self.now;
        let items: Vec<(Id, WireEntry)> = keys
            .iter()
            .flat_map(|k| {
                self.store
                    .entries(k, now)
                    .into_iter()
                    .map(move |e| (*k, e.to_wire(now)))
            })
            .collect();
        self.push_items(to, items, ctx, self.cfg.rpc_retries + 1)
    }

    /// Sends `items` to `to` in datagram-sized Replicate batches; returns the requests sent.
    fn push_items(
        &mut self,
        to: NodeInfo,
        mut items: Vec<(Id, WireEntry)>,
        ctx: impl Fn() -> Ctx,
        attempts: u32,
    ) -> usize {
        items.iter_mut().for_each(|(k, e)| self.export(k, e));
        let mut sent = 0;
        for batch in batches(self.body_budget(), items, |(_, e)| {
            wire::replicate_item_len(e)
        }) {
            let body = Body::Replicate { items: batch };
            sent += self.send_request(to.addr, Some(to.id), body, ctx(), attempts) as usize;
        }
        sent
    }

    /// Sends summaries of what we hold in (lo, hi] so `peer` can pull what it lacks.
    fn offer_range(&mut self, peer: NodeInfo, lo: Id, hi: Id) {
        let summaries = self.store.range_summaries(&lo, &hi, self.now);
        for items in batches(self.body_budget(), summaries, wire::summary_item_len) {
            let body = Body::SyncItems {
                items: items.clone(),
            };
            self.send_request(
                peer.addr,
                Some(peer.id),
                body,
                Ctx::SyncItems { peer, items },
                2,
            );
        }
    }

    /// Bytes a message body may take in one datagram.
    fn body_budget(&self) -> usize {
        self.cfg
            .max_datagram
            .saturating_sub(wire::HEADER_LEN + wire::TAG_LEN + 8)
    }

    // ----- responses -----------------------------------------------------

    fn handle_response(&mut self, from: SocketAddr, msg: Message) {
        let Some(rpc) = self.rpcs.get(&msg.request_id) else {
            self.stats.dropped_unmatched += 1;
            return;
        };
        // Only the peer we asked may answer (a forged source still needs the overlay key).
        if rpc.to != from {
            self.stats.dropped_unmatched += 1;
            return;
        }
        let rpc = self.rpcs.remove(&msg.request_id).expect("present");
        if rpc.attempts == 1 {
            self.sample_rtt(from, self.now.saturating_sub(rpc.sent_at));
        }
        let sender = NodeInfo {
            id: msg.sender,
            addr: from,
        };
        if let Body::Error { status } = msg.body {
            self.log(LogLevel::Debug, || format!("{from} answered {status:?}"));
            self.rpc_failed(rpc.to, rpc.to_id, rpc.ctx, false, rpc.attempts);
            return;
        }
        match (rpc.ctx, msg.body) {
            (Ctx::LookupStep { lookup }, Body::FindReply { done, nodes }) => {
                self.lookup_reply(lookup, sender, done, nodes)
            }
            (Ctx::Stabilize { succ }, Body::Neighbors { preds, succs }) => {
                self.stabilize_reply(succ, preds, succs)
            }
            (Ctx::CheckPred { pred }, Body::Neighbors { preds, .. }) => {
                if self.rt.predecessor().map(|p| p.id) == Some(pred.id) {
                    let mut list = vec![pred];
                    list.extend(preds);
                    self.rt.set_predecessors(list);
                }
            }
            (Ctx::Notify, Body::NotifyAck) => {}
            (Ctx::Store(job), Body::StoreReply { status, copies }) => {
                self.store_reply(job, sender, status, copies)
            }
            (
                Ctx::Fetch(job),
                Body::FetchReply {
                    status,
                    entries,
                    next,
                },
            ) => self.fetch_reply(job, sender, status, entries, next),
            (Ctx::FetchFallback { key, after, reply }, Body::FetchReply { entries, next, .. }) => {
                let items = entries.into_iter().map(|e| (key, e)).collect();
                self.accept_items(items);
                let (mut entries, mine_next) = self.local_page(&key, after.as_deref());
                if matches!(reply, ReplyTo::Remote { .. }) {
                    entries.iter_mut().for_each(|e| self.export(&key, e));
                }
                // The successor's page decides whether more follow; ours may be
                // cut shorter by what we already held.
                let next = mine_next.or(next);
                self.answer(
                    reply,
                    Body::FetchReply {
                        status: Status::Ok,
                        entries,
                        next,
                    },
                );
            }
            (Ctx::ReplicateFor { pending }, Body::ReplicateAck { status }) => {
                self.replication_done(pending, status == Status::Ok)
            }
            (Ctx::Push, Body::ReplicateAck { .. }) => {}
            (Ctx::Handoff { keys }, Body::ReplicateAck { status }) => {
                self.handoffs_in_flight = self.handoffs_in_flight.saturating_sub(1);
                if status == Status::Ok {
                    let mut gone = 0;
                    for k in keys {
                        if self.rt.is_holder(&k, self.cfg.replicas) == Some(false) {
                            gone += self.store.remove_key(&k);
                        }
                    }
                    if gone > 0 {
                        self.events.push(Event::KeysOut(gone));
                    }
                }
            }
            (Ctx::SyncDigest { peer, lo, hi }, Body::SyncDigestReply { in_sync }) => {
                if !in_sync {
                    self.offer_range(peer, lo, hi);
                }
            }
            (Ctx::SyncItems { peer, items }, Body::SyncNeed { indices }) => {
                let now = self.now;
                let mut push = Vec::new();
                for i in indices {
                    if let Some(it) = items.get(i as usize) {
                        if let Some(e) = self.store.entry(&it.key, &it.writer, now) {
                            push.push((it.key, e.to_wire(now)));
                        }
                    }
                }
                self.push_items(peer, push, || Ctx::Push, 2);
            }
            (Ctx::LeaveStep { .. }, _) => self.leave_step_done(None),
            (Ctx::MergeProbe { node }, Body::Pong) => self.merge_via(node),
            (
                Ctx::Verify {
                    id,
                    lookup,
                    nodes,
                    vouched_by,
                },
                Body::Neighbors { preds, .. },
            ) => {
                let x = nodes[0];
                let responsible = preds
                    .first()
                    .is_none_or(|p| lookup.key.in_open_closed(&p.id, &x.id));
                if responsible {
                    self.lookup_done(*lookup, nodes);
                } else {
                    self.log(LogLevel::Info, || {
                        format!(
                            "{} {} named {} as responsible for {}, which it is not",
                            vouched_by.id.to_hex(),
                            vouched_by.addr,
                            x.addr,
                            lookup.key.to_hex()
                        )
                    });
                    self.distrust(Some(vouched_by));
                    // The node named wrongly is honest: its predecessors show
                    // who is responsible (checked in turn, like any claim).
                    let mut chain = vec![x];
                    chain.extend(preds);
                    let key = lookup.key;
                    let found = chain
                        .windows(2)
                        .find(|w| key.in_open_closed(&w[1].id, &w[0].id))
                        .map(|w| w[0]);
                    match found {
                        Some(r) if r.id != x.id && self.usable(&r) => {
                            let mut l = *lookup;
                            l.vouched_by = Some((x, id));
                            self.lookup_done(l, vec![r]);
                        }
                        _ => self.retry_lookup_now(id, *lookup),
                    }
                }
            }
            (Ctx::Ping { op }, Body::Pong) => {
                let rtt = Duration::from_micros(self.now.saturating_sub(rpc.sent_at));
                self.complete(op, OpResult::Ping(Ok(rtt)));
            }
            (ctx, body) => {
                self.stats.dropped_malformed += 1;
                self.log(LogLevel::Debug, || {
                    format!("reply {} does not fit {ctx:?}", body.name())
                });
                self.rpc_failed(rpc.to, rpc.to_id, ctx, false, rpc.attempts);
            }
        }
    }

    fn sample_rtt(&mut self, addr: SocketAddr, sample: u64) {
        if self.rtt.len() > 4096 && !self.rtt.contains_key(&addr) {
            self.rtt.clear();
        }
        let r = self.rtt.entry(addr).or_default();
        if r.srtt == 0 {
            r.srtt = sample.max(1);
            r.rttvar = sample / 2;
        } else {
            let err = r.srtt.abs_diff(sample);
            r.rttvar = (3 * r.rttvar + err) / 4;
            r.srtt = (7 * r.srtt + sample) / 8;
        }
    }

    /// A request failed: `timed_out` when the peer never answered (it is then
    /// treated as failed), otherwise it answered with an error or could not be sent.
    fn rpc_failed(
        &mut self,
        to: SocketAddr,
        to_id: Option<Id>,
        ctx: Ctx,
        timed_out: bool,
        attempts: u32,
    ) {
        if timed_out {
            if attempts < HARD_FAILURE_ATTEMPTS {
                // A request that gives up fast (lookup steps, notifications) is no
                // proof of death under packet loss: the peer is only avoided for a moment.
                if let Some(id) = to_id {
                    let until = self.now + SOFT_SUSPECT_US;
                    let e = self.suspects.entry(id).or_insert(until);
                    *e = (*e).max(until);
                }
            } else {
                self.peer_failed(to, to_id);
            }
        }
        match ctx {
            Ctx::LookupStep { lookup } => {
                if let Some(mut l) = self.lookups.remove(&lookup) {
                    l.tried.insert(to);
                    self.lookup_next(lookup, l);
                }
            }
            Ctx::Stabilize { .. } => {
                // Try the next successor right away.
                self.next_stabilize = self.now;
            }
            Ctx::CheckPred { pred } => {
                if timed_out && self.rt.predecessor().map(|p| p.id) == Some(pred.id) {
                    self.rt.remove(&pred.id);
                }
            }
            Ctx::Notify | Ctx::Push => {}
            Ctx::Store(job) => self.retry_put(job),
            Ctx::Fetch(job) => self.retry_get(job),
            Ctx::FetchFallback { key, after, reply } => {
                let (entries, next) = self.local_page(&key, after.as_deref());
                self.answer(
                    reply,
                    Body::FetchReply {
                        status: Status::Ok,
                        entries,
                        next,
                    },
                );
            }
            Ctx::ReplicateFor { pending } => self.replication_done(pending, false),
            Ctx::Handoff { .. } => {
                self.handoffs_in_flight = self.handoffs_in_flight.saturating_sub(1);
            }
            Ctx::SyncDigest { .. } | Ctx::SyncItems { .. } => {}
            Ctx::LeaveStep { successor } => self.leave_step_done(successor),
            Ctx::Ping { op } => self.complete(op, OpResult::Ping(Err(Error::Timeout))),
            Ctx::MergeProbe { .. } => {}
            Ctx::Verify { id, lookup, .. } => self.retry_lookup_now(id, *lookup),
        }
    }

    // ----- lookups -------------------------------------------------------

    /// What this node's own table says about `key`: the responsible node and its
    /// successors, or the first candidates to ask (the successor as a last resort).
    fn local_route(&self, key: &Id) -> Result<Vec<NodeInfo>, Vec<Candidate>> {
        match self.rt.answer(key, |n| self.usable(n), FANOUT) {
            Answer::Done(nodes) => Ok(nodes),
            Answer::Next(nodes) => {
                let mut cands: Vec<Candidate> = nodes.iter().map(Candidate::from).collect();
                if let Some(s) = self.rt.successor() {
                    if !nodes.iter().any(|n| n.id == s.id) {
                        cands.push(Candidate::from(s));
                    }
                }
                Err(cands)
            }
        }
    }

    fn start_lookup(&mut self, key: Id, purpose: Purpose, timeout: Duration) {
        match self.local_route(&key) {
            Ok(nodes) => {
                let l = Lookup {
                    key,
                    purpose,
                    started: self.now,
                    hops: 0,
                    candidates: Vec::new(),
                    tried: HashSet::new(),
                    restarts: 0,
                    deadline: self.now,
                    vouched_by: None,
                };
                self.lookup_done(l, nodes);
            }
            Err(candidates) => self.start_lookup_via(key, purpose, candidates, timeout),
        }
    }

    fn start_lookup_via(
        &mut self,
        key: Id,
        purpose: Purpose,
        candidates: Vec<Candidate>,
        timeout: Duration,
    ) {
        let id = self.next_lookup;
        self.next_lookup += 1;
        let deadline = self.now + timeout.as_micros().min(u64::MAX as u128 / 2) as u64;
        self.timers.push(Reverse((deadline, Timer::Lookup(id))));
        let l = Lookup {
            key,
            purpose,
            started: self.now,
            hops: 0,
            candidates,
            tried: HashSet::new(),
            restarts: 0,
            deadline,
            vouched_by: None,
        };
        self.lookup_next(id, l);
    }

    /// Asks the best untried candidate, or fails when none is left.
    /// A peer pointed a lookup at the wrong node: avoid it for a while.
    fn distrust(&mut self, peer: Option<NodeInfo>) {
        if let Some(p) = peer.filter(|p| p.id != self.me.id) {
            self.stats.wrong_answers += 1;
            self.suspects.insert(p.id, self.now + SOFT_SUSPECT_US);
        }
    }

    /// Starts a lookup again from the local table (same id and deadline).
    fn retry_lookup_now(&mut self, id: u64, l: Lookup) {
        self.lookups.insert(id, l);
        self.timers
            .push(Reverse((self.now, Timer::LookupRetry(id))));
    }

    fn lookup_next(&mut self, id: u64, mut l: Lookup) {
        if let Purpose::User(op)
        | Purpose::Put(PutJob { op, .. })
        | Purpose::Get(GetJob { op, .. }) = &l.purpose
        {
            if !self.op_live(*op) {
                return;
            }
        }
        // Suspected peers are passed over while others remain; when none do,
        // the first of them is tried anyway (under heavy loss most peers have
        // missed an answer lately, and a suspicion is a preference, not a verdict).
        let mut passed_over: Option<Candidate> = None;
        loop {
            let c = match (!l.candidates.is_empty()).then(|| l.candidates.remove(0)) {
                Some(c) => c,
                None => match passed_over.take() {
                    Some(c) => c,
                    None => break,
                },
            };
            if l.tried.contains(&c.addr) {
                continue;
            }
            if let Some(cid) = c.id {
                let usable = self.usable(&NodeInfo {
                    id: cid,
                    addr: c.addr,
                });
                if !usable && !l.candidates.is_empty() {
                    passed_over.get_or_insert(c);
                    continue;
                }
            }
            l.tried.insert(c.addr);
            let key = l.key;
            // Three transmissions per step ride out heavy loss; a join tries
            // its bootstrap peers in turn and should give up on a silent one fast.
            let attempts = if matches!(l.purpose, Purpose::Join { .. }) {
                self.cfg.rpc_retries.min(1) + 1
            } else {
                self.cfg.rpc_retries.min(2) + 1
            };
            self.lookups.insert(id, l);
            self.send_request(
                c.addr,
                c.id,
                Body::FindSuccessor { key },
                Ctx::LookupStep { lookup: id },
                attempts,
            );
            return;
        }
        // Every candidate failed: under loss or churn that is usually transient, so
        // try again from the local table after a pause, until the deadline.
        let delay = RETRY_BASE_US << l.restarts.min(4);
        if l.restarts < MAX_LOOKUP_RESTARTS
            && self.now + delay < l.deadline
            && !matches!(l.purpose, Purpose::Join { .. })
        {
            l.restarts += 1;
            self.timers
                .push(Reverse((self.now + delay, Timer::LookupRetry(id))));
            self.lookups.insert(id, l);
            return;
        }
        self.lookup_failed(l, Error::NoRoute);
    }

    fn lookup_reply(&mut self, id: u64, from: NodeInfo, done: bool, nodes: Vec<NodeInfo>) {
        let Some(mut l) = self.lookups.remove(&id) else {
            return;
        };
        l.hops += 1;
        if done && !nodes.is_empty() {
            let mut nodes = nodes;
            if matches!(l.purpose, Purpose::Join { .. }) && nodes.iter().all(|n| n.id != from.id) {
                // The answerer precedes the joiner: as the last successor-list
                // entry it keeps the joiner attached to the ring even if every
                // successor it was given has just died.
                nodes.push(from);
            }
            l.vouched_by = Some((from, id));
            self.lookup_done(l, nodes);
            return;
        }
        // Only nodes strictly closer to the key than the one that answered count as progress.
        let mut closer: Vec<Candidate> = nodes
            .into_iter()
            .filter(|n| n.id.in_open(&from.id, &l.key) && n.id != self.me.id)
            .map(|n| Candidate::from(&n))
            .collect();
        closer.append(&mut l.candidates);
        let key = l.key;
        closer.sort_by_key(|c| c.id.map(|i| i.distance_to(&key)).unwrap_or(Id::MAX));
        l.candidates = closer;
        self.lookup_next(id, l);
    }

    fn lookup_done(&mut self, mut l: Lookup, nodes: Vec<NodeInfo>) {
        let vouched = l.vouched_by.take();
        // Lookups the caller trusts are checked always; puts and gets once a
        // node named for them turned out not to be responsible (the node
        // itself refuses what is not its own, so trusting first costs nothing).
        let check = match &l.purpose {
            Purpose::User(_) => true,
            Purpose::Put(j) => j.verify,
            Purpose::Get(j) => j.verify,
            _ => false,
        };
        if let (true, Some((v, id))) = (check, vouched) {
            let x = nodes[0];
            if v.id != x.id && x.id != self.me.id {
                // A peer's word that x is responsible is not enough for a result
                // the caller will trust: x itself must place the key between
                // its predecessor and itself.
                let ctx = Ctx::Verify {
                    id,
                    lookup: Box::new(l),
                    nodes,
                    vouched_by: v,
                };
                let tries = self.cfg.rpc_retries + 1;
                self.send_request(x.addr, Some(x.id), Body::GetNeighbors, ctx, tries);
                return;
            }
        }
        let vouched = vouched.map(|(v, _)| v);
        let latency = self.now.saturating_sub(l.started);
        match l.purpose {
            Purpose::User(op) => {
                if self.op_live(op) {
                    self.record_lookup(l.hops, latency);
                    self.complete(
                        op,
                        OpResult::Lookup(Ok(LookupOutcome {
                            node: nodes[0],
                            hops: l.hops,
                            latency: Duration::from_micros(latency),
                        })),
                    );
                }
            }
            Purpose::Join { op, .. } => self.join_found(op, nodes),
            Purpose::Finger(i) => self.finger_found(i, nodes[0]),
            Purpose::Merge => self.merge_found(nodes[0]),
            Purpose::Put(mut job) => {
                if !self.op_live(job.op) {
                    return;
                }
                job.vouched_by = vouched;
                self.record_lookup(l.hops, latency);
                let node = nodes[0];
                if node.id == self.me.id {
                    let (key, entry) = (job.key, job.entry.clone());
                    self.primary_store(key, entry, ReplyTo::LocalPut(Box::new(job)));
                } else {
                    let key = job.key;
                    self.export(&key, &mut job.entry);
                    let body = Body::Store {
                        key: job.key,
                        entry: job.entry.clone(),
                    };
                    self.send_request(
                        node.addr,
                        Some(node.id),
                        body,
                        Ctx::Store(job),
                        self.cfg.rpc_retries + 1,
                    );
                }
            }
            Purpose::Get(mut job) => {
                if !self.op_live(job.op) {
                    return;
                }
                job.vouched_by = vouched;
                self.record_lookup(l.hops, latency);
                let replicas = self.cfg.replicas.saturating_sub(1);
                job.backups = nodes.iter().skip(1).take(replicas).copied().collect();
                job.from_replica = false;
                self.fetch_page(job, nodes[0]);
            }
            Purpose::Handoff(key) => {
                let node = nodes[0];
                self.handoffs_in_flight = self.handoffs_in_flight.saturating_sub(1);
                if node.id != self.me.id {
                    let mut items: Vec<(Id, WireEntry)> = self
                        .store
                        .entries(&key, self.now)
                        .into_iter()
                        .map(|e| (key, e.to_wire(self.now)))
                        .collect();
                    items.iter_mut().for_each(|(k, e)| self.export(k, e));
                    if !items.is_empty() {
                        self.handoffs_in_flight += 1;
                        self.send_request(
                            node.addr,
                            Some(node.id),
                            Body::Replicate { items },
                            Ctx::Handoff { keys: vec![key] },
                            2,
                        );
                    }
                }
            }
        }
    }

    fn record_lookup(&mut self, hops: u32, latency_us: u64) {
        self.stats.lookups_ok += 1;
        self.stats.hops.record(hops as u64);
        self.stats.lookup_latency_us.record(latency_us);
    }

    fn lookup_failed(&mut self, l: Lookup, e: Error) {
        match l.purpose {
            Purpose::User(op) => {
                if self.op_live(op) {
                    self.stats.lookups_failed += 1;
                    self.complete(op, OpResult::Lookup(Err(e)));
                }
            }
            Purpose::Join { op, mut rest } => {
                if rest.is_empty() || !self.op_live(op) {
                    self.phase = Phase::Idle;
                    self.complete(op, OpResult::Join(Err(Error::JoinFailed)));
                } else {
                    let next = rest.remove(0);
                    let remaining = self.op_remaining(op);
                    self.start_lookup_via(
                        self.me.id,
                        Purpose::Join { op, rest },
                        vec![Candidate {
                            addr: next,
                            id: None,
                        }],
                        remaining,
                    );
                }
            }
            Purpose::Finger(_) | Purpose::Merge => {}
            Purpose::Put(job) => {
                if self.op_live(job.op) {
                    self.stats.puts_failed += 1;
                    self.complete(job.op, OpResult::Put(Err(e)));
                }
            }
            Purpose::Get(job) => {
                if self.op_live(job.op) {
                    self.stats.gets_failed += 1;
                    self.complete(job.op, OpResult::Get(Err(e)));
                }
            }
            Purpose::Handoff(_) => {
                self.handoffs_in_flight = self.handoffs_in_flight.saturating_sub(1);
            }
        }
    }

    fn join_found(&mut self, op: OpId, nodes: Vec<NodeInfo>) {
        if !self.op_live(op) {
            return;
        }
        if nodes
            .iter()
            .any(|n| n.id == self.me.id && n.addr != self.me.addr)
        {
            self.phase = Phase::Idle;
            self.complete(op, OpResult::Join(Err(Error::IdCollision)));
            return;
        }
        // A stale entry for this very node (restart at the same address) is skipped.
        self.rt
            .set_successors(nodes.into_iter().filter(|n| n.id != self.me.id));
        if self.rt.successor().is_none() {
            self.phase = Phase::Idle;
            self.complete(op, OpResult::Join(Err(Error::JoinFailed)));
            return;
        }
        self.become_joined(self.now);
        let succ = *self.rt.successor().expect("set above");
        self.log(LogLevel::Info, || {
            format!("joined; successor {}", succ.addr)
        });
        self.send_request(succ.addr, Some(succ.id), Body::Notify, Ctx::Notify, 2);
        self.complete(op, OpResult::Join(Ok(())));
    }

    // ----- storage operation replies -------------------------------------

    fn store_reply(&mut self, mut job: PutJob, from: NodeInfo, status: Status, copies: u8) {
        if !self.op_live(job.op) {
            return;
        }
        match status {
            Status::Ok => {
                self.stats.puts_ok += 1;
                self.complete(job.op, OpResult::Put(Ok(StoreReceipt { copies })));
            }
            Status::NotResponsible | Status::Leaving => {
                if status == Status::Leaving {
                    self.suspects.insert(from.id, self.now + SUSPECT_US);
                    self.rt.remove(&from.id);
                    self.repair_successor();
                } else {
                    self.distrust(job.vouched_by.take());
                    job.verify = true;
                }
                self.retry_put(job);
            }
            other => {
                self.stats.puts_failed += 1;
                self.complete(job.op, OpResult::Put(Err(error_of(other))));
            }
        }
    }

    fn retry_put(&mut self, mut job: PutJob) {
        if !self.op_live(job.op) {
            return;
        }
        job.attempts += 1;
        if job.attempts >= MAX_ATTEMPTS {
            self.stats.puts_failed += 1;
            self.complete(job.op, OpResult::Put(Err(Error::NoRoute)));
            return;
        }
        let (op, attempts) = (job.op, job.attempts);
        self.route_again(op, attempts, Purpose::Put(job));
    }

    /// Routes a put/get again: at once the first time, later after a growing pause.
    fn route_again(&mut self, op: OpId, attempts: u8, purpose: Purpose) {
        if attempts <= 1 {
            self.reroute(op, purpose);
            return;
        }
        let delay = OP_RETRY_BASE_US << (attempts - 2).min(10);
        self.op_retries.insert(op, purpose);
        self.timers
            .push(Reverse((self.now + delay, Timer::OpRetry(op))));
    }

    /// Looks up the key of a put or get again, within what is left of its deadline.
    fn reroute(&mut self, op: OpId, purpose: Purpose) {
        let key = match &purpose {
            Purpose::Put(j) => j.key,
            Purpose::Get(j) => j.key,
            _ => return,
        };
        let remaining = self.op_remaining(op);
        self.start_lookup(key, purpose, remaining);
    }

    /// Asks `node` (the key's primary) for the job's next page.
    fn fetch_page(&mut self, job: GetJob, node: NodeInfo) {
        let (key, after, replica) = (job.key, job.after.clone(), job.from_replica);
        if node.id == self.me.id {
            self.primary_fetch(key, replica, after, None, ReplyTo::LocalGet(job));
        } else {
            let body = Body::Fetch {
                key,
                replica,
                after,
            };
            let tries = self.cfg.rpc_retries + 1;
            self.send_request(node.addr, Some(node.id), body, Ctx::Fetch(job), tries);
        }
    }

    fn fetch_reply(
        &mut self,
        mut job: GetJob,
        from: NodeInfo,
        status: Status,
        entries: Vec<WireEntry>,
        next: Option<Vec<u8>>,
    ) {
        if !self.op_live(job.op) {
            return;
        }
        // A cursor that does not move forward would page for ever.
        let stuck = matches!((&next, &job.after), (Some(n), Some(a)) if n <= a);
        if status != Status::Ok || stuck {
            if status == Status::NotResponsible {
                self.distrust(job.vouched_by.take());
                job.verify = true;
            }
            self.retry_get(job);
            return;
        }
        let mut next = next;
        let entries =
            if entries.is_empty() && self.rt.predecessor().is_some_and(|p| p.id == from.id) {
                // Our predecessor is the primary and has nothing (it may have just
                // joined, its handoff still on the way), and it does not ask us,
                // its successor, back: our replica answers.
                let (mine, cursor) = self.local_page(&job.key, job.after.as_deref());
                next = cursor;
                mine
            } else if from.id == self.me.id {
                entries // checked when they were stored
            } else {
                // What a remote node returns is believed only when its owner
                // signed it, and never for longer than the owner said.
                let total = entries.len();
                let mut forged = 0;
                let checked: Vec<WireEntry> = entries
                    .into_iter()
                    .filter_map(|mut e| {
                        if e.tombstone {
                            return None; // readers never see removals
                        }
                        e.lifetime_ms = self.signed_lifetime_ms(&e);
                        if e.lifetime_ms == 0 {
                            return None;
                        }
                        let ok = self.authentic(&job.key, &e);
                        forged += usize::from(!ok);
                        ok.then_some(e)
                    })
                    .collect();
                if forged > 0 && !job.backups.is_empty() {
                    // A node that forges may hide genuine entries too: read this
                    // page from the next replica instead.
                    self.log(LogLevel::Warn, || {
                        format!("{forged} of {total} entries from {} are forged", from.addr)
                    });
                    let backup = job.backups.remove(0);
                    job.from_replica = true;
                    self.fetch_page(job, backup);
                    return;
                }
                checked
            };
        job.got.extend(entries);
        if job.page_only {
            self.stats.gets_ok += 1;
            self.complete_client_page(job.op, job.got, next);
            return;
        }
        if let Some(n) = next {
            job.after = Some(n);
            self.fetch_page(job, from);
            return;
        }
        self.stats.gets_ok += 1;
        let mut values: Vec<Value> = job.got.into_iter().filter_map(Value::from_wire).collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.version));
        self.complete(job.op, OpResult::Get(Ok(values)));
    }

    /// Answers a client's ClientGet with one page of live values.
    fn complete_client_page(&mut self, op: OpId, entries: Vec<WireEntry>, next: Option<Vec<u8>>) {
        if self.ops.remove(&op).is_none() {
            return;
        }
        let Some((addr, rid)) = self.client_ops.remove(&op) else {
            return;
        };
        self.client_reqs.remove(&(addr, rid));
        let live = entries
            .into_iter()
            .filter(|e| !e.tombstone && e.lifetime_ms > 0)
            .collect();
        // Our datagrams may be smaller than the primary's: cut the page again.
        let (entries, cut) = page(live, None, self.page_budget());
        let next = cut.or(next);
        self.reply(
            addr,
            rid,
            Body::FetchReply {
                status: Status::Ok,
                entries,
                next,
            },
        );
    }

    fn retry_get(&mut self, mut job: GetJob) {
        if !self.op_live(job.op) {
            return;
        }
        job.attempts += 1;
        if job.attempts >= MAX_ATTEMPTS {
            self.stats.gets_failed += 1;
            self.complete(job.op, OpResult::Get(Err(Error::NoRoute)));
            return;
        }
        let (op, attempts) = (job.op, job.attempts);
        self.route_again(op, attempts, Purpose::Get(job));
    }

    // ----- ring maintenance ---------------------------------------------

    fn stabilize(&mut self) {
        if self.rt.successor().is_none() {
            // Alone, or every successor failed: a known predecessor closes the ring.
            if let Some(p) = self.rt.predecessor().copied() {
                self.rt.set_successors([p]);
            } else {
                self.repair_successor();
            }
        }
        let Some(succ) = self.rt.successor().copied() else {
            return;
        };
        self.send_request(
            succ.addr,
            Some(succ.id),
            Body::GetNeighbors,
            Ctx::Stabilize { succ },
            self.cfg.rpc_retries + 1,
        );
    }

    fn stabilize_reply(&mut self, succ: NodeInfo, preds: Vec<NodeInfo>, succs: Vec<NodeInfo>) {
        if self.rt.successor().map(|s| s.id) != Some(succ.id) {
            return;
        }
        let mut list = Vec::with_capacity(succs.len() + 2);
        // Any of the successor's predecessors that lies between us and it is a
        // closer successor (Zave's rule). Taking the closest one, and stabilizing
        // with it at once instead of next round, lets a node that joined with a
        // far successor (many concurrent joins) walk back in round trips, not
        // in stabilize intervals.
        let me = self.me.id;
        let mut closer: Option<NodeInfo> = None;
        let mut probed = false;
        for x in preds.iter().filter(|x| x.id.in_open(&me, &succ.id)) {
            if !self.usable(x) {
                if !probed {
                    // Our successor hears from a node we think failed (it may have
                    // restarted): probe it. An answer clears the suspicion, and the
                    // next round adopts it.
                    self.send_request(x.addr, Some(x.id), Body::Notify, Ctx::Notify, 2);
                    probed = true;
                }
                continue;
            }
            if closer.is_none_or(|c| me.distance_to(&x.id) < me.distance_to(&c.id)) {
                closer = Some(*x);
            }
        }
        if let Some(x) = closer {
            list.push(x);
            self.next_stabilize = self.now;
        }
        list.push(succ);
        list.extend(succs.into_iter().filter(|n| self.usable(n)));
        self.rt.set_successors(list);
        let target = *self.rt.successor().expect("non-empty");
        self.send_request(target.addr, Some(target.id), Body::Notify, Ctx::Notify, 2);
    }

    fn check_predecessor(&mut self) {
        if let Some(pred) = self.rt.predecessor().copied() {
            self.send_request(
                pred.addr,
                Some(pred.id),
                Body::GetNeighbors,
                Ctx::CheckPred { pred },
                self.cfg.rpc_retries + 1,
            );
        }
    }

    fn fix_next_finger(&mut self) {
        let Some(succ) = self.rt.successor().copied() else {
            return;
        };
        // Fingers whose start lies before the successor are the successor itself.
        let mut i = self.next_finger;
        let mut scanned = 0;
        while scanned < ID_BITS {
            let start = self.rt.finger_start(i);
            if start.in_open_closed(&self.me.id, &succ.id) {
                self.rt.set_finger(i, Some(succ));
                i = (i + 1) % ID_BITS;
                scanned += 1;
            } else {
                break;
            }
        }
        if scanned == ID_BITS {
            return;
        }
        self.next_finger = (i + 1) % ID_BITS;
        let start = self.rt.finger_start(i);
        let timeout = self.cfg.op_timeout;
        self.start_lookup(start, Purpose::Finger(i), timeout);
    }

    fn finger_found(&mut self, i: usize, node: NodeInfo) {
        let start = self.rt.finger_start(i);
        self.rt.set_finger(i, Some(node));
        // Following fingers whose start also precedes `node` point at it too.
        let mut j = i + 1;
        while j < ID_BITS {
            let s = self.rt.finger_start(j);
            if s.in_open_closed(&start, &node.id) {
                self.rt.set_finger(j, Some(node));
                j += 1;
            } else {
                break;
            }
        }
        if j > i + 1 {
            self.next_finger = j % ID_BITS;
        }
    }

    fn sync_replicas(&mut self) {
        if let Some(pred) = self.rt.predecessor().copied() {
            let (lo, hi) = (pred.id, self.me.id);
            let (digest, count) = self.store.range_digest(&lo, &hi, self.now);
            let holders: Vec<NodeInfo> = self
                .rt
                .successors()
                .iter()
                .take(self.cfg.replicas.saturating_sub(1))
                .copied()
                .collect();
            for s in holders {
                self.send_request(
                    s.addr,
                    Some(s.id),
                    Body::SyncDigest {
                        lo,
                        hi,
                        digest,
                        count,
                    },
                    Ctx::SyncDigest { peer: s, lo, hi },
                    2,
                );
            }
        }
        // Keys this node no longer holds a copy of go to their primary, then are dropped.
        if self.handoffs_in_flight == 0 {
            let preds = self.rt.predecessors();
            if preds.len() >= self.cfg.replicas {
                let far = preds[self.cfg.replicas - 1].id;
                let keys = self.store.keys_outside(&far, &self.me.id, HANDOFF_BATCH);
                let timeout = self.cfg.op_timeout;
                for k in keys {
                    self.handoffs_in_flight += 1;
                    self.start_lookup(k, Purpose::Handoff(k), timeout);
                }
            }
        }
    }

    // ----- leaving -------------------------------------------------------

    /// Hands every stored entry to the first successor and tells it we leave;
    /// returns the requests sent (0: no successor left to hand to).
    fn leave_handoff(&mut self) -> usize {
        let Some(succ) = self.rt.successor().copied() else {
            return 0;
        };
        let preds = self.rt.predecessors().to_vec();
        let succs = self.rt.successors().to_vec();
        let ctx = || Ctx::LeaveStep {
            successor: Some(succ.id),
        };
        let keys: Vec<Id> = self.store.all_keys().copied().collect();
        let mut sent = self.push_keys(succ, &keys, ctx);
        sent += self.send_request(
            succ.addr,
            Some(succ.id),
            Body::Leaving { preds, succs },
            ctx(),
            self.cfg.rpc_retries + 1,
        ) as usize;
        if let Some(l) = self.leave.as_mut() {
            l.outstanding += sent;
        }
        sent
    }

    /// One leave message answered (`failed` None) or given up on.
    fn leave_step_done(&mut self, failed: Option<Id>) {
        if let Some(l) = self.leave.as_mut() {
            l.outstanding = l.outstanding.saturating_sub(1);
            if let Some(id) = failed {
                l.failed = true;
                // The handoff target died: the next successor takes over.
                self.rt.remove(&id);
            }
        }
        self.maybe_finish_leave();
    }

    fn maybe_finish_leave(&mut self) {
        let done = self.leave.as_ref().map(|l| (l.outstanding == 0, l.failed));
        match done {
            Some((true, false)) => self.finish_leave(Ok(())),
            Some((true, true)) => {
                if let Some(l) = self.leave.as_mut() {
                    l.failed = false;
                }
                if self.leave_handoff() == 0 {
                    let r = if self.store.entry_count() == 0 {
                        Ok(()) // nothing to hand over, nobody left to tell
                    } else {
                        Err(Error::NoRoute)
                    };
                    self.finish_leave(r);
                }
            }
            _ => {}
        }
    }

    fn finish_leave(&mut self, result: Result<(), Error>) {
        if let Some(l) = self.leave.take() {
            self.phase = Phase::Left;
            self.complete(l.op, OpResult::Leave(result));
        }
    }
}

/// Splits `items` into runs whose encoded sizes fit `budget` (and a u16 count).
/// The entries after `after` in writer order, as many as fit in `budget`
/// bytes of a FetchReply, and the cursor of the next page when some are left.
fn page(
    mut entries: Vec<WireEntry>,
    after: Option<&[u8]>,
    budget: usize,
) -> (Vec<WireEntry>, Option<Vec<u8>>) {
    entries.retain(|e| after.is_none_or(|a| e.writer.as_slice() > a));
    entries.sort_by(|a, b| a.writer.cmp(&b.writer));
    // status, cursor flag and length, entry count
    let mut used = 1 + 2 + 2;
    let mut out = Vec::new();
    let mut rest = entries.into_iter();
    for e in rest.by_ref() {
        // The cursor repeats the last writer.
        let len = wire::fetch_entry_len(&e);
        if used + len + e.writer.len() > budget && !out.is_empty() {
            let last = out.last().map(|l: &WireEntry| l.writer.clone());
            return (out, last);
        }
        used += len;
        out.push(e);
    }
    (out, None)
}

fn batches<T>(budget: usize, items: Vec<T>, len: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut batch = Vec::new();
    let mut used = 0;
    for item in items {
        let l = len(&item);
        if (used + l > budget || batch.len() == u16::MAX as usize) && !batch.is_empty() {
            out.push(std::mem::take(&mut batch));
            used = 0;
        }
        used += l;
        batch.push(item);
    }
    if !batch.is_empty() {
        out.push(batch);
    }
    out
}

/// Protocol status for an error reported to a client handle.
pub fn status_of(e: &Error) -> Status {
    match e {
        Error::Timeout => Status::Timeout,
        Error::NoRoute | Error::JoinFailed => Status::NoRoute,
        Error::NotJoined => Status::NotJoined,
        Error::TooLarge => Status::TooLarge,
        Error::Full => Status::Full,
        Error::Stale => Status::Stale,
        Error::Shutdown => Status::Leaving,
        _ => Status::BadRequest,
    }
}

fn store_status(e: StoreError) -> Status {
    match e {
        StoreError::ValueTooLarge | StoreError::WriterTooLarge => Status::TooLarge,
        StoreError::KeyFull | StoreError::NodeFull => Status::Full,
    }
}

/// The error a client handle reports for a protocol status.
pub fn error_of(s: Status) -> Error {
    match s {
        Status::Timeout => Error::Timeout,
        Status::NoRoute | Status::NotResponsible => Error::NoRoute,
        Status::NotJoined => Error::NotJoined,
        Status::TooLarge => Error::TooLarge,
        Status::Full => Error::Full,
        Status::Stale => Error::Stale,
        Status::Leaving => Error::Shutdown,
        Status::BadRequest => Error::InvalidArgument("request refused by the peer".into()),
        Status::NotFound | Status::Ok => Error::Refused(format!("{s:?}")),
    }
}

fn client_reply(result: OpResult) -> Body {
    match result {
        OpResult::Lookup(Ok(o)) => Body::ClientLookupReply {
            status: Status::Ok,
            node: Some(o.node),
            hops: o.hops.min(255) as u8,
        },
        OpResult::Lookup(Err(e)) => Body::ClientLookupReply {
            status: status_of(&e),
            node: None,
            hops: 0,
        },
        OpResult::Put(Ok(r)) => Body::StoreReply {
            status: Status::Ok,
            copies: r.copies,
        },
        OpResult::Put(Err(e)) => Body::StoreReply {
            status: status_of(&e),
            copies: 0,
        },
        OpResult::Get(Ok(values)) => Body::FetchReply {
            status: Status::Ok,
            entries: values.iter().map(Value::to_wire).collect(),
            next: None,
        },
        OpResult::Get(Err(e)) => Body::FetchReply {
            status: status_of(&e),
            entries: vec![],
            next: None,
        },
        OpResult::Join(_) | OpResult::Leave(_) | OpResult::Ping(_) => Body::Error {
            status: Status::BadRequest,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_writer_order_and_fit_the_budget() {
        let entry =
            |w: &str| WireEntry::unsigned(w.as_bytes().to_vec(), 1, 1000, false, vec![0; 100]);
        let all: Vec<WireEntry> = ["d", "b", "a", "c", "e"].iter().map(|w| entry(w)).collect();
        let one = wire::fetch_entry_len(&all[0]);
        // Room for two entries and the cursor.
        let budget = 5 + 2 * one + 1;
        let (p1, next) = page(all.clone(), None, budget);
        let names = |p: &[WireEntry]| p.iter().map(|e| e.writer[0]).collect::<Vec<_>>();
        assert_eq!(names(&p1), b"ab");
        assert_eq!(next.as_deref(), Some(&b"b"[..]));
        let (p2, next) = page(all.clone(), next.as_deref(), budget);
        assert_eq!(names(&p2), b"cd");
        let (p3, next) = page(all.clone(), next.as_deref(), budget);
        assert_eq!(names(&p3), b"e");
        assert_eq!(next, None);
        // Everything fits: one page, no cursor.
        let (p, next) = page(all, None, 10_000);
        assert_eq!((p.len(), next), (5, None));
    }

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], p))
    }

    #[test]
    fn lone_node_serves_itself() {
        let mut e = Engine::new(Config::default(), addr(7000), 1, 0);
        e.join(0, 1, &[], Duration::from_secs(1));
        assert_eq!(e.phase(), Phase::Joined);
        e.put(
            10,
            2,
            Id::from_name("k"),
            b"w",
            b"v",
            1,
            Duration::from_secs(60),
            Duration::from_secs(1),
        );
        e.get(20, 3, Id::from_name("k"), Duration::from_secs(1));
        let done: Vec<Completion> = e.drain_completions().collect();
        assert_eq!(done.len(), 3);
        assert_eq!(
            done[1].result,
            OpResult::Put(Ok(StoreReceipt { copies: 1 }))
        );
        match &done[2].result {
            OpResult::Get(Ok(v)) => assert_eq!(v[0].data, b"v"),
            other => panic!("{other:?}"),
        }
        assert!(e.drain_transmits().next().is_none());
    }

    #[test]
    fn operations_before_join_fail_clearly() {
        let mut e = Engine::new(Config::default(), addr(7001), 1, 0);
        e.get(0, 1, Id::ZERO, Duration::from_secs(1));
        let done: Vec<Completion> = e.drain_completions().collect();
        assert_eq!(done[0].result, OpResult::Get(Err(Error::NotJoined)));
    }

    #[test]
    fn garbage_is_counted_not_fatal() {
        let mut e = Engine::new(Config::default(), addr(7002), 1, 0);
        e.join(0, 1, &[], Duration::from_secs(1));
        e.handle_datagram(1, addr(9), b"hello");
        e.handle_datagram(1, addr(9), &[]);
        assert_eq!(e.stats().dropped_malformed, 2);
    }

    #[test]
    fn join_to_silent_bootstrap_fails_by_deadline() {
        let mut e = Engine::new(Config::default(), addr(7003), 1, 0);
        e.join(0, 1, &[addr(9)], Duration::from_secs(3));
        let mut now = 0;
        let mut sent = 0;
        let done = loop {
            sent += e.drain_transmits().count();
            if let Some(c) = e.drain_completions().next() {
                break c;
            }
            now = e.next_timeout().expect("a join in progress has a timer");
            e.handle_timeout(now);
        };
        assert_eq!(done.result, OpResult::Join(Err(Error::JoinFailed)));
        assert!(now <= 3_000_000, "gave up at {now} us");
        assert!(sent >= 2, "the request was retransmitted");
        assert_eq!(e.phase(), Phase::Idle);
    }
}
