//! The wall-clock version counter: versions of writes that nodes and client
//! handles make for their hosts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Versions default to the wall clock in microseconds, forced strictly
/// increasing within the process so that a later write always wins.
pub fn next_version() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    next_version_at(now)
}

/// The next version at wall-clock time `now_us`, strictly increasing within
/// the process. Nodes pass their runtime's clock, the one their engines
/// version client writes with, so that a write made through the Node API
/// and a later one made through a client handle of another node of the
/// process are ordered as they happened.
pub fn next_version_at(now_us: u64) -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = now_us;
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(prev + 1);
        match LAST.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(p) => prev = p,
        }
    }
}
