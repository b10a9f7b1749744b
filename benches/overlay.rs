//! Overlay benchmarks: `cargo bench --bench overlay` (numbers go to docs/PERFORMANCE.md).
//!
//! 1. hops vs N on the in-memory network, against 1/2 log2 N;
//! 2. 64 real UDP nodes on loopback: lookup latency, lookups/s and gets/s with 32 in flight and
//!    the process CPU per operation, put/get latency;
//! 3. memory per idle node and per stored 200-byte value (RSS deltas);
//! 4. time for a new node to join a 64-node overlay and hold its share of the keys;
//! 5. the cost of record ownership: signing and checking one entry.

use chordsip::sim::{SimConfig, SimNet};
use chordsip::stats::Histogram;
use chordsip::testnet::Testnet;
use chordsip::{Config, Id, Node};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// CPU time of this process so far (user + system), from /proc/self/stat.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime
    // are the 12th and 13th, in clock ticks (USER_HZ, 100 on Linux).
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Keeps `depth` operations in flight for `run_for`: `issue(n, done)` starts
/// the n-th, which calls `done(succeeded)` when it ends. Returns operations
/// completed per second, how many succeeded, how many were issued, and the
/// process CPU per completed operation in µs.
fn in_flight(
    depth: u64,
    run_for: Duration,
    issue: impl Fn(u64, Box<dyn FnOnce(bool) + Send>),
) -> (f64, u64, u64, f64) {
    let ok = Arc::new(AtomicU64::new(0));
    let (tx, rx) = crossbeam_channel::unbounded::<()>();
    let start_one = |n: u64| {
        let (tx, ok) = (tx.clone(), ok.clone());
        issue(
            n,
            Box::new(move |good| {
                if good {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
                let _ = tx.send(());
            }),
        );
    };
    let cpu0 = process_cpu();
    let start = Instant::now();
    let mut issued = 0u64;
    for _ in 0..depth {
        start_one(issued);
        issued += 1;
    }
    let mut completed = 0u64;
    while start.elapsed() < run_for {
        if rx.recv_timeout(Duration::from_secs(2)).is_err() {
            break;
        }
        completed += 1;
        start_one(issued);
        issued += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let rate = completed as f64 / secs;
    let cpu = (process_cpu() - cpu0).as_secs_f64() * 1e6 / completed.max(1) as f64;
    while completed < issued && rx.recv_timeout(Duration::from_secs(3)).is_ok() {
        completed += 1;
    }
    (rate, ok.load(Ordering::Relaxed), issued, cpu)
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Nodes join 2 ms apart (concurrent joins, as a real overlay sees them), then
/// the finger tables get 20 s to settle before 2,000 lookups are measured.
/// Mean and p99 hops of 2,000 checked lookups on a converged ring of `n`
/// built with `cfg`.
fn hops_of(n: usize, cfg: &Config) -> (f64, u64) {
    let mut net = SimNet::new(SimConfig {
        seed: n as u64,
        ..SimConfig::default()
    });
    assert!(net.build_ring(n, cfg, Duration::from_millis(2), Duration::from_secs(600)));
    net.run_for(Duration::from_secs(20));
    let mut h = Histogram::default();
    for i in 0..2000 {
        let from = (i * 7919) % n;
        let key = Id::from_name(&format!("bench-{i}"));
        let r = net.lookup(from, key).unwrap();
        assert_eq!(Some(r.node), net.responsible(&key));
        h.record(r.hops as u64);
    }
    (h.mean(), h.quantile(0.99))
}

fn hops_row(n: usize) {
    let t = Instant::now();
    let chord_only = Config {
        location_cache: 0,
        ..Config::default()
    };
    let (mean, p99) = hops_of(n, &chord_only);
    let (cached, cached_p99) = hops_of(n, &Config::default());
    println!(
        "| {n} | {mean:.2} | {p99} | {cached:.2} | {cached_p99} | {:.2} | {:.0} s |",
        0.5 * (n as f64).log2(),
        t.elapsed().as_secs_f64()
    );
}

fn hops_vs_n(max_n: usize) {
    println!("## hops vs N (in-memory network, 2000 lookups from random nodes to random keys)");
    println!(
        "| N | mean hops, Chord alone | p99 | with the location cache | p99 | 1/2 log2 N | wall time |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut n = 16;
    while n <= max_n {
        hops_row(n);
        n *= 4;
    }
}

fn udp_64() {
    println!(
        "\n## 64 nodes on loopback UDP, one process ({} worker threads)",
        chordsip::runtime::Runtime::shared(None).unwrap().threads()
    );
    let net = Testnet::new(64, &Config::default(), Duration::from_secs(60)).unwrap();
    // Let the fingers settle.
    std::thread::sleep(Duration::from_secs(8));
    let mut lat = Histogram::default();
    let mut hops = Histogram::default();
    for i in 0..5000 {
        let t = Instant::now();
        let r = net.nodes[i % 64]
            .lookup(Id::from_name(&format!("lat-{i}")))
            .unwrap();
        lat.record(t.elapsed().as_micros() as u64);
        hops.record(r.hops as u64);
    }
    println!(
        "sequential lookups: p50 {:.3} ms, p99 {:.3} ms, mean hops {:.2}",
        ms(lat.quantile(0.5)),
        ms(lat.quantile(0.99)),
        hops.mean()
    );

    // Throughput: keep 32 lookups in flight for 3 seconds.
    let (rate, ok, issued, cpu) = in_flight(32, Duration::from_secs(3), |n, done| {
        net.nodes[(n % 64) as usize]
            .lookup_async(
                Id::from_name(&format!("tp-{n}")),
                Duration::from_secs(2),
                move |r| done(r.is_ok()),
            )
            .unwrap();
    });
    println!(
        "throughput, 32 in flight: {rate:.0} lookups/s ({ok} ok of {issued} issued), \
         process CPU {cpu:.1} µs per lookup"
    );
    let mut put = Histogram::default();
    let mut get = Histogram::default();
    let value = vec![b'x'; 200];
    for i in 0..2000 {
        let k = Id::from_name(&format!("pg-{i}"));
        let t = Instant::now();
        net.nodes[i % 64]
            .put(k, b"bench", &value, Duration::from_secs(600))
            .unwrap();
        put.record(t.elapsed().as_micros() as u64);
        let t = Instant::now();
        let v = net.nodes[(i + 17) % 64].get(k).unwrap();
        get.record(t.elapsed().as_micros() as u64);
        assert_eq!(v.len(), 1);
    }
    println!(
        "put (3 copies): p50 {:.3} ms, p99 {:.3} ms; get: p50 {:.3} ms, p99 {:.3} ms",
        ms(put.quantile(0.5)),
        ms(put.quantile(0.99)),
        ms(get.quantile(0.5)),
        ms(get.quantile(0.99))
    );

    // Gets of the values just written, 32 in flight, each from a node that
    // does not hold it (17 positions on).
    let (rate, ok, issued, cpu) = in_flight(32, Duration::from_secs(3), |n, done| {
        let k = Id::from_name(&format!("pg-{}", n % 2000));
        net.nodes[((n + 17) % 64) as usize]
            .get_async(k, move |r| done(r.is_ok_and(|v| v.len() == 1)))
            .unwrap();
    });
    println!(
        "gets, 32 in flight: {rate:.0} gets/s ({ok} found of {issued} issued), \
         process CPU {cpu:.1} µs per get"
    );

    // Join: a new node enters the loaded overlay and takes over its share.
    for i in 0..3000 {
        net.nodes[i % 64]
            .put(
                Id::from_name(&format!("share-{i}")),
                b"bench",
                &value,
                Duration::from_secs(600),
            )
            .unwrap();
    }
    let t = Instant::now();
    let newcomer = Node::start(Config::default()).unwrap();
    newcomer.join(&net.bootstrap()).unwrap();
    let joined = t.elapsed();
    let mut all = net.nodes.clone();
    all.push(newcomer.clone());
    let held_at = loop {
        let r = newcomer.ring().unwrap();
        if let Some(p) = r.predecessors.first() {
            let mine: Vec<Id> = (0..3000)
                .map(|i| Id::from_name(&format!("share-{i}")))
                .chain((0..2000).map(|i| Id::from_name(&format!("pg-{i}"))))
                .filter(|k| k.in_open_closed(&p.id, &newcomer.id()))
                .collect();
            let stored = newcomer.stored_keys().unwrap();
            if !mine.is_empty() && mine.iter().all(|k| stored.contains(k)) {
                println!("join of a 65th node: join() returned after {:.1} ms; it held all {} keys it is primary for after {:.1} ms", joined.as_secs_f64() * 1000.0, mine.len(), t.elapsed().as_secs_f64() * 1000.0);
                break t.elapsed();
            }
        }
        if t.elapsed() > Duration::from_secs(20) {
            println!("join: share not complete after 20 s");
            break t.elapsed();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = held_at;
    let (mut msgs, mut bytes) = (0u64, 0u64);
    for n in &all {
        let s = n.stats().unwrap();
        msgs += s.msgs_sent;
        bytes += s.bytes_sent;
    }
    println!(
        "all datagrams of the run: {msgs}, {:.0} bytes on average",
        bytes as f64 / msgs.max(1) as f64
    );
    for n in &all {
        n.stop();
    }
}

/// Memory of 64 idle joined nodes, measured in a fresh process so that memory
/// freed by earlier phases cannot hide the growth.
fn memory_idle_nodes() {
    let before = rss_bytes();
    let idle = Testnet::new(64, &Config::default(), Duration::from_secs(60)).unwrap();
    // A few maintenance rounds so tables, timers and RTT state reach steady state.
    std::thread::sleep(Duration::from_secs(3));
    let after = rss_bytes();
    println!(
        "64 idle joined nodes: {:.1} KB RSS per node (runtime threads included)",
        after.saturating_sub(before) as f64 / 64.0 / 1024.0
    );
    assert!(idle.converged(), "the 64 nodes stayed one ring");
}

/// Memory per stored copy of a 200-byte value, in a fresh process.
fn memory_per_value() {
    let net = Testnet::new(8, &Config::default(), Duration::from_secs(30)).unwrap();
    let value = vec![b'v'; 200];
    let values = 20_000;
    let before = rss_bytes();
    for i in 0..values {
        net.nodes[i % 8]
            .put(
                Id::from_name(&format!("mem-{i}")),
                b"sip:device-1",
                &value,
                Duration::from_secs(3600),
            )
            .unwrap();
    }
    let ids: Vec<Id> = (0..values)
        .map(|i| Id::from_name(&format!("mem-{i}")))
        .collect();
    assert!(net.wait_copies(&ids, 3, Duration::from_secs(30)));
    let after = rss_bytes();
    let copies: usize = net
        .nodes
        .iter()
        .map(|n| n.ring().unwrap().stored_entries)
        .sum();
    println!(
        "{values} values of 200 bytes, {copies} stored copies: {:.0} bytes RSS per copy",
        after.saturating_sub(before) as f64 / copies as f64
    );
}

/// Runs one measurement in a child process of this benchmark binary.
fn in_child(name: &str) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--child", name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    print!("{}", String::from_utf8_lossy(&out.stdout));
}

/// Median µs per signature and per check of a 200-byte entry (5 batches of 2,000).
fn ownership_cost() {
    use chordsip::owner::{Verifier, WriterKey};
    use chordsip::wire::WireEntry;
    let key = Id::from_name("sip:alice@example.com");
    let writer = WriterKey::from_secret(&[7; 32]);
    let mut e = WireEntry::unsigned(writer.slot(b"i:phone"), 1, 60_000, false, vec![b'x'; 200]);
    let mut verifier = Verifier::default();
    let (mut sign, mut verify) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let t = Instant::now();
        for v in 0..2000 {
            e.version = v;
            writer.sign(&key, &mut e);
        }
        sign.push(t.elapsed().as_secs_f64() * 1e6 / 2000.0);
        let t = Instant::now();
        for _ in 0..2000 {
            assert!(verifier.verify(&key, &e));
        }
        verify.push(t.elapsed().as_secs_f64() * 1e6 / 2000.0);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("\n## record ownership (Ed25519, 200-byte entry)");
    println!(
        "sign {:.1} µs, check {:.1} µs (medians of 5 batches of 2,000)",
        median(&mut sign),
        median(&mut verify)
    );
}

/// CPU a node spends on one datagram of forged Replicate entries from a
/// stranger (issue 13): 32 KiB of entries for keys the node holds, each with
/// a bad signature, sent to one node of a converged 12-node ring in the
/// in-memory network. Median µs per datagram over 5 batches of 50.
fn forged_replicate_cost() {
    use chordsip::wire::{Body, Codec, Message, WireEntry};
    let mut net = SimNet::new(SimConfig {
        seed: 5,
        ..SimConfig::default()
    });
    assert!(net.build_ring(
        12,
        &Config::default(),
        Duration::from_millis(20),
        Duration::from_secs(60)
    ));
    assert!(
        net.run_until(Duration::from_secs(10), Duration::from_millis(100), |n| {
            n.predecessors_complete(3)
        })
    );
    let victim = 3;
    let pred = net.engine(victim).routing().predecessors()[0];
    let held: Vec<Id> = (0..)
        .map(|i| Id::from_name(&format!("held-{i}")))
        .filter(|k| net.engine(victim).routing().is_holder(k, 3) == Some(true))
        .take(8)
        .collect();
    let from: std::net::SocketAddr = "127.9.9.9:9999".parse().unwrap();
    net.open_mailbox(from);
    let codec = Codec::new("chordsip", None, 65_507);
    let victim_owner = chordsip::owner::WriterKey::from_secret(&[9; 32]);
    let forger = chordsip::owner::WriterKey::from_secret(&[8; 32]);
    let wall = 1_700_000_000_000 + net.now() / 1000;
    let me = net.engine(victim).me().id;
    let datagram = |n: u64| {
        let items: Vec<(Id, WireEntry)> = (0..120u64)
            .map(|i| {
                // A well-formed signature by another key: checking it costs a
                // full verification before it fails.
                let label = format!("forged-{n}-{i}");
                let slot = victim_owner.slot(label.as_bytes());
                let mut e = WireEntry::unsigned(slot, n + 1, 600_000, false, vec![b'x'; 120]);
                e.expires_ms = wall + 600_000;
                let k = held[i as usize % held.len()];
                forger.sign(&k, &mut e);
                (k, e)
            })
            .collect();
        codec
            .encode(&Message {
                flags: 0,
                overlay: codec.overlay(),
                request_id: n + 1,
                timestamp_ms: wall,
                sender: pred.id,
                receiver: me,
                cookie: 0,
                body: Body::Replicate { items },
            })
            .unwrap()
    };
    let size = datagram(0).len();
    let mut per = Vec::new();
    for batch in 0..5u64 {
        let data: Vec<Vec<u8>> = (0..50).map(|i| datagram(batch * 50 + i)).collect();
        // The network's own work over the same virtual time, subtracted.
        let t = Instant::now();
        net.run_for(Duration::from_millis(200));
        let idle = t.elapsed();
        let t = Instant::now();
        for d in data {
            net.send_raw(from, victim, d);
        }
        // Delivery happens as the network runs.
        net.run_for(Duration::from_millis(200));
        let busy = t.elapsed().saturating_sub(idle);
        per.push(busy.as_secs_f64() * 1e6 / 50.0);
        net.take_mail(&from);
    }
    per.sort_by(f64::total_cmp);
    let forged = net.engine(victim).stats().forged_entries;
    println!("\n## forged Replicate from a stranger ({size}-byte datagram, 120 entries)");
    println!(
        "{:.1} µs of CPU per datagram (median of 5 batches of 50); entry signatures checked: {forged}",
        per[2]
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--child") {
        match args.get(pos + 1).map(String::as_str) {
            Some("memory-idle") => memory_idle_nodes(),
            Some("memory-values") => memory_per_value(),
            Some("hops") => hops_row(args[pos + 2].parse().expect("hops N")),
            Some("forged-replicate") => forged_replicate_cost(),
            Some("udp-64") => udp_64(),
            other => panic!("unknown child {other:?}"),
        }
        return;
    }
    // `cargo bench` passes --bench; --quick keeps the in-memory sweep short.
    let quick = args.iter().any(|a| a == "--quick");
    let t = Instant::now();
    hops_vs_n(if quick { 256 } else { 16_384 });
    ownership_cost();
    forged_replicate_cost();
    udp_64();
    println!("\n## memory (each in a fresh process)");
    in_child("memory-idle");
    in_child("memory-values");
    println!("\n(total {:.0} s)", t.elapsed().as_secs_f64());
}
