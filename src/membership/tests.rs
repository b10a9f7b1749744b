use super::*;
use crate::wire::MemberRecord;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

fn rec(id: Id, since_ms: u64) -> MemberRecord {
    MemberRecord {
        node: NodeInfo {
            id,
            addr: format!("127.0.0.1:{}", 1000 + (id.high_u64() % 60_000))
                .parse()
                .unwrap(),
        },
        since_ms,
        weight: 100,
        sip: None,
        points: 1,
    }
}

fn random_ids(n: usize, seed: u64) -> Vec<Id> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| Id(rng.gen())).collect()
}

#[test]
fn the_responsible_member_is_the_first_at_or_after_the_key_wrapping_around() {
    let mut t = Membership::new();
    for v in [10u64, 20, 30] {
        t.apply(&MemberChange::Up(rec(Id::from_u64(v), 1)), 0);
    }
    let at = |k: u64| t.responsible(&Id::from_u64(k)).unwrap().node.id;
    assert_eq!(at(15), Id::from_u64(20));
    assert_eq!(at(20), Id::from_u64(20));
    assert_eq!(at(31), Id::from_u64(10));
    assert_eq!(
        t.after(&Id::from_u64(20), 5)
            .iter()
            .map(|m| m.node.id)
            .collect::<Vec<_>>(),
        vec![Id::from_u64(30), Id::from_u64(10)]
    );
}

#[test]
fn a_removal_only_removes_the_incarnation_it_names() {
    let mut t = Membership::new();
    let id = Id::from_u64(7);
    assert_eq!(t.apply(&MemberChange::Up(rec(id, 100)), 0), Applied::Joined);
    assert_eq!(
        t.apply(&MemberChange::Up(rec(id, 100)), 0),
        Applied::Unchanged
    );
    let node = rec(id, 0).node;
    // A removal of an older incarnation leaves the newer one.
    let old_down = MemberChange::Down { node, since_ms: 50 };
    assert_eq!(t.apply(&old_down, 0), Applied::Unchanged);
    assert!(t.contains(&id));
    let down = MemberChange::Down {
        node,
        since_ms: 100,
    };
    assert_eq!(t.apply(&down, 0), Applied::Removed);
    // The same incarnation, heard late, does not come back...
    assert_eq!(
        t.apply(&MemberChange::Up(rec(id, 100)), 1),
        Applied::Unchanged
    );
    assert!(!t.contains(&id));
    // ...a new one does.
    assert_eq!(t.apply(&MemberChange::Up(rec(id, 101)), 2), Applied::Joined);
    // Until the removal is forgotten, a stale announcement stays out.
    t.apply(&down, 3);
    assert!(
        t.contains(&id),
        "an older removal must not remove a newer incarnation"
    );
    let mut u = Membership::new();
    u.apply(&down, 0);
    u.expire(REMOVAL_MEMORY_MS + 1);
    assert_eq!(u.apply(&MemberChange::Up(rec(id, 100)), 0), Applied::Joined);
}

#[test]
fn a_change_spread_over_the_tree_reaches_every_member_exactly_once() {
    for n in [1usize, 2, 3, 17, 1000] {
        let ids = random_ids(n, n as u64);
        let mut t = Membership::new();
        for id in &ids {
            t.apply(&MemberChange::Up(rec(*id, 1)), 0);
        }
        let mut received: HashMap<Id, usize> = HashMap::new();
        let origin = ids[0];
        let mut queue = vec![(origin, origin)];
        let mut sent = 0usize;
        while let Some((at, limit)) = queue.pop() {
            for (m, end) in t.spread_targets(&at, &limit) {
                sent += 1;
                *received.entry(m.node.id).or_default() += 1;
                queue.push((m.node.id, end));
            }
        }
        assert_eq!(sent, n - 1, "{n} members: one message per other member");
        assert!(ids[1..].iter().all(|id| received.get(id) == Some(&1)));
        assert!(!received.contains_key(&origin));
    }
}

#[test]
fn a_silent_target_is_replaced_by_the_next_member_of_its_part() {
    let mut t = Membership::new();
    for v in [10u64, 20, 30, 40] {
        t.apply(&MemberChange::Up(rec(Id::from_u64(v), 1)), 0);
    }
    let next = t.next_within(&Id::from_u64(20), &Id::from_u64(40));
    assert_eq!(next.map(|m| m.node.id), Some(Id::from_u64(30)));
    assert_eq!(t.next_within(&Id::from_u64(30), &Id::from_u64(40)), None);
}

#[test]
fn two_tables_converge_by_exchanging_pages_of_differing_buckets() {
    let ids = random_ids(300, 9);
    let (mut a, mut b) = (Membership::new(), Membership::new());
    for (i, id) in ids.iter().enumerate() {
        if i % 3 != 0 {
            a.apply(&MemberChange::Up(rec(*id, 1)), 0);
        }
        if i % 5 != 0 {
            b.apply(&MemberChange::Up(rec(*id, 1)), 0);
        }
    }
    // b knows one member left.
    let gone = ids[1];
    b.apply(
        &MemberChange::Down {
            node: rec(gone, 0).node,
            since_ms: 1,
        },
        0,
    );
    // a pulls from b, a page of at most 20 at a time.
    let mut after = Id::ZERO;
    let mut pages = 0;
    loop {
        let mut room = 20;
        let (changes, more) = b.page(&a.bucket_digests(), &after, |_| {
            room -= 1;
            room >= 0
        });
        pages += 1;
        for c in &changes {
            a.apply(c, 0);
        }
        if !more {
            break;
        }
        after = changes.last().unwrap().id();
    }
    assert!(pages > 1);
    assert!(!a.contains(&gone));
    // a still has the members b lacks: b pulls them from a.
    let (changes, more) = a.page(&b.bucket_digests(), &Id::ZERO, |_| true);
    assert!(!more);
    for c in &changes {
        b.apply(c, 0);
    }
    assert_eq!(a.bucket_digests(), b.bucket_digests());
    assert_eq!(a.len(), b.len());
    // Neither knew the members of index divisible by 15.
    let expected = (0..ids.len()).filter(|i| i % 15 != 0 && *i != 1).count();
    assert_eq!(a.len(), expected);
}

#[test]
fn members_a_complete_page_does_not_list_are_unknown_to_the_peer() {
    let ids = random_ids(50, 3);
    let (mut a, mut b) = (Membership::new(), Membership::new());
    for id in &ids {
        a.apply(&MemberChange::Up(rec(*id, 1)), 0);
        if *id != ids[7] {
            b.apply(&MemberChange::Up(rec(*id, 1)), 0);
        }
    }
    let (page, more) = b.page(&a.bucket_digests(), &Id::ZERO, |_| true);
    assert!(!more);
    let differing = differing(&a.bucket_digests(), &b.bucket_digests());
    assert_eq!(differing, vec![bucket_of(&ids[7])]);
    let unknown = a.unlisted(&differing, &page);
    assert_eq!(unknown.len(), 1);
    assert_eq!(unknown[0].node.id, ids[7]);
}

#[test]
fn virtual_points_even_out_the_shares_and_name_distinct_holders() {
    let ids = random_ids(16, 5);
    let mut t = Membership::with_virtual_nodes(256);
    for id in &ids {
        t.apply(&MemberChange::Up(rec(*id, 1)), 0);
    }
    let mut count: HashMap<Id, usize> = HashMap::new();
    let keys = 50_000;
    for i in 0..keys {
        let k = Id::from_name(&format!("sip:user{i}@example.com"));
        let holders = t.placement(&k, 3);
        assert_eq!(holders.len(), 3);
        assert!(
            holders[0].node.id != holders[1].node.id && holders[1].node.id != holders[2].node.id
        );
        assert!(holders[0].node.id != holders[2].node.id);
        *count.entry(holders[0].node.id).or_default() += 1;
    }
    let mean = keys as f64 / ids.len() as f64;
    let max = *count.values().max().unwrap() as f64;
    assert!(max / mean <= 1.3, "max/mean {}", max / mean);
    // Each member owns V arcs; a removed member's points go.
    assert_eq!(t.arcs_of(&ids[3]).len(), 256);
    t.forget(&ids[3]);
    assert!(t.arcs_of(&ids[3]).is_empty());
    assert!((0..1000).all(|i| {
        let k = Id::from_name(&format!("k{i}"));
        t.placement(&k, 3).iter().all(|m| m.node.id != ids[3])
    }));
}
