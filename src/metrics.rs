//! A node's counters as OpenMetrics text (the Prometheus exposition format
//! 1.0), so a monitoring system can scrape a node without parsing the `name
//! value` stats report. One writer for every path: `chordsip node
//! --metrics`, `chordsip_node_metrics`, `Node.metrics()` in Python, a
//! client's info request (Kamailio's `chordsip.metrics` RPC).
//!
//! Histogram bounds are edges of [`Histogram`]'s own buckets, so every
//! cumulative count is exact, not interpolated: lookup latency at 25 µs·2^k,
//! hops at every whole number up to 16.

use crate::stats::{Histogram, Stats};
use crate::wire::NodeInfo;
use std::fmt::Write;

/// The `Content-Type` of OpenMetrics text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The `Content-Type` of the older Prometheus text format (0.0.4), for
/// scrapers that do not ask for OpenMetrics.
pub const CONTENT_TYPE_PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Which exposition format `render_as` writes. The samples are the same;
/// they differ in how a family is declared (OpenMetrics declares a counter
/// `x` whose sample is `x_total`, and an info `x` whose sample is
/// `x_info`; the older format declares the sample's own name) and in
/// OpenMetrics' closing `# EOF`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Prometheus,
}

/// Upper bounds of the lookup latency histogram, in microseconds:
/// 25 µs·2^k up to about 3.3 s (each one an edge of a `Histogram` bucket).
const LATENCY_BOUNDS_US: [u64; 18] = [
    25, 50, 100, 200, 400, 800, 1_600, 3_200, 6_400, 12_800, 25_600, 51_200, 102_400, 204_800,
    409_600, 819_200, 1_638_400, 3_276_800,
];

/// Upper bounds of the hop count histogram (inclusive, whole hops).
const HOP_BOUNDS: [u64; 17] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];

/// The OpenMetrics text of one node's counters, ending in `# EOF`.
pub fn render(me: &NodeInfo, s: &Stats) -> String {
    render_as(me, s, Format::OpenMetrics)
}

/// One node's counters in either exposition format.
pub fn render_as(me: &NodeInfo, s: &Stats, format: Format) -> String {
    let mut m = Writer {
        out: String::new(),
        format,
    };
    m.family(
        "chordsip_node",
        "info",
        "This node: its id on the ring and its overlay address.",
    );
    m.sample(
        "chordsip_node_info",
        &[("id", &me.id.to_hex()), ("addr", &me.addr.to_string())],
        1,
    );
    m.gauge(
        "chordsip_joined",
        "1 while the node is a member of a ring.",
        s.joined as u64,
    );

    m.counter(
        "chordsip_messages_sent",
        "Datagrams this node sent.",
        s.msgs_sent,
    );
    m.counter(
        "chordsip_messages_received",
        "Datagrams this node received.",
        s.msgs_received,
    );
    m.counter("chordsip_sent", "Bytes this node sent.", s.bytes_sent);
    m.counter(
        "chordsip_received",
        "Bytes this node received.",
        s.bytes_received,
    );
    m.labelled_counter(
        "chordsip_dropped",
        "Datagrams dropped before any work, by reason: malformed (failed to decode), \
         unauthenticated (missing or wrong tag, another overlay, a client without \
         its key), unmatched (a response to no outstanding request), rate_limited \
         (over the per-source limit).",
        "reason",
        &[
            ("malformed", s.dropped_malformed),
            ("unauthenticated", s.dropped_unauthenticated),
            ("unmatched", s.dropped_unmatched),
            ("rate_limited", s.dropped_rate_limited),
        ],
    );
    m.counter(
        "chordsip_forged_entries",
        "Entries refused or dropped because their owner's signature did not match.",
        s.forged_entries,
    );
    m.labelled_counter(
        "chordsip_checked_entries",
        "Entries from other nodes found good, by how: their writer's Ed25519 signature, \
         or their writer tag (the writer's secret is this node's too).",
        "check",
        &[
            ("signature", s.entries_checked_signature),
            ("tag", s.entries_checked_tag),
        ],
    );
    m.counter(
        "chordsip_refused_membership",
        "Membership and data messages refused: not from a current neighbour at its \
         known address, outside the clock window, or for keys this node does not hold.",
        s.refused_membership,
    );
    m.counter(
        "chordsip_wrong_answers",
        "Lookup answers that named a node not responsible for the key.",
        s.wrong_answers,
    );
    m.counter(
        "chordsip_retries_sent",
        "Requests answered with a Retry (an address not yet proven).",
        s.retries_sent,
    );
    m.labelled_counter(
        "chordsip_proven_requests",
        "Requests that needed a proof, by kind: an Ed25519 signature or a pair MAC.",
        "proof",
        &[
            ("signature", s.signed_requests),
            ("pair", s.paired_requests),
        ],
    );
    m.counter(
        "chordsip_retransmits",
        "Requests sent again after no answer.",
        s.retransmits,
    );
    m.counter(
        "chordsip_send_errors",
        "Datagrams the socket refused to send.",
        s.send_errors,
    );
    m.counter(
        "chordsip_rpc_timeouts",
        "Requests to peers that got no answer in time.",
        s.rpc_timeouts,
    );
    m.counter(
        "chordsip_nodes_failed",
        "Peers this node found dead.",
        s.nodes_failed_detected,
    );
    m.family(
        "chordsip_operations",
        "counter",
        "Operations this node ran, by kind and result.",
    );
    for (op, ok, failed) in [
        ("lookup", s.lookups_ok, s.lookups_failed),
        ("put", s.puts_ok, s.puts_failed),
        ("get", s.gets_ok, s.gets_failed),
    ] {
        for (result, v) in [("ok", ok), ("failed", failed)] {
            m.sample(
                "chordsip_operations_total",
                &[("op", op), ("result", result)],
                v,
            );
        }
    }
    m.labelled_counter(
        "chordsip_owner_probes",
        "Lookups that began by asking the key's likely owner from the location \
         cache, by outcome (confirmed: answered in that one step).",
        "outcome",
        &[
            ("confirmed", s.owner_probes_confirmed),
            (
                "missed",
                s.owner_probes.saturating_sub(s.owner_probes_confirmed),
            ),
        ],
    );
    m.histogram(
        "chordsip_lookup_hops",
        "Lookup path length: remote nodes asked.",
        &s.hops,
        &HOP_BOUNDS.map(|b| (b + 1, b.to_string())),
        s.hops.sum() as f64,
    );
    m.histogram(
        "chordsip_lookup_duration_seconds",
        "Lookup latency, from start to the checked answer.",
        &s.lookup_latency_us,
        &LATENCY_BOUNDS_US.map(|us| (us, seconds(us))),
        s.lookup_latency_us.sum() as f64 / 1e6,
    );

    for (name, help, v) in [
        (
            "chordsip_stored_keys",
            "Keys this node stores (primary copies and replicas).",
            s.stored_keys,
        ),
        (
            "chordsip_stored_entries",
            "Entries this node stores.",
            s.stored_entries,
        ),
        (
            "chordsip_primary_entries",
            "Entries of keys this node is responsible for (the rest are replicas).",
            s.primary_entries,
        ),
        (
            "chordsip_stored_value_bytes",
            "Bytes of stored values.",
            s.stored_value_bytes,
        ),
        (
            "chordsip_members",
            "Members in the one-hop table (0 in multi-hop mode).",
            s.members,
        ),
        (
            "chordsip_dns_publisher",
            "1 while this node publishes the overlay in DNS.",
            s.dns_publisher,
        ),
    ] {
        m.gauge(name, help, v);
    }
    m.counter(
        "chordsip_member_changes_spread",
        "One-hop membership changes this node started spreading or passed on.",
        s.member_changes_spread,
    );
    m.counter(
        "chordsip_member_sent",
        "Bytes sent to keep the one-hop table.",
        s.member_bytes_sent,
    );
    m.labelled_counter(
        "chordsip_ability_announcements",
        "Ability announcements this node wrote, by result (failed ones are retried).",
        "result",
        &[
            ("ok", s.abilities_announced),
            ("failed", s.ability_announce_failures),
        ],
    );
    if format == Format::OpenMetrics {
        m.out.push_str("# EOF\n");
    }
    m.out
}

/// Microseconds as an OpenMetrics bound in seconds (`0.000025`, `1.6384`).
fn seconds(us: u64) -> String {
    let text = format!("{}.{:06}", us / 1_000_000, us % 1_000_000);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

struct Writer {
    out: String,
    format: Format,
}

impl Writer {
    /// Declares the family `name` of `kind` (OpenMetrics names and kinds).
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let (name, kind) = match (self.format, kind) {
            (Format::Prometheus, "counter") => (format!("{name}_total"), kind),
            (Format::Prometheus, "info") => (format!("{name}_info"), "gauge"),
            _ => (name.to_string(), kind),
        };
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: u64) {
        self.out.push_str(name);
        push_labels(&mut self.out, labels);
        let _ = writeln!(self.out, " {v}");
    }

    fn gauge(&mut self, name: &str, help: &str, v: u64) {
        self.family(name, "gauge", help);
        self.sample(name, &[], v);
    }

    /// A counter family `name` with its one sample `name_total`. Byte
    /// counters end in `_bytes` (the unit suffix comes before `_total`).
    fn counter(&mut self, name: &str, help: &str, v: u64) {
        let name = unit_name(name, help);
        self.family(&name, "counter", help);
        self.sample(&format!("{name}_total"), &[], v);
    }

    fn labelled_counter(&mut self, name: &str, help: &str, label: &str, values: &[(&str, u64)]) {
        self.family(name, "counter", help);
        let total = format!("{name}_total");
        for (value, v) in values {
            self.sample(&total, &[(label, value)], *v);
        }
    }

    /// A histogram from cumulative counts below each exclusive bucket edge
    /// (`edge`, `le` label): exact because every edge is a bucket edge.
    fn histogram(
        &mut self,
        name: &str,
        help: &str,
        h: &Histogram,
        bounds: &[(u64, String)],
        sum: f64,
    ) {
        self.family(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        for (edge, le) in bounds {
            self.sample(&bucket, &[("le", le)], h.count_below(*edge));
        }
        self.sample(&bucket, &[("le", "+Inf")], h.count());
        let _ = writeln!(self.out, "{name}_count {}", h.count());
        let _ = writeln!(self.out, "{name}_sum {sum}");
    }
}

/// Byte counters are named with their unit (`chordsip_sent_bytes`).
fn unit_name(name: &str, help: &str) -> String {
    if help.starts_with("Bytes ") {
        format!("{name}_bytes")
    } else {
        name.to_string()
    }
}

fn push_labels(out: &mut String, labels: &[(&str, &str)]) {
    if labels.is_empty() {
        return;
    }
    out.push('{');
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{k}=\"{}\"", escape_label(v));
    }
    out.push('}');
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;

    fn node() -> NodeInfo {
        NodeInfo {
            id: Id::hash(b"metrics"),
            addr: "127.0.0.1:4000".parse().unwrap(),
        }
    }

    #[test]
    fn bounds_are_bucket_edges_so_counts_are_exact() {
        let mut h = Histogram::default();
        for v in 0..5_000_000u64 {
            if v % 7 == 0 {
                h.record(v);
            }
        }
        for edge in LATENCY_BOUNDS_US
            .iter()
            .copied()
            .chain(HOP_BOUNDS.map(|b| b + 1))
        {
            let exact = (0..edge).filter(|v| v % 7 == 0).count() as u64;
            assert_eq!(h.count_below(edge), exact, "edge {edge}");
        }
    }

    #[test]
    fn histogram_is_cumulative_and_ends_in_the_count() {
        let mut s = Stats::default();
        for (hops, us) in [
            (0, 10),
            (1, 30),
            (2, 90),
            (2, 130),
            (5, 2_000),
            (30, 9_000_000),
        ] {
            s.hops.record(hops);
            s.lookup_latency_us.record(us);
        }
        let text = render(&node(), &s);
        assert!(text.ends_with("# EOF\n"));
        assert!(text.contains("chordsip_lookup_hops_bucket{le=\"0\"} 1\n"));
        assert!(text.contains("chordsip_lookup_hops_bucket{le=\"2\"} 4\n"));
        assert!(text.contains("chordsip_lookup_hops_bucket{le=\"16\"} 5\n"));
        assert!(text.contains("chordsip_lookup_hops_bucket{le=\"+Inf\"} 6\n"));
        assert!(text.contains("chordsip_lookup_hops_sum 40\n"));
        assert!(text.contains("chordsip_lookup_duration_seconds_bucket{le=\"0.000025\"} 1\n"));
        assert!(text.contains("chordsip_lookup_duration_seconds_bucket{le=\"0.0001\"} 3\n"));
        assert!(text.contains("chordsip_lookup_duration_seconds_bucket{le=\"3.2768\"} 5\n"));
        assert!(text.contains("chordsip_lookup_duration_seconds_count 6\n"));
        assert!(text.contains("chordsip_lookup_duration_seconds_sum 9.00226\n"));
    }

    #[test]
    fn every_sample_belongs_to_the_family_declared_before_it() {
        let s = Stats {
            msgs_sent: 7,
            bytes_sent: 900,
            lookups_failed: 2,
            ..Stats::default()
        };
        let text = render(&node(), &s);
        assert!(text.starts_with("# HELP chordsip_node "));
        let older = render_as(&node(), &s, Format::Prometheus);
        assert!(older.contains("# TYPE chordsip_messages_sent_total counter\n"));
        assert!(older.contains("# TYPE chordsip_node_info gauge\n"));
        assert!(!older.contains("# EOF"));
        let samples = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| !l.starts_with('#'))
                .map(String::from)
                .collect()
        };
        assert_eq!(samples(&text), samples(&older));
        let mut family = String::new();
        let mut declared = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                family = rest.split(' ').next().unwrap().to_string();
                assert!(declared.insert(family.clone()), "{family} declared twice");
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(name.starts_with(&family), "{name} outside {family}");
            }
        }
        assert!(text.contains("chordsip_messages_sent_total 7\n"));
        assert!(text.contains("chordsip_sent_bytes_total 900\n"));
        assert!(text.contains("chordsip_operations_total{op=\"lookup\",result=\"failed\"} 2\n"));
        assert!(text.contains(&format!(
            "chordsip_node_info{{id=\"{}\",addr=\"127.0.0.1:4000\"}} 1\n",
            node().id.to_hex()
        )));
    }

    #[test]
    fn labels_and_help_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(seconds(25), "0.000025");
        assert_eq!(seconds(1_638_400), "1.6384");
        assert_eq!(seconds(2_000_000), "2");
    }
}
