//! Fuzzing on stable Rust, bounded, in CI: every parser that takes outside
//! input runs over its committed corpus (`tests/fuzz/corpus/<target>/`) and
//! over seeded mutations of it (bit flips, byte edits, truncation, splices,
//! interesting values). A target passes when nothing panics and what it
//! accepts is self-consistent (a decoded datagram re-encodes to a datagram
//! that decodes the same; an engine fed the inputs still answers a Ping).
//!
//! `CHORDSIP_FUZZ_EXECS` (default 200,000 per target) sets the mutations run;
//! `CHORDSIP_FUZZ_SEED` the seed (default: fixed, so CI runs are repeatable).
//! `CHORDSIP_FUZZ_SAVE=1` writes the generated seed inputs into the corpus.

use chordsip::engine::Engine;
use chordsip::id::Id;
use chordsip::sip::binding::{parse_q, Binding};
use chordsip::sip::uri::Uri;
use chordsip::wire::{
    peek_flags, Body, Codec, ItemSummary, Message, NodeInfo, Status, WireEntry, FLAG_CLIENT,
    FLAG_RESPONSE,
};
use chordsip::Config;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

fn execs() -> usize {
    std::env::var("CHORDSIP_FUZZ_EXECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

fn seed() -> u64 {
    std::env::var("CHORDSIP_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x00c5_f022)
}

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target)
}

/// The committed corpus of a target, plus the generated seeds.
fn corpus(target: &str, seeds: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let dir = corpus_dir(target);
    if std::env::var("CHORDSIP_FUZZ_SAVE").as_deref() == Ok("1") {
        std::fs::create_dir_all(&dir).unwrap();
        for (i, s) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:03}")), s).unwrap();
        }
    }
    let mut all: Vec<Vec<u8>> = match std::fs::read_dir(&dir) {
        Ok(entries) => {
            let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
            files.sort();
            files.iter().map(|f| std::fs::read(f).unwrap()).collect()
        }
        Err(_) => Vec::new(),
    };
    assert!(
        !all.is_empty(),
        "no corpus in {} (generate it with CHORDSIP_FUZZ_SAVE=1)",
        dir.display()
    );
    all.extend(seeds);
    all
}

const INTERESTING: [u8; 8] = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, b'<', b';'];

/// One mutation of a corpus input (sometimes spliced with another).
fn mutate(rng: &mut ChaCha8Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..rng.gen_range(1..=4) {
        match rng.gen_range(0..8) {
            0 if !v.is_empty() => {
                let i = rng.gen_range(0..v.len());
                v[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if !v.is_empty() => {
                let i = rng.gen_range(0..v.len());
                v[i] = rng.gen();
            }
            2 => {
                let i = rng.gen_range(0..=v.len());
                v.insert(i, INTERESTING[rng.gen_range(0..INTERESTING.len())]);
            }
            3 if !v.is_empty() => {
                let i = rng.gen_range(0..v.len());
                let n = rng.gen_range(1..=(v.len() - i).min(16));
                v.drain(i..i + n);
            }
            4 => {
                let n = rng.gen_range(0..=v.len());
                v.truncate(n);
            }
            5 if !other.is_empty() => {
                let cut = rng.gen_range(0..=v.len());
                let from = rng.gen_range(0..other.len());
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            6 if v.len() >= 2 => {
                // a length or count field pushed to an extreme
                let i = rng.gen_range(0..v.len() - 1);
                let x = if rng.gen() { 0xff } else { 0x00 };
                v[i] = x;
                v[i + 1] = x;
            }
            _ => {
                let i = rng.gen_range(0..=v.len());
                let n = rng.gen_range(1..64);
                let fill: u8 = rng.gen();
                v.splice(i..i, std::iter::repeat_n(fill, n));
            }
        }
    }
    v
}

/// Runs `check` over the corpus and `execs()` mutations of it.
fn fuzz(target: &str, seeds: Vec<Vec<u8>>, mut check: impl FnMut(&[u8])) -> usize {
    let inputs = corpus(target, seeds);
    for input in &inputs {
        check(input);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed() ^ target.len() as u64);
    let n = execs();
    for _ in 0..n {
        let a = &inputs[rng.gen_range(0..inputs.len())];
        let b = &inputs[rng.gen_range(0..inputs.len())];
        let m = mutate(&mut rng, a, b);
        check(&m);
    }
    println!("{target}: {} corpus inputs, {n} mutations", inputs.len());
    inputs.len() + n
}

fn node(i: u64) -> NodeInfo {
    NodeInfo {
        id: Id::from_u64(i),
        addr: SocketAddr::from(([127, 0, 0, 1], 4000 + i as u16)),
    }
}

fn entry(w: &str, data: &[u8]) -> WireEntry {
    WireEntry {
        writer: w.as_bytes().to_vec(),
        version: 42,
        lifetime_ms: 60_000,
        expires_ms: 1_700_000_060_000,
        tombstone: false,
        data: data.to_vec(),
        signature: [0x5a; 64],
        // The Replicate's entry travels with a writer tag, as a fresh write's copies do.
        writer_tag: (w == "c").then_some([0x3c; 16]),
    }
}

/// One message of every kind.
fn sample_bodies() -> Vec<Body> {
    let k = Id::from_name("sip:alice@example.com");
    vec![
        Body::Ping,
        Body::Pong,
        Body::FindSuccessor { key: k },
        Body::FindReply {
            done: true,
            nodes: vec![node(1), node(2)],
        },
        Body::GetNeighbors,
        Body::Neighbors {
            preds: vec![node(3)],
            succs: vec![node(4), node(5)],
        },
        Body::Notify,
        Body::NotifyAck,
        Body::Leaving {
            preds: vec![node(6)],
            succs: vec![node(7)],
        },
        Body::LeavingAck,
        Body::Store {
            key: k,
            entry: entry("phone", b"sip:alice@192.0.2.1"),
        },
        Body::StoreReply {
            status: Status::Ok,
            copies: 3,
        },
        Body::Fetch {
            key: k,
            replica: false,
            after: Some(b"desk".to_vec()),
        },
        Body::FetchReply {
            status: Status::Ok,
            entries: vec![entry("a", b"x"), entry("b", b"yy")],
            next: Some(b"b".to_vec()),
        },
        Body::Replicate {
            items: vec![(k, entry("c", b"zzz"))],
        },
        Body::ReplicateAck { status: Status::Ok },
        Body::SyncDigest {
            lo: Id::ZERO,
            hi: Id::MAX,
            digest: 7,
            count: 2,
        },
        Body::SyncDigestReply { in_sync: false },
        Body::SyncItems {
            items: vec![ItemSummary {
                key: k,
                writer: b"w".to_vec(),
                version: 3,
            }],
        },
        Body::SyncNeed {
            indices: vec![0, 1],
        },
        Body::Error {
            status: Status::BadRequest,
        },
        Body::ClientLookup { key: k },
        Body::ClientLookupReply {
            status: Status::Ok,
            node: Some(node(8)),
            hops: 2,
        },
        Body::ClientPut {
            key: k,
            entry: entry("ua", b"sip:ua@127.0.0.1"),
        },
        Body::ClientGet {
            key: k,
            after: None,
        },
        Body::ClientInfo { what: 0 },
        Body::ClientInfoReply {
            text: b"successor[0] x".to_vec(),
        },
    ]
}

fn datagrams(codec: &Codec) -> Vec<Vec<u8>> {
    sample_bodies()
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            let flags = if body.is_response() { FLAG_RESPONSE } else { 0 }
                | if body.name().starts_with("client") {
                    FLAG_CLIENT
                } else {
                    0
                };
            codec
                .encode(&Message {
                    flags,
                    overlay: codec.overlay(),
                    request_id: i as u64 + 1,
                    timestamp_ms: 1_700_000_000_000,
                    sender: Id::from_u64(99),
                    receiver: Id::ZERO,
                    cookie: 0,
                    body,
                })
                .unwrap()
        })
        .collect()
}

#[test]
fn fuzz_wire_decoder() {
    let open = Codec::new("chordsip", None, 65_507);
    let keyed = Codec::new("chordsip", Some(b"k"), 65_507);
    let mut accepted = 0;
    fuzz("wire", datagrams(&open), |data| {
        let _ = peek_flags(data);
        let _ = keyed.decode(data);
        if let Ok(m) = open.decode(data) {
            accepted += 1;
            // What was accepted encodes again, and decodes to the same message.
            let again = open.encode(&m).expect("a decoded message encodes");
            assert_eq!(open.decode(&again).expect("re-encoded decodes"), m);
        }
    });
    assert!(accepted > 0, "no input got through the decoder");
}

#[test]
fn fuzz_engine_with_datagrams() {
    let cfg = Config {
        max_datagram: 65_507,
        ..Config::default()
    };
    let addr: SocketAddr = "127.0.0.1:4999".parse().unwrap();
    let mut engine = Engine::new(cfg, addr, 1, 1_700_000_000_000);
    engine.join(0, 1, &[], Duration::from_secs(1));
    let open = Codec::new("chordsip", None, 65_507);
    let from: SocketAddr = "127.0.0.1:4001".parse().unwrap();
    let mut now = 1_000;
    fuzz("wire", datagrams(&open), |data| {
        now += 100;
        engine.handle_datagram(now, from, data);
        engine.handle_timeout(now);
        engine.drain_transmits().for_each(drop);
        engine.drain_completions().for_each(drop);
        engine.drain_events().for_each(drop);
    });
    // Still a working node: a Ping is answered.
    let ping = open
        .encode(&Message {
            flags: 0,
            overlay: open.overlay(),
            request_id: 7,
            timestamp_ms: 1_700_000_000_000,
            sender: Id::from_u64(5),
            receiver: Id::ZERO,
            cookie: 0,
            body: Body::Ping,
        })
        .unwrap();
    engine.handle_datagram(now + 1, from, &ping);
    let out: Vec<_> = engine.drain_transmits().collect();
    assert!(out
        .iter()
        .any(|t| t.to == from && open.decode(&t.data).map(|m| m.body) == Ok(Body::Pong)));
}

#[test]
fn fuzz_sip_uri_parser() {
    let seeds: Vec<Vec<u8>> = [
        "sip:alice@example.com",
        "sips:Alice@Example.COM:5061;transport=tls?subject=hi",
        "sip:alice;day=tuesday@atlanta.com",
        "sip:+1-212-555-1212:1234@gateway.com;user=phone",
        "sip:[2001:db8::10]:5070;lr;maddr=239.255.255.1;ttl=15",
        "tel:+358-555-1234567;phone-context=example.com",
        "sip:%61lice@atlanta.com;method=REGISTER",
        "<sip:bob@biloxi.com>;tag=a6c85cf",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    // Every seed but the name-addr is a URI the parser must take.
    for s in &seeds[..seeds.len() - 1] {
        let text = String::from_utf8_lossy(s);
        assert!(Uri::parse(&text).is_ok(), "seed {text:?} refused");
    }
    let mut accepted = 0usize;
    let total = fuzz("sip-uri", seeds, |data| {
        let text = String::from_utf8_lossy(data);
        if let Ok(u) = Uri::parse(&text) {
            accepted += 1;
            // An accepted URI has an AOR form, which parses again to itself.
            let aor = u.aor();
            let again = Uri::parse(&aor).unwrap_or_else(|e| {
                panic!("{text:?} gives the AOR {aor:?}, which does not parse: {e}")
            });
            assert_eq!(again.aor(), aor);
        }
        let _ = parse_q(&text);
    });
    // A parser that refused everything would pass the checks above.
    println!("sip-uri: {accepted} of {total} inputs accepted");
    assert!(
        accepted * 20 >= total,
        "only {accepted} of {total} inputs parsed as URIs"
    );
}

#[test]
fn fuzz_binding_decoder() {
    let b = Binding {
        contact: "sip:alice@192.0.2.1:5060;transport=tcp".into(),
        q: 500,
        instance: Some("<urn:uuid:00000000-0000-1000-8000-000A95A0E128>".into()),
        reg_id: Some(1),
        path: vec!["<sip:edge.example.net;lr>".into()],
        received: Some("sip:198.51.100.7:40123".into()),
        call_id: "a84b4c76e66710@pc33.atlanta.com".into(),
        cseq: 7,
        owner: None,
    };
    let plain = Binding {
        instance: None,
        reg_id: None,
        path: vec![],
        received: None,
        ..b.clone()
    };
    assert_eq!(Binding::decode(&b.encode()).as_ref(), Some(&b));
    assert_eq!(Binding::decode(&plain.encode()).as_ref(), Some(&plain));
    let mut accepted = 0usize;
    let total = fuzz("binding", vec![b.encode(), plain.encode()], |data| {
        if let Some(d) = Binding::decode(data) {
            accepted += 1;
            assert_eq!(Binding::decode(&d.encode()), Some(d));
        }
    });
    // A decoder that refused everything would pass the check above.
    println!("binding: {accepted} of {total} inputs accepted");
    assert!(
        accepted * 100 >= total,
        "only {accepted} of {total} inputs decoded as bindings"
    );
}
