//! Counters and latency/hop histograms a node keeps about itself.

/// A log-linear histogram: 16 sub-buckets per power of two, so quantiles are
/// within about 6% of the true value, in constant memory.
#[derive(Clone, Debug)]
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    sum: u128,
    max: u64,
}

const SUB: u32 = 16;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; 64 * SUB as usize],
            count: 0,
            sum: 0,
            max: 0,
        }
    }
}

impl Histogram {
    fn bucket_of(v: u64) -> usize {
        if v < SUB as u64 {
            return v as usize;
        }
        let exp = 63 - v.leading_zeros(); // >= 4
        let shift = exp - 4;
        let sub = ((v >> shift) as u32) - SUB; // 0..SUB
        ((exp - 3) * SUB + sub) as usize
    }

    fn bucket_low(b: usize) -> u64 {
        let b = b as u32;
        if b < SUB {
            return b as u64;
        }
        let exp = b / SUB + 3;
        let sub = b % SUB;
        ((SUB + sub) as u64) << (exp - 4)
    }

    pub fn record(&mut self, v: u64) {
        self.buckets[Self::bucket_of(v)] += 1;
        self.count += 1;
        self.sum += v as u128;
        self.max = self.max.max(v);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The sum of every recorded value.
    pub fn sum(&self) -> u128 {
        self.sum
    }

    /// How many recorded values are below `edge`: exact when `edge` is the
    /// lower bound of a bucket (every value below 16, then 16 steps per power
    /// of two), which is how exported histograms pick their bounds.
    pub fn count_below(&self, edge: u64) -> u64 {
        debug_assert_eq!(Self::bucket_low(Self::bucket_of(edge)), edge, "not an edge");
        self.buckets
            .iter()
            .enumerate()
            .take_while(|(b, _)| Self::bucket_low(*b) < edge)
            .map(|(_, c)| c)
            .sum()
    }

    /// The value at quantile q (0..=1), reported as its bucket's lower bound.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::bucket_low(i).min(self.max);
            }
        }
        self.max
    }
}

/// What a node counts about its own work.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// A member of a ring (not idle, joining, leaving or gone).
    pub joined: bool,
    pub msgs_sent: u64,
    pub msgs_received: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Datagrams that failed to decode (malformed, wrong version).
    pub dropped_malformed: u64,
    /// Datagrams with a missing or wrong authentication tag, or from another overlay.
    pub dropped_unauthenticated: u64,
    /// Responses that matched no outstanding request (late or forged).
    pub dropped_unmatched: u64,
    /// Requests over the per-source rate limit.
    pub dropped_rate_limited: u64,
    /// Lookup answers that named a node not responsible for the key.
    pub wrong_answers: u64,
    /// Lookups that began by asking the key's likely owner from the
    /// location cache, and those of them it confirmed in that one step.
    pub owner_probes: u64,
    pub owner_probes_confirmed: u64,
    /// Entries refused or dropped because their owner's signature did not match.
    pub forged_entries: u64,
    /// Entries from other nodes found good by an Ed25519 check of their
    /// writer's signature, and by their writer tag (crate::owner: the
    /// writer's secret is this node's too).
    pub entries_checked_signature: u64,
    pub entries_checked_tag: u64,
    /// Requests that needed a proof (Notify, Leaving, Replicate, Members)
    /// sent with an Ed25519 signature, and with a pair proof (a MAC under
    /// the key shared with a peer whose public key this node knows).
    pub signed_requests: u64,
    pub paired_requests: u64,
    /// Membership and data messages refused before any other work: a
    /// Leaving, Replicate or handoff not from a current neighbour at its known
    /// address, outside the clock window, or for keys this node does not hold.
    pub refused_membership: u64,
    /// Requests answered with a Retry: from an address not yet proven (the
    /// answer would have been larger than the request), or unaddressed.
    pub retries_sent: u64,
    pub retransmits: u64,
    /// Datagrams the socket refused to send (counted by the runtime).
    pub send_errors: u64,
    pub rpc_timeouts: u64,
    pub lookups_ok: u64,
    pub lookups_failed: u64,
    pub puts_ok: u64,
    pub puts_failed: u64,
    pub gets_ok: u64,
    pub gets_failed: u64,
    /// Lookup path length in hops (remote nodes asked).
    pub hops: Histogram,
    /// Lookup latency in microseconds.
    pub lookup_latency_us: Histogram,
    pub stored_keys: u64,
    pub stored_entries: u64,
    /// Entries of keys this node is primary for.
    pub primary_entries: u64,
    pub stored_value_bytes: u64,
    pub nodes_failed_detected: u64,
    /// Members in the one-hop table (0 in multi-hop mode).
    pub members: u64,
    /// Membership changes this node started spreading or passed on.
    pub member_changes_spread: u64,
    /// Bytes sent to keep the one-hop table (changes, syncs and their answers).
    pub member_bytes_sent: u64,
    /// 1 while this node is the one that publishes the overlay in DNS.
    pub dns_publisher: u64,
    /// Ability announcements this node wrote (each refresh counts).
    pub abilities_announced: u64,
    /// Ability announcements (or withdrawals) that failed; retried soon.
    pub ability_announce_failures: u64,
}

impl Stats {
    /// Every counter and gauge as `(name, value)`, in the order reports list
    /// them: the one list the stats text (`chordsip stats`, the Kamailio RPC,
    /// a client's `stats_text`) is made from.
    pub fn report(&self) -> Vec<(&'static str, String)> {
        let counters: [(&'static str, u64); 30] = [
            ("msgs_sent", self.msgs_sent),
            ("msgs_received", self.msgs_received),
            ("bytes_sent", self.bytes_sent),
            ("bytes_received", self.bytes_received),
            ("dropped_malformed", self.dropped_malformed),
            ("dropped_unauthenticated", self.dropped_unauthenticated),
            ("dropped_unmatched", self.dropped_unmatched),
            ("dropped_rate_limited", self.dropped_rate_limited),
            ("wrong_answers", self.wrong_answers),
            ("forged_entries", self.forged_entries),
            ("entries_checked_signature", self.entries_checked_signature),
            ("entries_checked_tag", self.entries_checked_tag),
            ("signed_requests", self.signed_requests),
            ("paired_requests", self.paired_requests),
            ("refused_membership", self.refused_membership),
            ("retries_sent", self.retries_sent),
            ("retransmits", self.retransmits),
            ("send_errors", self.send_errors),
            ("rpc_timeouts", self.rpc_timeouts),
            ("nodes_failed_detected", self.nodes_failed_detected),
            ("lookups_ok", self.lookups_ok),
            ("lookups_failed", self.lookups_failed),
            ("puts_ok", self.puts_ok),
            ("puts_failed", self.puts_failed),
            ("gets_ok", self.gets_ok),
            ("gets_failed", self.gets_failed),
            ("member_changes_spread", self.member_changes_spread),
            ("member_bytes_sent", self.member_bytes_sent),
            ("abilities_announced", self.abilities_announced),
            ("ability_announce_failures", self.ability_announce_failures),
        ];
        let mut out: Vec<(&'static str, String)> = counters
            .into_iter()
            .map(|(name, v)| (name, v.to_string()))
            .collect();
        out.push(("hops_mean", format!("{:.3}", self.hops.mean())));
        out.push(("hops_p99", self.hops.quantile(0.99).to_string()));
        let latency = &self.lookup_latency_us;
        out.push(("lookup_latency_p50_us", latency.quantile(0.5).to_string()));
        out.push(("lookup_latency_p99_us", latency.quantile(0.99).to_string()));
        for (name, v) in [
            ("stored_keys", self.stored_keys),
            ("stored_entries", self.stored_entries),
            ("primary_entries", self.primary_entries),
            ("stored_value_bytes", self.stored_value_bytes),
            ("members", self.members),
            ("dns_publisher", self.dns_publisher),
        ] {
            out.push((name, v.to_string()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_close() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        let p50 = h.quantile(0.5) as f64;
        let p99 = h.quantile(0.99) as f64;
        assert!((p50 - 5000.0).abs() / 5000.0 < 0.07, "{p50}");
        assert!((p99 - 9900.0).abs() / 9900.0 < 0.07, "{p99}");
        assert_eq!(h.count(), 10_000);
        assert!((h.mean() - 5000.5).abs() < 1e-6);
        assert_eq!(h.quantile(0.0), 1);
    }

    #[test]
    fn small_values_exact_and_buckets_monotonic() {
        let mut h = Histogram::default();
        for v in [0u64, 1, 2, 3] {
            h.record(v);
        }
        assert_eq!(h.quantile(0.5), 1);
        let mut last = 0;
        for v in (0..1_000_000u64).step_by(997) {
            let b = Histogram::bucket_of(v);
            assert!(b >= last);
            assert!(Histogram::bucket_low(b) <= v);
            last = b;
        }
        h.record(u64::MAX);
        assert_eq!(h.max(), u64::MAX);
    }
}
