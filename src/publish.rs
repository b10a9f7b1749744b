//! The DNS publisher of a hybrid overlay: when the engine says this node
//! publishes (it is the member responsible for the hash of the domain), a
//! thread of its own keeps the authoritative server's records equal to the
//! live members by RFC 2136 updates (crate::dns). One thread per publishing
//! node, started with the node; it blocks on nothing but its channel and a
//! bounded TCP exchange, and retries a failed update with backoff until it
//! succeeds or a newer set replaces it.

use crate::config::DnsSettings;
use crate::dns::{send_update, DnsTarget, Member, RecordSet, Transport, TsigKey};
use crate::engine::Event;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::wire::MemberRecord;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bound on one update exchange with the DNS server.
const UPDATE_TIMEOUT: Duration = Duration::from_secs(2);

/// First pause before a failed update is tried again; doubled up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The host name label of a member: `n` and the first 12 hex digits of its id.
pub fn host_label(id: &Id) -> String {
    format!("n{}", &id.to_hex()[..12])
}

/// What the publisher did last (for `chordsip stats` and the tests).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublishStatus {
    /// This node publishes now.
    pub publishing: bool,
    pub updates_ok: u64,
    pub updates_failed: u64,
    /// Members in the last record set the server accepted.
    pub published_members: usize,
    pub last_error: Option<String>,
}

enum Job {
    Publish(RecordSet),
    Stop,
}

/// Hands record sets to the publishing thread.
pub struct Publisher {
    tx: Sender<Job>,
    status: Arc<Mutex<PublishStatus>>,
    settings: DnsSettings,
}

impl Publisher {
    /// Checks the settings (the TSIG key above all) and starts the thread.
    pub fn start(settings: &DnsSettings) -> Result<Publisher> {
        let server = settings
            .server
            .ok_or_else(|| Error::InvalidArgument("dns_server is not set".into()))?;
        let key = match &settings.key {
            Some(text) => Some(
                TsigKey::parse(text)
                    .map_err(|e| Error::InvalidArgument(format!("dns_key: {e}")))?,
            ),
            None => None,
        };
        let target = DnsTarget {
            server,
            zone: settings.zone.clone(),
            key,
            timeout: UPDATE_TIMEOUT,
        };
        let (tx, rx) = crossbeam_channel::unbounded();
        let status = Arc::new(Mutex::new(PublishStatus::default()));
        let thread_status = Arc::clone(&status);
        std::thread::Builder::new()
            .name("chordsip-dns".into())
            .spawn(move || {
                crate::runtime::block_signals();
                run(target, rx, thread_status)
            })
            .map_err(|e| Error::Io(format!("cannot start the DNS publisher: {e}")))?;
        Ok(Publisher {
            tx,
            status,
            settings: settings.clone(),
        })
    }

    pub fn status(&self) -> PublishStatus {
        self.status.lock().clone()
    }

    /// Takes the engine's publication events; others pass by.
    pub fn on_event(&self, e: &Event) {
        match e {
            Event::Publish { members, removed } => {
                self.status.lock().publishing = true;
                let set = record_set(&self.settings, members, removed);
                let _ = self.tx.send(Job::Publish(set));
            }
            Event::PublishStopped => self.status.lock().publishing = false,
            _ => {}
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.tx.send(Job::Stop);
    }
}

/// The records for the live members that serve SIP.
pub fn record_set(settings: &DnsSettings, members: &[MemberRecord], removed: &[Id]) -> RecordSet {
    let mut transports = vec![Transport::Udp];
    if settings.tcp {
        transports.push(Transport::Tcp);
    }
    let members = members
        .iter()
        .filter_map(|m| {
            let sip = m.sip?;
            Some(Member {
                host_label: host_label(&m.node.id),
                addrs: vec![sip.ip()],
                port: sip.port(),
                weight: m.weight,
                priority: 10,
            })
        })
        .collect();
    RecordSet {
        domain: settings.domain().to_string(),
        transports,
        ttl: settings.ttl,
        members,
        removed: removed.iter().map(host_label).collect(),
    }
}

fn run(target: DnsTarget, rx: Receiver<Job>, status: Arc<Mutex<PublishStatus>>) {
    let mut pending: Option<RecordSet> = None;
    let mut backoff = FIRST_BACKOFF;
    let mut retry_at: Option<Instant> = None;
    loop {
        let job = match retry_at {
            Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            },
            None => match rx.recv() {
                Ok(job) => Some(job),
                Err(_) => return,
            },
        };
        match job {
            Some(Job::Stop) => return,
            Some(Job::Publish(set)) => {
                // Only the newest set matters: skip to it.
                pending = Some(set);
                while let Ok(job) = rx.try_recv() {
                    match job {
                        Job::Stop => return,
                        Job::Publish(set) => pending = Some(set),
                    }
                }
                backoff = FIRST_BACKOFF;
            }
            None => {}
        }
        let Some(set) = pending.take() else {
            retry_at = None;
            continue;
        };
        match send_update(&target, &set) {
            Ok(()) => {
                let mut s = status.lock();
                s.updates_ok += 1;
                s.published_members = set.members.len();
                s.last_error = None;
                retry_at = None;
            }
            Err(e) => {
                let mut s = status.lock();
                s.updates_failed += 1;
                s.last_error = Some(e.to_string());
                drop(s);
                pending = Some(set);
                retry_at = Some(Instant::now() + backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
