use chordsip::sim::{SimConfig, SimNet};
use chordsip::{Config, Id};
use std::time::Duration;

#[test]
fn quick_ring() {
    let mut net = SimNet::new(SimConfig::default());
    let t = std::time::Instant::now();
    let ok = net.build_ring(200, &Config::default(), Duration::from_millis(50), Duration::from_secs(120));
    println!("built in {:?} sim {}s ok={ok} {:?}", t.elapsed(), net.now() / 1_000_000, net.check_ring());
    let mut hops = 0;
    let mut wrong = 0;
    for k in 0..500 {
        let key = Id::from_name(&format!("k{k}"));
        let from = k % 200;
        let r = net.lookup(from, key).unwrap();
        hops += r.hops;
        if Some(r.node) != net.responsible(&key) { wrong += 1; }
    }
    println!("mean hops {} wrong {wrong} delivered {}", hops as f64 / 500.0, net.delivered);
    assert!(ok);
}

#[test]
fn quick_put_get() {
    let mut net = SimNet::new(SimConfig::default());
    assert!(net.build_ring(16, &Config::default(), Duration::from_millis(50), Duration::from_secs(60)));
    for k in 0..100 {
        let key = Id::from_name(&format!("k{k}"));
        let r = net.put(k % 16, key, b"w", b"v", 1, Duration::from_secs(60));
        println!("{k} {:?}", r);
        r.unwrap();
    }
}

#[test]
fn debug_put() {
    let mut net = SimNet::new(SimConfig::default());
    assert!(net.build_ring(16, &Config::default(), Duration::from_millis(50), Duration::from_secs(60)));
    let key = Id::from_name("k15");
    let r = net.lookup(15, key);
    println!("lookup {:?} truth {:?} me {:?}", r, net.responsible(&key), net.engine(15).me());
    let rt = net.engine(15).routing();
    println!("preds {:?}\nsuccs {:?}", rt.predecessors(), rt.successors());
    println!("resp {}", rt.is_responsible(&key));
}
