//! Reading a setting back by the name `Config::set` takes, as the same text
//! (`chordsip_node_config_get`, `Node.config()` in Python): a host learns
//! what a node really runs with (defaults included) without keeping its own
//! copy. Secrets are never given back, only whether one is set.

use super::{Config, LogLevel};
use crate::Error::InvalidArgument as Bad;
use std::time::Duration;

/// Settings that hold a secret: `get` answers `set` or `unset` for them.
const SECRETS: [&str; 10] = [
    "device_key_file",
    "client_key",
    "client_key_file",
    "credentials_key",
    "credentials_key_file",
    "digest_nonce_secret",
    "writer_key",
    "writer_key_file",
    "node_key",
    "node_key_file",
];

impl Config {
    /// The value of setting `name` as `set` would take it (durations in the
    /// unit the name says, lists comma-separated, an unset option empty;
    /// `Node::config_get` answers `threads` with the count running). Secrets answer
    /// `set` or `unset`; an unknown name is an `InvalidArgument` that says so.
    pub fn get(&self, name: &str) -> crate::Result<String> {
        let ms = |d: Duration| d.as_millis().to_string();
        let secs = |d: Duration| d.as_secs().to_string();
        let opt = |v: Option<String>| v.unwrap_or_default();
        let hex_list = |l: &[[u8; 32]]| {
            l.iter()
                .map(|k| crate::owner::hex(k))
                .collect::<Vec<_>>()
                .join(",")
        };
        if SECRETS.contains(&name) {
            let set = match name {
                "client_key" | "client_key_file" => self.client_key.is_some(),
                "credentials_key" | "credentials_key_file" => self.credentials_key.is_some(),
                "digest_nonce_secret" => self.digest_nonce_secret.is_some(),
                "writer_key" | "writer_key_file" | "device_key_file" => self.writer_key.is_some(),
                _ => self.node_key.is_some(),
            };
            return Ok(if set { "set" } else { "unset" }.into());
        }
        let l = &self.limits;
        Ok(match name {
            "listen" => self.listen.to_string(),
            "advertise" => opt(self.advertise.map(|a| a.to_string())),
            "client_socket" => opt(self.client_socket.as_ref().map(|p| p.display().to_string())),
            "client_socket_group" => opt(self.client_socket_group.clone()),
            "overlay" => self.overlay.clone(),
            "overlay_key" => if self.overlay_key.is_some() {
                "set"
            } else {
                "unset"
            }
            .into(),
            "open_overlay" => (self.open_overlay as u8).to_string(),
            "max_client_lifetime_s" => secs(self.max_client_lifetime),
            "trusted_writers" => hex_list(&l.main_writers),
            "credential_admins" => hex_list(&self.credential_admins),
            "digest_nonce_lifetime_s" => secs(self.digest_nonce_lifetime),
            "digest_algorithm" => self.digest_algorithm.clone(),
            "max_store_bytes" => l.max_store_bytes.to_string(),
            "max_entries_per_owner" => l.max_entries_per_owner.to_string(),
            "node_id" => opt(self.node_id.map(|id| id.to_hex())),
            "insecure_chosen_ids" => (self.insecure_chosen_ids as u8).to_string(),
            "successors" => self.successors.to_string(),
            "replicas" => self.replicas.to_string(),
            "location_cache" => self.location_cache.to_string(),
            "stabilize_ms" => ms(self.stabilize_interval),
            "check_predecessor_ms" => ms(self.check_predecessor_interval),
            "fix_fingers_ms" => ms(self.fix_fingers_interval),
            "sync_ms" => ms(self.sync_interval),
            "rpc_timeout_min_ms" => ms(self.rpc_timeout_min),
            "rpc_timeout_initial_ms" => ms(self.rpc_timeout_initial),
            "rpc_timeout_max_ms" => ms(self.rpc_timeout_max),
            "rpc_retries" => self.rpc_retries.to_string(),
            "op_timeout_ms" => ms(self.op_timeout),
            "max_datagram" => self.max_datagram.to_string(),
            "max_value_bytes" => l.max_value_bytes.to_string(),
            "max_writer_bytes" => l.max_writer_bytes.to_string(),
            "max_entries_per_key" => l.max_entries_per_key.to_string(),
            "max_keys" => l.max_keys.to_string(),
            "max_lifetime_s" => (l.max_lifetime_ms / 1000).to_string(),
            "tombstone_lifetime_s" => secs(self.tombstone_lifetime),
            "log_level" => log_level_name(self.log_level).into(),
            "replay_window_ms" => ms(self.replay_window),
            "max_requests_per_source" => self.max_requests_per_source.to_string(),
            "routing" => self.routing.name().into(),
            "capacity" => self.capacity.to_string(),
            "virtual_nodes" => self.virtual_nodes.to_string(),
            "sip_address" => opt(self.sip_address.map(|a| a.to_string())),
            "membership_sync_ms" => ms(self.membership_sync_interval),
            "dns_server" => opt(self.dns.server.map(|a| a.to_string())),
            "dns_zone" => self.dns.zone.clone(),
            "dns_domain" => self.dns.domain.clone(),
            "dns_key" | "dns_key_file" => if self.dns.key.is_some() {
                "set"
            } else {
                "unset"
            }
            .into(),
            "dns_ttl_s" => self.dns.ttl.to_string(),
            "dns_tcp" => (self.dns.tcp as u8).to_string(),
            "abilities" => self
                .abilities
                .iter()
                .map(|a| {
                    let mut text = format!("{}:capacity={},load={}", a.name, a.capacity, a.load);
                    for (k, v) in &a.attrs {
                        text.push_str(&format!(",{k}={v}"));
                    }
                    text
                })
                .collect::<Vec<_>>()
                .join(";"),
            "ability_ttl_s" => secs(self.ability_ttl),
            "threads" => opt(self.threads.map(|n| n.to_string())),
            "publish_refresh_ms" => self.publish_refresh.map_or_else(|| "0".into(), ms),
            _ => return Err(Bad(format!("unknown option {name:?}"))),
        })
    }
}

fn log_level_name(l: LogLevel) -> &'static str {
    match l {
        LogLevel::Off => "off",
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
        LogLevel::Trace => "trace",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every readable setting reads back as what was set, and setting what
    /// was read changes nothing: the two speak one language.
    #[test]
    fn what_is_set_reads_back_and_round_trips() {
        let mut c = Config::default();
        for (name, value) in [
            ("successors", "5"),
            ("replicas", "2"),
            ("op_timeout_ms", "1500"),
            ("listen", "127.0.0.1:4999"),
            ("routing", "one-hop"),
            ("log_level", "debug"),
            ("max_lifetime_s", "7200"),
            ("dns_tcp", "1"),
            ("threads", "3"),
            ("sip_address", "127.0.0.1:5060"),
            ("publish_refresh_ms", "250"),
            ("overlay", "ring-a"),
        ] {
            c.set(name, value).unwrap();
            assert_eq!(c.get(name).unwrap(), value, "{name}");
        }
        let names = [
            "listen",
            "advertise",
            "overlay",
            "open_overlay",
            "successors",
            "replicas",
            "location_cache",
            "stabilize_ms",
            "check_predecessor_ms",
            "fix_fingers_ms",
            "sync_ms",
            "rpc_timeout_min_ms",
            "rpc_timeout_initial_ms",
            "rpc_timeout_max_ms",
            "rpc_retries",
            "op_timeout_ms",
            "max_datagram",
            "max_value_bytes",
            "max_writer_bytes",
            "max_entries_per_key",
            "max_keys",
            "max_lifetime_s",
            "tombstone_lifetime_s",
            "log_level",
            "replay_window_ms",
            "max_requests_per_source",
            "routing",
            "capacity",
            "virtual_nodes",
            "membership_sync_ms",
            "dns_ttl_s",
            "dns_tcp",
            "ability_ttl_s",
            "max_store_bytes",
            "max_entries_per_owner",
            "digest_algorithm",
            "digest_nonce_lifetime_s",
            "max_client_lifetime_s",
            "sip_address",
            "publish_refresh_ms",
        ];
        for name in names {
            let v = c.get(name).unwrap();
            let mut again = c.clone();
            again
                .set(name, &v)
                .unwrap_or_else(|e| panic!("{name}={v:?}: {e}"));
            assert_eq!(again.get(name).unwrap(), v, "{name}");
        }
        assert_eq!(Config::default().get("successors").unwrap(), "8");
    }

    #[test]
    fn secrets_are_never_given_back() {
        let mut c = Config::default();
        assert_eq!(c.get("client_key").unwrap(), "unset");
        c.set("client_key", "a-client-credential-of-some-length")
            .unwrap();
        assert_eq!(c.get("client_key").unwrap(), "set");
        let e = c.get("no_such_option").unwrap_err().to_string();
        assert!(e.contains("unknown option"), "{e}");
    }
}
