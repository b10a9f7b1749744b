//! Diagnostics through a running node (RFC 7851's ping and route trace,
//! OpenDHT dhtnode's `p` and `l`): `chordsip ping`, `chordsip trace`, and
//! the JSON forms of `ring` and `stats`, whose schema docs/CLI.md gives.

use chordsip::client::Client;
use chordsip::Id;
use serde_json::{json, Map, Value};
use std::net::SocketAddr;
use std::time::Duration;

/// Pings `addr` from the node `count` times, one line per answer, then a
/// summary; fails when no ping was answered.
pub fn ping(
    c: &mut Client,
    addr: SocketAddr,
    count: u32,
    interval: Duration,
) -> Result<(), String> {
    let mut rtts = Vec::new();
    for i in 0..count {
        if i > 0 {
            std::thread::sleep(interval);
        }
        match c.ping(addr) {
            Ok(rtt) => {
                println!("reply from {addr}: seq={i} rtt={} us", rtt.as_micros());
                rtts.push(rtt.as_micros() as u64);
            }
            Err(e) => println!("no reply from {addr}: seq={i} ({e})"),
        }
    }
    rtts.sort_unstable();
    let lost = count as usize - rtts.len();
    match (rtts.first(), rtts.last()) {
        (Some(min), Some(max)) => {
            println!(
                "{count} sent, {} answered, {lost} lost; rtt min/median/max = {min}/{}/{max} us",
                rtts.len(),
                rtts[rtts.len() / 2]
            );
            Ok(())
        }
        _ => Err(format!("{addr} answered none of {count} pings")),
    }
}

/// Runs a traced lookup of `key` on the node and prints each hop.
pub fn trace(c: &mut Client, key: Id, as_json: bool) -> Result<(), String> {
    let (node, path) = c.trace(key).map_err(|e| e.to_string())?;
    if as_json {
        let hops: Vec<Value> = path
            .iter()
            .enumerate()
            .map(|(i, h)| {
                json!({
                    "hop": i + 1,
                    "id": h.node.id.to_hex(),
                    "addr": h.node.addr.to_string(),
                    "rtt_us": h.rtt.as_micros() as u64,
                })
            })
            .collect();
        let out = json!({
            "key": key.to_hex(),
            "responsible": {"id": node.id.to_hex(), "addr": node.addr.to_string()},
            "hops": hops,
        });
        println!("{out:#}");
        return Ok(());
    }
    println!("trace {key}");
    if path.is_empty() {
        println!("  answered from the node's own table (no remote hop)");
    }
    for (i, h) in path.iter().enumerate() {
        println!(
            "{:>3}  {} {}  {} us",
            i + 1,
            h.node.id,
            h.node.addr,
            h.rtt.as_micros()
        );
    }
    println!("responsible {} {}", node.id, node.addr);
    Ok(())
}

/// The ring report (`name value` lines) as one JSON object.
pub fn ring_json(text: &str) -> Value {
    let node = |v: &str| {
        let (id, addr) = v.split_once(' ').unwrap_or((v, ""));
        json!({"id": id, "addr": addr})
    };
    let mut out = Map::new();
    let (mut preds, mut succs, mut fingers, mut keys, mut trusted) =
        (vec![], vec![], vec![], vec![], vec![]);
    for line in text.lines() {
        let Some((name, value)) = line.split_once(' ') else {
            continue;
        };
        let indexed = |prefix: &str| {
            name.strip_prefix(prefix)
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|i| i.parse::<u64>().ok())
        };
        if let Some(i) = indexed("finger[") {
            let mut f = node(value);
            f["index"] = json!(i);
            fingers.push(f);
        } else if indexed("predecessor[").is_some() {
            preds.push(node(value));
        } else if indexed("successor[").is_some() {
            succs.push(node(value));
        } else {
            match name {
                "node" => {
                    out.insert("node".into(), node(value));
                }
                "trusted" => trusted.push(json!(value)),
                "key" => keys.push(json!(value)),
                "stored_keys" | "stored_entries" => {
                    let n = value.parse::<u64>().map(Value::from);
                    out.insert(name.into(), n.unwrap_or_else(|_| json!(value)));
                }
                _ => {
                    out.insert(name.into(), json!(value));
                }
            }
        }
    }
    out.insert("trusted".into(), json!(trusted));
    out.insert("predecessors".into(), json!(preds));
    out.insert("successors".into(), json!(succs));
    out.insert("fingers".into(), json!(fingers));
    out.insert("keys".into(), json!(keys));
    Value::Object(out)
}

/// The statistics report (`name value` lines) as one JSON object of numbers.
pub fn stats_json(text: &str) -> Value {
    let mut out = Map::new();
    for line in text.lines() {
        let Some((name, value)) = line.split_once(' ') else {
            continue;
        };
        let v = match (value.parse::<u64>(), value.parse::<f64>()) {
            (Ok(n), _) => json!(n),
            (_, Ok(x)) => json!(x),
            _ => json!(value),
        };
        out.insert(name.into(), v);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_report_becomes_lists() {
        let text = "node aa 127.0.0.1:1\nphase Joined\nwriter ff\ntrusted ee\n\
                    predecessor[0] bb 127.0.0.1:2\nsuccessor[0] cc 127.0.0.1:3\n\
                    successor[1] dd 127.0.0.1:4\nfinger[159] cc 127.0.0.1:3\n\
                    stored_keys 2\nstored_entries 5\nkey 01\nkey 02\n";
        let v = ring_json(text);
        assert_eq!(v["node"]["addr"], "127.0.0.1:1");
        assert_eq!(v["phase"], "Joined");
        assert_eq!(v["successors"].as_array().unwrap().len(), 2);
        assert_eq!(v["successors"][1]["id"], "dd");
        assert_eq!(v["fingers"][0]["index"], 159);
        assert_eq!(v["stored_entries"], 5);
        assert_eq!(v["keys"][1], "02");
        assert_eq!(v["trusted"][0], "ee");
    }

    #[test]
    fn stats_report_becomes_numbers() {
        let v = stats_json("msgs_sent 12\nhops_mean 1.250\n");
        assert_eq!(v["msgs_sent"], 12);
        assert_eq!(v["hops_mean"], 1.25);
    }
}
