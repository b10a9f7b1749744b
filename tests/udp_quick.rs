use chordsip::testnet::Testnet;
use chordsip::{Config, Id};
use std::time::Duration;

#[test]
fn sixteen_nodes() {
    let t = std::time::Instant::now();
    let net = Testnet::new(16, &Config::default(), Duration::from_secs(20)).unwrap();
    println!("up {:?} converged {}", t.elapsed(), net.converged());
    for k in 0..100 {
        let key = Id::from_name(&format!("k{k}"));
        net.nodes[k % 16].put(key, b"w", format!("v{k}").as_bytes(), Duration::from_secs(60)).unwrap();
    }
    for k in 0..100 {
        let key = Id::from_name(&format!("k{k}"));
        let v = net.nodes[(k + 5) % 16].get(key).unwrap();
        assert_eq!(v[0].data, format!("v{k}").as_bytes());
    }
    let s = net.nodes[0].stats().unwrap();
    println!("{:?}", s.hops.mean());
}
