//! Requests and replies on the wire: the datagram input with its admission
//! (replay window, per-source rate limit), retransmission with RTT-based
//! timeouts, and encoding of what goes out.

use super::admission::Admission;
use super::dispatch::OnAnswer;
use super::{Engine, Phase, Timer, Transmit};
use crate::config::LogLevel;
use crate::id::Id;
use crate::wire;
use crate::wire::{
    Body, Message, NodeInfo, FLAG_CLIENT, FLAG_ONE_HOP, FLAG_RESPONSE, FLAG_SENDER_KEY,
};
use std::cmp::Reverse;
use std::net::SocketAddr;

#[derive(Debug)]
pub(super) struct Rpc {
    pub(super) to: SocketAddr,
    pub(super) to_id: Option<Id>,
    /// Encoded again for each transmission: with the newest cookie, a fresh
    /// timestamp (so the receiver's replay cache tells it from a copy) and,
    /// after a Retry, the receiver's id.
    pub(super) body: Body,
    pub(super) sent_at: u64,
    pub(super) attempts: u32,
    pub(super) max_attempts: u32,
    /// The receiver asked once already to send it again (a Retry).
    pub(super) retried: bool,
    pub(super) rto: u64,
    pub(super) due: u64,
    pub(super) ctx: OnAnswer,
}

#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Rtt {
    pub(super) srtt: u64,
    pub(super) rttvar: u64,
}

/// Sources whose request rate is tracked at once.
pub(super) const MAX_BUCKETS: usize = 65_536;

/// Peers' public keys kept at once; the map starts over when full (and the
/// next requests to the peers forgotten are signed again).
const MAX_PEER_KEYS: usize = 4096;

impl Engine {
    /// Processes one received datagram. Never panics on bad input.
    pub fn handle_datagram(&mut self, now: u64, from: SocketAddr, data: &[u8]) {
        self.now = now;
        self.stats.msgs_received += 1;
        self.stats.bytes_received += data.len() as u64;
        let decoded = match self.codec.decode_full(data) {
            Ok(d) => d,
            Err(wire::DecodeError::WrongOverlay | wire::DecodeError::BadTag) => {
                self.stats.dropped_unauthenticated += 1;
                return;
            }
            Err(e) => {
                self.stats.dropped_malformed += 1;
                self.log(LogLevel::Debug, || {
                    format!("dropped datagram from {from}: {e}")
                });
                return;
            }
        };
        let authenticated = decoded.authenticated();
        if authenticated && !self.fresh(decoded.msg.timestamp_ms) {
            // Authentic but old (or from a clock far off): a replay.
            self.stats.dropped_unauthenticated += 1;
            self.log(LogLevel::Debug, || {
                format!("dropped a datagram from {from} outside the replay window")
            });
            return;
        }
        let msg = &decoded.msg;
        if matches!(self.phase, Phase::Idle | Phase::Left) && msg.flags & FLAG_RESPONSE == 0 {
            return;
        }
        let from_peer = msg.flags & FLAG_CLIENT == 0 && msg.sender != self.me.id;
        if msg.flags & FLAG_RESPONSE != 0 {
            if from_peer {
                self.suspects.remove(&msg.sender);
            }
            self.handle_response(from, decoded.msg, decoded.sender_key);
        } else if !self.admit(from) {
            self.stats.dropped_rate_limited += 1;
        } else if from_peer && decoded.msg.flags & FLAG_ONE_HOP != self.mode_flag() {
            // A node of the other routing mode cannot share our ring: it is
            // told so (an answer smaller than its request) and not served.
            self.stats.refused_membership += 1;
            let (rid, status) = (decoded.msg.request_id, wire::Status::ModeMismatch);
            self.note_budget(from, rid, data.len());
            self.reply(from, rid, Body::Error { status });
        } else {
            match self.admission(from, data, &decoded) {
                Admission::Serve { proven } => {
                    if from_peer {
                        self.suspects.remove(&decoded.msg.sender);
                    }
                    let budget = if proven { usize::MAX } else { data.len() };
                    self.note_budget(from, decoded.msg.request_id, budget);
                    self.reply_with_key = from_peer && decoded.proof.is_some();
                    self.handle_request(from, decoded.msg, decoded.tagged);
                    self.reply_with_key = false;
                }
                Admission::Retry => {
                    let plain = decoded.msg.flags & FLAG_CLIENT != 0 && !decoded.tagged;
                    self.send_retry(from, &decoded.msg, plain)
                }
                Admission::Drop => self.stats.dropped_unauthenticated += 1,
            }
        }
        self.after_step();
    }

    /// Per-source token bucket for requests: a flood from one address costs
    /// that address its answers, not everyone else theirs.
    pub(super) fn admit(&mut self, from: SocketAddr) -> bool {
        let rate = self.cfg.max_requests_per_source;
        if rate == 0 {
            return true;
        }
        let now = self.now;
        if self.buckets.len() >= MAX_BUCKETS && !self.buckets.contains_key(&from) {
            // Forget sources idle for a second (their bucket is full again anyway).
            self.buckets
                .retain(|_, (_, last)| now.saturating_sub(*last) < 1_000_000);
            if self.buckets.len() >= MAX_BUCKETS {
                return false;
            }
        }
        let (tokens, last) = self.buckets.entry(from).or_insert((rate as f64, now));
        let refill = now.saturating_sub(*last) as f64 * rate as f64 / 1e6;
        *tokens = (*tokens + refill).min(rate as f64);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether a datagram's timestamp lies within the replay window of our clock.
    pub(super) fn fresh(&self, timestamp_ms: u64) -> bool {
        let mine = self.wall_ms();
        mine.abs_diff(timestamp_ms) <= self.cfg.replay_window.as_millis() as u64
    }

    /// A message from this node: to `receiver` (zero when unknown or in
    /// a response) with `cookie` (ours for the requester in a response, the
    /// receiver's for us in a request).
    pub(super) fn header(
        &self,
        request_id: u64,
        flags: u8,
        receiver: Id,
        cookie: u64,
        body: Body,
    ) -> Message {
        Message {
            flags: flags | self.mode_flag(),
            overlay: self.codec.overlay(),
            request_id,
            timestamp_ms: self.wall_ms(),
            sender: self.me.id,
            receiver,
            cookie,
            body,
        }
    }

    /// A response to the request `request_id` from `to`.
    pub(super) fn response(
        &self,
        to: SocketAddr,
        request_id: u64,
        flags: u8,
        body: Body,
    ) -> Message {
        let cookie = self.cookie_for(&to, self.cookie_epoch());
        self.header(request_id, FLAG_RESPONSE | flags, Id::ZERO, cookie, body)
    }

    pub(super) fn rto(&self, addr: &SocketAddr) -> u64 {
        let min = self.cfg.rpc_timeout_min.as_micros() as u64;
        let max = self.cfg.rpc_timeout_max.as_micros() as u64;
        match self.rtt.get(addr) {
            Some(r) => (r.srtt + 4 * r.rttvar).clamp(min, max),
            None => (self.cfg.rpc_timeout_initial.as_micros() as u64).clamp(min, max),
        }
    }

    /// Sends a request and tracks it until answered or given up. Returns false
    /// (and runs the failure path) when it cannot even be encoded.
    pub(super) fn send_request(
        &mut self,
        to: SocketAddr,
        to_id: Option<Id>,
        body: Body,
        ctx: OnAnswer,
        max_attempts: u32,
    ) -> bool {
        if self.phase == Phase::Leaving && matches!(body, Body::Notify) {
            return false; // a leaving node is nobody's predecessor any more
        }
        self.next_request = self.next_request.wrapping_add(1);
        let request_id = self.next_request;
        let rto = self.rto(&to);
        let due = self.now + rto;
        self.rpcs.insert(
            request_id,
            Rpc {
                to,
                to_id,
                body,
                sent_at: self.now,
                attempts: 1,
                max_attempts: max_attempts.max(1),
                retried: false,
                rto,
                due,
                ctx,
            },
        );
        if !self.transmit_rpc(request_id) {
            if let Some(rpc) = self.rpcs.remove(&request_id) {
                self.rpc_failed(rpc.to, rpc.to_id, rpc.ctx, false, 0);
            }
            return false;
        }
        self.timers.push(Reverse((due, Timer::Rpc(request_id))));
        true
    }

    /// Encodes and sends request `id` as it stands; false if it cannot be encoded.
    pub(super) fn transmit_rpc(&mut self, id: u64) -> bool {
        let Some(rpc) = self.rpcs.get(&id) else {
            return false;
        };
        let (to, receiver) = (rpc.to, rpc.to_id.unwrap_or(Id::ZERO));
        let cookie = self.cookies.get(&to).copied().unwrap_or(0);
        // A peer whose key we know gets a pair proof, except in a
        // retransmission: that one is signed, for a peer that could not
        // check the first (a node of an older version, say).
        let paired = (rpc.attempts == 1 && rpc.body.needs_signature())
            .then(|| self.peer_keys.get(&receiver).copied())
            .flatten();
        let msg = self.header(id, 0, receiver, cookie, rpc.body.clone());
        let pair_key = paired.and_then(|public| self.pair_keys.with(&public));
        if msg.body.needs_signature() {
            match pair_key {
                Some(_) => self.stats.paired_requests += 1,
                None => self.stats.signed_requests += 1,
            }
        }
        let encoded = match pair_key {
            Some(k) => self.codec.encode_paired(&msg, &k),
            None => self.codec.encode(&msg),
        };
        match encoded {
            Ok(data) => {
                self.stats.msgs_sent += 1;
                self.stats.bytes_sent += data.len() as u64;
                if is_membership(&msg.body) {
                    self.stats.member_bytes_sent += data.len() as u64;
                }
                self.transmits.push(Transmit { to, data });
                true
            }
            Err(e) => {
                self.log(LogLevel::Warn, || format!("cannot encode request: {e:?}"));
                false
            }
        }
    }

    pub(super) fn reply(&mut self, to: SocketAddr, request_id: u64, body: Body) {
        let flags = match self.reply_with_key {
            true => FLAG_SENDER_KEY,
            false => 0,
        };
        let msg = self.response(to, request_id, flags, body);
        self.send_reply(to, &msg, false);
    }

    /// Answers a client handle: tagged with the client key over UDP, plain
    /// on the UNIX socket (`plain` also for a refusal to a client without
    /// the credential, which could not check a tag).
    pub(super) fn reply_client(&mut self, to: SocketAddr, request_id: u64, body: Body) {
        let msg = self.response(to, request_id, FLAG_CLIENT, body);
        self.send_reply(to, &msg, wire::is_unix_alias(&to));
    }

    /// Sends a response, never more bytes than the request had to an
    /// address that has not proven it receives there (`note_budget`): a
    /// larger answer becomes a Retry carrying the cookie to ask again with.
    pub(super) fn send_reply(&mut self, to: SocketAddr, msg: &Message, plain: bool) {
        let encode = |codec: &wire::Codec, m: &Message| match plain {
            true => codec.encode_plain(m),
            false => codec.encode(m),
        };
        let budget = self.take_budget(to, msg.request_id);
        let mut encoded = encode(&self.codec, msg);
        if encoded.as_ref().is_ok_and(|d| d.len() > budget) {
            self.stats.retries_sent += 1;
            let retry = Message {
                body: Body::Retry,
                ..msg.clone()
            };
            encoded = encode(&self.codec, &retry);
        }
        match encoded {
            Ok(data) => {
                self.stats.msgs_sent += 1;
                self.stats.bytes_sent += data.len() as u64;
                if is_membership(&msg.body) {
                    self.stats.member_bytes_sent += data.len() as u64;
                }
                self.transmits.push(Transmit { to, data });
            }
            Err(e) => self.log(LogLevel::Warn, || format!("cannot encode reply: {e:?}")),
        }
    }

    pub(super) fn rpc_timer(&mut self, id: u64, t: u64) {
        let Some(rpc) = self.rpcs.get_mut(&id) else {
            return;
        };
        if rpc.due != t {
            return;
        }
        if rpc.attempts < rpc.max_attempts {
            rpc.attempts += 1;
            rpc.rto = (rpc.rto * 2).min(self.cfg.rpc_timeout_max.as_micros() as u64);
            rpc.due = self.now + rpc.rto;
            let due = rpc.due;
            self.stats.retransmits += 1;
            self.transmit_rpc(id);
            self.timers.push(Reverse((due, Timer::Rpc(id))));
        } else if let Some(rpc) = self.rpcs.remove(&id) {
            self.stats.rpc_timeouts += 1;
            self.rpc_failed(rpc.to, rpc.to_id, rpc.ctx, true, rpc.attempts);
        }
    }

    /// Remembers `id`'s node public key, if the id derives from it (with
    /// chosen ids, never: pair proofs are then not used).
    pub(super) fn learn_peer_key(&mut self, id: Id, public: [u8; 32]) {
        if self.cfg.insecure_chosen_ids || crate::identity::node_id(&public) != id {
            return;
        }
        if self.peer_keys.len() >= MAX_PEER_KEYS && !self.peer_keys.contains_key(&id) {
            self.peer_keys.clear();
        }
        self.peer_keys.insert(id, public);
    }

    pub(super) fn sample_rtt(&mut self, addr: SocketAddr, sample: u64) {
        if self.rtt.len() > 4096 && !self.rtt.contains_key(&addr) {
            self.rtt.clear();
        }
        let r = self.rtt.entry(addr).or_default();
        if r.srtt == 0 {
            r.srtt = sample.max(1);
            r.rttvar = sample / 2;
        } else {
            let err = r.srtt.abs_diff(sample);
            r.rttvar = (3 * r.rttvar + err) / 4;
            r.srtt = (7 * r.srtt + sample) / 8;
        }
    }

    /// An answer to one of our requests: only the peer we asked may give it
    /// (a forged source still needs the overlay key); an error status fails
    /// the request.
    pub(super) fn handle_response(
        &mut self,
        from: SocketAddr,
        msg: Message,
        sender_key: Option<[u8; 32]>,
    ) {
        match self.rpcs.get(&msg.request_id) {
            Some(rpc) if rpc.to == from => {}
            _ => {
                self.stats.dropped_unmatched += 1;
                return;
            }
        }
        if let Some(public) = sender_key {
            self.learn_peer_key(msg.sender, public);
        }
        self.learn_cookie(from, msg.cookie);
        if msg.body == Body::Retry {
            return self.retry_now(msg.request_id, msg.sender);
        }
        let rpc = self.rpcs.remove(&msg.request_id).expect("present");
        if rpc.attempts == 1 {
            self.sample_rtt(from, self.now.saturating_sub(rpc.sent_at));
        }
        if let Body::Error { status } = msg.body {
            if status == wire::Status::ModeMismatch {
                self.mode_refused_by = Some(from);
            }
            self.log(LogLevel::Debug, || format!("{from} answered {status:?}"));
            self.rpc_failed(rpc.to, rpc.to_id, rpc.ctx, false, rpc.attempts);
            return;
        }
        let sender = NodeInfo {
            id: msg.sender,
            addr: from,
        };
        self.dispatch_response(rpc, sender, msg.body);
    }
}

/// The bodies that keep a one-hop table (their bytes are counted apart).
fn is_membership(body: &Body) -> bool {
    matches!(
        body,
        Body::Members { .. }
            | Body::MembersAck
            | Body::MembersDigest { .. }
            | Body::MembersPage { .. }
    )
}
