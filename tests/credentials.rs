//! SIP credentials over a real overlay: an administrator's node stores
//! users, registrars read them (node and client handle) and authenticate
//! REGISTERs with them; a member with another key can neither plant a
//! user nor read one.

use chordsip::owner::WriterKey;
use chordsip::sip::auth::{self, AuthSettings};
use chordsip::sip::credentials::{self, Credential, CredentialTrust};
use chordsip::sip::digest::{self, Algorithm, NonceKey, Verdict};
use chordsip::testnet::Testnet;
use chordsip::{Config, Error, Node};
use std::time::Duration;

const ADMIN: [u8; 32] = [0xad; 32];
const CRED_KEY: [u8; 32] = [0xc5; 32];
const DAY: Duration = Duration::from_secs(86_400);

fn admin_owner() -> [u8; 32] {
    *WriterKey::from_secret(&ADMIN).owner()
}

/// Registrars: they hold the credentials key and trust the admin's key.
fn registrars() -> Config {
    Config {
        writer_key: Some([0x42; 32]),
        credentials_key: Some(CRED_KEY),
        credential_admins: vec![admin_owner()],
        ..Config::default()
    }
}

fn member(net: &Testnet, writer: [u8; 32]) -> Node {
    let n = Node::start(Config {
        writer_key: Some(writer),
        ..Config::default()
    })
    .unwrap();
    n.join(&net.bootstrap()).unwrap();
    n
}

/// A UA's answer to a challenge (qop=auth), as SIPp or PJSIP computes it.
fn answer(challenge: &str, user: &str, password: &str, uri: &str) -> String {
    let param = |name: &str| {
        let start = challenge.find(&format!("{name}=")).unwrap() + name.len() + 1;
        let rest = &challenge[start..];
        let rest = rest.strip_prefix('"').unwrap_or(rest);
        rest[..rest.find(['"', ',']).unwrap_or(rest.len())].to_string()
    };
    let (realm, nonce) = (param("realm"), param("nonce"));
    let alg = Algorithm::from_name(&param("algorithm")).unwrap();
    let ha1 = digest::ha1(alg, user, &realm, password);
    let ha2 = sha_hex(alg, &format!("REGISTER:{uri}"));
    let resp = sha_hex(alg, &format!("{ha1}:{nonce}:00000001:0a4f113b:auth:{ha2}"));
    format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{resp}\", algorithm={}, qop=auth, nc=00000001, cnonce=\"0a4f113b\"",
        alg.name()
    )
}

fn sha_hex(alg: Algorithm, s: &str) -> String {
    use md5::Md5;
    use sha2::{Digest, Sha256};
    let bytes = match alg {
        Algorithm::Md5 => Md5::digest(s.as_bytes()).to_vec(),
        Algorithm::Sha256 => Sha256::digest(s.as_bytes()).to_vec(),
    };
    chordsip::owner::hex(&bytes)
}

#[test]
fn registrars_authenticate_users_the_admin_stored() {
    let net = Testnet::new(4, &registrars(), Duration::from_secs(20)).unwrap();
    let admin = member(&net, ADMIN);
    for (user, pw) in [("alice", "wonderland"), ("bob", "builder")] {
        let c = Credential::from_password(user, "example.com", pw).unwrap();
        credentials::store(&mut &admin, &CRED_KEY, &c, DAY).unwrap();
    }
    // A member with the overlay key but another writer key plants a user.
    let mallory = member(&net, [0x66; 32]);
    let fake = Credential::from_password("mallory", "example.com", "x").unwrap();
    credentials::store(&mut &mallory, &CRED_KEY, &fake, DAY).unwrap();
    let fake_alice = Credential::from_password("alice", "example.com", "mallory's").unwrap();
    credentials::store(&mut &mallory, &CRED_KEY, &fake_alice, DAY).unwrap();

    // Every registrar node, and a client handle given the key, reads alice's HA1s.
    let want = digest::ha1(Algorithm::Md5, "alice", "example.com", "wonderland");
    for n in &net.nodes {
        let got = auth::ha1(&mut &*n, "alice", "example.com", Algorithm::Md5).unwrap();
        assert_eq!(got.as_deref(), Some(want.as_str()));
        assert_eq!(
            auth::ha1(&mut &*n, "mallory", "example.com", Algorithm::Md5).unwrap(),
            None
        );
        assert_eq!(
            auth::ha1(&mut &*n, "carol", "example.com", Algorithm::Md5).unwrap(),
            None
        );
    }
    let mut client = net.client(2).unwrap();
    assert!(matches!(
        auth::ha1(&mut client, "alice", "example.com", Algorithm::Md5),
        Err(Error::Unauthorized(_))
    ));
    client
        .set_credential_trust(CredentialTrust {
            key: CRED_KEY,
            admins: vec![admin_owner()],
        })
        .unwrap();
    let sha = auth::ha1(&mut client, "alice", "example.com", Algorithm::Sha256).unwrap();
    assert_eq!(
        sha,
        Some(digest::ha1(
            Algorithm::Sha256,
            "alice",
            "example.com",
            "wonderland"
        ))
    );
    // A member without the credentials key cannot read them, even fetching the bytes.
    assert!(matches!(
        auth::ha1(&mut &mallory, "alice", "example.com", Algorithm::Md5),
        Err(Error::Unauthorized(_))
    ));
    let wrong_key = CredentialTrust {
        key: [1; 32],
        admins: vec![admin_owner()],
    };
    assert!(matches!(
        credentials::fetch(&mut &mallory, &wrong_key, "alice", "example.com"),
        Err(Error::Unauthorized(_))
    ));

    // The REGISTER dance at one registrar, the retry at another (shared nonce secret).
    let settings = AuthSettings {
        nonces: NonceKey::new([5; 32]),
        nonce_lifetime_s: 300,
        algorithm: Algorithm::Md5,
    };
    let aor = "sip:alice@example.com";
    let (a, b) = (&net.nodes[0], &net.nodes[3]);
    let v = auth::authenticate(&mut &*a, &settings, "REGISTER", aor, None).unwrap();
    assert_eq!(v, Verdict::Challenge);
    let ch = auth::challenge(&settings, aor, false).unwrap();
    let good = answer(&ch, "alice", "wonderland", "sip:example.com");
    let v = auth::authenticate(&mut &*b, &settings, "REGISTER", aor, Some(&good)).unwrap();
    assert_eq!(
        v,
        Verdict::Ok {
            user: "alice".into()
        }
    );
    let bad = answer(&ch, "alice", "mallory's", "sip:example.com");
    assert_eq!(
        auth::authenticate(&mut &*b, &settings, "REGISTER", aor, Some(&bad)).unwrap(),
        Verdict::Forbidden
    );
    // bob's right password does not register alice's AOR
    let bobs = answer(&ch, "bob", "builder", "sip:example.com");
    assert_eq!(
        auth::authenticate(&mut &*a, &settings, "REGISTER", aor, Some(&bobs)).unwrap(),
        Verdict::NotYours { user: "bob".into() }
    );
    // mallory's planted user does not authenticate
    let planted = answer(&ch, "mallory", "x", "sip:example.com");
    assert_eq!(
        auth::authenticate(
            &mut &*a,
            &settings,
            "REGISTER",
            "sip:mallory@example.com",
            Some(&planted)
        )
        .unwrap(),
        Verdict::Forbidden
    );
    // a SHA-256 challenge is answered and checked the same way
    let sha_settings = AuthSettings {
        algorithm: Algorithm::Sha256,
        ..settings.clone()
    };
    let ch = auth::challenge(&sha_settings, aor, false).unwrap();
    assert!(ch.contains("algorithm=SHA-256"));
    let good = answer(&ch, "alice", "wonderland", "sip:example.com");
    assert_eq!(
        auth::authenticate(&mut &*a, &sha_settings, "REGISTER", aor, Some(&good)).unwrap(),
        Verdict::Ok {
            user: "alice".into()
        }
    );

    // The asynchronous check gives the same verdicts, at either registrar.
    let ch = auth::challenge(&settings, aor, false).unwrap();
    let good = answer(&ch, "alice", "wonderland", "sip:example.com");
    let bad = answer(&ch, "alice", "mallory's", "sip:example.com");
    let bobs = answer(&ch, "bob", "builder", "sip:example.com");
    let stranger_nonce = answer(
        &auth::challenge(
            &AuthSettings {
                nonces: NonceKey::new([6; 32]),
                ..settings.clone()
            },
            aor,
            false,
        )
        .unwrap(),
        "alice",
        "wonderland",
        "sip:example.com",
    );
    let cases: [(Option<&str>, Verdict); 6] = [
        (None, Verdict::Challenge),
        (
            Some(&good),
            Verdict::Ok {
                user: "alice".into(),
            },
        ),
        (Some(&bad), Verdict::Forbidden),
        (Some(&bobs), Verdict::NotYours { user: "bob".into() }),
        (Some(&stranger_nonce), Verdict::Challenge),
        (
            Some("Digest username=\"alice\", realm="),
            auth::authenticate(
                &mut &*a,
                &settings,
                "REGISTER",
                aor,
                Some("Digest username=\"alice\", realm="),
            )
            .unwrap(),
        ),
    ];
    assert!(matches!(cases[5].1, Verdict::Malformed(_)));
    for node in [a, b] {
        for (authorization, want) in &cases {
            let (tx, rx) = std::sync::mpsc::channel();
            auth::authenticate_async(node, &settings, "REGISTER", aor, *authorization, move |v| {
                tx.send(v).unwrap()
            })
            .unwrap();
            let got = rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
            assert_eq!(&got, want, "{authorization:?}");
        }
    }
    assert!(matches!(
        auth::authenticate_async(a, &settings, "REGISTER", "not a uri", None, |_| {}),
        Err(Error::InvalidArgument(_))
    ));

    // The admin lists and removes; the registrars stop accepting the user.
    let trust = CredentialTrust {
        key: CRED_KEY,
        admins: vec![admin_owner()],
    };
    assert_eq!(
        credentials::list(&mut &admin, &trust, "example.com").unwrap(),
        vec!["alice".to_string(), "bob".to_string()]
    );
    assert!(credentials::remove(&mut &admin, &CRED_KEY, "bob", "example.com", DAY).unwrap());
    assert_eq!(
        auth::ha1(&mut &*a, "bob", "example.com", Algorithm::Md5).unwrap(),
        None
    );
    assert_eq!(
        credentials::list(&mut &*a, &trust, "example.com").unwrap(),
        vec!["alice".to_string()]
    );
}

/// A registrar node without a credentials key says so instead of refusing users.
#[test]
fn a_node_without_the_credentials_key_reports_it() {
    let net = Testnet::new(2, &Config::default(), Duration::from_secs(20)).unwrap();
    let settings = AuthSettings {
        nonces: NonceKey::random(),
        nonce_lifetime_s: 300,
        algorithm: Algorithm::Md5,
    };
    let r = auth::authenticate(
        &mut &net.nodes[1],
        &settings,
        "REGISTER",
        "sip:a@example.com",
        None,
    );
    assert!(matches!(r, Err(Error::Unauthorized(_))), "{r:?}");
}
