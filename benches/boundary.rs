//! Cost of the language boundary, Rust side: sequential blocking put/get/lookup
//! through the Rust API on a 16-node loopback overlay, and client-handle round
//! trips to a local peer over UDP and over its UNIX socket. The C and Python
//! rows come from `benches/c/boundary.c` and `benches/boundary.py`, which build
//! the same overlay through their API; `scripts/bench-boundary.sh` runs all
//! three side by side. Usage: `cargo bench --bench boundary -- [OPS]`.

use chordsip::client::Client;
use chordsip::stats::Histogram;
use chordsip::testnet::Testnet;
use chordsip::{Config, Id, Node};
use std::time::{Duration, Instant};

fn row(api: &str, op: &str, h: &Histogram, total: Duration) {
    println!(
        "| {api} | {op} | {:.0} | {} | {} |",
        h.count() as f64 / total.as_secs_f64(),
        h.quantile(0.5),
        h.quantile(0.99)
    );
}

fn measure(n: usize, mut f: impl FnMut(usize)) -> (Histogram, Duration) {
    let mut h = Histogram::default();
    let start = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        f(i);
        h.record(t.elapsed().as_micros() as u64);
    }
    (h, start.elapsed())
}

fn main() {
    let ops: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(5000);
    let net = Testnet::new(16, &Config::default(), Duration::from_secs(30)).expect("overlay");
    assert!(net.wait_converged(Duration::from_secs(30)));
    // The same settle time in all three harnesses: finger tables complete.
    std::thread::sleep(Duration::from_secs(10));
    let key = |i: usize| Id::from_name(&format!("sip:user{i}@bench.example"));
    let data = vec![b'x'; 100];
    let nodes = &net.nodes;
    let (h, t) = measure(ops, |i| {
        nodes[i % 16]
            .put(key(i), b"dev", &data, Duration::from_secs(600))
            .expect("put");
    });
    row("Rust", "put", &h, t);
    let (h, t) = measure(ops, |i| {
        assert_eq!(nodes[(i + 5) % 16].get(key(i)).expect("get").len(), 1);
    });
    row("Rust", "get", &h, t);
    let (h, t) = measure(ops, |i| {
        nodes[(i + 9) % 16].lookup(key(i)).expect("lookup");
    });
    row("Rust", "lookup", &h, t);
    // No network: a query answered by the node's worker thread, and pure hashing.
    let (h, t) = measure(ops, |i| {
        nodes[i % 16].stats().expect("stats");
    });
    row("Rust", "stats", &h, t);
    let (h, t) = measure(ops * 20, |i| {
        std::hint::black_box(Id::from_name(&format!("sip:user{i}@bench.example")).to_hex());
    });
    row("Rust", "key_id", &h, t);

    // Client handles to a local peer (one more node, serving a UNIX socket too).
    let path = std::env::temp_dir().join(format!("chordsip-bench-{}.sock", std::process::id()));
    let peer = Node::start(Config {
        client_socket: Some(path.clone()),
        ..Config::default()
    })
    .expect("peer");
    peer.join(&net.bootstrap()).expect("join");
    let mut udp = Client::connect(peer.addr(), "chordsip", None).expect("client");
    let mut unix = Client::connect_unix(&path, "chordsip", None).expect("client");
    for (name, c) in [
        ("Rust client UDP", &mut udp),
        ("Rust client UNIX", &mut unix),
    ] {
        let (h, t) = measure(ops, |i| {
            assert_eq!(c.get(key(i)).expect("client get").len(), 1);
        });
        row(name, "get", &h, t);
        let (h, t) = measure(ops, |i| {
            c.lookup(key(i)).expect("client lookup");
        });
        row(name, "lookup", &h, t);
    }
    peer.stop();
}
