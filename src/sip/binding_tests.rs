//! Tests of the registrar rules (crate::sip::binding).
use super::*;

fn contact(uri: &str) -> ContactSpec {
    ContactSpec {
        uri: uri.into(),
        ..ContactSpec::default()
    }
}

fn req(call_id: &str, cseq: u32, contacts: Vec<ContactSpec>) -> RegisterRequest {
    RegisterRequest {
        to: "sip:alice@example.com".into(),
        call_id: call_id.into(),
        cseq,
        contacts,
        ..RegisterRequest::default()
    }
}

/// Applies a plan to a stored view, as the storage would.
fn apply(current: &mut Vec<StoredBinding>, plan: &Plan) {
    for c in &plan.changes {
        match c {
            Change::Put {
                writer,
                binding,
                expires,
            } => {
                current.retain(|s| s.writer != *writer);
                current.push(StoredBinding {
                    writer: writer.clone(),
                    binding: binding.clone(),
                    expires_in_s: *expires,
                    version: 0,
                });
            }
            Change::Remove { writer } => current.retain(|s| s.writer != *writer),
        }
    }
}

#[test]
fn q_values() {
    assert_eq!(parse_q("1").unwrap(), 1000);
    assert_eq!(parse_q("0.5").unwrap(), 500);
    assert_eq!(parse_q("0.055").unwrap(), 55);
    assert_eq!(parse_q("1.000").unwrap(), 1000);
    for bad in ["", "2", "1.1", "0.1234", "-0.1", "0.a", ".5"] {
        assert!(parse_q(bad).is_err(), "{bad}");
    }
    assert_eq!(format_q(500), "0.5");
    assert_eq!(format_q(1000), "1");
    assert_eq!(format_q(55), "0.055");
    assert_eq!(format_q(0), "0");
}

#[test]
fn register_refresh_and_unregister_one() {
    let l = RegistrarLimits::default();
    let mut store = Vec::new();
    let p = plan(
        &req("c1", 1, vec![contact("sip:alice@10.0.0.1:5060")]),
        &store,
        &l,
    )
    .unwrap();
    assert_eq!((p.inserted, p.updated), (1, 0));
    apply(&mut store, &p);
    // Refresh: an equivalent URI (host case, extra parameter) is the same binding.
    let p = plan(
        &req("c1", 2, vec![contact("sip:alice@10.0.0.1:5060;ob")]),
        &store,
        &l,
    )
    .unwrap();
    assert_eq!((p.inserted, p.updated), (0, 1));
    apply(&mut store, &p);
    // A second device.
    let p = plan(
        &req("c2", 1, vec![contact("sip:alice@10.0.0.2")]),
        &store,
        &l,
    )
    .unwrap();
    apply(&mut store, &p);
    assert_eq!(store.len(), 2);
    assert_eq!(p.result.len(), 2);
    // Unregister one contact.
    let mut c = contact("sip:alice@10.0.0.2");
    c.expires = Some(0);
    let p = plan(&req("c2", 2, vec![c]), &store, &l).unwrap();
    assert_eq!(p.deleted, 1);
    apply(&mut store, &p);
    assert_eq!(store.len(), 1);
    assert_eq!(p.result.len(), 1);
}

#[test]
fn star_removes_all_and_needs_expires_zero() {
    let l = RegistrarLimits::default();
    let mut store = Vec::new();
    for (i, u) in ["sip:a@1.1.1.1", "sip:a@2.2.2.2"].iter().enumerate() {
        let p = plan(&req(&format!("c{i}"), 1, vec![contact(u)]), &store, &l).unwrap();
        apply(&mut store, &p);
    }
    let mut r = req("x", 1, vec![]);
    r.star = true;
    assert!(matches!(plan(&r, &store, &l), Err(RegisterError::Bad(_))));
    r.expires = Some(0);
    let p = plan(&r, &store, &l).unwrap();
    assert_eq!(p.deleted, 2);
    apply(&mut store, &p);
    assert!(store.is_empty());
}

#[test]
fn older_cseq_never_replaces_newer() {
    let l = RegistrarLimits::default();
    let mut store = Vec::new();
    let p = plan(&req("c1", 10, vec![contact("sip:a@1.1.1.1")]), &store, &l).unwrap();
    apply(&mut store, &p);
    // The same request again is a retransmission: no change, the same answer.
    let again = plan(&req("c1", 10, vec![contact("sip:a@1.1.1.1")]), &store, &l).unwrap();
    assert!(again.changes.is_empty());
    assert_eq!((again.inserted, again.updated, again.deleted), (0, 0, 0));
    assert_eq!(again.result.len(), 1);
    assert_eq!(again.result[0].0.cseq, 10);
    // A late retransmission of a request whose other binding was removed
    // since (CSeq 11) must not bring that binding back.
    let two = req(
        "c1",
        10,
        vec![contact("sip:a@1.1.1.1"), contact("sip:a@3.3.3.3")],
    );
    let late = plan(&two, &store, &l).unwrap();
    assert!(late.changes.is_empty());
    assert_eq!(late.result.len(), 1);
    // The same CSeq asking for something else is out of order.
    let mut other = contact("sip:a@1.1.1.1");
    other.q = Some("0.5".into());
    assert_eq!(
        plan(&req("c1", 10, vec![other]), &store, &l),
        Err(RegisterError::OutOfOrder)
    );
    let mut gone = contact("sip:a@1.1.1.1");
    gone.expires = Some(0);
    assert_eq!(
        plan(&req("c1", 10, vec![gone]), &store, &l),
        Err(RegisterError::OutOfOrder)
    );
    for cseq in [9, 1] {
        assert_eq!(
            plan(&req("c1", cseq, vec![contact("sip:a@1.1.1.1")]), &store, &l),
            Err(RegisterError::OutOfOrder)
        );
    }
    // Another Call-ID is another registration: it replaces.
    assert!(plan(&req("c9", 1, vec![contact("sip:a@1.1.1.1")]), &store, &l).is_ok());
    let mut star = req("c1", 5, vec![]);
    star.star = true;
    star.expires = Some(0);
    assert_eq!(plan(&star, &store, &l), Err(RegisterError::OutOfOrder));
}

#[test]
fn new_flow_of_same_instance_replaces_old_binding() {
    let l = RegistrarLimits::default();
    let mut store = Vec::new();
    let inst = Some("<urn:uuid:00000000-0000-1000-8000-000A95A0E128>".to_string());
    let mut c = contact("sip:alice@192.0.2.1:5060;transport=tcp");
    c.instance = inst.clone();
    c.reg_id = Some(1);
    let p = plan(&req("c1", 1, vec![c]), &store, &l).unwrap();
    apply(&mut store, &p);
    // The same flow reconnects from another address (new Call-ID after a reboot).
    let mut c = contact("sip:alice@192.0.2.99:40000;transport=tcp");
    c.instance = inst.clone();
    c.reg_id = Some(1);
    let p = plan(&req("c2", 1, vec![c]), &store, &l).unwrap();
    assert_eq!((p.inserted, p.updated), (0, 1));
    apply(&mut store, &p);
    assert_eq!(store.len(), 1);
    assert_eq!(
        store[0].binding.contact,
        "sip:alice@192.0.2.99:40000;transport=tcp"
    );
    // Another reg-id of the same instance is a second flow.
    let mut c = contact("sip:alice@192.0.2.99:40001;transport=tcp");
    c.instance = inst;
    c.reg_id = Some(2);
    let p = plan(&req("c2", 2, vec![c]), &store, &l).unwrap();
    apply(&mut store, &p);
    assert_eq!(store.len(), 2);
    // reg-id without an instance is malformed.
    let mut c = contact("sip:alice@192.0.2.5");
    c.reg_id = Some(1);
    assert!(matches!(
        plan(&req("c3", 1, vec![c]), &store, &l),
        Err(RegisterError::Bad(_))
    ));
}

#[test]
fn q_order_and_limits() {
    let l = RegistrarLimits {
        max_bindings: 3,
        ..RegistrarLimits::default()
    };
    let mut store = Vec::new();
    for (i, q) in ["0.1", "1", "0.5"].iter().enumerate() {
        let mut c = contact(&format!("sip:a@10.0.0.{i}"));
        c.q = Some(q.to_string());
        let p = plan(&req(&format!("c{i}"), 1, vec![c]), &store, &l).unwrap();
        apply(&mut store, &p);
        if i == 2 {
            let qs: Vec<u16> = p.result.iter().map(|(b, _)| b.q).collect();
            assert_eq!(qs, vec![1000, 500, 100]);
        }
    }
    assert_eq!(
        plan(&req("c9", 1, vec![contact("sip:a@10.0.0.9")]), &store, &l),
        Err(RegisterError::TooManyBindings(3))
    );
    let mut c = contact("sip:a@10.0.0.9");
    c.expires = Some(5);
    assert_eq!(
        plan(&req("c9", 1, vec![c]), &store, &RegistrarLimits::default()),
        Err(RegisterError::IntervalTooBrief(60))
    );
    let long = contact(&format!("sip:{}@x.org", "a".repeat(600)));
    assert!(matches!(
        plan(&req("c9", 1, vec![long]), &store, &l),
        Err(RegisterError::Bad(_))
    ));
    let mut c = contact("sip:a@10.0.0.9");
    c.q = Some("7".into());
    assert!(matches!(
        plan(&req("c9", 1, vec![c]), &[], &l),
        Err(RegisterError::Bad(_))
    ));
}

#[test]
fn expires_defaults_and_caps() {
    let l = RegistrarLimits::default();
    let p = plan(&req("c", 1, vec![contact("sip:a@1.1.1.1")]), &[], &l).unwrap();
    assert_eq!(p.result[0].1, 3600);
    let mut r = req("c", 1, vec![contact("sip:a@1.1.1.1")]);
    r.expires = Some(10_000_000);
    assert_eq!(plan(&r, &[], &l).unwrap().result[0].1, 86_400);
    let mut c = contact("sip:a@1.1.1.1");
    c.expires = Some(120);
    r.contacts = vec![c];
    assert_eq!(plan(&r, &[], &l).unwrap().result[0].1, 120);
}

#[test]
fn binding_encoding_round_trips_and_rejects_garbage() {
    let b = Binding {
        contact: "sip:alice@192.0.2.1:5060;transport=tcp".into(),
        q: 500,
        instance: Some("<urn:uuid:1>".into()),
        reg_id: Some(3),
        path: vec!["<sip:proxy1.example.com;lr>".into(), "<sip:p2;lr>".into()],
        received: Some("sip:198.51.100.7:40123".into()),
        call_id: "abc@host".into(),
        cseq: 42,
        owner: None,
    };
    assert_eq!(Binding::decode(&b.encode()), Some(b.clone()));
    let mut plain = b.clone();
    plain.instance = None;
    plain.reg_id = None;
    plain.path.clear();
    plain.received = None;
    assert_eq!(Binding::decode(&plain.encode()), Some(plain));
    let e = b.encode();
    for n in 0..e.len() {
        assert_eq!(Binding::decode(&e[..n]), None, "truncated at {n}");
    }
    assert_eq!(Binding::decode(b"hello"), None);
}

#[test]
fn writer_is_bounded() {
    let u = Uri::parse(&format!("sip:{}@example.com", "x".repeat(300))).unwrap();
    let w = binding_writer(&u, None, None);
    assert!(w.len() <= 100);
    assert!(w.starts_with(b"h:"));
}

#[test]
fn next_hop_rule() {
    use NextHop::{Contact as C, Path as P};
    let r = |s: &str| NextHop::Received(s.into());
    let edge = || P("sip:edge.example.net;lr".into());
    const NAMED: &[&str] = &["\"Edge\" <sip:edge.example.net;lr>", "<sip:core;lr>"];
    const BARE: &[&str] = &[" sip:edge.example.net;lr "];
    type S = &'static str;
    // (contact, received, reg-id, path, where requests go)
    type Case = (S, Option<S>, Option<u32>, &'static [S], NextHop);
    #[rustfmt::skip]
    let cases: &[Case] = &[
        // nothing else known: the contact
        ("sip:a@192.0.2.1", None, None, &[], C),
        // the same IP, another port (SIPp, a phone with separate sockets)
        ("sip:a@192.0.2.1:5060", Some("sip:192.0.2.1:4"), None, &[], C),
        ("sip:a@[::1]:5060", Some("[0:0::1]:6"), None, &[], C),
        // behind NAT: the contact's IP is not where the REGISTER came from
        ("sip:a@10.0.0.7", Some("sip:192.0.2.5:4"), None, &[], r("sip:192.0.2.5:4")),
        ("sip:a@[2001:db8::1]", Some("sip:[::2]:6"), None, &[], r("sip:[::2]:6")),
        // a host name cannot be compared: the source address
        ("sip:a@ua.example.com", Some("sip:192.0.2.1"), None, &[], r("sip:192.0.2.1")),
        // an RFC 5626 flow always goes back through its connection
        ("sip:a@192.0.2.1", Some("sip:192.0.2.1:4"), Some(1), &[], r("sip:192.0.2.1:4")),
        // received without a scheme (sip-proxy's form) comes back as a URI
        ("sip:a@10.0.0.7", Some("192.0.2.5:4"), None, &[], r("sip:192.0.2.5:4")),
        ("sip:a@10.0.0.7", Some("SIPS:192.0.2.5:4"), None, &[], r("SIPS:192.0.2.5:4")),
        // Path wins over everything (RFC 3327); brackets and display name go
        ("sip:a@10.0.0.7", Some("sip:192.0.2.5:4"), Some(1), NAMED, edge()),
        ("sip:a@10.0.0.7", None, None, BARE, edge()),
    ];
    for (contact, received, reg_id, path, want) in cases {
        let b = Binding {
            contact: contact.to_string(),
            q: 1000,
            instance: reg_id.map(|_| "<urn:uuid:1>".into()),
            reg_id: *reg_id,
            path: path.iter().map(|p| p.to_string()).collect(),
            received: received.map(String::from),
            call_id: "c".into(),
            cseq: 1,
            owner: None,
        };
        let why = format!("{contact} {received:?} {reg_id:?} {path:?}");
        assert_eq!(&b.next_hop(), want, "{why}");
    }
}

proptest::proptest! {
    #[test]
    fn decode_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
        let _ = Binding::decode(&data);
    }
}
