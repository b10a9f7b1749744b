//! The registrar over a real overlay: REGISTER at one node, lookups from
//! another node and from a client handle, refresh, unregister, `*`, expiry.

use chordsip::sip::binding::{ContactSpec, RegisterError, RegisterRequest, RegistrarLimits};
use chordsip::sip::registrar::{lookup, lookup_trusting, register, RegistrarError, Trust};
use chordsip::testnet::{wait_until, Testnet};
use chordsip::{Config, Id};
use std::time::Duration;

fn contact(uri: &str, q: Option<&str>, expires: Option<u32>) -> ContactSpec {
    ContactSpec {
        uri: uri.into(),
        q: q.map(String::from),
        expires,
        ..ContactSpec::default()
    }
}

/// Nodes that act as one registrar: they share a writer key, so a REGISTER
/// through any of them may change the bindings stored through another.
fn one_registrar() -> Config {
    Config {
        writer_key: Some([0x42; 32]),
        ..Config::default()
    }
}

/// A node's store that does not tell the registrar its value limit, as a
/// store in front of some other overlay might not.
struct NoLimit<'a>(&'a chordsip::Node);

impl chordsip::sip::registrar::DictStore for NoLimit<'_> {
    fn dict_get(&mut self, key: Id) -> chordsip::Result<Vec<chordsip::Value>> {
        self.0.get(key)
    }
    fn dict_put(
        &mut self,
        key: Id,
        writer: &[u8],
        data: &[u8],
        lifetime: Duration,
    ) -> chordsip::Result<chordsip::StoreReceipt> {
        self.0.put(key, writer, data, lifetime)
    }
    fn dict_remove(&mut self, key: Id, writer: &[u8]) -> chordsip::Result<chordsip::StoreReceipt> {
        self.0.remove(key, writer)
    }
    fn owner(&mut self) -> chordsip::Result<chordsip::owner::Owner> {
        self.0.owner()
    }
}

#[test]
fn register_lookup_refresh_unregister_and_expire() {
    let net = Testnet::new(5, &one_registrar(), Duration::from_secs(20)).unwrap();
    let limits = RegistrarLimits {
        min_expires: 1,
        ..RegistrarLimits::default()
    };
    let (a, b) = (&net.nodes[0], &net.nodes[3]);
    let mut client = net.client(1).unwrap();

    // Two devices of one AOR, written with different spellings of the AOR.
    let r1 = RegisterRequest {
        to: "sip:Alice@Example.COM:5060;transport=udp".into(),
        call_id: "call-1".into(),
        cseq: 1,
        contacts: vec![contact("sip:alice@192.0.2.1:5060", Some("0.5"), None)],
        ..RegisterRequest::default()
    };
    let p = register(&mut &*a, &r1, &limits).unwrap();
    assert_eq!((p.inserted, p.result.len()), (1, 1));
    let r2 = RegisterRequest {
        to: "sips:Alice@example.com".into(),
        call_id: "call-2".into(),
        cseq: 7,
        contacts: vec![contact("sip:alice@192.0.2.2:5062", Some("1.0"), Some(600))],
        ..RegisterRequest::default()
    };
    let p = client.register(&r2).unwrap();
    assert_eq!(p.result.len(), 2, "the 200 OK lists both devices");

    // Lookups from another node and from the client: both bindings, q order.
    for list in [
        lookup(&mut &*b, "sip:Alice@example.com").unwrap(),
        lookup(&mut client, "sip:Alice@EXAMPLE.com;user=phone").unwrap(),
    ] {
        let contacts: Vec<&str> = list.iter().map(|(b, _)| b.contact.as_str()).collect();
        assert_eq!(
            contacts,
            ["sip:alice@192.0.2.2:5062", "sip:alice@192.0.2.1:5060"]
        );
        assert!(list[0].1 > 590 && list[0].1 <= 600);
    }
    // User parts are case-sensitive: another AOR.
    assert!(lookup(&mut &*b, "sip:alice@example.com")
        .unwrap()
        .is_empty());

    // An older CSeq of the same Call-ID is refused and changes nothing.
    let mut stale = r2.clone();
    stale.cseq = 6;
    stale.contacts = vec![contact("sip:alice@192.0.2.2:5062", None, Some(0))];
    assert_eq!(
        register(&mut &*b, &stale, &limits),
        Err(RegistrarError::Request(RegisterError::OutOfOrder))
    );
    assert_eq!(lookup(&mut &*a, "sip:Alice@example.com").unwrap().len(), 2);

    // Unregister one contact, then everything with '*'.
    let mut un = r2.clone();
    un.cseq = 8;
    un.contacts = vec![contact("sip:alice@192.0.2.2:5062", None, Some(0))];
    assert_eq!(register(&mut &*b, &un, &limits).unwrap().deleted, 1);
    assert_eq!(
        lookup(&mut client, "sip:Alice@example.com").unwrap().len(),
        1
    );
    let star = RegisterRequest {
        to: "sip:Alice@example.com".into(),
        call_id: "call-3".into(),
        cseq: 1,
        star: true,
        expires: Some(0),
        ..RegisterRequest::default()
    };
    assert_eq!(register(&mut &*a, &star, &limits).unwrap().deleted, 1);
    assert!(lookup(&mut &*b, "sip:Alice@example.com")
        .unwrap()
        .is_empty());

    // A binding with a 2 s lifetime vanishes from every node by itself.
    let short = RegisterRequest {
        to: "sip:bob@example.com".into(),
        call_id: "call-4".into(),
        cseq: 1,
        contacts: vec![contact("sip:bob@192.0.2.9", None, Some(2))],
        ..RegisterRequest::default()
    };
    register(&mut &*a, &short, &limits).unwrap();
    assert_eq!(lookup(&mut &*b, "sip:bob@example.com").unwrap().len(), 1);
    assert!(wait_until(Duration::from_secs(6), || net.nodes.iter().all(
        |n| lookup(&mut &*n, "sip:bob@example.com").unwrap().is_empty()
    )));

    // Malformed AORs are request errors, not overlay errors.
    assert!(matches!(
        lookup(&mut client, "mailto:bob@example.com"),
        Err(RegistrarError::Request(RegisterError::Bad(_)))
    ));
}

/// A REGISTER whose later write the overlay refuses leaves the AOR as it was
/// (RFC 3261 §10.3 step 8): checked up front on a node, undone on a client
/// handle (which cannot know the node's value limit before writing).
#[test]
fn a_refused_register_changes_nothing() {
    let mut cfg = Config {
        max_datagram: 1400,
        ..one_registrar()
    };
    cfg.limits.max_value_bytes = 800;
    let net = Testnet::new(3, &cfg, Duration::from_secs(20)).unwrap();
    let limits = RegistrarLimits::default();
    // A store that does not know the overlay's value limit: the node
    // refuses the oversized write, and the writes before it are undone.
    let mut client = NoLimit(&net.nodes[1]);
    let aor = "sip:carol@example.com";
    let first = RegisterRequest {
        to: aor.into(),
        call_id: "c-1".into(),
        cseq: 1,
        contacts: vec![contact("sip:carol@192.0.2.1", Some("0.3"), Some(600))],
        ..RegisterRequest::default()
    };
    register(&mut client, &first, &limits).unwrap();
    let before = lookup(&mut client, aor).unwrap();
    assert_eq!(before.len(), 1);

    // Updates the first binding, adds a second, then a third too large to store.
    let long = format!("sip:{}@192.0.2.3", "c".repeat(480));
    let second = RegisterRequest {
        cseq: 2,
        contacts: vec![
            contact("sip:carol@192.0.2.1", Some("0.9"), Some(600)),
            contact("sip:carol@192.0.2.2", None, Some(600)),
            contact(&long, None, Some(600)),
        ],
        path: vec![format!("<sip:{};lr>", "p".repeat(300))],
        ..first.clone()
    };
    assert_eq!(
        register(&mut client, &second, &limits),
        Err(RegistrarError::Overlay(chordsip::Error::TooLarge))
    );
    let after = lookup(&mut client, aor).unwrap();
    assert_eq!(after.len(), 1, "the second binding was undone");
    assert_eq!(
        after[0].0, before[0].0,
        "the first binding is back as it was"
    );

    // A node knows its own limit and refuses before writing anything.
    let node = &net.nodes[2];
    assert!(matches!(
        register(&mut &*node, &second, &limits),
        Err(RegistrarError::Request(RegisterError::Bad(_)))
    ));
    assert_eq!(lookup(&mut &*node, aor).unwrap(), after);

    // Fields the registrar bounds itself are refused on any store.
    let mut big_instance = first.clone();
    big_instance.cseq = 3;
    big_instance.contacts[0].instance = Some(format!("<urn:uuid:{}>", "9".repeat(300)));
    let mut big_received = first.clone();
    big_received.cseq = 3;
    big_received.received = Some(format!("sip:{}", "r".repeat(600)));
    for bad in [big_instance, big_received] {
        assert!(matches!(
            register(&mut client, &bad, &limits),
            Err(RegistrarError::Request(RegisterError::Bad(_)))
        ));
    }
    assert_eq!(lookup(&mut client, aor).unwrap(), after);
}

/// Sixteen bindings near every size limit, and small datagrams: the registrar
/// sees all bindings, so its limit, refresh and CSeq rules hold.
#[test]
fn large_aors_are_read_whole() {
    let limits = RegistrarLimits::default();
    let net = Testnet::new(3, &one_registrar(), Duration::from_secs(20)).unwrap();
    let node = &net.nodes[0];
    let contacts: Vec<ContactSpec> = (0..17)
        .map(|i| {
            let uri = format!("sip:{}@192.0.2.{}", "u".repeat(490), i + 1);
            contact(&uri, None, Some(600))
        })
        .collect();
    let big = RegisterRequest {
        to: "sip:big@example.com".into(),
        call_id: "c".repeat(256),
        cseq: 1,
        contacts: contacts[..16].to_vec(),
        path: vec![format!("<sip:{};lr>", "p".repeat(1010))],
        received: Some(format!("sip:{}", "r".repeat(500))),
        ..RegisterRequest::default()
    };
    assert_eq!(register(&mut &*node, &big, &limits).unwrap().inserted, 16);
    assert_eq!(
        lookup(&mut &net.nodes[1], "sip:big@example.com")
            .unwrap()
            .len(),
        16
    );
    let seventeenth = RegisterRequest {
        call_id: "another".into(),
        contacts: contacts[16..].to_vec(),
        ..big.clone()
    };
    assert_eq!(
        register(&mut &*node, &seventeenth, &limits),
        Err(RegistrarError::Request(RegisterError::TooManyBindings(16)))
    );

    let mut cfg = Config {
        max_datagram: 1400,
        ..one_registrar()
    };
    cfg.limits.max_value_bytes = 800;
    let small = Testnet::new(3, &cfg, Duration::from_secs(20)).unwrap();
    let mut client = small.client(2).unwrap();
    let eight = RegisterRequest {
        to: "sip:alice@example.com".into(),
        call_id: "a84b4c76e66710@pc33.atlanta.com".into(),
        cseq: 1,
        contacts: (0..8)
            .map(|i| {
                contact(
                    &format!("sip:alice@192.0.2.{}:5060;transport=tcp", 10 + i),
                    None,
                    Some(3600),
                )
            })
            .collect(),
        path: vec!["<sip:edge-proxy-1.example.com;lr>".into()],
        ..RegisterRequest::default()
    };
    assert_eq!(
        register(&mut &small.nodes[0], &eight, &limits)
            .unwrap()
            .inserted,
        8
    );
    assert_eq!(
        lookup(&mut client, "sip:alice@example.com").unwrap().len(),
        8
    );
    let refresh = RegisterRequest {
        cseq: 2,
        ..eight.clone()
    };
    let p = client.register(&refresh).unwrap();
    assert_eq!((p.inserted, p.updated), (0, 8));
    let older = RegisterRequest {
        cseq: 1,
        contacts: eight.contacts[7..].to_vec(),
        ..eight.clone()
    };
    assert_eq!(
        register(&mut &small.nodes[1], &older, &limits),
        Err(RegistrarError::Request(RegisterError::OutOfOrder))
    );
}

/// `Client::register`: the whole REGISTER in one round trip, run by the node;
/// the same rules as the read-plan-write path, all or nothing.
#[test]
fn client_register_in_one_round_trip() {
    let mut cfg = one_registrar();
    cfg.limits.max_entries_per_key = 3;
    let net = Testnet::new(3, &cfg, Duration::from_secs(20)).unwrap();
    let mut c = net.client(1).unwrap();
    let aor = "sip:dave@example.com";
    let req = |call_id: &str, cseq: u32, contacts: Vec<ContactSpec>| RegisterRequest {
        to: aor.into(),
        call_id: call_id.into(),
        cseq,
        contacts,
        ..RegisterRequest::default()
    };
    let p = c
        .register(&req(
            "d-1",
            1,
            vec![contact("sip:dave@192.0.2.1", Some("0.4"), Some(600))],
        ))
        .unwrap();
    assert_eq!((p.inserted, p.result.len()), (1, 1));
    let p = c
        .register(&req(
            "d-1",
            2,
            vec![contact("sip:dave@192.0.2.1", Some("0.9"), Some(600))],
        ))
        .unwrap();
    assert_eq!((p.inserted, p.updated), (0, 1));
    assert_eq!(p.result[0].0.q, 900);
    // The node's own view agrees.
    let seen = lookup(&mut &net.nodes[2], aor).unwrap();
    assert_eq!(seen.len(), 1);
    // Read back, it names its owner (the node's writer key); a REGISTER's
    // answer lists what it wrote, owner unset.
    assert_eq!(seen[0].0.owner, Some(net.nodes[2].owner().unwrap()));
    assert_eq!(
        chordsip::sip::binding::Binding {
            owner: None,
            ..seen[0].0.clone()
        },
        p.result[0].0
    );
    // Refusals come back as the registrar's errors.
    assert_eq!(
        c.register(&req(
            "d-1",
            1,
            vec![contact("sip:dave@192.0.2.1", None, Some(600))]
        )),
        Err(RegistrarError::Request(RegisterError::OutOfOrder))
    );
    assert_eq!(
        c.register(&req(
            "d-2",
            1,
            vec![contact("sip:dave@192.0.2.2", None, Some(5))]
        )),
        Err(RegistrarError::Request(RegisterError::IntervalTooBrief(60)))
    );
    assert!(matches!(
        c.register(&req("d-2", 1, vec![contact("not a uri", None, None)])),
        Err(RegistrarError::Request(RegisterError::Bad(_)))
    ));
    // A write the overlay refuses (this overlay keeps 3 entries per key) undoes
    // the others: the AOR is as it was.
    let before: Vec<_> = lookup(&mut c, aor)
        .unwrap()
        .into_iter()
        .map(|b| b.0)
        .collect();
    let three = (2..5)
        .map(|i| contact(&format!("sip:dave@192.0.2.{i}"), None, Some(600)))
        .collect();
    assert_eq!(
        c.register(&req("d-3", 1, three)),
        Err(RegistrarError::Overlay(chordsip::Error::Full))
    );
    let after: Vec<_> = lookup(&mut c, aor)
        .unwrap()
        .into_iter()
        .map(|b| b.0)
        .collect();
    assert_eq!(after, before);
    // '*' removes everything.
    let star = RegisterRequest {
        star: true,
        expires: Some(0),
        ..req("d-4", 1, vec![])
    };
    assert_eq!(c.register(&star).unwrap().deleted, 1);
    assert!(lookup(&mut c, aor).unwrap().is_empty());
}

/// When the bindings do not fit in the reply, the client reads them itself.
#[test]
fn client_register_lists_more_bindings_than_fit_in_a_reply() {
    let net = Testnet::new(2, &one_registrar(), Duration::from_secs(20)).unwrap();
    let mut c = net.client(0).unwrap();
    let contacts: Vec<ContactSpec> = (0..16)
        .map(|i| {
            contact(
                &format!("sip:{}@192.0.2.{}", "u".repeat(490), i + 1),
                None,
                Some(600),
            )
        })
        .collect();
    let big = RegisterRequest {
        to: "sip:big@example.com".into(),
        call_id: "c".repeat(256),
        cseq: 1,
        contacts,
        path: vec![format!("<sip:{};lr>", "p".repeat(1010))],
        received: Some(format!("sip:{}", "r".repeat(500))),
        ..RegisterRequest::default()
    };
    let p = c.register(&big).unwrap();
    assert_eq!((p.inserted, p.result.len()), (16, 16));
}

/// A member of the overlay with a writer key of its own: another registrar,
/// or an attacker.
fn stranger(net: &Testnet) -> chordsip::Node {
    let n = chordsip::Node::start(Config {
        writer_key: Some([0x66; 32]),
        ..Config::default()
    })
    .unwrap();
    n.join(&net.bootstrap()).unwrap();
    n
}

/// A peer with another writer key (a second registrar, or a member gone bad)
/// cannot refresh, replace or remove the bindings the registrar stored: its
/// REGISTER sees only its own, its writes land in slots of its own, and the
/// registrar's bindings stay as they were.
#[test]
fn a_registrar_with_another_writer_key_cannot_touch_bindings() {
    let net = Testnet::new(3, &one_registrar(), Duration::from_secs(20)).unwrap();
    let stranger = stranger(&net);
    let limits = RegistrarLimits::default();
    let aor = "sip:erin@example.com";
    let req = |call_id: &str, contacts: Vec<ContactSpec>| RegisterRequest {
        to: aor.into(),
        call_id: call_id.into(),
        cseq: 1,
        contacts,
        ..RegisterRequest::default()
    };
    let own = contact("sip:erin@192.0.2.5", None, Some(600));
    register(
        &mut &net.nodes[0],
        &req("reg-1", vec![own.clone()]),
        &limits,
    )
    .unwrap();

    // The stranger's "Contact: *; Expires: 0" removes nothing of the registrar's.
    let star = RegisterRequest {
        star: true,
        expires: Some(0),
        ..req("evil-1", vec![])
    };
    assert_eq!(register(&mut &stranger, &star, &limits).unwrap().deleted, 0);
    // Nor does its unregister of the very same contact, nor its raw removal
    // of the very same slot label.
    let gone = contact("sip:erin@192.0.2.5", None, Some(0));
    assert_eq!(
        register(&mut &stranger, &req("evil-2", vec![gone]), &limits)
            .unwrap()
            .deleted,
        0
    );
    let (_, key) = chordsip::sip::registrar::aor_key(aor).unwrap();
    let values = net.nodes[1].get(key).unwrap();
    assert_eq!(values.len(), 1);
    stranger.remove(key, &values[0].writer).unwrap();
    // Its write of the same label is an entry of its own, owned by its key.
    stranger
        .put(key, &values[0].writer, b"hijack", Duration::from_secs(60))
        .unwrap();
    let values = net.nodes[2].get(key).unwrap();
    assert_eq!(values.len(), 2, "{values:?}");
    let registrar_owner = net.nodes[0].owner().unwrap();
    assert_ne!(registrar_owner, stranger.owner().unwrap());
    assert!(values
        .iter()
        .any(|v| v.owner == registrar_owner && v.data != b"hijack"));

    let found = lookup(&mut &net.nodes[2], aor).unwrap();
    assert_eq!(found.len(), 1, "the stranger's raw value is no binding");
    assert_eq!(found[0].0.contact, "sip:erin@192.0.2.5");
    // The registrar itself still can: its unregister removes the binding.
    let gone = contact("sip:erin@192.0.2.5", None, Some(0));
    let p = register(&mut &net.nodes[1], &req("reg-2", vec![gone]), &limits).unwrap();
    assert_eq!(p.deleted, 1);
    assert!(lookup(&mut &net.nodes[0], aor).unwrap().is_empty());
    let _ = stranger.leave(Duration::from_secs(2));
}

/// Before: a binding another member stored under a writer key of its own,
/// with q=1, took every call to the AOR. Now lookups return only bindings of
/// the node's writer key and its `trusted_writers`, each with its owner.
#[test]
fn lookups_route_only_to_bindings_of_trusted_writers() {
    let net = Testnet::new(3, &one_registrar(), Duration::from_secs(20)).unwrap();
    let stranger = stranger(&net);
    let limits = RegistrarLimits::default();
    let aor = "sip:frank@example.com";
    let req = |call_id: &str, uri: &str, q: &str| RegisterRequest {
        to: aor.into(),
        call_id: call_id.into(),
        cseq: 1,
        contacts: vec![contact(uri, Some(q), Some(600))],
        ..RegisterRequest::default()
    };
    register(
        &mut &net.nodes[0],
        &req("own", "sip:frank@192.0.2.7", "0.5"),
        &limits,
    )
    .unwrap();
    register(
        &mut &stranger,
        &req("evil", "sip:mallory@192.0.2.66", "1.0"),
        &limits,
    )
    .unwrap();
    let registrar = net.nodes[0].owner().unwrap();
    let theirs = stranger.owner().unwrap();
    for n in &net.nodes {
        let found = lookup(&mut &*n, aor).unwrap();
        let seen: Vec<_> = found
            .iter()
            .map(|(b, _)| (b.contact.as_str(), b.owner))
            .collect();
        assert_eq!(seen, [("sip:frank@192.0.2.7", Some(registrar))]);
        let all = lookup_trusting(&mut &*n, aor, Trust::All).unwrap();
        let seen: Vec<_> = all
            .iter()
            .map(|(b, _)| (b.contact.as_str(), b.owner))
            .collect();
        assert_eq!(
            seen,
            [
                ("sip:mallory@192.0.2.66", Some(theirs)),
                ("sip:frank@192.0.2.7", Some(registrar))
            ]
        );
    }
    // A node that trusts the stranger's key too (`trusted_writers`) sees both.
    let mut cfg = one_registrar();
    cfg.set("trusted_writers", &chordsip::owner::hex(&theirs))
        .unwrap();
    cfg.client_key = Some(chordsip::testnet::TEST_CLIENT_KEY.to_vec());
    let judge = chordsip::Node::start(cfg).unwrap();
    judge.join(&net.bootstrap()).unwrap();
    assert_eq!(lookup(&mut &judge, aor).unwrap().len(), 2);
    // Through a client handle the node's trust applies: the registrar's
    // node trusts its own key only, the judge both.
    let mut via_registrar = net.client(0).unwrap();
    assert_eq!(lookup(&mut via_registrar, aor).unwrap().len(), 1);
    let key = judge.config().client_key.clone();
    let mut via_judge =
        chordsip::client::Client::connect(judge.addr(), "chordsip", key.as_deref()).unwrap();
    assert_eq!(lookup(&mut via_judge, aor).unwrap().len(), 2);
    let _ = judge.leave(Duration::from_secs(2));
    let _ = stranger.leave(Duration::from_secs(2));
}

/// `register_async` is `register` without a thread waiting: many REGISTERs
/// in flight on one node at once, the same answers, the same refusals.
#[test]
fn register_async_runs_many_at_once_with_the_same_rules() {
    use chordsip::sip::registrar::register_async;
    let net = Testnet::new(5, &one_registrar(), Duration::from_secs(20)).unwrap();
    let (a, b) = (&net.nodes[0], &net.nodes[3]);
    let limits = RegistrarLimits::default();
    let (tx, rx) = std::sync::mpsc::channel();
    const N: usize = 300;
    for i in 0..N {
        let req = RegisterRequest {
            to: format!("sip:user{i}@example.com"),
            call_id: format!("async-{i}"),
            cseq: 2,
            contacts: vec![contact(
                &format!("sip:u{i}@192.0.2.7:5060"),
                None,
                Some(600),
            )],
            ..RegisterRequest::default()
        };
        let tx = tx.clone();
        register_async(a, &req, &limits, move |r| {
            let _ = tx.send((i, r));
        })
        .unwrap();
    }
    let mut done = vec![false; N];
    for _ in 0..N {
        let (i, r) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("a callback");
        let p = r.unwrap_or_else(|e| panic!("REGISTER {i}: {e}"));
        assert_eq!(
            (p.inserted, p.updated, p.result.len()),
            (1, 0, 1),
            "REGISTER {i}"
        );
        assert!(!done[i], "REGISTER {i} answered twice");
        done[i] = true;
    }
    for i in (0..N).step_by(37) {
        let found = lookup(&mut &*b, &format!("sip:user{i}@example.com")).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0.contact, format!("sip:u{i}@192.0.2.7:5060"));
    }

    // The refusals the blocking call gives, through the callback.
    let run = |req: RegisterRequest| {
        let (tx, rx) = std::sync::mpsc::channel();
        register_async(a, &req, &limits, move |r| tx.send(r).unwrap()).map(|()| {
            rx.recv_timeout(Duration::from_secs(10))
                .expect("a callback")
        })
    };
    let older = RegisterRequest {
        to: "sip:user0@example.com".into(),
        call_id: "async-0".into(),
        cseq: 1,
        contacts: vec![contact("sip:u0@192.0.2.7:5060", None, Some(300))],
        ..RegisterRequest::default()
    };
    assert_eq!(
        run(older).unwrap().unwrap_err(),
        RegistrarError::Request(RegisterError::OutOfOrder)
    );
    let brief = RegisterRequest {
        to: "sip:user1@example.com".into(),
        call_id: "async-1".into(),
        cseq: 3,
        contacts: vec![contact("sip:u1@192.0.2.7:5060", None, Some(1))],
        ..RegisterRequest::default()
    };
    assert!(matches!(
        run(brief).unwrap().unwrap_err(),
        RegistrarError::Request(RegisterError::IntervalTooBrief(_))
    ));
    // Refused before anything is read: an error at once, no callback.
    let not_sip = RegisterRequest {
        to: "mailto:user@example.com".into(),
        call_id: "x".into(),
        cseq: 1,
        ..RegisterRequest::default()
    };
    assert!(matches!(run(not_sip), Err(RegistrarError::Request(_))));
    // The refused ones changed nothing.
    let found = lookup(&mut &*b, "sip:user0@example.com").unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0.contact, "sip:u0@192.0.2.7:5060");
    // An unregister through the async path.
    let gone = RegisterRequest {
        to: "sip:user0@example.com".into(),
        call_id: "async-0".into(),
        cseq: 3,
        star: true,
        expires: Some(0),
        ..RegisterRequest::default()
    };
    let p = run(gone).unwrap().unwrap();
    assert_eq!((p.deleted, p.result.len()), (1, 0));
    assert!(lookup(&mut &*b, "sip:user0@example.com")
        .unwrap()
        .is_empty());
}

/// REGISTERs of one AOR in flight at once run one after another on the
/// node, each planning on what the one before wrote: twenty devices racing
/// for an AOR of at most sixteen bindings leave sixteen, and four are told
/// so, whether they come through the node's own caller or a client handle.
#[test]
fn concurrent_registers_of_one_aor_see_each_other() {
    use chordsip::sip::registrar::register_async;
    let net = Testnet::new(3, &one_registrar(), Duration::from_secs(20)).unwrap();
    let a = &net.nodes[1];
    let limits = RegistrarLimits::default();
    let device = |i: usize| RegisterRequest {
        to: "sip:crowd@example.com".into(),
        call_id: format!("device-{i}"),
        cseq: 1,
        contacts: vec![contact(
            &format!("sip:d{i}@192.0.2.9:5060"),
            None,
            Some(600),
        )],
        ..RegisterRequest::default()
    };
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..20 {
        let tx = tx.clone();
        register_async(a, &device(i), &limits, move |r| tx.send(r).unwrap()).unwrap();
    }
    let (mut ok, mut full) = (0, 0);
    for _ in 0..20 {
        match rx
            .recv_timeout(Duration::from_secs(30))
            .expect("a callback")
        {
            Ok(p) => {
                ok += 1;
                assert_eq!(p.result.len(), ok, "each plan sees the writes before it");
            }
            Err(RegistrarError::Request(RegisterError::TooManyBindings(_))) => full += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((ok, full), (16, 4));
    assert_eq!(
        lookup(&mut &net.nodes[0], "sip:crowd@example.com")
            .unwrap()
            .len(),
        16
    );

    // Client handles' transactions on one key queue the same way at their node.
    let clients: Vec<_> = (0..4).map(|_| net.client(2).unwrap()).collect();
    let threads: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(k, mut c)| {
            let reqs: Vec<_> = (0..5)
                .map(|i| RegisterRequest {
                    to: "sip:crowd2@example.com".into(),
                    ..device(100 + k * 5 + i)
                })
                .collect();
            std::thread::spawn(move || {
                reqs.iter()
                    .map(|r| c.register(r).is_ok())
                    .filter(|ok| *ok)
                    .count()
            })
        })
        .collect();
    let ok: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(ok, 16);
    assert_eq!(
        lookup(&mut &net.nodes[0], "sip:crowd2@example.com")
            .unwrap()
            .len(),
        16
    );
}
