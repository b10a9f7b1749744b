//! Local storage: key -> dictionary of entries, one entry per writer.
//!
//! Pure data structure with no I/O and no clock of its own: the caller passes
//! `now` (microseconds on the node's monotonic clock). Versions order writes so
//! that an older write never replaces a newer one, whatever order replicas
//! receive them in; ties are broken deterministically so replicas converge.

use crate::id::Id;
use crate::wire::{ItemSummary, WireEntry, SIGNATURE_LEN};
use sha1::{Digest, Sha1};
use std::collections::BTreeMap;
use std::ops::Bound;

/// One writer's slot in a key's dictionary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub writer: Box<[u8]>,
    pub version: u64,
    /// Monotonic microseconds at which the entry vanishes.
    pub expires_at: u64,
    pub tombstone: bool,
    pub data: Box<[u8]>,
    /// The writer's signed wall-clock expiry and signature (crate::owner).
    pub expires_ms: u64,
    pub signature: [u8; SIGNATURE_LEN],
    /// Hash of (key, writer, version, tombstone) for range digests.
    fingerprint: u64,
}

impl Entry {
    pub fn new(
        key: &Id,
        writer: &[u8],
        version: u64,
        expires_at: u64,
        tombstone: bool,
        data: &[u8],
    ) -> Entry {
        Entry {
            writer: writer.into(),
            version,
            expires_at,
            tombstone,
            data: data.into(),
            expires_ms: 0,
            signature: [0; SIGNATURE_LEN],
            fingerprint: fingerprint(key, writer, version, tombstone),
        }
    }

    pub fn from_wire(key: &Id, w: &WireEntry, now: u64) -> Entry {
        let mut e = Entry::new(
            key,
            &w.writer,
            w.version,
            now + w.lifetime_ms as u64 * 1000,
            w.tombstone,
            &w.data,
        );
        e.expires_ms = w.expires_ms;
        e.signature = w.signature;
        e
    }

    pub fn to_wire(&self, now: u64) -> WireEntry {
        let remaining_ms = self.expires_at.saturating_sub(now) / 1000;
        WireEntry {
            writer: self.writer.to_vec(),
            version: self.version,
            lifetime_ms: remaining_ms.min(u32::MAX as u64) as u32,
            expires_ms: self.expires_ms,
            tombstone: self.tombstone,
            data: self.data.to_vec(),
            signature: self.signature,
            writer_tag: None,
        }
    }

    pub fn is_live(&self, now: u64) -> bool {
        self.expires_at > now
    }

    /// Total order used to pick the winner between two writes of one slot.
    fn rank(&self) -> (u64, bool, &[u8]) {
        (self.version, self.tombstone, &self.data)
    }
}

fn fingerprint(key: &Id, writer: &[u8], version: u64, tombstone: bool) -> u64 {
    let mut h = Sha1::new();
    h.update(key.0);
    h.update([writer.len() as u8]);
    h.update(writer);
    h.update(version.to_be_bytes());
    h.update([tombstone as u8]);
    u64::from_be_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
}

/// Limits that protect a node's memory. Exceeding one is a clear error, never a drop.
#[derive(Clone, Debug)]
pub struct StoreLimits {
    pub max_value_bytes: usize,
    pub max_writer_bytes: usize,
    pub max_entries_per_key: usize,
    pub max_keys: usize,
    /// Longest lifetime a write may ask for.
    pub max_lifetime_ms: u32,
    /// Bytes this node stores at most: values, slots and a fixed cost per
    /// entry (`ENTRY_COST`), so that many small entries count too.
    pub max_store_bytes: usize,
    /// Entries one owner (writer key) may hold under a key, unless it is a
    /// main writer: a stranger's key cannot fill an AOR on its own.
    pub max_entries_per_owner: usize,
    /// Owners exempt from the per-owner quota, for whom the last
    /// `max_entries_per_owner` places of every key stay free: the node's own
    /// writer key and the keys configured as trusted (a registrar's).
    pub main_writers: Vec<[u8; crate::wire::OWNER_LEN]>,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_value_bytes: 4096,
            max_writer_bytes: 128,
            max_entries_per_key: 64,
            max_keys: 1_000_000,
            max_lifetime_ms: 7 * 24 * 3600 * 1000,
            max_store_bytes: 256 << 20,
            max_entries_per_owner: 16,
            main_writers: Vec::new(),
        }
    }
}

/// What an entry costs against `max_store_bytes` beyond its slot and value:
/// the signature, version, expiries and bookkeeping.
pub const ENTRY_COST: usize = 128;

impl StoreLimits {
    /// Places under one key that owners other than the main writers may take.
    pub fn foreign_places(&self) -> usize {
        let reserve = self.max_entries_per_owner.min(self.max_entries_per_key / 2);
        self.max_entries_per_key - reserve
    }

    fn is_main(&self, owner: &[u8]) -> bool {
        self.main_writers.iter().any(|m| m[..] == *owner)
    }
    /// The size rules a write must meet anywhere (the writer's node checks them
    /// before routing, the responsible node again before storing); `label` is
    /// the writer's part of the slot.
    pub fn check_sizes(&self, label: &[u8], data: &[u8]) -> Result<(), StoreError> {
        if data.len() > self.max_value_bytes {
            return Err(StoreError::ValueTooLarge);
        }
        if label.len() > self.max_writer_bytes {
            return Err(StoreError::WriterTooLarge);
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// The entry is new or newer than what was there.
    Stored,
    /// The very same version was already there (lifetime extended if longer).
    Unchanged,
    /// A newer version is stored; the write was refused.
    Stale,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreError {
    ValueTooLarge,
    WriterTooLarge,
    KeyFull,
    NodeFull,
}

/// The node's local share of the overlay's data (primary copies and replicas alike).
#[derive(Debug)]
pub struct Store {
    keys: BTreeMap<Id, Vec<Entry>>,
    limits: StoreLimits,
    entries: usize,
    value_bytes: usize,
    /// What the stored entries cost against `max_store_bytes`.
    stored_bytes: usize,
}

/// The owner part of a slot (the whole slot when it is shorter than a key,
/// as in tests and raw writes).
fn owner_of(writer: &[u8]) -> &[u8] {
    writer.get(..crate::wire::OWNER_LEN).unwrap_or(writer)
}

fn cost(e: &Entry) -> usize {
    ENTRY_COST + e.writer.len() + e.data.len()
}

impl Store {
    pub fn new(limits: StoreLimits) -> Store {
        Store {
            keys: BTreeMap::new(),
            limits,
            entries: 0,
            value_bytes: 0,
            stored_bytes: 0,
        }
    }

    pub fn limits(&self) -> &StoreLimits {
        &self.limits
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    pub fn entry_count(&self) -> usize {
        self.entries
    }

    pub fn value_bytes(&self) -> usize {
        self.value_bytes
    }

    /// What the stored entries cost against `max_store_bytes`.
    pub fn stored_bytes(&self) -> usize {
        self.stored_bytes
    }

    /// Checks a write against the limits without storing it. `writer` is a
    /// slot (crate::owner): the writer-size limit applies to its label.
    pub fn check(&self, key: &Id, writer: &[u8], data: &[u8]) -> Result<(), StoreError> {
        let label = writer.get(crate::wire::OWNER_LEN..).unwrap_or_default();
        self.limits.check_sizes(label, data)?;
        let dict = self.keys.get(key);
        let old = dict.and_then(|d| d.iter().find(|e| *e.writer == *writer));
        let grows = (ENTRY_COST + writer.len() + data.len()).saturating_sub(old.map_or(0, cost));
        if self.stored_bytes + grows > self.limits.max_store_bytes {
            return Err(StoreError::NodeFull);
        }
        if old.is_some() {
            return Ok(()); // replacing a slot takes no new place
        }
        let Some(dict) = dict else {
            return match self.keys.len() >= self.limits.max_keys {
                true => Err(StoreError::NodeFull),
                false => Ok(()),
            };
        };
        if dict.len() >= self.limits.max_entries_per_key {
            return Err(StoreError::KeyFull);
        }
        let owner = owner_of(writer);
        if self.limits.is_main(owner) {
            return Ok(());
        }
        let own = dict.iter().filter(|e| owner_of(&e.writer) == owner).count();
        let foreign = dict
            .iter()
            .filter(|e| !self.limits.is_main(owner_of(&e.writer)))
            .count();
        if own >= self.limits.max_entries_per_owner || foreign >= self.limits.foreign_places() {
            return Err(StoreError::KeyFull);
        }
        Ok(())
    }

    /// Whether storing `entry` could change anything: it is new, newer, or
    /// the same version carrying another signed expiry or signature. Only
    /// such entries need their signature checked.
    pub fn is_news(&self, key: &Id, entry: &Entry) -> bool {
        let Some(slot) = self
            .keys
            .get(key)
            .and_then(|d| d.iter().find(|e| e.writer == entry.writer))
        else {
            return true;
        };
        match entry.rank().cmp(&slot.rank()) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => {
                entry.expires_ms != slot.expires_ms || entry.signature != slot.signature
            }
        }
    }

    /// Records the signature of a stored entry that was kept unsigned (its
    /// writer's own node signs it when a copy first leaves).
    pub fn set_signature(
        &mut self,
        key: &Id,
        writer: &[u8],
        version: u64,
        tombstone: bool,
        signature: [u8; SIGNATURE_LEN],
    ) {
        if let Some(e) = self.keys.get_mut(key).and_then(|d| {
            d.iter_mut()
                .find(|e| *e.writer == *writer && e.version == version && e.tombstone == tombstone)
        }) {
            e.signature = signature;
        }
    }

    /// Stores `entry` under `key` unless a newer version of the same writer's slot exists.
    pub fn put(&mut self, key: Id, entry: Entry) -> Result<PutOutcome, StoreError> {
        self.check(&key, &entry.writer, &entry.data)?;
        // Most keys hold one entry (one device per AOR): a Vec would reserve four.
        let dict = self
            .keys
            .entry(key)
            .or_insert_with(|| Vec::with_capacity(1));
        if let Some(slot) = dict.iter_mut().find(|e| e.writer == entry.writer) {
            return Ok(match entry.rank().cmp(&slot.rank()) {
                std::cmp::Ordering::Greater => {
                    self.value_bytes = self.value_bytes - slot.data.len() + entry.data.len();
                    self.stored_bytes = self.stored_bytes - cost(slot) + cost(&entry);
                    *slot = entry;
                    PutOutcome::Stored
                }
                std::cmp::Ordering::Equal => {
                    slot.expires_at = slot.expires_at.max(entry.expires_at);
                    PutOutcome::Unchanged
                }
                std::cmp::Ordering::Less => PutOutcome::Stale,
            });
        }
        self.entries += 1;
        self.value_bytes += entry.data.len();
        self.stored_bytes += cost(&entry);
        dict.push(entry);
        Ok(PutOutcome::Stored)
    }

    /// Every unexpired entry of a key, tombstones included (what replication copies).
    pub fn entries(&self, key: &Id, now: u64) -> Vec<&Entry> {
        self.keys
            .get(key)
            .map(|d| d.iter().filter(|e| e.is_live(now)).collect())
            .unwrap_or_default()
    }

    /// The values a reader sees: unexpired and not removed.
    pub fn values(&self, key: &Id, now: u64) -> Vec<&Entry> {
        self.keys
            .get(key)
            .map(|d| {
                d.iter()
                    .filter(|e| e.is_live(now) && !e.tombstone)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Keys in the ring interval (lo, hi].
    pub fn keys_in(&self, lo: &Id, hi: &Id) -> Vec<Id> {
        self.range(lo, hi).map(|(k, _)| *k).collect()
    }

    /// Keys outside the ring interval (lo, hi].
    pub fn keys_outside(&self, lo: &Id, hi: &Id, limit: usize) -> Vec<Id> {
        // (hi, lo] is the complement of (lo, hi].
        if lo == hi {
            return Vec::new();
        }
        self.range(hi, lo).map(|(k, _)| *k).take(limit).collect()
    }

    pub fn all_keys(&self) -> impl Iterator<Item = &Id> {
        self.keys.keys()
    }

    fn range<'a>(
        &'a self,
        lo: &Id,
        hi: &Id,
    ) -> Box<dyn Iterator<Item = (&'a Id, &'a Vec<Entry>)> + 'a> {
        use Bound::{Excluded, Included, Unbounded};
        if lo < hi {
            Box::new(self.keys.range((Excluded(*lo), Included(*hi))))
        } else {
            // Wraps through zero (or, when lo == hi, the whole ring).
            Box::new(
                self.keys
                    .range((Excluded(*lo), Unbounded))
                    .chain(self.keys.range((Unbounded, Included(*hi)))),
            )
        }
    }

    /// XOR of fingerprints and count of the live entries in (lo, hi].
    pub fn range_digest(&self, lo: &Id, hi: &Id, now: u64) -> (u64, u32) {
        let mut digest = 0u64;
        let mut count = 0u32;
        for (_, dict) in self.range(lo, hi) {
            for e in dict.iter().filter(|e| e.is_live(now)) {
                digest ^= e.fingerprint;
                count += 1;
            }
        }
        (digest, count)
    }

    /// Summaries of the live entries in (lo, hi], for a sync exchange.
    pub fn range_summaries(&self, lo: &Id, hi: &Id, now: u64) -> Vec<ItemSummary> {
        let mut out = Vec::new();
        for (k, dict) in self.range(lo, hi) {
            for e in dict.iter().filter(|e| e.is_live(now)) {
                out.push(ItemSummary {
                    key: *k,
                    writer: e.writer.to_vec(),
                    version: e.version,
                });
            }
        }
        out
    }

    /// Whether we lack this entry or hold an older version of it.
    pub fn needs(&self, item: &ItemSummary, now: u64) -> bool {
        match self.keys.get(&item.key) {
            None => true,
            Some(d) => match d.iter().find(|e| *e.writer == *item.writer) {
                None => true,
                Some(e) => !e.is_live(now) || e.version < item.version,
            },
        }
    }

    /// The entry of one writer, if live.
    pub fn entry(&self, key: &Id, writer: &[u8], now: u64) -> Option<&Entry> {
        self.keys
            .get(key)?
            .iter()
            .find(|e| *e.writer == *writer && e.is_live(now))
    }

    pub fn remove_key(&mut self, key: &Id) -> usize {
        match self.keys.remove(key) {
            Some(d) => {
                self.entries -= d.len();
                self.value_bytes -= d.iter().map(|e| e.data.len()).sum::<usize>();
                self.stored_bytes -= d.iter().map(cost).sum::<usize>();
                d.len()
            }
            None => 0,
        }
    }

    /// Drops expired entries; returns how many went.
    pub fn expire(&mut self, now: u64) -> usize {
        let mut gone = 0;
        let mut bytes = 0;
        let mut costs = 0;
        self.keys.retain(|_, dict| {
            dict.retain(|e| {
                let live = e.is_live(now);
                if !live {
                    gone += 1;
                    bytes += e.data.len();
                    costs += cost(e);
                }
                live
            });
            !dict.is_empty()
        });
        self.entries -= gone;
        self.value_bytes -= bytes;
        self.stored_bytes -= costs;
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: u64 = 1_000_000;

    fn e(key: &Id, writer: &str, version: u64, expires_s: u64, data: &str) -> Entry {
        Entry::new(
            key,
            writer.as_bytes(),
            version,
            expires_s * S,
            false,
            data.as_bytes(),
        )
    }

    #[test]
    fn newer_version_wins_whatever_the_order() {
        let k = Id::from_name("sip:alice@example.com");
        let mut a = Store::new(StoreLimits::default());
        let mut b = Store::new(StoreLimits::default());
        let old = e(&k, "phone", 1, 100, "old");
        let new = e(&k, "phone", 2, 100, "new");
        assert_eq!(a.put(k, old.clone()).unwrap(), PutOutcome::Stored);
        assert_eq!(a.put(k, new.clone()).unwrap(), PutOutcome::Stored);
        assert_eq!(b.put(k, new.clone()).unwrap(), PutOutcome::Stored);
        assert_eq!(b.put(k, old).unwrap(), PutOutcome::Stale);
        assert_eq!(&*a.values(&k, 0)[0].data, b"new");
        assert_eq!(&*b.values(&k, 0)[0].data, b"new");
        assert_eq!(b.put(k, new).unwrap(), PutOutcome::Unchanged);
        assert_eq!(a.entry_count(), 1);
    }

    #[test]
    fn writers_have_separate_slots() {
        let k = Id::from_name("aor");
        let mut s = Store::new(StoreLimits::default());
        s.put(k, e(&k, "desk", 5, 100, "a")).unwrap();
        s.put(k, e(&k, "mobile", 1, 100, "b")).unwrap();
        assert_eq!(s.values(&k, 0).len(), 2);
    }

    #[test]
    fn tombstone_hides_value_and_blocks_older_write() {
        let k = Id::from_name("aor");
        let mut s = Store::new(StoreLimits::default());
        s.put(k, e(&k, "w", 1, 100, "v")).unwrap();
        let tomb = Entry::new(&k, b"w", 2, 100 * S, true, b"");
        assert_eq!(s.put(k, tomb).unwrap(), PutOutcome::Stored);
        assert!(s.values(&k, 0).is_empty());
        assert_eq!(s.entries(&k, 0).len(), 1);
        assert_eq!(
            s.put(k, e(&k, "w", 1, 100, "v")).unwrap(),
            PutOutcome::Stale
        );
    }

    #[test]
    fn expiry_removes_and_accounts() {
        let k = Id::from_name("aor");
        let mut s = Store::new(StoreLimits::default());
        s.put(k, e(&k, "a", 1, 10, "xx")).unwrap();
        s.put(k, e(&k, "b", 1, 20, "yyy")).unwrap();
        assert_eq!(s.values(&k, 15 * S).len(), 1);
        assert_eq!(s.expire(15 * S), 1);
        assert_eq!((s.entry_count(), s.value_bytes()), (1, 3));
        assert_eq!(s.expire(25 * S), 1);
        assert_eq!((s.key_count(), s.entry_count(), s.value_bytes()), (0, 0, 0));
    }

    #[test]
    fn limits_give_clear_errors() {
        let limits = StoreLimits {
            max_value_bytes: 4,
            max_writer_bytes: 3,
            // Two places for strangers, two kept for the main writers.
            max_entries_per_key: 4,
            max_entries_per_owner: 4,
            max_keys: 2,
            ..StoreLimits::default()
        };
        let mut s = Store::new(limits);
        let k = Id::from_u64(1);
        assert_eq!(
            s.put(k, e(&k, "a", 1, 9, "12345")),
            Err(StoreError::ValueTooLarge)
        );
        assert_eq!(
            s.put(k, e(&k, &format!("{}abcd", "o".repeat(32)), 1, 9, "1")),
            Err(StoreError::WriterTooLarge)
        );
        s.put(k, e(&k, "a", 1, 9, "1")).unwrap();
        s.put(k, e(&k, "b", 1, 9, "1")).unwrap();
        assert_eq!(s.put(k, e(&k, "c", 1, 9, "1")), Err(StoreError::KeyFull));
        // Replacing an existing writer's slot is still allowed when the key is full.
        s.put(k, e(&k, "b", 2, 9, "2")).unwrap();
        let k2 = Id::from_u64(2);
        s.put(k2, e(&k2, "a", 1, 9, "1")).unwrap();
        let k3 = Id::from_u64(3);
        assert_eq!(s.put(k3, e(&k3, "a", 1, 9, "1")), Err(StoreError::NodeFull));
    }

    fn slot(owner: u8, label: &str) -> String {
        let mut s = String::from_utf8(vec![b'a' + owner; 32]).unwrap();
        s.push_str(label);
        s
    }

    #[test]
    fn one_owner_cannot_fill_a_key_and_the_main_writer_keeps_room() {
        let main = [b'a' + 9; 32];
        let limits = StoreLimits {
            max_entries_per_key: 8,
            max_entries_per_owner: 2,
            main_writers: vec![main],
            ..StoreLimits::default()
        };
        assert_eq!(limits.foreign_places(), 6);
        let mut s = Store::new(limits);
        let k = Id::from_u64(7);
        s.put(k, e(&k, &slot(1, "x"), 1, 9, "v")).unwrap();
        s.put(k, e(&k, &slot(1, "y"), 1, 9, "v")).unwrap();
        assert_eq!(
            s.put(k, e(&k, &slot(1, "z"), 1, 9, "v")),
            Err(StoreError::KeyFull),
            "an owner's third entry"
        );
        // Its own slots can still be replaced.
        s.put(k, e(&k, &slot(1, "y"), 2, 9, "w")).unwrap();
        for o in 2..4 {
            for l in ["x", "y"] {
                s.put(k, e(&k, &slot(o, l), 1, 9, "v")).unwrap();
            }
        }
        assert_eq!(
            s.put(k, e(&k, &slot(4, "x"), 1, 9, "v")),
            Err(StoreError::KeyFull),
            "strangers hold their six places"
        );
        s.put(k, e(&k, &slot(9, "x"), 1, 9, "v")).unwrap();
        s.put(k, e(&k, &slot(9, "y"), 1, 9, "v")).unwrap();
        assert_eq!(
            s.put(k, e(&k, &slot(9, "z"), 1, 9, "v")),
            Err(StoreError::KeyFull),
            "the key is full"
        );
    }

    #[test]
    fn total_bytes_are_capped_and_freed() {
        let one = ENTRY_COST + 1 + 10;
        let limits = StoreLimits {
            max_store_bytes: 3 * one,
            ..StoreLimits::default()
        };
        let mut s = Store::new(limits);
        for i in 0..3u64 {
            let k = Id::from_u64(i);
            s.put(k, e(&k, "w", 1, 9, "0123456789")).unwrap();
        }
        assert_eq!(s.stored_bytes(), 3 * one);
        let k = Id::from_u64(3);
        assert_eq!(
            s.put(k, e(&k, "w", 1, 9, "0123456789")),
            Err(StoreError::NodeFull)
        );
        // A same-size replacement fits; a larger one does not.
        let k0 = Id::from_u64(0);
        s.put(k0, e(&k0, "w", 2, 9, "abcdefghij")).unwrap();
        assert_eq!(
            s.put(k0, e(&k0, "w", 3, 9, "abcdefghijk")),
            Err(StoreError::NodeFull)
        );
        s.remove_key(&k0);
        s.put(k, e(&k, "w", 1, 9, "0123456789")).unwrap();
        assert_eq!(s.expire(10 * S), 3);
        assert_eq!(s.stored_bytes(), 0);
    }

    #[test]
    fn ranges_wrap_around() {
        let mut s = Store::new(StoreLimits::default());
        for i in [1u64, 5, 10, 20] {
            let k = Id::from_u64(i);
            s.put(k, e(&k, "w", 1, 100, "v")).unwrap();
        }
        assert_eq!(s.keys_in(&Id::from_u64(1), &Id::from_u64(10)).len(), 2);
        assert_eq!(s.keys_in(&Id::from_u64(10), &Id::from_u64(1)).len(), 2);
        assert_eq!(s.keys_in(&Id::from_u64(7), &Id::from_u64(7)).len(), 4);
        assert_eq!(
            s.keys_outside(&Id::from_u64(1), &Id::from_u64(10), 99)
                .len(),
            2
        );
    }

    proptest! {
        /// Replicas that receive the same writes in any order hold the same thing
        /// and agree on the digest.
        #[test]
        fn replicas_converge(writes in prop::collection::vec((0u8..4, 0u8..3, 0u64..5, any::<bool>()), 1..40),
                             seed in any::<u64>()) {
            let mut a = Store::new(StoreLimits::default());
            let mut b = Store::new(StoreLimits::default());
            let items: Vec<(Id, Entry)> = writes.iter().map(|(k, w, v, t)| {
                let key = Id::from_u64(*k as u64);
                (key, Entry::new(&key, &[*w], *v, 100 * S, *t, &[*k, *w, *v as u8]))
            }).collect();
            for (k, en) in &items { a.put(*k, en.clone()).unwrap(); }
            let mut shuffled = items.clone();
            let n = shuffled.len();
            for i in 0..n { shuffled.swap(i, (seed as usize).wrapping_mul(i + 7) % n); }
            for (k, en) in shuffled { b.put(k, en).unwrap(); }
            prop_assert_eq!(a.range_digest(&Id::ZERO, &Id::ZERO, 0), b.range_digest(&Id::ZERO, &Id::ZERO, 0));
            for k in 0..4u64 {
                let key = Id::from_u64(k);
                let mut ea = a.entries(&key, 0);
                let mut eb = b.entries(&key, 0);
                ea.sort_by(|x, y| x.writer.cmp(&y.writer));
                eb.sort_by(|x, y| x.writer.cmp(&y.writer));
                prop_assert_eq!(ea, eb);
            }
        }
    }
}
