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
use crate::wire::{DatagramSigner, Proof, OWNER_LEN, SIGNATURE_LEN};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha1::{Digest, Sha1};
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
