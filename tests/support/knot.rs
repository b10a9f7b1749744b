//! A real Knot DNS server for tests: knotd in the foreground on a free
//! loopback port, zones example.test (updatable with one key) and other.test
//! (with another), queried with kdig/dig; killed and removed on drop.
#![allow(dead_code)]

use base64ct::{Base64, Encoding};
use chordsip::dns::{DnsTarget, TsigAlgorithm, TsigKey};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A program on PATH or in /usr/sbin (where Debian puts knotd, often off a user's PATH).
pub fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// knotd and a query tool, or None to skip (a failure under CI=true: no silent skips there).
pub fn tools() -> Option<(PathBuf, PathBuf)> {
    let knotd = find("knotd");
    let dig = find("kdig").or_else(|| find("dig"));
    match (knotd, dig) {
        (Some(k), Some(d)) => Some((k, d)),
        (k, _) => {
            let missing = if k.is_none() {
                "knotd (apt-get install knot)"
            } else {
                "kdig or dig (apt-get install knot-dnsutils)"
            };
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("dns_knot: {missing} not found; scripts/setup.sh installs it");
            }
            eprintln!("dns_knot: skipped, {missing} not found");
            None
        }
    }
}

pub fn random_key(name: &str) -> TsigKey {
    let secret: [u8; 32] = rand::random();
    TsigKey {
        name: name.into(),
        algorithm: TsigAlgorithm::HmacSha256,
        secret: secret.to_vec(),
    }
}

/// A running knotd with its temporary directory; killed and removed on drop
/// (a failed assertion included).
pub struct Knot {
    pub child: Child,
    pub dir: PathBuf,
    pub port: u16,
    pub dig: PathBuf,
}

impl Drop for Knot {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.join("knotd.log")).unwrap_or_default();
            eprintln!("knotd log:\n{log}");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn zone_file(zone: &str) -> String {
    format!(
        "$ORIGIN {zone}.\n$TTL 60\n@ SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 60\n@ NS ns\nns A 127.0.0.1\n"
    )
}

/// Zones example.test (updatable with `key`) and other.test (only with `other`).
pub fn config(dir: &Path, port: u16, key: &TsigKey, other: &TsigKey) -> String {
    let d = dir.display();
    let k = |k: &TsigKey| {
        format!(
            "  - id: {}\n    algorithm: {}\n    secret: {}\n",
            k.name,
            k.algorithm,
            Base64::encode_string(&k.secret)
        )
    };
    format!(
        "server:\n    rundir: \"{d}\"\n    listen: 127.0.0.1@{port}\n\
         database:\n    storage: \"{d}/db\"\n\
         log:\n  - target: stderr\n    any: info\n\
         key:\n{}{}\
         acl:\n  - id: upd_acl\n    key: {}\n    action: update\n  - id: other_acl\n    key: {}\n    action: update\n\
         template:\n  - id: default\n    storage: \"{d}\"\n    zonefile-sync: -1\n    zonefile-load: whole\n    journal-content: changes\n\
         zone:\n  - domain: example.test\n    file: example.test.zone\n    acl: upd_acl\n\
         \x20 - domain: other.test\n    file: other.test.zone\n    acl: other_acl\n",
        k(key),
        k(other),
        key.name,
        other.name
    )
}

/// A port free for both UDP and TCP on 127.0.0.1 right now, below the
/// kernel's ephemeral range (knotd needs its port in its configuration, so
/// one is picked; a port of that range could be handed to any process's
/// bind to port 0 meanwhile). `Knot::start` tries another when knotd could
/// not bind it.
pub fn free_port() -> u16 {
    let ephemeral_low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let low = if ephemeral_low >= 10_300 {
        10_000
    } else {
        1_100
    };
    assert!(
        ephemeral_low > low + 100,
        "no ports below the ephemeral range"
    );
    for _ in 0..200 {
        let port = rand::Rng::gen_range(&mut rand::thread_rng(), low..ephemeral_low - 1);
        let free = UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port)).is_ok();
        if free {
            return port;
        }
    }
    panic!("no port below {ephemeral_low} free for both UDP and TCP on 127.0.0.1 in 200 tries");
}

impl Knot {
    /// Starts knotd in the foreground; retries on another port if it could not bind.
    pub fn start(knotd: &Path, dig: &Path, key: &TsigKey, other: &TsigKey) -> Knot {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("chordsip-knot-{}-{nanos}", std::process::id()));
        // knotd 3.2 starts without its database directory but then fails every
        // update with SERVFAIL ("processing failed (not exists)").
        std::fs::create_dir_all(dir.join("db")).unwrap();
        for zone in ["example.test", "other.test"] {
            std::fs::write(dir.join(format!("{zone}.zone")), zone_file(zone)).unwrap();
        }
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let conf = dir.join("knot.conf");
            std::fs::write(&conf, config(&dir, port, key, other)).unwrap();
            let log = std::fs::File::create(dir.join("knotd.log")).unwrap();
            let child = Command::new(knotd)
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start knotd");
            let mut knot = Knot {
                child,
                dir: dir.clone(),
                port,
                dig: dig.to_path_buf(),
            };
            if knot.wait_ready(Duration::from_secs(15)) {
                return knot;
            }
            last_log = std::fs::read_to_string(dir.join("knotd.log")).unwrap_or_default();
            // Keep the directory for the next try: take it out of the guard.
            let _ = knot.child.kill();
            let _ = knot.child.wait();
            std::mem::forget(knot);
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!("knotd did not start in 5 tries; last log:\n{last_log}");
    }

    /// Polls the SOA until knotd serves both zones, the process exits, or the deadline passes.
    pub fn wait_ready(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if !self.query("example.test", "SOA").is_empty()
                && !self.query("other.test", "SOA").is_empty()
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// `+short` answer lines, sorted.
    pub fn query(&self, name: &str, rtype: &str) -> Vec<String> {
        let out = Command::new(&self.dig)
            .args([
                "@127.0.0.1",
                "-p",
                &self.port.to_string(),
                "+short",
                "+time=1",
                "+retry=0",
            ])
            .args([name, rtype])
            .output()
            .expect("run dig");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with(';'))
            .map(String::from)
            .collect();
        lines.sort();
        lines
    }

    pub fn target(&self, zone: &str, key: Option<TsigKey>) -> DnsTarget {
        DnsTarget {
            server: SocketAddr::from(([127, 0, 0, 1], self.port)),
            zone: zone.into(),
            key,
            timeout: Duration::from_secs(5),
        }
    }
}
