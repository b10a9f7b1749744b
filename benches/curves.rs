//! Benchmark curves as CSV files, for `scripts/plots.sh` (docs/PERFORMANCE.md, "Charts"):
//!
//! 1. `hops.csv`: lookup hops against N on the in-memory network (Chord alone, every lookup
//!    checked against the true owner), with ½·log2 N beside each row;
//! 2. `latency.csv`: every lookup's latency (µs from the call to its callback) and hops on
//!    real UDP nodes on loopback, one or more setups (node count × lookups kept in flight),
//!    every answer checked against the true owner;
//! 3. `recovery.csv`: real UDP nodes holding keys at 3 copies; a quarter of them (every fourth
//!    in ring order) are killed at t = 0 and, every 100 ms from 1 s before, every key is read
//!    (`get`) and looked up (checked against the true owner among the live nodes) through the
//!    live nodes in turn, spread over 40 ms, until the overlay has recovered (the ring correct, every key at full
//!    copies, every read and lookup right, for `--hold-s`) or a bound passes. A row is one
//!    sample: `t_ms` (when its reads were issued, relative to the kill), the share of its reads
//!    that found the value and of its lookups that named the owner, the nodes alive, whether
//!    the ring was correct then (0/1), the share of keys at full copies then, its reads' p99
//!    latency, the share of its lookups that failed (the rest of the misses ended at a wrong
//!    node) and its reads' p50 latency.
//!
//! ```text
//! cargo bench --bench curves -- --csv DIR [--only hops,latency,recovery]
//!     [--sizes 16,64,256,1024,4096] [--lookups 2000]
//!     [--latency-nodes 64] [--latency-depths 1,32] [--latency-lookups 20000] [--settle-s 8]
//!     [--recovery-nodes 64] [--recovery-keys 400] [--recovery-bound-s 30] [--hold-s 2]
//! ```
//!
//! DIR defaults to `$CHORDSIP_CSV_DIR`, else `target/curves`. Every loop is bounded in count
//! and time; every node listens on 127.0.0.1.

use chordsip::sim::{SimConfig, SimNet};
use chordsip::testnet::Testnet;
use chordsip::{Config, Id, Node};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Args {
    dir: PathBuf,
    only: Vec<String>,
    sizes: Vec<usize>,
    lookups: usize,
    latency_nodes: Vec<usize>,
    latency_depths: Vec<usize>,
    latency_lookups: usize,
    settle: Duration,
    recovery_nodes: usize,
    recovery_keys: usize,
    recovery_bound: Duration,
    hold: Duration,
}

fn list(v: &str, name: &str) -> Vec<usize> {
    v.split(',')
        .map(|x| {
            x.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}: not a number list: {v}"))
        })
        .collect()
}

fn parse_args() -> Args {
    let mut a = Args {
        dir: std::env::var_os("CHORDSIP_CSV_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target/curves")),
        only: vec!["hops".into(), "latency".into(), "recovery".into()],
        sizes: vec![16, 64, 256, 1024, 4096],
        lookups: 2000,
        latency_nodes: vec![64],
        latency_depths: vec![1, 32],
        latency_lookups: 20_000,
        settle: Duration::from_secs(8),
        recovery_nodes: 64,
        recovery_keys: 400,
        recovery_bound: Duration::from_secs(30),
        hold: Duration::from_secs(2),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        // `cargo bench` passes --bench to every bench binary.
        if flag == "--bench" {
            continue;
        }
        let value = it
            .next()
            .unwrap_or_else(|| panic!("{flag} needs a value (see benches/curves.rs)"));
        let secs = |v: &str| Duration::from_secs_f64(v.parse().expect("seconds"));
        let one = |v: &str| v.parse::<usize>().expect("a number");
        match flag.as_str() {
            "--csv" => a.dir = PathBuf::from(value),
            "--only" => a.only = value.split(',').map(str::to_string).collect(),
            "--sizes" => a.sizes = list(&value, &flag),
            "--lookups" => a.lookups = one(&value),
            "--latency-nodes" => a.latency_nodes = list(&value, &flag),
            "--latency-depths" => a.latency_depths = list(&value, &flag),
            "--latency-lookups" => a.latency_lookups = one(&value),
            "--settle-s" => a.settle = secs(&value),
            "--recovery-nodes" => a.recovery_nodes = one(&value),
            "--recovery-keys" => a.recovery_keys = one(&value),
            "--recovery-bound-s" => a.recovery_bound = secs(&value),
            "--hold-s" => a.hold = secs(&value),
            _ => panic!("unknown option {flag} (see benches/curves.rs)"),
        }
    }
    for w in &a.only {
        assert!(
            ["hops", "latency", "recovery"].contains(&w.as_str()),
            "--only: unknown curve {w}"
        );
    }
    assert!(a.recovery_nodes >= 8, "--recovery-nodes: at least 8");
    a
}

/// Nearest-rank quantile of sorted values.
fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn csv(dir: &Path, name: &str, header: &str) -> BufWriter<File> {
    let path = dir.join(name);
    let mut f =
        BufWriter::new(File::create(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
    writeln!(f, "{header}").unwrap();
    f
}

/// The node responsible for `key` among `sorted` ids: the first at or after it, clockwise.
fn owner_of(sorted: &[Id], key: &Id) -> Id {
    match sorted.binary_search(key) {
        Ok(i) => sorted[i],
        Err(i) => sorted[i % sorted.len()],
    }
}

fn sorted_ids(net: &Testnet) -> Vec<Id> {
    let mut ids: Vec<Id> = net.nodes.iter().map(|n| n.id()).collect();
    ids.sort();
    ids
}

/// Rings built by the protocol (joins 2 ms apart through random joined nodes), 20 s of
/// virtual time for the fingers, then `lookups` from random nodes to random keys, each
/// checked against the node truly responsible. Chord alone (no location cache), the
/// routing ½·log2 N describes.
fn hops(a: &Args) {
    let mut out = csv(
        &a.dir,
        "hops.csv",
        "nodes,lookups,hops_mean,hops_p50,hops_p99,half_log2_n",
    );
    let cfg = Config {
        location_cache: 0,
        ..Config::default()
    };
    println!(
        "## hops vs N (in-memory network, Chord alone, {} lookups each)",
        a.lookups
    );
    for &n in &a.sizes {
        let t = Instant::now();
        let mut net = SimNet::new(SimConfig {
            seed: n as u64,
            ..SimConfig::default()
        });
        assert!(
            net.build_ring(n, &cfg, Duration::from_millis(2), Duration::from_secs(600)),
            "a ring of {n} did not converge: {:?}",
            net.check_ring()
        );
        net.run_for(Duration::from_secs(20));
        let mut rng = ChaCha8Rng::seed_from_u64(n as u64);
        let mut h: Vec<u64> = (0..a.lookups)
            .map(|i| {
                let from = rng.gen_range(0..n);
                let key = Id::from_name(&format!("curve-{n}-{i}-{}", rng.gen::<u64>()));
                let r = net.lookup(from, key).expect("lookup succeeds");
                assert_eq!(
                    Some(r.node),
                    net.responsible(&key),
                    "N={n}: lookup {i} from node {from} ended at the wrong node"
                );
                r.hops as u64
            })
            .collect();
        h.sort_unstable();
        let mean = h.iter().sum::<u64>() as f64 / h.len().max(1) as f64;
        let half = 0.5 * (n as f64).log2();
        writeln!(
            out,
            "{n},{},{mean:.4},{},{},{half:.4}",
            h.len(),
            quantile(&h, 0.5),
            quantile(&h, 0.99)
        )
        .unwrap();
        out.flush().unwrap();
        println!(
            "N={n:6}: mean {mean:.2} hops, p50 {}, p99 {} (1/2 log2 N = {half:.2}); {:.0} s",
            quantile(&h, 0.5),
            quantile(&h, 0.99),
            t.elapsed().as_secs_f64()
        );
    }
}

/// A chain of lookups: each one's callback records it and starts the next, on the library
/// thread, so that as many lookups stay in flight as chains were started, whatever this
/// thread is doing.
struct Chain {
    nodes: Arc<Vec<Node>>,
    ids: Vec<Id>,
    next: AtomicUsize,
    count: usize,
    tag: String,
    timeout: Duration,
    tx: crossbeam_channel::Sender<Option<(u64, u32, bool)>>,
}

/// Starts the chain's next lookup (the next of `count` fresh keys, through the nodes in
/// turn); its answer goes to the channel: latency (µs from the call to its callback), hops,
/// whether it named the true owner; `None` for a lookup that failed.
fn chain(c: Arc<Chain>) {
    loop {
        let i = c.next.fetch_add(1, Ordering::AcqRel);
        if i >= c.count {
            return;
        }
        let key = Id::from_name(&format!("lat-{}-{i}", c.tag));
        let owner = owner_of(&c.ids, &key);
        let t = Instant::now();
        let c2 = c.clone();
        let started = c.nodes[i % c.nodes.len()].lookup_async(key, c.timeout, move |r| {
            let us = t.elapsed().as_micros() as u64;
            let _ = c2.tx.send(r.ok().map(|o| (us, o.hops, o.node.id == owner)));
            chain(c2);
        });
        match started {
            Ok(()) => return,
            Err(_) => {
                let _ = c.tx.send(None);
            }
        }
    }
}

/// One setup: `count` lookups, `depth` chains of them kept in flight. Returns each
/// successful lookup's latency (µs) and hops, how many ended at a wrong node and how many
/// failed.
fn lookups_in_flight(
    net: &Testnet,
    depth: usize,
    count: usize,
    tag: &str,
) -> (Vec<(u64, u32)>, usize, usize) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let c = Arc::new(Chain {
        nodes: Arc::new(net.nodes.clone()),
        ids: sorted_ids(net),
        next: AtomicUsize::new(0),
        count,
        tag: tag.to_string(),
        timeout: Duration::from_secs(2),
        tx,
    });
    for _ in 0..depth.min(count) {
        chain(c.clone());
    }
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut lat, mut wrong, mut failed) = (Vec::with_capacity(count), 0, 0);
    while lat.len() + failed < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(r) = rx.recv_timeout(left.min(Duration::from_secs(5))) else {
            break;
        };
        match r {
            Some((us, hops, right)) => {
                lat.push((us, hops));
                wrong += usize::from(!right);
            }
            None => failed += 1,
        }
    }
    let missing = count - lat.len() - failed;
    (lat, wrong, failed + missing)
}

fn latency(a: &Args) {
    let mut out = csv(&a.dir, "latency.csv", "setup,latency_us,hops");
    println!("## lookup latency on loopback UDP (one process)");
    for &n in &a.latency_nodes {
        let t = Instant::now();
        let net = Testnet::new(n, &Config::default(), Duration::from_secs(60)).expect("testnet");
        let converged = net.converged();
        // Let the fingers settle.
        std::thread::sleep(a.settle);
        println!(
            "{n} nodes up in {:.1} s (ring converged: {converged})",
            t.elapsed().as_secs_f64()
        );
        for &depth in &a.latency_depths {
            // No comma: the label is a CSV field.
            let setup = format!("{n} nodes / {depth} in flight");
            let t = Instant::now();
            let (done, wrong, failed) = lookups_in_flight(
                &net,
                depth.max(1),
                a.latency_lookups,
                &format!("{n}-{depth}"),
            );
            let secs = t.elapsed().as_secs_f64();
            for (us, hops) in &done {
                writeln!(out, "{setup},{us},{hops}").unwrap();
            }
            let mut lat: Vec<u64> = done.iter().map(|(us, _)| *us).collect();
            lat.sort_unstable();
            let hops = done.iter().map(|(_, h)| *h as f64).sum::<f64>() / done.len().max(1) as f64;
            println!(
                "{setup}: {} lookups in {secs:.1} s ({:.0}/s), p50 {:.3} ms, p99 {:.3} ms, \
                 max {:.3} ms, mean hops {hops:.2}; {wrong} ended at a wrong node, {failed} failed",
                lat.len(),
                lat.len() as f64 / secs,
                quantile(&lat, 0.5) as f64 / 1000.0,
                quantile(&lat, 0.99) as f64 / 1000.0,
                lat.last().copied().unwrap_or(0) as f64 / 1000.0,
            );
        }
        out.flush().unwrap();
        for node in &net.nodes {
            node.stop();
        }
    }
}

/// What one sample's reads and lookups found, filled in by their callbacks.
#[derive(Default)]
struct Acc {
    found: AtomicUsize,
    lookups_ok: AtomicUsize,
    lookups_failed: AtomicUsize,
    done: AtomicUsize,
    get_us: Mutex<Vec<u64>>,
}

struct Sample {
    t_ms: i64,
    alive: usize,
    ring_ok: bool,
    copies_full: f64,
    acc: Arc<Acc>,
}

impl Sample {
    fn complete(&self, keys: usize) -> bool {
        self.acc.done.load(Ordering::Acquire) >= 2 * keys
    }
    fn full(&self, keys: usize) -> bool {
        self.complete(keys)
            && self.acc.found.load(Ordering::Acquire) == keys
            && self.acc.lookups_ok.load(Ordering::Acquire) == keys
            && self.ring_ok
            && self.copies_full >= 1.0
    }
}

/// Starts a get and a lookup of every key, through the nodes in turn (shifted by `round`),
/// `gap` apart from key to key (a sample's operations spread over part of the period rather
/// than queued in one burst); the get counts when it returns the key's value, the lookup when
/// it names the owner among `ids` (the live nodes).
fn issue_sample(
    net: &Testnet,
    ids: &[Id],
    keys: &[(Id, Vec<u8>)],
    round: usize,
    timeout: Duration,
    gap: Duration,
    acc: &Arc<Acc>,
) {
    let n = net.nodes.len();
    for (i, (k, v)) in keys.iter().enumerate() {
        let t = Instant::now();
        let (a, want) = (acc.clone(), v.clone());
        let r = net.nodes[(i + round) % n].get_async(*k, move |r| {
            if r.is_ok_and(|vals| vals.iter().any(|x| x.data == want)) {
                a.found.fetch_add(1, Ordering::AcqRel);
            }
            if let Ok(mut g) = a.get_us.lock() {
                g.push(t.elapsed().as_micros() as u64);
            }
            a.done.fetch_add(1, Ordering::AcqRel);
        });
        if r.is_err() {
            acc.done.fetch_add(1, Ordering::AcqRel);
        }
        let (a, owner) = (acc.clone(), owner_of(ids, k));
        let r = net.nodes[(i + round + 7) % n].lookup_async(*k, timeout, move |r| {
            match r {
                Ok(o) if o.node.id == owner => a.lookups_ok.fetch_add(1, Ordering::AcqRel),
                Ok(_) => 0,
                Err(_) => a.lookups_failed.fetch_add(1, Ordering::AcqRel),
            };
            a.done.fetch_add(1, Ordering::AcqRel);
        });
        if r.is_err() {
            acc.lookups_failed.fetch_add(1, Ordering::AcqRel);
            acc.done.fetch_add(1, Ordering::AcqRel);
        }
        std::thread::sleep(gap);
    }
}

/// The share of `keys` with at least `copies` copies on the listed nodes.
fn full_copies(net: &Testnet, keys: &[(Id, Vec<u8>)], copies: usize) -> f64 {
    let held: Vec<HashSet<Id>> = net
        .nodes
        .iter()
        .map(|n| n.stored_keys().unwrap_or_default().into_iter().collect())
        .collect();
    let full = keys
        .iter()
        .filter(|(k, _)| held.iter().filter(|h| h.contains(k)).count() >= copies)
        .count();
    full as f64 / keys.len().max(1) as f64
}

fn recovery(a: &Args) {
    let n = a.recovery_nodes;
    let cfg = Config::default();
    let replicas = cfg.replicas;
    let timeout = cfg.op_timeout;
    println!(
        "## kill-recovery timeline: {n} nodes on loopback UDP, {} keys at {replicas} copies, \
         a quarter killed at t = 0",
        a.recovery_keys
    );
    let mut net = Testnet::new(n, &cfg, Duration::from_secs(60)).expect("testnet");
    assert!(net.converged(), "the {n} nodes did not form one ring");
    let keys: Vec<(Id, Vec<u8>)> = (0..a.recovery_keys)
        .map(|i| {
            (
                Id::from_name(&format!("sip:user{i}@recovery.example")),
                format!("sip:user{i}@127.0.0.1:{}", 5060 + i).into_bytes(),
            )
        })
        .collect();
    for (i, (k, v)) in keys.iter().enumerate() {
        net.nodes[i % n]
            .put(*k, b"curve", v, Duration::from_secs(3600))
            .expect("put");
    }
    let key_ids: Vec<Id> = keys.iter().map(|(k, _)| *k).collect();
    assert!(
        net.wait_copies(&key_ids, replicas, Duration::from_secs(30)),
        "the keys did not reach {replicas} copies"
    );
    // A quarter of the nodes, every fourth in ring order: no two neighbours die, so every
    // key keeps at least two of its three copies and all of it can be found again.
    let ring = sorted_ids(&net);
    let victims: HashSet<Id> = ring
        .iter()
        .skip(1)
        .step_by(4)
        .take(n / 4)
        .copied()
        .collect();

    let period = Duration::from_millis(100);
    let baseline = Duration::from_secs(1);
    let gap = period * 2 / 5 / keys.len().max(1) as u32;
    let hold = (a.hold.as_millis() / period.as_millis()).max(1) as usize;
    let start = Instant::now();
    let mut killed_at: Option<Instant> = None;
    let mut ids = ring.clone();
    let mut samples: Vec<Sample> = Vec::new();
    for round in 0.. {
        let now = Instant::now();
        if killed_at.is_none() && now >= start + baseline {
            let (dead, alive): (Vec<_>, Vec<_>) = std::mem::take(&mut net.nodes)
                .into_iter()
                .partition(|node| victims.contains(&node.id()));
            for node in &dead {
                node.stop();
            }
            net.nodes = alive;
            ids = sorted_ids(&net);
            killed_at = Some(Instant::now());
        }
        let t_ms = match killed_at {
            Some(k) => Instant::now().duration_since(k).as_millis() as i64,
            None => {
                -((start + baseline)
                    .duration_since(Instant::now())
                    .as_millis() as i64)
            }
        };
        let ring_ok = net.converged();
        let copies_full = full_copies(&net, &keys, replicas);
        let acc = Arc::new(Acc::default());
        issue_sample(&net, &ids, &keys, round, timeout, gap, &acc);
        samples.push(Sample {
            t_ms,
            alive: net.nodes.len(),
            ring_ok,
            copies_full,
            acc,
        });
        if let Some(k) = killed_at {
            // Recovered: the last `hold` samples, all complete, found everything.
            let tail = samples.iter().rev().take_while(|s| s.t_ms >= 0);
            let recent: Vec<&Sample> = tail.skip_while(|s| !s.complete(keys.len())).collect();
            let stretch = recent.iter().take_while(|s| s.full(keys.len())).count();
            if stretch >= hold || k.elapsed() >= a.recovery_bound {
                break;
            }
        }
        let next = start + period * (round as u32 + 1);
        if let Some(d) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
    // Every operation ends by its deadline: wait for the last samples' answers.
    let drain = Instant::now() + timeout + Duration::from_secs(2);
    while Instant::now() < drain && !samples.iter().all(|s| s.complete(keys.len())) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = csv(
        &a.dir,
        "recovery.csv",
        "t_ms,found_fraction,lookups_ok_fraction,nodes_alive,ring_ok,copies_full_fraction,get_p99_ms,lookups_failed_fraction,get_p50_ms",
    );
    let k = keys.len() as f64;
    for s in &samples {
        let mut g = s.acc.get_us.lock().map(|g| g.clone()).unwrap_or_default();
        g.sort_unstable();
        writeln!(
            out,
            "{},{:.4},{:.4},{},{},{:.4},{:.3},{:.4},{:.3}",
            s.t_ms,
            s.acc.found.load(Ordering::Acquire) as f64 / k,
            s.acc.lookups_ok.load(Ordering::Acquire) as f64 / k,
            s.alive,
            u8::from(s.ring_ok),
            s.copies_full,
            quantile(&g, 0.99) as f64 / 1000.0,
            s.acc.lookups_failed.load(Ordering::Acquire) as f64 / k,
            quantile(&g, 0.5) as f64 / 1000.0,
        )
        .unwrap();
    }
    out.flush().unwrap();
    // From when on each measure held for the rest of the run (ms after the kill).
    let after: Vec<&Sample> = samples.iter().filter(|s| s.t_ms >= 0).collect();
    let from = |ok: &dyn Fn(&Sample) -> bool| -> String {
        match after.iter().rposition(|s| !ok(s)) {
            None => "0 ms (never lost)".into(),
            Some(i) if i + 1 < after.len() => format!("{} ms", after[i + 1].t_ms),
            Some(_) => "not within the bound".into(),
        }
    };
    let kf = keys.len();
    println!(
        "killed {} of {n}; {} samples after the kill. From t = 0 on: every key found from {}, \
         every lookup right from {}, ring correct from {}, every key at {replicas} copies from {}, \
         all of these from {}",
        n / 4,
        after.len(),
        from(&|s| s.complete(kf) && s.acc.found.load(Ordering::Acquire) == kf),
        from(&|s| s.complete(kf) && s.acc.lookups_ok.load(Ordering::Acquire) == kf),
        from(&|s| s.ring_ok),
        from(&|s| s.copies_full >= 1.0),
        from(&|s| s.full(kf)),
    );
    for node in &net.nodes {
        node.stop();
    }
}

fn main() {
    let a = parse_args();
    std::fs::create_dir_all(&a.dir).unwrap_or_else(|e| panic!("{}: {e}", a.dir.display()));
    let t = Instant::now();
    let wants = |w: &str| a.only.iter().any(|x| x == w);
    if wants("hops") {
        hops(&a);
    }
    if wants("latency") {
        latency(&a);
    }
    if wants("recovery") {
        recovery(&a);
    }
    println!(
        "CSV files in {} (total {:.0} s)",
        a.dir.display(),
        t.elapsed().as_secs_f64()
    );
}
