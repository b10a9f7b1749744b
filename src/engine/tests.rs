use super::{Completion, Engine, OpResult, Phase};
use crate::config::Config;
use crate::engine::primary::page;
use crate::error::Error;
use crate::id::Id;
use crate::types::StoreReceipt;
use crate::wire::{self, WireEntry};
use std::net::SocketAddr;
use std::time::Duration;

#[test]
fn pages_follow_writer_order_and_fit_the_budget() {
    let entry = |w: &str| WireEntry::unsigned(w.as_bytes().to_vec(), 1, 1000, false, vec![0; 100]);
    let all: Vec<WireEntry> = ["d", "b", "a", "c", "e"].iter().map(|w| entry(w)).collect();
    let one = wire::fetch_entry_len(&all[0]);
    // Room for two entries and the cursor.
    let budget = 5 + 2 * one + 1;
    let (p1, next) = page(all.clone(), None, budget);
    let names = |p: &[WireEntry]| p.iter().map(|e| e.writer[0]).collect::<Vec<_>>();
    assert_eq!(names(&p1), b"ab");
    assert_eq!(next.as_deref(), Some(&b"b"[..]));
    let (p2, next) = page(all.clone(), next.as_deref(), budget);
    assert_eq!(names(&p2), b"cd");
    let (p3, next) = page(all.clone(), next.as_deref(), budget);
    assert_eq!(names(&p3), b"e");
    assert_eq!(next, None);
    // Everything fits: one page, no cursor.
    let (p, next) = page(all, None, 10_000);
    assert_eq!((p.len(), next), (5, None));
}

fn addr(p: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], p))
}

#[test]
fn lone_node_serves_itself() {
    let mut e = Engine::new(Config::default(), addr(7000), 1, 0);
    e.join(0, 1, &[], Duration::from_secs(1));
    assert_eq!(e.phase(), Phase::Joined);
    e.put(
        10,
        2,
        Id::from_name("k"),
        b"w",
        b"v",
        1,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    e.get(20, 3, Id::from_name("k"), Duration::from_secs(1));
    let done: Vec<Completion> = e.drain_completions().collect();
    assert_eq!(done.len(), 3);
    assert_eq!(
        done[1].result,
        OpResult::Put(Ok(StoreReceipt { copies: 1 }))
    );
    match &done[2].result {
        OpResult::Get(Ok(v)) => assert_eq!(v[0].data, b"v"),
        other => panic!("{other:?}"),
    }
    assert!(e.drain_transmits().next().is_none());
}

/// A registrar's node ends most operations at once (keys it holds alone):
/// they must leave nothing behind to wake it up later.
#[test]
fn operations_that_end_at_once_leave_no_timers() {
    let mut e = Engine::new(Config::default(), addr(7004), 1, 0);
    e.join(0, 1, &[], Duration::from_secs(1));
    let timers_before = e.timers.len();
    for i in 0..10_000u64 {
        let key = Id::from_name(&format!("k{i}"));
        let lifetime = Duration::from_secs(60);
        e.put(
            10 + i,
            2 + 2 * i,
            key,
            b"w",
            b"v",
            1,
            lifetime,
            Duration::from_secs(2),
        );
        e.get(10 + i, 3 + 2 * i, key, Duration::from_secs(2));
    }
    assert_eq!(e.drain_completions().count(), 20_001);
    assert!(e.ops.is_empty() && e.op_deadlines.is_empty());
    assert_eq!(e.timers.len(), timers_before);
}

#[test]
fn operations_before_join_fail_clearly() {
    let mut e = Engine::new(Config::default(), addr(7001), 1, 0);
    e.get(0, 1, Id::ZERO, Duration::from_secs(1));
    let done: Vec<Completion> = e.drain_completions().collect();
    assert_eq!(done[0].result, OpResult::Get(Err(Error::NotJoined)));
}

#[test]
fn garbage_is_counted_not_fatal() {
    let mut e = Engine::new(Config::default(), addr(7002), 1, 0);
    e.join(0, 1, &[], Duration::from_secs(1));
    e.handle_datagram(1, addr(9), b"hello");
    e.handle_datagram(1, addr(9), &[]);
    assert_eq!(e.stats().dropped_malformed, 2);
}

#[test]
fn join_to_silent_bootstrap_fails_by_deadline() {
    let mut e = Engine::new(Config::default(), addr(7003), 1, 0);
    e.join(0, 1, &[addr(9)], Duration::from_secs(3));
    let mut now = 0;
    let mut sent = 0;
    let done = loop {
        sent += e.drain_transmits().count();
        if let Some(c) = e.drain_completions().next() {
            break c;
        }
        now = e.next_timeout().expect("a join in progress has a timer");
        e.handle_timeout(now);
    };
    assert!(
        matches!(&done.result, OpResult::Join(Err(Error::JoinFailed(why))) if why.starts_with("no bootstrap peer answered")),
        "{:?}",
        done.result
    );
    assert!(now <= 3_000_000, "gave up at {now} us");
    assert!(sent >= 2, "the request was retransmitted");
    assert_eq!(e.phase(), Phase::Idle);
}

/// Floods of failures and of Leaving datagrams from ever new ids cannot grow
/// the maps of suspected and departed peers without bound.
#[test]
fn suspect_and_departed_maps_stay_bounded() {
    use super::maintain::{MAX_REMEMBERED, MAX_SUSPECTS};
    use crate::wire::{Body, Codec, Message};
    // Chosen ids accepted, so that one key signs for 20,000 claimed senders.
    let cfg = Config {
        insecure_chosen_ids: true,
        ..Config::default()
    };
    let mut e = Engine::new(cfg, addr(7010), 1, 1_700_000_000_000);
    e.join(0, 1, &[], Duration::from_secs(1));
    let me = e.me().id;
    for i in 0..3 * MAX_SUSPECTS as u64 {
        e.suspect(Id::from_u64(i), 1_000_000 + i);
    }
    assert!(e.suspects.len() <= MAX_SUSPECTS, "{}", e.suspects.len());
    let key = crate::identity::NodeKey::from_secret(&[5; 32]);
    let codec = Codec::new("chordsip", None, 65_507).with_signer(std::sync::Arc::new(key));
    for i in 0..20_000u64 {
        let leaving = Message {
            flags: 0,
            overlay: codec.overlay(),
            request_id: i + 1,
            timestamp_ms: 1_700_000_000_000,
            sender: Id::from_u64(1_000_000 + i),
            receiver: me,
            cookie: 0,
            body: Body::Leaving {
                preds: vec![],
                succs: vec![],
            },
        };
        let from = addr(10_000 + (i % 50_000) as u16);
        e.handle_datagram(1000 + i, from, &codec.encode(&leaving).unwrap());
    }
    assert!(e.departed.len() <= MAX_REMEMBERED, "{}", e.departed.len());
    assert!(e.suspects.len() <= MAX_SUSPECTS);
    assert_eq!(e.stats.refused_membership, 20_000);
}

/// Handoffs and syncs fill datagrams to the brim: every batch, with its
/// header, node signature and tag, must still fit (a batch that does not
/// cannot be sent, and the copies it carries would never leave).
#[test]
fn full_replicate_batches_fit_a_datagram() {
    let cfg = Config {
        overlay_key: Some(b"0123456789abcdef".to_vec()),
        ..Config::default()
    };
    let max = cfg.max_datagram;
    let mut e = Engine::new(cfg, addr(7000), 1, 0);
    e.join(0, 1, &[], Duration::from_secs(1));
    let keys: Vec<Id> = (0..400).map(|i| Id::from_name(&format!("k{i}"))).collect();
    for (i, k) in keys.iter().enumerate() {
        e.put(
            10,
            10 + i as u64,
            *k,
            b"w",
            &[7; 300],
            1,
            Duration::from_secs(60),
            Duration::from_secs(1),
        );
    }
    e.drain_transmits().for_each(drop);
    let peer = wire::NodeInfo {
        id: Id::from_name("peer"),
        addr: addr(7001),
    };
    let sent = e.push_keys(peer, &keys, || super::dispatch::OnAnswer::Push);
    let out: Vec<_> = e.drain_transmits().collect();
    assert!(sent > 1, "several batches");
    assert_eq!(out.len(), sent, "every batch was encoded and sent");
    assert!(out.iter().all(|t| t.data.len() <= max));
    assert!(
        out.iter().any(|t| t.data.len() > max - 400),
        "batches are full"
    );
}

/// A leaving node sends no Notify, and drops the one it was retransmitting:
/// stamped after its Leaving, it would bring it back into its neighbour's
/// lists (the neighbour then leaves towards a node that is gone).
#[test]
fn a_leaving_node_stops_notifying() {
    use super::dispatch::OnAnswer;
    use crate::wire::{Body, NodeInfo};
    let mut e = Engine::new(Config::default(), addr(7020), 1, 0);
    e.join(0, 1, &[], Duration::from_secs(1));
    let peer = NodeInfo {
        id: Id::from_name("peer"),
        addr: addr(7021),
    };
    e.rt.set_successors([peer]);
    e.rt.set_predecessors([peer]);
    assert!(e.send_request(peer.addr, Some(peer.id), Body::Notify, OnAnswer::Notify, 4));
    assert!(e.rpcs.values().any(|r| matches!(r.body, Body::Notify)));
    e.leave(10, 2, Duration::from_secs(2));
    assert_eq!(e.phase(), Phase::Leaving);
    assert!(!e.rpcs.values().any(|r| matches!(r.body, Body::Notify)));
    assert!(!e.send_request(peer.addr, Some(peer.id), Body::Notify, OnAnswer::Notify, 4));
    // Stabilize keeps running while the leave waits for its acknowledgements:
    // still no Notify goes out.
    let mut now = 10;
    while e.phase() == Phase::Leaving {
        assert!(!e.rpcs.values().any(|r| matches!(r.body, Body::Notify)));
        e.drain_transmits().for_each(drop);
        now = e.next_timeout().expect("a leave in progress has a timer");
        e.handle_timeout(now);
    }
    assert!(
        now <= 2_100_000,
        "the leave ended by its deadline, at {now} us"
    );
}

/// Stores are served at the end of the burst that brought them, their
/// signatures checked together: a forged one among them is refused alone
/// (BadRequest, counted), every genuine one is stored and answered Ok.
#[test]
fn stores_of_one_burst_are_served_together_and_a_forgery_alone_refused() {
    use crate::owner::WriterKey;
    use crate::wire::{Body, Codec, Message, Status, FLAG_RESPONSE};
    let wall = 1_700_000_000_000;
    let mut e = Engine::new(Config::default(), addr(7020), 1, wall);
    e.join(0, 1, &[], Duration::from_secs(1));
    e.drain_transmits().for_each(drop);
    let me = e.me().id;
    let writer = WriterKey::from_secret(&[21; 32]);
    let codec = Codec::new("chordsip", None, 65_507);
    let forged = 5u64;
    for i in 1..=12u64 {
        let key = Id::from_name(&format!("burst-{i}"));
        let mut entry =
            WireEntry::unsigned(writer.slot(b"v"), wall * 1000, 600_000, false, vec![1; 50]);
        entry.expires_ms = wall + 600_000;
        writer.sign(&key, &mut entry);
        if i == forged {
            entry.data[0] ^= 1;
        }
        let store = Message {
            flags: 0,
            overlay: codec.overlay(),
            request_id: i,
            timestamp_ms: wall,
            sender: Id::from_name("writer"),
            receiver: me,
            cookie: 0,
            body: Body::Store { key, entry },
        };
        e.handle_datagram(100, addr(9000), &codec.encode(&store).unwrap());
    }
    assert_eq!(
        e.drain_transmits().count(),
        0,
        "answered before the burst ended"
    );
    assert_eq!(
        e.next_timeout(),
        Some(100),
        "the burst's end is due at once"
    );
    e.handle_timeout(100);
    let mut answered = std::collections::HashMap::new();
    for t in e.drain_transmits() {
        let m = codec.decode(&t.data).unwrap();
        assert!(m.flags & FLAG_RESPONSE != 0);
        if let Body::StoreReply { status, .. } = m.body {
            answered.insert(m.request_id, status);
        }
    }
    for i in 1..=12u64 {
        let want = if i == forged {
            Status::BadRequest
        } else {
            Status::Ok
        };
        assert_eq!(answered.get(&i), Some(&want), "store {i}");
        let held = e
            .store()
            .entries(&Id::from_name(&format!("burst-{i}")), 100)
            .len();
        assert_eq!(held, usize::from(i != forged), "store {i}");
    }
    assert_eq!(e.stats().forged_entries, 1);
}
