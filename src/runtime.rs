//! The shared runtime: a small pool of worker threads that service every
//! node of the process. Each worker owns some nodes (engine + UDP socket),
//! waits on their sockets with one `mio::Poll`, fires their timers, and runs
//! commands sent to it over a crossbeam channel. 64 nodes in a process still
//! mean only the configured number of threads; no thread sleeps per timer or
//! blocks per request.

use crate::engine::{Engine, Event, OpResult};
use crate::error::{Error, Result};
use crossbeam_channel::{unbounded, Receiver, Sender};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const WAKER: Token = Token(usize::MAX);
/// Datagrams read from one socket before giving the other nodes a turn.
const READ_BUDGET: usize = 256;

/// Receives a node's events (membership changes, keys moved, log lines).
pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;
/// Receives the result of one asynchronous operation.
pub type Callback = Box<dyn FnOnce(OpResult) + Send>;
/// Work run on the worker thread with access to a node.
pub type NodeTask = Box<dyn FnOnce(&mut NodeSlot, u64) + Send>;
/// Work a host scheduled on a node's worker for later ([`NodeSlot::schedule`]).
pub type TimerTask = Box<dyn FnOnce() + Send>;

/// Hooks run on every library thread as it starts and before it exits
/// (a host registers its threads with its own runtime, e.g. PJSIP).
#[derive(Clone, Default)]
pub struct ThreadHooks {
    pub on_start: Option<Arc<dyn Fn() + Send + Sync>>,
    pub on_stop: Option<Arc<dyn Fn() + Send + Sync>>,
}

/// A node as its worker holds it.
pub struct NodeSlot {
    pub engine: Engine,
    socket: UdpSocket,
    unix: Option<UnixEndpoint>,
    callbacks: HashMap<u64, Callback>,
    events: Option<EventSink>,
    /// Host timers by (due time in µs, sequence): they die with the node.
    timers: BTreeMap<(u64, u64), TimerTask>,
    next_timer: u64,
}

/// Most UNIX-socket clients a node remembers; the least recently heard is forgotten first.
const MAX_UNIX_CLIENTS: usize = 4096;

/// A node's local datagram socket for client handles on the same host.
///
/// The engine speaks in IP socket addresses, so each UNIX client gets an alias
/// in the discard-only prefix `100::/64` (RFC 6666), which no real peer can
/// have; replies to an alias leave through this socket.
pub struct UnixEndpoint {
    socket: UnixDatagram,
    path: PathBuf,
    aliases: HashMap<SocketAddr, (UnixAddr, u64)>,
    by_name: HashMap<Vec<u8>, SocketAddr>,
    next_alias: u64,
    clock: u64,
}

pub use crate::wire::is_unix_alias;

fn unix_name(addr: &UnixAddr) -> Option<Vec<u8>> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    if let Some(name) = addr.as_abstract_name() {
        let mut v = vec![0u8];
        v.extend_from_slice(name);
        Some(v)
    } else {
        addr.as_pathname().map(|p| {
            let mut v = vec![1u8];
            v.extend_from_slice(p.as_os_str().as_bytes());
            v
        })
    }
}

impl UnixEndpoint {
    /// Binds `path`, replacing a stale socket file left by a crashed process.
    /// Only the node's own user may use it (mode 0600), or members of
    /// `group` too (0660).
    pub fn bind(path: PathBuf, group: Option<&str>) -> Result<UnixEndpoint> {
        use std::os::unix::fs::FileTypeExt;
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            if !meta.file_type().is_socket() {
                return Err(Error::InvalidArgument(format!(
                    "{} exists and is not a socket",
                    path.display()
                )));
            }
            if std::os::unix::net::UnixDatagram::unbound()
                .and_then(|s| s.connect(&path))
                .is_ok()
            {
                return Err(Error::InvalidArgument(format!(
                    "{} is in use by another node",
                    path.display()
                )));
            }
            std::fs::remove_file(&path)?;
        }
        let socket = bind_private(&path, group)?;
        socket.set_nonblocking(true)?;
        Ok(UnixEndpoint {
            socket,
            path,
            aliases: HashMap::new(),
            by_name: HashMap::new(),
            next_alias: 1,
            clock: 0,
        })
    }

    /// The alias of a client, assigned on first contact.
    fn alias_of(&mut self, from: UnixAddr) -> Option<SocketAddr> {
        let name = unix_name(&from)?; // an unbound client cannot receive replies
        self.clock += 1;
        if let Some(a) = self.by_name.get(&name).copied() {
            if let Some(e) = self.aliases.get_mut(&a) {
                e.1 = self.clock;
            }
            return Some(a);
        }
        if self.aliases.len() >= MAX_UNIX_CLIENTS {
            if let Some(old) = self
                .aliases
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(a, _)| *a)
            {
                if let Some((addr, _)) = self.aliases.remove(&old) {
                    if let Some(n) = unix_name(&addr) {
                        self.by_name.remove(&n);
                    }
                }
            }
        }
        let n = self.next_alias;
        self.next_alias += 1;
        let ip = Ipv6Addr::new(
            0x100,
            0,
            0,
            0,
            (n >> 48) as u16,
            (n >> 32) as u16,
            (n >> 16) as u16,
            n as u16,
        );
        let alias = SocketAddr::new(IpAddr::V6(ip), 1);
        self.aliases.insert(alias, (from, self.clock));
        self.by_name.insert(name, alias);
        Some(alias)
    }

    fn send(&self, data: &[u8], alias: &SocketAddr) -> bool {
        match self.aliases.get(alias) {
            Some((addr, _)) => self.socket.send_to_addr(data, addr).is_ok(),
            None => false,
        }
    }
}

/// Binds a UNIX datagram socket at `path` and restricts it to this user
/// (0600), or to `group` too (0660). (The socket cannot be bound elsewhere
/// and moved: clients check that answers come from `path`.)
fn bind_private(path: &Path, group: Option<&str>) -> Result<UnixDatagram> {
    use std::os::unix::fs::PermissionsExt;
    let gid = match group {
        None => None,
        Some(g) => Some(group_id(g)?),
    };
    let socket = UnixDatagram::bind(path)?;
    let restricted = (|| {
        if let Some(gid) = gid {
            std::os::unix::fs::chown(path, None, Some(gid))?;
        }
        let mode = if gid.is_some() { 0o660 } else { 0o600 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    })();
    if let Err(e) = restricted {
        let _ = std::fs::remove_file(path);
        return Err(Error::Io(format!("client socket {}: {e}", path.display())));
    }
    Ok(socket)
}

/// The id of a group given by name or number.
fn group_id(group: &str) -> Result<u32> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(group) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(Error::InvalidArgument(format!(
            "client_socket_group {group:?}: no such group"
        ))),
        Err(e) => Err(Error::Io(format!("client_socket_group {group:?}: {e}"))),
    }
}

impl Drop for UnixEndpoint {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl NodeSlot {
    /// Registers the callback for operation `op` before the engine is asked to run it.
    pub fn on_complete(&mut self, op: u64, cb: Callback) {
        self.callbacks.insert(op, cb);
    }

    /// Runs `task` on this worker at `at` (µs on the runtime's clock), or
    /// never if the node is removed first.
    pub fn schedule(&mut self, at: u64, task: TimerTask) {
        self.next_timer += 1;
        self.timers.insert((at, self.next_timer), task);
    }

    /// When the worker must next wake for this node: its engine's timers or a host timer.
    fn next_wake(&self) -> Option<u64> {
        let host = self.timers.keys().next().map(|&(at, _)| at);
        match (self.engine.next_timeout(), host) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs the host timers due by `now`.
    fn fire_timers(&mut self, now: u64) {
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let task = entry.remove();
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(task));
        }
    }
}

enum Command {
    Add {
        token: usize,
        slot: Box<NodeSlot>,
        done: Sender<Result<()>>,
    },
    Remove {
        token: usize,
        done: Option<Sender<()>>,
    },
    Run {
        token: usize,
        task: NodeTask,
    },
    Shutdown,
}

struct Worker {
    tx: Sender<Command>,
    waker: Arc<Waker>,
    nodes: AtomicUsize,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// The process-wide pool of worker threads.
pub struct Runtime {
    workers: Vec<Worker>,
    /// The process that started the workers; a forked child has none of them.
    pid: u32,
    epoch: Instant,
    wall_offset_ms: u64,
    next_token: AtomicUsize,
}

static SHARED: Mutex<Weak<Runtime>> = Mutex::new(Weak::new());
static HOOKS: Mutex<Option<ThreadHooks>> = Mutex::new(None);

thread_local! {
    static ON_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the calling thread is one of the runtime's workers (blocking there would deadlock).
pub fn on_worker_thread() -> bool {
    ON_WORKER.with(|c| c.get())
}

impl Runtime {
    /// Sets the thread hooks used by workers started from now on.
    pub fn set_thread_hooks(hooks: ThreadHooks) {
        *HOOKS.lock() = Some(hooks);
    }

    /// Whether the shared worker threads are running (hooks set now would not reach them).
    pub fn running() -> bool {
        SHARED.lock().strong_count() > 0
    }

    /// The runtime shared by all nodes of the process, started on first use and
    /// stopped when the last node using it is gone. `threads` (a node's
    /// `threads` setting) counts only when this call starts it; else the
    /// environment's `CHORDSIP_THREADS`, else min(cores, 4).
    pub fn shared(threads: Option<usize>) -> Result<Arc<Runtime>> {
        let mut guard = SHARED.lock();
        if let Some(rt) = guard.upgrade() {
            return Ok(rt);
        }
        let threads = threads
            .or_else(|| {
                std::env::var("CHORDSIP_THREADS")
                    .ok()
                    .and_then(|v| v.parse::<usize>().ok())
            })
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
                    .min(4)
            })
            .clamp(1, 64);
        let rt = Arc::new(Runtime::start(threads)?);
        *guard = Arc::downgrade(&rt);
        Ok(rt)
    }

    fn start(threads: usize) -> Result<Runtime> {
        let epoch = Instant::now();
        let wall_offset_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let hooks = HOOKS.lock().clone().unwrap_or_default();
        let mut workers = Vec::with_capacity(threads);
        for n in 0..threads {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let (tx, rx) = unbounded();
            let hooks = hooks.clone();
            // The thread keeps its waker open: if the runtime is dropped from a
            // callback (not joined), closing the waker could lose the wake-up
            // that tells the worker to shut down.
            let own_waker = Arc::clone(&waker);
            let handle = std::thread::Builder::new()
                .name(format!("chordsip-{n}"))
                .spawn(move || {
                    let _waker = own_waker;
                    block_signals();
                    ON_WORKER.with(|c| c.set(true));
                    if let Some(h) = &hooks.on_start {
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h()));
                    }
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        worker_loop(poll, rx, epoch)
                    }));
                    if let Some(h) = &hooks.on_stop {
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h()));
                    }
                })?;
            workers.push(Worker {
                tx,
                waker,
                nodes: AtomicUsize::new(0),
                thread: Mutex::new(Some(handle)),
            });
        }
        Ok(Runtime {
            workers,
            pid: std::process::id(),
            epoch,
            wall_offset_ms,
            next_token: AtomicUsize::new(1),
        })
    }

    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    /// Microseconds on the runtime's monotonic clock.
    pub fn now(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    pub fn wall_offset_ms(&self) -> u64 {
        self.wall_offset_ms
    }

    /// Hands a node to the least loaded worker. Returns (worker index, token).
    pub fn add_node(
        &self,
        engine: Engine,
        socket: std::net::UdpSocket,
        unix: Option<UnixEndpoint>,
        events: Option<EventSink>,
    ) -> Result<(usize, usize)> {
        socket.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(socket);
        let w = (0..self.workers.len())
            .min_by_key(|&i| self.workers[i].nodes.load(Ordering::Relaxed))
            .unwrap_or(0);
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let slot = Box::new(NodeSlot {
            engine,
            socket,
            unix,
            callbacks: HashMap::new(),
            events,
            timers: BTreeMap::new(),
            next_timer: 0,
        });
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        self.send(
            w,
            Command::Add {
                token,
                slot,
                done: done_tx,
            },
        )?;
        done_rx.recv().map_err(|_| Error::Shutdown)??;
        self.workers[w].nodes.fetch_add(1, Ordering::Relaxed);
        Ok((w, token))
    }

    /// Removes a node; when called off the worker, waits until the worker dropped it,
    /// so no callback of that node runs afterwards.
    pub fn remove_node(&self, worker: usize, token: usize) {
        let wait = !on_worker_thread();
        let (tx, rx) = crossbeam_channel::bounded(1);
        let cmd = Command::Remove {
            token,
            done: wait.then_some(tx),
        };
        if self.send(worker, cmd).is_ok() && wait {
            let _ = rx.recv();
        }
        self.workers[worker].nodes.fetch_sub(1, Ordering::Relaxed);
    }

    /// Runs `task` on the node's worker thread.
    pub fn run(&self, worker: usize, token: usize, task: NodeTask) -> Result<()> {
        self.send(worker, Command::Run { token, task })
    }

    fn send(&self, worker: usize, cmd: Command) -> Result<()> {
        let w = &self.workers[worker];
        w.tx.send(cmd).map_err(|_| Error::Shutdown)?;
        w.waker.wake().map_err(Error::from)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if std::process::id() != self.pid {
            // A forked child: the workers live only in the parent, and joining
            // or waking them here would hang or disturb the parent's.
            return;
        }
        for w in &self.workers {
            let _ = w.tx.send(Command::Shutdown);
            let _ = w.waker.wake();
        }
        if on_worker_thread() {
            return; // the last node was dropped from a callback: workers exit on their own
        }
        for w in &self.workers {
            if let Some(h) = w.thread.lock().take() {
                let _ = h.join();
            }
        }
    }
}

/// Library threads never run the host's signal handlers.
pub(crate) fn block_signals() {
    use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
    let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&SigSet::all()), None);
}

fn worker_loop(mut poll: Poll, rx: Receiver<Command>, epoch: Instant) {
    let mut events = Events::with_capacity(256);
    let mut nodes: HashMap<usize, Box<NodeSlot>> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    let mut readable: Vec<usize> = Vec::new();
    let mut pending_read: Vec<usize> = Vec::new();
    loop {
        let now = epoch.elapsed().as_micros() as u64;
        let next = nodes.values().filter_map(|n| n.next_wake()).min();
        let timeout = if !pending_read.is_empty() {
            Some(Duration::ZERO)
        } else {
            next.map(|t| Duration::from_micros(t.saturating_sub(now)))
        };
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() != ErrorKind::Interrupted {
                return;
            }
        }
        readable.clear();
        readable.append(&mut pending_read);
        for ev in events.iter() {
            if ev.token() != WAKER && !readable.contains(&ev.token().0) {
                readable.push(ev.token().0);
            }
        }
        // Commands first: additions, API calls, removals.
        while let Ok(cmd) = rx.try_recv() {
            match cmd {
                Command::Add {
                    token,
                    mut slot,
                    done,
                } => {
                    let mut r = poll
                        .registry()
                        .register(&mut slot.socket, Token(token << 1), Interest::READABLE)
                        .map_err(Error::from);
                    if let (Ok(()), Some(u)) = (&r, &slot.unix) {
                        let fd = u.socket.as_raw_fd();
                        r = poll
                            .registry()
                            .register(
                                &mut mio::unix::SourceFd(&fd),
                                Token(token << 1 | 1),
                                Interest::READABLE,
                            )
                            .map_err(Error::from);
                        if r.is_err() {
                            let _ = poll.registry().deregister(&mut slot.socket);
                        }
                    }
                    if r.is_ok() {
                        nodes.insert(token, slot);
                        readable.push(token << 1);
                        readable.push(token << 1 | 1);
                    }
                    let _ = done.send(r);
                }
                Command::Remove { token, done } => {
                    if let Some(mut slot) = nodes.remove(&token) {
                        let _ = poll.registry().deregister(&mut slot.socket);
                        if let Some(u) = &slot.unix {
                            let fd = u.socket.as_raw_fd();
                            let _ = poll.registry().deregister(&mut mio::unix::SourceFd(&fd));
                        }
                        drop(slot);
                    }
                    if let Some(d) = done {
                        let _ = d.send(());
                    }
                }
                Command::Run { token, task } => {
                    if let Some(slot) = nodes.get_mut(&token) {
                        let now = epoch.elapsed().as_micros() as u64;
                        task(slot, now);
                        flush(slot);
                    }
                    // A task for a node that is gone is dropped: its callback sender
                    // disconnects and a blocking caller sees Shutdown.
                }
                Command::Shutdown => return,
            }
        }
        for source in readable.iter().copied() {
            let Some(slot) = nodes.get_mut(&(source >> 1)) else {
                continue;
            };
            let mut budget = READ_BUDGET;
            loop {
                if budget == 0 {
                    pending_read.push(source);
                    break;
                }
                match receive(slot, source & 1 == 1, &mut buf) {
                    Ok(None) => budget -= 1,
                    Ok(Some((n, from))) => {
                        let now = epoch.elapsed().as_micros() as u64;
                        slot.engine.handle_datagram(now, from, &buf[..n]);
                        if slot.engine.has_output() {
                            flush(slot);
                        }
                        budget -= 1;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    // ICMP errors and the like: nothing to read right now.
                    Err(_) => break,
                }
            }
        }
        let now = epoch.elapsed().as_micros() as u64;
        for slot in nodes.values_mut() {
            if slot.engine.next_timeout().is_some_and(|t| t <= now) {
                slot.engine.handle_timeout(now);
                flush(slot);
            }
            slot.fire_timers(now);
        }
    }
}

/// Reads one datagram from the node's UDP or UNIX socket. `Ok(None)`: one
/// was read and dropped (a UNIX datagram that is not a client request, or
/// from an unnamed socket that could not receive the answer).
fn receive(
    slot: &mut NodeSlot,
    unix: bool,
    buf: &mut [u8],
) -> std::io::Result<Option<(usize, SocketAddr)>> {
    if !unix {
        return slot.socket.recv_from(buf).map(Some);
    }
    let Some(u) = slot.unix.as_mut() else {
        return Err(ErrorKind::WouldBlock.into());
    };
    let (n, from) = u.socket.recv_from(buf)?;
    // Only client requests come in locally: a peer message with an alias
    // address must never reach the routing table.
    if crate::wire::peek_flags(&buf[..n]).is_none_or(|f| f & crate::wire::FLAG_CLIENT == 0) {
        return Ok(None);
    }
    Ok(u.alias_of(from).map(|alias| (n, alias)))
}

/// Sends a node's datagrams and delivers its completions and events.
fn flush(slot: &mut NodeSlot) {
    let NodeSlot {
        engine,
        socket,
        unix,
        callbacks,
        events,
        ..
    } = slot;
    let mut send_errors = 0;
    for t in engine.drain_transmits() {
        let sent = if is_unix_alias(&t.to) {
            unix.as_ref().is_some_and(|u| u.send(&t.data, &t.to))
        } else {
            socket.send_to(&t.data, t.to).is_ok()
        };
        if !sent {
            // UDP semantics: a datagram that cannot be sent is lost; retransmission covers it.
            send_errors += 1;
        }
    }
    for _ in 0..send_errors {
        engine.record_send_error();
    }
    for c in engine.drain_completions() {
        if let Some(cb) = callbacks.remove(&c.op) {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(c.result)));
        }
    }
    for e in engine.drain_events() {
        if let Some(sink) = events {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink(&e)));
        }
    }
}
