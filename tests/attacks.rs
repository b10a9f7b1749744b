//! The attacks of issue 13, each made the way an attacker would: raw datagrams
//! from a UDP socket the test controls, against real nodes on loopback in
//! the default configuration (no overlay key). Each test says what the
//! attacker tried and checks that it changed nothing a user relies on.

use chordsip::client::Client;
use chordsip::identity::NodeKey;
use chordsip::owner::WriterKey;
use chordsip::sip::binding::{ContactSpec, RegisterRequest, RegistrarLimits};
use chordsip::sip::registrar::{lookup, register};
use chordsip::testnet::{wait_until, Testnet, TEST_CLIENT_KEY};
use chordsip::wire::{
    Body, Codec, Message, NodeInfo, Status, WireEntry, FLAG_CLIENT, FLAG_RESPONSE,
};
use chordsip::{Config, Id, Node};
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// One registrar's servers: they share a writer key.
fn registrar_cfg() -> Config {
    Config {
        writer_key: Some([0x42; 32]),
        max_client_lifetime: Duration::from_secs(3600),
        tombstone_lifetime: Duration::from_secs(60),
        ..Config::default()
    }
}

/// The attacker's socket and encoder. It behaves as a peer that can receive
/// at its address would: it keeps the cookies and ids nodes tell it, and asks
/// again when told to (a Retry).
struct Raw {
    sock: UdpSocket,
    codec: Codec,
    next: u64,
    cookies: HashMap<SocketAddr, u64>,
    ids: HashMap<SocketAddr, Id>,
}

impl Raw {
    fn new(client_key: Option<&[u8]>) -> Raw {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Raw {
            sock,
            codec: Codec::new("chordsip", None, 65_507).with_client_key(client_key),
            next: 1,
            cookies: HashMap::new(),
            ids: HashMap::new(),
        }
    }

    /// Signs the kinds that need it with a node key of the attacker's own.
    fn signing(mut self, key: NodeKey) -> Raw {
        self.codec = self.codec.with_signer(Arc::new(key));
        self
    }

    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    /// Sends `body` as request `rid`; returns the datagram's size.
    fn send_as(
        &mut self,
        to: SocketAddr,
        rid: u64,
        flags: u8,
        sender: Id,
        ts: u64,
        body: Body,
    ) -> usize {
        let data = self
            .codec
            .encode(&Message {
                flags,
                overlay: self.codec.overlay(),
                request_id: rid,
                timestamp_ms: ts,
                sender,
                receiver: self.ids.get(&to).copied().unwrap_or(Id::ZERO),
                cookie: self.cookies.get(&to).copied().unwrap_or(0),
                body,
            })
            .unwrap();
        self.sock.send_to(&data, to).unwrap();
        data.len()
    }

    /// Sends `body`; returns the request id and the datagram's size.
    fn send(&mut self, to: SocketAddr, flags: u8, sender: Id, ts: u64, body: Body) -> (u64, usize) {
        self.next += 1;
        let rid = self.next;
        (rid, self.send_as(to, rid, flags, sender, ts, body))
    }

    /// Sends `body` and waits up to a second for its answer, asking again
    /// when told to: (body, size of the answer, size of the request).
    fn ask(&mut self, to: SocketAddr, flags: u8, body: Body) -> Option<(Body, usize, usize)> {
        let sender = Id::from_name("mallory");
        let (rid, mut sent) = self.send(to, flags, sender, wall_ms(), body.clone());
        let mut buf = vec![0u8; 65_536];
        let end = std::time::Instant::now() + Duration::from_secs(1);
        while std::time::Instant::now() < end {
            let Ok((n, from)) = self.sock.recv_from(&mut buf) else {
                continue;
            };
            if from != to {
                continue;
            }
            let Ok(m) = self.codec.decode(&buf[..n]) else {
                continue;
            };
            if m.request_id != rid || m.flags & FLAG_RESPONSE == 0 {
                continue;
            }
            if m.cookie != 0 {
                self.cookies.insert(to, m.cookie);
            }
            self.ids.insert(to, m.sender);
            if m.body != Body::Retry {
                return Some((m.body, n, sent));
            }
            assert!(n <= sent, "a Retry of {n} bytes to {sent}");
            sent = self.send_as(to, rid, flags, sender, wall_ms(), body.clone());
        }
        None
    }

    /// Every datagram that reaches the socket within `wait`.
    fn drain(&self, wait: Duration) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65_536];
        let end = std::time::Instant::now() + wait;
        while std::time::Instant::now() < end {
            if let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                out.push(buf[..n].to_vec());
            }
        }
        out
    }
}

fn contact(uri: &str, expires: u32) -> ContactSpec {
    ContactSpec {
        uri: uri.into(),
        expires: Some(expires),
        ..ContactSpec::default()
    }
}

fn aor_request(aor: &str, call: &str, cseq: u32, contacts: Vec<ContactSpec>) -> RegisterRequest {
    RegisterRequest {
        to: aor.into(),
        call_id: call.into(),
        cseq,
        contacts,
        ..RegisterRequest::default()
    }
}

fn aor_key(aor: &str) -> Id {
    chordsip::sip::registrar::aor_key(aor).unwrap().1
}

/// The contacts an AOR is bound to, as `node` reads them.
fn contacts(node: &Node, aor: &str) -> Vec<String> {
    let mut list = node;
    lookup(&mut list, aor)
        .unwrap()
        .into_iter()
        .map(|(b, _)| b.contact)
        .collect()
}

/// Before: a stranger with nothing but the CLI read alice's binding and
/// removed bob's. Now a client request without the node's client credential
/// is refused, in an answer no larger than the request, whatever it asks;
/// so is one that claims to come from a peer; a wrong credential gets no
/// answer at all.
#[test]
fn a_stranger_without_the_client_credential_reads_and_writes_nothing() {
    let net = Testnet::new(4, &registrar_cfg(), Duration::from_secs(20)).unwrap();
    let limits = RegistrarLimits::default();
    let bob = "sip:bob@example.com";
    let req = aor_request(bob, "bob-1", 1, vec![contact("sip:bob@192.0.2.2", 600)]);
    register(&mut &net.nodes[0], &req, &limits).unwrap();
    let bindings = contacts(&net.nodes[0], bob);
    assert_eq!(bindings, ["sip:bob@192.0.2.2"]);
    let k = aor_key(bob);
    let slot = net.nodes[0].get(k).unwrap()[0].writer.clone();
    let target = net.nodes[1].addr();

    let mut stranger = Raw::new(None);
    let removal = WireEntry::unsigned(slot.clone(), u64::MAX - 1, 600_000, true, vec![]);
    let requests = [
        Body::ClientGet {
            key: k,
            after: None,
        },
        Body::ClientPut {
            key: k,
            entry: removal.clone(),
        },
        Body::ClientLookup { key: k },
        Body::ClientInfo { what: 0 },
        Body::ClientTransaction {
            request: vec![0; 64],
        },
    ];
    for body in &requests {
        for flags in [FLAG_CLIENT, 0] {
            let name = body.name();
            let (reply, got, sent) = stranger
                .ask(target, flags, body.clone())
                .unwrap_or_else(|| panic!("{name}: no answer"));
            assert_eq!(
                reply,
                Body::Error {
                    status: Status::Unauthorized
                },
                "{name}"
            );
            assert!(got <= sent, "{name}: {got} bytes answered to {sent}");
        }
    }
    let mut wrong = Raw::new(Some(b"not-the-client-credential"));
    let get = Body::ClientGet {
        key: k,
        after: None,
    };
    assert_eq!(wrong.ask(target, FLAG_CLIENT, get), None);
    // The public Client says so at once.
    let mut c = Client::connect(target, "chordsip", None).unwrap();
    assert!(matches!(c.get(k), Err(chordsip::Error::Unauthorized(_))));

    // Every request above was answered (refused) before this point.
    for n in &net.nodes {
        assert_eq!(contacts(n, bob), bindings, "bob's binding is intact");
    }
}

/// Before: one ClientPut pinned alice's AOR to another contact for 7 days
/// with version 2^64-2, and her own REGISTERs then failed as stale. Now a
/// client with the credential still cannot choose the version or a lifetime
/// past `max_client_lifetime`, nor write a registrar's binding slot.
#[test]
fn a_client_chooses_neither_version_nor_lifetime_nor_binding_slots() {
    let net = Testnet::new(4, &registrar_cfg(), Duration::from_secs(20)).unwrap();
    let target = net.nodes[2].addr();
    let mut client = Raw::new(Some(TEST_CLIENT_KEY));
    let k = Id::from_name("note");
    let pinned = WireEntry::unsigned(
        b"memo".to_vec(),
        u64::MAX - 1,
        7 * 24 * 3600 * 1000,
        false,
        b"x".to_vec(),
    );
    let put = Body::ClientPut {
        key: k,
        entry: pinned,
    };
    let (reply, _, _) = client.ask(target, FLAG_CLIENT, put).expect("answer");
    assert!(
        matches!(
            reply,
            Body::StoreReply {
                status: Status::Ok,
                ..
            }
        ),
        "{reply:?}"
    );
    let v = net.nodes[0].get(k).unwrap();
    assert_eq!(v.len(), 1);
    let now_us = wall_ms() * 1000;
    assert!(
        v[0].version <= now_us + 1_000_000,
        "the node chose the version"
    );
    assert!(
        v[0].lifetime <= Duration::from_secs(3600),
        "{:?}",
        v[0].lifetime
    );

    // Alice registers through a registrar's client handle (a transaction).
    let alice = "sip:alice@example.com";
    let mut handle = net.client(1).unwrap();
    let first = aor_request(
        alice,
        "alice-1",
        1,
        vec![contact("sip:alice@192.0.2.1", 600)],
    );
    handle.register(&first).unwrap();
    let before = contacts(&net.nodes[0], alice);
    assert_eq!(before, ["sip:alice@192.0.2.1"]);
    let label = net.nodes[0].get(aor_key(alice)).unwrap()[0].writer.clone();
    // A plain put cannot replace or pin her binding's slot.
    for tombstone in [false, true] {
        let entry = WireEntry::unsigned(
            label.clone(),
            u64::MAX - 1,
            7 * 24 * 3600 * 1000,
            tombstone,
            b"sip:mallory@192.0.2.66".to_vec(),
        );
        let put = Body::ClientPut {
            key: aor_key(alice),
            entry,
        };
        let (reply, _, _) = client.ask(target, FLAG_CLIENT, put).expect("answer");
        assert_eq!(
            reply,
            Body::Error {
                status: Status::Unauthorized
            }
        );
    }
    assert_eq!(contacts(&net.nodes[3], alice), before);
    // Her own refresh and unregister work.
    let refresh = aor_request(
        alice,
        "alice-1",
        2,
        vec![contact("sip:alice@192.0.2.1", 900)],
    );
    handle.register(&refresh).unwrap();
    let mut bye = aor_request(alice, "alice-1", 3, vec![contact("sip:alice@192.0.2.1", 0)]);
    bye.contacts[0].expires = Some(0);
    handle.register(&bye).unwrap();
    assert!(wait_until(Duration::from_secs(3), || contacts(
        &net.nodes[0],
        alice
    )
    .is_empty()));
}

fn ring(n: &Node) -> chordsip::RingInfo {
    n.ring().unwrap()
}

/// Before: a spoofed Leaving replaced a node's successor, and one stamped
/// 2^64-1 left it without a predecessor for 40 s. Now a Leaving counts only
/// from a current neighbour, at the address the node knows it by, stamped
/// within the clock window. A Replicate of forged entries from a stranger is
/// refused before any signature is checked, and a SyncDigest from a stranger
/// draws no offer.
#[test]
fn membership_and_data_messages_from_a_stranger_change_nothing() {
    let cfg = Config {
        replicas: 3,
        ..registrar_cfg()
    };
    let net = Testnet::new(6, &cfg, Duration::from_secs(20)).unwrap();
    assert!(wait_until(Duration::from_secs(10), || net
        .nodes
        .iter()
        .all(|n| ring(n).predecessors.len() >= 5)));
    let node = &net.nodes[0];
    let before = ring(node);
    let (pred, succ) = (before.predecessors[0], before.successors[0]);
    let s0 = node.stats().unwrap();
    // Mallory signs with a node key of her own and names the victim as
    // receiver, as a real peer would.
    let key = NodeKey::from_secret(&[13; 32]);
    let mallory_id = key.id();
    let mut mallory = Raw::new(None).signing(key);
    mallory.ids.insert(node.addr(), node.id());
    let fake = NodeInfo {
        id: Id::from_name("fake"),
        addr: mallory.addr(),
    };
    let leaving = |preds: Vec<NodeInfo>, succs: Vec<NodeInfo>| Body::Leaving { preds, succs };
    // Our successor "leaves", naming mallory as the next one: her signature
    // is not the successor's key, so the claimed id is refused.
    mallory.send(
        node.addr(),
        0,
        succ.id,
        wall_ms(),
        leaving(vec![], vec![fake]),
    );
    // Our predecessor "leaves" at the end of time.
    mallory.send(
        node.addr(),
        0,
        pred.id,
        u64::MAX,
        leaving(vec![fake], vec![]),
    );
    // Mallory leaves under her own id: well signed, but no neighbour of ours.
    mallory.send(
        node.addr(),
        0,
        mallory_id,
        wall_ms(),
        leaving(vec![fake], vec![fake]),
    );
    // Forged copies of bob's binding, a datagram full, "from" our predecessor.
    let k = aor_key("sip:bob@example.com");
    let items: Vec<(Id, WireEntry)> = (0..100)
        .map(|i| {
            let mut slot = vec![7u8; 32];
            slot.extend_from_slice(format!("c:sip:mallory{i}@192.0.2.66").as_bytes());
            let mut e = WireEntry::unsigned(slot, 1, 600_000, false, vec![b'x'; 100]);
            e.expires_ms = wall_ms() + 600_000;
            e.signature = [1; 64];
            (k, e)
        })
        .collect();
    mallory.send(
        node.addr(),
        0,
        pred.id,
        wall_ms(),
        Body::Replicate { items },
    );
    // A digest that does not match: a member would be offered summaries.
    let digest = Body::SyncDigest {
        lo: pred.id,
        hi: node.id(),
        digest: 12345,
        count: 1,
    };
    mallory.send(node.addr(), 0, pred.id, wall_ms(), digest);
    let answers = mallory.drain(Duration::from_millis(1500));
    let after = ring(node);
    assert_eq!(after.successors[0], succ, "the successor stays");
    assert_eq!(after.predecessors[0], pred, "the predecessor stays");
    let s = node.stats().unwrap();
    assert_eq!(
        s.forged_entries, s0.forged_entries,
        "no entry signature checked"
    );
    assert!(
        s.refused_membership >= s0.refused_membership + 3,
        "own-id Leaving, the Replicate and the digest: {} -> {}",
        s0.refused_membership,
        s.refused_membership
    );
    assert!(
        s.dropped_unauthenticated >= s0.dropped_unauthenticated + 2,
        "claimed ids without their keys: {} -> {}",
        s0.dropped_unauthenticated,
        s.dropped_unauthenticated
    );
    assert!(node.get(k).unwrap().is_empty());
    let total: usize = answers.iter().map(Vec::len).sum();
    // Acks to her own Leaving and to the Replicate, an Error to the digest:
    // no offer, nothing big.
    assert!(
        answers.len() <= 3 && total < 300,
        "{} answers, {total} bytes",
        answers.len()
    );
}

/// A write an attacker signs with a key of its own.
struct Write<'a> {
    label: &'a str,
    version: u64,
    lifetime_ms: u32,
    expires_ms: u64,
    tombstone: bool,
}

/// Stores a raw write signed by `key` at the node responsible for `k`;
/// returns the StoreReply's status.
fn store_signed(net: &Testnet, raw: &mut Raw, key: &WriterKey, k: Id, w: Write) -> Status {
    let primary = net.nodes[0].lookup(k).unwrap().node.addr;
    let data = match w.tombstone {
        true => vec![],
        false => b"sip:x@192.0.2.9".to_vec(),
    };
    let slot = key.slot(w.label.as_bytes());
    let mut e = WireEntry::unsigned(slot, w.version, w.lifetime_ms, w.tombstone, data);
    e.expires_ms = w.expires_ms;
    key.sign(&k, &mut e);
    match raw.ask(primary, 0, Body::Store { key: k, entry: e }) {
        Some((Body::StoreReply { status, .. }, _, _)) => status,
        other => panic!("{other:?}"),
    }
}

/// Before: a version of 2^64-2 locked a slot, a Store past its signed expiry
/// was answered Ok with nothing stored, a tombstone could live 7 days, and
/// 64 strangers' entries blocked an AOR. Now each has a limit with a clear
/// answer, and the registrar keeps room under every AOR.
#[test]
fn storage_limits_hold_against_writers_with_keys_of_their_own() {
    let net = Testnet::new(4, &registrar_cfg(), Duration::from_secs(20)).unwrap();
    let mut raw = Raw::new(None);
    let mallory = WriterKey::from_secret(&[9; 32]);
    let k = Id::from_name("limits");
    let now = wall_ms();
    let ahead = (now + 3_600_000) * 1000;
    let st = store_signed(
        &net,
        &mut raw,
        &mallory,
        k,
        Write {
            label: "a",
            version: ahead,
            lifetime_ms: 60_000,
            expires_ms: now + 60_000,
            tombstone: false,
        },
    );
    assert_eq!(st, Status::ClockSkew, "a version an hour ahead");
    let st = store_signed(
        &net,
        &mut raw,
        &mallory,
        k,
        Write {
            label: "b",
            version: now * 1000,
            lifetime_ms: 10_000,
            expires_ms: now - 60_000,
            tombstone: false,
        },
    );
    assert_eq!(st, Status::ClockSkew, "signed expiry a minute ago");
    let week = 7 * 24 * 3600 * 1000;
    let st = store_signed(
        &net,
        &mut raw,
        &mallory,
        k,
        Write {
            label: "c",
            version: now * 1000,
            lifetime_ms: week,
            expires_ms: now + week as u64,
            tombstone: true,
        },
    );
    assert_eq!(st, Status::Ok);
    // The removal marker lives the tombstone lifetime (60 s here), not a week.
    let primary = net.nodes[0].lookup(k).unwrap().node.addr;
    let fetch = Body::Fetch {
        key: k,
        replica: true,
        after: None,
    };
    match raw.ask(primary, 0, fetch) {
        Some((Body::FetchReply { entries, .. }, _, _)) => {
            let tomb = entries.iter().find(|e| e.tombstone).expect("the marker");
            assert!(tomb.lifetime_ms <= 60_000, "{}", tomb.lifetime_ms);
        }
        other => panic!("{other:?}"),
    }

    // One stranger's key holds at most 16 entries of an AOR; many keys
    // together leave 16 places for the registrar.
    let bob = "sip:bob@example.com";
    let kb = aor_key(bob);
    let t = wall_ms();
    let mut ok = 0;
    for i in 0..20 {
        let label = format!("c:sip:bob{i}@192.0.2.66");
        if store_signed(
            &net,
            &mut raw,
            &mallory,
            kb,
            Write {
                label: &label,
                version: t * 1000 + i,
                lifetime_ms: 600_000,
                expires_ms: t + 600_000,
                tombstone: false,
            },
        ) == Status::Ok
        {
            ok += 1;
        }
    }
    assert_eq!(ok, 16, "one owner's quota");
    for i in 0..64u8 {
        let other = WriterKey::from_secret(&[i.wrapping_add(100); 32]);
        let label = format!("c:sip:bob@192.0.2.{i}");
        store_signed(
            &net,
            &mut raw,
            &other,
            kb,
            Write {
                label: &label,
                version: t * 1000,
                lifetime_ms: 600_000,
                expires_ms: t + 600_000,
                tombstone: false,
            },
        );
    }
    let strangers = net.nodes[0].get(kb).unwrap().len();
    assert_eq!(
        strangers, 48,
        "64 places less the 16 kept for the main writers"
    );
    let req = aor_request(
        bob,
        "bob-1",
        1,
        (0..16)
            .map(|i| contact(&format!("sip:bob@10.0.0.{i}"), 600))
            .collect(),
    );
    let plan = register(&mut &net.nodes[1], &req, &RegistrarLimits::default()).unwrap();
    assert_eq!(
        plan.inserted, 16,
        "the registrar still registers bob's 16 devices"
    );
}

/// A node stores at most `max_store_bytes`; beyond, writes get Full.
#[test]
fn a_node_stores_at_most_its_byte_budget() {
    let mut cfg = registrar_cfg();
    cfg.limits.max_store_bytes = 64 * 1024;
    cfg.replicas = 1;
    let net = Testnet::new(1, &cfg, Duration::from_secs(10)).unwrap();
    let mut raw = Raw::new(None);
    let t = wall_ms();
    let mut statuses = Vec::new();
    for i in 0..40 {
        let key = WriterKey::from_secret(&[i as u8 + 1; 32]);
        let k = Id::from_name(&format!("bytes-{i}"));
        let primary = net.nodes[0].addr();
        let mut e = WireEntry::unsigned(key.slot(b"v"), t * 1000, 600_000, false, vec![7; 4000]);
        e.expires_ms = t + 600_000;
        key.sign(&k, &mut e);
        match raw.ask(primary, 0, Body::Store { key: k, entry: e }) {
            Some((Body::StoreReply { status, .. }, _, _)) => statuses.push(status),
            other => panic!("{other:?}"),
        }
    }
    let stored = statuses.iter().filter(|s| **s == Status::Ok).count();
    assert!(
        (14..=16).contains(&stored),
        "{stored} of 4 KiB fit in 64 KiB"
    );
    assert!(
        statuses[stored..].iter().all(|s| *s == Status::Full),
        "{statuses:?}"
    );
    let s = net.nodes[0].stats().unwrap();
    assert!(s.stored_value_bytes <= 64 * 1024);
}

/// Before: one Notify with a chosen id made an outsider a node's predecessor,
/// and the node handed it its keys. Now the id must be the signing key's,
/// and a Notify from an address that has not answered a cookie only gets a
/// Retry: nothing is handed over.
#[test]
fn a_notify_needs_the_ids_key_and_a_proven_address() {
    let net = Testnet::new(4, &registrar_cfg(), Duration::from_secs(20)).unwrap();
    for i in 0..200 {
        net.nodes[i % 4]
            .put(
                Id::from_name(&format!("n{i}")),
                b"d",
                b"v",
                Duration::from_secs(600),
            )
            .unwrap();
    }
    let victim = &net.nodes[0];
    let pred = ring(victim).predecessors[0];
    // An id just before the victim's: the place a hijacker wants.
    let mut chosen = victim.id();
    chosen.0[19] = chosen.0[19].wrapping_sub(1);
    let key = NodeKey::from_secret(&[17; 32]);
    let own_id = key.id();
    let mut mallory = Raw::new(None).signing(key);
    mallory.ids.insert(victim.addr(), victim.id());
    let s0 = victim.stats().unwrap();
    mallory.send(victim.addr(), 0, chosen, wall_ms(), Body::Notify);
    let (rid, sent) = mallory.send(victim.addr(), 0, own_id, wall_ms(), Body::Notify);
    let answers = mallory.drain(Duration::from_millis(1500));
    assert_eq!(ring(victim).predecessors[0], pred, "the predecessor stays");
    let s = victim.stats().unwrap();
    assert!(
        s.dropped_unauthenticated > s0.dropped_unauthenticated,
        "the chosen id"
    );
    let codec = Codec::new("chordsip", None, 65_507);
    let bodies: Vec<Body> = answers
        .iter()
        .filter_map(|d| codec.decode(d).ok())
        .map(|m| {
            assert_eq!(m.request_id, rid);
            m.body
        })
        .collect();
    assert_eq!(bodies, [Body::Retry], "one Retry, no keys");
    assert!(answers[0].len() <= sent);
}

/// Before: a captured datagram carrying a valid overlay key was accepted
/// from any source port, at any node, for the whole replay window. Now it
/// names its receiver, and each node serves an authenticated request once.
#[test]
fn replayed_datagrams_are_served_once_and_only_by_their_receiver() {
    let cfg = Config {
        overlay_key: Some(b"the-overlay-key".to_vec()),
        ..registrar_cfg()
    };
    let net = Testnet::new(3, &cfg, Duration::from_secs(20)).unwrap();
    let (a, b) = (&net.nodes[0], &net.nodes[1]);
    // A member's Store, as it went on the wire (captured by an observer).
    let writer = WriterKey::from_secret(&[23; 32]);
    let k = (0..)
        .map(|i| Id::from_name(&format!("replay-{i}")))
        .find(|k| a.lookup(*k).unwrap().node.id == a.id())
        .unwrap();
    let t = wall_ms();
    let mut e = WireEntry::unsigned(writer.slot(b"x"), t * 1000, 600_000, false, b"v".to_vec());
    e.expires_ms = t + 600_000;
    writer.sign(&k, &mut e);
    let codec = Codec::new("chordsip", Some(b"the-overlay-key"), 65_507);
    let captured = codec
        .encode(&Message {
            flags: 0,
            overlay: codec.overlay(),
            request_id: 99,
            timestamp_ms: t,
            sender: Id::from_name("member"),
            receiver: a.id(),
            cookie: 0,
            body: Body::Store { key: k, entry: e },
        })
        .unwrap();
    let answered = |to: SocketAddr| {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        sock.send_to(&captured, to).unwrap();
        let mut buf = [0u8; 2048];
        sock.recv_from(&mut buf).is_ok()
    };
    let dropped = |n: &Node| n.stats().unwrap().dropped_unauthenticated;
    let (da, db) = (dropped(a), dropped(b));
    assert!(answered(a.addr()), "the original is served");
    assert!(!answered(a.addr()), "a copy from another port is not");
    assert!(!answered(b.addr()), "nor at another node");
    assert_eq!(dropped(a), da + 1);
    assert_eq!(dropped(b), db + 1);
}

/// The amplification table of issue 13: for every request kind, the bytes a
/// node sends to an address that never proved it receives there (a spoofed
/// victim's), over the bytes of the request, with 3,000 entries stored.
/// Before: up to 10,909x (Notify), 3,841x (SyncDigest), 480x (Fetch,
/// ClientGet). Every ratio must be at most 1.
#[test]
fn no_answer_to_an_unproven_address_is_larger_than_its_request() {
    let net = Testnet::new(4, &registrar_cfg(), Duration::from_secs(20)).unwrap();
    let busy = Id::from_name("busy");
    for i in 0..3000 {
        let k = if i < 40 {
            busy
        } else {
            Id::from_name(&format!("a{i}"))
        };
        net.nodes[i % 4]
            .put(
                k,
                format!("w{i}").as_bytes(),
                &[b'x'; 200],
                Duration::from_secs(600),
            )
            .unwrap();
    }
    let node = &net.nodes[0];
    let key = NodeKey::from_secret(&[29; 32]);
    let own = key.id();
    let pred = ring(node).predecessors[0];
    let w = WriterKey::from_secret(&[31; 32]);
    let t = wall_ms();
    let mut entry = WireEntry::unsigned(w.slot(b"s"), t * 1000, 60_000, false, vec![1; 10]);
    entry.expires_ms = t + 60_000;
    w.sign(&busy, &mut entry);
    let summaries = (0..50)
        .map(|i| chordsip::wire::ItemSummary {
            key: Id::from_name(&format!("a{i}")),
            writer: vec![i as u8],
            version: 1,
        })
        .collect();
    let kinds: Vec<(&str, u8, Body)> = vec![
        ("Ping", 0, Body::Ping),
        ("FindSuccessor", 0, Body::FindSuccessor { key: busy }),
        ("GetNeighbors", 0, Body::GetNeighbors),
        ("Notify", 0, Body::Notify),
        (
            "Leaving",
            0,
            Body::Leaving {
                preds: vec![pred],
                succs: vec![pred],
            },
        ),
        (
            "Store",
            0,
            Body::Store {
                key: busy,
                entry: entry.clone(),
            },
        ),
        (
            "Fetch",
            0,
            Body::Fetch {
                key: busy,
                replica: false,
                after: None,
            },
        ),
        (
            "Fetch (replica)",
            0,
            Body::Fetch {
                key: busy,
                replica: true,
                after: None,
            },
        ),
        (
            "Replicate",
            0,
            Body::Replicate {
                items: vec![(busy, entry.clone())],
            },
        ),
        (
            "SyncDigest",
            0,
            Body::SyncDigest {
                lo: node.id(),
                hi: node.id(),
                digest: 1,
                count: 1,
            },
        ),
        ("SyncItems", 0, Body::SyncItems { items: summaries }),
        (
            "ClientLookup",
            FLAG_CLIENT,
            Body::ClientLookup { key: busy },
        ),
        (
            "ClientPut",
            FLAG_CLIENT,
            Body::ClientPut {
                key: busy,
                entry: WireEntry::unsigned(b"c".to_vec(), 1, 60_000, false, vec![2; 10]),
            },
        ),
        (
            "ClientGet",
            FLAG_CLIENT,
            Body::ClientGet {
                key: busy,
                after: None,
            },
        ),
        (
            "ClientInfo (ring)",
            FLAG_CLIENT,
            Body::ClientInfo { what: 0 },
        ),
        (
            "ClientInfo (stats)",
            FLAG_CLIENT,
            Body::ClientInfo { what: 1 },
        ),
        (
            "ClientTransaction",
            FLAG_CLIENT,
            Body::ClientTransaction {
                request: vec![0; 8],
            },
        ),
    ];
    println!("| request | bytes in | bytes out | ratio |\n|---|---|---|---|");
    for (name, flags, body) in kinds {
        // A fresh socket each time: it never holds a cookie, as a victim would not.
        let mut raw = Raw::new(Some(TEST_CLIENT_KEY)).signing(NodeKey::from_secret(&[29; 32]));
        raw.ids.insert(node.addr(), node.id());
        let (_, sent) = raw.send(node.addr(), flags, own, wall_ms(), body);
        let got: usize = raw
            .drain(Duration::from_millis(800))
            .iter()
            .map(Vec::len)
            .sum();
        let ratio = got as f64 / sent as f64;
        println!("| {name} | {sent} | {got} | {ratio:.2} |");
        assert!(got <= sent, "{name}: {got} bytes answered to {sent}");
    }
}

/// Stores that reach a primary in one burst have their signatures checked
/// together: a forged one among them is refused (BadRequest, counted) and
/// every genuine one is stored, whether the burst was checked as a batch or
/// one by one.
#[test]
fn a_forged_store_among_genuine_ones_is_refused_alone() {
    let net = Testnet::new(1, &registrar_cfg(), Duration::from_secs(10)).unwrap();
    let node = net.nodes[0].addr();
    let mut raw = Raw::new(None);
    let writer = WriterKey::from_secret(&[21; 32]);
    let t = wall_ms();
    let key_of = |i: usize| Id::from_name(&format!("burst-{i}"));
    let store = |i: usize| {
        let k = key_of(i);
        let mut e = WireEntry::unsigned(writer.slot(b"v"), t * 1000, 600_000, false, vec![1; 50]);
        e.expires_ms = t + 600_000;
        writer.sign(&k, &mut e);
        Body::Store { key: k, entry: e }
    };
    // The first one learns the node's id and cookie.
    match raw.ask(node, 0, store(0)) {
        Some((Body::StoreReply { status, .. }, _, _)) => assert_eq!(status, Status::Ok),
        other => panic!("{other:?}"),
    }
    let s0 = net.nodes[0].stats().unwrap();
    let forged = 5;
    let mut sent = Vec::new();
    for i in 1..=12 {
        let mut body = store(i);
        if let (true, Body::Store { entry, .. }) = (i == forged, &mut body) {
            entry.data[0] ^= 1;
        }
        let (rid, _) = raw.send(node, 0, Id::from_name("mallory"), wall_ms(), body);
        sent.push((rid, i));
    }
    let mut answered = HashMap::new();
    for d in raw.drain(Duration::from_millis(1500)) {
        if let Ok(m) = raw.codec.decode(&d) {
            if let Body::StoreReply { status, .. } = m.body {
                answered.insert(m.request_id, status);
            }
        }
    }
    for (rid, i) in sent {
        let want = match i == forged {
            true => Status::BadRequest,
            false => Status::Ok,
        };
        assert_eq!(answered.get(&rid), Some(&want), "store {i}");
        let held = net.nodes[0].get(key_of(i)).unwrap();
        assert_eq!(held.len(), usize::from(i != forged), "store {i}: {held:?}");
    }
    let s = net.nodes[0].stats().unwrap();
    assert_eq!(s.forged_entries, s0.forged_entries + 1);
}
