//! Event delivery to the host, both ways: callbacks straight on library
//! threads, or a queue drained by `chordsip_node_process()` on the host's own
//! thread, signalled through one end of a socketpair (PJSIP's ioqueue can only
//! `recv()`, so the fd must be a socket).

use super::lists::chordsip_peer;
use super::{chordsip_result, UserData};
use crate::engine::Event;
use crate::runtime::EventSink;
use parking_lot::Mutex;
use std::ffi::{c_char, c_void, CString};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// What a `chordsip_event` reports.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum chordsip_event_kind {
    /// The node's predecessor changed; `peer` is the new one (absent: none known).
    CHORDSIP_EVENT_PREDECESSOR = 1,
    /// The node's immediate successor changed; `peer` is the new one.
    CHORDSIP_EVENT_SUCCESSOR = 2,
    /// `count` entries arrived that this node now holds (join handoff, replication, repair).
    CHORDSIP_EVENT_KEYS_IN = 3,
    /// `count` entries were handed away and dropped here (a newcomer took over their keys).
    CHORDSIP_EVENT_KEYS_OUT = 4,
    /// One-hop overlays: `peer` joined the membership (or announced new
    /// details); `weight` and `sip_address` are what it announced.
    CHORDSIP_EVENT_MEMBER_UP = 5,
    /// One-hop overlays: `peer` left or failed.
    CHORDSIP_EVENT_MEMBER_DOWN = 6,
    /// A binding published with `chordsip_node_publish` was refreshed on the
    /// library's timer: `aor`, and `expires` the seconds it now lives.
    CHORDSIP_EVENT_REFRESHED = 7,
    /// A refresh on the library's timer failed: `aor`, `result` and
    /// `detail` say why, `expires` how many seconds the binding still
    /// lives (0: it lapsed), `retry_ms` when the library tries again.
    CHORDSIP_EVENT_REFRESH_FAILED = 8,
}

/// A membership or storage event, valid only during the callback.
#[repr(C)]
pub struct chordsip_event {
    pub kind: chordsip_event_kind,
    /// 1 when `peer` is set (predecessor/successor events with a known node).
    pub has_peer: u32,
    pub peer: chordsip_peer,
    /// Number of entries, for the KEYS events.
    pub count: u64,
    /// MEMBER_UP: the member's capacity (its SRV weight).
    pub weight: u32,
    /// MEMBER_UP: where the member serves SIP (`ip:port`), empty when it did not say.
    pub sip_address: [c_char; 64],
    /// REFRESHED, REFRESH_FAILED: the AOR (canonical form); NULL for the
    /// other kinds. Valid only during the callback.
    pub aor: *const c_char,
    /// REFRESH_FAILED: why (a `CHORDSIP_ERR_*` code); `CHORDSIP_OK` otherwise.
    pub result: chordsip_result,
    /// REFRESHED: seconds the binding now lives; REFRESH_FAILED: seconds it
    /// still lives (0: it lapsed and is gone until a retry succeeds).
    pub expires: u32,
    /// REFRESH_FAILED: milliseconds until the next try.
    pub retry_ms: u32,
    /// REFRESH_FAILED: the reason in words; NULL otherwise. Valid only
    /// during the callback.
    pub detail: *const c_char,
}

/// Receives membership and storage events.
pub type chordsip_event_cb =
    Option<unsafe extern "C" fn(event: *const chordsip_event, user_data: *mut c_void)>;

/// Receives one log line: `level` 1 error .. 5 trace; `message` is valid only
/// during the call.
pub type chordsip_log_cb =
    Option<unsafe extern "C" fn(level: u32, message: *const c_char, user_data: *mut c_void)>;

/// Events queued beyond this many (in fd mode, when the host does not call
/// `chordsip_node_process`) are dropped and counted; completions never are.
const MAX_QUEUED_EVENTS: usize = 65_536;

pub(crate) type Job = Box<dyn FnOnce() + Send>;

struct Queue {
    jobs: Vec<(bool, Job)>,
    events: usize,
}

/// Routes one node's completions and events to the host.
pub(crate) struct Dispatcher {
    fd_mode: bool,
    event_cb: Option<(chordsip_event_cb, UserData)>,
    log_cb: Option<(chordsip_log_cb, UserData)>,
    queue: Mutex<Queue>,
    /// (library end, host end) of the socketpair, in fd mode.
    notify: Option<(UnixStream, UnixStream)>,
    /// Set when the node is freed: nothing more reaches the host.
    closed: AtomicBool,
    pub dropped_events: AtomicU64,
}

impl Dispatcher {
    pub fn new(
        fd_mode: bool,
        event_cb: Option<(chordsip_event_cb, UserData)>,
        log_cb: Option<(chordsip_log_cb, UserData)>,
    ) -> std::io::Result<Dispatcher> {
        let notify = if fd_mode {
            let (lib, host) = UnixStream::pair()?;
            lib.set_nonblocking(true)?;
            host.set_nonblocking(true)?;
            Some((lib, host))
        } else {
            None
        };
        Ok(Dispatcher {
            fd_mode,
            event_cb,
            log_cb,
            queue: Mutex::new(Queue {
                jobs: Vec::new(),
                events: 0,
            }),
            notify,
            closed: AtomicBool::new(false),
            dropped_events: AtomicU64::new(0),
        })
    }

    /// The fd the host polls for readability (fd mode only).
    pub fn fd(&self) -> Option<i32> {
        use std::os::fd::AsRawFd;
        self.notify.as_ref().map(|(_, host)| host.as_raw_fd())
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Hands a job to the host: runs it now (thread mode) or queues it (fd mode).
    pub fn deliver(&self, completion: bool, job: Job) {
        if self.is_closed() {
            return;
        }
        if !self.fd_mode {
            let _ = catch_unwind(AssertUnwindSafe(job));
            return;
        }
        let was_empty = {
            let mut q = self.queue.lock();
            if !completion {
                if q.events >= MAX_QUEUED_EVENTS {
                    self.dropped_events.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                q.events += 1;
            }
            q.jobs.push((completion, job));
            q.jobs.len() == 1
        };
        if was_empty {
            if let Some((lib, _)) = &self.notify {
                // A full socket buffer already means "readable": nothing lost.
                let _ = (&*lib).write(&[1]);
            }
        }
    }

    /// Runs the queued jobs on the calling thread; returns how many ran. Jobs
    /// queued meanwhile make the fd readable again.
    pub fn process(&self) -> usize {
        if let Some((_, host)) = &self.notify {
            let mut buf = [0u8; 256];
            while matches!((&*host).read(&mut buf), Ok(n) if n > 0) {}
        }
        let jobs = {
            let mut q = self.queue.lock();
            q.events = 0;
            std::mem::take(&mut q.jobs)
        };
        let mut ran = 0;
        for (_, job) in jobs {
            if self.is_closed() {
                break; // the node was freed from one of these callbacks
            }
            let _ = catch_unwind(AssertUnwindSafe(job));
            ran += 1;
        }
        ran
    }

    /// Runs the queued completions (so their user_data can be released) and
    /// drops queued events; used when the node is freed.
    pub fn finish_completions(&self) {
        let jobs = std::mem::take(&mut self.queue.lock().jobs);
        for (completion, job) in jobs {
            if completion {
                let _ = catch_unwind(AssertUnwindSafe(job));
            }
        }
    }

    /// The engine's event sink, when the host asked for events or logs.
    pub fn sink(self: &Arc<Self>) -> Option<EventSink> {
        if self.event_cb.is_none() && self.log_cb.is_none() {
            return None;
        }
        let me = Arc::clone(self);
        Some(Arc::new(move |e: &Event| me.on_event(e)))
    }

    fn on_event(&self, e: &Event) {
        match e {
            Event::Log(level, text) => {
                let Some((Some(cb), ud)) = self.log_cb else {
                    return;
                };
                let level = *level as u32;
                let msg = CString::new(text.replace('\0', " ")).unwrap_or_default();
                self.deliver(
                    false,
                    Box::new(move || {
                        // SAFETY: cb is the host's log function; msg lives until it returns.
                        unsafe { cb(level, msg.as_ptr(), ud.get()) }
                    }),
                );
            }
            other => {
                let Some((Some(cb), ud)) = self.event_cb else {
                    return;
                };
                let mut weight = 0u32;
                let mut sip = String::new();
                let (kind, peer, count) = match other {
                    Event::MemberUp(m) => {
                        weight = m.weight as u32;
                        sip = m.sip.map(|a| a.to_string()).unwrap_or_default();
                        (
                            chordsip_event_kind::CHORDSIP_EVENT_MEMBER_UP,
                            Some(m.node),
                            0,
                        )
                    }
                    Event::MemberDown(n) => {
                        (chordsip_event_kind::CHORDSIP_EVENT_MEMBER_DOWN, Some(*n), 0)
                    }
                    Event::Publish { .. } | Event::PublishStopped => return,
                    Event::PredecessorChanged(p) => {
                        (chordsip_event_kind::CHORDSIP_EVENT_PREDECESSOR, *p, 0)
                    }
                    Event::SuccessorChanged(p) => {
                        (chordsip_event_kind::CHORDSIP_EVENT_SUCCESSOR, *p, 0)
                    }
                    Event::KeysIn(n) => (chordsip_event_kind::CHORDSIP_EVENT_KEYS_IN, None, *n),
                    Event::KeysOut(n) => (chordsip_event_kind::CHORDSIP_EVENT_KEYS_OUT, None, *n),
                    Event::Log(..) => return,
                };
                self.deliver(
                    false,
                    Box::new(move || {
                        let ev = chordsip_event {
                            has_peer: peer.is_some() as u32,
                            peer: peer
                                .as_ref()
                                .map_or_else(chordsip_peer::empty, chordsip_peer::from),
                            count: count as u64,
                            weight,
                            sip_address: super::lists::fill(&sip),
                            ..chordsip_event::empty(kind)
                        };
                        // SAFETY: cb is the host's event function; ev lives until it returns.
                        unsafe { cb(&ev, ud.get()) }
                    }),
                );
            }
        }
    }
}

impl chordsip_event {
    /// An event of `kind` with every other field empty.
    fn empty(kind: chordsip_event_kind) -> chordsip_event {
        chordsip_event {
            kind,
            has_peer: 0,
            peer: chordsip_peer::empty(),
            count: 0,
            weight: 0,
            sip_address: [0; 64],
            aor: std::ptr::null(),
            result: chordsip_result::CHORDSIP_OK,
            expires: 0,
            retry_ms: 0,
            detail: std::ptr::null(),
        }
    }
}

impl Dispatcher {
    /// The sink of a node's user agent (crate `ua`), when the host asked for events.
    pub fn ua_sink(self: &Arc<Self>) -> Option<crate::ua::UaSink> {
        let (Some(cb), ud) = self.event_cb? else {
            return None;
        };
        let me = Arc::clone(self);
        Some(Arc::new(move |e: &crate::ua::UaEvent| {
            use crate::ua::UaEvent;
            let (kind, aor, result, expires, retry, detail) = match e {
                UaEvent::Refreshed { aor, expires } => (
                    chordsip_event_kind::CHORDSIP_EVENT_REFRESHED,
                    aor,
                    chordsip_result::CHORDSIP_OK,
                    *expires,
                    std::time::Duration::ZERO,
                    None,
                ),
                UaEvent::RefreshFailed {
                    aor,
                    error,
                    expires_in,
                    retry_in,
                } => (
                    chordsip_event_kind::CHORDSIP_EVENT_REFRESH_FAILED,
                    aor,
                    super::registrar::registrar_result(error),
                    *expires_in,
                    *retry_in,
                    Some(CString::new(error.to_string().replace('\0', " ")).unwrap_or_default()),
                ),
            };
            let aor = CString::new(aor.as_str()).unwrap_or_default();
            let retry_ms = retry.as_millis().min(u32::MAX as u128) as u32;
            me.deliver(
                false,
                Box::new(move || {
                    let ev = chordsip_event {
                        aor: aor.as_ptr(),
                        result,
                        expires,
                        retry_ms,
                        detail: detail.as_ref().map_or(std::ptr::null(), |d| d.as_ptr()),
                        ..chordsip_event::empty(kind)
                    };
                    // SAFETY: cb is the host's event function; ev and the
                    // strings it points to live until it returns.
                    unsafe { cb(&ev, ud.get()) }
                }),
            );
        }))
    }
}

/// The single completion of one asynchronous operation. If the library drops
/// the operation unfinished (node stopped or freed), the host still gets
/// exactly one callback, with `CHORDSIP_ERR_CANCELLED`; if the operation could
/// not even be started, the call fails and the host gets none.
pub(crate) struct Completion<T: Send + 'static> {
    dispatcher: Arc<Dispatcher>,
    slot: Arc<Mutex<Slot<T>>>,
}

pub(crate) struct Slot<T> {
    deliver: Option<Box<dyn FnOnce(crate::Result<T>) + Send>>,
    /// The starting call returned: a drop now means "cancelled".
    submitted: bool,
    /// Dropped while the starting call had not returned yet.
    dropped_early: bool,
}

impl<T: Send + 'static> Completion<T> {
    pub fn new(
        dispatcher: Arc<Dispatcher>,
        f: impl FnOnce(crate::Result<T>) + Send + 'static,
    ) -> Completion<T> {
        Completion {
            dispatcher,
            slot: Arc::new(Mutex::new(Slot {
                deliver: Some(Box::new(f)),
                submitted: false,
                dropped_early: false,
            })),
        }
    }

    /// Starts the operation with `submit`, which hands the completion to the library.
    pub fn start(
        self,
        submit: impl FnOnce(Completion<T>) -> crate::Result<()>,
    ) -> crate::Result<()> {
        let slot = Arc::clone(&self.slot);
        let dispatcher = Arc::clone(&self.dispatcher);
        let r = submit(self);
        let mut s = slot.lock();
        match &r {
            // Never started: withdraw the callback.
            Err(_) => drop(s.deliver.take()),
            Ok(()) => {
                s.submitted = true;
                if s.dropped_early {
                    if let Some(f) = s.deliver.take() {
                        drop(s);
                        dispatcher.deliver(true, Box::new(move || f(Err(crate::Error::Cancelled))));
                    }
                }
            }
        }
        r
    }

    pub fn complete(self, r: crate::Result<T>) {
        let f = self.slot.lock().deliver.take();
        if let Some(f) = f {
            self.dispatcher.deliver(true, Box::new(move || f(r)));
        }
    }
}

impl<T: Send + 'static> Drop for Completion<T> {
    fn drop(&mut self) {
        let f = {
            let mut s = self.slot.lock();
            if !s.submitted {
                s.dropped_early = true;
                return;
            }
            s.deliver.take()
        };
        if let Some(f) = f {
            self.dispatcher
                .deliver(true, Box::new(move || f(Err(crate::Error::Cancelled))));
        }
    }
}
