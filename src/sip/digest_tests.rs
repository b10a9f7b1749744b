use super::*;

/// RFC 7616 §3.9.1: the same request answered with MD5 and with SHA-256.
fn rfc7616(alg: &str, response: &str) -> String {
    format!(
        "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", uri=\"/dir/index.html\", \
         algorithm={alg}, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", nc=00000001, \
         cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", qop=auth, \
         response=\"{response}\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
    )
}

#[test]
fn rfc7616_vectors_check_for_md5_and_sha256() {
    for (alg, response) in [
        (Algorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec"),
        (
            Algorithm::Sha256,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        ),
    ] {
        let c = Credentials::parse(&rfc7616(alg.name(), response)).unwrap();
        assert_eq!(c.algorithm().unwrap(), alg);
        let h = ha1(alg, "Mufasa", "http-auth@example.org", "Circle of Life");
        assert_eq!(h.len(), 2 * alg.hash_len());
        assert!(c.response_matches("GET", &h), "{alg:?}");
        assert!(!c.response_matches("POST", &h), "the method is covered");
        let wrong = ha1(alg, "Mufasa", "http-auth@example.org", "circle of life");
        assert!(!c.response_matches("GET", &wrong));
    }
}

#[test]
fn rfc2617_vector_checks() {
    let v = "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", qop=auth, \
             nc=00000001, cnonce=\"0a4f113b\", response=\"6629fae49393a05397450978507c4ef1\", \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";
    let c = Credentials::parse(v).unwrap();
    let h = ha1(
        Algorithm::Md5,
        "Mufasa",
        "testrealm@host.com",
        "Circle Of Life",
    );
    assert_eq!(h, "939e7578ed9e3c518a452acee763bce9");
    assert!(c.response_matches("GET", &h));
}

#[test]
fn malformed_and_oversized_headers_are_refused() {
    let ok = "Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"sip:r\", \
              response=\"0123456789abcdef0123456789ABCDEF\"";
    assert!(Credentials::parse(ok).is_ok());
    for (bad, want) in [
        ("Basic YWxhZGRpbjpvcGVuc2VzYW1l", DigestError::NotDigest),
        ("Digest username=\"a\", realm=\"r\"", DigestError::Malformed("no nonce")),
        ("Digest username=\"a, realm=r", DigestError::Malformed("unterminated quoted string")),
        ("Digest username", DigestError::Malformed("parameter without '='")),
        (
            "Digest username=a realm=r",
            DigestError::Malformed("parameters not separated by ','"),
        ),
        (
            "Digest username=\"a\", username=\"b\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"x\"",
            DigestError::Malformed("parameter repeated"),
        ),
        (
            "Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"x\", qop=auth",
            DigestError::Malformed("qop without nc or cnonce"),
        ),
        (
            "Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"x\", algorithm=SHA-512",
            DigestError::Unsupported("algorithm \"SHA-512\"".into()),
        ),
    ] {
        assert_eq!(Credentials::parse(bad), Err(want), "{bad}");
    }
    let huge_nonce = format!(
        "Digest username=\"a\", realm=\"r\", nonce=\"{}\", uri=\"u\", response=\"x\"",
        "n".repeat(MAX_PARAM_LEN + 1)
    );
    assert_eq!(Credentials::parse(&huge_nonce), Err(DigestError::TooLong));
    let huge = format!("Digest username=\"{}\"", "a".repeat(MAX_HEADER_LEN));
    let short = "Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"abc\"";
    assert_eq!(
        Credentials::parse(short),
        Err(DigestError::Malformed(
            "response is not a hash of the algorithm"
        ))
    );
    let md5_for_sha = format!(
        "Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", algorithm=SHA-256, response=\"{}\"",
        "ab".repeat(16)
    );
    assert!(
        Credentials::parse(&md5_for_sha).is_err(),
        "an MD5-length answer to SHA-256"
    );
    assert_eq!(Credentials::parse(&huge), Err(DigestError::TooLong));
}

#[test]
fn escaped_quotes_and_case_are_handled() {
    let v = "digest USERNAME=\"a\\\"b\",realm=\"r\",nonce=n1,uri=\"sip:r\",\
             response=ABCDEF0123456789abcdef0123456789";
    let c = Credentials::parse(v).unwrap();
    assert_eq!(c.username, "a\"b");
    assert_eq!(c.nonce, "n1");
    assert_eq!(c.response, "ABCDEF0123456789abcdef0123456789");
}

#[test]
fn nonces_expire_and_cannot_be_forged_or_moved() {
    let k = NonceKey::new([7; 32]);
    let n = k.issue("example.com", 1_000);
    assert_eq!(k.check(&n, "example.com", 1_000, 300), NonceState::Fresh);
    assert_eq!(k.check(&n, "example.com", 1_300, 300), NonceState::Fresh);
    assert_eq!(k.check(&n, "example.com", 1_301, 300), NonceState::Stale);
    assert_eq!(k.check(&n, "example.org", 1_000, 300), NonceState::Invalid);
    assert_eq!(
        k.check(&n, "example.com", 990, 300),
        NonceState::Invalid,
        "future"
    );
    let other = NonceKey::new([8; 32]);
    assert_eq!(
        other.check(&n, "example.com", 1_000, 300),
        NonceState::Invalid
    );
    let mut forged = n.clone();
    forged.replace_range(..16, &crate::owner::hex(&2_000u64.to_be_bytes()));
    assert_eq!(
        k.check(&forged, "example.com", 2_000, 300),
        NonceState::Invalid
    );
    assert_eq!(
        k.check("zz", "example.com", 1_000, 300),
        NonceState::Invalid
    );
}

/// A UA's answer to `challenge` (as SIPp or PJSIP computes it).
fn answer(user: &str, realm: &str, password: &str, nonce: &str, alg: Algorithm) -> String {
    let uri = format!("sip:{realm}");
    let ha1 = ha1(alg, user, realm, password);
    let ha2 = alg.hex(&[b"REGISTER", uri.as_bytes()]);
    let resp = alg.hex(&[
        ha1.as_bytes(),
        nonce.as_bytes(),
        b"00000001",
        b"c0ffee",
        b"auth",
        ha2.as_bytes(),
    ]);
    format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{resp}\", algorithm={}, qop=auth, nc=00000001, cnonce=\"c0ffee\"",
        alg.name()
    )
}

#[test]
fn authenticate_gives_each_case_its_answer() {
    let k = NonceKey::new([1; 32]);
    let realm = "example.com";
    let n = k.issue(realm, 100);
    let users = |u: &str, alg: Algorithm| -> Result<Option<String>, ()> {
        Ok((u == "alice").then(|| ha1(alg, "alice", realm, "secret")))
    };
    let settings = AuthSettings {
        nonces: k.clone(),
        nonce_lifetime_s: 300,
        algorithm: Algorithm::Md5,
    };
    let run = |aor_user: &str, auth: Option<&str>, now: u64| {
        authenticate(&settings, now, "REGISTER", aor_user, realm, auth, users).unwrap()
    };
    assert_eq!(run("alice", None, 100), Verdict::Challenge);
    for alg in Algorithm::ALL {
        let good = answer("alice", realm, "secret", &n, alg);
        assert_eq!(
            run("alice", Some(&good), 100),
            Verdict::Ok {
                user: "alice".into()
            }
        );
        assert_eq!(
            run("bob", Some(&good), 100),
            Verdict::NotYours {
                user: "alice".into()
            }
        );
        assert_eq!(
            run("alice", Some(&good), 401),
            Verdict::Stale,
            "replayed after expiry"
        );
        let wrong = answer("alice", realm, "guess", &n, alg);
        assert_eq!(run("alice", Some(&wrong), 100), Verdict::Forbidden);
    }
    let stranger = answer("mallory", realm, "x", &n, Algorithm::Md5);
    assert_eq!(run("mallory", Some(&stranger), 100), Verdict::Forbidden);
    let other_realm = answer("alice", "example.org", "secret", &n, Algorithm::Md5);
    assert_eq!(run("alice", Some(&other_realm), 100), Verdict::Challenge);
    let not_ours = answer(
        "alice",
        realm,
        "secret",
        &NonceKey::new([2; 32]).issue(realm, 100),
        Algorithm::Md5,
    );
    assert_eq!(run("alice", Some(&not_ours), 100), Verdict::Challenge);
    assert!(matches!(
        run("alice", Some("Digest nonce"), 100),
        Verdict::Malformed(_)
    ));
    assert_eq!(Verdict::Stale.status().0, 401);
    assert_eq!(Verdict::Malformed(DigestError::TooLong).status().0, 400);
}

#[test]
fn challenges_name_realm_nonce_and_algorithm() {
    let c = challenge("ex\"ample", "abc", Algorithm::Sha256, true);
    assert_eq!(
        c,
        "Digest realm=\"ex\\\"ample\", nonce=\"abc\", qop=\"auth\", algorithm=SHA-256, stale=true"
    );
}
