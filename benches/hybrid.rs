//! Hybrid-overlay benchmarks: `cargo bench --bench hybrid` (numbers go to
//! docs/PERFORMANCE.md, "One-hop routing").
//!
//! 1. mean hops and membership upkeep at 1,000 simulated members with one
//!    change per second, one-hop against multi-hop;
//! 2. 64 real UDP nodes on loopback: lookup latency, one-hop against
//!    multi-hop, in alternating rounds (medians of the rounds);
//! 3. keys per member (p99/mean, max/mean) with one id per member.

use chordsip::config::RoutingMode;
use chordsip::membership::Membership;
use chordsip::sim::{SimConfig, SimNet};
use chordsip::stats::Histogram;
use chordsip::testnet::Testnet;
use chordsip::wire::{MemberChange, MemberRecord};
use chordsip::{Config, Id};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn cfg(mode: RoutingMode) -> Config {
    Config {
        routing: mode,
        ..Config::default()
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Builds `n` members, measures 2,000 lookups, then 30 s with one change per
/// second (a crash or a join in turn): (mean hops, p99 hops, table bytes/s
/// per member, all bytes/s per member).
fn sim_row(n: usize, mode: RoutingMode) -> (f64, u64, f64, f64) {
    let mut net = SimNet::new(SimConfig {
        seed: 11,
        ..SimConfig::default()
    });
    assert!(net.build_ring(
        n,
        &cfg(mode),
        Duration::from_millis(20),
        Duration::from_secs(600)
    ));
    net.run_for(Duration::from_secs(20));
    let mut h = Histogram::default();
    for i in 0..2000 {
        let from = (i * 7919) % n;
        let key = Id::from_name(&format!("bench-{i}"));
        let r = net.lookup(from, key).unwrap();
        assert_eq!(Some(r.node), net.responsible(&key));
        h.record(r.hops as u64);
    }
    let (table, all) = net.upkeep_under_churn(30, &cfg(mode));
    (h.mean(), h.quantile(0.99), table, all)
}

fn sim_section() {
    println!("## 1,000 simulated members: hops, and upkeep with 1 membership change/s");
    println!("| routing | mean hops | p99 hops | table upkeep B/s per member | all bytes B/s per member | wall time |");
    println!("|---|---|---|---|---|---|");
    for mode in [RoutingMode::OneHop, RoutingMode::MultiHop] {
        let t = Instant::now();
        let (mean, p99, table, all) = sim_row(1000, mode);
        println!(
            "| {} | {mean:.3} | {p99} | {table:.0} | {all:.0} | {:.0} s |",
            mode.name(),
            t.elapsed().as_secs_f64()
        );
    }
}

/// p50, p99 (µs) and mean hops of `count` sequential lookups.
fn udp_round(net: &Testnet, count: usize, round: usize) -> (u64, u64, f64) {
    let mut lat = Histogram::default();
    let mut hops = Histogram::default();
    for i in 0..count {
        let t = Instant::now();
        let r = net.nodes[i % net.nodes.len()]
            .lookup(Id::from_name(&format!("lat-{round}-{i}")))
            .unwrap();
        lat.record(t.elapsed().as_micros() as u64);
        hops.record(r.hops as u64);
    }
    (lat.quantile(0.5), lat.quantile(0.99), hops.mean())
}

fn udp_section() {
    println!(
        "\n## 64 nodes on loopback UDP, one process each mode ({} worker threads), 5 alternating rounds of 2,000 lookups",
        chordsip::runtime::Runtime::shared(None).unwrap().threads()
    );
    let nets: Vec<(RoutingMode, Testnet)> = [RoutingMode::OneHop, RoutingMode::MultiHop]
        .into_iter()
        .map(|m| {
            (
                m,
                Testnet::new(64, &cfg(m), Duration::from_secs(60)).unwrap(),
            )
        })
        .collect();
    // Let fingers (multi-hop) and tables (one-hop) settle.
    std::thread::sleep(Duration::from_secs(8));
    let mut rows: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> = vec![Default::default(); nets.len()];
    for round in 0..5 {
        for (k, (_, net)) in nets.iter().enumerate() {
            let (p50, p99, hops) = udp_round(net, 2000, round);
            rows[k].0.push(p50 as f64 / 1000.0);
            rows[k].1.push(p99 as f64 / 1000.0);
            rows[k].2.push(hops);
        }
    }
    println!("| routing | lookup p50 | lookup p99 | mean hops |");
    println!("|---|---|---|---|");
    for (k, (mode, _)) in nets.iter().enumerate() {
        let (p50, p99, hops) = rows[k].clone();
        println!(
            "| {} | {:.3} ms | {:.3} ms | {:.2} |",
            mode.name(),
            median(p50),
            median(p99),
            median(hops)
        );
    }
}

/// Keys per member with one id per member: ids as node keys give them
/// (uniform), 100,000 keys, medians over 9 draws of the ids.
fn spread_section() {
    println!("\n## keys per member, one id per member (100,000 keys, median of 9 draws)");
    println!("| members | p99/mean | max/mean |");
    println!("|---|---|---|");
    let keys: Vec<Id> = (0..100_000)
        .map(|i| Id::from_name(&format!("sip:user{i}@example.com")))
        .collect();
    for n in [16usize, 64, 256] {
        let (mut p99s, mut maxes) = (Vec::new(), Vec::new());
        for seed in 0..9u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut ids: Vec<Id> = (0..n).map(|_| Id(rng.gen())).collect();
            ids.sort();
            let mut count = vec![0u64; n];
            for k in &keys {
                let i = ids.partition_point(|id| id < k) % n;
                count[i] += 1;
            }
            let mean = keys.len() as f64 / n as f64;
            count.sort();
            let p99 = count[((n as f64 * 0.99).ceil() as usize).min(n) - 1] as f64;
            p99s.push(p99 / mean);
            maxes.push(*count.last().unwrap() as f64 / mean);
        }
        println!("| {n} | {:.2} | {:.2} |", median(p99s), median(maxes));
    }
    println!(
        "\n## keys per member, virtual points (virtual_nodes=V, 100,000 keys, median of 9 draws, and the worst draw)"
    );
    println!("| members | V | p99/mean | max/mean | worst p99/mean |");
    println!("|---|---|---|---|---|");
    for n in [16usize, 64, 256] {
        for v in [64usize, 128, 256] {
            let (mut p99s, mut maxes) = (Vec::new(), Vec::new());
            for seed in 0..9u64 {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let mut t = Membership::with_virtual_nodes(v);
                let ids: Vec<Id> = (0..n).map(|_| Id(rng.gen())).collect();
                for id in &ids {
                    t.apply(&MemberChange::Up(record(*id)), 0);
                }
                let mut count: HashMap<Id, u64> = HashMap::new();
                for k in &keys {
                    *count.entry(t.placement(k, 1)[0].node.id).or_default() += 1;
                }
                let mut c: Vec<u64> = ids
                    .iter()
                    .map(|id| count.get(id).copied().unwrap_or(0))
                    .collect();
                c.sort();
                let mean = keys.len() as f64 / n as f64;
                let p99 = c[((n as f64 * 0.99).ceil() as usize).min(n) - 1] as f64;
                p99s.push(p99 / mean);
                maxes.push(*c.last().unwrap() as f64 / mean);
            }
            let worst = p99s.iter().cloned().fold(0.0, f64::max);
            println!(
                "| {n} | {v} | {:.2} | {:.2} | {worst:.2} |",
                median(p99s),
                median(maxes)
            );
        }
    }
}

fn record(id: Id) -> MemberRecord {
    MemberRecord {
        node: chordsip::NodeInfo {
            id,
            addr: "127.0.0.1:1".parse().unwrap(),
        },
        since_ms: 1,
        weight: 100,
        sip: None,
        points: 1,
    }
}

fn main() {
    let t = Instant::now();
    spread_section();
    if std::env::args().any(|a| a == "--spread-only") {
        return;
    }
    udp_section();
    sim_section();
    println!("\n(total {:.0} s)", t.elapsed().as_secs_f64());
}
