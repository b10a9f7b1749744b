//! This node's abilities (crate `ability`): announced once joined, rewritten
//! every third of `ability_ttl` with the current load, withdrawn when
//! dropped or when the node leaves. Announcements are written in the slot of
//! the node key (not the writer key, which servers of one registrar share),
//! so a reader can tell which node made each.

use super::{Engine, OpResult};
use crate::ability::{self, Ability};
use crate::error::Error;
use crate::types::OpId;
use crate::wire::WireEntry;
use std::collections::HashMap;
use std::time::Duration;

/// How soon a failed announcement is tried again.
const RETRY_US: u64 = 2_000_000;

#[derive(Default)]
pub(super) struct Announcements {
    pub(super) list: Vec<Ability>,
    /// When every ability is written again (0: as soon as joined).
    pub(super) next_at: u64,
    /// Internal writes in flight, by operation.
    pub(super) ops: HashMap<OpId, String>,
}

impl Engine {
    /// This node's abilities.
    pub fn abilities(&self) -> &[Ability] {
        &self.announce.list
    }

    /// Replaces this node's abilities: the new list is announced at once
    /// (when joined), abilities no longer in it are withdrawn.
    pub fn set_abilities(&mut self, now: u64, list: Vec<Ability>) {
        self.now = now;
        let dropped: Vec<String> = self
            .announce
            .list
            .iter()
            .filter(|old| !list.iter().any(|a| a.name == old.name))
            .map(|a| a.name.clone())
            .collect();
        self.announce.list = list;
        if self.phase == super::Phase::Joined {
            for name in dropped {
                let op = self.internal_op();
                self.announce.ops.insert(op, name.clone());
                self.withdraw_ability(now, op, &name, self.cfg.op_timeout);
            }
        }
        self.announce.next_at = now;
        self.after_step();
    }

    /// Forgets this node's abilities without withdrawing them (the Node API
    /// withdraws them itself, waiting, before a graceful leave).
    pub fn take_abilities(&mut self) -> Vec<Ability> {
        std::mem::take(&mut self.announce.list)
    }

    /// Writes a removal of this node's announcement of `name` (the Node API
    /// does it, waiting, before a graceful leave; `set_abilities` without
    /// waiting). Completes as a put.
    pub fn withdraw_ability(&mut self, now: u64, op: OpId, name: &str, timeout: Duration) {
        self.now = now;
        let version = self.next_version();
        let entry = self.tombstone(name.as_bytes(), version);
        self.start_put_as(op, ability::key(name), entry, timeout, true);
    }

    /// Announces every ability again, when due (the periodic job).
    pub(super) fn announce_due(&mut self) {
        if self.now < self.announce.next_at || self.announce.list.is_empty() {
            return;
        }
        let ttl = self.cfg.ability_ttl;
        self.announce.next_at = self.now + self.jitter(ttl / 3);
        let lifetime_ms = ttl.as_millis().min(u32::MAX as u128) as u32;
        for a in self.announce.list.clone() {
            let data = ability::encode(&a, &self.me.id, self.me.addr);
            let version = self.next_version();
            let entry = WireEntry::unsigned(
                a.name.as_bytes().to_vec(),
                version,
                lifetime_ms,
                false,
                data,
            );
            let op = self.internal_op();
            self.announce.ops.insert(op, a.name.clone());
            let timeout = self.cfg.op_timeout;
            self.start_put_as(op, ability::key(&a.name), entry, timeout, true);
        }
    }

    /// When the periodic job must next run (None: nothing to announce).
    pub(super) fn next_announce(&self) -> Option<u64> {
        (!self.announce.list.is_empty()).then_some(self.announce.next_at)
    }

    /// Takes the completion of an internal announcement; false for any other op.
    pub(super) fn announce_completed(&mut self, op: OpId, result: &OpResult) -> bool {
        let Some(name) = self.announce.ops.remove(&op) else {
            return false;
        };
        match result {
            OpResult::Put(Ok(_)) => self.stats.abilities_announced += 1,
            OpResult::Put(Err(e)) => {
                self.stats.ability_announce_failures += 1;
                self.log_ability_failure(&name, e);
                self.announce.next_at = self.announce.next_at.min(self.now + RETRY_US);
            }
            _ => {}
        }
        true
    }

    fn log_ability_failure(&mut self, name: &str, e: &Error) {
        self.log(crate::config::LogLevel::Warn, || {
            format!("announcing ability {name} failed: {e}; trying again")
        });
    }
}
