use super::*;
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use sha2::Sha256;

fn node(i: u64) -> NodeInfo {
    NodeInfo {
        id: Id::from_u64(i),
        addr: format!("127.0.0.{}:{}", i % 250 + 1, 4000 + i)
            .parse()
            .unwrap(),
    }
}

fn entry(i: u8) -> WireEntry {
    WireEntry {
        writer: vec![i; 5],
        version: 7 + i as u64,
        lifetime_ms: 60_000,
        expires_ms: 1_700_000_000_000 + i as u64,
        tombstone: i % 2 == 0,
        data: vec![i; 30],
        signature: [i; 64],
        // Odd entries carry a writer tag, as a write on its way to its holders does.
        writer_tag: (i % 2 == 1).then_some([i; WRITER_TAG_LEN]),
    }
}

fn all_bodies() -> Vec<Body> {
    let v6: SocketAddr = "[::1]:5060".parse().unwrap();
    vec![
        Body::Ping,
        Body::Pong,
        Body::FindSuccessor { key: Id::MAX },
        Body::FindReply {
            done: true,
            nodes: vec![
                node(1),
                NodeInfo {
                    id: Id::ZERO,
                    addr: v6,
                },
            ],
        },
        Body::GetNeighbors,
        Body::Neighbors {
            preds: vec![node(3)],
            succs: (0..8).map(node).collect(),
        },
        Body::Notify,
        Body::NotifyAck,
        Body::Leaving {
            preds: vec![],
            succs: vec![node(9)],
        },
        Body::LeavingAck,
        Body::Store {
            key: Id::from_u64(5),
            entry: entry(1),
        },
        Body::StoreReply {
            status: Status::Stale,
            copies: 3,
        },
        Body::Fetch {
            key: Id::from_u64(77),
            replica: true,
            after: None,
        },
        Body::Fetch {
            key: Id::from_u64(77),
            replica: false,
            after: Some(b"dev-1".to_vec()),
        },
        Body::FetchReply {
            status: Status::Ok,
            entries: vec![entry(1), entry(2)],
            next: None,
        },
        Body::FetchReply {
            status: Status::Ok,
            entries: vec![entry(1)],
            next: Some(b"w".to_vec()),
        },
        Body::Replicate {
            items: vec![(Id::from_u64(1), entry(3)), (Id::from_u64(2), entry(4))],
        },
        Body::ReplicateAck { status: Status::Ok },
        Body::SyncDigest {
            lo: Id::ZERO,
            hi: Id::MAX,
            digest: 0xdead_beef,
            count: 12,
        },
        Body::SyncDigestReply { in_sync: false },
        Body::SyncItems {
            items: vec![ItemSummary {
                key: Id::from_u64(3),
                writer: b"dev".to_vec(),
                version: 9,
            }],
        },
        Body::SyncNeed {
            indices: vec![0, 4, 9],
        },
        Body::Error {
            status: Status::BadRequest,
        },
        Body::ClientLookup {
            key: Id::from_u64(9),
        },
        Body::ClientLookupReply {
            status: Status::Ok,
            node: Some(node(4)),
            hops: 3,
        },
        Body::ClientLookupReply {
            status: Status::NotFound,
            node: None,
            hops: 0,
        },
        Body::ClientPut {
            key: Id::from_u64(2),
            entry: entry(5),
        },
        Body::ClientGet {
            key: Id::from_u64(2),
            after: None,
        },
        Body::ClientGet {
            key: Id::from_u64(2),
            after: Some(vec![0xff; 3]),
        },
        Body::ClientInfo { what: 1 },
        Body::ClientInfo { what: 2 },
        Body::ClientPing {
            addr: "[::1]:4000".parse().unwrap(),
        },
        Body::ClientPingReply {
            status: Status::Timeout,
            rtt_us: 0,
        },
        Body::ClientPingReply {
            status: Status::Ok,
            rtt_us: 123,
        },
        Body::ClientTrace {
            key: Id::from_u64(9),
        },
        Body::ClientTraceReply {
            status: Status::Ok,
            node: Some(node(3)),
            path: vec![(node(1), 80), (node(2), u32::MAX)],
        },
        Body::ClientTraceReply {
            status: Status::NoRoute,
            node: None,
            path: vec![],
        },
        Body::ClientInfoReply {
            text: b"successor 127.0.0.1:5000".to_vec(),
        },
        Body::ClientTransaction {
            request: b"\x00\x01a".to_vec(),
        },
        Body::ClientTransactionReply {
            status: Status::Ok,
            outcome: vec![0, 1, 2],
        },
        Body::Members {
            limit: Id::from_u64(99),
            changes: vec![
                MemberChange::Up(MemberRecord {
                    node: node(4),
                    since_ms: 1_700_000_000_123,
                    weight: 250,
                    sip: Some(v6),
                    points: 128,
                }),
                MemberChange::Up(MemberRecord {
                    node: node(5),
                    since_ms: 1,
                    weight: 1,
                    sip: None,
                    points: 1,
                }),
                MemberChange::Down {
                    node: node(6),
                    since_ms: 42,
                },
            ],
        },
        Body::MembersAck,
        Body::MembersDigest {
            after: Id::from_u64(3),
            buckets: (0..MEMBER_BUCKETS as u64).collect(),
        },
        Body::MembersPage {
            more: true,
            buckets: vec![7; MEMBER_BUCKETS],
            changes: vec![MemberChange::Down {
                node: node(8),
                since_ms: 9,
            }],
        },
        Body::FindHolder { key: Id::MAX },
    ]
}

#[test]
fn membership_bodies_have_the_sizes_pages_are_filled_by() {
    // Pages and batches are filled by these sizes: they must be the encoded ones.
    let codec = Codec::new("test", None, 8192);
    let size = |b: Body| codec.encode(&msg(b)).unwrap().len() - HEADER_LEN;
    for body in all_bodies() {
        let (overhead, changes) = match &body {
            Body::Members { changes, .. } => (MEMBERS_OVERHEAD, changes.clone()),
            Body::MembersPage { changes, .. } => (MEMBERS_PAGE_OVERHEAD, changes.clone()),
            _ => continue,
        };
        let want = overhead + changes.iter().map(member_change_len).sum::<usize>();
        assert_eq!(size(body.clone()), want, "{}", body.name());
    }
}

#[test]
fn entries_have_the_sizes_pages_and_batches_are_filled_by() {
    let codec = Codec::new("test", None, 8192);
    let size = |b: Body| codec.encode(&msg(b)).unwrap().len() - HEADER_LEN;
    for e in [entry(1), entry(2)] {
        let key = Id::from_u64(3);
        let one = size(Body::Replicate {
            items: vec![(key, e.clone())],
        });
        assert_eq!(
            one,
            2 + replicate_item_len(&e),
            "tagged: {:?}",
            e.writer_tag
        );
        let page = size(Body::FetchReply {
            status: Status::Ok,
            entries: vec![e.clone()],
            next: None,
        });
        assert_eq!(page, 1 + 1 + 2 + fetch_entry_len(&e));
    }
}

#[test]
fn an_entry_with_unknown_flags_is_refused() {
    let codec = Codec::new("test", None, 8192);
    let mut e = entry(2);
    e.writer = vec![];
    e.data = vec![];
    let mut bytes = codec
        .encode(&msg(Body::Store {
            key: Id::ZERO,
            entry: e,
        }))
        .unwrap();
    // Store: key, slot length (0), version, lifetime, expiry, then the flags byte.
    let flags = HEADER_LEN + ID_LEN + 1 + 8 + 4 + 8;
    assert_eq!(bytes[flags], ENTRY_TOMBSTONE);
    assert!(codec.decode(&bytes).is_ok());
    bytes[flags] = 0x04;
    assert!(codec.decode(&bytes).is_err());
}

fn msg(body: Body) -> Message {
    Message {
        flags: if body.is_response() { FLAG_RESPONSE } else { 0 },
        overlay: overlay_tag("test"),
        request_id: 0x0102_0304_0506_0708,
        timestamp_ms: 1_700_000_000_000,
        sender: Id::from_name("sender"),
        receiver: Id::ZERO,
        cookie: 0,
        body,
    }
}

#[test]
fn every_body_round_trips_with_and_without_key() {
    for key in [None, Some(&b"secret"[..])] {
        let codec = Codec::new("test", key, 8192);
        for body in all_bodies() {
            let m = msg(body);
            let bytes = codec.encode(&m).unwrap();
            assert_eq!(codec.decode(&bytes).unwrap(), m, "{}", m.body.name());
        }
    }
}

#[test]
fn wrong_overlay_and_wrong_key_are_refused() {
    let a = Codec::new("a", Some(b"k1"), 8192);
    let b = Codec::new("b", Some(b"k1"), 8192);
    let c = Codec::new("a", Some(b"k2"), 8192);
    let open = Codec::new("a", None, 8192);
    let bytes = a.encode(&msg(Body::Ping)).unwrap();
    assert_eq!(b.decode(&bytes), Err(DecodeError::WrongOverlay));
    assert_eq!(c.decode(&bytes), Err(DecodeError::BadTag));
    assert_eq!(open.decode(&bytes), Err(DecodeError::BadTag));
    let plain = open.encode(&msg(Body::Ping)).unwrap();
    assert_eq!(a.decode(&plain), Err(DecodeError::BadTag));
}

#[test]
fn any_flipped_bit_breaks_the_tag() {
    let codec = Codec::new("a", Some(b"key"), 8192);
    let bytes = codec
        .encode(&msg(Body::FindSuccessor { key: Id::MAX }))
        .unwrap();
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut forged = bytes.clone();
            forged[i] ^= 1 << bit;
            assert!(codec.decode(&forged).is_err(), "byte {i} bit {bit}");
        }
    }
}

#[test]
fn every_truncation_is_an_error() {
    for key in [None, Some(&b"k"[..])] {
        let codec = Codec::new("t", key, 8192);
        for body in all_bodies() {
            let bytes = codec.encode(&msg(body)).unwrap();
            for len in 0..bytes.len() {
                assert!(codec.decode(&bytes[..len]).is_err());
            }
        }
    }
}

#[test]
fn oversized_is_refused_both_ways() {
    let codec = Codec::new("t", None, 200);
    let big = msg(Body::Store {
        key: Id::ZERO,
        entry: WireEntry {
            writer: vec![],
            version: 1,
            lifetime_ms: 1,
            expires_ms: 0,
            tombstone: false,
            data: vec![0; 500],
            signature: [0; SIGNATURE_LEN],
            writer_tag: None,
        },
    });
    assert!(matches!(codec.encode(&big), Err(EncodeError::TooLarge(_))));
    let wide = Codec::new("t", None, 8192);
    let bytes = wide.encode(&big).unwrap();
    assert_eq!(codec.decode(&bytes), Err(DecodeError::TooLong));
}

proptest! {
    #[test]
    fn decoder_survives_garbage(data in prop::collection::vec(any::<u8>(), 0..600)) {
        let codec = Codec::new("t", None, 8192);
        let _ = codec.decode(&data);
    }

    #[test]
    fn decoder_survives_mutated_valid_datagrams(
        which in 0usize..28,
        edits in prop::collection::vec((any::<u16>(), any::<u8>()), 1..8),
    ) {
        let codec = Codec::new("test", None, 8192);
        let mut bytes = codec.encode(&msg(all_bodies()[which].clone())).unwrap();
        for (pos, val) in edits {
            let i = pos as usize % bytes.len();
            bytes[i] = val;
        }
        let _ = codec.decode(&bytes);
    }
}

/// A stand-in node key: the codec only places what it returns.
struct TestSigner;

impl DatagramSigner for TestSigner {
    fn public(&self) -> [u8; OWNER_LEN] {
        [9; OWNER_LEN]
    }
    fn sign(&self, bytes: &[u8]) -> [u8; SIGNATURE_LEN] {
        [bytes.len() as u8; SIGNATURE_LEN]
    }
}

/// Requests that need a proof carry a pair proof when one is asked for
/// (an HMAC-SHA256 under the pair key over everything before it), a
/// signature otherwise; responses carry the sender's key when flagged.
/// Every other message is unchanged by either.
#[test]
fn pair_proofs_and_sender_keys_round_trip() {
    let pair_key = [7u8; 32];
    for key in [None, Some(&b"secret"[..])] {
        let codec = Codec::new("test", key, 8192).with_signer(std::sync::Arc::new(TestSigner));
        for body in all_bodies() {
            let mut m = msg(body);
            let proven = m.body.needs_signature() && !m.body.is_response();
            let bytes = codec.encode_paired(&m, &pair_key).unwrap();
            let d = codec.decode_full(&bytes).unwrap();
            assert_eq!(d.msg, m, "{}", m.body.name());
            assert!(d.proof.is_none());
            assert_eq!(d.pair_proof.is_some(), proven, "{}", m.body.name());
            if let Some(p) = d.pair_proof {
                assert_eq!(p.public, [9; OWNER_LEN]);
                let mut mac = Hmac::<Sha256>::new_from_slice(&pair_key).unwrap();
                mac.update(&bytes[..p.len]);
                assert_eq!(p.mac, <[u8; 32]>::from(mac.finalize().into_bytes()));
                assert_eq!(bytes[4] & (FLAG_PAIRED | FLAG_SIGNED), FLAG_PAIRED);
            }
            for len in 0..bytes.len() {
                assert!(codec.decode_full(&bytes[..len]).is_err(), "{len}");
            }
            // Signed the usual way, it says so.
            let signed = codec.decode_full(&codec.encode(&m).unwrap()).unwrap();
            assert_eq!((signed.proof.is_some(), signed.pair_proof), (proven, None));
            // Only a response names its sender's key.
            m.flags |= FLAG_SENDER_KEY;
            let d = codec.decode_full(&codec.encode(&m).unwrap()).unwrap();
            m.flags &= !FLAG_SENDER_KEY;
            assert_eq!(d.msg, m);
            let named = m.body.is_response().then_some([9; OWNER_LEN]);
            assert_eq!(d.sender_key, named, "{}", m.body.name());
        }
    }
}

#[test]
fn a_datagram_both_signed_and_paired_is_refused() {
    let codec = Codec::new("test", None, 8192).with_signer(std::sync::Arc::new(TestSigner));
    let mut bytes = codec.encode_paired(&msg(Body::Notify), &[7; 32]).unwrap();
    bytes[4] |= FLAG_SIGNED;
    assert!(codec.decode_full(&bytes).is_err());
}
