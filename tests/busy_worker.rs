//! A node whose worker thread is kept busy on purpose: in a test binary
//! of its own, so that the frozen worker (shared by every node of a
//! process) stalls no other test.

use chordsip::testnet::wait_until;
use chordsip::{Config, Error, Node};
use std::time::{Duration, Instant};

/// A worker busy longer than a query waits is a timeout the caller may retry,
/// not a shutdown; the node answers again once the worker is free. The
/// settings read back are the ones the node runs with, and `threads` sets the
/// library threads when the first node starts them.
#[test]
fn busy_worker_is_a_timeout_and_settings_read_back() {
    let cfg = Config {
        threads: Some(2),
        successors: 5,
        ..Config::default()
    };
    let node = Node::start(cfg).unwrap();
    node.join(&[]).unwrap();
    assert_eq!(node.config_get("successors").unwrap(), "5");
    let threads: usize = node.config_get("threads").unwrap().parse().unwrap();
    // The first node of this process started the library threads: its
    // setting decided their number.
    assert_eq!(threads, 2);
    assert!(matches!(
        node.config_get("nonsense"),
        Err(Error::InvalidArgument(_))
    ));
    node.on_worker(|| std::thread::sleep(Duration::from_millis(5_600)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let t0 = Instant::now();
    assert!(matches!(node.stats(), Err(Error::Timeout)));
    assert!(t0.elapsed() >= Duration::from_secs(4));
    assert!(wait_until(Duration::from_secs(5), || node.stats().is_ok()));
}
