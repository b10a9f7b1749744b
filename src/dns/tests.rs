//! Unit tests: exact bytes of a small UPDATE, TSIG MACs recomputed here
//! independently of `tsig.rs`, and `check_response` on good, forged and
//! broken responses (never a panic).

use super::*;
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use sha2::Sha256;
use std::net::Ipv4Addr;

const NOW: u64 = 1_700_000_000;

fn key() -> TsigKey {
    TsigKey {
        name: "upd.key".into(),
        algorithm: TsigAlgorithm::HmacSha256,
        secret: b"0123456789abcdef0123456789abcdef".to_vec(),
    }
}

fn member(label: &str, a: [u8; 4], port: u16) -> Member {
    Member {
        host_label: label.into(),
        addrs: vec![IpAddr::V4(Ipv4Addr::from(a))],
        port,
        weight: 10,
        priority: 1,
    }
}

fn small_set() -> RecordSet {
    RecordSet {
        domain: "a".into(),
        transports: vec![Transport::Udp],
        ttl: 60,
        members: vec![member("h", [192, 0, 2, 1], 5060)],
        removed: vec!["g".into()],
    }
}

/// Wire form of a name, written out by hand.
fn wire(labels: &[&str]) -> Vec<u8> {
    let mut v = Vec::new();
    for l in labels {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.push(0);
    v
}

#[test]
fn small_update_has_the_expected_bytes() {
    let got = build_update("a.", &small_set(), 0x1234, None, NOW).unwrap();
    let mut want = vec![0x12, 0x34, 0x28, 0x00, 0, 1, 0, 0, 0, 7, 0, 0];
    want.extend(wire(&["a"]));
    want.extend([0, 6, 0, 1]); // zone: SOA IN
    let srv = wire(&["_sip", "_udp", "a"]);
    let h = wire(&["h", "a"]);
    let g = wire(&["g", "a"]);
    let delete = |want: &mut Vec<u8>, name: &[u8], t: u8| {
        want.extend(name);
        want.extend([0, t, 0, 255, 0, 0, 0, 0, 0, 0]);
    };
    delete(&mut want, &srv, 33);
    want.extend(&srv);
    want.extend([0, 33, 0, 1, 0, 0, 0, 60, 0, 6 + h.len() as u8]);
    want.extend([0, 1, 0, 10, 0x13, 0xc4]);
    want.extend(&h);
    delete(&mut want, &h, 1);
    delete(&mut want, &h, 28);
    want.extend(&h);
    want.extend([0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
    delete(&mut want, &g, 1);
    delete(&mut want, &g, 28);
    assert_eq!(got, want);
}

/// The TSIG variables and MAC of RFC 8945 §4.3.3, computed here from scratch.
fn independent_mac(prefix: &[u8], message: &[u8], time: u64, error: u16, other: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(&key().secret).unwrap();
    m.update(prefix);
    m.update(message);
    m.update(&wire(&["upd", "key"]));
    m.update(&[0, 255, 0, 0, 0, 0]);
    m.update(&wire(&["hmac-sha256"]));
    m.update(&time.to_be_bytes()[2..]);
    m.update(&[1, 0x2c]);
    m.update(&error.to_be_bytes());
    m.update(&(other.len() as u16).to_be_bytes());
    m.update(other);
    m.finalize().into_bytes().to_vec()
}

#[test]
fn request_tsig_matches_an_independent_computation() {
    let plain = build_update("a", &small_set(), 0x1234, None, NOW).unwrap();
    let signed = build_update("a", &small_set(), 0x1234, Some(&key()), NOW).unwrap();
    // Same message, ARCOUNT 1, then the TSIG record.
    assert_eq!(&signed[..10], &plain[..10]);
    assert_eq!(&signed[10..12], &[0, 1]);
    assert_eq!(&signed[12..plain.len()], &plain[12..]);
    let mut tsig = wire(&["upd", "key"]);
    tsig.extend([0, 250, 0, 255, 0, 0, 0, 0]);
    let mut rdata = wire(&["hmac-sha256"]);
    rdata.extend(&NOW.to_be_bytes()[2..]);
    rdata.extend([1, 0x2c, 0, 32]);
    rdata.extend(independent_mac(&[], &plain, NOW, 0, &[]));
    rdata.extend([0x12, 0x34, 0, 0, 0, 0]);
    tsig.extend((rdata.len() as u16).to_be_bytes());
    tsig.extend(rdata);
    assert_eq!(&signed[plain.len()..], &tsig[..]);
}

/// A response to `request` built and signed as a server would (RFC 8945 §4.3.1).
fn response(request: &[u8], id: u16, rcode: u8, time: u64, error: u16, sign: bool) -> Vec<u8> {
    let req_mac = &request[request.len() - 6 - 32..request.len() - 6];
    let mut body = vec![0, 1, 0, 0, 0, 0, 0, 0];
    body.extend(wire(&["a"]));
    body.extend([0, 6, 0, 1]);
    let flags = [0xa8, rcode];
    let mut unsigned = id.to_be_bytes().to_vec();
    unsigned.extend(flags);
    unsigned.extend(&body);
    let mut prefix = 32u16.to_be_bytes().to_vec();
    prefix.extend(req_mac);
    let other: &[u8] = if error == 18 {
        &[0, 0, 0, 0, 0, 1]
    } else {
        &[]
    };
    let mac = if sign {
        independent_mac(&prefix, &unsigned, time, error, other)
    } else {
        Vec::new()
    };
    let mut out = unsigned;
    out[11] = 1; // ARCOUNT
    out.extend(wire(&["upd", "key"]));
    out.extend([0, 250, 0, 255, 0, 0, 0, 0]);
    let mut rdata = wire(&["hmac-sha256"]);
    rdata.extend(&time.to_be_bytes()[2..]);
    rdata.extend([1, 0x2c]);
    rdata.extend((mac.len() as u16).to_be_bytes());
    rdata.extend(&mac);
    rdata.extend(id.to_be_bytes());
    rdata.extend(error.to_be_bytes());
    rdata.extend((other.len() as u16).to_be_bytes());
    rdata.extend(other);
    out.extend((rdata.len() as u16).to_be_bytes());
    out.extend(rdata);
    out
}

fn signed_request() -> Vec<u8> {
    build_update("a", &small_set(), 0x1234, Some(&key()), NOW).unwrap()
}

#[test]
fn a_signed_noerror_response_is_accepted() {
    let req = signed_request();
    let resp = response(&req, 0x1234, 0, NOW + 1, 0, true);
    assert_eq!(check_response(&resp, &req, Some(&key()), NOW), Ok(()));
}

#[test]
fn forged_or_foreign_responses_are_rejected() {
    let req = signed_request();
    let k = key();
    let good = response(&req, 0x1234, 0, NOW, 0, true);
    let wrong_id = response(&req, 0x1235, 0, NOW, 0, true);
    assert!(matches!(
        check_response(&wrong_id, &req, Some(&k), NOW),
        Err(DnsError::Mismatch(_))
    ));
    // Every single-bit flip of the MAC fails.
    let mac_at = good.len() - 6 - 32;
    for bit in 0..256 {
        let mut bad = good.clone();
        bad[mac_at + bit / 8] ^= 1 << (bit % 8);
        assert!(matches!(
            check_response(&bad, &req, Some(&k), NOW),
            Err(DnsError::BadTsig(_))
        ));
    }
    // A flipped bit of the signed body (here the zone's class) fails too.
    let mut bad = good.clone();
    bad[17] ^= 0x10;
    assert!(matches!(
        check_response(&bad, &req, Some(&k), NOW),
        Err(DnsError::BadTsig(_))
    ));
    let other_key = TsigKey {
        secret: b"another secret".to_vec(),
        ..key()
    };
    assert!(matches!(
        check_response(&good, &req, Some(&other_key), NOW),
        Err(DnsError::BadTsig(_))
    ));
    let late = check_response(&good, &req, Some(&k), NOW + 301);
    assert!(matches!(late, Err(DnsError::BadTsig(_))), "{late:?}");
    let mut not_response = good.clone();
    not_response[2] &= 0x7f;
    assert!(matches!(
        check_response(&not_response, &req, Some(&k), NOW),
        Err(DnsError::Mismatch(_))
    ));
}

#[test]
fn an_unsigned_answer_is_refused_or_bad_tsig() {
    let req = signed_request();
    let k = key();
    let unsigned_ok = response(&req, 0x1234, 0, NOW, 0, false);
    // NOERROR with an empty MAC: not acceptable.
    assert!(matches!(
        check_response(&unsigned_ok, &req, Some(&k), NOW),
        Err(DnsError::BadTsig(_))
    ));
    // No TSIG at all, NOERROR: not acceptable either.
    let mut bare = unsigned_ok.clone();
    bare.truncate(12 + 3 + 4); // header and zone "a" SOA IN

    bare[11] = 0;
    assert!(matches!(
        check_response(&bare, &req, Some(&k), NOW),
        Err(DnsError::BadTsig(_))
    ));
    bare[3] = 5; // REFUSED
    assert_eq!(
        check_response(&bare, &req, Some(&k), NOW),
        Err(DnsError::Refused {
            rcode: 5,
            tsig_error: 0
        })
    );
    let badsig = response(&req, 0x1234, 9, NOW, 16, false);
    let err = check_response(&badsig, &req, Some(&k), NOW).unwrap_err();
    assert_eq!(
        err,
        DnsError::Refused {
            rcode: 9,
            tsig_error: 16
        }
    );
    assert_eq!(
        err.to_string(),
        "DNS server refused the update: NOTAUTH (TSIG error BADSIG)"
    );
    let badtime = response(&req, 0x1234, 9, NOW, 18, false);
    assert_eq!(
        check_response(&badtime, &req, Some(&k), NOW),
        Err(DnsError::Refused {
            rcode: 9,
            tsig_error: 18
        })
    );
}

#[test]
fn an_unsigned_update_gets_its_rcode_checked() {
    let req = build_update("a", &small_set(), 7, None, NOW).unwrap();
    let mut resp = vec![0, 7, 0xa8, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(check_response(&resp, &req, None, NOW), Ok(()));
    resp[3] = 10;
    let err = check_response(&resp, &req, None, NOW).unwrap_err();
    assert_eq!(err.to_string(), "DNS server refused the update: NOTZONE");
}

#[test]
fn truncated_responses_fail_without_panicking() {
    let req = signed_request();
    let good = response(&req, 0x1234, 0, NOW, 0, true);
    for len in 0..good.len() {
        assert!(
            check_response(&good[..len], &req, Some(&key()), NOW).is_err(),
            "{len}"
        );
    }
    let mut longer = good.clone();
    longer.push(0);
    assert!(matches!(
        check_response(&longer, &req, Some(&key()), NOW),
        Err(DnsError::Malformed(_))
    ));
}

#[test]
fn compression_loops_are_malformed() {
    let req = build_update("a", &small_set(), 7, None, NOW).unwrap();
    // Zone section name is a pointer to itself, then one pointing forward.
    let mut resp = vec![0, 7, 0xa8, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 6, 0, 1];
    assert!(matches!(
        check_response(&resp, &req, None, NOW),
        Err(DnsError::Malformed(_))
    ));
    resp[13] = 14;
    assert!(matches!(
        check_response(&resp, &req, None, NOW),
        Err(DnsError::Malformed(_))
    ));
    // A backward pointer (second zone entry naming the first one's name) is followed.
    let mut ok = vec![
        0, 7, 0xa8, 0, 0, 2, 0, 0, 0, 0, 0, 0, 1, b'a', 0, 0, 6, 0, 1,
    ];
    ok.extend([0xc0, 12, 0, 6, 0, 1]);
    assert_eq!(check_response(&ok, &req, None, NOW), Ok(()));
}

proptest! {
    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let req = signed_request();
        let _ = check_response(&bytes, &req, Some(&key()), NOW);
        let _ = check_response(&bytes, &bytes, Some(&key()), NOW);
        let _ = check_response(&bytes, &req, None, NOW);
    }

    #[test]
    fn mutated_responses_never_panic_nor_pass(at in 0usize..200, x in 1u8..=255) {
        let req = signed_request();
        let mut resp = response(&req, 0x1234, 0, NOW, 0, true);
        let at = at % resp.len();
        // In the TSIG record (from its owner name, the key's, on) a letter's
        // case flipped is the same name (RFC 4343), and the MAC covers the
        // key and algorithm names in canonical (lower) case: that passes.
        let owner = b"\x03upd\x03key\x00";
        let tsig_at = resp.windows(owner.len()).rposition(|w| w == owner).unwrap();
        prop_assume!(!(x == 0x20 && at >= tsig_at && resp[at].is_ascii_alphabetic()));
        resp[at] ^= x;
        // Every other byte counts: the id by the id check, the rest by the MAC.
        let r = check_response(&resp, &req, Some(&key()), NOW);
        prop_assert!(r.is_err(), "byte {} ^ {:#x} accepted", at, x);
    }
}

#[test]
fn invalid_sets_are_refused_before_any_bytes() {
    let mut s = small_set();
    s.domain = "b".into();
    assert!(matches!(
        build_update("a", &s, 1, None, NOW),
        Err(DnsError::Invalid(_))
    ));
    let mut s = small_set();
    s.domain = "x.ba".into();
    assert!(matches!(
        build_update("a", &s, 1, None, NOW),
        Err(DnsError::Invalid(_))
    ));
    let mut s = small_set();
    s.removed = vec!["H".into()];
    assert!(matches!(
        build_update("a", &s, 1, None, NOW),
        Err(DnsError::Invalid(_))
    ));
    let mut s = small_set();
    s.members[0].host_label = "h.x".into();
    assert!(matches!(
        build_update("a", &s, 1, None, NOW),
        Err(DnsError::Invalid(_))
    ));
    let mut s = small_set();
    s.members[0].addrs.clear();
    assert!(matches!(
        build_update("a", &s, 1, None, NOW),
        Err(DnsError::Invalid(_))
    ));
    let mut s = small_set();
    s.members[0].host_label = "a b".into();
    assert!(matches!(
        build_update("a", &s, 1, None, NOW),
        Err(DnsError::Invalid(_))
    ));
    let mut s = small_set();
    s.transports = vec![Transport::Udp, Transport::Tcp, Transport::Udp];
    let twice = build_update("a", &s, 1, None, NOW).unwrap();
    s.transports.pop();
    assert_eq!(twice, build_update("a", &s, 1, None, NOW).unwrap());
    let mut s = small_set();
    s.members = (0..3000)
        .map(|i| member(&format!("n{i:040}"), [10, 0, 0, 1], 5060))
        .collect();
    assert_eq!(build_update("a", &s, 1, None, NOW), Err(DnsError::TooLarge));
}

#[test]
fn keys_parse_from_every_accepted_form() {
    let want = TsigKey {
        name: "upd.key".into(),
        algorithm: TsigAlgorithm::HmacSha512,
        secret: b"secret!!".to_vec(),
    };
    let b64 = "c2VjcmV0ISE=";
    assert_eq!(
        TsigKey::parse(&format!("hmac-sha512:upd.key:{b64}")).unwrap(),
        want
    );
    let colon = TsigKey::parse(&format!("upd.key.:{b64}\n")).unwrap();
    assert_eq!(
        colon,
        TsigKey {
            algorithm: TsigAlgorithm::HmacSha256,
            ..want.clone()
        }
    );
    let bind = format!(
        "# tsig-keygen\nkey \"upd.key\" {{\n\talgorithm hmac-sha512; // the HMAC\n\tsecret \"{b64}\";\n}};\n"
    );
    assert_eq!(TsigKey::parse(&bind).unwrap(), want);
    let knot =
        format!("# keymgr\nkey:\n  - id: upd.key\n    algorithm: hmac-sha512\n    secret: {b64}\n");
    assert_eq!(TsigKey::parse(&knot).unwrap(), want);
    for bad in [
        "",
        "upd.key",
        "hmac-md5:upd.key:c2VjcmV0ISE=",
        "upd.key:not base64",
        "upd.key:",
        "a:b:c:d",
        "bad name:c2VjcmV0ISE=",
        "key \"k\" { algorithm hmac-sha256; };",
        "key:\n  - id: k\n    secret: c2VjcmV0ISE=\n",
    ] {
        assert!(
            matches!(TsigKey::parse(bad), Err(DnsError::Invalid(_))),
            "{bad:?}"
        );
    }
    assert!(!format!("{want:?}").contains("c2Vj") && !format!("{want:?}").contains("115"));
}

/// An exchange with knotd 3.2.6 (captured from tests/dns_knot.rs with key()):
/// the request knotd accepted, and its response, signed by Knot's own TSIG code.
const KNOT_NOW: u64 = 1_796_384_911;
const KNOT_REQUEST: &str = "5eed28000001000000050001076578616d706c6504746573740000060001045f736970045f756470076578616d706c65047465737400002100ff000000000000045f736970045f756470076578616d706c65047465737400002100010000003c00170001000a13c4026e31076578616d706c65047465737400026e31076578616d706c65047465737400000100ff000000000000026e31076578616d706c65047465737400001c00ff000000000000026e31076578616d706c65047465737400000100010000003c00047f00000b03757064036b65790000fa00ff00000000003d0b686d61632d7368613235360000006b12a88f012c00208fe28b37e1ea4f4f60df0553afe7d918fcdb3c7c64ce3ba5e0e56a96f82c7c3a5eed00000000";
const KNOT_RESPONSE: &str = "5eeda8000001000000000001076578616d706c650474657374000006000103757064036b65790000fa00ff00000000003d0b686d61632d7368613235360000006b12a88f012c0020908c60d27f992f965804542bb5211836b103e79005a1e1d4105a7a7b6ecd6ecd5eed00000000";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn knotd_signed_response_verifies() {
    let set = RecordSet {
        domain: "example.test".into(),
        transports: vec![Transport::Udp],
        ttl: 60,
        members: vec![member("n1", [127, 0, 0, 11], 5060)],
        removed: vec![],
    };
    let request = build_update("example.test", &set, 0x5eed, Some(&key()), KNOT_NOW).unwrap();
    assert_eq!(request, unhex(KNOT_REQUEST));
    let response = unhex(KNOT_RESPONSE);
    assert_eq!(
        check_response(&response, &request, Some(&key()), KNOT_NOW),
        Ok(())
    );
    // Names compare case-insensitively (the MAC covers their lowercase form):
    // "Upd.key" is the same key.
    let mut upper = response.clone();
    upper[31] = b'U';
    assert_eq!(
        check_response(&upper, &request, Some(&key()), KNOT_NOW),
        Ok(())
    );
    for at in 0..response.len() {
        let mut bad = response.clone();
        bad[at] ^= 0x01;
        assert!(
            check_response(&bad, &request, Some(&key()), KNOT_NOW).is_err(),
            "byte {at}"
        );
    }
    let other = TsigKey {
        secret: vec![7; 32],
        ..key()
    };
    assert!(matches!(
        check_response(&response, &request, Some(&other), KNOT_NOW),
        Err(DnsError::BadTsig(_))
    ));
}
