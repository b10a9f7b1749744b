//! Real UDP nodes on loopback in one process: join, store, graceful leave,
//! abrupt stop, restart and rejoin; the overlay key keeps strangers out.

use chordsip::client::Client;
use chordsip::owner::WriterKey;
use chordsip::testnet::{wait_until, Testnet};
use chordsip::wire::{Body, Codec, Message, WireEntry};
use chordsip::{Config, Error, Id, Node};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn key(i: usize) -> Id {
    Id::from_name(&format!("sip:udp{i}@example.com"))
}

#[test]
fn sixteen_nodes_store_leave_stop_and_rejoin() {
    let cfg = Config::default();
    let mut net = Testnet::new(16, &cfg, Duration::from_secs(30)).unwrap();
    assert!(net.converged(), "ring of 16 converged");
    for i in 0..200 {
        let r = net.nodes[i % 16]
            .put(
                key(i),
                b"dev",
                format!("v{i}").as_bytes(),
                Duration::from_secs(600),
            )
            .unwrap();
        assert_eq!(r.copies, 3);
    }
    // Four graceful leaves, back to back.
    for _ in 0..4 {
        let n = net.nodes.remove(5);
        n.leave(Duration::from_secs(5)).expect("leave acknowledged");
    }
    assert!(net.wait_converged(Duration::from_secs(20)));
    for i in 0..200 {
        let v = net.nodes[(i + 3) % 12].get(key(i)).unwrap();
        assert_eq!(v.len(), 1, "value {i} after leaves");
        assert_eq!(v[0].data, format!("v{i}").as_bytes());
    }
    // Leavers' copies are restored by replica sync; two abrupt stops lose
    // nothing once every value is back at 3 copies.
    let keys: Vec<Id> = (0..200).map(key).collect();
    assert!(
        net.wait_copies(&keys, 3, Duration::from_secs(20)),
        "every value back at 3 copies after the leaves (fewest: {})",
        net.min_copies(&keys)
    );
    // Two abrupt stops, then repair.
    let stopped: Vec<Node> = vec![net.nodes.remove(2), net.nodes.remove(7)];
    let addrs: Vec<_> = stopped.iter().map(|n| n.addr()).collect();
    for n in &stopped {
        n.stop();
    }
    drop(stopped);
    assert!(net.wait_converged(Duration::from_secs(20)));
    for i in 0..200 {
        let v = net.nodes[i % 10].get(key(i)).unwrap();
        assert_eq!(v.len(), 1, "value {i} after crashes: {v:?}");
    }
    // Restart at the same addresses and rejoin, as a crashed server comes
    // back at its configured address. Another process may have bound the
    // freed port meanwhile (it lies in the ephemeral range): then the node
    // comes back at a new one, which the rejoin must handle as well.
    for a in addrs {
        let c = Config {
            listen: a,
            ..Config::default()
        };
        let n = match Node::start(c.clone()) {
            Ok(n) => n,
            Err(chordsip::Error::Io(e)) if e.contains("Address already in use") => {
                eprintln!("{a} was taken meanwhile ({e}); restarting at a new port");
                Node::start(Config {
                    listen: "127.0.0.1:0".parse().unwrap(),
                    ..c
                })
                .unwrap()
            }
            Err(e) => panic!("restart at {a}: {e}"),
        };
        n.join(&net.bootstrap()).unwrap();
        net.nodes.push(n);
    }
    assert!(net.wait_converged(Duration::from_secs(20)));
    for i in 0..200 {
        assert_eq!(net.nodes[i % 12].get(key(i)).unwrap().len(), 1);
    }
    assert!(
        net.wait_copies(&keys, 3, Duration::from_secs(10)),
        "every value back at 3 copies (fewest: {})",
        net.min_copies(&keys)
    );
}

#[test]
fn client_handle_and_async_calls() {
    let net = Testnet::new(5, &Config::default(), Duration::from_secs(20)).unwrap();
    let mut c = net.client(2).unwrap();
    c.set_timeout(Duration::from_secs(3));
    c.put(
        key(1),
        b"phone",
        b"sip:a@127.0.0.1",
        Duration::from_secs(60),
    )
    .unwrap();
    let v = net.nodes[4].get(key(1)).unwrap();
    assert_eq!(v[0].data, b"sip:a@127.0.0.1");
    let (node, _) = c.lookup(key(1)).unwrap();
    assert_eq!(node, net.nodes[0].lookup(key(1)).unwrap().node);
    c.remove(key(1), b"phone").unwrap();
    assert!(c.get(key(1)).unwrap().is_empty());
    assert!(c.stats_text().unwrap().contains("lookups_ok"));
    assert!(c.ring_text().unwrap().contains("successor[0]"));

    let (tx, rx) = crossbeam_channel::unbounded();
    for i in 0..50 {
        let tx = tx.clone();
        net.nodes[i % 5]
            .lookup_async(key(i), Duration::from_secs(2), move |r| {
                let _ = tx.send(r.is_ok());
            })
            .unwrap();
    }
    for _ in 0..50 {
        assert!(rx.recv_timeout(Duration::from_secs(5)).unwrap());
    }
    // A client pointed at a socket that never answers fails by its deadline
    // (the socket stays bound: a freed port could meanwhile be another's).
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead = silent.local_addr().unwrap();
    let mut c = Client::connect(dead, "chordsip", None).unwrap();
    c.set_timeout(Duration::from_millis(300));
    let t = Instant::now();
    assert_eq!(c.get(key(1)), Err(Error::Timeout));
    assert!(t.elapsed() < Duration::from_secs(2));
}

/// Values that need several datagrams reach a client whole, page by page.
#[test]
fn client_reads_a_key_larger_than_a_datagram() {
    let mut cfg = Config {
        max_datagram: 1400,
        ..Config::default()
    };
    cfg.limits.max_value_bytes = 800;
    // Thirty entries of one writer key under one key: over the default
    // quota of one owner (16), which guards an AOR against a stranger's key.
    cfg.limits.max_entries_per_owner = 32;
    let net = Testnet::new(4, &cfg, Duration::from_secs(20)).unwrap();
    let mut c = net.client(1).unwrap();
    c.set_timeout(Duration::from_secs(3));
    for w in 0..30u8 {
        let writer = format!("device-{w:02}");
        c.put(
            key(9),
            writer.as_bytes(),
            &[b'a' + w % 26; 700],
            Duration::from_secs(60),
        )
        .unwrap();
    }
    let got = c.get(key(9)).unwrap();
    assert_eq!(got.len(), 30);
    let mut writers: Vec<_> = got.iter().map(|v| v.writer.clone()).collect();
    writers.sort();
    writers.dedup();
    assert_eq!(writers.len(), 30, "each device once");
    assert!(
        got.windows(2).all(|w| w[0].version >= w[1].version),
        "newest first"
    );
    assert_eq!(net.nodes[3].get(key(9)).unwrap().len(), 30);
}

#[test]
fn overlay_key_keeps_strangers_out() {
    let keyed = Config {
        overlay_key: Some(b"s3cret".to_vec()),
        ..Config::default()
    };
    let net = Testnet::new(4, &keyed, Duration::from_secs(20)).unwrap();
    net.nodes[0]
        .put(key(9), b"dev", b"secret-binding", Duration::from_secs(60))
        .unwrap();

    // A node with the wrong key cannot join.
    let wrong = Node::start(Config {
        overlay_key: Some(b"guess".to_vec()),
        op_timeout: Duration::from_secs(1),
        ..Config::default()
    })
    .unwrap();
    assert!(matches!(
        wrong.join(&net.bootstrap()),
        Err(Error::JoinFailed(_))
    ));
    // Nor can one without a key, nor a client without it.
    let open = Node::start(Config {
        op_timeout: Duration::from_secs(1),
        ..Config::default()
    })
    .unwrap();
    assert!(matches!(
        open.join(&net.bootstrap()),
        Err(Error::JoinFailed(_))
    ));
    let mut c = Client::connect(net.nodes[1].addr(), "chordsip", Some(b"guess")).unwrap();
    c.set_timeout(Duration::from_millis(500));
    assert_eq!(c.get(key(9)), Err(Error::Timeout));

    // Forged datagrams (a Store with a bad tag, garbage, truncated) change nothing.
    let target = net.nodes[1].addr();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let forger = Codec::new("chordsip", Some(b"guess"), 65_507);
    let forged = forger
        .encode(&Message {
            flags: 0,
            overlay: forger.overlay(),
            request_id: 1,
            timestamp_ms: 0,
            sender: Id::from_name("mallory"),
            receiver: Id::ZERO,
            cookie: 0,
            body: Body::Replicate {
                items: vec![(
                    key(9),
                    chordsip::wire::WireEntry::unsigned(
                        b"dev".to_vec(),
                        u64::MAX,
                        60_000,
                        true,
                        vec![],
                    ),
                )],
            },
        })
        .unwrap();
    let before = net.nodes[1].stats().unwrap();
    for _ in 0..20 {
        sock.send_to(&forged, target).unwrap();
        sock.send_to(b"garbage", target).unwrap();
        sock.send_to(&forged[..forged.len() / 2], target).unwrap();
    }
    assert!(wait_until(Duration::from_secs(5), || {
        let s = net.nodes[1].stats().unwrap();
        s.dropped_unauthenticated + s.dropped_malformed
            >= before.dropped_unauthenticated + before.dropped_malformed + 60
    }));
    let v = net.nodes[3].get(key(9)).unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].data, b"secret-binding");

    // A datagram with the right key but a timestamp outside the replay window
    // (a recorded one played back) is dropped; the same one fresh is answered.
    let member = Codec::new("chordsip", Some(b"s3cret"), 65_507);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let ping = |request_id: u64, timestamp_ms: u64| {
        member
            .encode(&Message {
                flags: 0,
                overlay: member.overlay(),
                request_id,
                timestamp_ms,
                sender: Id::from_name("replayer"),
                receiver: Id::ZERO,
                cookie: 0,
                body: Body::Ping,
            })
            .unwrap()
    };
    sock.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut buf = [0u8; 2048];
    for stale in [now_ms - 60_000, now_ms + 60_000] {
        let before = net.nodes[1].stats().unwrap().dropped_unauthenticated;
        sock.send_to(&ping(7, stale), target).unwrap();
        assert!(
            sock.recv_from(&mut buf).is_err(),
            "a stale Ping got an answer"
        );
        assert!(net.nodes[1].stats().unwrap().dropped_unauthenticated > before);
    }
    sock.send_to(&ping(8, now_ms), target).unwrap();
    let (n, _) = sock.recv_from(&mut buf).expect("a fresh Ping is answered");
    let pong = member.decode(&buf[..n]).unwrap();
    assert_eq!((pong.request_id, pong.body), (8, Body::Pong));
    // The members still work together.
    assert!(net.converged());
}

#[test]
fn bad_configuration_and_calls_give_clear_errors() {
    assert!(matches!(
        Node::start(Config {
            replicas: 0,
            ..Config::default()
        }),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Node::start(Config {
            listen: "0.0.0.0:0".parse().unwrap(),
            ..Config::default()
        }),
        Err(Error::InvalidArgument(_))
    ));
    let n = Node::start(Config::default()).unwrap();
    assert_eq!(n.get(key(1)), Err(Error::NotJoined));
    n.join(&[]).unwrap();
    let big = vec![0u8; 10_000];
    assert_eq!(
        n.put(key(1), b"w", &big, Duration::from_secs(1)),
        Err(Error::TooLarge)
    );
    assert!(matches!(
        n.put(key(1), b"w", b"x", Duration::ZERO),
        Err(Error::InvalidArgument(_))
    ));
    n.stop();
    assert_eq!(n.get(key(1)), Err(Error::Shutdown));
}

/// A forked SIP worker reaches the node through its UNIX socket: the same
/// calls as over UDP, a stale socket file is replaced, and only client
/// requests are accepted there (a peer message could smuggle an alias address
/// into the routing table).
#[test]
fn client_handle_over_unix_socket() {
    use chordsip::client::PeerAddr;
    use std::os::unix::net::UnixDatagram;
    let dir = std::env::temp_dir().join(format!("chordsip-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("node.sock");
    // A socket file left behind by a crashed process.
    drop(UnixDatagram::bind(&path).unwrap());
    assert!(path.exists());
    let cfg = Config {
        client_socket: Some(path.clone()),
        ..Config::default()
    };
    let node = Node::start(cfg.clone()).unwrap();
    node.join(&[]).unwrap();
    let second = Node::start(Config::default()).unwrap();
    second.join(&[node.addr()]).unwrap();
    // A second node may not steal a live socket.
    assert!(matches!(Node::start(cfg), Err(Error::InvalidArgument(_))));

    let peer: PeerAddr = format!("unix:{}", path.display()).parse().unwrap();
    let mut c = Client::connect_to(&peer, "chordsip", None).unwrap();
    c.set_timeout(Duration::from_secs(3));
    for i in 0..50 {
        assert!(
            c.put(key(i), b"ua", b"sip:ua@127.0.0.1", Duration::from_secs(60))
                .unwrap()
                .copies
                >= 1
        );
    }
    for i in 0..50 {
        let v = c.get(key(i)).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].data, b"sip:ua@127.0.0.1");
        let (n, _) = c.lookup(key(i)).unwrap();
        assert_eq!(n, second.lookup(key(i)).unwrap().node);
    }
    assert!(c.stats_text().unwrap().contains("msgs_received"));
    assert!(c.remove(key(0), b"ua").is_ok());
    assert!(c.get(key(0)).unwrap().is_empty());

    // A peer (non-client) datagram on the local socket gets no answer.
    let codec = Codec::new("chordsip", None, 65_507);
    let ping = codec
        .encode(&Message {
            flags: 0,
            overlay: codec.overlay(),
            request_id: 7,
            timestamp_ms: 0,
            sender: Id::from_u64(99),
            receiver: Id::ZERO,
            cookie: 0,
            body: Body::Ping,
        })
        .unwrap();
    let raw = UnixDatagram::unbound().unwrap();
    let me = dir.join("peer.sock");
    let raw_bound = UnixDatagram::bind(&me).unwrap();
    raw_bound.send_to(&ping, &path).unwrap();
    raw.send_to(b"garbage", &path).unwrap();
    raw_bound
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 2048];
    assert!(
        raw_bound.recv(&mut buf).is_err(),
        "peer message answered on the client socket"
    );
    let ring = node.ring().unwrap();
    assert!(ring
        .predecessors
        .iter()
        .chain(&ring.successors)
        .all(|n| n.addr == second.addr()));

    // The socket file goes away with the node.
    node.stop();
    assert!(!path.exists());
    c.set_timeout(Duration::from_millis(300));
    assert_eq!(c.get(key(1)), Err(Error::Timeout));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A flood of requests from one address is cut to that address's budget,
/// while another client of the same node is still served at once.
#[test]
fn a_flooding_source_degrades_only_itself() {
    let cfg = Config {
        max_requests_per_source: 300,
        ..Config::default()
    };
    let net = Testnet::new(3, &cfg, Duration::from_secs(20)).unwrap();
    let target = net.nodes[0].addr();
    let mut c = net.client(0).unwrap();
    c.set_timeout(Duration::from_secs(2));
    // What a put and a get take here without a flood (median of 3): the
    // machine's own pace, which the limit below allows for.
    let mut quiet: Vec<Duration> = (0..3)
        .map(|_| {
            let t = Instant::now();
            c.put(key(2), b"ua", b"sip:ua@127.0.0.1", Duration::from_secs(60))
                .unwrap();
            c.get(key(2)).unwrap();
            t.elapsed()
        })
        .collect();
    quiet.sort();
    let limit = (quiet[1] * 4).max(Duration::from_millis(500));
    let codec = Codec::new("chordsip", None, 65_507);
    let flooder = UdpSocket::bind("127.0.0.1:0").unwrap();
    flooder
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let start = Instant::now();
    for i in 0..3000u64 {
        let ping = codec
            .encode(&Message {
                flags: 0,
                overlay: codec.overlay(),
                request_id: i + 1,
                timestamp_ms: 0,
                sender: Id::from_name("flooder"),
                receiver: Id::ZERO,
                cookie: 0,
                body: Body::Ping,
            })
            .unwrap();
        flooder.send_to(&ping, target).unwrap();
        if i % 50 == 49 {
            // paced so that the node, not the socket buffer, does the dropping
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let t = Instant::now();
    c.put(key(1), b"ua", b"sip:ua@127.0.0.1", Duration::from_secs(60))
        .unwrap();
    assert_eq!(c.get(key(1)).unwrap().len(), 1);
    assert!(
        t.elapsed() < limit,
        "the other client waited {:?} (limit {limit:?}: 4 times its pace before the flood, {:?})",
        t.elapsed(),
        quiet[1]
    );
    let mut buf = [0u8; 1024];
    let mut answered = 0;
    while flooder.recv_from(&mut buf).is_ok() {
        answered += 1;
    }
    let allowed = 300.0 * (1.0 + start.elapsed().as_secs_f64());
    assert!(
        (answered as f64) <= allowed + 10.0,
        "{answered} of 3000 flooded Pings answered (budget {allowed:.0})"
    );
    assert!(answered >= 250, "the budget itself was served: {answered}");
    let limited = net.nodes[0].stats().unwrap().dropped_rate_limited;
    assert!(limited >= 1500, "{limited} requests dropped by the limit");
}

/// Reads `key`'s entries as node `to` holds them, signatures included
/// (a raw replica read, as any member may send).
fn raw_entries(sock: &UdpSocket, codec: &Codec, to: SocketAddr, key: Id) -> Vec<WireEntry> {
    let mut msg = member_msg(
        codec,
        "reader",
        Body::Fetch {
            key,
            replica: true,
            after: None,
        },
    );
    sock.send_to(&codec.encode(&msg).unwrap(), to).unwrap();
    let mut buf = vec![0u8; 65_536];
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let Ok((n, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let Ok(m) = codec.decode(&buf[..n]) else {
            continue;
        };
        if m.request_id != msg.request_id {
            continue;
        }
        match m.body {
            Body::FetchReply { entries, .. } => return entries,
            // Not yet proven to receive here: ask again with the cookie.
            Body::Retry => {
                msg.cookie = m.cookie;
                sock.send_to(&codec.encode(&msg).unwrap(), to).unwrap();
            }
            _ => {}
        }
    }
    panic!("no FetchReply from {to}");
}

/// A request as a member of an unkeyed overlay sends it, with a fresh id.
fn member_msg(codec: &Codec, sender: &str, body: Body) -> Message {
    Message {
        flags: 0,
        overlay: codec.overlay(),
        request_id: rand_id(),
        timestamp_ms: 0,
        sender: Id::from_name(sender),
        receiver: Id::ZERO,
        cookie: 0,
        body,
    }
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Sends `body` to every node, as a member of the overlay would: from a
/// node id of its own key, signed with it, addressed to each node.
fn send_all(sock: &UdpSocket, net: &Testnet, body: &Body) {
    let key = chordsip::identity::NodeKey::from_secret(&[21; 32]);
    let id = key.id();
    let codec = Codec::new("chordsip", None, 65_507).with_signer(std::sync::Arc::new(key));
    for n in &net.nodes {
        let msg = Message {
            sender: id,
            receiver: n.id(),
            timestamp_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64,
            ..member_msg(&codec, "mallory", body.clone())
        };
        sock.send_to(&codec.encode(&msg).unwrap(), n.addr())
            .unwrap();
    }
}

/// Record ownership on real sockets: a member that holds (or fetched) a signed
/// entry cannot make the nodes store a changed copy, a removal, an unsigned
/// entry or one signed by another key, nor keep the entry alive past the
/// expiry its writer signed by pushing it again with a longer lifetime.
#[test]
fn a_member_cannot_forge_remove_or_prolong_anothers_entry() {
    let cfg = Config {
        replay_window: Duration::from_secs(1), // also the expiry slack
        ..Config::default()
    };
    let net = Testnet::new(4, &cfg, Duration::from_secs(20)).unwrap();
    let owner = net.nodes[0].owner().unwrap();
    let k = key(77);
    net.nodes[0]
        .put(k, b"dev", b"binding", Duration::from_secs(600))
        .unwrap();
    assert!(net.wait_copies(&[k], 3, Duration::from_secs(10)));
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let codec = Codec::new("chordsip", None, 65_507);
    let genuine = net
        .nodes
        .iter()
        .flat_map(|n| raw_entries(&sock, &codec, n.addr(), k))
        .next()
        .expect("a holder answers");
    assert_eq!(&genuine.writer[..32], &owner[..]);

    let mallory = WriterKey::from_secret(&[7; 32]);
    let mut changed = genuine.clone();
    changed.version += 1;
    changed.data = b"sip:mallory@192.0.2.66".to_vec();
    let mut removal = genuine.clone();
    removal.version = genuine.version + 2;
    removal.tombstone = true;
    removal.data.clear();
    mallory.sign(&k, &mut removal); // signed, but not by the slot's owner
    let mut unsigned = changed.clone();
    unsigned.signature = [0; 64];
    let before: u64 = net
        .nodes
        .iter()
        .map(|n| n.stats().unwrap().forged_entries)
        .sum();
    for forged in [changed, removal, unsigned] {
        send_all(
            &sock,
            &net,
            &Body::Store {
                key: k,
                entry: forged.clone(),
            },
        );
        send_all(
            &sock,
            &net,
            &Body::Replicate {
                items: vec![(k, forged)],
            },
        );
    }
    assert!(
        wait_until(Duration::from_secs(5), || {
            let after: u64 = net
                .nodes
                .iter()
                .map(|n| n.stats().unwrap().forged_entries)
                .sum();
            after >= before + 9
        }),
        "every holder refused every forgery"
    );
    for n in &net.nodes {
        let v = n.get(k).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!((v[0].data.as_slice(), v[0].owner), (&b"binding"[..], owner));
        for e in raw_entries(&sock, &codec, n.addr(), k) {
            assert_eq!(
                e,
                WireEntry {
                    lifetime_ms: e.lifetime_ms,
                    ..genuine.clone()
                }
            );
        }
    }

    // A short-lived entry pushed again and again with an hour to live still
    // vanishes when its signed expiry (plus the 1 s slack) passes.
    let short = key(78);
    let start = Instant::now();
    net.nodes[1]
        .put(short, b"dev", b"brief", Duration::from_secs(2))
        .unwrap();
    let signed = net
        .nodes
        .iter()
        .flat_map(|n| raw_entries(&sock, &codec, n.addr(), short))
        .next()
        .expect("a holder answers");
    let prolonged = WireEntry {
        lifetime_ms: 3_600_000,
        ..signed
    };
    while start.elapsed() < Duration::from_millis(4500) {
        send_all(
            &sock,
            &net,
            &Body::Replicate {
                items: vec![(short, prolonged.clone())],
            },
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for n in &net.nodes {
        assert_eq!(n.get(short).unwrap(), vec![], "read through {}", n.addr());
        assert!(
            raw_entries(&sock, &codec, n.addr(), short).is_empty(),
            "{} still holds the expired entry",
            n.addr()
        );
    }
}

/// A join through a live peer routes around a node that just crashed, as
/// lookups do: right after a kill -9 (the ring still names the dead node),
/// 200 nodes join at once through the live ones, and every join succeeds.
#[test]
fn joins_route_around_a_node_that_just_died() {
    let cfg = Config::default();
    let mut net = Testnet::new(16, &cfg, Duration::from_secs(20)).unwrap();
    assert!(net.wait_converged(Duration::from_secs(20)));
    // The victim is stopped without a word to its neighbours (a crash).
    net.nodes.remove(5).stop();
    let live: Vec<SocketAddr> = net.nodes.iter().map(|n| n.addr()).collect();
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut joiners = Vec::new();
    let t0 = Instant::now();
    for i in 0..200 {
        let node = Node::start(Config::default()).unwrap();
        let tx = tx.clone();
        let via = live[i % live.len()];
        node.join_async(&[via], move |r| {
            let _ = tx.send((i, r));
        })
        .unwrap();
        joiners.push(node);
    }
    let mut failed = Vec::new();
    for _ in 0..200 {
        let (i, r) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("every join completes within its deadline");
        if let Err(e) = r {
            failed.push(format!("join {i} via {}: {e}", live[i % live.len()]));
        }
    }
    let took = t0.elapsed();
    assert!(
        failed.is_empty(),
        "{} of 200 joins failed: {failed:?}",
        failed.len()
    );
    assert!(took < Duration::from_secs(60), "{took:?}");

    // A join that fails says which step failed: here the bootstrap itself.
    let lone = Node::start(Config {
        op_timeout: Duration::from_millis(300),
        ..Config::default()
    })
    .unwrap();
    match lone.join(&["127.0.0.1:9".parse().unwrap()]) {
        Err(Error::JoinFailed(why)) => assert!(
            why.starts_with("no bootstrap peer answered (127.0.0.1:9 was the last asked"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
}
