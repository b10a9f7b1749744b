//! Abilities over real UDP nodes: peers announce what they offer, anyone
//! (a node or a client handle) finds them least loaded first; a new load
//! reorders them; a leave withdraws at once; a crash is forgotten within
//! the announcement's lifetime; an entry that names another node is ignored.

use chordsip::ability::{self, Ability};
use chordsip::testnet::{wait_until, Testnet};
use chordsip::{Config, Id};
use std::time::{Duration, Instant};

const TTL_S: u64 = 3;

fn relay(capacity: u32, load: u32, turn: &str) -> Vec<Ability> {
    vec![Ability::parse(&format!(
        "relay:capacity={capacity},load={load},turn={turn}"
    ))
    .unwrap()]
}

fn ids(peers: &[ability::Peer]) -> Vec<Id> {
    peers.iter().map(|p| p.id).collect()
}

#[test]
fn peers_are_found_by_ability_least_loaded_first() {
    let mut cfg = Config::default();
    cfg.set("ability_ttl_s", &TTL_S.to_string()).unwrap();
    let mut net = Testnet::new(10, &cfg, Duration::from_secs(30)).unwrap();
    let (busy, idle, big) = (2, 5, 8);
    net.nodes[busy]
        .set_abilities(relay(100, 90, "10.0.0.2:3478"))
        .unwrap();
    net.nodes[idle]
        .set_abilities(relay(100, 5, "10.0.0.5:3478"))
        .unwrap();
    net.nodes[big]
        .set_abilities(vec![
            Ability::parse("relay:capacity=1000,load=200").unwrap(),
            Ability::parse("voicemail:capacity=10").unwrap(),
        ])
        .unwrap();
    let want = vec![
        net.nodes[idle].id(),
        net.nodes[big].id(),
        net.nodes[busy].id(),
    ];
    // Announced within a round trip or two of the call; every node sees the same list.
    assert!(
        wait_until(Duration::from_secs(5), || {
            net.nodes[0].find_peers("relay", 8).map(|p| ids(&p)) == Ok(want.clone())
        }),
        "three relays, least loaded first: {:?}",
        net.nodes[0].find_peers("relay", 8)
    );
    for (i, n) in net.nodes.iter().enumerate() {
        let got = n.find_peers("relay", 8).unwrap();
        assert_eq!(ids(&got), want, "from node {i}");
        assert_eq!(got[0].addr, net.nodes[idle].addr());
        assert_eq!(
            got[0].ability.attr("turn").as_deref(),
            Some("10.0.0.5:3478")
        );
        assert_eq!(got[0].ability.load, 5);
        assert!(got[0].lifetime <= Duration::from_secs(TTL_S));
    }
    assert_eq!(
        ids(&net.nodes[3].find_peers("relay", 1).unwrap()),
        want[..1]
    );
    let vm = net.nodes[1].find_peers("voicemail", 8).unwrap();
    assert_eq!(ids(&vm), vec![net.nodes[big].id()]);
    assert!(net.nodes[1]
        .find_peers("pstn-gateway", 8)
        .unwrap()
        .is_empty());
    assert!(net.nodes[1].find_peers("Bad Name", 8).is_err());

    // A client handle (a host behind NAT, a forked worker) finds the same.
    let mut c = net.client(4).unwrap();
    assert_eq!(ids(&c.find_peers("relay", 8).unwrap()), want);

    // Refreshes keep them alive well past the lifetime.
    std::thread::sleep(Duration::from_secs(TTL_S * 2));
    assert_eq!(ids(&net.nodes[6].find_peers("relay", 8).unwrap()), want);

    // A new load reorders them.
    net.nodes[idle]
        .set_abilities(relay(100, 99, "10.0.0.5:3478"))
        .unwrap();
    let reordered = vec![want[1], want[2], want[0]];
    assert!(
        wait_until(Duration::from_secs(5), || {
            net.nodes[7].find_peers("relay", 8).map(|p| ids(&p)) == Ok(reordered.clone())
        }),
        "after the load change: {:?}",
        net.nodes[7].find_peers("relay", 8)
    );

    // Dropping an ability withdraws it at once; the other stays.
    net.nodes[big]
        .set_abilities(vec![Ability::parse("voicemail:capacity=10").unwrap()])
        .unwrap();
    assert!(wait_until(Duration::from_secs(3), || {
        net.nodes[0].find_peers("relay", 8).map(|p| ids(&p)) == Ok(vec![want[2], want[0]])
    }));
    assert_eq!(
        ids(&net.nodes[0].find_peers("voicemail", 8).unwrap()),
        vec![net.nodes[big].id()]
    );

    // A graceful leave withdraws before the node goes: gone at once.
    let leaving = net.nodes.remove(busy);
    let gone = leaving.id();
    leaving.leave(Duration::from_secs(5)).unwrap();
    let after_leave = net.nodes[0].find_peers("relay", 8).unwrap();
    assert!(!ids(&after_leave).contains(&gone), "{after_leave:?}");

    // A crash: found until the announcement expires, then never again.
    let idle = idle - 1; // one node fewer before it
    let crashed_id = net.nodes[idle].id();
    net.nodes[idle].stop();
    let t0 = Instant::now();
    assert!(
        wait_until(Duration::from_secs(TTL_S + 3), || {
            net.nodes[0]
                .find_peers("relay", 8)
                .is_ok_and(|p| !ids(&p).contains(&crashed_id))
        }),
        "a dead peer's announcement outlived its lifetime"
    );
    let forgotten = t0.elapsed();
    eprintln!("dead relay forgotten after {forgotten:?} (ability_ttl_s={TTL_S})");
    assert!(forgotten <= Duration::from_secs(TTL_S) + Duration::from_millis(2500));
}

#[test]
fn announcements_naming_another_node_are_ignored() {
    let net = Testnet::new(4, &Config::default(), Duration::from_secs(20)).unwrap();
    net.nodes[1]
        .set_abilities(vec![Ability::parse("relay:capacity=10").unwrap()])
        .unwrap();
    let honest = net.nodes[1].id();
    assert!(wait_until(Duration::from_secs(5), || {
        net.nodes[0].find_peers("relay", 8).map(|p| ids(&p)) == Ok(vec![honest])
    }));
    // Node 2 writes an announcement in its own (writer) slot that claims to
    // be node 3, with load 0, and one in its writer slot claiming itself.
    let fake = Ability::parse("relay:capacity=10,load=0").unwrap();
    let key = ability::key("relay");
    for claimed in [net.nodes[3].id(), net.nodes[2].id()] {
        let data = ability::encode(&fake, &claimed, net.nodes[2].addr());
        net.nodes[2]
            .put(key, b"relay", &data, Duration::from_secs(60))
            .unwrap();
    }
    assert_eq!(net.nodes[0].get(key).unwrap().len(), 2, "both stored");
    assert_eq!(
        ids(&net.nodes[0].find_peers("relay", 8).unwrap()),
        vec![honest],
        "only the self-signed announcement counts"
    );
}

#[test]
fn bad_ability_settings_are_refused() {
    let mut cfg = Config::default();
    for (name, value) in [
        ("abilities", "Relay"),
        ("abilities", "relay:load=x"),
        ("abilities", "relay;relay"),
        ("ability_ttl_s", "1"),
        ("ability_ttl_s", "x"),
    ] {
        assert!(cfg.set(name, value).is_err(), "{name}={value} accepted");
    }
    cfg.set("abilities", "relay:capacity=5;pstn-gateway")
        .unwrap();
    assert_eq!(cfg.abilities.len(), 2);
    let net = Testnet::new(2, &cfg, Duration::from_secs(10)).unwrap();
    // Announced from the config, without a call; both nodes have both.
    assert!(wait_until(Duration::from_secs(5), || {
        net.nodes[0].find_peers("pstn-gateway", 8).map(|p| p.len()) == Ok(2)
    }));
    let dup = vec![
        Ability::new("relay").unwrap(),
        Ability::new("relay").unwrap(),
    ];
    assert!(net.nodes[0].set_abilities(dup).is_err());
}
