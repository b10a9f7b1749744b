//! `chordsip node` processes for tests: started with the given arguments,
//! waited for until they report that they joined, killed on drop.
#![allow(dead_code)]

use chordsip::Id;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The client credential the test nodes are started with (`--client-key-file`).
pub const CLIENT_KEY: &[u8] = b"node-process-tests-client-key";

/// A file holding [`CLIENT_KEY`], written once per test process.
pub fn client_key_file() -> std::path::PathBuf {
    static FILE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let p = std::env::temp_dir().join(format!("chordsip-test-{}.ckey", std::process::id()));
        std::fs::write(&p, CLIENT_KEY).unwrap();
        p
    })
    .clone()
}

/// A node process; killed (SIGKILL) and reaped when dropped.
pub struct NodeProc {
    pub child: Child,
    /// Its node id, from its "node <id> listening on <addr> joined" line.
    pub id: Id,
    /// The address it bound (started with port 0, the kernel's choice:
    /// no port picked, freed and bound later, which another process may
    /// take meanwhile).
    pub addr: std::net::SocketAddr,
    /// The whole ready line (it ends with the metrics URL under --metrics).
    pub ready: String,
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `chordsip node` with `args` (after `node`): started, and waited for
/// (30 s at most) until it prints that it joined.
pub fn start_node<I, S>(args: I) -> NodeProc
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let child = Command::new(env!("CARGO_BIN_EXE_chordsip"))
        .arg("node")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chordsip node");
    // Owned by a NodeProc at once: a failed check below kills it on drop.
    let mut proc = NodeProc {
        child,
        id: Id::ZERO,
        addr: ([0, 0, 0, 0], 0).into(),
        ready: String::new(),
    };
    let stdout = proc.child.stdout.take().expect("piped stdout");
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("node reports it joined");
    assert!(line.contains("joined"), "unexpected output: {line}");
    let words: Vec<&str> = line.split_whitespace().collect();
    proc.id = words
        .get(1)
        .and_then(|w| Id::from_hex(w))
        .unwrap_or_else(|| panic!("no node id in {line:?}"));
    proc.addr = words
        .get(4)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    proc.ready = line;
    proc
}
