//! `chordsip`: run an overlay node, talk to a running overlay, or run a local demo.

use chordsip::client::{Client, PeerAddr};
use chordsip::{Config, Event, Id, LogLevel, Node};
use clap::{Args, Parser, Subcommand};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "chordsip/demo.rs"]
mod demo;
#[path = "chordsip/diag.rs"]
mod diag;
#[path = "chordsip/metrics_http.rs"]
mod metrics_http;
#[path = "chordsip/user.rs"]
mod user;

#[derive(Parser)]
#[command(
    name = "chordsip",
    version,
    about = "Chord overlay for SIP location: node, client and demo"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run an overlay node until SIGINT/SIGTERM, then leave gracefully.
    Node(NodeArgs),
    /// Store a value under a key (through a running node).
    Put(PutArgs),
    /// Print the values stored under a key.
    Get(KeyArgs),
    /// Remove this writer's value of a key.
    Remove(RemoveArgs),
    /// Print the node responsible for a key and the hops taken.
    Lookup(KeyArgs),
    /// Register a SIP contact for an address-of-record (like a REGISTER).
    Register(RegisterArgs),
    /// Print the live SIP bindings of an address-of-record, highest q first.
    Locate(LocateArgs),
    /// Print a node's predecessors, successors, fingers and stored keys.
    Ring(ReportArgs),
    /// Find peers by ability (logical overlays), least loaded first: one
    /// line per peer with its id, overlay address, capacity, load and the
    /// ability's other attributes. Peers announce abilities with
    /// `chordsip node --ability NAME[:ATTR=VALUE,...]`.
    Peers(PeersArgs),
    /// Print a node's statistics.
    Stats(ReportArgs),
    /// Print a node's counters as OpenMetrics text (what `node --metrics` serves).
    Metrics(ViaArgs),
    /// Measure the round trip from a node (--via) to the peer at ADDR.
    Ping(PingArgs),
    /// Look a key up through a node (--via) hop by hop: each node that
    /// answered a step, its address and the step's round trip.
    Trace(TraceArgs),
    /// Make a writer key: its secret (64 hex digits) goes to --out or stdout,
    /// its public half to stderr. Give the file to every server of one
    /// registrar (`--writer-key-file`, Kamailio's `writer_key_file`). The
    /// same command makes a credentials key (`credentials_key_file`).
    Keygen(KeygenArgs),
    /// Start a local overlay on loopback, store values, kill a quarter of the
    /// nodes one after another, and show that every value is still found.
    Demo(demo::DemoArgs),
    /// SIP digest credentials in the overlay (administrators): add, remove,
    /// list and refresh users. Registrars read them with `credentials_key_file`
    /// and `credential_admins`.
    #[command(subcommand)]
    User(user::UserCmd),
}

#[derive(Args)]
struct OverlayArgs {
    /// Overlay name; nodes of other overlays are ignored.
    #[arg(long, default_value = "chordsip")]
    overlay: String,
    /// File holding the overlay key (its bytes, trailing newline stripped).
    #[arg(long)]
    key_file: Option<PathBuf>,
}

impl OverlayArgs {
    fn key(&self) -> Result<Option<Vec<u8>>, String> {
        self.key_file.as_deref().map(read_key).transpose()
    }
}

/// A key file's bytes, trailing newline stripped.
fn read_key(p: &std::path::Path) -> Result<Vec<u8>, String> {
    let mut k =
        std::fs::read(p).map_err(|e| format!("cannot read key file {}: {e}", p.display()))?;
    while k.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        k.pop();
    }
    if k.is_empty() {
        return Err(format!("key file {} is empty", p.display()));
    }
    Ok(k)
}

#[derive(Args)]
struct KeygenArgs {
    /// File to create (mode 0600; an existing file is left alone).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct NodeArgs {
    /// UDP address to listen on.
    #[arg(long, default_value = "127.0.0.1:4000")]
    listen: String,
    /// Address peers use to reach this node (when listening on a wildcard).
    #[arg(long)]
    advertise: Option<String>,
    /// Bootstrap peers (comma-separated or repeated); none starts a new ring.
    #[arg(long, value_delimiter = ',')]
    bootstrap: Vec<String>,
    #[command(flatten)]
    overlay: OverlayArgs,
    /// File holding this node's writer key (`chordsip keygen`); its holder
    /// alone can change what the node writes. Default: a new key each start.
    #[arg(long)]
    writer_key_file: Option<PathBuf>,
    /// A P2P user agent's own writer key, one per device: read from the
    /// file, or made there (mode 0600) on first start. Restarted with it,
    /// the UA replaces and removes its own earlier bindings.
    #[arg(long, conflicts_with = "writer_key_file")]
    device_key_file: Option<PathBuf>,
    /// An ability this node offers (repeatable), e.g.
    /// `relay:capacity=100,load=0,turn=10.0.0.5:3478`: name (lower case),
    /// then optional `capacity`, `load` (numbers) and other attributes.
    /// Announced once joined, refreshed every `ability_ttl_s`/3 (30 s by
    /// default), withdrawn when the node leaves; `chordsip peers` finds them.
    #[arg(long = "ability")]
    abilities: Vec<String>,
    /// Copies of each value.
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Length of the successor list.
    #[arg(long, default_value_t = 8)]
    successors: usize,
    /// Keep retrying the bootstrap peers this long before giving up.
    #[arg(long, default_value_t = 30)]
    join_timeout_secs: u64,
    /// Log level on stderr: off, error, warn, info, debug, trace.
    #[arg(long, default_value = "info")]
    log: String,
    /// Also serve client handles on this UNIX datagram socket path
    /// (clients then use `--via unix:PATH`); only this user may use it.
    #[arg(long)]
    client_socket: Option<PathBuf>,
    /// File holding the credential of client handles over UDP (at least 16
    /// bytes); without it, clients are served on --client-socket only.
    #[arg(long)]
    client_key_file: Option<PathBuf>,
    /// Run off loopback without an overlay key: anyone who reaches the node
    /// may join, read and write.
    #[arg(long)]
    open_overlay: bool,
    /// Any node option as NAME=VALUE (repeatable), e.g.
    /// `--set trusted_writers=<public key>` (docs: chordsip_config_set).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    options: Vec<String>,
    /// Serve the node's counters as OpenMetrics text at
    /// http://ADDR/metrics (Prometheus); port 0 picks a free one. Off
    /// loopback it needs --metrics-token-file.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// File holding the bearer token scrapers must present
    /// (`Authorization: Bearer TOKEN`); required when --metrics is not a
    /// loopback address.
    #[arg(long)]
    metrics_token_file: Option<PathBuf>,
}

#[derive(Args)]
struct RegisterArgs {
    #[command(flatten)]
    via: ViaArgs,
    /// The address-of-record, e.g. sip:alice@example.com.
    aor: String,
    /// The contact URI; none with --expires 0 and --all removes every binding.
    contact: Option<String>,
    /// Seconds the binding lives; 0 unregisters.
    #[arg(long, default_value_t = 3600)]
    expires: u32,
    /// q-value, e.g. 0.5.
    #[arg(long)]
    q: Option<String>,
    /// +sip.instance of the device.
    #[arg(long)]
    instance: Option<String>,
    /// reg-id of the flow (needs --instance).
    #[arg(long)]
    reg_id: Option<u32>,
    /// Remove all bindings of the AOR (Contact: *; needs --expires 0).
    #[arg(long)]
    all: bool,
}

#[derive(Args)]
struct LocateArgs {
    #[command(flatten)]
    via: ViaArgs,
    /// The address-of-record, e.g. sip:alice@example.com.
    aor: String,
    /// Every binding, whoever wrote it (by default only the ones written
    /// under the node's writer key or its trusted_writers), with its owner.
    #[arg(long)]
    all: bool,
}

#[derive(Args)]
struct PeersArgs {
    #[command(flatten)]
    via: ViaArgs,
    /// The ability, e.g. `relay`, `pstn-gateway`, `voicemail`.
    #[arg(long)]
    ability: String,
    /// At most this many peers.
    #[arg(long, default_value_t = 8)]
    count: usize,
}

#[derive(Args)]
struct ViaArgs {
    /// A running node to ask: `host:port` (needs --client-key-file), or
    /// `unix:PATH` for its client socket.
    #[arg(long, default_value = "127.0.0.1:4000")]
    via: String,
    /// Overlay name.
    #[arg(long, default_value = "chordsip")]
    overlay: String,
    /// File holding the node's client credential (its --client-key-file).
    #[arg(long)]
    client_key_file: Option<PathBuf>,
    /// Hard deadline in milliseconds.
    #[arg(long, default_value_t = 6000)]
    timeout_ms: u64,
}

#[derive(Args)]
struct ReportArgs {
    #[command(flatten)]
    via: ViaArgs,
    /// One JSON object (schema in docs/CLI.md) instead of `name value` lines.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct PingArgs {
    #[command(flatten)]
    via: ViaArgs,
    /// The peer's overlay address (ip:port).
    addr: String,
    /// Pings to send.
    #[arg(long, default_value_t = 3)]
    count: u32,
    /// Pause between pings, in milliseconds.
    #[arg(long, default_value_t = 200)]
    interval_ms: u64,
}

#[derive(Args)]
struct TraceArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// One JSON object (schema in docs/CLI.md).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct KeyArgs {
    #[command(flatten)]
    via: ViaArgs,
    /// Resource name (hashed with SHA-1), or 40 hex digits with --hex.
    key: String,
    /// The key is given as 40 hex digits.
    #[arg(long)]
    hex: bool,
}

#[derive(Args)]
struct PutArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// The value to store.
    value: String,
    /// Dictionary slot (one per writer/device).
    #[arg(long, default_value = "cli")]
    writer: String,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    lifetime: u64,
}

#[derive(Args)]
struct RemoveArgs {
    #[command(flatten)]
    key: KeyArgs,
    #[arg(long, default_value = "cli")]
    writer: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Node(a) => run_node(a),
        Cmd::Put(a) => run_put(a),
        Cmd::Get(a) => run_get(a),
        Cmd::Remove(a) => run_remove(a),
        Cmd::Lookup(a) => run_lookup(a),
        Cmd::Register(a) => run_register(a),
        Cmd::Locate(a) => run_locate(a),
        Cmd::Peers(a) => run_peers(a),
        Cmd::Ring(a) => client(&a.via)
            .and_then(|mut c| c.ring_text().map_err(|e| e.to_string()))
            .map(|t| match a.json {
                true => println!("{:#}", diag::ring_json(&t)),
                false => print!("{t}"),
            }),
        Cmd::Stats(a) => client(&a.via)
            .and_then(|mut c| c.stats_text().map_err(|e| e.to_string()))
            .map(|t| match a.json {
                true => println!("{:#}", diag::stats_json(&t)),
                false => print!("{t}"),
            }),
        Cmd::Metrics(a) => client(&a)
            .and_then(|mut c| c.metrics_text().map_err(|e| e.to_string()))
            .map(|t| print!("{t}")),
        Cmd::Ping(a) => {
            let interval = Duration::from_millis(a.interval_ms);
            resolve(&a.addr).and_then(|addr| {
                client(&a.via).and_then(|mut c| diag::ping(&mut c, addr, a.count.max(1), interval))
            })
        }
        Cmd::Trace(a) => key_of(&a.key)
            .and_then(|key| client(&a.key.via).and_then(|mut c| diag::trace(&mut c, key, a.json))),
        Cmd::Keygen(a) => run_keygen(a),
        Cmd::Demo(a) => demo::run(a),
        Cmd::User(c) => user::run(c),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chordsip: {e}");
            ExitCode::FAILURE
        }
    }
}

fn resolve(s: &str) -> Result<SocketAddr, String> {
    s.to_socket_addrs()
        .map_err(|e| format!("bad address {s}: {e}"))?
        .next()
        .ok_or_else(|| format!("address {s} resolves to nothing"))
}

fn run_keygen(a: KeygenArgs) -> Result<(), String> {
    let secret = chordsip::owner::random_secret();
    let text = format!("{}\n", chordsip::owner::hex(&secret));
    match &a.out {
        None => print!("{text}"),
        Some(p) => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(p)
                .map_err(|e| format!("cannot create {}: {e}", p.display()))?;
            f.write_all(text.as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
        }
    }
    let key = chordsip::owner::WriterKey::from_secret(&secret);
    eprintln!("writer {}", chordsip::owner::hex(key.owner()));
    Ok(())
}

fn run_node(a: NodeArgs) -> Result<(), String> {
    let mut cfg = Config {
        // Client handles (Kamailio workers, the CLI's register) run REGISTERs here.
        transactions: Some(chordsip::sip::remote::transactions()),
        listen: resolve(&a.listen)?,
        advertise: a.advertise.as_deref().map(resolve).transpose()?,
        overlay: a.overlay.overlay.clone(),
        overlay_key: a.overlay.key()?,
        replicas: a.replicas,
        successors: a.successors,
        log_level: LogLevel::parse(&a.log).map_err(|e| e.to_string())?,
        client_socket: a.client_socket.clone(),
        client_key: a.client_key_file.as_deref().map(read_key).transpose()?,
        open_overlay: a.open_overlay,
        ..Config::default()
    };
    apply_sets(&mut cfg, &a.options)?;
    if !a.abilities.is_empty() {
        cfg.set("abilities", &a.abilities.join(";"))
            .map_err(|e| e.to_string())?;
    }
    if let Some(p) = &a.writer_key_file {
        cfg.set("writer_key_file", &p.to_string_lossy())
            .map_err(|e| e.to_string())?;
    }
    if let Some(p) = &a.device_key_file {
        cfg.set("device_key_file", &p.to_string_lossy())
            .map_err(|e| e.to_string())?;
    }
    let bootstrap = a
        .bootstrap
        .iter()
        .map(|b| resolve(b))
        .collect::<Result<Vec<_>, _>>()?;
    let sink = Node::event_sink(|e| match e {
        Event::Log(level, msg) => eprintln!("[{level:?}] {msg}"),
        Event::PredecessorChanged(Some(p)) => eprintln!("[Info] predecessor {}", p.addr),
        Event::SuccessorChanged(Some(s)) => eprintln!("[Info] successor {}", s.addr),
        _ => {}
    });
    let metrics_token = a.metrics_token_file.as_deref().map(read_key).transpose()?;
    let metrics_at = a.metrics.as_deref().map(resolve).transpose()?;
    if let Some(at) = metrics_at {
        metrics_http::check(at, metrics_token.is_some())?;
    }
    let node = Arc::new(Node::start_with_events(cfg, Some(sink)).map_err(|e| e.to_string())?);
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| e.to_string())?;
    }
    let metrics_url = match metrics_at {
        Some(at) => {
            let bound = metrics_http::serve(node.clone(), at, metrics_token, stop.clone())?;
            format!(" metrics http://{bound}/metrics")
        }
        None => String::new(),
    };
    let give_up = Instant::now() + Duration::from_secs(a.join_timeout_secs);
    loop {
        match node.join(&bootstrap) {
            Ok(()) => break,
            Err(e) if Instant::now() < give_up && !stop.load(Ordering::Relaxed) => {
                eprintln!("[Warn] join failed ({e}); retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => return Err(format!("join failed: {e}")),
        }
    }
    println!(
        "node {} listening on {} joined{metrics_url}",
        node.id(),
        node.addr()
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("[Info] leaving");
    let r = node.leave(Duration::from_secs(5));
    match r {
        Ok(()) => {
            eprintln!("[Info] left the ring");
            Ok(())
        }
        Err(e) => Err(format!("leave incomplete: {e}")),
    }
}

/// Applies `--set NAME=VALUE` options to a node's configuration.
fn apply_sets(cfg: &mut Config, options: &[String]) -> Result<(), String> {
    for option in options {
        let (name, value) = option
            .split_once('=')
            .ok_or_else(|| format!("--set {option}: want NAME=VALUE"))?;
        cfg.set(name, value).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn client(a: &ViaArgs) -> Result<Client, String> {
    let peer = if a.via.starts_with("unix:") {
        a.via.parse().map_err(|e: chordsip::Error| e.to_string())?
    } else {
        PeerAddr::Udp(resolve(&a.via)?)
    };
    let key = a.client_key_file.as_deref().map(read_key).transpose()?;
    let mut c = Client::connect_to(&peer, &a.overlay, key.as_deref()).map_err(|e| e.to_string())?;
    c.set_timeout(Duration::from_millis(a.timeout_ms));
    Ok(c)
}

fn key_of(a: &KeyArgs) -> Result<Id, String> {
    if a.hex {
        Id::from_hex(&a.key).ok_or_else(|| "key must be 40 hex digits".to_string())
    } else {
        Ok(Id::from_name(&a.key))
    }
}

fn run_put(a: PutArgs) -> Result<(), String> {
    let key = key_of(&a.key)?;
    let mut c = client(&a.key.via)?;
    let r = c
        .put(
            key,
            a.writer.as_bytes(),
            a.value.as_bytes(),
            Duration::from_secs(a.lifetime),
        )
        .map_err(|e| e.to_string())?;
    println!("stored {} copies={}", key, r.copies);
    Ok(())
}

fn print_bindings(list: &[(chordsip::sip::binding::Binding, u32)]) {
    for (b, expires) in list {
        println!(
            "{}\tq={}\texpires={}s{}",
            b.contact,
            chordsip::sip::binding::format_q(b.q),
            expires,
            b.instance
                .as_deref()
                .map(|i| format!("\tinstance={i}"))
                .unwrap_or_default()
                + &b.owner
                    .map(|o| format!("\towner={}", chordsip::owner::hex(&o)))
                    .unwrap_or_default()
        );
    }
}

fn run_register(a: RegisterArgs) -> Result<(), String> {
    use chordsip::sip::binding::{ContactSpec, RegisterRequest};
    let mut c = client(&a.via)?;
    let req = RegisterRequest {
        to: a.aor.clone(),
        call_id: format!(
            "cli-{}-{}",
            std::process::id(),
            chordsip::node::next_version()
        ),
        cseq: 1,
        star: a.all,
        contacts: a
            .contact
            .iter()
            .map(|uri| ContactSpec {
                uri: uri.clone(),
                expires: Some(a.expires),
                q: a.q.clone(),
                instance: a.instance.clone(),
                reg_id: a.reg_id,
            })
            .collect(),
        expires: Some(a.expires),
        ..RegisterRequest::default()
    };
    if req.contacts.is_empty() && !req.star {
        return Err("give a contact URI, or --all --expires 0".into());
    }
    let p = c.register(&req).map_err(|e| e.to_string())?;
    eprintln!(
        "inserted {}, updated {}, deleted {}",
        p.inserted, p.updated, p.deleted
    );
    print_bindings(&p.result);
    Ok(())
}

fn run_locate(a: LocateArgs) -> Result<(), String> {
    let mut c = client(&a.via)?;
    use chordsip::sip::registrar::{lookup, lookup_trusting, Trust};
    let list = match a.all {
        true => lookup_trusting(&mut c, &a.aor, Trust::All),
        false => lookup(&mut c, &a.aor),
    }
    .map_err(|e| e.to_string())?;
    if list.is_empty() {
        return Err(format!("{} is not registered", a.aor));
    }
    print_bindings(&list);
    Ok(())
}

fn run_peers(a: PeersArgs) -> Result<(), String> {
    let mut c = client(&a.via)?;
    let peers = c
        .find_peers(&a.ability, a.count)
        .map_err(|e| e.to_string())?;
    if peers.is_empty() {
        return Err(format!("no peer announces {}", a.ability));
    }
    for p in peers {
        let mut line = format!(
            "{} {} capacity={} load={}",
            p.id, p.addr, p.ability.capacity, p.ability.load
        );
        for (k, v) in &p.ability.attrs {
            line.push_str(&format!(" {k}={v}"));
        }
        println!("{line} expires_in={}s", p.lifetime.as_secs());
    }
    Ok(())
}

fn run_get(a: KeyArgs) -> Result<(), String> {
    let key = key_of(&a)?;
    let mut c = client(&a.via)?;
    let values = c.get(key).map_err(|e| e.to_string())?;
    if values.is_empty() {
        return Err(format!("no value stored under {key}"));
    }
    for v in values {
        println!(
            "{}\t{}\tversion={} expires_in={}s",
            String::from_utf8_lossy(&v.writer),
            String::from_utf8_lossy(&v.data),
            v.version,
            v.lifetime.as_secs()
        );
    }
    Ok(())
}

fn run_remove(a: RemoveArgs) -> Result<(), String> {
    let key = key_of(&a.key)?;
    let mut c = client(&a.key.via)?;
    c.remove(key, a.writer.as_bytes())
        .map_err(|e| e.to_string())?;
    println!("removed {key}");
    Ok(())
}

fn run_lookup(a: KeyArgs) -> Result<(), String> {
    let key = key_of(&a)?;
    let mut c = client(&a.via)?;
    let (node, hops) = c.lookup(key).map_err(|e| e.to_string())?;
    println!(
        "{} responsible {} {} hops={}",
        key, node.id, node.addr, hops
    );
    Ok(())
}
