//! A real overlay node on UDP: the Rust API hosts and the C ABI build on.
//!
//! A [`Node`] binds its socket, hands its engine to the shared [`Runtime`], and
//! turns API calls into tasks that run on the node's worker thread. Blocking
//! calls wait on a channel with a hard deadline; asynchronous calls take a
//! callback that runs on the worker thread.

use crate::ability::{self, Ability, Peer};
use crate::config::Config;
use crate::engine::{Engine, Event, OpResult, Phase};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::owner::Owner;
use crate::runtime::{on_worker_thread, EventSink, Runtime, UnixEndpoint};
use crate::stats::Stats;
use crate::types::{
    dict_store_by_methods, CredentialTrust, LookupOutcome, SlotWrite, StoreReceipt, Transaction,
    Value,
};
use crate::wire::{InfoKind, NodeInfo};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::clock::next_version;

/// A snapshot of a node's place on the ring.
#[derive(Clone, Debug)]
pub struct RingInfo {
    pub me: NodeInfo,
    pub joined: bool,
    pub predecessors: Vec<NodeInfo>,
    pub successors: Vec<NodeInfo>,
    /// Distinct finger nodes with the lowest finger index pointing at each.
    pub fingers: Vec<(usize, NodeInfo)>,
    pub stored_keys: usize,
    pub stored_entries: usize,
    /// One-hop overlays: every member of the table, in id order (empty in
    /// multi-hop mode).
    pub members: Vec<NodeInfo>,
}

struct Inner {
    runtime: Arc<Runtime>,
    worker: usize,
    token: usize,
    me: NodeInfo,
    /// The public half of the writer key (fixed for the node's life).
    owner: Owner,
    cfg: Config,
    next_op: AtomicU64,
    removed: AtomicBool,
    pid: u32,
    /// The DNS publisher (hybrid overlays with `dns_server`).
    publisher: Option<Arc<crate::publish::Publisher>>,
}

impl Inner {
    /// Takes the node off its worker, once. In a forked child the worker does
    /// not exist, so there is nothing to remove.
    fn remove(&self) {
        if !self.removed.swap(true, Ordering::SeqCst) && std::process::id() == self.pid {
            self.runtime.remove_node(self.worker, self.token);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A transaction the engine runs while the caller of
/// [`Node::transaction_async`] keeps a handle to read its answer from.
struct SharedTxn<T>(Arc<parking_lot::Mutex<Option<T>>>);

impl<T: Transaction> Transaction for SharedTxn<T> {
    fn key(&self) -> Id {
        self.0.lock().as_ref().map_or(Id::ZERO, |t| t.key())
    }

    fn plan(&mut self, mine: &[Value], value_limit: Option<usize>) -> Option<Vec<SlotWrite>> {
        self.0
            .lock()
            .as_mut()
            .and_then(|t| t.plan(mine, value_limit))
    }

    fn reply(&self, budget: usize) -> Vec<u8> {
        self.0
            .lock()
            .as_ref()
            .map_or_else(Vec::new, |t| t.reply(budget))
    }
}

/// One peer of the overlay. Cloning gives another handle to the same node;
/// the node stops (abruptly, without leaving) when the last handle is dropped.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("me", &self.inner.me).finish()
    }
}

/// A handle that does not keep the node running: what timers and callbacks
/// the node itself holds keep, so that dropping the last [`Node`] still stops it.
#[derive(Clone)]
pub struct WeakNode(std::sync::Weak<Inner>);

impl WeakNode {
    /// The node, while a [`Node`] handle to it still exists.
    pub fn upgrade(&self) -> Option<Node> {
        self.0.upgrade().map(|inner| Node { inner })
    }
}

/// Safe by default: a node reachable from other hosts admits only members
/// that hold the overlay key, unless its operator opened the overlay on
/// purpose (`open_overlay`). Loopback needs no key (the demo, the tests).
pub fn admission_check(cfg: &Config, bound: SocketAddr, advertise: SocketAddr) -> Result<()> {
    let off_loopback = !bound.ip().is_loopback() || !advertise.ip().is_loopback();
    if off_loopback && cfg.overlay_key.is_none() && !cfg.open_overlay {
        return Err(Error::InvalidArgument(format!(
            "a node on {advertise} (off loopback) needs an overlay key (overlay_key, or \
             key_file in the Kamailio module; `chordsip keygen` makes one), or \
             open_overlay=true to let anyone who reaches it join"
        )));
    }
    Ok(())
}

impl Node {
    /// Binds the socket and starts servicing it. The node is not in a ring until [`Node::join`].
    pub fn start(cfg: Config) -> Result<Node> {
        Self::start_with_events(cfg, None)
    }

    /// Like [`Node::start`], with a sink that receives the node's events on a library thread.
    pub fn start_with_events(mut cfg: Config, events: Option<EventSink>) -> Result<Node> {
        cfg.validate()?;
        if cfg.writer_key.is_none() {
            // The engine's own generator is seeded for reproducible tests; a
            // signing key needs the operating system's randomness.
            cfg.writer_key = Some(crate::owner::random_secret());
        }
        cfg.node_key.get_or_insert_with(crate::owner::random_secret);
        cfg.digest_nonce_secret
            .get_or_insert_with(crate::owner::random_secret);
        let socket = UdpSocket::bind(cfg.listen)?;
        let bound = socket.local_addr()?;
        let advertise = cfg.advertise.unwrap_or(bound);
        if advertise.ip().is_unspecified() {
            return Err(Error::InvalidArgument(
                "listening on a wildcard address needs an advertise address".into(),
            ));
        }
        if advertise.port() == 0 {
            return Err(Error::InvalidArgument(
                "advertise address needs a port".into(),
            ));
        }
        admission_check(&cfg, bound, advertise)?;
        let unix = match &cfg.client_socket {
            Some(path) => Some(UnixEndpoint::bind(
                path.clone(),
                cfg.client_socket_group.as_deref(),
            )?),
            None => None,
        };
        let runtime = Runtime::shared(cfg.threads)?;
        // Request ids (which a forged answer would have to match) come from
        // a seed the OS draws, not from the start time.
        use rand::{rngs::OsRng, Rng};
        let seed = OsRng.gen::<u64>();
        let engine = Engine::new(cfg.clone(), advertise, seed, runtime.wall_offset_ms());
        let me = *engine.me();
        let owner = *engine.owner();
        let publisher = match cfg.dns.server {
            Some(_) => Some(Arc::new(crate::publish::Publisher::start(&cfg.dns)?)),
            None => None,
        };
        let events = match &publisher {
            Some(p) => {
                let p = Arc::clone(p);
                let host = events;
                let sink: EventSink = Arc::new(move |e: &Event| {
                    p.on_event(e);
                    if let Some(h) = &host {
                        h(e);
                    }
                });
                Some(sink)
            }
            None => events,
        };
        let (worker, token) = runtime.add_node(engine, socket, unix, events)?;
        Ok(Node {
            inner: Arc::new(Inner {
                runtime,
                worker,
                token,
                me,
                owner,
                cfg,
                next_op: AtomicU64::new(1),
                removed: AtomicBool::new(false),
                pid: std::process::id(),
                publisher,
            }),
        })
    }

    pub fn id(&self) -> Id {
        self.inner.me.id
    }

    /// The address peers use to reach this node.
    pub fn addr(&self) -> SocketAddr {
        self.inner.me.addr
    }

    pub fn info(&self) -> NodeInfo {
        self.inner.me
    }

    pub fn config(&self) -> &Config {
        &self.inner.cfg
    }

    fn check_usable(&self) -> Result<()> {
        if std::process::id() != self.inner.pid {
            return Err(Error::Forked);
        }
        if self.inner.removed.load(Ordering::SeqCst) {
            return Err(Error::Shutdown);
        }
        Ok(())
    }

    /// Starts an operation on the worker; `cb` receives its result there.
    fn submit(
        &self,
        start: impl FnOnce(&mut Engine, u64, u64) + Send + 'static,
        cb: impl FnOnce(OpResult) + Send + 'static,
    ) -> Result<()> {
        self.check_usable()?;
        let op = self.inner.next_op.fetch_add(1, Ordering::Relaxed);
        self.inner.runtime.run(
            self.inner.worker,
            self.inner.token,
            Box::new(move |slot, now| {
                slot.on_complete(op, Box::new(cb));
                start(&mut slot.engine, now, op);
            }),
        )
    }

    /// Runs an operation and waits for it, never longer than `timeout` plus a grace period.
    fn blocking(
        &self,
        timeout: Duration,
        start: impl FnOnce(&mut Engine, u64, u64) + Send + 'static,
    ) -> Result<OpResult> {
        if on_worker_thread() {
            return Err(Error::InCallback);
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.submit(start, move |r| {
            let _ = tx.send(r);
        })?;
        match rx.recv_timeout(timeout + Duration::from_millis(500)) {
            Ok(r) => Ok(r),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => Err(Error::Timeout),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => Err(Error::Shutdown),
        }
    }

    /// Reads the engine's state on its worker thread.
    fn query<T: Send + 'static>(&self, f: impl FnOnce(&Engine) -> T + Send + 'static) -> Result<T> {
        self.with_engine(move |e, _| f(e))
    }

    /// Joins the overlay through the first answering bootstrap peer; an empty
    /// list starts a new ring.
    pub fn join(&self, bootstrap: &[SocketAddr]) -> Result<()> {
        let timeout = self.inner.cfg.op_timeout * 2;
        let list = bootstrap.to_vec();
        self.blocking(timeout, move |e, now, op| e.join(now, op, &list, timeout))?
            .into_join()
    }

    /// `join` without waiting: `cb` gets its result on a library thread
    /// (and must not block), within twice the operation timeout.
    pub fn join_async(
        &self,
        bootstrap: &[SocketAddr],
        cb: impl FnOnce(Result<()>) + Send + 'static,
    ) -> Result<()> {
        let timeout = self.inner.cfg.op_timeout * 2;
        let list = bootstrap.to_vec();
        self.submit(
            move |e, now, op| e.join(now, op, &list, timeout),
            move |r| cb(r.into_join()),
        )
    }

    /// The bare Chord lookup: the node responsible for `key`.
    pub fn lookup(&self, key: Id) -> Result<LookupOutcome> {
        self.lookup_timeout(key, self.inner.cfg.op_timeout)
    }

    pub fn lookup_timeout(&self, key: Id, timeout: Duration) -> Result<LookupOutcome> {
        self.blocking(timeout, move |e, now, op| e.lookup(now, op, key, timeout))?
            .into_lookup()
    }

    /// A lookup that reports its route: each node that answered a step and
    /// the step's round trip (`LookupOutcome::path`). It follows the ring's
    /// own route, never the location cache's one-step shortcut.
    pub fn trace(&self, key: Id) -> Result<LookupOutcome> {
        let timeout = self.inner.cfg.op_timeout;
        self.blocking(timeout, move |e, now, op| e.trace(now, op, key, timeout))?
            .into_lookup()
    }

    /// Asynchronous lookup; `cb` runs on a library thread and must not block.
    pub fn lookup_async(
        &self,
        key: Id,
        timeout: Duration,
        cb: impl FnOnce(Result<LookupOutcome>) + Send + 'static,
    ) -> Result<()> {
        self.submit(
            move |e, now, op| e.lookup(now, op, key, timeout),
            move |r| cb(r.into_lookup()),
        )
    }

    /// A version for a write of this node: the runtime's wall clock (the
    /// clock its engines version client writes with), strictly increasing.
    fn version(&self) -> u64 {
        let rt = &self.inner.runtime;
        crate::clock::next_version_at(rt.wall_offset_ms().saturating_mul(1000) + rt.now())
    }

    /// Stores `data` in the writer's slot of `key` with a fresh version.
    pub fn put(
        &self,
        key: Id,
        writer: &[u8],
        data: &[u8],
        lifetime: Duration,
    ) -> Result<StoreReceipt> {
        self.put_versioned(key, writer, data, self.version(), lifetime)
    }

    pub fn put_versioned(
        &self,
        key: Id,
        writer: &[u8],
        data: &[u8],
        version: u64,
        lifetime: Duration,
    ) -> Result<StoreReceipt> {
        let timeout = self.inner.cfg.op_timeout;
        let (writer, data) = (writer.to_vec(), data.to_vec());
        self.blocking(timeout, move |e, now, op| {
            e.put(now, op, key, &writer, &data, version, lifetime, timeout)
        })?
        .into_put()
    }

    /// Asynchronous put; `cb` runs on a library thread.
    pub fn put_async(
        &self,
        key: Id,
        writer: &[u8],
        data: &[u8],
        lifetime: Duration,
        cb: impl FnOnce(Result<StoreReceipt>) + Send + 'static,
    ) -> Result<()> {
        let timeout = self.inner.cfg.op_timeout;
        let version = self.version();
        let (writer, data) = (writer.to_vec(), data.to_vec());
        self.submit(
            move |e, now, op| e.put(now, op, key, &writer, &data, version, lifetime, timeout),
            move |r| cb(r.into_put()),
        )
    }

    /// Every live value stored under `key`.
    pub fn get(&self, key: Id) -> Result<Vec<Value>> {
        let timeout = self.inner.cfg.op_timeout;
        self.blocking(timeout, move |e, now, op| e.get(now, op, key, timeout))?
            .into_get()
    }

    /// Asynchronous get; `cb` runs on a library thread.
    pub fn get_async(
        &self,
        key: Id,
        cb: impl FnOnce(Result<Vec<Value>>) + Send + 'static,
    ) -> Result<()> {
        let timeout = self.inner.cfg.op_timeout;
        self.submit(
            move |e, now, op| e.get(now, op, key, timeout),
            move |r| cb(r.into_get()),
        )
    }

    /// Removes the writer's entry of `key`.
    pub fn remove(&self, key: Id, writer: &[u8]) -> Result<StoreReceipt> {
        let timeout = self.inner.cfg.op_timeout;
        let version = self.version();
        let writer = writer.to_vec();
        self.blocking(timeout, move |e, now, op| {
            e.remove(now, op, key, &writer, version, timeout)
        })?
        .into_put()
    }

    /// Asynchronous remove; `cb` runs on a library thread.
    pub fn remove_async(
        &self,
        key: Id,
        writer: &[u8],
        cb: impl FnOnce(Result<StoreReceipt>) + Send + 'static,
    ) -> Result<()> {
        let timeout = self.inner.cfg.op_timeout;
        let version = self.version();
        let writer = writer.to_vec();
        self.submit(
            move |e, now, op| e.remove(now, op, key, &writer, version, timeout),
            move |r| cb(r.into_put()),
        )
    }

    /// Runs a read-plan-write transaction on one key without blocking, as
    /// [`crate::types::run_transaction`] runs it through this node (its
    /// writes in parallel); `cb` gets the transaction back, holding its
    /// answer, or the overlay's error. It ends within three operation
    /// timeouts (the read, the writes, an undo).
    pub fn transaction_async<T: Transaction + 'static>(
        &self,
        txn: T,
        cb: impl FnOnce(Result<T>) + Send + 'static,
    ) -> Result<()> {
        let timeout = self.inner.cfg.op_timeout * 3;
        let shared = Arc::new(parking_lot::Mutex::new(Some(txn)));
        let engine_side = SharedTxn(Arc::clone(&shared));
        self.submit(
            move |e, now, op| e.transaction(now, op, Box::new(engine_side), timeout),
            move |r| {
                let txn = shared.lock().take();
                cb(r.into_transaction()
                    .and_then(|()| txn.ok_or(Error::Cancelled)))
            },
        )
    }

    /// A handle that does not keep the node running.
    pub fn downgrade(&self) -> WeakNode {
        WeakNode(Arc::downgrade(&self.inner))
    }

    /// Runs `f` on this node's worker thread after `delay`, or never if the
    /// node stops first (a timer holds no [`Node`], see [`WeakNode`]).
    pub fn after(&self, delay: Duration, f: impl FnOnce() + Send + 'static) -> Result<()> {
        self.check_usable()?;
        let delay_us = delay.as_micros().min(u64::MAX as u128) as u64;
        self.inner.runtime.run(
            self.inner.worker,
            self.inner.token,
            Box::new(move |slot, now| slot.schedule(now.saturating_add(delay_us), Box::new(f))),
        )
    }

    /// Runs `f` on this node's worker thread, where its completions run.
    pub fn on_worker(&self, f: impl FnOnce() + Send + 'static) -> Result<()> {
        self.check_usable()?;
        self.inner.runtime.run(
            self.inner.worker,
            self.inner.token,
            Box::new(move |_slot, _now| f()),
        )
    }

    /// The public key this node signs its writes with: the owner of its slots.
    /// Known without asking the worker: a REGISTER through the node needs it each time.
    pub fn owner(&self) -> Result<Owner> {
        self.check_usable()?;
        Ok(self.inner.owner)
    }

    /// The writer keys whose registrar bindings this node's lookups trust:
    /// its writer key and `trusted_writers`.
    pub fn trusted_writers(&self) -> Result<Vec<Owner>> {
        let mut keys = vec![self.owner()?];
        for k in &self.config().limits.main_writers {
            if !keys.contains(k) {
                keys.push(*k);
            }
        }
        Ok(keys)
    }

    /// The key and admins this node reads SIP credentials with
    /// (`credentials_key`, `credential_admins`).
    pub fn credential_trust(&self) -> Result<CredentialTrust> {
        self.check_usable()?;
        let cfg = self.config();
        match cfg.credentials_key {
            Some(key) if !cfg.credential_admins.is_empty() => Ok(CredentialTrust {
                key,
                admins: cfg.credential_admins.clone(),
            }),
            Some(_) => Err(Error::Unauthorized(
                "credential_admins is empty: no credential record would count".into(),
            )),
            None => Err(Error::Unauthorized(
                "no credentials_key: this node cannot read SIP credentials".into(),
            )),
        }
    }

    /// The secret of the digest nonces this node issues (`digest_nonce_secret`,
    /// or one made at start).
    pub fn digest_nonce_secret(&self) -> [u8; 32] {
        self.config()
            .digest_nonce_secret
            .expect("set at start when not configured")
    }

    /// The node's ring neighbours (`what` 0) or statistics (`what` 1) as text,
    /// the same text a client handle gets from its peer.
    pub fn info_text(&self, what: u8) -> Result<String> {
        self.query(move |e| e.info_text(InfoKind::from_code(what)))
    }

    /// The node's counters as OpenMetrics text, ending in `# EOF`
    /// (`crate::metrics`): what `chordsip node --metrics` serves.
    pub fn metrics(&self) -> Result<String> {
        self.query(|e| e.info_text(InfoKind::Metrics))
    }

    /// A setting as this node runs with it (`Config::get`): `threads` is
    /// the count of library threads running, whoever started them.
    pub fn config_get(&self, name: &str) -> Result<String> {
        match name {
            "threads" => Ok(self.inner.runtime.threads().to_string()),
            _ => self.inner.cfg.get(name),
        }
    }

    /// Round-trip time to a peer.
    pub fn ping(&self, addr: SocketAddr) -> Result<Duration> {
        let timeout = self.inner.cfg.op_timeout;
        self.blocking(timeout, move |e, now, op| e.ping(now, op, addr, timeout))?
            .into_ping()
    }

    /// This node's abilities, as it announces them.
    pub fn abilities(&self) -> Result<Vec<Ability>> {
        self.query(|e| e.abilities().to_vec())
    }

    /// Replaces this node's abilities (names must differ): the list is
    /// announced at once when joined (else once joined) and kept announced;
    /// abilities left out are withdrawn. Returns without waiting for the writes.
    pub fn set_abilities(&self, list: Vec<Ability>) -> Result<()> {
        for (i, a) in list.iter().enumerate() {
            if list[..i].iter().any(|b| b.name == a.name) {
                return Err(Error::InvalidArgument(format!(
                    "ability {} given twice",
                    a.name
                )));
            }
        }
        self.with_engine(move |e, now| e.set_abilities(now, list))
    }

    /// Up to `n` peers that announce ability `name`, least loaded first
    /// (load per capacity, then the larger capacity): one lookup and one
    /// read of the ability's key. A peer that died is found until its
    /// announcement expires (`ability_ttl_s`); one that left is not.
    pub fn find_peers(&self, name: &str, n: usize) -> Result<Vec<Peer>> {
        Ability::new(name)?;
        let values = self.get(ability::key(name))?;
        Ok(ability::select(&values, name, n))
    }

    /// Runs `f` on the engine on its worker thread and waits for it.
    fn with_engine<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Engine, u64) -> T + Send + 'static,
    ) -> Result<T> {
        self.check_usable()?;
        if on_worker_thread() {
            return Err(Error::InCallback);
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.inner.runtime.run(
            self.inner.worker,
            self.inner.token,
            Box::new(move |slot, now| {
                let _ = tx.send(f(&mut slot.engine, now));
            }),
        )?;
        // A worker busy for 5 s is a timeout the caller may retry; only a
        // worker gone (the node stopped under us) is a shutdown.
        rx.recv_timeout(Duration::from_secs(5))
            .map_err(|e| match e {
                crossbeam_channel::RecvTimeoutError::Timeout => Error::Timeout,
                crossbeam_channel::RecvTimeoutError::Disconnected => Error::Shutdown,
            })
    }

    /// Withdraws every announced ability (all at once), waiting at most `timeout`.
    fn withdraw_abilities(&self, timeout: Duration) {
        let Ok(taken) = self.with_engine(|e, _| e.take_abilities()) else {
            return;
        };
        let names: Vec<String> = taken.into_iter().map(|a| a.name).collect();
        let count = names.len();
        let (done_tx, done_rx) = crossbeam_channel::bounded(count.max(1));
        for name in names {
            let done = done_tx.clone();
            let _ = self.submit(
                move |e, now, op| e.withdraw_ability(now, op, &name, timeout),
                move |_| {
                    let _ = done.send(());
                },
            );
        }
        let deadline = Instant::now() + timeout + Duration::from_millis(200);
        for _ in 0..count {
            if done_rx.recv_deadline(deadline).is_err() {
                break;
            }
        }
    }

    /// Graceful leave (abilities withdrawn, data handed to the successor,
    /// neighbours told), bounded by `timeout`; the node is stopped afterwards
    /// whatever the outcome.
    pub fn leave(&self, timeout: Duration) -> Result<()> {
        if on_worker_thread() {
            // Refused, and the node keeps running: a callback cannot wait for the leave.
            return Err(Error::InCallback);
        }
        let started = Instant::now();
        if self.is_joined() {
            self.withdraw_abilities(timeout / 3);
        }
        let timeout = timeout
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(1));
        let r = self
            .blocking(timeout, move |e, now, op| e.leave(now, op, timeout))
            .and_then(OpResult::into_leave);
        self.stop();
        r
    }

    /// Stops the node at once, as if it crashed (no leave). Idempotent.
    pub fn stop(&self) {
        self.inner.remove();
    }

    pub fn is_joined(&self) -> bool {
        self.query(|e| e.phase() == Phase::Joined).unwrap_or(false)
    }

    pub fn stats(&self) -> Result<Stats> {
        self.query(|e| e.stats())
    }

    /// The node's view of the ring, read at once on its worker: the lists
    /// belong to one moment, which separate calls cannot promise.
    pub fn ring(&self) -> Result<RingInfo> {
        self.query(|e| {
            let rt = e.routing();
            RingInfo {
                me: *e.me(),
                joined: e.phase() == Phase::Joined,
                predecessors: rt.predecessors().to_vec(),
                successors: rt.successors().to_vec(),
                fingers: rt.distinct_fingers(),
                stored_keys: e.store().key_count(),
                stored_entries: e.store().entry_count(),
                members: e.members().iter().map(|m| m.node).collect(),
            }
        })
    }

    /// What the DNS publisher did (None without `dns_server`).
    pub fn publish_status(&self) -> Option<crate::publish::PublishStatus> {
        self.inner.publisher.as_ref().map(|p| p.status())
    }

    /// The one-hop membership table (empty in multi-hop mode).
    pub fn members(&self) -> Result<Vec<crate::wire::MemberRecord>> {
        self.query(|e| e.members())
    }

    /// The keys this node stores (primary copies and replicas).
    pub fn stored_keys(&self) -> Result<Vec<Id>> {
        self.query(|e| e.store().all_keys().copied().collect())
    }

    /// Wraps a closure as an event sink.
    pub fn event_sink(f: impl Fn(&Event) + Send + Sync + 'static) -> EventSink {
        Arc::new(f)
    }
}

dict_store_by_methods!(&Node, methods of Node, value_limit: |node| Some(node.config().limits.max_value_bytes));
