//! The registrar over a real overlay: REGISTER at one node, lookups from
//! another node and from a client handle, refresh, unregister, `*`, expiry.

use chordsip::client::Client;
use chordsip::sip::binding::{ContactSpec, RegisterError, RegisterRequest, RegistrarLimits};
use chordsip::sip::registrar::{lookup, register, RegistrarError};
use chordsip::testnet::{wait_until, Testnet};
use chordsip::Config;
use std::time::Duration;

fn contact(uri: &str, q: Option<&str>, expires: Option<u32>) -> ContactSpec {
    ContactSpec {
        uri: uri.into(),
        q: q.map(String::from),
        expires,
        ..ContactSpec::default()
    }
}

#[test]
fn register_lookup_refresh_unregister_and_expire() {
    let net = Testnet::new(5, &Config::default(), Duration::from_secs(20)).unwrap();
    let limits = RegistrarLimits {
        min_expires: 1,
        ..RegistrarLimits::default()
    };
    let (a, b) = (&net.nodes[0], &net.nodes[3]);
    let mut client = Client::connect(net.nodes[1].addr(), "chordsip", None).unwrap();

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
    let p = register(&mut client, &r2, &limits).unwrap();
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
