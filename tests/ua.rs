//! A pure P2P user agent's publications (crate `ua`) over real UDP nodes:
//! the library keeps Call-ID and CSeq, refreshes on its own timers, reports
//! a refresh that fails and recovers, replaces a contact, withdraws.

use chordsip::sip::binding::{Binding, RegisterError};
use chordsip::sip::registrar::{aor_key, lookup_trusting, RegistrarError, Trust};
use chordsip::testnet::{wait_until, Testnet};
use chordsip::ua::{Publication, UaEvent, UaSink, UserAgent};
use chordsip::{Config, Error, Node};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Refreshes every 300 ms instead of at half the lifetime, so a test sees many.
fn fast_refresh() -> Config {
    Config {
        publish_refresh: Some(Duration::from_millis(300)),
        stabilize_interval: Duration::from_millis(100),
        check_predecessor_interval: Duration::from_millis(100),
        ..Config::default()
    }
}

fn publication(aor: &str, contact: &str) -> Publication {
    Publication {
        aor: aor.into(),
        contact: contact.into(),
        expires: 600,
        q: None,
        instance: None,
    }
}

/// Every event a sink heard, with when.
type Heard = Arc<Mutex<Vec<(Instant, UaEvent)>>>;

/// A sink that keeps every event.
fn recorder() -> (UaSink, Heard) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&seen);
    let sink: UaSink = Arc::new(move |e: &UaEvent| keep.lock().push((Instant::now(), e.clone())));
    (sink, seen)
}

/// Every live binding of `aor`, read through `node`.
fn bindings(node: &Node, aor: &str) -> Vec<Binding> {
    lookup_trusting(&mut &*node, aor, Trust::All)
        .unwrap()
        .into_iter()
        .map(|(b, _)| b)
        .collect()
}

fn refreshed(events: &[(Instant, UaEvent)]) -> usize {
    events
        .iter()
        .filter(|(_, e)| matches!(e, UaEvent::Refreshed { .. }))
        .count()
}

#[test]
fn publishes_refreshes_on_its_own_with_one_call_id_and_withdraws() {
    let net = Testnet::new(4, &fast_refresh(), Duration::from_secs(20)).unwrap();
    let (sink, events) = recorder();
    let ua = UserAgent::new(&net.nodes[0], Some(sink));
    let aor = "sip:alice@p2p.example";
    let granted = ua
        .publish(publication(
            "sip:alice@P2P.Example:5060",
            "sip:alice@127.0.0.1:5070",
        ))
        .unwrap();
    assert_eq!(granted, 600);
    let first = bindings(&net.nodes[3], aor);
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].contact, "sip:alice@127.0.0.1:5070");
    assert!(!first[0].call_id.is_empty());
    assert_eq!(
        ua.publications(),
        vec![(aor.to_string(), "sip:alice@127.0.0.1:5070".to_string(), 600)]
    );

    // The library refreshes on its own: one Call-ID, a rising CSeq.
    assert!(
        wait_until(Duration::from_secs(20), || refreshed(&events.lock()) >= 3),
        "three refreshes within 20 s: {:?}",
        events.lock()
    );
    let later = bindings(&net.nodes[2], aor);
    assert_eq!(later.len(), 1, "{later:?}");
    assert_eq!(later[0].call_id, first[0].call_id);
    assert!(
        later[0].cseq >= first[0].cseq + 3,
        "{later:?} after {first:?}"
    );
    for (_, e) in events.lock().iter() {
        assert_eq!(
            *e,
            UaEvent::Refreshed {
                aor: aor.into(),
                expires: 600
            }
        );
    }

    // Withdrawn: gone from the overlay, and no refresh brings it back.
    ua.withdraw(aor).unwrap();
    assert!(bindings(&net.nodes[3], aor).is_empty());
    let count = refreshed(&events.lock());
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(refreshed(&events.lock()), count, "a refresh after withdraw");
    assert!(bindings(&net.nodes[1], aor).is_empty());
    assert!(ua.publications().is_empty());
}

#[test]
fn publishing_again_replaces_the_contact_and_requests_of_one_aor_run_in_turn() {
    let net = Testnet::new(3, &Config::default(), Duration::from_secs(20)).unwrap();
    let ua = Arc::new(UserAgent::new(&net.nodes[0], None));
    let aor = "sip:bob@p2p.example";
    ua.publish(publication(aor, "sip:bob@127.0.0.1:5070"))
        .unwrap();
    // A new address (a network change): the old contact goes in the same request.
    ua.publish(publication(aor, "sip:bob@127.0.0.2:5072"))
        .unwrap();
    let now = bindings(&net.nodes[2], aor);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(now[0].contact, "sip:bob@127.0.0.2:5072");

    // With an instance id the binding is the device's, whatever its contact.
    let dev = "sip:carol@p2p.example";
    let with_instance = |contact: &str| Publication {
        instance: Some("<urn:uuid:00000000-0000-4000-8000-000000000001>".into()),
        q: Some("0.7".into()),
        ..publication(dev, contact)
    };
    ua.publish(with_instance("sip:carol@127.0.0.1:5080"))
        .unwrap();
    ua.publish(with_instance("sip:carol@127.0.0.1:5082"))
        .unwrap();
    let now = bindings(&net.nodes[1], dev);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(
        (now[0].contact.as_str(), now[0].q),
        ("sip:carol@127.0.0.1:5082", 700)
    );

    // Eight threads refresh one AOR at once: each request waits its turn,
    // so none is refused as out of order.
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let ua = Arc::clone(&ua);
            std::thread::spawn(move || ua.refresh(aor))
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), Ok(600));
    }
    let now = bindings(&net.nodes[2], aor);
    assert_eq!(now.len(), 1, "{now:?}");
    assert!(now[0].cseq >= 10, "{now:?}");
}

#[test]
fn a_failed_refresh_is_reported_and_retried_until_it_succeeds() {
    // A peer counts as dead only after about a second of silence (300 ms
    // per try), and an operation gives up after 400 ms: a refresh routed to
    // a node that just died fails before the ring is repaired around it.
    let cfg = Config {
        op_timeout: Duration::from_millis(400),
        rpc_timeout_min: Duration::from_millis(300),
        rpc_timeout_initial: Duration::from_millis(300),
        ..fast_refresh()
    };
    let mut net = Testnet::new(3, &cfg, Duration::from_secs(20)).unwrap();
    let (sink, events) = recorder();
    let ua = UserAgent::new(&net.nodes[0], Some(sink));
    // An AOR that another node holds: node 0's refreshes must reach it.
    let me = net.nodes[0].id();
    let aor = (0..)
        .map(|i| format!("sip:dave{i}@p2p.example"))
        .find(|aor| {
            let (_, key) = aor_key(aor).unwrap();
            net.nodes[0].lookup(key).unwrap().node.id != me
        })
        .unwrap();
    let aor = aor.as_str();
    ua.publish(publication(aor, "sip:dave@127.0.0.1:5090"))
        .unwrap();
    // The other two nodes crash: routing to them times out until node 0
    // finds them dead and holds the key itself.
    let killed = Instant::now();
    for n in net.nodes.drain(1..) {
        n.stop();
    }
    assert!(
        wait_until(Duration::from_secs(30), || {
            let ev = events.lock();
            let failed = ev
                .iter()
                .position(|(at, e)| *at > killed && matches!(e, UaEvent::RefreshFailed { .. }));
            failed.is_some_and(|i| {
                ev[i..]
                    .iter()
                    .any(|(_, e)| matches!(e, UaEvent::Refreshed { .. }))
            })
        }),
        "a failed refresh, then a successful one: {:?}",
        events.lock()
    );
    let ev = events.lock().clone();
    let (error, expires_in, retry_in) = ev
        .iter()
        .find_map(|(_, e)| match e {
            UaEvent::RefreshFailed {
                aor: a,
                error,
                expires_in,
                retry_in,
            } if a == aor => Some((error.clone(), *expires_in, *retry_in)),
            _ => None,
        })
        .unwrap();
    assert!(matches!(error, RegistrarError::Overlay(_)), "{error:?}");
    assert!(expires_in > 590, "the binding still lives: {expires_in}");
    assert!(retry_in <= Duration::from_millis(300), "{retry_in:?}");
    let now = bindings(&net.nodes[0], aor);
    assert_eq!(now.len(), 1, "{now:?}");
}

#[test]
fn bad_arguments_are_refused_at_once_with_their_reason() {
    let net = Testnet::new(1, &Config::default(), Duration::from_secs(5)).unwrap();
    let ua = UserAgent::new(&net.nodes[0], None);
    let refused = |p: Publication| match ua.publish(p) {
        Err(RegistrarError::Request(RegisterError::Bad(why))) => why,
        other => panic!("{other:?}"),
    };
    let why = refused(publication("sip:eve@p2p.example", "<sip:eve@127.0.0.1>"));
    assert!(why.contains("bare SIP URI"), "{why}");
    let why = refused(publication("alice", "sip:eve@127.0.0.1"));
    assert!(why.contains("aor"), "{why}");
    let why = refused(Publication {
        expires: 0,
        ..publication("sip:eve@p2p.example", "sip:eve@127.0.0.1")
    });
    assert!(why.contains("withdraw"), "{why}");
    let why = refused(Publication {
        q: Some("2".into()),
        ..publication("sip:eve@p2p.example", "sip:eve@127.0.0.1")
    });
    assert!(why.contains('q'), "{why}");
    assert_eq!(
        ua.publish(Publication {
            expires: 30,
            ..publication("sip:eve@p2p.example", "sip:eve@127.0.0.1")
        }),
        Err(RegistrarError::Request(RegisterError::IntervalTooBrief(60)))
    );
    for r in [
        ua.refresh("sip:eve@p2p.example").map(|_| ()),
        ua.withdraw("sip:eve@p2p.example"),
    ] {
        match r {
            Err(RegistrarError::Request(RegisterError::Bad(why))) => {
                assert!(why.contains("call publish first"), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }
    // Nothing refused was stored.
    assert!(bindings(&net.nodes[0], "sip:eve@p2p.example").is_empty());
    assert!(ua.publications().is_empty());
}

#[test]
fn a_restarted_agent_with_its_device_key_replaces_its_own_binding() {
    let net = Testnet::new(3, &Config::default(), Duration::from_secs(20)).unwrap();
    let device = Config {
        writer_key: Some([0x5a; 32]),
        ..Config::default()
    };
    let aor = "sip:frank@p2p.example";
    let contact = "sip:frank@127.0.0.1:5100";
    let before = {
        let n = Node::start(device.clone()).unwrap();
        n.join(&net.bootstrap()).unwrap();
        let ua = UserAgent::new(&n, None);
        ua.publish(publication(aor, contact)).unwrap();
        let b = bindings(&net.nodes[1], aor);
        n.stop(); // a crash: nothing withdrawn
        b
    };
    assert_eq!(before.len(), 1);
    let n = Node::start(device).unwrap();
    n.join(&net.bootstrap()).unwrap();
    let ua = UserAgent::new(&n, None);
    ua.publish(publication(aor, contact)).unwrap();
    let after = bindings(&net.nodes[2], aor);
    assert_eq!(after.len(), 1, "the old binding is replaced: {after:?}");
    assert_ne!(after[0].call_id, before[0].call_id);
}

#[test]
fn a_stopped_node_stops_its_agent() {
    let net = Testnet::new(2, &fast_refresh(), Duration::from_secs(20)).unwrap();
    let n = Node::start(fast_refresh()).unwrap();
    n.join(&net.bootstrap()).unwrap();
    let (sink, events) = recorder();
    let ua = UserAgent::new(&n, Some(sink));
    ua.publish(publication(
        "sip:gina@p2p.example",
        "sip:gina@127.0.0.1:5110",
    ))
    .unwrap();
    drop(n); // the last handle: the node stops, its timers with it
    let count = events.lock().len();
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(events.lock().len(), count, "{:?}", events.lock());
    assert_eq!(
        ua.refresh("sip:gina@p2p.example"),
        Err(RegistrarError::Overlay(Error::Shutdown))
    );
}

#[test]
fn node_timers_run_on_time_and_die_with_the_node() {
    let n = Node::start(Config::default()).unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    let t0 = Instant::now();
    for ms in [300u64, 100, 200] {
        let tx = tx.clone();
        n.after(Duration::from_millis(ms), move || {
            let _ = tx.send((ms, t0.elapsed()));
        })
        .unwrap();
    }
    let fired: Vec<(u64, Duration)> = (0..3)
        .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
        .collect();
    assert_eq!(
        fired.iter().map(|f| f.0).collect::<Vec<_>>(),
        [100, 200, 300]
    );
    for (ms, at) in fired {
        assert!(at >= Duration::from_millis(ms), "{ms} ms timer at {at:?}");
    }
    let tx2 = tx.clone();
    n.after(Duration::from_millis(200), move || {
        let _ = tx2.send((0, t0.elapsed()));
    })
    .unwrap();
    n.stop();
    assert!(rx.recv_timeout(Duration::from_millis(600)).is_err());
}
