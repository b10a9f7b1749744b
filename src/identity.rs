//! Node identity: every node has an Ed25519 node key, and its node id is
//! derived from the key's public half, so that a place on the ring cannot be
//! claimed without the key. Requests that move neighbours or data carry a
//! signature with that key (wire `FLAG_SIGNED`); the receiver checks that the
//! signature is good and that the claimed sender id is the key's. Pure logic.
//!
//! Derivation: `id = SHA-1("chordsip-node-id-1" || public key)` (20 bytes).
//! The id does not depend on the address, so a node keeps it when it moves;
//! whoever makes many keys can still pick among many ids (Sybil), which
//! only admission (the overlay key) bounds.

use crate::id::Id;
use crate::wire::{DatagramSigner, PairProof, Proof, OWNER_LEN, SIGNATURE_LEN};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};
use sha2::Sha256;
use std::collections::HashMap;

/// The id a node with public key `public` has.
pub fn node_id(public: &[u8; OWNER_LEN]) -> Id {
    let mut h = Sha1::new();
    h.update(b"chordsip-node-id-1");
    h.update(public);
    Id(h.finalize().into())
}

/// The key a node signs its membership and data messages with.
#[derive(Clone)]
pub struct NodeKey {
    signing: SigningKey,
    public: [u8; OWNER_LEN],
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeKey({})", crate::owner::hex(&self.public))
    }
}

impl NodeKey {
    /// The key whose secret is `seed` (32 bytes, e.g. from `chordsip keygen`).
    pub fn from_secret(seed: &[u8; 32]) -> NodeKey {
        let signing = SigningKey::from_bytes(seed);
        let public = signing.verifying_key().to_bytes();
        NodeKey { signing, public }
    }

    /// The id this key gives its node.
    pub fn id(&self) -> Id {
        node_id(&self.public)
    }
}

impl DatagramSigner for NodeKey {
    fn public(&self) -> [u8; OWNER_LEN] {
        self.public
    }

    fn sign(&self, bytes: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.signing.sign(bytes).to_bytes()
    }
}

/// The keys this node shares with its peers, one per peer, for pair proofs
/// (`wire::FLAG_PAIRED`): a static X25519 agreement between the two nodes'
/// Ed25519 keys in their Montgomery form, hashed with both public keys. Only
/// the two nodes can compute it, and a node's public key is certified by its
/// id, so a pair proof proves the sender as a signature does, to this one
/// receiver (no one else can check it; no one else needs to). Using one key
/// pair for Ed25519 and X25519 is the combination analysed in
/// <https://eprint.iacr.org/2021/509>; the agreement is computed once per
/// peer and kept.
pub struct PairKeys {
    node: NodeKey,
    shared: HashMap<[u8; OWNER_LEN], Option<[u8; 32]>>,
}

impl std::fmt::Debug for PairKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PairKeys({} peers)", self.shared.len())
    }
}

impl PairKeys {
    pub fn new(node: NodeKey) -> PairKeys {
        PairKeys {
            node,
            shared: HashMap::new(),
        }
    }

    /// The key this node shares with the node whose public key is `peer`;
    /// None for a key that is no point, or one of small order (whose
    /// agreement anyone could compute).
    pub fn with(&mut self, peer: &[u8; OWNER_LEN]) -> Option<[u8; 32]> {
        if self.shared.len() >= MAX_CACHED_KEYS && !self.shared.contains_key(peer) {
            self.shared.clear();
        }
        let node = &self.node;
        *self
            .shared
            .entry(*peer)
            .or_insert_with(|| pair_key(node, peer))
    }

    /// Whether `data[..proof.len]` carries a MAC under the key this node
    /// shares with `proof.public` and, unless `chosen_ids` (the simulator
    /// and tests only), `sender` is that key's id.
    pub fn check(&mut self, data: &[u8], proof: &PairProof, sender: &Id, chosen_ids: bool) -> bool {
        if !chosen_ids && node_id(&proof.public) != *sender {
            return false;
        }
        let (Some(signed), Some(key)) = (data.get(..proof.len), self.with(&proof.public)) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any length");
        mac.update(signed);
        mac.verify_slice(&proof.mac).is_ok()
    }
}

fn pair_key(node: &NodeKey, peer: &[u8; OWNER_LEN]) -> Option<[u8; 32]> {
    let theirs = VerifyingKey::from_bytes(peer)
        .ok()
        .filter(|k| !k.is_weak())?;
    let agreed = theirs
        .to_montgomery()
        .mul_clamped(node.signing.to_scalar_bytes());
    if agreed.as_bytes() == &[0; 32] {
        return None;
    }
    let (lo, hi) = match node.public <= *peer {
        true => (node.public, *peer),
        false => (*peer, node.public),
    };
    let mut h = Sha256::new();
    h.update(b"chordsip-pair-1");
    h.update(agreed.as_bytes());
    h.update(lo);
    h.update(hi);
    Some(h.finalize().into())
}

/// Checks datagram proofs, keeping the decoded public keys of recent peers.
#[derive(Debug, Default)]
pub struct ProofChecker {
    keys: HashMap<[u8; OWNER_LEN], Option<VerifyingKey>>,
}

/// Decoded keys kept at once; the cache starts over when full.
const MAX_CACHED_KEYS: usize = 4096;

impl ProofChecker {
    /// Whether `data[..proof.len]` was signed by `proof.public` and, unless
    /// `chosen_ids` (the simulator and tests only), `sender` is that key's id.
    pub fn check(&mut self, data: &[u8], proof: &Proof, sender: &Id, chosen_ids: bool) -> bool {
        if !chosen_ids && node_id(&proof.public) != *sender {
            return false;
        }
        let Some(signed) = data.get(..proof.len) else {
            return false;
        };
        if self.keys.len() >= MAX_CACHED_KEYS && !self.keys.contains_key(&proof.public) {
            self.keys.clear();
        }
        let key = self
            .keys
            .entry(proof.public)
            .or_insert_with(|| VerifyingKey::from_bytes(&proof.public).ok());
        let signature = Signature::from_bytes(&proof.signature);
        key.as_ref()
            .is_some_and(|k| k.verify_strict(signed, &signature).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_proofs_bind_the_bytes_the_id_and_the_pair() {
        let (a, b, c) = (
            NodeKey::from_secret(&[3; 32]),
            NodeKey::from_secret(&[4; 32]),
            NodeKey::from_secret(&[5; 32]),
        );
        let (mut at_a, mut at_b, mut at_c) = (
            PairKeys::new(a.clone()),
            PairKeys::new(b.clone()),
            PairKeys::new(c.clone()),
        );
        // Both ends agree; a third node computes another key with each.
        let ab = at_a.with(&b.public()).expect("a key");
        assert_eq!(at_b.with(&a.public()), Some(ab));
        assert_ne!(at_c.with(&a.public()), Some(ab));
        assert_ne!(at_c.with(&b.public()), Some(ab));
        let data = b"header and body".to_vec();
        let mut mac = Hmac::<Sha256>::new_from_slice(&ab).unwrap();
        mac.update(&data);
        let proof = PairProof {
            public: a.public(),
            mac: mac.finalize().into_bytes().into(),
            len: data.len(),
        };
        assert!(at_b.check(&data, &proof, &a.id(), false));
        // Another claimed id, changed bytes, another receiver: refused.
        assert!(!at_b.check(&data, &proof, &c.id(), false));
        let mut changed = data.clone();
        changed[0] ^= 1;
        assert!(!at_b.check(&changed, &proof, &a.id(), false));
        assert!(!at_c.check(&data, &proof, &a.id(), false));
        // c claims to be a with a's public key: it cannot compute a's MAC to b.
        let ac = at_c.with(&a.public()).unwrap();
        let mut forged = Hmac::<Sha256>::new_from_slice(&ac).unwrap();
        forged.update(&data);
        let forged = PairProof {
            mac: forged.finalize().into_bytes().into(),
            ..proof
        };
        assert!(!at_b.check(&data, &forged, &a.id(), false));
        assert!(!at_b.check(&data[..3], &proof, &a.id(), false));
        // A public key of small order agrees on a key anyone can compute: none.
        let mut identity = [0u8; OWNER_LEN];
        identity[0] = 1;
        assert_eq!(at_b.with(&identity), None);
        let no_point = (2..=255u8)
            .map(|i| [i; OWNER_LEN])
            .find(|k| VerifyingKey::from_bytes(k).is_err())
            .expect("some bytes decode to no point");
        assert_eq!(at_b.with(&no_point), None, "not a point");
    }

    #[test]
    fn proofs_bind_the_bytes_and_the_id() {
        let key = NodeKey::from_secret(&[3; 32]);
        let data = b"header and body".to_vec();
        let proof = Proof {
            public: key.public(),
            signature: key.sign(&data),
            len: data.len(),
        };
        let mut c = ProofChecker::default();
        assert!(c.check(&data, &proof, &key.id(), false));
        // Another claimed id, changed bytes, another key's signature: refused.
        assert!(!c.check(&data, &proof, &Id::from_u64(1), false));
        assert!(c.check(&data, &proof, &Id::from_u64(1), true));
        let mut changed = data.clone();
        changed[0] ^= 1;
        assert!(!c.check(&changed, &proof, &key.id(), false));
        let other = NodeKey::from_secret(&[4; 32]);
        let forged = Proof {
            signature: other.sign(&data),
            ..proof
        };
        assert!(!c.check(&data, &forged, &key.id(), false));
        assert!(!c.check(&data[..3], &proof, &key.id(), false));
        assert_ne!(key.id(), other.id());
    }
}
