//! Record ownership: every stored entry is signed by its writer's key.
//!
//! An entry's slot in a key's dictionary is `owner public key | label`, so two
//! writers can never name the same slot, and every copy carries an Ed25519
//! signature over the key, the slot, the version, the removal flag, the
//! absolute expiry and the data. Every node that stores a copy (primary or
//! replica) and every node that reads one checks the signature, so a member of
//! the overlay cannot forge, replace or remove another writer's entry, nor keep
//! it alive past the expiry its writer signed. Pure logic, no I/O.
//!
//! Servers that act as one registrar share one writer key, so the holders
//! of a write often hold its writer's secret too. A write on its way from
//! its writer to its holders therefore also carries a *writer tag*, an HMAC
//! under a key derived from the writer secret, which such a holder checks
//! for the cost of a hash instead of an Ed25519 check: only a holder of the
//! secret can make it, and such a holder could sign anything anyway.

use crate::id::{Id, ID_LEN};
use crate::wire::{WireEntry, WRITER_TAG_LEN};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};

/// Part of the wire format (a slot starts with its owner's key; an entry
/// carries its signature), so defined there: `wire` needs nothing from here.
pub use crate::wire::{OWNER_LEN, SIGNATURE_LEN};
/// Bytes of a writer's secret key (an Ed25519 seed).
pub const SECRET_LEN: usize = 32;

/// The public half of a writer key: names the writer's slots.
pub type Owner = [u8; OWNER_LEN];

/// The key a node signs its writes with.
#[derive(Clone)]
pub struct WriterKey {
    signing: SigningKey,
    owner: Owner,
    /// The key of this writer's tags, derived from its secret.
    tag_key: TagKey,
}

/// The HMAC key of a writer's tags.
type TagKey = [u8; 32];

impl std::fmt::Debug for WriterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WriterKey({})", hex(&self.owner))
    }
}

impl WriterKey {
    /// The key whose secret is `seed` (32 bytes, e.g. from `chordsip keygen`).
    pub fn from_secret(seed: &[u8; SECRET_LEN]) -> WriterKey {
        let signing = SigningKey::from_bytes(seed);
        let owner = signing.verifying_key().to_bytes();
        let mut h = Sha256::new();
        h.update(b"chordsip-writer-tag-1");
        h.update(seed);
        WriterKey {
            signing,
            owner,
            tag_key: h.finalize().into(),
        }
    }

    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// The slot this writer's `label` names.
    pub fn slot(&self, label: &[u8]) -> Vec<u8> {
        let mut s = Vec::with_capacity(OWNER_LEN + label.len());
        s.extend_from_slice(&self.owner);
        s.extend_from_slice(label);
        s
    }

    /// Signs `e` (whose writer must be one of this key's slots) for `key`.
    pub fn sign(&self, key: &Id, e: &mut WireEntry) {
        e.signature = self.signing.sign(&signed_bytes(key, e)).to_bytes();
    }

    /// Adds this writer's tag to `e`, already signed for `key`.
    pub fn tag(&self, key: &Id, e: &mut WireEntry) {
        let tag = tag_mac(&self.tag_key, &signed_bytes(key, e), &e.signature).finalize();
        let bytes = tag.into_bytes();
        e.writer_tag = Some(bytes[..WRITER_TAG_LEN].try_into().expect("16 of 32 bytes"));
    }
}

/// The tag's MAC, fed with what it covers: the signed bytes and the
/// signature, so that a good tag vouches for the signature too (for the
/// readers that hold no secret and check it).
fn tag_mac(tag_key: &TagKey, message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(tag_key).expect("any key length");
    mac.update(message);
    mac.update(signature);
    mac
}

/// The owner and label of a slot; None for a slot too short to name an owner.
pub fn split_slot(slot: &[u8]) -> Option<(&Owner, &[u8])> {
    let (owner, label) = slot.split_first_chunk::<OWNER_LEN>()?;
    Some((owner, label))
}

/// What a signature covers. Lifetimes travel relative and shrink in transit,
/// so the signature covers the absolute expiry instead.
fn signed_bytes(key: &Id, e: &WireEntry) -> Vec<u8> {
    let mut m = Vec::with_capacity(64 + e.writer.len() + e.data.len());
    m.extend_from_slice(b"chordsip-entry-1");
    m.extend_from_slice(&key.0[..ID_LEN]);
    m.push(e.writer.len() as u8);
    m.extend_from_slice(&e.writer);
    m.extend_from_slice(&e.version.to_be_bytes());
    m.push(e.tombstone as u8);
    m.extend_from_slice(&e.expires_ms.to_be_bytes());
    m.extend_from_slice(&(e.data.len() as u32).to_be_bytes());
    m.extend_from_slice(&e.data);
    m
}

/// Checks entries' signatures, remembering the owners' decoded public keys
/// and the signatures it found good: a reader that gets the same unchanged
/// binding again and again (a proxy looking up a callee for each call)
/// checks it once, then pays a SHA-256 of it instead of an Ed25519 check.
#[derive(Default)]
pub struct Verifier {
    keys: HashMap<Owner, Option<VerifyingKey>>,
    /// The writers whose secret this node holds: their tags are checked
    /// instead of their signatures.
    tag_keys: Vec<(Owner, TagKey)>,
    /// Entries found good by their signature (one by one or in a batch),
    /// and by their writer tag.
    pub by_signature: u64,
    pub by_tag: u64,
    /// SHA-256 of (signed bytes, signature) of entries verified good: a
    /// memo of a pure function, sound as long as SHA-256 resists collisions.
    good: HashSet<[u8; 32]>,
}

/// Decoded owner keys kept at once; the cache starts over when full.
const MAX_CACHED_OWNERS: usize = 4096;
/// Good signatures remembered at once (32 bytes each, about 400 KB at
/// most); the memo starts over when full.
const MAX_REMEMBERED_GOOD: usize = 8192;

/// What the memo of good signatures remembers of an entry's check.
fn memo_key(message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(message);
    h.update(signature);
    h.finalize().into()
}

impl Verifier {
    /// Checks the tags of `writer`'s entries (this node holds its secret).
    pub fn trust_tags_of(&mut self, writer: &WriterKey) {
        if !self.tag_keys.iter().any(|(o, _)| o == writer.owner()) {
            self.tag_keys.push((writer.owner, writer.tag_key));
        }
    }

    /// Whether `e` carries a good tag of a writer whose secret this node holds.
    fn tagged(&self, message: &[u8], e: &WireEntry) -> bool {
        let (Some(tag), Some((owner, _))) = (&e.writer_tag, split_slot(&e.writer)) else {
            return false;
        };
        self.tag_keys.iter().any(|(o, k)| {
            o == owner
                && tag_mac(k, message, &e.signature)
                    .verify_truncated_left(tag)
                    .is_ok()
        })
    }

    /// Whether `e` was signed for `key` by the owner its slot names: its
    /// writer tag decides when this node holds the writer's secret and the
    /// tag is good, its signature otherwise.
    pub fn verify(&mut self, key: &Id, e: &WireEntry) -> bool {
        let message = signed_bytes(key, e);
        if self.tagged(&message, e) {
            self.by_tag += 1;
            return true;
        }
        let memo = memo_key(&message, &e.signature);
        if self.good.contains(&memo) {
            return true;
        }
        let Some(vk) = self.key_of(e) else {
            return false;
        };
        let sig = Signature::from_bytes(&e.signature);
        let ok = vk.verify_strict(&message, &sig).is_ok();
        if ok {
            self.by_signature += 1;
            self.remember(memo);
        }
        ok
    }

    fn remember(&mut self, memo: [u8; 32]) {
        if self.good.len() >= MAX_REMEMBERED_GOOD {
            self.good.clear();
        }
        self.good.insert(memo);
    }

    /// Whether every entry of `items` was signed by the owner its slot
    /// names, checked together (Ed25519 batch verification costs about half
    /// as much per signature from a few signatures on). False says only that
    /// one at least is not: [`Verifier::verify`] then tells which.
    pub fn verify_all(&mut self, items: &[(Id, &WireEntry)]) -> bool {
        if let [(key, e)] = items {
            return self.verify(key, e);
        }
        let mut messages = Vec::with_capacity(items.len());
        let mut signatures = Vec::with_capacity(items.len());
        let mut keys = Vec::with_capacity(items.len());
        let mut memos = Vec::with_capacity(items.len());
        let mut tagged = 0;
        for (key, e) in items {
            let message = signed_bytes(key, e);
            if self.tagged(&message, e) {
                tagged += 1;
                continue;
            }
            let memo = memo_key(&message, &e.signature);
            if self.good.contains(&memo) {
                continue;
            }
            // verify_strict refuses keys of small order; the batch equation
            // alone would not.
            let Some(vk) = self.key_of(e).filter(|k| !k.is_weak()) else {
                return false;
            };
            messages.push(message);
            signatures.push(Signature::from_bytes(&e.signature));
            keys.push(vk);
            memos.push(memo);
        }
        let ok = match messages.len() {
            0 => true,
            1 => keys[0].verify_strict(&messages[0], &signatures[0]).is_ok(),
            _ => {
                let messages: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
                ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
            }
        };
        if ok {
            self.by_tag += tagged;
            self.by_signature += memos.len() as u64;
            for memo in memos {
                self.remember(memo);
            }
        }
        ok
    }

    /// The decoded public key of the owner `e`'s slot names.
    fn key_of(&mut self, e: &WireEntry) -> Option<VerifyingKey> {
        let (owner, _) = split_slot(&e.writer)?;
        if self.keys.len() >= MAX_CACHED_OWNERS && !self.keys.contains_key(owner) {
            self.keys.clear();
        }
        *self
            .keys
            .entry(*owner)
            .or_insert_with(|| VerifyingKey::from_bytes(owner).ok())
    }
}

/// A new writer secret from the operating system's random source.
pub fn random_secret() -> [u8; SECRET_LEN] {
    use rand::RngCore;
    let mut k = [0u8; SECRET_LEN];
    rand::rngs::OsRng.fill_bytes(&mut k);
    k
}

/// Lower-case hex of `bytes` (keys in files, logs and reports).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses a writer secret written as 64 hex digits (surrounding whitespace ignored).
pub fn parse_secret(text: &str) -> Option<[u8; SECRET_LEN]> {
    parse_hex(text)
}

/// Parses an owner (a writer's public key) written as 64 hex digits, as
/// [`hex`] writes it.
pub fn parse_owner(text: &str) -> Option<Owner> {
    parse_hex(text)
}

fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let t = text.trim();
    if t.len() != N * 2 || !t.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(k: &WriterKey, label: &[u8], data: &[u8]) -> WireEntry {
        WireEntry {
            writer: k.slot(label),
            version: 5,
            lifetime_ms: 60_000,
            expires_ms: 1_000_000,
            tombstone: false,
            data: data.to_vec(),
            signature: [0; SIGNATURE_LEN],
            writer_tag: None,
        }
    }

    /// Six entries under keys 0..6, signed by `a` and `b` in turn (and
    /// tagged when `tagged`).
    fn signed_by_turns(a: &WriterKey, b: &WriterKey, tagged: bool) -> Vec<(Id, WireEntry)> {
        (0..6u64)
            .map(|i| {
                let w = if i % 2 == 0 { a } else { b };
                let key = Id::from_u64(i);
                let mut e = entry(w, b"i:phone", format!("contact {i}").as_bytes());
                w.sign(&key, &mut e);
                if tagged {
                    w.tag(&key, &mut e);
                }
                (key, e)
            })
            .collect()
    }

    fn batch(items: &[(Id, WireEntry)]) -> Vec<(Id, &WireEntry)> {
        items.iter().map(|(k, e)| (*k, e)).collect()
    }

    #[test]
    fn a_writer_tag_stands_for_the_signature_only_where_the_writer_secret_is_held() {
        let (shared, other) = (
            WriterKey::from_secret(&[3; 32]),
            WriterKey::from_secret(&[4; 32]),
        );
        let key = Id::from_name("sip:alice@example.com");
        let mut e = entry(&shared, b"i:phone", b"contact");
        shared.sign(&key, &mut e);
        shared.tag(&key, &mut e);
        let mut holder = Verifier::default();
        holder.trust_tags_of(&shared);
        holder.trust_tags_of(&other);
        assert!(holder.verify(&key, &e));
        assert_eq!((holder.by_tag, holder.by_signature), (1, 0));
        // The tag covers the signature: a good tag vouches for the bytes a
        // reader without the secret checks. A signature changed under a
        // tag made for another fails the tag and then the signature.
        let mut resigned = e.clone();
        resigned.signature[9] ^= 1;
        assert!(!holder.verify(&key, &resigned));
        // A bad tag, or one by another writer's secret, is no proof: the
        // signature decides (good here, so the entry still passes).
        let mut bad_tag = e.clone();
        bad_tag.writer_tag.as_mut().unwrap()[0] ^= 1;
        assert!(holder.verify(&key, &bad_tag));
        let mut others_tag = e.clone();
        other.tag(&key, &mut others_tag);
        assert!(holder.verify(&key, &others_tag));
        assert_eq!(
            (holder.by_tag, holder.by_signature),
            (1, 1),
            "the memo answered once"
        );
        // Any change to what was signed breaks the tag as it breaks the signature.
        let mut changed = e.clone();
        changed.data[0] ^= 1;
        assert!(!holder.verify(&key, &changed));
        assert!(!holder.verify(&Id::from_u64(1), &e));
        // A node without the secret ignores the tag, even a good one over a
        // bad signature (which only a holder of the secret could make).
        let mut outsider = Verifier::default();
        outsider.trust_tags_of(&other);
        let mut tagged_forgery = entry(&shared, b"i:phone", b"contact");
        tagged_forgery.signature = [7; SIGNATURE_LEN];
        shared.tag(&key, &mut tagged_forgery);
        assert!(
            holder.verify(&key, &tagged_forgery),
            "a holder trusts its own secret"
        );
        assert!(!outsider.verify(&key, &tagged_forgery));
        assert_eq!(outsider.by_tag, 0);
    }

    #[test]
    fn a_batch_takes_tagged_entries_by_their_tag_and_checks_the_rest() {
        let (shared, other) = (
            WriterKey::from_secret(&[3; 32]),
            WriterKey::from_secret(&[4; 32]),
        );
        let items = signed_by_turns(&shared, &other, true);
        let mut v = Verifier::default();
        v.trust_tags_of(&shared);
        assert!(v.verify_all(&batch(&items)));
        assert_eq!((v.by_tag, v.by_signature), (3, 3));
        // A forged signature among the entries checked by signature sinks the batch.
        let mut forged = items.clone();
        forged[1].1.signature[0] ^= 1;
        assert!(!Verifier::default().verify_all(&batch(&forged)));
        let mut holder = Verifier::default();
        holder.trust_tags_of(&shared);
        assert!(!holder.verify_all(&batch(&forged)));
    }

    #[test]
    fn a_signed_entry_verifies_and_any_change_breaks_it() {
        let k = WriterKey::from_secret(&[7; 32]);
        let key = Id::from_name("sip:alice@example.com");
        let mut e = entry(&k, b"i:phone", b"contact");
        k.sign(&key, &mut e);
        let mut v = Verifier::default();
        assert!(v.verify(&key, &e));
        // The lifetime travels outside the signature (it shrinks in transit).
        let mut shorter = e.clone();
        shorter.lifetime_ms = 10;
        assert!(v.verify(&key, &shorter));
        let changes: [fn(&mut WireEntry); 6] = [
            |e| e.data[0] ^= 1,
            |e| e.version += 1,
            |e| e.tombstone = true,
            |e| e.expires_ms += 1,
            |e| e.writer.push(b'x'),
            |e| e.signature[3] ^= 1,
        ];
        for change in changes {
            let mut bad = e.clone();
            change(&mut bad);
            assert!(!v.verify(&key, &bad), "{bad:?}");
        }
        assert!(!v.verify(&Id::from_name("sip:bob@example.com"), &e));
    }

    #[test]
    fn a_batch_verifies_only_when_every_entry_does() {
        let (alice, bob) = (
            WriterKey::from_secret(&[1; 32]),
            WriterKey::from_secret(&[2; 32]),
        );
        let genuine = signed_by_turns(&alice, &bob, false);
        let mut v = Verifier::default();
        assert!(v.verify_all(&batch(&genuine)));
        // One changed entry anywhere, or one signed for another key, sinks the batch.
        for i in 0..genuine.len() {
            let mut bad = genuine.clone();
            bad[i].1.data[0] ^= 1;
            assert!(!v.verify_all(&batch(&bad)), "changed entry {i}");
            let mut moved = genuine.clone();
            moved[i].0 = Id::from_u64(99);
            assert!(!v.verify_all(&batch(&moved)), "entry {i} under another key");
        }
        // A slot owned by the identity point with the trivial signature
        // (R = identity, S = 0) satisfies the batch equation for any bytes;
        // it is refused, as verify_strict refuses it alone.
        let mut identity = [0u8; OWNER_LEN];
        identity[0] = 1;
        let mut weak = genuine[0].1.clone();
        weak.writer = [identity.as_slice(), b"i:phone"].concat();
        weak.signature = [0; SIGNATURE_LEN];
        weak.signature[0] = 1;
        assert!(!v.verify(&genuine[0].0, &weak));
        let mut with_weak = genuine.clone();
        with_weak.push((genuine[0].0, weak));
        assert!(!v.verify_all(&batch(&with_weak)));
    }

    #[test]
    fn good_signatures_are_remembered_and_nothing_else() {
        let alice = WriterKey::from_secret(&[1; 32]);
        let key = Id::from_u64(5);
        let mut e = entry(&alice, b"i:phone", b"sip:alice@192.0.2.1");
        alice.sign(&key, &mut e);
        let mut v = Verifier::default();
        assert!(v.verify(&key, &e));
        assert_eq!(v.good.len(), 1);
        assert!(v.verify(&key, &e), "a remembered entry");
        assert!(v.verify_all(&[(key, &e), (key, &e)]));
        assert_eq!(v.good.len(), 1);
        // Any change to what was signed, or to the signature, is checked
        // afresh (and fails); a failure is never remembered.
        let mut changed = e.clone();
        changed.version += 1;
        assert!(!v.verify(&key, &changed));
        let mut resigned = e.clone();
        resigned.signature[5] ^= 1;
        assert!(!v.verify(&key, &resigned));
        assert!(!v.verify(&Id::from_u64(6), &e));
        assert!(!v.verify_all(&[(key, &e), (key, &changed)]));
        assert_eq!(v.good.len(), 1);
        // Bounded: the memo starts over when full.
        for i in 0..MAX_REMEMBERED_GOOD as u64 + 10 {
            v.remember(memo_key(&i.to_be_bytes(), &[0; SIGNATURE_LEN]));
        }
        assert!(v.good.len() <= MAX_REMEMBERED_GOOD);
    }

    #[test]
    fn another_writer_cannot_sign_for_a_slot() {
        let alice = WriterKey::from_secret(&[1; 32]);
        let mallory = WriterKey::from_secret(&[2; 32]);
        let key = Id::from_u64(9);
        let mut e = entry(&alice, b"i:phone", b"evil");
        mallory.sign(&key, &mut e);
        assert!(!Verifier::default().verify(&key, &e));
        let mut short = entry(&alice, b"", b"x");
        short.writer.truncate(10);
        alice.sign(&key, &mut short);
        assert!(!Verifier::default().verify(&key, &short));
    }

    #[test]
    fn secrets_parse_from_hex() {
        let s = hex(&[0xab; 32]);
        assert_eq!(parse_secret(&format!(" {s}\n")), Some([0xab; 32]));
        assert_eq!(parse_secret(&s[..62]), None);
        assert_eq!(parse_secret(&s.replace('a', "g")), None);
        assert_eq!(parse_secret(&"é".repeat(32)), None);
    }
}
