//! An in-memory network on virtual time that runs many [`Engine`]s.
//!
//! The engines are the same code the UDP runtime drives; only the transport
//! and the clock differ. Delivery delay, loss and partitions come from a seeded
//! generator, so every run with the same seed is identical, and thousands of
//! nodes fit in one process because idle virtual time costs nothing.

use crate::config::Config;
use crate::engine::{Engine, LookupOutcome, OpId, OpResult, Phase, StoreReceipt, Value};
use crate::error::Error;
use crate::id::Id;
use crate::wire::{Body, Codec, Message, NodeInfo, WireEntry};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Deadline of the operations the helpers below start.
const OP_TIMEOUT: Duration = Duration::from_secs(5);
/// Longer than any operation deadline (joins get 10 s).
const OP_WAIT: Duration = Duration::from_secs(15);

/// Network conditions of the simulated links.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    /// Probability that a datagram is lost.
    pub loss: f64,
    pub delay_min: Duration,
    pub delay_max: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            loss: 0.0,
            delay_min: Duration::from_micros(200),
            delay_max: Duration::from_micros(2000),
        }
    }
}

enum Ev {
    Deliver {
        to: SocketAddr,
        from: SocketAddr,
        data: Vec<u8>,
    },
    Wake(usize),
}

struct Queued {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

struct SimNode {
    engine: Engine,
    alive: bool,
    scheduled: Option<u64>,
    group: u32,
    /// A malicious node: its lookup answers name a wrong node as responsible.
    liar: Option<Codec>,
    /// The keys a liar was asked about, by (requester, request id).
    asked: HashMap<(SocketAddr, u64), Id>,
    /// A malicious replica holder: every entry it serves or pushes is
    /// rewritten (newer version, other data, the owner's signature kept).
    forger: bool,
}

/// Result of comparing every live node's neighbours with the true ring.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RingCheck {
    pub live: usize,
    pub wrong_successor: usize,
    pub wrong_predecessor: usize,
}

impl RingCheck {
    pub fn is_correct(&self) -> bool {
        self.wrong_successor == 0 && self.wrong_predecessor == 0
    }
}

/// The simulated network and its nodes.
pub struct SimNet {
    cfg: SimConfig,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Queued>>,
    nodes: Vec<SimNode>,
    by_addr: HashMap<SocketAddr, usize>,
    rng: ChaCha8Rng,
    results: HashMap<(usize, OpId), OpResult>,
    /// Datagrams sent to addresses opened with [`SimNet::open_mailbox`]
    /// (clients of the simulated nodes, which take no place in the ring).
    mailboxes: HashMap<SocketAddr, Vec<Vec<u8>>>,
    next_op: OpId,
    pub delivered: u64,
    pub lost: u64,
}

impl SimNet {
    pub fn new(cfg: SimConfig) -> SimNet {
        SimNet {
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            cfg,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            results: HashMap::new(),
            mailboxes: HashMap::new(),
            next_op: 1,
            delivered: 0,
            lost: 0,
        }
    }

    /// Virtual time in microseconds.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// One-way delay of every datagram from now on (uniform in `min..=max`).
    pub fn set_delay(&mut self, min: Duration, max: Duration) {
        self.cfg.delay_min = min;
        self.cfg.delay_max = max.max(min);
    }

    pub fn set_loss(&mut self, loss: f64) {
        self.cfg.loss = loss;
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn engine(&self, i: usize) -> &Engine {
        &self.nodes[i].engine
    }

    pub fn is_alive(&self, i: usize) -> bool {
        self.nodes[i].alive
    }

    pub fn live_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].alive)
            .collect()
    }

    /// The simulated address of node `i` (loopback-range, never a real socket).
    pub fn addr_of(i: usize) -> SocketAddr {
        let i = i as u32 + 1;
        SocketAddr::from((
            Ipv4Addr::new(127, 10 + (i >> 16) as u8, (i >> 8) as u8, i as u8),
            5060,
        ))
    }

    /// Adds a node (not yet joined). Its id derives from its address unless `cfg` fixes one.
    pub fn add_node(&mut self, cfg: Config) -> usize {
        let i = self.nodes.len();
        let addr = Self::addr_of(i);
        let seed = self.rng.gen();
        self.nodes.push(SimNode {
            engine: Engine::new(cfg, addr, seed, 1_700_000_000_000),
            alive: true,
            scheduled: None,
            group: 0,
            liar: None,
            forger: false,
            asked: HashMap::new(),
        });
        self.by_addr.insert(addr, i);
        i
    }

    /// Lets `addr` (not a node) receive what nodes send it, for [`SimNet::take_mail`].
    pub fn open_mailbox(&mut self, addr: SocketAddr) {
        self.mailboxes.entry(addr).or_default();
    }

    /// Delivers `data` from `from` (a mailbox address, say) to node `i` now.
    pub fn send_raw(&mut self, from: SocketAddr, i: usize, data: Vec<u8>) {
        let to = Self::addr_of(i);
        self.push(self.now, Ev::Deliver { to, from, data });
    }

    /// The datagrams that reached `addr` since the last call.
    pub fn take_mail(&mut self, addr: &SocketAddr) -> Vec<Vec<u8>> {
        self.mailboxes
            .get_mut(addr)
            .map(std::mem::take)
            .unwrap_or_default()
    }

    fn op_id(&mut self) -> OpId {
        self.next_op += 1;
        self.next_op
    }

    /// Starts an operation on node `i` and returns its id.
    fn start(&mut self, i: usize, run: impl FnOnce(&mut Engine, u64, OpId)) -> OpId {
        let op = self.op_id();
        let now = self.now;
        run(&mut self.nodes[i].engine, now, op);
        self.after(i);
        op
    }

    /// Runs until the operation completes. Every engine operation ends by its
    /// deadline (at most 10 s here), so one that does not is a bug.
    fn finish(&mut self, i: usize, op: OpId) -> OpResult {
        self.wait(i, op, OP_WAIT)
            .unwrap_or_else(|| panic!("operation {op} of node {i} never completed"))
    }

    /// Starts node `i`'s join through `bootstrap` (a new ring when empty).
    pub fn start_join(&mut self, i: usize, bootstrap: &[usize]) -> OpId {
        let addrs: Vec<SocketAddr> = bootstrap.iter().map(|&b| Self::addr_of(b)).collect();
        self.start(i, |e, now, op| {
            e.join(now, op, &addrs, Duration::from_secs(10))
        })
    }

    pub fn join(&mut self, i: usize, bootstrap: &[usize]) -> Result<(), Error> {
        let op = self.start_join(i, bootstrap);
        self.finish(i, op).into_join()
    }

    pub fn start_lookup(&mut self, i: usize, key: Id) -> OpId {
        self.start(i, |e, now, op| e.lookup(now, op, key, OP_TIMEOUT))
    }

    pub fn lookup(&mut self, i: usize, key: Id) -> Result<LookupOutcome, Error> {
        let op = self.start_lookup(i, key);
        self.finish(i, op).into_lookup()
    }

    pub fn put(
        &mut self,
        i: usize,
        key: Id,
        writer: &[u8],
        data: &[u8],
        version: u64,
        lifetime: Duration,
    ) -> Result<StoreReceipt, Error> {
        let op = self.start_put(i, key, writer, data, version, lifetime);
        self.finish(i, op).into_put()
    }

    /// Starts a put at node `i` without running the network: puts started
    /// one after another reach the engine in one step.
    pub fn start_put(
        &mut self,
        i: usize,
        key: Id,
        writer: &[u8],
        data: &[u8],
        version: u64,
        lifetime: Duration,
    ) -> OpId {
        self.start(i, |e, now, op| {
            e.put(now, op, key, writer, data, version, lifetime, OP_TIMEOUT)
        })
    }

    /// Starts a read-plan-write transaction at node `i` (as
    /// `Node::transaction_async` does) without running the network.
    pub fn start_transaction(&mut self, i: usize, txn: Box<dyn crate::types::Transaction>) -> OpId {
        self.start(i, |e, now, op| e.transaction(now, op, txn, OP_TIMEOUT * 3))
    }

    pub fn get(&mut self, i: usize, key: Id) -> Result<Vec<Value>, Error> {
        let op = self.start(i, |e, now, op| e.get(now, op, key, OP_TIMEOUT));
        self.finish(i, op).into_get()
    }

    pub fn remove(
        &mut self,
        i: usize,
        key: Id,
        writer: &[u8],
        version: u64,
    ) -> Result<StoreReceipt, Error> {
        let op = self.start(i, |e, now, op| {
            e.remove(now, op, key, writer, version, OP_TIMEOUT)
        });
        self.finish(i, op).into_put()
    }

    /// Graceful leave; the node is stopped afterwards.
    pub fn leave(&mut self, i: usize) -> Result<(), Error> {
        let op = self.start(i, |e, now, op| e.leave(now, op, OP_TIMEOUT));
        let r = self.finish(i, op).into_leave();
        self.nodes[i].alive = false;
        r
    }

    /// Makes node `i` lie: every FindSuccessor it answers gets "done" with a
    /// node that is not responsible for the key (the responsible node's
    /// successor), as a malicious peer would, to attract or lose requests.
    pub fn make_liar(&mut self, i: usize) {
        // The node's own codec: what it rewrites still carries its signature.
        self.nodes[i].liar = Some(self.nodes[i].engine.codec().clone());
    }

    /// Makes node `i` forge data: the entries it answers reads with, pushes
    /// to replicas or hands off get a newer version and other data under
    /// their owners' names, as a member holding copies could.
    pub fn make_forger(&mut self, i: usize) {
        self.make_liar(i);
        self.nodes[i].forger = true;
    }

    /// What a forger sends instead of `msg`'s entries.
    fn forge(msg: &mut Message) {
        let forge = |e: &mut WireEntry| {
            e.version += 1_000_000;
            e.tombstone = false;
            e.data = b"forged".to_vec();
        };
        match &mut msg.body {
            Body::FetchReply { entries, .. } => entries.iter_mut().for_each(forge),
            Body::Replicate { items } => items.iter_mut().for_each(|(_, e)| forge(e)),
            _ => {}
        }
    }

    /// A liar's FindReply or a forger's entries rewritten; other datagrams unchanged.
    fn falsify(&mut self, i: usize, to: SocketAddr, data: Vec<u8>) -> Vec<u8> {
        let Some(codec) = self.nodes[i].liar.clone() else {
            return data;
        };
        let Ok(mut msg) = codec.decode(&data) else {
            return data;
        };
        if self.nodes[i].forger {
            if !matches!(msg.body, Body::FetchReply { .. } | Body::Replicate { .. }) {
                return data;
            }
            Self::forge(&mut msg);
            return codec.encode(&msg).unwrap_or(data);
        }
        let Body::FindReply { .. } = msg.body else {
            return data;
        };
        let Some(key) = self.nodes[i].asked.remove(&(to, msg.request_id)) else {
            return data;
        };
        let Some(right) = self.responsible(&key) else {
            return data;
        };
        let wrong = self
            .nodes
            .iter()
            .filter(|n| n.alive && n.engine.phase() == Phase::Joined)
            .map(|n| *n.engine.me())
            .filter(|n| n.id != right.id)
            .min_by_key(|n| right.id.distance_to(&n.id));
        let Some(wrong) = wrong else { return data };
        msg.body = Body::FindReply {
            done: true,
            nodes: vec![wrong],
        };
        codec.encode(&msg).unwrap_or(data)
    }

    /// Abrupt failure: the node stops answering, its state is gone.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].alive = false;
    }

    /// Assigns every node to a partition group; datagrams between groups are dropped.
    pub fn partition(&mut self, group_of: impl Fn(usize) -> u32) {
        for i in 0..self.nodes.len() {
            self.nodes[i].group = group_of(i);
        }
    }

    pub fn heal(&mut self) {
        for n in &mut self.nodes {
            n.group = 0;
        }
    }

    /// Runs until the operation completes or `max` virtual time passes.
    pub fn wait(&mut self, i: usize, op: OpId, max: Duration) -> Option<OpResult> {
        let end = self.now + max.as_micros() as u64;
        loop {
            if let Some(r) = self.results.remove(&(i, op)) {
                return Some(r);
            }
            if !self.step(end) {
                return self.results.remove(&(i, op));
            }
        }
    }

    /// Runs the network for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d.as_micros() as u64;
        while self.step(end) {}
        self.now = self.now.max(end);
    }

    /// Runs until `cond` holds (checked every `every`) or `max` passes; returns whether it held.
    pub fn run_until(
        &mut self,
        max: Duration,
        every: Duration,
        mut cond: impl FnMut(&SimNet) -> bool,
    ) -> bool {
        let end = self.now + max.as_micros() as u64;
        loop {
            if cond(self) {
                return true;
            }
            if self.now >= end {
                return false;
            }
            let d = every.min(Duration::from_micros(end - self.now));
            self.run_for(d);
        }
    }

    /// Processes the next event if it is due by `end`. Returns false when none is.
    fn step(&mut self, end: u64) -> bool {
        let Some(Reverse(q)) = self.queue.peek() else {
            return false;
        };
        if q.at > end {
            return false;
        }
        let Reverse(q) = self.queue.pop().expect("peeked");
        self.now = self.now.max(q.at);
        match q.ev {
            Ev::Deliver { to, from, data } => {
                let Some(&i) = self.by_addr.get(&to) else {
                    if let Some(mail) = self.mailboxes.get_mut(&to) {
                        mail.push(data);
                    }
                    return true;
                };
                let from_group = self.by_addr.get(&from).map(|&f| self.nodes[f].group);
                if !self.nodes[i].alive || from_group.is_some_and(|g| g != self.nodes[i].group) {
                    self.lost += 1;
                    return true;
                }
                self.delivered += 1;
                if let Some(codec) = &self.nodes[i].liar {
                    if let Ok(Message {
                        request_id,
                        body: Body::FindSuccessor { key },
                        ..
                    }) = codec.decode(&data)
                    {
                        self.nodes[i].asked.insert((from, request_id), key);
                    }
                }
                let now = self.now;
                self.nodes[i].engine.handle_datagram(now, from, &data);
                self.after(i);
            }
            Ev::Wake(i) => {
                if !self.nodes[i].alive || self.nodes[i].scheduled != Some(q.at) {
                    return true;
                }
                self.nodes[i].scheduled = None;
                let now = self.now;
                self.nodes[i].engine.handle_timeout(now);
                self.after(i);
            }
        }
        true
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Queued {
            at,
            seq: self.seq,
            ev,
        }));
    }

    /// Moves a node's outputs into the network and schedules its next wake-up.
    fn after(&mut self, i: usize) {
        let from = Self::addr_of(i);
        let transmits: Vec<_> = self.nodes[i].engine.drain_transmits().collect();
        for mut t in transmits {
            t.data = self.falsify(i, t.to, t.data);
            if self.cfg.loss > 0.0 && self.rng.gen_bool(self.cfg.loss.min(1.0)) {
                self.lost += 1;
                continue;
            }
            let (lo, hi) = (
                self.cfg.delay_min.as_micros() as u64,
                self.cfg.delay_max.as_micros() as u64,
            );
            let delay = if hi > lo {
                self.rng.gen_range(lo..=hi)
            } else {
                lo
            };
            let at = self.now + delay;
            self.push(
                at,
                Ev::Deliver {
                    to: t.to,
                    from,
                    data: t.data,
                },
            );
        }
        let done: Vec<_> = self.nodes[i].engine.drain_completions().collect();
        for c in done {
            self.results.insert((i, c.op), c.result);
        }
        self.nodes[i].engine.drain_events().for_each(drop);
        if let Some(t) = self.nodes[i].engine.next_timeout() {
            let t = t.max(self.now);
            if self.nodes[i]
                .scheduled
                .is_none_or(|s| t < s || s < self.now)
            {
                self.nodes[i].scheduled = Some(t);
                self.push(t, Ev::Wake(i));
            }
        }
    }

    /// Compares every live, joined node's successor and predecessor with the true ring.
    pub fn check_ring(&self) -> RingCheck {
        let mut live: Vec<(Id, usize)> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].alive && self.nodes[i].engine.phase() == Phase::Joined)
            .map(|i| (self.nodes[i].engine.me().id, i))
            .collect();
        live.sort();
        let n = live.len();
        let mut check = RingCheck {
            live: n,
            ..RingCheck::default()
        };
        for (pos, (_, i)) in live.iter().enumerate() {
            let rt = self.nodes[*i].engine.routing();
            let true_succ = live[(pos + 1) % n].0;
            let true_pred = live[(pos + n - 1) % n].0;
            let succ_ok = if n == 1 {
                rt.successor().is_none()
            } else {
                rt.successor().map(|s| s.id) == Some(true_succ)
            };
            let pred_ok = if n == 1 {
                rt.predecessor().is_none()
            } else {
                rt.predecessor().map(|p| p.id) == Some(true_pred)
            };
            check.wrong_successor += !succ_ok as usize;
            check.wrong_predecessor += !pred_ok as usize;
        }
        check
    }

    /// Whether every live, joined node's predecessor list names its true
    /// predecessors `depth` deep (replicas refuse copies from a primary
    /// they do not list yet).
    pub fn predecessors_complete(&self, depth: usize) -> bool {
        let mut live: Vec<Id> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].alive && self.nodes[i].engine.phase() == Phase::Joined)
            .map(|i| self.nodes[i].engine.me().id)
            .collect();
        live.sort();
        let n = live.len();
        let depth = depth.min(n.saturating_sub(1));
        self.nodes
            .iter()
            .filter(|s| s.alive && s.engine.phase() == Phase::Joined)
            .all(|s| {
                let pos = live.binary_search(&s.engine.me().id).expect("live");
                let preds = s.engine.routing().predecessors();
                (0..depth).all(|j| preds.get(j).map(|p| p.id) == Some(live[(pos + n - 1 - j) % n]))
            })
    }

    /// The live node truly responsible for `key` (oracle for tests).
    pub fn responsible(&self, key: &Id) -> Option<NodeInfo> {
        let mut best: Option<NodeInfo> = None;
        for n in self
            .nodes
            .iter()
            .filter(|n| n.alive && n.engine.phase() == Phase::Joined)
        {
            let me = *n.engine.me();
            let d = key.distance_to(&me.id);
            if best.is_none_or(|b| d < key.distance_to(&b.id)) {
                best = Some(me);
            }
        }
        best
    }

    /// How many live nodes hold a live entry labelled `writer` under `key`.
    pub fn copies(&self, key: &Id, writer: &[u8]) -> usize {
        self.nodes
            .iter()
            .filter(|n| {
                n.alive
                    && n.engine.store().entries(key, self.now).iter().any(|e| {
                        crate::owner::split_slot(&e.writer).is_some_and(|(_, l)| l == writer)
                    })
            })
            .count()
    }

    /// Bytes each live node sent per second while one membership change a
    /// second happens for `secs` seconds: a random node crashes, or a new
    /// node with `cfg` joins through a random live one, in turn. Returns
    /// (bytes for one-hop tables, bytes in all), per node per second.
    pub fn upkeep_under_churn(&mut self, secs: u32, cfg: &Config) -> (f64, f64) {
        let sent = |net: &SimNet| -> (u64, u64) {
            net.live_nodes().iter().fold((0, 0), |(m, t), &i| {
                let s = net.nodes[i].engine.stats();
                (m + s.member_bytes_sent, t + s.bytes_sent)
            })
        };
        let (m0, t0) = sent(self);
        for s in 0..secs {
            let live = self.live_nodes();
            let pick = live[self.rng.gen_range(0..live.len())];
            if s % 2 == 0 {
                self.kill(pick);
            } else {
                let i = self.add_node(cfg.clone());
                self.start_join(i, &[pick]);
            }
            self.run_for(Duration::from_secs(1));
        }
        let (m1, t1) = sent(self);
        let per = |b: u64| b as f64 / self.live_nodes().len() as f64 / secs as f64;
        (per(m1 - m0), per(t1 - t0))
    }

    /// Builds a ring of `n` nodes, each joining through a random node that has
    /// already joined, `gap` apart. Returns true once every join succeeded and
    /// all `n` nodes form a correct ring, false if that does not happen within
    /// `settle`.
    pub fn build_ring(&mut self, n: usize, cfg: &Config, gap: Duration, settle: Duration) -> bool {
        let first = self.add_node(cfg.clone());
        if self.join(first, &[]).is_err() {
            return false;
        }
        let mut joins = Vec::with_capacity(n);
        for _ in 1..n {
            let joined: Vec<usize> = self
                .live_nodes()
                .into_iter()
                .filter(|&i| self.nodes[i].engine.phase() == Phase::Joined)
                .collect();
            let boot = joined[self.rng.gen_range(0..joined.len())];
            let i = self.add_node(cfg.clone());
            joins.push((i, self.start_join(i, &[boot])));
            self.run_for(gap);
        }
        for (i, op) in joins {
            if !matches!(self.wait(i, op, OP_WAIT), Some(OpResult::Join(Ok(())))) {
                return false;
            }
        }
        self.run_until(settle, Duration::from_millis(500), |s| {
            let check = s.check_ring();
            check.live == n && check.is_correct()
        })
    }
}
