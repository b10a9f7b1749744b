//! A bounded soak: 32 real UDP nodes in this process under steady put/get
//! load while one node is killed or started every second, for
//! `CHORDSIP_SOAK_SECS` (180 s in CI; longer by hand). Every acknowledged
//! value must be found at the end, reads during the churn must keep
//! finding what was acknowledged, and the process's memory must level off.

use chordsip::testnet::{wait_until, Testnet};
use chordsip::{Config, Id, Node};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::{Duration, Instant};

fn key(i: usize) -> Id {
    Id::from_name(&format!("sip:soak{i}@example.com"))
}

/// Resident memory of this process in KiB (Linux).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn churn_under_load_loses_no_acknowledged_value() {
    let secs: u64 = std::env::var("CHORDSIP_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(180);
    let cfg = Config {
        op_timeout: Duration::from_secs(3),
        ..Config::default()
    };
    let mut net = Testnet::new(32, &cfg, Duration::from_secs(30)).unwrap();
    assert!(net.converged(), "ring of 32");
    let mut rng = ChaCha8Rng::seed_from_u64(0x50a4);
    let mut acked: Vec<usize> = Vec::new();
    let (mut kills, mut starts, mut reads, mut read_misses, mut put_errors) = (0, 0, 0, 0, 0);
    let start = Instant::now();
    let mut next_churn = start + Duration::from_secs(1);
    let mut kill_next = true;
    let mut rss_samples = Vec::new();
    let mut next_key = 0;
    while start.elapsed() < Duration::from_secs(secs) {
        // Steady load: a few puts and reads between churn events.
        for _ in 0..5 {
            let n = rng.gen_range(0..net.nodes.len());
            let i = next_key;
            next_key += 1;
            let v = format!("v{i}");
            match net.nodes[n].put(key(i), b"w", v.as_bytes(), Duration::from_secs(3600)) {
                Ok(r) if r.copies >= 1 => acked.push(i),
                _ => put_errors += 1,
            }
            if !acked.is_empty() {
                let i = acked[rng.gen_range(0..acked.len())];
                let n = rng.gen_range(0..net.nodes.len());
                reads += 1;
                let found = net.nodes[n]
                    .get(key(i))
                    .map(|v| v.iter().any(|x| x.data == format!("v{i}").as_bytes()))
                    .unwrap_or(false);
                read_misses += !found as u32;
            }
        }
        if Instant::now() >= next_churn {
            next_churn += Duration::from_secs(1);
            if kill_next && net.nodes.len() > 24 {
                let n = rng.gen_range(3..net.nodes.len());
                net.nodes.remove(n).stop();
                kills += 1;
            } else if net.nodes.len() < 40 {
                let mut c = cfg.clone();
                c.listen = "127.0.0.1:0".parse().unwrap();
                let node = Node::start(c).unwrap();
                if node.join(&net.bootstrap()).is_ok() {
                    net.nodes.push(node);
                    starts += 1;
                }
            }
            kill_next = !kill_next;
            rss_samples.push((rss_kib(), acked.len()));
        }
    }
    // Let the ring settle and replicas catch up, then read everything back.
    assert!(net.wait_converged(Duration::from_secs(30)), "ring settled");
    let keys: Vec<Id> = acked.iter().map(|&i| key(i)).collect();
    net.wait_copies(&keys, 3, Duration::from_secs(30));
    let mut lost = Vec::new();
    for &i in &acked {
        let n = i % net.nodes.len();
        let ok = net.nodes[n]
            .get(key(i))
            .map(|v| v.iter().any(|x| x.data == format!("v{i}").as_bytes()))
            .unwrap_or(false);
        if !ok
            && !wait_until(Duration::from_secs(5), || {
                net.nodes[n]
                    .get(key(i))
                    .map(|v| !v.is_empty())
                    .unwrap_or(false)
            })
        {
            lost.push(i);
        }
    }
    let third = rss_samples.len() / 3;
    let (early, values_early) = rss_samples[third.max(1) - 1];
    let (late, values_late) = *rss_samples.last().unwrap();
    // Bytes of RSS per stored copy added since the early sample (3 copies
    // of each value written since): the stored data itself, nothing more.
    let copies_added = 3 * (values_late - values_early) as u64;
    let per_copy = (late.saturating_sub(early) * 1024) / copies_added.max(1);
    println!(
        "soak {secs} s: {kills} kills, {starts} starts, {} nodes at the end; {} values acknowledged \
         ({put_errors} puts refused or failed), {reads} reads during churn ({read_misses} missed); \
         lost {}; RSS {early} KiB after a third, {late} KiB at the end, {per_copy} bytes per copy stored since",
        net.nodes.len(),
        acked.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged values lost: {lost:?}");
    assert!(kills >= secs as u32 / 3, "the churn ran ({kills} kills)");
    // Reads during churn may meet a primary still receiving its keys, rarely.
    assert!(
        read_misses as f64 <= 0.01 * reads as f64,
        "{read_misses} of {reads} reads during churn missed"
    );
    // Memory grows with the stored values and nothing else: a stored copy
    // takes about 540 bytes (docs/PERFORMANCE.md); churn (nodes started and
    // stopped, their sockets, buffers and routing state) must add no more
    // than that again.
    assert!(
        late <= early + 8 * 1024 || per_copy <= 1100,
        "RSS grew from {early} KiB to {late} KiB: {per_copy} bytes per copy stored since"
    );
}
