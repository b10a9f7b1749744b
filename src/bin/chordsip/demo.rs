//! `chordsip demo`: a local overlay on loopback, values stored, a share of
//! the nodes killed one after another, and every value still found.

use chordsip::stats::Histogram;
use chordsip::testnet::Testnet;
use chordsip::{Config, Id};
use clap::Args;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct DemoArgs {
    /// Nodes in the overlay.
    #[arg(long, default_value_t = 16)]
    nodes: usize,
    /// Values stored.
    #[arg(long, default_value_t = 200)]
    values: usize,
    /// File holding this node's writer key (`chordsip keygen`); its holder
    /// alone can change what the node writes. Default: a new key each start.
    #[arg(long)]
    writer_key_file: Option<PathBuf>,
    /// Copies of each value.
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Fraction of nodes killed, one after another.
    #[arg(long, default_value_t = 0.25)]
    kill_fraction: f64,
}

pub fn run(a: DemoArgs) -> Result<(), String> {
    if a.nodes < 2 || a.nodes > 512 {
        return Err("--nodes must be 2..=512".into());
    }
    if !(0.0..0.9).contains(&a.kill_fraction) {
        return Err("--kill-fraction must be in [0, 0.9)".into());
    }
    let cfg = Config {
        replicas: a.replicas,
        transactions: Some(chordsip::sip::remote::transactions()),
        ..Config::default()
    };
    cfg.validate().map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    println!("starting {} nodes on 127.0.0.1 ...", a.nodes);
    let mut net =
        Testnet::new(a.nodes, &cfg, Duration::from_secs(30)).map_err(|e| e.to_string())?;
    println!(
        "ring formed in {:.1}s (converged: {})",
        t0.elapsed().as_secs_f64(),
        net.converged()
    );
    let keys: Vec<(Id, String)> = (0..a.values)
        .map(|i| {
            (
                Id::from_name(&format!("sip:user{i}@demo.example")),
                format!("sip:user{i}@127.0.0.1:{}", 5060 + i),
            )
        })
        .collect();
    let ids: Vec<Id> = keys.iter().map(|(k, _)| *k).collect();
    let mut stored = 0;
    for (i, (k, v)) in keys.iter().enumerate() {
        let n = &net.nodes[i % net.nodes.len()];
        if n.put(*k, b"demo", v.as_bytes(), Duration::from_secs(3600))
            .is_ok()
        {
            stored += 1;
        }
    }
    println!(
        "stored {stored}/{} values with {} copies each",
        a.values, a.replicas
    );
    if stored != a.values {
        return Err(format!(
            "{} of {} values not stored",
            a.values - stored,
            a.values
        ));
    }
    let (hops, lat, found) = measure(&net, &keys);
    report("before failures", &hops, &lat, found, keys.len());
    let kills = ((a.nodes as f64) * a.kill_fraction).round() as usize;
    println!("killing {kills} nodes abruptly, one after another ...");
    let mut not_restored = 0;
    for k in 0..kills {
        let victim = 1 + (k * 7919) % (net.nodes.len() - 1);
        let node = net.nodes.remove(victim);
        let addr = node.addr();
        node.stop();
        drop(node);
        let t = Instant::now();
        let ok = net.wait_converged(Duration::from_secs(15));
        let repaired = t.elapsed();
        // Before the next failure, replica synchronisation must have restored
        // every copy the victim held.
        let full = net.wait_copies(&ids, a.replicas, Duration::from_secs(15));
        not_restored += usize::from(!full);
        println!(
            "  killed {addr}; ring repaired in {:.2}s (converged: {ok}), all values back at {} copies after {:.2}s ({})",
            repaired.as_secs_f64(),
            a.replicas,
            t.elapsed().as_secs_f64(),
            if full { "ok" } else { "NOT restored" }
        );
    }
    let (hops, lat, found) = measure(&net, &keys);
    report(
        &format!("after killing {kills} of {} nodes", a.nodes),
        &hops,
        &lat,
        found,
        keys.len(),
    );
    if found != keys.len() {
        return Err(format!("{} values lost", keys.len() - found));
    }
    if not_restored > 0 {
        return Err(format!(
            "after {not_restored} of {kills} failures the values were not back at {} copies within 15 s",
            a.replicas
        ));
    }
    println!(
        "every value still found; total {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    for n in &net.nodes {
        let _ = n.leave(Duration::from_secs(2));
    }
    Ok(())
}

fn measure(net: &Testnet, keys: &[(Id, String)]) -> (Histogram, Histogram, usize) {
    let mut hops = Histogram::default();
    let mut lat = Histogram::default();
    let mut found = 0;
    for (i, (k, v)) in keys.iter().enumerate() {
        let n = &net.nodes[(i * 31 + 7) % net.nodes.len()];
        if let Ok(o) = n.lookup(*k) {
            hops.record(o.hops as u64);
            lat.record(o.latency.as_micros() as u64);
        }
        if let Ok(vals) = n.get(*k) {
            if vals.iter().any(|x| x.data == v.as_bytes()) {
                found += 1;
            }
        }
    }
    (hops, lat, found)
}

fn report(when: &str, hops: &Histogram, lat: &Histogram, found: usize, total: usize) {
    println!(
        "{when}: found {found}/{total} ({:.1}%), hops mean {:.2} p99 {}, lookup latency p50 {:.3} ms p99 {:.3} ms",
        100.0 * found as f64 / total.max(1) as f64,
        hops.mean(),
        hops.quantile(0.99),
        lat.quantile(0.5) as f64 / 1000.0,
        lat.quantile(0.99) as f64 / 1000.0
    );
}
