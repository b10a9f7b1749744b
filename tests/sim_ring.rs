//! The Chord engine on the in-memory network: convergence, routing, hop counts,
//! mass failure with replica repair, and churn with packet loss. Seeded and
//! run on virtual time, so every run is identical.

use chordsip::sim::{SimConfig, SimNet};
use chordsip::{Config, Id};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

fn key(i: usize) -> Id {
    Id::from_name(&format!("sip:user{i}@example.com"))
}

/// Nodes that write as one writer (one registrar's servers): they share a
/// writer key, so a write through any of them replaces one through another.
fn one_writer() -> Config {
    Config {
        writer_key: Some([0x42; 32]),
        ..Config::default()
    }
}

/// Whether node `i` holds a live entry labelled `dev` under `k`.
fn holds_dev(net: &SimNet, i: usize, k: &Id) -> bool {
    net.engine(i)
        .store()
        .entries(k, net.now())
        .iter()
        .any(|e| chordsip::owner::split_slot(&e.writer).is_some_and(|(_, label)| label == b"dev"))
}

fn build(n: usize, cfg: &Config, seed: u64) -> SimNet {
    let mut net = SimNet::new(SimConfig {
        seed,
        ..SimConfig::default()
    });
    let ok = net.build_ring(n, cfg, Duration::from_millis(20), Duration::from_secs(300));
    assert!(ok, "ring of {n} did not converge: {:?}", net.check_ring());
    net
}

#[test]
fn thousand_nodes_converge_and_route_correctly() {
    let mut net = build(1000, &Config::default(), 7);
    let check = net.check_ring();
    assert_eq!(check.live, 1000);
    assert!(check.is_correct(), "{check:?}");
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for i in 0..2000 {
        let from = rng.gen_range(0..1000);
        let k = key(i);
        let r = net.lookup(from, k).expect("lookup succeeds");
        assert_eq!(
            Some(r.node),
            net.responsible(&k),
            "lookup {i} from node {from}"
        );
    }
}

/// Mean hops for lookups from random nodes to random keys on a converged ring of n.
fn mean_hops(n: usize, seed: u64, cfg: &Config) -> f64 {
    let mut net = build(n, cfg, seed);
    // Let the finger tables fill in (one finger per 100 ms per node).
    net.run_for(Duration::from_secs(20));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let lookups = 2000;
    let mut total = 0u64;
    for i in 0..lookups {
        let from = rng.gen_range(0..n);
        let k = Id::from_name(&format!("hop-key-{seed}-{i}"));
        let r = net.lookup(from, k).expect("lookup succeeds");
        assert_eq!(Some(r.node), net.responsible(&k));
        total += r.hops as u64;
    }
    total as f64 / lookups as f64
}

/// Chord's own routing (no location cache): ½·log2 N hops.
#[test]
fn hops_grow_like_half_log2_n() {
    let chord_only = Config {
        location_cache: 0,
        ..Config::default()
    };
    let sizes = [64usize, 256, 1024, 4096];
    let means: Vec<f64> = sizes
        .iter()
        .map(|&n| mean_hops(n, n as u64, &chord_only))
        .collect();
    for (n, m) in sizes.iter().zip(&means) {
        let chord = 0.5 * (*n as f64).log2();
        println!("N={n:5} mean hops {m:.3}  (1/2 log2 N = {chord:.2})");
        // Never worse than Chord's 1/2 log2 N (the product target allows +0.5).
        assert!(*m <= chord * 1.15, "N={n}: {m} hops, Chord gives {chord}");
    }
    // Each doubling of N adds half a hop, like 1/2 log2 N: the slope matches within 15%.
    let doublings = (sizes[3] as f64 / sizes[0] as f64).log2();
    let slope = 2.0 * (means[3] - means[0]) / doublings;
    println!("hops added per 4x nodes: {slope:.3} (Chord: 1.0)");
    assert!((0.85..=1.15).contains(&slope), "slope {slope}");
}

/// With the location cache (the default), a node that knows the key's
/// predecessor and its successor asks that successor first. Lookups spread
/// over the ring (about 31 per node at 64 nodes, 2 at 1,024) take fewer hops
/// than Chord alone at 64 and no more at 1,024, and a busy node of an
/// overlay no larger than its cache finds nearly every key in one step.
#[test]
fn the_location_cache_cuts_hops() {
    let chord_only = Config {
        location_cache: 0,
        ..Config::default()
    };
    for n in [64usize, 1024] {
        let seed = 7 + n as u64;
        let plain = mean_hops(n, seed, &chord_only);
        let cached = mean_hops(n, seed, &Config::default());
        println!("N={n:5} mean hops {cached:.3} with the cache, {plain:.3} without");
        if n == 64 {
            assert!(
                cached <= plain * 0.8,
                "N=64: {cached} hops, {plain} without"
            );
        }
        // Where the cache knows little it makes no guess: the same hops as
        // Chord alone, up to the noise of another run (1%).
        assert!(
            cached <= plain * 1.01,
            "N={n}: {cached} hops with the cache, {plain} without"
        );
    }
    // One node of 64 looks up 2,000 keys: the last 1,000 take one step.
    let mut net = build(64, &Config::default(), 71);
    net.run_for(Duration::from_secs(20));
    let mut hops = 0u64;
    for i in 0..2000 {
        let k = Id::from_name(&format!("busy-{i}"));
        let r = net.lookup(0, k).expect("lookup succeeds");
        assert_eq!(Some(r.node), net.responsible(&k), "lookup {i}");
        if i >= 1000 {
            hops += r.hops as u64;
        }
    }
    let busy = hops as f64 / 1000.0;
    println!("a busy node of 64: {busy:.3} hops per lookup");
    assert!(busy <= 1.1, "{busy} hops");
}

/// A cached owner that died: the lookup that probes it still ends at the
/// node now responsible, and once the ring has closed the gap the key is
/// again found in one step, by a probe its new owner confirms.
#[test]
fn a_dead_cached_owner_is_routed_around_and_replaced() {
    let n = 32;
    let mut net = build(n, &Config::default(), 17);
    net.run_for(Duration::from_secs(10));
    let probes = |net: &SimNet| {
        let s = net.engine(0).stats();
        (s.owner_probes, s.owner_probes_confirmed)
    };
    // A key node 0 finds by a confirmed probe of another node.
    let (k, owner) = (0..200)
        .find_map(|i| {
            let k = Id::from_name(&format!("probe-{i}"));
            net.lookup(0, k).unwrap();
            let (_, confirmed) = probes(&net);
            let r = net.lookup(0, k).unwrap();
            (r.hops == 1 && probes(&net).1 > confirmed).then_some((k, r.node))
        })
        .expect("a key found by the owner the cache named");
    let victim = (0..n).find(|&i| net.engine(i).me().id == owner.id).unwrap();
    net.kill(victim);
    let before = probes(&net);
    let r = net.lookup(0, k).expect("lookup succeeds");
    // Node 0's maintenance looks up fingers meanwhile: its probes count too.
    let after = probes(&net);
    assert!(
        after.0 - before.0 > after.1 - before.1,
        "no probe went unconfirmed: the dead owner was not asked ({before:?} -> {after:?})"
    );
    assert_eq!(Some(r.node), net.responsible(&k));
    let repaired = net.run_until(Duration::from_secs(60), Duration::from_secs(1), |s| {
        s.check_ring().is_correct()
    });
    assert!(repaired, "{:?}", net.check_ring());
    net.lookup(0, k).unwrap();
    let before = probes(&net);
    let r = net.lookup(0, k).unwrap();
    assert_eq!(Some(r.node), net.responsible(&k));
    let after = probes(&net);
    assert!(after.1 > before.1, "no probe was confirmed");
    assert_eq!(r.hops, 1, "the new owner is not found in one step");
}

/// Stores `values` entries, crashes `fraction` of the nodes at once, and returns
/// (values that kept a copy, values found after repair, values back at full copies, lost).
fn crash_and_repair(
    n: usize,
    values: usize,
    replicas: usize,
    fraction: f64,
    seed: u64,
) -> (usize, usize, usize, usize) {
    let cfg = Config {
        replicas,
        successors: replicas.max(8),
        ..Config::default()
    };
    let mut net = build(n, &cfg, seed);
    // Predecessor lists grow one node per check round: until they reach as
    // far back as the primaries, the farthest replicas refuse their copies.
    assert!(
        net.run_until(Duration::from_secs(30), Duration::from_millis(100), |n| {
            n.predecessors_complete(replicas)
        })
    );
    for i in 0..values {
        let r = net.put(
            i % n,
            key(i),
            b"dev",
            format!("contact-{i}").as_bytes(),
            1,
            Duration::from_secs(3600),
        );
        assert_eq!(
            r.expect("put succeeds").copies as usize,
            replicas,
            "value {i}"
        );
    }
    for i in 0..values {
        assert_eq!(net.copies(&key(i), b"dev"), replicas);
    }
    // Who holds each value, before the crash.
    let holders: Vec<Vec<usize>> = (0..values)
        .map(|i| (0..n).filter(|&j| holds_dev(&net, j, &key(i))).collect())
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut victims: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        victims.swap(i, rng.gen_range(0..=i));
    }
    victims.truncate((n as f64 * fraction).round() as usize);
    for &v in &victims {
        net.kill(v);
    }
    let survivors: Vec<bool> = (0..values)
        .map(|i| net.copies(&key(i), b"dev") > 0)
        .collect();
    let kept = survivors.iter().filter(|s| **s).count();
    let all_holders_died = holders
        .iter()
        .filter(|h| h.iter().all(|j| victims.contains(j)))
        .count();
    // A value is gone exactly when every node that held it died (its copies
    // were on `replicas` distinct nodes, checked above): with holders dying
    // independently at rate p that is the p^replicas share, nothing more.
    assert_eq!(values - kept, all_holders_died, "copies vanished");
    let repaired = net.run_until(Duration::from_secs(120), Duration::from_secs(1), |s| {
        s.check_ring().is_correct()
    });
    assert!(repaired, "ring not repaired: {:?}", net.check_ring());
    // Replica synchronisation restores the copy count.
    net.run_until(Duration::from_secs(60), Duration::from_secs(1), |s| {
        (0..values).all(|i| !survivors[i] || s.copies(&key(i), b"dev") >= replicas)
    });
    let live = net.live_nodes();
    let mut found = 0;
    let mut full = 0;
    for i in 0..values {
        let from = live[i % live.len()];
        let got = net.get(from, key(i)).expect("get succeeds");
        let ok = got
            .iter()
            .any(|v| v.data == format!("contact-{i}").as_bytes());
        if ok {
            found += 1;
        }
        if survivors[i] {
            assert!(ok, "value {i} kept a live copy but was not found");
        }
        if net.copies(&key(i), b"dev") >= replicas {
            full += 1;
        }
    }
    (kept, found, full, values - kept)
}

#[test]
fn thirty_percent_crash_with_eight_copies_loses_nothing() {
    let (kept, found, full, lost) = crash_and_repair(300, 600, 8, 0.3, 11);
    println!("8 copies: kept {kept} found {found} full {full} lost {lost}");
    assert_eq!(lost, 0);
    assert_eq!(found, 600);
    assert_eq!(full, 600);
}

#[test]
fn thirty_percent_crash_with_three_copies_loses_only_the_p_cubed_share() {
    let values = 1000;
    let (kept, found, full, lost) = crash_and_repair(300, values, 3, 0.3, 13);
    // A value is lost only when all three holders die (crash_and_repair
    // checks exactly that): about 0.3^3 = 2.7% of values on average. One
    // crash's share depends on how the keys fall on this ring (values on the
    // same three nodes go together), so it is reported, not bounded.
    let expected = values as f64 * 0.3f64.powi(3);
    println!(
        "3 copies: kept {kept} found {found} full {full} lost {lost} (p^3 expects {expected:.1})"
    );
    assert_eq!(found, kept, "every value with a surviving copy is found");
    assert_eq!(full, kept, "every surviving value is back at 3 copies");
}

#[test]
fn churn_with_five_percent_loss_keeps_lookups_succeeding() {
    let mut net = build(200, &Config::default(), 21);
    net.set_loss(0.05);
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let (mut ok, mut total, mut correct) = (0u32, 0u32, 0u32);
    let mut events = 0;
    for second in 0..120 {
        // One churn event per second: a crash or a new node joining.
        let live = net.live_nodes();
        if second % 2 == 0 && live.len() > 150 {
            let v = live[rng.gen_range(0..live.len())];
            net.kill(v);
        } else {
            let boot = live[rng.gen_range(0..live.len())];
            let i = net.add_node(Config::default());
            net.start_join(i, &[boot]);
        }
        events += 1;
        // Ten lookups in flight during the second.
        let mut ops = Vec::new();
        for _ in 0..10 {
            let live = net.live_nodes();
            let from = live[rng.gen_range(0..live.len())];
            if net.engine(from).phase() != chordsip::engine::Phase::Joined {
                continue;
            }
            let k = Id::from_name(&format!("churn-{second}-{}", rng.gen::<u32>()));
            ops.push((from, k, net.start_lookup(from, k)));
        }
        net.run_for(Duration::from_secs(1));
        for (from, k, op) in ops {
            let r = net.wait(from, op, Duration::from_secs(10));
            total += 1;
            match r {
                Some(chordsip::engine::OpResult::Lookup(Ok(o))) => {
                    ok += 1;
                    if Some(o.node) == net.responsible(&k) {
                        correct += 1;
                    }
                }
                other => println!(
                    "lookup from {from} failed: {other:?} (alive {})",
                    net.is_alive(from)
                ),
            }
        }
    }
    let rate = ok as f64 / total as f64;
    println!("churn: {events} events, {ok}/{total} lookups succeeded ({:.2}%), {correct} reached the true responsible node", rate * 100.0);
    assert!(rate >= 0.99, "success {rate}");
    assert!(correct as f64 / total as f64 >= 0.95);
}

#[test]
fn graceful_leaves_lose_nothing() {
    let mut net = build(40, &Config::default(), 31);
    for i in 0..300 {
        net.put(i % 40, key(i), b"dev", b"x", 1, Duration::from_secs(3600))
            .unwrap();
    }
    // Half the nodes leave one after another, with no time for replica repair in between.
    for v in 0..20 {
        net.leave(v).expect("leave acknowledged");
        net.run_for(Duration::from_millis(300));
    }
    assert!(
        net.run_until(Duration::from_secs(30), Duration::from_millis(500), |s| s
            .check_ring()
            .is_correct())
    );
    for i in 0..300 {
        let got = net.get(20 + i % 20, key(i)).unwrap();
        assert_eq!(got.len(), 1, "value {i}");
    }
}

#[test]
fn versions_and_removal_across_the_overlay() {
    let mut net = build(20, &one_writer(), 41);
    let k = key(1);
    net.put(0, k, b"phone", b"new", 10, Duration::from_secs(60))
        .unwrap();
    assert_eq!(
        net.put(5, k, b"phone", b"old", 9, Duration::from_secs(60)),
        Err(chordsip::Error::Stale)
    );
    net.put(7, k, b"laptop", b"second", 1, Duration::from_secs(60))
        .unwrap();
    let mut got = net.get(3, k).unwrap();
    got.sort_by(|a, b| a.writer.cmp(&b.writer));
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].data, b"new");
    net.remove(9, k, b"phone", 11).unwrap();
    let got = net.get(12, k).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].writer, b"laptop");
    // Values expire everywhere.
    net.run_for(Duration::from_secs(62));
    assert!(net.get(4, k).unwrap().is_empty());
    assert_eq!(net.copies(&k, b"laptop"), 0);
}

/// Writes that reach a primary in one step leave it in one Replicate per
/// holder (one node signature, one datagram each way), and every write
/// still counts each of its copies.
#[test]
fn writes_of_one_step_share_their_replicates() {
    let cfg = Config {
        replicas: 3,
        ..one_writer()
    };
    let mut net = build(3, &cfg, 43);
    net.run_for(Duration::from_secs(5));
    let me = net.engine(0).me().id;
    let mine: Vec<Id> = (0..2000)
        .map(key)
        .filter(|k| net.responsible(k).is_some_and(|r| r.id == me))
        .take(20)
        .collect();
    assert_eq!(mine.len(), 20, "node 0 is primary for too few keys");
    let sent = net.engine(0).stats().msgs_sent;
    let ops: Vec<_> = mine
        .iter()
        .map(|k| net.start_put(0, *k, b"dev", b"v", 1, Duration::from_secs(600)))
        .collect();
    for op in ops {
        let receipt = net
            .wait(0, op, Duration::from_secs(5))
            .expect("put completes");
        assert_eq!(receipt.into_put().expect("put succeeds").copies, 3);
    }
    let replicates = net.engine(0).stats().msgs_sent - sent;
    // Two holders, one Replicate each; one at a time it would be 40.
    assert!(replicates <= 4, "{replicates} messages for 20 writes");
    for k in &mine {
        assert_eq!(net.copies(k, b"dev"), 3);
    }
}

/// Once two nodes have met, the requests that need a proof carry a pair
/// proof (a MAC under the key the two share) instead of an Ed25519
/// signature, and are accepted as such: signatures are left for first
/// contacts and retransmissions.
#[test]
fn neighbours_prove_their_requests_with_pair_proofs() {
    let cfg = Config {
        replicas: 3,
        ..one_writer()
    };
    let mut net = build(8, &cfg, 47);
    net.run_for(Duration::from_secs(10));
    let before: Vec<_> = (0..8).map(|i| net.engine(i).stats()).collect();
    for i in 0..100 {
        net.put(i % 8, key(i), b"dev", b"v", 1, Duration::from_secs(600))
            .unwrap();
    }
    net.run_for(Duration::from_secs(30));
    let (mut signed, mut paired, mut refused) = (0, 0, 0);
    for (i, b) in before.iter().enumerate() {
        let s = net.engine(i).stats();
        signed += s.signed_requests - b.signed_requests;
        paired += s.paired_requests - b.paired_requests;
        refused += s.dropped_unauthenticated - b.dropped_unauthenticated;
    }
    println!("requests signed {signed}, paired {paired}");
    assert!(paired >= 100, "{paired} paired");
    assert!(signed * 20 <= paired, "{signed} signed, {paired} paired");
    assert_eq!(refused, 0, "a proof was refused");
    for i in 0..100 {
        assert_eq!(net.copies(&key(i), b"dev"), 3, "value {i}");
    }
}

/// A key whose entries do not fit in one datagram is read page by page: every
/// node sees all of them, newest first, also after its primary crashed.
#[test]
fn a_key_larger_than_a_datagram_is_read_whole() {
    let mut cfg = Config {
        max_datagram: 1400,
        ..Config::default()
    };
    cfg.limits.max_value_bytes = 800;
    let mut net = build(12, &cfg, 61);
    let k = key(7);
    let writers = 40;
    for w in 0..writers {
        let data = vec![b'a' + (w % 26) as u8; 700];
        let r = net.put(
            w % 12,
            k,
            format!("dev-{w:02}").as_bytes(),
            &data,
            1 + w as u64,
            Duration::from_secs(600),
        );
        r.expect("put succeeds");
    }
    let check = |net: &mut SimNet, from: usize| {
        let got = net.get(from, k).expect("get succeeds");
        assert_eq!(got.len(), writers, "node {from} read {} entries", got.len());
        let versions: Vec<u64> = got.iter().map(|v| v.version).collect();
        let newest_first: Vec<u64> = (1..=writers as u64).rev().collect();
        assert_eq!(versions, newest_first, "node {from}");
    };
    for from in 0..12 {
        check(&mut net, from);
    }
    let primary = net.responsible(&k).expect("a primary");
    let victim = (0..12)
        .find(|&i| net.engine(i).me().id == primary.id)
        .unwrap();
    net.kill(victim);
    let repaired = net.run_until(Duration::from_secs(60), Duration::from_secs(1), |s| {
        s.check_ring().is_correct()
    });
    assert!(repaired, "{:?}", net.check_ring());
    for from in net.live_nodes() {
        check(&mut net, from);
    }
}

#[test]
fn a_new_node_takes_over_its_keys() {
    let mut net = build(30, &Config::default(), 51);
    for i in 0..500 {
        net.put(i % 30, key(i), b"dev", b"v", 1, Duration::from_secs(3600))
            .unwrap();
    }
    let newcomer = net.add_node(Config::default());
    net.join(newcomer, &[3]).unwrap();
    assert!(
        net.run_until(Duration::from_secs(30), Duration::from_millis(200), |s| s
            .check_ring()
            .is_correct())
    );
    let me = *net.engine(newcomer).me();
    let mine: Vec<usize> = (0..500)
        .filter(|&i| net.responsible(&key(i)) == Some(me))
        .collect();
    assert!(
        !mine.is_empty(),
        "the newcomer is responsible for some keys"
    );
    // The handoff is pushed when the successor adopts the newcomer; allow 3 s.
    net.run_until(Duration::from_secs(3), Duration::from_millis(100), |s| {
        mine.iter().all(|&i| holds_dev(s, newcomer, &key(i)))
    });
    for &i in &mine {
        assert!(
            holds_dev(&net, newcomer, &key(i)),
            "key {i} not handed over"
        );
        assert_eq!(net.get(0, key(i)).unwrap().len(), 1);
    }
    println!("newcomer holds {} primary keys", mine.len());
}

/// A network split into two halves with interleaved ids: each half repairs
/// into a ring of its own and keeps taking writes; after the split heals the
/// two rings merge into one correct ring, every value written on either side
/// is found, and where both sides wrote the same entry the newest version wins.
#[test]
fn split_rings_merge_after_the_network_heals() {
    let n = 24;
    // The nodes write as one writer (one registrar's servers on both sides),
    // so the entry both sides write is one entry and the newer version wins.
    let mut net = build(n, &one_writer(), 71);
    let life = Duration::from_secs(3600);
    for i in 0..50 {
        net.put(i % n, key(i), b"dev", b"before", 1, life).unwrap();
    }
    net.partition(|i| (i % 2) as u32);
    // Each half finds the other half dead and closes its own ring.
    net.run_for(Duration::from_secs(60));
    let side = |i: usize| i % 2;
    for i in 50..150 {
        let from = if i < 100 {
            2 * (i % 12)
        } else {
            2 * (i % 12) + 1
        };
        let r = net.put(
            from,
            key(i),
            b"dev",
            format!("side-{}", side(from)).as_bytes(),
            1,
            life,
        );
        r.unwrap_or_else(|e| panic!("write {i} during the split: {e:?}"));
    }
    // Both sides write the same entry; side 1 with the newer version.
    let shared = Id::from_name("sip:both-sides@example.com");
    net.put(0, shared, b"phone", b"older", 5, life).unwrap();
    net.put(1, shared, b"phone", b"newer", 7, life).unwrap();

    net.heal();
    let merged = net.run_until(Duration::from_secs(120), Duration::from_secs(1), |s| {
        s.check_ring().is_correct()
    });
    assert!(
        merged,
        "the two rings did not merge: {:?}",
        net.check_ring()
    );
    // Replica sync moves each side's writes to the merged ring's holders.
    net.run_for(Duration::from_secs(30));
    let mut rng = ChaCha8Rng::seed_from_u64(71);
    for i in 0..150 {
        let from = rng.gen_range(0..n);
        let got = net.get(from, key(i)).expect("get succeeds");
        assert_eq!(got.len(), 1, "value {i} from node {from}");
        let want: &[u8] = if i < 50 {
            b"before"
        } else if i < 100 {
            b"side-0"
        } else {
            b"side-1"
        };
        assert_eq!(got[0].data, want, "value {i}");
    }
    for from in 0..n {
        let got = net.get(from, shared).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].version, &got[0].data[..]),
            (7, &b"newer"[..]),
            "node {from}"
        );
    }
}

/// Peers that answer lookups with lies (a node not responsible for the key)
/// are caught: lookups still end at the responsible node, and puts and gets
/// still reach it.
#[test]
fn lookups_reach_the_right_node_despite_lying_peers() {
    let n = 40;
    let mut net = build(n, &Config::default(), 81);
    net.run_for(Duration::from_secs(20));
    let liars = [3, 17, 29];
    for &l in &liars {
        net.make_liar(l);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(81);
    for i in 0..1000 {
        let from = loop {
            let f = rng.gen_range(0..n);
            if !liars.contains(&f) {
                break f;
            }
        };
        let k = Id::from_name(&format!("liar-key-{i}"));
        let r = net.lookup(from, k).expect("lookup succeeds");
        assert_eq!(
            Some(r.node),
            net.responsible(&k),
            "lookup {i} from {from}: ring {:?}",
            net.check_ring()
        );
    }
    let caught: u64 = (0..n).map(|i| net.engine(i).stats().wrong_answers).sum();
    assert!(caught > 0, "no lie was ever met: the test proves nothing");
    for i in 0..200 {
        let from = 2 * (i % 10) + 10;
        net.put(from, key(i), b"dev", b"v", 1, Duration::from_secs(600))
            .unwrap_or_else(|e| panic!("put {i}: {e:?}"));
    }
    for i in 0..200 {
        let got = net.get(i % 40 / 2 * 2, key(i)).expect("get succeeds");
        assert_eq!(got.len(), 1, "value {i}");
    }
    println!("lies caught: {caught}");
}

/// Members that hold copies forge them (a newer version with other data under
/// the owner's name) in every read answer, replica push and handoff: every
/// honest node refuses the forgeries and no read ever returns one. A value
/// stored before its primary turned forger is read intact from a replica; one
/// written through a forging primary may be withheld (never forged).
#[test]
fn forged_copies_are_refused_and_never_read() {
    let n = 24;
    let mut net = build(n, &Config::default(), 83);
    net.run_for(Duration::from_secs(20));
    let forgers = [2, 11, 19];
    let honest: Vec<usize> = (0..n).filter(|i| !forgers.contains(i)).collect();
    let put = |net: &mut SimNet, i: usize| {
        let from = honest[i % honest.len()];
        net.put(
            from,
            key(i),
            b"dev",
            b"genuine",
            1,
            Duration::from_secs(600),
        )
        .unwrap_or_else(|e| panic!("put {i}: {e:?}"));
    };
    for i in 0..100 {
        put(&mut net, i);
    }
    net.run_for(Duration::from_secs(5));
    for &f in &forgers {
        net.make_forger(f);
    }
    for i in 100..200 {
        put(&mut net, i);
    }
    // Replica sync and handoffs run: forgers push their forgeries.
    net.run_for(Duration::from_secs(30));
    let (mut intact, mut withheld) = (0, 0);
    for i in 0..200 {
        let from = honest[(i * 7) % honest.len()];
        let got = net.get(from, key(i)).expect("get succeeds");
        assert!(
            got.iter().all(|v| v.data == b"genuine"),
            "value {i}: {got:?}"
        );
        if got.len() == 1 {
            intact += 1;
            continue;
        }
        let primary = net.responsible(&key(i)).unwrap();
        let forging_primary = forgers.iter().any(|&f| net.engine(f).me().id == primary.id);
        assert!(i >= 100 && forging_primary, "value {i} lost");
        withheld += 1;
    }
    for &h in &honest {
        for k in (0..200).map(key) {
            for e in net.engine(h).store().entries(&k, net.now()) {
                assert_ne!(&*e.data, b"forged", "node {h} stored a forgery of {k:?}");
            }
        }
    }
    let refused: u64 = honest
        .iter()
        .map(|&i| net.engine(i).stats().forged_entries)
        .sum();
    println!("forgeries refused: {refused}; values read intact {intact}, withheld by a forging primary {withheld}");
    assert!(
        refused > 0,
        "no forgery was ever met: the test proves nothing"
    );
}

/// 20% of datagrams lost and 50 ms one-way delay on every path (what the
/// netns test asks of tc netem): lookups from every node still succeed
/// (at least 99%) and end at the responsible node, as do puts and gets.
#[test]
fn lookups_survive_heavy_loss_and_delay() {
    // On links this lossy a peer misses 4 answers in a row about 2% of the
    // time: more retransmissions before declaring it dead (rpc_retries).
    // Lookups get 8 s, as the netns test gives them.
    let cfg = Config {
        rpc_retries: 6,
        op_timeout: Duration::from_secs(8),
        ..Config::default()
    };
    let mut lossy = build(32, &cfg, 91);
    lossy.run_for(Duration::from_secs(20));
    lossy.set_loss(0.2);
    lossy.set_delay(Duration::from_millis(50), Duration::from_millis(50));
    lossy.run_for(Duration::from_secs(30));
    let mut rng = ChaCha8Rng::seed_from_u64(91);
    let (mut ok, mut correct, total) = (0, 0, 500);
    for i in 0..total {
        let from = rng.gen_range(0..32);
        let k = Id::from_name(&format!("lossy-{i}"));
        match lossy.lookup(from, k) {
            Ok(r) => {
                ok += 1;
                correct += (Some(r.node) == lossy.responsible(&k)) as usize;
            }
            Err(e) => println!("lookup {i} from {from}: {e:?}"),
        }
    }
    println!("20% loss, 50 ms delay: {ok} of {total} lookups succeeded, {correct} correct");
    assert!(ok * 100 >= total * 99, "{ok} of {total} lookups succeeded");
    // Under this much loss a node's neighbours can be briefly wrong, and a
    // lookup checked against them with it: a few may end one node off.
    assert!(correct * 100 >= total * 98, "{correct} of {total} correct");
    // Puts and gets under the same loss (each a lookup and a store or fetch
    // with its replication): measured 98.5% and 99%; at least 97% must go
    // through (the 99% asked for lookups is not reached by writes yet).
    let stored: Vec<usize> = (0..200)
        .filter(|&i| {
            lossy
                .put(i % 32, key(i), b"dev", b"v", 1, Duration::from_secs(600))
                .is_ok()
        })
        .collect();
    let found = stored
        .iter()
        .filter(|&&i| lossy.get((i + 7) % 32, key(i)).is_ok_and(|v| v.len() == 1))
        .count();
    println!("{} of 200 puts, {found} of them read back", stored.len());
    assert!(
        stored.len() >= 194,
        "{} of 200 puts succeeded",
        stored.len()
    );
    assert!(
        found * 100 >= stored.len() * 97,
        "{found} of {} read back",
        stored.len()
    );
}

/// A client's REGISTER (ClientTransaction) sent to `via` from `client`; the
/// body of the node's answer.
fn client_register(
    net: &mut SimNet,
    codec: &chordsip::wire::Codec,
    client: std::net::SocketAddr,
    via: usize,
    rid: u64,
    request: Vec<u8>,
) -> chordsip::wire::Body {
    use chordsip::wire::{Body, Message, FLAG_CLIENT, FLAG_RESPONSE};
    let mut msg = Message {
        flags: FLAG_CLIENT,
        overlay: codec.overlay(),
        request_id: rid,
        timestamp_ms: 1_700_000_000_000 + net.now() / 1000,
        sender: Id::from_name("a client"),
        receiver: Id::ZERO,
        cookie: 0,
        body: Body::ClientTransaction { request },
    };
    net.send_raw(client, via, codec.encode(&msg).unwrap());
    // Polled in small steps: 10 s of virtual time, longer than any deadline.
    for _ in 0..2000 {
        for data in net.take_mail(&client) {
            let m = codec.decode(&data).unwrap();
            if m.request_id != rid || m.flags & FLAG_RESPONSE == 0 {
                continue;
            }
            if m.body != Body::Retry {
                return m.body;
            }
            // Proof that we receive here: ask again with the node's cookie.
            msg.cookie = m.cookie;
            msg.receiver = m.sender;
            msg.timestamp_ms = 1_700_000_000_000 + net.now() / 1000;
            net.send_raw(client, via, codec.encode(&msg).unwrap());
        }
        net.run_for(Duration::from_millis(5));
    }
    panic!("no answer to client request {rid}");
}

/// REGISTERs that client handles ask nodes to run (read, plan, parallel
/// writes, undo on failure) give registrar results through any node. The
/// run is seeded: its summed statistics are printed to compare the engine
/// before and after a change that must not alter behaviour.
#[test]
fn client_registers_run_on_nodes_all_or_nothing() {
    use chordsip::sip::binding::{ContactSpec, RegisterError, RegisterRequest};
    use chordsip::sip::remote::{decode_outcome, encode_request, Outcome};
    use chordsip::wire::{Body, Codec, Status};
    let mut cfg = one_writer();
    // Room for 4 entries per key: a fifth binding fails at its primary and
    // the REGISTER's other writes are undone.
    cfg.limits.max_entries_per_key = 4;
    cfg.transactions = Some(chordsip::sip::remote::transactions());
    cfg.client_key = Some(b"sim-client-credential".to_vec());
    let mut net = build(16, &cfg, 101);
    let codec =
        Codec::new(&cfg.overlay, None, cfg.max_datagram).with_client_key(cfg.client_key.as_deref());
    let client: std::net::SocketAddr = "127.200.0.1:5555".parse().unwrap();
    net.open_mailbox(client);
    let req = |user: usize, call: &str, cseq: u32, contacts: Vec<ContactSpec>| RegisterRequest {
        to: format!("sip:user{user}@example.com"),
        call_id: call.into(),
        cseq,
        contacts,
        ..RegisterRequest::default()
    };
    let contact = |user: usize, n: usize| ContactSpec {
        uri: format!("sip:user{user}@192.0.2.{n}"),
        expires: Some(300),
        ..ContactSpec::default()
    };
    let mut rid = 0;
    let mut run = |net: &mut SimNet, via: usize, r: &RegisterRequest| {
        rid += 1;
        match client_register(net, &codec, client, via, rid, encode_request(r)) {
            Body::ClientTransactionReply { status, outcome } => (status, decode_outcome(&outcome)),
            other => panic!("{other:?}"),
        }
    };
    let done = |o: Option<Outcome>| match o {
        Some(Outcome::Done { plan, listed: true }) => plan,
        other => panic!("{other:?}"),
    };
    for u in 0..60 {
        let (status, o) = run(&mut net, u % 16, &req(u, "a", 1, vec![contact(u, 1)]));
        assert_eq!(status, Status::Ok);
        let p = done(o);
        assert_eq!((p.inserted, p.result.len()), (1, 1), "user {u}");
    }
    // A second device through another node: both bindings listed.
    for u in 0..30 {
        let (_, o) = run(&mut net, (u + 5) % 16, &req(u, "b", 1, vec![contact(u, 2)]));
        let p = done(o);
        assert_eq!((p.inserted, p.result.len()), (1, 2), "user {u}");
    }
    // Unregister everything of 10 users.
    for u in 0..10 {
        let mut r = req(u, "a", 2, vec![]);
        r.star = true;
        r.expires = Some(0);
        let (_, o) = run(&mut net, (u + 9) % 16, &r);
        assert_eq!(done(o).deleted, 2, "user {u}");
    }
    // Too brief: refused before anything is written.
    let mut brief = req(70, "c", 1, vec![contact(70, 1)]);
    brief.contacts[0].expires = Some(5);
    let (_, o) = run(&mut net, 3, &brief);
    assert_eq!(
        o,
        Some(Outcome::Refused(RegisterError::IntervalTooBrief(60)))
    );
    // Five bindings where a key holds four: all or nothing.
    let five: Vec<ContactSpec> = (1..=5).map(|n| contact(80, n)).collect();
    let (status, _) = run(&mut net, 4, &req(80, "d", 1, five));
    assert_eq!(status, Status::Full);
    let k80 = Id::from_name("sip:user80@example.com");
    net.run_for(Duration::from_secs(2));
    assert!(
        net.get(0, k80).unwrap().is_empty(),
        "the refused REGISTER left bindings"
    );
    // Not a request at all.
    rid += 1;
    let body = client_register(&mut net, &codec, client, 2, rid, b"junk".to_vec());
    assert_eq!(
        body,
        Body::Error {
            status: Status::BadRequest
        }
    );
    // What the overlay holds: users 10..30 two bindings, 30..60 one, 0..10 none.
    for (u, want) in [(0, 0), (9, 0), (10, 2), (29, 2), (30, 1), (59, 1)] {
        let k = Id::from_name(&format!("sip:user{u}@example.com"));
        assert_eq!(net.get((u + 7) % 16, k).unwrap().len(), want, "user {u}");
    }
    let mut t = chordsip::Stats::default();
    for i in 0..net.len() {
        let s = net.engine(i).stats();
        t.msgs_sent += s.msgs_sent;
        t.bytes_sent += s.bytes_sent;
        t.puts_ok += s.puts_ok;
        t.puts_failed += s.puts_failed;
        t.gets_ok += s.gets_ok;
        t.lookups_ok += s.lookups_ok;
        t.retransmits += s.retransmits;
        t.stored_entries += s.stored_entries;
    }
    println!(
        "seeded client registers: msgs_sent {} bytes_sent {} puts_ok {} puts_failed {} gets_ok {} lookups_ok {} retransmits {} stored_entries {} delivered {} now_us {}",
        t.msgs_sent, t.bytes_sent, t.puts_ok, t.puts_failed, t.gets_ok, t.lookups_ok, t.retransmits, t.stored_entries, net.delivered, net.now()
    );
}

/// The real-process scenario of tests/cli_processes.rs on virtual time:
/// eight nodes, values at three copies, a graceful leave, then three nodes
/// killed one after another. Before each kill, within a bounded time, every
/// value is back at three copies and no predecessor list names a dead node.
/// (A ring of five with predecessor lists of five used to pass a dead node
/// on from list to list for ever in the slot the wrap left free; the replica
/// behind it then refused the copies of the range the dead node had.)
#[test]
fn small_ring_restores_three_copies_after_each_kill() {
    let values = 120;
    for seed in 1..=12u64 {
        let mut net = build(8, &Config::default(), seed);
        assert!(
            net.run_until(Duration::from_secs(30), Duration::from_millis(100), |n| {
                n.predecessors_complete(3)
            })
        );
        for i in 0..values {
            let r = net.put(i % 8, key(i), b"dev", b"x", 1, Duration::from_secs(3600));
            assert_eq!(r.expect("put succeeds").copies, 3, "value {i}");
        }
        net.leave(7).expect("leave acknowledged");
        for victim in [Some(2usize), Some(4), Some(5), None] {
            let short = |s: &SimNet| {
                (0..values)
                    .filter(|&i| s.copies(&key(i), b"dev") < 3)
                    .count()
            };
            let dead_listed = |s: &SimNet| {
                let live: Vec<usize> = s.live_nodes();
                let ids: Vec<Id> = live.iter().map(|&i| s.engine(i).me().id).collect();
                live.iter()
                    .filter(|&&i| {
                        let preds = s.engine(i).routing().predecessors();
                        preds.iter().any(|p| !ids.contains(&p.id))
                    })
                    .count()
            };
            let ok = net.run_until(Duration::from_secs(20), Duration::from_millis(250), |s| {
                short(s) == 0 && dead_listed(s) == 0
            });
            assert!(
                ok,
                "seed {seed}, before killing {victim:?}: {} values short of 3 copies, \
                 {} nodes list a dead predecessor",
                short(&net),
                dead_listed(&net)
            );
            if let Some(v) = victim {
                net.kill(v);
            }
        }
    }
}

/// A counter in one slot: each transaction reads it and writes it plus one.
struct Increment(Id);

impl chordsip::types::Transaction for Increment {
    fn key(&self) -> Id {
        self.0
    }
    fn plan(
        &mut self,
        mine: &[chordsip::Value],
        _limit: Option<usize>,
    ) -> Option<Vec<chordsip::types::SlotWrite>> {
        let n: u64 = mine
            .iter()
            .find(|v| v.writer == b"count")
            .and_then(|v| std::str::from_utf8(&v.data).ok()?.parse().ok())
            .unwrap_or(0);
        Some(vec![chordsip::types::SlotWrite {
            label: b"count".to_vec(),
            value: Some(((n + 1).to_string().into_bytes(), Duration::from_secs(600))),
        }])
    }
    fn reply(&self, _budget: usize) -> Vec<u8> {
        Vec::new()
    }
}

/// Transactions on one key, started at once at one node, run one after
/// another: each reads what the one before wrote, so 200 increments count
/// to 200. A long queue that fails at once (the node leaves) drains
/// without a deep recursion, and every caller gets its answer.
#[test]
fn transactions_on_one_key_queue_and_drain() {
    let mut net = build(4, &one_writer(), 41);
    let k = key(4242);
    let ops: Vec<_> = (0..200)
        .map(|_| net.start_transaction(0, Box::new(Increment(k))))
        .collect();
    for op in ops {
        let r = net.wait(0, op, Duration::from_secs(60)).expect("an answer");
        assert_eq!(r.into_transaction(), Ok(()));
    }
    let count = net.get(2, k).unwrap();
    let count: Vec<_> = count.iter().filter(|v| v.writer == b"count").collect();
    assert_eq!(count.len(), 1);
    assert_eq!(count[0].data, b"200");

    // 20,000 queued behind a running one, then the node leaves: the running
    // one fails or ends, and the rest fail at once, one after another.
    let ops: Vec<_> = (0..20_000)
        .map(|_| net.start_transaction(1, Box::new(Increment(k))))
        .collect();
    let _ = net.leave(1);
    let mut failed = 0;
    for op in ops {
        if net
            .wait(1, op, Duration::from_secs(60))
            .expect("an answer")
            .into_transaction()
            .is_err()
        {
            failed += 1;
        }
    }
    assert!(failed >= 19_999, "{failed}");
}
