//! The attacks of issue 13 in the simulator: raw datagrams from an address
//! the test controls (a mailbox), against a ring of 12 nodes, on virtual time.
//! tests/attacks.rs makes the same attacks on real sockets.

use chordsip::identity::NodeKey;
use chordsip::owner::{Verifier, WriterKey};
use chordsip::sim::{SimConfig, SimNet};
use chordsip::wire::{
    Body, Codec, Message, NodeInfo, Status, WireEntry, FLAG_CLIENT, FLAG_RESPONSE,
};
use chordsip::{Config, Id};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const EPOCH_MS: u64 = 1_700_000_000_000;

fn cfg() -> Config {
    Config {
        writer_key: Some([0x42; 32]),
        client_key: Some(b"sim-client-credential".to_vec()),
        tombstone_lifetime: Duration::from_secs(60),
        transactions: Some(chordsip::sip::remote::transactions()),
        ..Config::default()
    }
}

fn build(seed: u64) -> SimNet {
    let mut net = SimNet::new(SimConfig {
        seed,
        ..SimConfig::default()
    });
    assert!(net.build_ring(
        12,
        &cfg(),
        Duration::from_millis(20),
        Duration::from_secs(120)
    ));
    // Predecessor lists are full (replicas + 2 deep): a node whose list
    // is still filling in takes copies from anyone who signs them.
    assert!(
        net.run_until(Duration::from_secs(10), Duration::from_millis(100), |n| {
            n.predecessors_complete(5)
        })
    );
    net
}

/// Sends from a mailbox as a peer that can receive would: it keeps the
/// cookies and ids nodes tell it and asks again when told to.
struct Attacker {
    addr: SocketAddr,
    codec: Codec,
    rid: u64,
    cookies: HashMap<usize, u64>,
    ids: HashMap<usize, Id>,
}

impl Attacker {
    fn new(net: &mut SimNet, client_key: Option<&[u8]>) -> Attacker {
        let addr: SocketAddr = "127.66.0.1:6666".parse().unwrap();
        net.open_mailbox(addr);
        Attacker {
            addr,
            codec: Codec::new("chordsip", None, 65_507).with_client_key(client_key),
            rid: 0,
            cookies: HashMap::new(),
            ids: HashMap::new(),
        }
    }

    fn signing(mut self, key: NodeKey) -> Attacker {
        self.codec = self.codec.with_signer(Arc::new(key));
        self
    }

    fn wall_ms(net: &SimNet) -> u64 {
        EPOCH_MS + net.now() / 1000
    }

    #[allow(clippy::too_many_arguments)]
    fn send_as(
        &mut self,
        net: &mut SimNet,
        i: usize,
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
                receiver: self.ids.get(&i).copied().unwrap_or(Id::ZERO),
                cookie: self.cookies.get(&i).copied().unwrap_or(0),
                body,
            })
            .unwrap();
        let len = data.len();
        net.send_raw(self.addr, i, data);
        len
    }

    /// Sends `body` to node `i`; returns (request id, bytes sent).
    fn send(
        &mut self,
        net: &mut SimNet,
        i: usize,
        flags: u8,
        sender: Id,
        ts: u64,
        body: Body,
    ) -> (u64, usize) {
        self.rid += 1;
        let rid = self.rid;
        (rid, self.send_as(net, i, rid, flags, sender, ts, body))
    }

    /// Sends `body` and runs the net until its answer (asking again when told
    /// to): (body, answer bytes, request bytes).
    fn ask(
        &mut self,
        net: &mut SimNet,
        i: usize,
        flags: u8,
        body: Body,
    ) -> Option<(Body, usize, usize)> {
        let sender = Id::from_name("mallory");
        let (rid, mut sent) = self.send(net, i, flags, sender, Self::wall_ms(net), body.clone());
        for _ in 0..400 {
            net.run_for(Duration::from_millis(5));
            for data in net.take_mail(&self.addr) {
                let Ok(m) = self.codec.decode(&data) else {
                    continue;
                };
                if m.request_id != rid || m.flags & FLAG_RESPONSE == 0 {
                    continue;
                }
                if m.cookie != 0 {
                    self.cookies.insert(i, m.cookie);
                }
                self.ids.insert(i, m.sender);
                if m.body != Body::Retry {
                    return Some((m.body, data.len(), sent));
                }
                assert!(data.len() <= sent, "a Retry larger than the request");
                let ts = Self::wall_ms(net);
                sent = self.send_as(net, i, rid, flags, sender, ts, body.clone());
            }
        }
        None
    }
}

#[test]
fn a_stranger_client_is_refused_in_fewer_bytes_than_it_sent() {
    let mut net = build(31);
    let k = Id::from_name("sip:bob@example.com");
    net.put(
        0,
        k,
        b"phone",
        b"sip:bob@192.0.2.2",
        1,
        Duration::from_secs(600),
    )
    .unwrap();
    let mut mallory = Attacker::new(&mut net, None);
    let removal = WireEntry::unsigned(b"phone".to_vec(), u64::MAX - 1, 600_000, true, vec![]);
    for body in [
        Body::ClientGet {
            key: k,
            after: None,
        },
        Body::ClientPut {
            key: k,
            entry: removal,
        },
        Body::ClientLookup { key: k },
        Body::ClientInfo { what: 1 },
        Body::ClientTransaction {
            request: vec![1; 40],
        },
    ] {
        let name = body.name();
        let (reply, got, sent) = mallory.ask(&mut net, 3, FLAG_CLIENT, body).expect(name);
        assert_eq!(
            reply,
            Body::Error {
                status: Status::Unauthorized
            },
            "{name}"
        );
        assert!(got <= sent, "{name}: {got} > {sent}");
    }
    let v = net.get(5, k).unwrap();
    assert_eq!(v.len(), 1, "bob's value is still there");
    // With the credential, the node picks the version and caps the lifetime,
    // and signs and tags the write itself, whatever signature and tag it came with.
    let mut client = Attacker::new(&mut net, Some(b"sim-client-credential"));
    let mut pinned = WireEntry::unsigned(
        b"memo".to_vec(),
        u64::MAX - 1,
        30 * 86_400_000,
        false,
        b"m".to_vec(),
    );
    pinned.signature = [7; 64];
    pinned.writer_tag = Some([9; 16]);
    let (reply, _, _) = client
        .ask(
            &mut net,
            3,
            FLAG_CLIENT,
            Body::ClientPut {
                key: k,
                entry: pinned,
            },
        )
        .unwrap();
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
    let memo = net
        .get(5, k)
        .unwrap()
        .into_iter()
        .find(|v| v.writer == b"memo")
        .unwrap();
    assert!(memo.version < (Attacker::wall_ms(&net) + 1000) * 1000);
    assert!(memo.lifetime <= Duration::from_secs(86_400));
    // Every copy carries the node's good signature (checked without any
    // writer secret, as a reader of another registrar would).
    let mut copies = 0;
    for i in 0..net.len() {
        for e in net.engine(i).store().entries(&k, net.now()) {
            if chordsip::owner::split_slot(&e.writer).is_some_and(|(_, l)| l == b"memo") {
                let wire = e.to_wire(net.now());
                assert!(Verifier::default().verify(&k, &wire), "node {i}: {wire:?}");
                copies += 1;
            }
        }
    }
    assert_eq!(copies, 3);
}

#[test]
fn spoofed_leavings_and_strangers_replicas_change_nothing() {
    let mut net = build(32);
    let victim = 4;
    let (pred, succ) = {
        let rt = net.engine(victim).routing();
        (rt.predecessors()[0], rt.successors()[0])
    };
    let key = NodeKey::from_secret(&[13; 32]);
    let mallory_id = key.id();
    let mut mallory = Attacker::new(&mut net, None).signing(key);
    mallory.ids.insert(victim, net.engine(victim).me().id);
    let fake = NodeInfo {
        id: Id::from_name("fake"),
        addr: mallory.addr,
    };
    let now = Attacker::wall_ms(&net);
    let leaving = |preds: Vec<NodeInfo>, succs: Vec<NodeInfo>| Body::Leaving { preds, succs };
    // Claimed ids without their keys, and her own id, no neighbour.
    mallory.send(
        &mut net,
        victim,
        0,
        succ.id,
        now,
        leaving(vec![], vec![fake]),
    );
    mallory.send(
        &mut net,
        victim,
        0,
        pred.id,
        u64::MAX,
        leaving(vec![fake], vec![]),
    );
    mallory.send(
        &mut net,
        victim,
        0,
        mallory_id,
        now,
        leaving(vec![fake], vec![fake]),
    );
    // A datagram of forged copies of a key the victim holds.
    let k = (0..)
        .map(|i| Id::from_name(&format!("held-{i}")))
        .find(|k| net.engine(victim).routing().is_holder(k, 3) == Some(true))
        .unwrap();
    let items: Vec<(Id, WireEntry)> = (0..100)
        .map(|i| {
            let mut slot = vec![7u8; 32];
            slot.extend_from_slice(format!("forged-{i}").as_bytes());
            let mut e = WireEntry::unsigned(slot, 1, 600_000, false, vec![b'x'; 100]);
            e.expires_ms = now + 600_000;
            e.signature = [1; 64];
            (k, e)
        })
        .collect();
    let s0 = net.engine(victim).stats();
    mallory.send(&mut net, victim, 0, pred.id, now, Body::Replicate { items });
    net.run_for(Duration::from_secs(2));
    let rt = net.engine(victim).routing();
    assert_eq!(rt.predecessors()[0], pred);
    assert_eq!(rt.successors()[0], succ);
    let s = net.engine(victim).stats();
    assert_eq!(
        s.forged_entries, s0.forged_entries,
        "not one entry signature checked"
    );
    assert_eq!(s.refused_membership, 2, "her own Leaving and the Replicate");
    assert!(s.dropped_unauthenticated >= 2, "the claimed ids");
    assert!(net.engine(victim).store().entries(&k, net.now()).is_empty());
    assert!(net.check_ring().is_correct(), "{:?}", net.check_ring());
}

#[test]
fn skewed_expired_and_everlasting_writes_are_refused_or_cut() {
    let mut net = build(33);
    let mut mallory = Attacker::new(&mut net, None);
    let key = WriterKey::from_secret(&[9; 32]);
    let k = Id::from_name("sim-limits");
    let primary = (0..net.len())
        .find(|&i| Some(net.engine(i).me().id) == net.responsible(&k).map(|n| n.id))
        .unwrap();
    let now = Attacker::wall_ms(&net);
    let mut store =
        |net: &mut SimNet, label: &str, version: u64, life: u32, expires: u64, tomb: bool| {
            let mut e =
                WireEntry::unsigned(key.slot(label.as_bytes()), version, life, tomb, vec![]);
            e.expires_ms = expires;
            key.sign(&k, &mut e);
            match mallory.ask(net, primary, 0, Body::Store { key: k, entry: e }) {
                Some((Body::StoreReply { status, .. }, _, _)) => status,
                other => panic!("{other:?}"),
            }
        };
    assert_eq!(
        store(
            &mut net,
            "a",
            (now + 3_600_000) * 1000,
            60_000,
            now + 60_000,
            false
        ),
        Status::ClockSkew
    );
    assert_eq!(
        store(&mut net, "b", now * 1000, 10_000, now - 60_000, false),
        Status::ClockSkew
    );
    let week = 7 * 86_400_000u32;
    assert_eq!(
        store(&mut net, "c", now * 1000, week, now + week as u64, true),
        Status::Ok
    );
    let t = net.now();
    let tomb = net
        .engine(primary)
        .store()
        .entries(&k, t)
        .into_iter()
        .find(|e| e.tombstone)
        .cloned()
        .unwrap();
    assert!(
        tomb.expires_at <= t + 60_000_000,
        "the marker lives 60 s, not a week"
    );
}

/// Before: one Notify with a chosen id made an outsider a node's
/// predecessor and drew its keys. Now the id must derive from the signing
/// key, and a Notify from an address that never answered a cookie gets a
/// Retry and nothing else.
#[test]
fn a_notify_needs_the_ids_key_and_a_proven_address() {
    let mut net = build(34);
    for i in 0..120 {
        net.put(
            i % 12,
            Id::from_name(&format!("n{i}")),
            b"d",
            b"v",
            1,
            Duration::from_secs(600),
        )
        .unwrap();
    }
    let victim = 5;
    let me = *net.engine(victim).me();
    let pred = net.engine(victim).routing().predecessors()[0];
    let mut chosen = me.id;
    chosen.0[19] = chosen.0[19].wrapping_sub(1);
    let key = NodeKey::from_secret(&[17; 32]);
    let own_id = key.id();
    let mut mallory = Attacker::new(&mut net, None).signing(key);
    mallory.ids.insert(victim, me.id);
    let s0 = net.engine(victim).stats();
    let now = Attacker::wall_ms(&net);
    // A chosen id (signed by a key it does not derive from), then her own.
    mallory.send(&mut net, victim, 0, chosen, now, Body::Notify);
    let (rid, sent) = mallory.send(&mut net, victim, 0, own_id, now, Body::Notify);
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.engine(victim).routing().predecessors()[0], pred);
    let s = net.engine(victim).stats();
    assert_eq!(
        s.dropped_unauthenticated,
        s0.dropped_unauthenticated + 1,
        "the chosen id"
    );
    let answers: Vec<(usize, Message)> = net
        .take_mail(&mallory.addr)
        .into_iter()
        .map(|d| (d.len(), mallory.codec.decode(&d).unwrap()))
        .collect();
    assert_eq!(answers.len(), 1, "one answer, and no Replicate of keys");
    let (len, m) = &answers[0];
    assert_eq!((m.request_id, &m.body), (rid, &Body::Retry));
    assert!(*len <= sent);
    assert!(net.check_ring().is_correct(), "{:?}", net.check_ring());
}

/// Before: a captured datagram with a valid overlay key was served again
/// from any port and at any node for the whole replay window. Now it names
/// its receiver, and an authenticated request is served once.
#[test]
fn replayed_datagrams_are_served_once_and_only_by_their_receiver() {
    let keyed = Config {
        overlay_key: Some(b"sim-overlay-key".to_vec()),
        ..cfg()
    };
    let mut net = SimNet::new(SimConfig {
        seed: 35,
        ..SimConfig::default()
    });
    assert!(net.build_ring(
        8,
        &keyed,
        Duration::from_millis(20),
        Duration::from_secs(120)
    ));
    let writer = WriterKey::from_secret(&[23; 32]);
    let a = 2;
    let a_id = net.engine(a).me().id;
    let k = (0..)
        .map(|i| Id::from_name(&format!("replay-{i}")))
        .find(|k| net.responsible(k).map(|n| n.id) == Some(a_id))
        .unwrap();
    let t = Attacker::wall_ms(&net);
    let mut e = WireEntry::unsigned(writer.slot(b"x"), t * 1000, 600_000, false, b"v".to_vec());
    e.expires_ms = t + 600_000;
    writer.sign(&k, &mut e);
    let codec = Codec::new("chordsip", Some(b"sim-overlay-key"), 65_507);
    let captured = codec
        .encode(&Message {
            flags: 0,
            overlay: codec.overlay(),
            request_id: 99,
            timestamp_ms: t,
            sender: Id::from_name("member"),
            receiver: a_id,
            cookie: 0,
            body: Body::Store { key: k, entry: e },
        })
        .unwrap();
    let (first, other): (SocketAddr, SocketAddr) = (
        "127.66.0.2:5060".parse().unwrap(),
        "127.66.0.2:5061".parse().unwrap(),
    );
    net.open_mailbox(first);
    net.open_mailbox(other);
    let dropped = |net: &SimNet, i: usize| net.engine(i).stats().dropped_unauthenticated;
    let (da, db) = (dropped(&net, a), dropped(&net, 3));
    net.send_raw(first, a, captured.clone());
    net.run_for(Duration::from_millis(500));
    assert_eq!(net.take_mail(&first).len(), 1, "the original is served");
    net.send_raw(other, a, captured.clone());
    net.send_raw(other, 3, captured);
    net.run_for(Duration::from_millis(500));
    assert!(net.take_mail(&other).is_empty(), "no copy is served");
    assert_eq!(dropped(&net, a), da + 1, "a copy from another port");
    assert_eq!(dropped(&net, 3), db + 1, "a copy at another node");
}

/// The amplification table in the simulator: every request kind, from an
/// address that never proved it receives there, with 1,500 entries stored;
/// what comes back to that address is never larger than what it sent.
#[test]
fn no_answer_to_an_unproven_address_is_larger_than_its_request() {
    let mut net = build(36);
    let busy = Id::from_name("busy");
    for i in 0..1500 {
        let k = if i < 40 {
            busy
        } else {
            Id::from_name(&format!("a{i}"))
        };
        net.put(
            i % 12,
            k,
            format!("w{i}").as_bytes(),
            &[b'x'; 200],
            1,
            Duration::from_secs(600),
        )
        .unwrap();
    }
    let node = 0;
    let me = *net.engine(node).me();
    let pred = net.engine(node).routing().predecessors()[0];
    let key = NodeKey::from_secret(&[29; 32]);
    let own = key.id();
    let w = WriterKey::from_secret(&[31; 32]);
    let t = Attacker::wall_ms(&net);
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
    let fetch = |replica| Body::Fetch {
        key: busy,
        replica,
        after: None,
    };
    let kinds: Vec<(u8, Body)> = vec![
        (0, Body::Ping),
        (0, Body::FindSuccessor { key: busy }),
        (0, Body::GetNeighbors),
        (0, Body::Notify),
        (
            0,
            Body::Leaving {
                preds: vec![pred],
                succs: vec![pred],
            },
        ),
        (
            0,
            Body::Store {
                key: busy,
                entry: entry.clone(),
            },
        ),
        (0, fetch(false)),
        (0, fetch(true)),
        (
            0,
            Body::Replicate {
                items: vec![(busy, entry)],
            },
        ),
        (
            0,
            Body::SyncDigest {
                lo: me.id,
                hi: me.id,
                digest: 1,
                count: 1,
            },
        ),
        (0, Body::SyncItems { items: summaries }),
        (FLAG_CLIENT, Body::ClientLookup { key: busy }),
        (
            FLAG_CLIENT,
            Body::ClientGet {
                key: busy,
                after: None,
            },
        ),
        (FLAG_CLIENT, Body::ClientInfo { what: 0 }),
        (FLAG_CLIENT, Body::ClientInfo { what: 1 }),
    ];
    for (n, (flags, body)) in kinds.into_iter().enumerate() {
        let name = body.name();
        // A new address each time: it never holds a cookie, as a victim would not.
        let mut victim = Attacker::new(&mut net, Some(b"sim-client-credential"))
            .signing(NodeKey::from_secret(&[29; 32]));
        victim.addr = SocketAddr::from(([127, 67, 0, 1], 7000 + n as u16));
        net.open_mailbox(victim.addr);
        victim.ids.insert(node, me.id);
        let now = Attacker::wall_ms(&net);
        let (_, sent) = victim.send(&mut net, node, flags, own, now, body);
        net.run_for(Duration::from_secs(2));
        let got: usize = net.take_mail(&victim.addr).iter().map(Vec::len).sum();
        assert!(got <= sent, "{name}: {got} bytes answered to {sent}");
    }
}

/// Servers that act as one registrar share a writer key: its holders take
/// a fresh write by its writer tag (a hash) instead of an Ed25519 check,
/// while a tag is no proof from anyone without the secret: a Store whose
/// tag was not made with it is checked by its signature, and a forgery
/// is refused.
#[test]
fn writer_tags_spare_holders_the_check_and_prove_nothing_to_outsiders() {
    fn checks(net: &SimNet) -> (u64, u64) {
        (0..net.len()).fold((0, 0), |(sig, tag), i| {
            let s = net.engine(i).stats();
            (
                sig + s.entries_checked_signature,
                tag + s.entries_checked_tag,
            )
        })
    }
    fn write_30(net: &mut SimNet) -> (u64, u64) {
        let (sig0, tag0) = checks(net);
        for i in 0..30 {
            let k = Id::from_name(&format!("sip:tagged{i}@example.com"));
            let receipt = net.put(i % net.len(), k, b"dev", b"v", 1, Duration::from_secs(600));
            assert_eq!(receipt.expect("put succeeds").copies, 3);
        }
        net.run_for(Duration::from_secs(2));
        let (sig, tag) = checks(net);
        (sig - sig0, tag - tag0)
    }
    // One writer key: every copy that left its writer's node was taken by its tag.
    let mut shared = build(51);
    let (by_sig, by_tag) = write_30(&mut shared);
    assert_eq!(
        by_sig, 0,
        "a holder of the writer secret checked a signature"
    );
    assert!(by_tag >= 60, "two replicas per write at least: {by_tag}");
    // A key per node: the same writes are checked by their signatures, but
    // where a writer's node holds a copy of its own write.
    let mut own = SimNet::new(SimConfig {
        seed: 51,
        ..SimConfig::default()
    });
    let cfg_own_keys = Config {
        writer_key: None,
        ..cfg()
    };
    assert!(own.build_ring(
        12,
        &cfg_own_keys,
        Duration::from_millis(20),
        Duration::from_secs(120)
    ));
    let (by_sig, by_tag) = write_30(&mut own);
    assert!(by_tag <= 30, "{by_tag} writes taken by tag");
    assert!(by_sig + by_tag >= 60 && by_sig >= 30, "{by_sig}");
    // Mallory holds no writer secret: her tag on a forged signature
    // does not pass, her tag on a genuine signature passes by the signature.
    let mut mallory = Attacker::new(&mut shared, None);
    let writer = WriterKey::from_secret(&[0x42; 32]);
    let not_the_secret = WriterKey::from_secret(&[0x43; 32]);
    let k = Id::from_name("sip:tag-forgery@example.com");
    let primary = (0..shared.len())
        .find(|&i| Some(shared.engine(i).me().id) == shared.responsible(&k).map(|n| n.id))
        .unwrap();
    let forged0 = shared.engine(primary).stats().forged_entries;
    // Signed by the writer over "genuine"; sent with `data`.
    let mut store = |net: &mut SimNet, data: &[u8]| {
        let now = Attacker::wall_ms(net);
        let slot = writer.slot(b"dev");
        let mut e = WireEntry::unsigned(slot, now * 1000, 60_000, false, b"genuine".to_vec());
        e.expires_ms = now + 60_000;
        writer.sign(&k, &mut e);
        e.data = data.to_vec();
        // A tag under a key derived from another secret: a guess.
        not_the_secret.tag(&k, &mut e);
        match mallory.ask(net, primary, 0, Body::Store { key: k, entry: e }) {
            Some((Body::StoreReply { status, .. }, _, _)) => status,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(store(&mut shared, b"forged"), Status::BadRequest);
    assert_eq!(shared.engine(primary).stats().forged_entries, forged0 + 1);
    let (sig0, _) = checks(&shared);
    assert_eq!(store(&mut shared, b"genuine"), Status::Ok);
    assert!(
        checks(&shared).0 > sig0,
        "the genuine write was taken by its signature"
    );
}
