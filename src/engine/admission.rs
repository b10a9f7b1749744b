//! Who may talk to this node, and how much it answers: the checks a request
//! passes before any work is done for it.
//!
//! - **Receiver binding**: a datagram names the node it is for; one for
//!   another node is dropped, and only reads may come unaddressed.
//! - **Replay cache**: an authenticated request (tagged or signed) is served
//!   once; a copy, from any source port, is dropped for the replay window.
//! - **Node identity**: a request that moves neighbours or data must carry a
//!   signature by the sender's node key (crate::identity); a Replicate from
//!   outside the neighbourhood is refused before that signature is checked.
//! - **Return routability**: a cookie (a MAC of the address, changed every
//!   five minutes) proves a requester receives at its source address. From
//!   an unproven address a node serves only requests whose answer is never
//!   larger than the request (acks and statuses); any other (a Notify, a
//!   read, a client's lookup) gets a Retry carrying the cookie, before any
//!   work is done. A last check on the way out keeps every answer to an
//!   unproven address within the request's size.

use super::Engine;
use crate::id::Id;
use crate::wire::{self, Body, Decoded, Message, NodeInfo, FLAG_CLIENT};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;

/// What becomes of a request after admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Admission {
    /// Serve it; `proven`: its source address answered a cookie.
    Serve { proven: bool },
    /// Answer with a Retry (our id and the cookie to ask again with).
    Retry,
    /// Drop it unanswered (counted as unauthenticated).
    Drop,
}

/// Seconds a cookie epoch lasts; a cookie of this or the last epoch is valid.
const COOKIE_EPOCH_S: u64 = 300;

/// Cookies of other nodes kept at once (the map starts over when full).
const MAX_COOKIES: usize = 4096;

/// Requests whose answer budget is remembered at once.
const MAX_BUDGETS: usize = 65_536;

/// Authenticated requests remembered for the replay window, at most.
const MAX_REPLAYS: usize = 65_536;

/// Datagrams seen in the replay window. When full, the oldest is forgotten
/// and nothing stamped at or before it is accepted any more: the window
/// shrinks under a flood rather than letting a replay through.
#[derive(Debug, Default)]
pub(super) struct ReplayCache {
    seen: HashSet<u128>,
    order: VecDeque<(u64, u128)>,
    floor_ms: u64,
}

impl ReplayCache {
    /// Records the datagram with fingerprint `fp` stamped `ts_ms`; false if
    /// it was seen before (or is older than what the cache still covers).
    fn first_time(&mut self, fp: u128, ts_ms: u64, now_ms: u64, window_ms: u64) -> bool {
        let horizon = now_ms.saturating_sub(window_ms);
        while self.order.front().is_some_and(|(t, _)| *t < horizon) {
            if let Some((_, old)) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        if ts_ms <= self.floor_ms || self.seen.contains(&fp) {
            return false;
        }
        if self.order.len() >= MAX_REPLAYS {
            if let Some((t, old)) = self.order.pop_front() {
                self.seen.remove(&old);
                self.floor_ms = self.floor_ms.max(t);
            }
        }
        self.seen.insert(fp);
        self.order.push_back((ts_ms, fp));
        true
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.seen.len()
    }
}

/// Answer budgets of requests not yet answered (most are answered at
/// once, so the map stays small); when full it starts over, and the answers
/// then pending get the smallest budget.
#[derive(Debug, Default)]
pub(super) struct Budgets {
    bytes: HashMap<(SocketAddr, u64), usize>,
}

impl Engine {
    /// The checks of the module doc, in order of cost.
    pub(super) fn admission(&mut self, from: SocketAddr, data: &[u8], d: &Decoded) -> Admission {
        let msg = &d.msg;
        if msg.receiver != Id::ZERO && msg.receiver != self.me.id {
            return Admission::Drop;
        }
        let proven = wire::is_unix_alias(&from) || self.cookie_valid(&from, msg.cookie);
        if msg.receiver == Id::ZERO && !msg.body.may_be_unaddressed() {
            return Admission::Retry;
        }
        if msg.body.needs_signature() {
            let peer = Some(NodeInfo {
                id: msg.sender,
                addr: from,
            });
            let stranger = matches!(msg.body, Body::Replicate { .. })
                && !self.may_push(peer)
                && !self.just_departed(peer);
            // A stranger's Replicate is refused by on_replicate, unverified.
            if !stranger {
                let chosen_ids = self.cfg.insecure_chosen_ids;
                let public = match (&d.proof, &d.pair_proof) {
                    (Some(p), None) if self.proofs.check(data, p, &msg.sender, chosen_ids) => {
                        p.public
                    }
                    (None, Some(p)) if self.pair_keys.check(data, p, &msg.sender, chosen_ids) => {
                        p.public
                    }
                    _ => return Admission::Drop,
                };
                self.learn_peer_key(msg.sender, public);
            }
        }
        if !proven && !msg.body.answer_never_larger() {
            return Admission::Retry;
        }
        if d.authenticated() {
            let fp = fingerprint(data);
            let window = self.expiry_slack_ms();
            let now = self.wall_ms();
            if !self.replays.first_time(fp, msg.timestamp_ms, now, window) {
                return Admission::Drop;
            }
        }
        Admission::Serve { proven }
    }

    pub(super) fn cookie_epoch(&self) -> u64 {
        self.wall_ms() / 1000 / COOKIE_EPOCH_S
    }

    /// Our cookie for `addr` in `epoch`: never zero (zero means none).
    pub(super) fn cookie_for(&self, addr: &SocketAddr, epoch: u64) -> u64 {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.cookie_secret).expect("any length");
        mac.update(&epoch.to_be_bytes());
        match addr.ip() {
            std::net::IpAddr::V4(ip) => mac.update(&ip.octets()),
            std::net::IpAddr::V6(ip) => mac.update(&ip.octets()),
        }
        mac.update(&addr.port().to_be_bytes());
        let out = mac.finalize().into_bytes();
        u64::from_be_bytes(out[..8].try_into().expect("8 bytes")).max(1)
    }

    fn cookie_valid(&self, addr: &SocketAddr, cookie: u64) -> bool {
        let epoch = self.cookie_epoch();
        cookie != 0
            && (cookie == self.cookie_for(addr, epoch)
                || cookie == self.cookie_for(addr, epoch.saturating_sub(1)))
    }

    /// Keeps the cookie a peer gave us for our address, for our next requests.
    pub(super) fn learn_cookie(&mut self, from: SocketAddr, cookie: u64) {
        if cookie == 0 {
            return;
        }
        if self.cookies.len() >= MAX_COOKIES && !self.cookies.contains_key(&from) {
            self.cookies.clear();
        }
        self.cookies.insert(from, cookie);
    }

    /// The most bytes the answer to request `rid` from `from` may take.
    pub(super) fn note_budget(&mut self, from: SocketAddr, rid: u64, bytes: usize) {
        let b = &mut self.budgets.bytes;
        if b.len() >= MAX_BUDGETS && !b.contains_key(&(from, rid)) {
            b.clear();
        }
        b.insert((from, rid), bytes);
    }

    /// The budget of the answer now sent (a forgotten request: the least).
    pub(super) fn take_budget(&mut self, to: SocketAddr, rid: u64) -> usize {
        self.budgets
            .bytes
            .remove(&(to, rid))
            .unwrap_or(wire::HEADER_LEN)
    }

    /// Answers `msg` with a Retry: our id is in its header, and our cookie.
    /// `plain`: untagged, for a client that sent no tag (and could check none).
    pub(super) fn send_retry(&mut self, from: SocketAddr, msg: &Message, plain: bool) {
        self.stats.retries_sent += 1;
        let reply = self.response(from, msg.request_id, msg.flags & FLAG_CLIENT, Body::Retry);
        self.note_budget(from, msg.request_id, usize::MAX);
        self.send_reply(from, &reply, plain);
    }

    /// A peer asked us to send request `rid` again (it now has our cookie,
    /// and we its id): at once, counted as one more transmission.
    pub(super) fn retry_now(&mut self, rid: u64, sender: Id) {
        let Some(rpc) = self.rpcs.get_mut(&rid) else {
            return;
        };
        // The first Retry is free (it only asks for the cookie); any more
        // count as transmissions, so a peer cannot keep us sending.
        if rpc.retried {
            if rpc.attempts >= rpc.max_attempts {
                return; // the timer gives up on it
            }
            rpc.attempts += 1;
        }
        rpc.retried = true;
        if rpc.to_id.is_none() {
            rpc.to_id = Some(sender);
        }
        self.transmit_rpc(rid);
    }
}

/// The last 16 bytes of an authenticated datagram: its tag, or the end of
/// its signature. Another datagram cannot share them without the key.
fn fingerprint(data: &[u8]) -> u128 {
    let tail = &data[data.len().saturating_sub(16)..];
    let mut b = [0u8; 16];
    b[16 - tail.len()..].copy_from_slice(tail);
    u128::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_are_caught_and_a_full_cache_shrinks_the_window() {
        let mut c = ReplayCache::default();
        assert!(c.first_time(1, 1000, 1000, 30_000));
        assert!(
            !c.first_time(1, 1000, 1001, 30_000),
            "the same datagram again"
        );
        assert!(c.first_time(2, 1000, 1001, 30_000));
        // Past the window it is forgotten (the freshness check refuses it then).
        assert!(c.first_time(1, 40_000, 40_000, 30_000));
        let mut full = ReplayCache::default();
        for i in 0..MAX_REPLAYS as u128 + 10 {
            assert!(full.first_time(i + 100, 5000 + i as u64, 5000, 30_000));
        }
        assert_eq!(full.len(), MAX_REPLAYS);
        // The evicted ones cannot come back: their stamps are below the floor.
        assert!(!full.first_time(100, 5000, 5000, 30_000));
    }
}
