//! The DNS publisher against a real authoritative server, Knot DNS (`knotd`,
//! Debian package `knot`), queried with `kdig` or `dig`: TSIG-signed updates
//! replace the SRV set and A/AAAA records, a wrong key or zone is refused.
//! Without knotd the test skips, except under `CI=true`, where it fails.

use base64ct::{Base64, Encoding};
use chordsip::dns::{
    build_update, check_response, send_update, DnsError, DnsTarget, Member, RecordSet, Transport,
    TsigAlgorithm, TsigKey,
};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv6Addr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[path = "support/knot.rs"]
mod knot;
use knot::*;

fn member(n: u8, port: u16, weight: u16, v6: bool) -> Member {
    let mut addrs = vec![IpAddr::from([127, 0, 0, 10 + n])];
    if v6 {
        addrs.push(IpAddr::V6(Ipv6Addr::LOCALHOST));
    }
    Member {
        host_label: format!("n{n}"),
        addrs,
        port,
        weight,
        priority: 1,
    }
}

fn set(domain: &str, members: Vec<Member>, removed: &[&str]) -> RecordSet {
    RecordSet {
        domain: domain.into(),
        transports: vec![Transport::Udp, Transport::Tcp],
        ttl: 30,
        members,
        removed: removed.iter().map(|s| s.to_string()).collect(),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// One update sent by hand (not through send_update), so the knotd-signed
/// response is checked by check_response on its own.
fn exchange_by_hand(knot: &Knot, key: &TsigKey, s: &RecordSet) -> Result<(), DnsError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let request = build_update("example.test", s, 0x5eed, Some(key), now)?;
    let mut tcp = TcpStream::connect(("127.0.0.1", knot.port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(&(request.len() as u16).to_be_bytes())
        .unwrap();
    tcp.write_all(&request).unwrap();
    let mut len = [0u8; 2];
    tcp.read_exact(&mut len).unwrap();
    let mut response = vec![0u8; u16::from_be_bytes(len) as usize];
    tcp.read_exact(&mut response).unwrap();
    // The same response under another key, or a flipped byte, must not pass.
    let wrong = random_key(&key.name);
    assert!(matches!(
        check_response(&response, &request, Some(&wrong), now),
        Err(DnsError::BadTsig(_))
    ));
    let mut flipped = response.clone();
    flipped[3] ^= 0x01;
    assert!(check_response(&flipped, &request, Some(key), now).is_err());
    check_response(&response, &request, Some(key), now)
}

#[test]
fn knot_serves_what_the_updates_publish() {
    let Some((knotd, dig)) = tools() else { return };
    // The key in the text form `keymgr -t` / `tsig-keygen` print, read back by TsigKey::parse.
    let generated = random_key("upd.key");
    let bind_text = format!(
        "key \"upd.key\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{}\";\n}};\n",
        Base64::encode_string(&generated.secret)
    );
    let key = TsigKey::parse(&bind_text).expect("parse a BIND key file");
    assert_eq!(key, generated);
    let other = random_key("other.key");
    let knot = Knot::start(&knotd, &dig, &key, &other);
    let target = knot.target("example.test", Some(key.clone()));

    // Three members: exactly three SRV per transport, A and AAAA served.
    let three = vec![
        member(1, 5060, 10, false),
        member(2, 5070, 20, true),
        member(3, 5080, 30, false),
    ];
    send_update(&target, &set("example.test", three, &[])).expect("first update");
    let srv3 = strings(&[
        "1 10 5060 n1.example.test.",
        "1 20 5070 n2.example.test.",
        "1 30 5080 n3.example.test.",
    ]);
    assert_eq!(knot.query("_sip._udp.example.test", "SRV"), srv3);
    assert_eq!(knot.query("_sip._tcp.example.test", "SRV"), srv3);
    assert_eq!(knot.query("n1.example.test", "A"), ["127.0.0.11"]);
    assert_eq!(knot.query("n2.example.test", "A"), ["127.0.0.12"]);
    assert_eq!(knot.query("n2.example.test", "AAAA"), ["::1"]);
    assert_eq!(knot.query("n3.example.test", "A"), ["127.0.0.13"]);

    // Two members, n2 removed, n3 moved: the sets are replaced, not merged.
    let mut n3 = member(3, 5090, 5, true);
    n3.addrs[0] = IpAddr::from([127, 0, 0, 33]);
    let two = set(
        "example.test",
        vec![member(1, 5060, 10, false), n3],
        &["n2"],
    );
    exchange_by_hand(&knot, &key, &two).expect("second update");
    let srv2 = strings(&["1 10 5060 n1.example.test.", "1 5 5090 n3.example.test."]);
    assert_eq!(knot.query("_sip._udp.example.test", "SRV"), srv2);
    assert_eq!(knot.query("_sip._tcp.example.test", "SRV"), srv2);
    assert!(knot.query("n2.example.test", "A").is_empty());
    assert!(knot.query("n2.example.test", "AAAA").is_empty());
    assert_eq!(knot.query("n3.example.test", "A"), ["127.0.0.33"]);
    assert_eq!(knot.query("n3.example.test", "AAAA"), ["::1"]);

    // Refusals: (target zone and key, what knotd answers: NOTAUTH = rcode 9
    // with TSIG error BADSIG 16, BADKEY 17, or none).
    let refusals = [
        // Same key name, another secret.
        ("example.test", random_key("upd.key"), 16),
        // A key knotd does not know.
        ("example.test", random_key("nobody.key"), 17),
        // A valid key, but other.test's ACL does not name it.
        ("other.test", key.clone(), 17),
        // A zone knotd does not serve.
        ("nowhere.test", key.clone(), 0),
    ];
    for (zone, k, tsig_error) in refusals {
        let one = set(zone, vec![member(4, 5060, 1, false)], &[]);
        let err = send_update(&knot.target(zone, Some(k)), &one).unwrap_err();
        let want = DnsError::Refused {
            rcode: 9,
            tsig_error,
        };
        assert_eq!(err, want, "update of {zone}: {err}");
    }
    // No refused update changed anything.
    assert_eq!(knot.query("_sip._udp.example.test", "SRV"), srv2);
    assert!(knot.query("_sip._udp.other.test", "SRV").is_empty());
    assert!(knot.query("n4.example.test", "A").is_empty());

    // Zero members empties the SRV sets (the overlay's last member leaving).
    send_update(&target, &set("example.test", vec![], &["n1", "n3"])).expect("empty update");
    assert!(knot.query("_sip._udp.example.test", "SRV").is_empty());
    assert!(knot.query("n1.example.test", "A").is_empty());
}

#[test]
fn a_silent_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = DnsTarget {
        server: listener.local_addr().unwrap(),
        zone: "example.test".into(),
        key: Some(random_key("upd.key")),
        timeout: Duration::from_millis(300),
    };
    let started = Instant::now();
    let err = send_update(
        &target,
        &set("example.test", vec![member(1, 5060, 1, false)], &[]),
    )
    .unwrap_err();
    assert_eq!(err, DnsError::Timeout);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// `keymgr -t` (Knot's key generator) output parses, when keymgr is installed.
#[test]
fn keymgr_output_parses() {
    let Some(keymgr) = find("keymgr") else { return };
    let out = Command::new(keymgr)
        .args(["-t", "gen.key", "hmac-sha512"])
        .output()
        .expect("run keymgr");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key =
        TsigKey::parse(&String::from_utf8_lossy(&out.stdout)).expect("parse keymgr -t output");
    assert_eq!(
        (key.name.as_str(), key.algorithm),
        ("gen.key", TsigAlgorithm::HmacSha512)
    );
    assert!(!key.secret.is_empty());
}
