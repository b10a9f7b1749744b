//! One-hop routing (hybrid overlays) on the in-memory network: every member
//! learns the full membership, lookups take one hop, a stale table only
//! falls back to Chord routing, failures and leaves reach every table, and a
//! node of the other routing mode is refused at join with a clear error.

use chordsip::config::RoutingMode;
use chordsip::sim::{SimConfig, SimNet};
use chordsip::{Config, Error, Id};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::time::Duration;

fn one_hop() -> Config {
    Config {
        routing: RoutingMode::OneHop,
        ..Config::default()
    }
}

fn key(i: usize) -> Id {
    Id::from_name(&format!("sip:user{i}@example.com"))
}

fn build(n: usize, cfg: &Config, seed: u64, loss: f64) -> SimNet {
    let mut net = SimNet::new(SimConfig {
        seed,
        loss,
        ..SimConfig::default()
    });
    let ok = net.build_ring(n, cfg, Duration::from_millis(20), Duration::from_secs(300));
    assert!(ok, "ring of {n} did not converge: {:?}", net.check_ring());
    net
}

/// Live nodes whose table differs from the set of live nodes.
fn stale_tables(net: &SimNet) -> usize {
    let live: BTreeSet<Id> = net
        .live_nodes()
        .iter()
        .map(|&i| net.engine(i).me().id)
        .collect();
    net.live_nodes()
        .iter()
        .filter(|&&i| {
            let table: BTreeSet<Id> = net.engine(i).members().iter().map(|m| m.node.id).collect();
            table != live
        })
        .count()
}

fn wait_tables(net: &mut SimNet, max: Duration) -> bool {
    net.run_until(max, Duration::from_millis(250), |s| stale_tables(s) == 0)
}

/// Mean hops of `count` lookups from random nodes; every answer checked.
fn lookups(net: &mut SimNet, count: usize, seed: u64) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let live = net.live_nodes();
    let mut hops = 0u64;
    for i in 0..count {
        let from = live[rng.gen_range(0..live.len())];
        let k = key(i + seed as usize * 100_000);
        let r = net.lookup(from, k).expect("lookup succeeds");
        assert_eq!(Some(r.node), net.responsible(&k), "lookup {i} from {from}");
        hops += r.hops as u64;
    }
    hops as f64 / count as f64
}

#[test]
fn every_member_learns_the_whole_overlay_and_lookups_take_one_hop() {
    let n = 1000;
    let mut net = build(n, &one_hop(), 11, 0.0);
    assert!(
        wait_tables(&mut net, Duration::from_secs(60)),
        "{} of {n} tables still incomplete",
        stale_tables(&net)
    );
    let mean = lookups(&mut net, 2000, 1);
    println!("one-hop, {n} members: mean hops {mean:.3}");
    assert!(mean <= 1.05, "mean hops {mean}");

    // Upkeep with one membership change per second (a crash or a join, in
    // turn): the bytes each member sends for its table, and in all.
    let (table, all) = net.upkeep_under_churn(30, &one_hop());
    println!(
        "one-hop, {n} members, 1 change/s: {table:.0} B/s per member for the table, {all:.0} B/s in all"
    );
    assert!(table < 1024.0, "table upkeep {table:.0} B/s");
    assert!(wait_tables(&mut net, Duration::from_secs(30)));
}

#[test]
fn crashes_and_leaves_reach_every_table_and_lookups_stay_correct() {
    let n = 120;
    let mut net = build(n, &one_hop(), 5, 0.0);
    assert!(wait_tables(&mut net, Duration::from_secs(30)));
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut live = net.live_nodes();
    for _ in 0..10 {
        let victim = live.remove(rng.gen_range(0..live.len()));
        net.kill(victim);
    }
    for _ in 0..10 {
        let leaver = live.remove(rng.gen_range(0..live.len()));
        net.leave(leaver).expect("graceful leave");
    }
    // Right after the failures, before the tables caught up, lookups still
    // answer correctly (falling back to Chord routing where needed).
    let mean = lookups(&mut net, 300, 2);
    assert!(mean < 2.0, "mean hops {mean}");
    assert!(
        wait_tables(&mut net, Duration::from_secs(30)),
        "{} tables still list dead or departed members",
        stale_tables(&net)
    );
    let mean = lookups(&mut net, 500, 3);
    assert!(mean <= 1.05, "mean hops {mean}");
}

#[test]
fn tables_converge_under_loss_and_newcomers_are_found_at_once() {
    let n = 60;
    let mut net = build(n, &one_hop(), 21, 0.05);
    assert!(
        wait_tables(&mut net, Duration::from_secs(60)),
        "{} tables incomplete under 5% loss",
        stale_tables(&net)
    );
    // A newcomer: its keys are found at once, by table or by fallback.
    let boot = net.live_nodes()[0];
    let i = net.add_node(one_hop());
    net.join(i, &[boot]).expect("join");
    let mean = lookups(&mut net, 200, 4);
    assert!(mean < 1.5, "mean hops {mean}");
    assert!(wait_tables(&mut net, Duration::from_secs(30)));
}

#[test]
fn a_node_of_the_other_mode_is_refused_at_join_with_a_clear_error() {
    let mut net = build(5, &one_hop(), 3, 0.0);
    let boot = net.live_nodes()[0];
    let i = net.add_node(Config::default());
    match net.join(i, &[boot]) {
        Err(Error::ModeMismatch(msg)) => {
            assert!(msg.contains("routing=multi-hop"), "{msg}");
            assert!(msg.contains("another mode"), "{msg}");
        }
        other => panic!("a multi-hop node joined a one-hop overlay: {other:?}"),
    }
    let mut net = build(5, &Config::default(), 4, 0.0);
    let boot = net.live_nodes()[0];
    let i = net.add_node(one_hop());
    match net.join(i, &[boot]) {
        Err(Error::ModeMismatch(msg)) => assert!(msg.contains("routing=one-hop"), "{msg}"),
        other => panic!("a one-hop node joined a multi-hop overlay: {other:?}"),
    }
    // Nothing of it reached the ring.
    assert_eq!(net.check_ring().live, 5);
}

#[test]
fn a_member_wrongly_reported_dead_comes_back_as_a_new_incarnation() {
    let n = 30;
    let mut net = build(n, &one_hop(), 8, 0.0);
    assert!(wait_tables(&mut net, Duration::from_secs(30)));
    // Cut one member off for long enough to be declared failed, then heal.
    let victim = net.live_nodes()[7];
    net.partition(|i| if i == victim { 1 } else { 0 });
    let gone = net.run_until(Duration::from_secs(30), Duration::from_millis(250), |s| {
        let id = s.engine(victim).me().id;
        s.live_nodes()
            .iter()
            .filter(|&&i| i != victim)
            .all(|&i| s.engine(i).members().iter().all(|m| m.node.id != id))
    });
    assert!(gone, "the cut-off member stayed in some tables");
    net.heal();
    assert!(
        wait_tables(&mut net, Duration::from_secs(60)),
        "{} tables did not take the member back",
        stale_tables(&net)
    );
}

fn with_points(v: usize) -> Config {
    Config {
        routing: RoutingMode::OneHop,
        virtual_nodes: v,
        writer_key: Some([0x42; 32]),
        ..Config::default()
    }
}

/// The holders of `key` by the union of the live members' records.
fn holders(net: &SimNet, key: &Id, v: usize, count: usize) -> Vec<Id> {
    use chordsip::membership::Membership;
    use chordsip::wire::MemberChange;
    let mut t = Membership::with_virtual_nodes(v);
    let i = net.live_nodes()[0];
    for m in net.engine(i).members() {
        t.apply(&MemberChange::Up(m), 0);
    }
    t.placement(key, count).iter().map(|m| m.node.id).collect()
}

/// Runs until every one of the first `keys` keys has 3 copies again (two
/// minutes at most, else fails saying how many do not, `after` what);
/// returns the seconds it took.
fn wait_three_copies(net: &mut SimNet, keys: usize, after: &str) -> f64 {
    let short = |net: &SimNet| {
        (0..keys)
            .filter(|&i| net.copies(&key(i), b"dev") < 3)
            .count()
    };
    let t = net.now();
    let restored = net.run_until(Duration::from_secs(120), Duration::from_secs(1), |s| {
        short(s) == 0
    });
    assert!(
        restored,
        "{} of {keys} keys below 3 copies after {after}",
        short(net)
    );
    (net.now() - t) as f64 / 1e6
}

#[test]
fn virtual_points_even_out_the_shares_and_lose_nothing_to_crashes_and_leaves() {
    let (n, v, keys) = (24, 256, 20_000);
    let mut net = build(n, &with_points(v), 13, 0.0);
    assert!(wait_tables(&mut net, Duration::from_secs(30)));
    let live = net.live_nodes();
    for i in 0..keys {
        let from = live[i % live.len()];
        let r = net
            .put(
                from,
                key(i),
                b"dev",
                b"contact",
                1,
                Duration::from_secs(3600),
            )
            .expect("put");
        assert_eq!(r.copies, 3, "put {i}");
    }
    // Each key's primary is the owner of the point after it, and every
    // holder has a copy.
    for i in (0..keys).step_by(70) {
        let k = key(i);
        let want = holders(&net, &k, v, 3);
        let from = live[(i * 5) % live.len()];
        let r = net.lookup(from, k).expect("lookup");
        assert_eq!(r.node.id, want[0], "lookup {i}");
        assert!(r.hops <= 1, "lookup {i} took {} hops", r.hops);
    }
    // The shares: primary entries per member.
    let mut shares: Vec<u64> = live
        .iter()
        .map(|&i| net.engine(i).stats().primary_entries)
        .collect();
    shares.sort();
    let mean = keys as f64 / n as f64;
    let max = *shares.last().unwrap() as f64;
    println!(
        "virtual points {v}, {n} members: max/mean {:.2}",
        max / mean
    );
    assert!(max / mean <= 1.3, "max/mean {:.2}: {shares:?}", max / mean);

    // Two crashes at once (three would take every copy of the keys those
    // three alone hold, 1 in 2,024 with 3 copies), one more once repaired,
    // then two graceful leaves: every key back at 3 copies and readable.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut live = net.live_nodes();
    for round in [2usize, 1] {
        for _ in 0..round {
            let victim = live.remove(rng.gen_range(0..live.len()));
            net.kill(victim);
        }
        assert!(wait_tables(&mut net, Duration::from_secs(30)));
        let took = wait_three_copies(&mut net, keys, &format!("{round} crash(es)"));
        println!("{round} crash(es): 3 copies again after {took:.0} s");
    }
    for _ in 0..2 {
        let leaver = live.remove(rng.gen_range(0..live.len()));
        net.leave(leaver).expect("leave");
    }
    assert!(wait_tables(&mut net, Duration::from_secs(30)));
    wait_three_copies(&mut net, keys, "the leaves");
    for i in (0..keys).step_by(97) {
        let from = live[i % live.len()];
        let got = net.get(from, key(i)).expect("get");
        assert_eq!(got.len(), 1, "key {i}");
    }
}

#[test]
fn members_that_place_keys_differently_are_kept_out() {
    let mut net = build(4, &with_points(256), 17, 0.0);
    assert!(wait_tables(&mut net, Duration::from_secs(30)));
    let boot = net.live_nodes()[0];
    let odd = net.add_node(with_points(64));
    net.join(odd, &[boot]).expect("the ring itself takes it");
    net.run_for(Duration::from_secs(10));
    let odd_id = net.engine(odd).me().id;
    let others: Vec<usize> = net.live_nodes().into_iter().filter(|&i| i != odd).collect();
    for &i in &others {
        assert!(net.engine(i).members().iter().all(|m| m.node.id != odd_id));
    }
    // The odd one refused the others' records (and logged why): its table
    // holds only itself, so it announces itself to nobody.
    assert_eq!(net.engine(odd).members().len(), 1);
    assert!(net.engine(odd).stats().refused_membership > 0);
}

#[test]
fn with_virtual_points_a_newcomer_and_loss_fail_no_write_and_no_read() {
    let (n, v, keys) = (20, 256, 2000);
    let mut net = build(n, &with_points(v), 29, 0.0);
    net.set_loss(0.05);
    assert!(wait_tables(&mut net, Duration::from_secs(60)));
    let live = net.live_nodes();
    for i in 0..keys {
        net.put(
            live[i % n],
            key(i),
            b"dev",
            b"contact",
            1,
            Duration::from_secs(3600),
        )
        .unwrap_or_else(|e| panic!("put {i}: {e:?}"));
    }
    // A newcomer: before any table knows it, and while they learn of it,
    // every write and read still succeeds (the new primaries pull their
    // keys from the other holders).
    let boot = live[3];
    let newcomer = net.add_node(with_points(v));
    net.join(newcomer, &[boot]).expect("join");
    let mut everyone = net.live_nodes();
    everyone.push(newcomer);
    for i in 0..keys {
        let from = everyone[(i * 7) % everyone.len()];
        if i % 2 == 0 {
            let got = net
                .get(from, key(i))
                .unwrap_or_else(|e| panic!("get {i}: {e:?}"));
            assert_eq!(got.len(), 1, "get {i} from {from}");
        } else {
            net.put(
                from,
                key(i),
                b"dev",
                b"contact2",
                2,
                Duration::from_secs(3600),
            )
            .unwrap_or_else(|e| panic!("put {i}: {e:?}"));
        }
    }
    assert!(wait_tables(&mut net, Duration::from_secs(60)));
    wait_three_copies(&mut net, keys, "a newcomer joined under loss");
    // The newcomer holds its share as primary.
    assert!(net.engine(newcomer).stats().primary_entries > 0);
}
