//! The bindings a pure P2P user agent publishes for itself. A UA that
//! never sends a REGISTER still needs its contact in the overlay, kept alive
//! before it expires; this module plays the UA's registration client
//! (RFC 3261 §10.2) so the host does not have to invent SIP state: one
//! Call-ID per AOR for the node's life, a CSeq that rises with every
//! request, refreshes on timers of the node's own worker thread (no thread
//! of its own), and an event when a refresh fails or recovers.
//!
//! Each REGISTER runs through the registrar ([`registrar::register_async`])
//! on the node, so a published binding obeys every rule a REGISTER does.
//! Requests for one AOR run one at a time, in the order they were asked.

use crate::error::Error;
use crate::node::{Node, WeakNode};
use crate::sip::binding::{
    self, ContactSpec, Plan, RegisterError, RegisterRequest, RegistrarLimits,
};
use crate::sip::registrar::{self, RegistrarError};
use crate::sip::uri::Uri;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// First pause before a failed refresh is tried again; doubled per failure
/// up to [`MAX_RETRY`] (and never beyond the regular refresh interval).
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// One binding a user agent publishes: the REGISTER it would send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publication {
    /// The address-of-record (any spelling: it is canonicalised).
    pub aor: String,
    /// Where the UA takes requests: a bare SIP URI.
    pub contact: String,
    /// The lifetime asked for, in seconds; the registrar's limits apply
    /// (60 to 86400 by default).
    pub expires: u32,
    /// The contact's q-value ("0.5"); None is 1.
    pub q: Option<String>,
    /// The device's `+sip.instance` (RFC 5626), e.g. `<urn:uuid:...>`.
    pub instance: Option<String>,
}

/// What the library's own refreshes report (a call's result is its return).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UaEvent {
    /// A refresh on the library's timer succeeded: the binding lives
    /// `expires` more seconds.
    Refreshed { aor: String, expires: u32 },
    /// A refresh on the library's timer failed. The binding still lives
    /// `expires_in` seconds (0: it lapsed and is gone until a retry
    /// succeeds); the next try is in `retry_in`.
    RefreshFailed {
        aor: String,
        error: RegistrarError,
        expires_in: u32,
        retry_in: Duration,
    },
}

/// Receives [`UaEvent`]s, on the node's worker thread (it must not block).
pub type UaSink = Arc<dyn Fn(&UaEvent) + Send + Sync>;

/// Receives the outcome of one request: the granted lifetime in seconds
/// (0 for a withdrawal).
pub type Done = Box<dyn FnOnce(Result<u32, RegistrarError>) + Send>;

enum Job {
    Publish(Publication),
    /// `timer`: the library's own refresh, reported as an event.
    Refresh {
        timer: bool,
    },
    Withdraw,
}

/// The state of one published AOR.
struct Entry {
    /// What is published now (None until the first publish succeeds).
    current: Option<Publication>,
    call_id: String,
    cseq: u32,
    granted: u32,
    granted_at: Instant,
    /// Generation of the armed timer: a timer of an older one does nothing.
    timer: u64,
    failures: u32,
    busy: bool,
    waiting: VecDeque<(Job, Option<Done>)>,
}

struct Shared {
    node: WeakNode,
    sink: Option<UaSink>,
    /// `publish_refresh` of the node's configuration.
    refresh_every: Option<Duration>,
    /// Bound on one request (the registrar's read, writes and undo).
    request_timeout: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

/// The publishing side of a user agent on one node. It does not keep the
/// node running; when the node stops, its timers stop with it and the
/// bindings lapse at their expiry. Dropping the `UserAgent` stops the
/// refreshes too.
pub struct UserAgent {
    shared: Arc<Shared>,
}

impl UserAgent {
    /// A user agent publishing through `node`; `sink` hears how the
    /// library's refreshes went.
    pub fn new(node: &Node, sink: Option<UaSink>) -> UserAgent {
        let cfg = node.config();
        UserAgent {
            shared: Arc::new(Shared {
                node: node.downgrade(),
                sink,
                refresh_every: cfg.publish_refresh,
                request_timeout: cfg.op_timeout * 3,
                entries: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Publishes `p` (or changes what is published for its AOR: a new
    /// contact replaces the old one in the same request) and keeps it
    /// alive until [`UserAgent::withdraw`]. Blocks until the overlay stored
    /// it; returns the granted lifetime in seconds. A refused request
    /// publishes nothing (an AOR already published keeps its binding).
    pub fn publish(&self, p: Publication) -> Result<u32, RegistrarError> {
        let aor = self.check(&p)?;
        self.wait(|done| self.shared.submit(aor, Job::Publish(p), Some(done)))
    }

    /// [`UserAgent::publish`] without blocking: `done` runs on the node's
    /// worker thread. A request refused at once is returned here and
    /// `done` dropped.
    pub fn publish_async(&self, p: Publication, done: Done) -> Result<(), RegistrarError> {
        let aor = self.check(&p)?;
        self.shared.submit(aor, Job::Publish(p), Some(done))
    }

    /// Refreshes `aor`'s binding now (after a network change, say) and
    /// restarts its refresh timer; returns the granted lifetime.
    pub fn refresh(&self, aor: &str) -> Result<u32, RegistrarError> {
        let aor = self.published(aor)?;
        self.wait(|done| {
            self.shared
                .submit(aor, Job::Refresh { timer: false }, Some(done))
        })
    }

    /// [`UserAgent::refresh`] without blocking.
    pub fn refresh_async(&self, aor: &str, done: Done) -> Result<(), RegistrarError> {
        let aor = self.published(aor)?;
        self.shared
            .submit(aor, Job::Refresh { timer: false }, Some(done))
    }

    /// Removes `aor`'s binding (`expires=0`) and stops refreshing it. Even
    /// when the overlay fails the request, the refreshes stop, and the
    /// binding lapses within its lifetime.
    pub fn withdraw(&self, aor: &str) -> Result<(), RegistrarError> {
        let aor = self.published(aor)?;
        self.wait(|done| self.shared.submit(aor, Job::Withdraw, Some(done)))
            .map(|_| ())
    }

    /// [`UserAgent::withdraw`] without blocking.
    pub fn withdraw_async(&self, aor: &str, done: Done) -> Result<(), RegistrarError> {
        let aor = self.published(aor)?;
        self.shared.submit(aor, Job::Withdraw, Some(done))
    }

    /// Withdraws every published AOR at once, waiting at most `timeout`;
    /// returns how many were removed. The C API's graceful leave does this
    /// first; a Rust host calls it before [`Node::leave`].
    pub fn withdraw_all(&self, timeout: Duration) -> usize {
        let aors: Vec<String> = self.shared.entries.lock().keys().cloned().collect();
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut asked = 0;
        for aor in aors {
            let tx = tx.clone();
            let done: Done = Box::new(move |r| {
                let _ = tx.send(r.is_ok());
            });
            if self.shared.submit(aor, Job::Withdraw, Some(done)).is_ok() {
                asked += 1;
            }
        }
        let deadline = Instant::now() + timeout;
        (0..asked)
            .map_while(|_| rx.recv_deadline(deadline).ok())
            .filter(|ok| *ok)
            .count()
    }

    /// The AORs published now (canonical), with their contact and the
    /// seconds their binding still lives.
    pub fn publications(&self) -> Vec<(String, String, u32)> {
        let mut list: Vec<_> = self
            .shared
            .entries
            .lock()
            .iter()
            .filter_map(|(aor, e)| {
                let p = e.current.as_ref()?;
                Some((aor.clone(), p.contact.clone(), e.expires_in()))
            })
            .collect();
        list.sort();
        list
    }

    /// Checks a publication whole before anything is sent (the registrar's
    /// own rules, on an empty AOR), so a bad argument is refused at once
    /// with its reason. Returns the canonical AOR.
    fn check(&self, p: &Publication) -> Result<String, RegistrarError> {
        let (aor, _) = registrar::aor_key(&p.aor)?;
        let req = request(&aor, "check", 1, vec![spec(p, p.expires)]);
        binding::plan(&req, &[], &RegistrarLimits::default())?;
        if p.expires == 0 {
            return Err(RegisterError::Bad(
                "expires 0 publishes nothing: call withdraw to remove a binding".into(),
            )
            .into());
        }
        Ok(aor)
    }

    /// The canonical form of an AOR this agent publishes.
    fn published(&self, aor: &str) -> Result<String, RegistrarError> {
        let (canonical, _) = registrar::aor_key(aor)?;
        if !self.shared.entries.lock().contains_key(&canonical) {
            return Err(not_published(aor));
        }
        Ok(canonical)
    }

    /// Runs `start` with a `Done` and waits for it: on the node's worker it
    /// would deadlock, so it is refused there.
    fn wait(
        &self,
        start: impl FnOnce(Done) -> Result<(), RegistrarError>,
    ) -> Result<u32, RegistrarError> {
        if crate::runtime::on_worker_thread() {
            return Err(Error::InCallback.into());
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        start(Box::new(move |r| {
            let _ = tx.send(r);
        }))?;
        // Requests for one AOR run in turn: allow for one queued ahead.
        match rx.recv_timeout(self.shared.request_timeout * 2 + Duration::from_secs(1)) {
            Ok(r) => r,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => Err(Error::Timeout.into()),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => Err(Error::Shutdown.into()),
        }
    }
}

impl Entry {
    fn new() -> Entry {
        use rand::Rng;
        let tag: u128 = rand::rngs::OsRng.gen();
        Entry {
            current: None,
            call_id: format!("{tag:032x}@chordsip"),
            cseq: 0,
            granted: 0,
            granted_at: Instant::now(),
            timer: 0,
            failures: 0,
            busy: false,
            waiting: VecDeque::new(),
        }
    }

    fn succeeded(&mut self, granted: u32) {
        self.granted = granted;
        self.granted_at = Instant::now();
        self.failures = 0;
    }

    /// Seconds the stored binding still lives, as far as this agent knows.
    fn expires_in(&self) -> u32 {
        let spent = self.granted_at.elapsed().as_secs();
        (self.granted as u64).saturating_sub(spent) as u32
    }

    /// The REGISTER for `job`, with the next CSeq; None when there is
    /// nothing to send (a refresh or withdrawal of nothing published).
    fn request(&mut self, aor: &str, job: &Job) -> Option<RegisterRequest> {
        let contacts = match (job, &self.current) {
            (Job::Publish(p), None) => vec![spec(p, p.expires)],
            (Job::Publish(p), Some(old)) if same_slot(old, p) => vec![spec(p, p.expires)],
            // A new contact replaces the old one in the same request.
            (Job::Publish(p), Some(old)) => vec![spec(old, 0), spec(p, p.expires)],
            (Job::Refresh { .. }, Some(cur)) => vec![spec(cur, cur.expires)],
            (Job::Withdraw, Some(cur)) => vec![spec(cur, 0)],
            (_, None) => return None,
        };
        self.cseq = self.cseq.wrapping_add(1).max(1);
        Some(request(aor, &self.call_id, self.cseq, contacts))
    }
}

/// Whether two publications fill the same binding slot, so that storing
/// one replaces the other.
fn same_slot(a: &Publication, b: &Publication) -> bool {
    let slot = |p: &Publication| {
        Uri::parse(&p.contact)
            .ok()
            .map(|u| binding::binding_writer(&u, p.instance.as_deref(), None))
    };
    slot(a).is_some() && slot(a) == slot(b)
}

fn spec(p: &Publication, expires: u32) -> ContactSpec {
    ContactSpec {
        uri: p.contact.clone(),
        expires: Some(expires),
        q: p.q.clone(),
        instance: p.instance.clone(),
        reg_id: None,
    }
}

fn request(aor: &str, call_id: &str, cseq: u32, contacts: Vec<ContactSpec>) -> RegisterRequest {
    RegisterRequest {
        to: aor.to_string(),
        call_id: call_id.to_string(),
        cseq,
        star: false,
        contacts,
        expires: None,
        path: Vec::new(),
        received: None,
    }
}

/// The lifetime the registrar granted `p`'s contact, from a REGISTER's answer.
fn granted(plan: &Plan, p: &Publication) -> u32 {
    plan.result
        .iter()
        .find(|(b, _)| b.contact == p.contact && b.instance == p.instance)
        .map_or(p.expires, |(_, e)| *e)
}

impl Shared {
    /// Queues `job` for `aor` and starts it if nothing of that AOR runs.
    fn submit(
        self: &Arc<Self>,
        aor: String,
        job: Job,
        done: Option<Done>,
    ) -> Result<(), RegistrarError> {
        let node = self.node.upgrade().ok_or(Error::Shutdown)?;
        let started = {
            let mut entries = self.entries.lock();
            if !matches!(job, Job::Publish(_)) && !entries.contains_key(&aor) {
                drop(entries);
                if let Some(done) = done {
                    done(Err(not_published(&aor)));
                }
                return Ok(());
            }
            let entry = entries.entry(aor.clone()).or_insert_with(Entry::new);
            if entry.busy {
                entry.waiting.push_back((job, done));
                return Ok(());
            }
            entry.busy = true;
            (job, done)
        };
        self.start(&node, aor, started.0, started.1);
        Ok(())
    }

    /// Sends the REGISTER of `job`; its answer goes to [`Shared::finish`].
    fn start(self: &Arc<Self>, node: &Node, aor: String, job: Job, done: Option<Done>) {
        let req = {
            let mut entries = self.entries.lock();
            entries.get_mut(&aor).and_then(|e| e.request(&aor, &job))
        };
        let Some(req) = req else {
            let unknown = not_published(&aor);
            self.finish(aor, job, done, Err(unknown));
            return;
        };
        let me = Arc::downgrade(self);
        // The job waits here for its answer; if the REGISTER cannot even
        // start, it is taken back to answer the caller at once.
        let slot = Arc::new(Mutex::new(Some((job, done))));
        let ours = Arc::clone(&slot);
        let aor2 = aor.clone();
        let r = registrar::register_async(node, &req, &RegistrarLimits::default(), move |r| {
            let taken = ours.lock().take();
            if let (Some(me), Some((job, done))) = (me.upgrade(), taken) {
                me.finish(aor2, job, done, r);
            }
        });
        if let Err(e) = r {
            if let Some((job, done)) = slot.lock().take() {
                self.finish(aor, job, done, Err(e));
            }
        }
    }

    /// Applies a request's answer, reports it, and starts the next one queued.
    fn finish(
        self: &Arc<Self>,
        aor: String,
        job: Job,
        done: Option<Done>,
        r: Result<Plan, RegistrarError>,
    ) {
        let mut event = None;
        let mut timer = None;
        let mut entries = self.entries.lock();
        let Some(entry) = entries.get_mut(&aor) else {
            // Not reached: an AOR with a request in flight stays known.
            drop(entries);
            if let Some(done) = done {
                done(Err(not_published(&aor)));
            }
            return;
        };
        let answer = match (job, r) {
            (Job::Withdraw, r) => {
                // Gone from here whatever the overlay said: nothing refreshes it.
                entry.current = None;
                entry.timer += 1;
                r.map(|_| 0)
            }
            (Job::Publish(p), Ok(plan)) => {
                let g = granted(&plan, &p);
                entry.current = Some(p);
                entry.succeeded(g);
                timer = Some(self.interval(g));
                Ok(g)
            }
            (Job::Refresh { timer: by_timer }, Ok(plan)) => {
                let g = entry.current.as_ref().map_or(0, |cur| granted(&plan, cur));
                entry.succeeded(g);
                timer = Some(self.interval(g));
                if by_timer {
                    event = Some(UaEvent::Refreshed {
                        aor: aor.clone(),
                        expires: g,
                    });
                }
                Ok(g)
            }
            (Job::Publish(_), Err(e)) => Err(e),
            (Job::Refresh { timer: by_timer }, Err(e)) => {
                if entry.current.is_some() {
                    entry.failures += 1;
                    let retry_in = FIRST_RETRY
                        .saturating_mul(1 << (entry.failures - 1).min(5))
                        .min(MAX_RETRY)
                        .min(self.interval(entry.granted));
                    timer = Some(retry_in);
                    if by_timer {
                        event = Some(UaEvent::RefreshFailed {
                            aor: aor.clone(),
                            error: e.clone(),
                            expires_in: entry.expires_in(),
                            retry_in,
                        });
                    }
                }
                Err(e)
            }
        };
        let next = entry.waiting.pop_front();
        entry.busy = next.is_some();
        if entry.current.is_none() && next.is_none() {
            // Nothing published and nothing asked: forget the AOR.
            entries.remove(&aor);
        } else if entry.current.is_some() {
            // Always one timer armed: a refresh it fired while this request
            // ran was skipped, so a failed publish re-arms at the regular time.
            let delay = timer.unwrap_or_else(|| {
                self.interval(entry.granted)
                    .saturating_sub(entry.granted_at.elapsed())
            });
            entry.timer += 1;
            self.arm(&aor, entry.timer, delay);
        }
        drop(entries);
        if let (Some(sink), Some(ev)) = (&self.sink, &event) {
            sink(ev);
        }
        if let Some(done) = done {
            done(answer);
        }
        if let Some((job, done)) = next {
            match self.node.upgrade() {
                Some(node) => self.start(&node, aor, job, done),
                None => {
                    if let Some(done) = done {
                        done(Err(Error::Shutdown.into()));
                    }
                }
            }
        }
    }

    /// When a binding granted `granted` seconds is refreshed: at half its
    /// lifetime, or sooner when the node's `publish_refresh` says so.
    fn interval(&self, granted: u32) -> Duration {
        let half = Duration::from_millis(granted as u64 * 500).max(Duration::from_secs(1));
        self.refresh_every.map_or(half, |every| every.min(half))
    }

    /// Sets the refresh timer of generation `gen` on the node's worker.
    fn arm(self: &Arc<Self>, aor: &str, gen: u64, delay: Duration) {
        let Some(node) = self.node.upgrade() else {
            return;
        };
        let me = Arc::downgrade(self);
        let aor = aor.to_string();
        let _ = node.after(delay, move || on_timer(&me, aor, gen));
    }
}

/// A refresh timer fired: refresh unless the timer was replaced, the AOR
/// withdrawn or a request of it is running (which sets a new timer).
fn on_timer(me: &Weak<Shared>, aor: String, gen: u64) {
    let Some(me) = me.upgrade() else {
        return;
    };
    let Some(node) = me.node.upgrade() else {
        return;
    };
    {
        let mut entries = me.entries.lock();
        match entries.get_mut(&aor) {
            Some(e) if e.timer == gen && !e.busy => e.busy = true,
            _ => return,
        }
    }
    me.start(&node, aor, Job::Refresh { timer: true }, None);
}

fn not_published(aor: &str) -> RegistrarError {
    RegisterError::Bad(format!(
        "aor {aor:?} is not published by this node: call publish first"
    ))
    .into()
}
