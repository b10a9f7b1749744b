//! Eight `chordsip node` processes on loopback: join, store, graceful leave on
//! SIGTERM, kill -9 of three, restart and rejoin; no value lost.

#[path = "support/node_proc.rs"]
mod node_proc;

use chordsip::client::Client;
use chordsip::Id;
use node_proc::{client_key_file, start_node, NodeProc as Proc, CLIENT_KEY};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn spawn(bootstrap: &[SocketAddr]) -> Proc {
    spawn_with(bootstrap, &[])
}

/// Starts a node process on a port of the kernel's choice (its address is
/// `Proc::addr`) and waits until it reports that it joined.
fn spawn_with(bootstrap: &[SocketAddr], extra: &[&std::ffi::OsStr]) -> Proc {
    let mut args: Vec<std::ffi::OsString> = ["--listen", "127.0.0.1:0", "--log", "warn"]
        .iter()
        .map(Into::into)
        .collect();
    args.push("--client-key-file".into());
    args.push(client_key_file().into());
    args.extend(extra.iter().map(|a| a.to_os_string()));
    if !bootstrap.is_empty() {
        let list: Vec<String> = bootstrap.iter().map(|a| a.to_string()).collect();
        args.push("--bootstrap".into());
        args.push(list.join(",").into());
    }
    start_node(args)
}

fn key(i: usize) -> Id {
    Id::from_name(&format!("sip:proc{i}@example.com"))
}

fn client(addr: SocketAddr) -> Client {
    let mut c = Client::connect(addr, "chordsip", Some(CLIENT_KEY)).unwrap();
    c.set_timeout(Duration::from_secs(3));
    c
}

/// Every value readable through every listed node, within `max`.
fn all_found(addrs: &[SocketAddr], values: usize, max: Duration) -> bool {
    let end = Instant::now() + max;
    loop {
        let mut missing = 0;
        for i in 0..values {
            let mut c = client(addrs[i % addrs.len()]);
            match c.get(key(i)) {
                Ok(v) if v.len() == 1 && v[0].data == format!("contact{i}").as_bytes() => {}
                _ => missing += 1,
            }
        }
        if missing == 0 {
            return true;
        }
        if Instant::now() > end {
            eprintln!("{missing} values missing");
            return false;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Waits until the listed nodes together hold at least `want` entries.
fn copies_restored(addrs: &[SocketAddr], want: usize, max: Duration) -> bool {
    let end = Instant::now() + max;
    loop {
        let total: usize = addrs
            .iter()
            .filter_map(|a| client(*a).ring_text().ok())
            .filter_map(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("stored_entries "))
                    .and_then(|v| v.trim().parse::<usize>().ok())
            })
            .sum();
        if total >= want {
            return true;
        }
        if Instant::now() > end {
            eprintln!("only {total} of {want} entries held");
            // Each node's lists and keys, to find the range short of copies.
            for a in addrs {
                if let Ok(t) = client(*a).ring_text() {
                    eprintln!("=== RING {a}\n{t}");
                }
                if let Ok(t) = client(*a).stats_text() {
                    eprintln!("=== STATS {a}\n{t}");
                }
            }
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn eight_processes_survive_leave_crash_and_restart() {
    let mut procs: Vec<Option<Proc>> = Vec::new();
    let first = spawn(&[]);
    let second = spawn(&[first.addr]);
    let boot = [first.addr, second.addr];
    procs.push(Some(first));
    procs.push(Some(second));
    for _ in 2..8 {
        procs.push(Some(spawn(&boot)));
    }
    let mut addrs: Vec<SocketAddr> = procs.iter().flatten().map(|p| p.addr).collect();
    // Wait (bounded) until every node has both neighbours.
    let end = Instant::now() + Duration::from_secs(20);
    while !addrs.iter().all(|a| {
        client(*a)
            .ring_text()
            .is_ok_and(|t| t.contains("successor[0]") && t.contains("predecessor[0]"))
    }) {
        assert!(Instant::now() < end, "ring of 8 processes did not form");
        std::thread::sleep(Duration::from_millis(100));
    }
    let values = 120;
    for i in 0..values {
        let mut c = client(addrs[i % 8]);
        let r = c
            .put(
                key(i),
                b"ua",
                format!("contact{i}").as_bytes(),
                Duration::from_secs(600),
            )
            .unwrap();
        assert!(r.copies >= 2, "value {i} copies {}", r.copies);
    }
    assert!(all_found(&addrs, values, Duration::from_secs(10)));

    // Graceful leave: SIGTERM, the node hands its data over and exits 0.
    let mut p = procs[7].take().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(p.child.id() as i32),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
    let status = p.child.wait().unwrap();
    assert!(status.success(), "graceful leave exits 0");
    let live: Vec<SocketAddr> = addrs[..7].to_vec();
    assert!(
        all_found(&live, values, Duration::from_secs(10)),
        "after graceful leave"
    );

    // kill -9 of three processes, one after another; before each kill the
    // overlay must be back at three copies of everything (3 copies survive any
    // 2 simultaneous failures, not 3).
    let mut live: Vec<usize> = (0..7).collect();
    for i in [2usize, 4, 5] {
        let addrs_live: Vec<SocketAddr> = live.iter().map(|&j| addrs[j]).collect();
        assert!(
            copies_restored(&addrs_live, 3 * values, Duration::from_secs(20)),
            "replicas before killing {i}"
        );
        let mut p = procs[i].take().unwrap();
        p.child.kill().unwrap();
        p.child.wait().unwrap();
        live.retain(|&j| j != i);
        let addrs_live: Vec<SocketAddr> = live.iter().map(|&j| addrs[j]).collect();
        assert!(
            all_found(&addrs_live, values, Duration::from_secs(20)),
            "after kill -9 of node {i}"
        );
    }

    // Restart the killed and the departed (at new ports); they rejoin.
    for i in [2usize, 4, 5, 7] {
        let p = spawn(&[addrs[0], addrs[1]]);
        addrs[i] = p.addr;
        procs[i] = Some(p);
    }
    for &a in &addrs {
        let mut c = client(a);
        let ring = c.ring_text().unwrap();
        assert!(
            ring.contains("phase Joined") && ring.contains("successor[0]"),
            "{ring}"
        );
    }
    assert!(
        all_found(&addrs, values, Duration::from_secs(20)),
        "after restart"
    );
}

/// Runs the CLI; a command that asks a node gets the client credential.
fn cli(args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chordsip"));
    cmd.args(args);
    if args.contains(&"--via") {
        cmd.arg("--client-key-file").arg(client_key_file());
    }
    let out = cmd.output().unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        text += &String::from_utf8_lossy(&out.stderr);
    }
    (out.status.success(), text)
}

/// The operator commands for SIP bindings against two node processes, one
/// reached over its UNIX client socket.
#[test]
fn register_and_locate_from_the_command_line() {
    let dir = std::env::temp_dir().join(format!("chordsip-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The two nodes act as one registrar: one writer key (`chordsip keygen`),
    // so an unregister through one removes what was registered through the other.
    let key = dir.join("writer.key");
    let _ = std::fs::remove_file(&key);
    let path = key.to_str().unwrap();
    let (ok, _) = cli(&["keygen", "--out", path]);
    assert!(ok);
    {
        use std::os::unix::fs::PermissionsExt;
        let text = std::fs::read_to_string(&key).unwrap();
        assert_eq!(text.trim().len(), 64, "{text}");
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, out) = cli(&["keygen", "--out", path]);
        assert!(
            !again && out.contains("cannot create") && out.contains("File exists"),
            "keygen must not overwrite a key: {out}"
        );
        assert_eq!(std::fs::read_to_string(&key).unwrap(), text);
    }
    let first = spawn_with(&[], &["--writer-key-file".as_ref(), key.as_os_str()]);
    let a = first.addr;
    let sock = dir.join("b.sock");
    let extra = [
        "--writer-key-file".as_ref(),
        path.as_ref(),
        "--client-socket".as_ref(),
        sock.as_os_str(),
    ];
    let _second = spawn_with(&[a], &extra);
    let via_unix = format!("unix:{}", sock.display());
    assert!(chordsip::testnet::wait_until(
        Duration::from_secs(10),
        || sock.exists()
    ));
    let (ok, _) = cli(&[
        "register",
        "--via",
        &a.to_string(),
        "sip:Carol@Example.com",
        "sip:carol@192.0.2.7:5060",
        "--q",
        "0.5",
    ]);
    assert!(ok);
    let (ok, _) = cli(&[
        "register",
        "--via",
        &via_unix,
        "sips:Carol@example.com:5061",
        "sip:carol@192.0.2.8",
        "--expires",
        "300",
    ]);
    assert!(ok);
    let (ok, out) = cli(&[
        "locate",
        "--via",
        &via_unix,
        "sip:Carol@EXAMPLE.com;transport=tcp",
    ]);
    assert!(ok, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("sip:carol@192.0.2.8\tq=1\texpires="),
        "{out}"
    );
    assert!(
        lines[0].contains("\towner="),
        "a binding names its writer key: {out}"
    );
    assert!(
        lines[1].starts_with("sip:carol@192.0.2.7:5060\tq=0.5"),
        "{out}"
    );
    let (ok, _) = cli(&[
        "register",
        "--via",
        &a.to_string(),
        "sip:Carol@example.com",
        "--all",
        "--expires",
        "0",
    ]);
    assert!(ok);
    let (ok, out) = cli(&["locate", "--via", &a.to_string(), "sip:Carol@example.com"]);
    assert!(
        !ok && out.contains("sip:Carol@example.com is not registered"),
        "unregistered AOR must not be found: {out}"
    );
    let (ok, out) = cli(&[
        "locate",
        "--via",
        &a.to_string(),
        "mailto:carol@example.com",
    ]);
    // Refused as no SIP URI, not for some other reason (an unreachable node).
    assert!(
        !ok && out.contains("mailto") && !out.contains("not registered"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs the CLI with `input` on its standard input.
fn cli_input(args: &[&str], input: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_chordsip"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that fails before it reads its input closes the pipe: not an error here.
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    let out = child.wait_with_output().unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text += &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// `keygen` for a key file; its public half (what it prints on stderr).
fn keygen(path: &std::path::Path) -> String {
    let _ = std::fs::remove_file(path);
    let out = Command::new(env!("CARGO_BIN_EXE_chordsip"))
        .args(["keygen", "--out"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stderr)
        .trim()
        .strip_prefix("writer ")
        .unwrap()
        .to_string()
}

/// An administrator adds, lists and removes SIP users with `chordsip user`
/// against two registrar node processes; the registrars read the HA1s;
/// a user added with another admin key does not count.
#[test]
fn users_are_added_listed_and_removed_from_the_command_line() {
    use chordsip::sip::auth;
    use chordsip::sip::credentials::CredentialTrust;
    use chordsip::sip::digest::{self, Algorithm};
    let dir = std::env::temp_dir().join(format!("chordsip-cli-users-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (admin, creds, other) = (
        dir.join("admin.key"),
        dir.join("creds.key"),
        dir.join("other.key"),
    );
    let admin_pub = keygen(&admin);
    keygen(&creds);
    keygen(&other);
    let creds_opt = format!("credentials_key_file={}", creds.display());
    let admins_opt = format!("credential_admins={admin_pub}");
    let registrar_args: Vec<&std::ffi::OsStr> = vec![
        "--set".as_ref(),
        creds_opt.as_ref(),
        "--set".as_ref(),
        admins_opt.as_ref(),
    ];
    let first = spawn_with(&[], &registrar_args);
    let a = first.addr;
    let second = spawn_with(&[a], &registrar_args);
    let b = second.addr;
    let boot = a.to_string();
    let user = |cmd: &str, who: &str, key: &std::path::Path, extra: &[&str], input: &str| {
        let mut args = vec!["user", cmd, who, "--bootstrap", &boot];
        args.extend(["--admin-key-file", key.to_str().unwrap()]);
        args.extend(["--credentials-key-file", creds.to_str().unwrap()]);
        args.extend(extra);
        cli_input(&args, input)
    };
    let (ok, out) = user("add", "alice@example.com", &admin, &[], "wonderland\n");
    assert!(ok, "{out}");
    let bob_md5 = digest::ha1(Algorithm::Md5, "bob", "example.com", "builder");
    let (ok, out) = user("add", "bob@example.com", &admin, &["--ha1", &bob_md5], "");
    assert!(ok, "{out}");
    let (ok, out) = user("add", "mallory@example.com", &other, &[], "x\n");
    assert!(
        ok,
        "a member may write, but its record does not count: {out}"
    );
    let (ok, out) = user("list", "example.com", &admin, &[], "");
    assert!(ok, "{out}");
    assert_eq!(out.lines().collect::<Vec<_>>(), ["alice", "bob"]);
    // Many users in one session (a password may hold spaces).
    let file = dir.join("users.txt");
    let mut lines = String::from("# user@realm password\n\n");
    for i in 0..200 {
        lines += &format!("u{i}@example.org pass word {i}\n");
    }
    std::fs::write(&file, lines).unwrap();
    let file_arg = file.to_str().unwrap().to_string();
    let t0 = Instant::now();
    let (ok, out) = cli_input(
        &[
            "user",
            "add",
            "--from-file",
            &file_arg,
            "--bootstrap",
            &boot,
            "--admin-key-file",
            admin.to_str().unwrap(),
            "--credentials-key-file",
            creds.to_str().unwrap(),
        ],
        "",
    );
    assert!(ok && out.contains("200 users stored"), "{out}");
    eprintln!("200 users added in {:?}", t0.elapsed());
    let (ok, out) = user("list", "example.org", &admin, &[], "");
    assert!(ok && out.lines().count() == 200, "{out}");

    let mut c = client(b);
    c.set_credential_trust(CredentialTrust {
        key: chordsip::owner::parse_secret(&std::fs::read_to_string(&creds).unwrap()).unwrap(),
        admins: vec![chordsip::owner::parse_owner(&admin_pub).unwrap()],
    })
    .unwrap();
    let ha1 = |c: &mut Client, u: &str, alg| auth::ha1(c, u, "example.com", alg).unwrap();
    assert_eq!(
        ha1(&mut c, "alice", Algorithm::Md5),
        Some(digest::ha1(
            Algorithm::Md5,
            "alice",
            "example.com",
            "wonderland"
        ))
    );
    assert_eq!(ha1(&mut c, "bob", Algorithm::Md5), Some(bob_md5));
    assert_eq!(
        ha1(&mut c, "bob", Algorithm::Sha256),
        None,
        "only an MD5 HA1 was given"
    );
    assert_eq!(ha1(&mut c, "mallory", Algorithm::Md5), None);
    assert_eq!(
        auth::ha1(&mut c, "u199", "example.org", Algorithm::Md5).unwrap(),
        Some(digest::ha1(
            Algorithm::Md5,
            "u199",
            "example.org",
            "pass word 199"
        ))
    );

    let (ok, out) = user("remove", "bob@example.com", &admin, &[], "");
    assert!(ok, "{out}");
    assert_eq!(ha1(&mut c, "bob", Algorithm::Md5), None);
    let (ok, out) = user("remove", "bob@example.com", &admin, &[], "");
    assert!(!ok && out.contains("no user bob@example.com"), "{out}");
    let (ok, out) = user("refresh", "example.com", &admin, &[], "");
    assert!(ok && out.contains("1 users"), "{out}");
    // Bad input: clear errors, nothing stored.
    for (who, extra, input, want) in [
        ("nobody", &[][..], "pw\n", "USER@REALM expected"),
        ("carol@example.com", &[][..], "\n", "empty password"),
        (
            "carol@example.com",
            &["--ha1", "zz"][..],
            "",
            "hex digits expected",
        ),
    ] {
        let (ok, out) = user("add", who, &admin, extra, input);
        assert!(!ok && out.contains(want), "{who}: {out}");
    }
    assert_eq!(ha1(&mut c, "carol", Algorithm::Md5), None);
}

/// Runs the CLI with exactly `args`, with a time limit: (succeeded, output).
fn cli_exact(args: &[&std::ffi::OsStr], limit: Duration) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chordsip"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chordsip {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text += &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// A keyed ring of node processes (`--key-file`): a node with a wrong
/// overlay key or none gives up its join with an error; the CLI reads and
/// writes with the client key over UDP and over the UNIX socket, and is
/// refused without it.
#[test]
fn keyed_ring_from_the_command_line() {
    let dir = std::env::temp_dir().join(format!("chordsip-cli-keyed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let overlay_key = dir.join("overlay.key");
    std::fs::write(&overlay_key, "cli-tests-overlay-key\n").unwrap();
    let wrong_key = dir.join("wrong.key");
    std::fs::write(&wrong_key, "cli-tests-wrong-key-of-a-stranger\n").unwrap();
    let sock = dir.join("keyed.sock");
    let keyed = ["--key-file".as_ref(), overlay_key.as_os_str()];
    let first = spawn_with(&[], &keyed);
    let a = first.addr.to_string();
    let mut with_socket = keyed.to_vec();
    with_socket.extend(["--client-socket".as_ref(), sock.as_os_str()]);
    let second = spawn_with(&[first.addr], &with_socket);
    assert!(chordsip::testnet::wait_until(
        Duration::from_secs(10),
        || sock.exists()
    ));

    // Strangers: the join fails (the bootstrap drops their datagrams), and
    // the process says so and exits.
    for key in [Some(wrong_key.as_os_str()), None] {
        let mut args: Vec<&std::ffi::OsStr> = [
            "node",
            "--listen",
            "127.0.0.1:0",
            "--log",
            "off",
            "--join-timeout-secs",
            "1",
            "--set",
            "op_timeout_ms=500",
            "--bootstrap",
        ]
        .iter()
        .map(|s| s.as_ref())
        .collect();
        args.push(a.as_ref());
        if let Some(k) = key {
            args.extend(["--key-file".as_ref(), k]);
        }
        let (ok, out) = cli_exact(&args, Duration::from_secs(20));
        assert!(
            !ok && out.contains("join failed"),
            "stranger {key:?}: {out}"
        );
    }
    // The members never took them in: each still lists only the other.
    for via in [&a, &second.addr.to_string()] {
        let (ok, out) = cli(&["ring", "--via", via]);
        assert!(ok, "{out}");
        let peers: std::collections::BTreeSet<&str> = out
            .lines()
            .filter(|l| l.starts_with("successor[") || l.starts_with("predecessor["))
            .filter_map(|l| l.split_whitespace().nth(1))
            .collect();
        assert_eq!(peers.len(), 1, "{out}");
    }

    // The client key admits the CLI over UDP; the UNIX socket needs none.
    let via_unix = format!("unix:{}", sock.display());
    let (ok, out) = cli(&["put", "--via", &a, "sip:kept@example.com", "v1"]);
    assert!(ok, "{out}");
    for via in [&a, &via_unix] {
        let (ok, out) = cli(&["get", "--via", via, "sip:kept@example.com"]);
        assert!(ok && out.contains("v1"), "{via}: {out}");
    }
    // Without the client key: refused at once. With a wrong one: the node
    // drops the datagrams as forged, and the CLI gives up at its deadline.
    let get = |extra: &[&std::ffi::OsStr]| {
        let mut args: Vec<&std::ffi::OsStr> = ["get", "--via", a.as_str(), "--timeout-ms", "1000"]
            .into_iter()
            .map(|s| s.as_ref())
            .collect();
        args.extend(extra);
        args.push("sip:kept@example.com".as_ref());
        cli_exact(&args, Duration::from_secs(10))
    };
    let (ok, out) = get(&[]);
    assert!(!ok && out.contains("not authorized"), "{out}");
    let (ok, out) = get(&["--client-key-file".as_ref(), wrong_key.as_os_str()]);
    assert!(!ok && out.contains("timed out"), "{out}");
    drop(second);
    drop(first);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The node flags --overlay, --replicas and --successors, and the key
/// commands' flags (put --writer --lifetime, get --hex, lookup, remove
/// --writer, register --instance --reg-id, locate --all) against four node
/// processes.
#[test]
fn key_commands_and_node_flags_from_the_command_line() {
    let flags = [
        "--overlay",
        "cli-other",
        "--replicas",
        "2",
        "--successors",
        "3",
    ];
    let flags: Vec<&std::ffi::OsStr> = flags.iter().map(|s| s.as_ref()).collect();
    let first = spawn_with(&[], &flags);
    let a = first.addr.to_string();
    let _others: Vec<Proc> = (0..3).map(|_| spawn_with(&[first.addr], &flags)).collect();
    let ours = |args: &[&str]| {
        let mut v = args.to_vec();
        v.extend(["--via", a.as_str(), "--overlay", "cli-other"]);
        cli(&v)
    };
    // Four nodes, three successors each (--successors) once the ring settled.
    assert!(chordsip::testnet::wait_until(
        Duration::from_secs(15),
        || {
            let (ok, out) = ours(&["ring"]);
            ok && out.lines().filter(|l| l.starts_with("successor[")).count() == 3
        }
    ));
    // The default overlay name is another overlay: its datagrams are dropped.
    let (ok, out) = cli(&["ring", "--via", &a, "--timeout-ms", "500"]);
    assert!(!ok && out.contains("timed out"), "{out}");

    let key = "sip:flags@example.com";
    let hex = Id::from_name(key).to_hex();
    let (ok, out) = ours(&["put", key, "v1", "--writer", "phone", "--lifetime", "30"]);
    assert!(ok, "{out}");
    assert_eq!(out.trim(), format!("stored {hex} copies=2"), "--replicas 2");
    let (ok, out) = ours(&["get", "--hex", &hex]);
    assert!(ok && out.starts_with("phone\tv1\tversion="), "{out}");
    let secs: u64 = out
        .trim()
        .rsplit("expires_in=")
        .next()
        .and_then(|s| s.strip_suffix('s'))
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX);
    assert!((25..=30).contains(&secs), "--lifetime 30: {out}");
    let (ok, out) = ours(&["get", "--hex", "not-hex"]);
    assert!(!ok && out.contains("40 hex digits"), "{out}");
    let (ok, out) = ours(&["lookup", key]);
    assert!(
        ok && out.starts_with(&format!("{hex} responsible ")),
        "{out}"
    );
    assert!(out.contains("127.0.0.1:") && out.contains("hops="), "{out}");
    let (ok, out) = ours(&["remove", key, "--writer", "phone"]);
    assert!(ok && out.trim() == format!("removed {hex}"), "{out}");
    let (ok, out) = ours(&["get", key]);
    assert!(
        !ok && out.contains(&format!("no value stored under {hex}")),
        "{out}"
    );

    let inst = "<urn:uuid:00000000-0000-1000-8000-00000000cafe>";
    let (ok, out) = ours(&[
        "register",
        "sip:flow@example.com",
        "sip:flow@192.0.2.9:5060;ob",
        "--instance",
        inst,
        "--reg-id",
        "1",
        "--expires",
        "120",
    ]);
    assert!(ok && out.contains(&format!("\tinstance={inst}")), "{out}");
    let (ok, out) = ours(&["locate", "--all", "sip:flow@example.com"]);
    assert!(
        ok && out.starts_with("sip:flow@192.0.2.9:5060;ob\tq=1\texpires=")
            && out.contains(&format!("\tinstance={inst}"))
            && out.contains("\towner="),
        "{out}"
    );
    let (ok, out) = ours(&[
        "register",
        "sip:flow@example.com",
        "sip:x@192.0.2.9",
        "--reg-id",
        "1",
    ]);
    assert!(!ok && out.contains("reg-id without +sip.instance"), "{out}");
}

/// One HTTP request to the metrics endpoint: (status line, headers, body).
fn http_get(url: &str, method: &str, headers: &[&str]) -> (String, String, String) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest.split_once('/').unwrap();
    let mut conn = std::net::TcpStream::connect(host).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = format!("{method} /{path} HTTP/1.1\r\nHost: {host}\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    conn.write_all(req.as_bytes()).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_string(), headers.to_string(), body.to_string())
}

/// The value of the sample line starting with `prefix` (name and labels).
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
}

/// An operator's diagnostics against five node processes: the metrics
/// endpoint (both exposition formats, a bearer token, refusals), `ping`,
/// `trace` (its route ends at the node `lookup` names) and the JSON forms
/// of `ring` and `stats`.
#[test]
fn diagnostics_and_metrics_from_the_command_line() {
    let dir = std::env::temp_dir().join(format!("chordsip-diag-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("metrics.token");
    std::fs::write(&token, "s3cret-scrape-token\n").unwrap();
    let metrics = ["--metrics", "127.0.0.1:0"];
    let flags: Vec<&std::ffi::OsStr> = metrics.iter().map(|s| s.as_ref()).collect();
    let first = spawn_with(&[], &flags);
    let a = first.addr.to_string();
    let mut nodes = vec![first];
    for _ in 0..4 {
        nodes.push(spawn(&[nodes[0].addr]));
    }
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.to_string()).collect();
    let via = |args: &[&str]| {
        let mut v = args.to_vec();
        v.extend(["--via", a.as_str()]);
        cli(&v)
    };
    // Every node lists the four others as successors: a settled ring, on
    // which a trace and a lookup started one after the other agree.
    assert!(chordsip::testnet::wait_until(
        Duration::from_secs(30),
        || {
            addrs.iter().all(|n| {
                let (ok, out) = cli(&["ring", "--via", n]);
                ok && out.lines().filter(|l| l.starts_with("successor[")).count() >= 4
            })
        }
    ));

    // trace: the route of every key ends at the node `lookup` names, and
    // each hop is one of the five nodes with a measured round trip.
    for i in 0..12 {
        let name = format!("sip:trace{i}@example.com");
        let (ok, out) = via(&["trace", &name, "--json"]);
        assert!(ok, "{out}");
        let t: serde_json::Value = serde_json::from_str(&out).unwrap();
        let (ok, plain) = via(&["lookup", &name]);
        assert!(ok, "{plain}");
        let responsible = t["responsible"]["id"].as_str().unwrap();
        assert!(
            plain.contains(&format!(" responsible {responsible} ")),
            "{plain} vs {out}"
        );
        for hop in t["hops"].as_array().unwrap() {
            assert!(
                addrs.contains(&hop["addr"].as_str().unwrap().to_string()),
                "{out}"
            );
            assert!(hop["rtt_us"].as_u64().unwrap() > 0, "{out}");
        }
        let (ok, text) = via(&["trace", &name]);
        assert!(
            ok && text.contains(&format!("responsible {responsible} ")),
            "{text}"
        );
    }

    // ping: answered by a live node, and an error for a port nobody holds.
    let (ok, out) = via(&["ping", &addrs[3], "--count", "2", "--interval-ms", "10"]);
    assert!(ok && out.contains("2 sent, 2 answered, 0 lost"), "{out}");
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap().to_string();
    drop(closed);
    let (ok, out) = via(&["ping", &dead, "--count", "1", "--timeout-ms", "3000"]);
    assert!(!ok && out.contains("answered none of 1 pings"), "{out}");

    // ring --json and stats --json.
    let (ok, out) = via(&["ring", "--json"]);
    assert!(ok, "{out}");
    let ring: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ring["node"]["addr"], a.as_str());
    assert_eq!(ring["phase"], "Joined");
    assert!(ring["successors"].as_array().unwrap().len() >= 3, "{out}");
    assert!(!ring["fingers"].as_array().unwrap().is_empty(), "{out}");
    let (ok, out) = via(&["stats", "--json"]);
    assert!(ok, "{out}");
    let stats: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(stats["msgs_sent"].as_u64().unwrap() > 0, "{out}");
    assert!(stats["lookups_ok"].as_u64().unwrap() >= 24, "{out}");

    // The metrics endpoint of the first node: OpenMetrics when asked for,
    // the older text format otherwise, the same counters in both.
    let token_arg = token.to_str().unwrap().to_string();
    let guarded = node_proc::start_node([
        "--listen",
        "127.0.0.1:0",
        "--log",
        "off",
        "--bootstrap",
        a.as_str(),
        "--metrics",
        "127.0.0.1:0",
        "--metrics-token-file",
        token_arg.as_str(),
    ]);
    let ready = guarded.ready.clone();
    {
        let url = ready.split_whitespace().last().unwrap().to_string();
        let (status, _, _) = http_get(&url, "GET", &[]);
        assert!(status.contains("401"), "no token: {status}");
        let (status, _, _) = http_get(&url, "GET", &["Authorization: Bearer wrong"]);
        assert!(status.contains("401"), "wrong token: {status}");
        let (status, _, body) =
            http_get(&url, "GET", &["Authorization: Bearer s3cret-scrape-token"]);
        assert!(
            status.contains("200") && body.contains("chordsip_joined 1"),
            "{status}"
        );
        let (status, headers, body) =
            http_get(&url, "HEAD", &["Authorization: Bearer s3cret-scrape-token"]);
        assert!(status.contains("200") && body.is_empty(), "{status}");
        assert!(!headers.contains("Content-Length: 0\r"), "{headers}");
    }
    drop(guarded);
    assert!(
        ready.contains(" joined metrics http://127.0.0.1:"),
        "{ready}"
    );

    let (ok, out) = cli(&["node", "--listen", "127.0.0.1:0", "--metrics", "0.0.0.0:0"]);
    assert!(!ok && out.contains("not a loopback address"), "{out}");

    let (ok, out) = via(&["metrics"]);
    assert!(ok && out.ends_with("# EOF\n"), "{out}");
    // The first node printed its endpoint at the end of its ready line.
    let url = nodes[0]
        .ready
        .split_whitespace()
        .last()
        .unwrap()
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{}", nodes[0].ready);
    let open = "Accept: application/openmetrics-text; version=1.0.0,text/plain;q=0.5";
    let (status, headers, body) = http_get(&url, "GET", &[open]);
    assert!(status.contains("200"), "{status}");
    assert!(
        headers.contains("application/openmetrics-text"),
        "{headers}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(
        body.contains(&format!(
            "chordsip_node_info{{id=\"{}\",addr=\"{a}\"}} 1",
            nodes[0].id.to_hex()
        )),
        "{body}"
    );
    let ok_lookups = sample(
        &body,
        "chordsip_operations_total{op=\"lookup\",result=\"ok\"}",
    )
    .unwrap();
    assert!(ok_lookups >= 24.0, "{body}");
    let count = sample(&body, "chordsip_lookup_duration_seconds_count").unwrap();
    let inf = sample(
        &body,
        "chordsip_lookup_duration_seconds_bucket{le=\"+Inf\"}",
    )
    .unwrap();
    assert_eq!(count, inf, "{body}");
    let (status, headers, older) = http_get(&url, "GET", &[]);
    assert!(
        status.contains("200") && headers.contains("version=0.0.4"),
        "{headers}"
    );
    assert!(
        older.contains("# TYPE chordsip_messages_sent_total counter"),
        "{older}"
    );
    assert!(!older.contains("# EOF"), "{older}");
    let (status, _, _) = http_get(&url.replace("/metrics", "/other"), "GET", &[]);
    assert!(status.contains("404"), "{status}");
    let (status, _, _) = http_get(&url, "POST", &[]);
    assert!(status.contains("405"), "{status}");
    let _ = std::fs::remove_dir_all(&dir);
}
