//! The attacks of issue 13 in the simulator: raw datagrams from an address
//! the test controls (a mailbox), against a ring of 12 nodes, on virtual time.
//! tests/attacks.rs makes the same attacks on real sockets.

use chordsip::identity::NodeKey;
use chordsip::owner::WriterKey;
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
    // Predecessor lists reach their full depth.
    net.run_for(Duration::from_secs(3));
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
    // With the credential, the node picks the version and caps the lifetime.
    let mut client = Attacker::new(&mut net, Some(b"sim-client-credential"));
    let pinned = WireEntry::unsigned(
        b"memo".to_vec(),
        u64::MAX - 1,
        30 * 86_400_000,
        false,
        b"m".to_vec(),
    );
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
