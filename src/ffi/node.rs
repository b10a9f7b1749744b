//! `chordsip_node`: one peer of the overlay.

use super::chordsip_result::*;
use super::config::{chordsip_config, chordsip_delivery, write_truncated, ThreadHooksC};
use super::events::{Completion, Dispatcher};
use super::lists::{chordsip_lookup_info, chordsip_values};
use super::{
    bytes_arg, chordsip_result, code, guard, guard_void, key_arg, opt_str_arg, str_arg,
    timeout_arg, write_opt, write_out, write_str, FfiResult, UserData,
};
use crate::config::{Config, LogLevel};
use crate::engine::Event;
use crate::id::Id;
use crate::node::Node;
use crate::runtime::{on_worker_thread, Runtime, ThreadHooks};
use crate::ua::UserAgent;
use parking_lot::Mutex;
use std::ffi::{c_char, c_int, c_void};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Completion of `chordsip_node_lookup_async`/`chordsip_client` lookups:
/// `info` is NULL unless `result` is `CHORDSIP_OK`, and valid only during the call.
pub type chordsip_lookup_cb = Option<
    unsafe extern "C" fn(
        result: chordsip_result,
        info: *const chordsip_lookup_info,
        user_data: *mut c_void,
    ),
>;

/// Completion of an operation with no result but its code (`chordsip_node_join_async`).
pub type chordsip_done_cb =
    Option<unsafe extern "C" fn(result: chordsip_result, user_data: *mut c_void)>;

/// Completion of a put or remove: `copies` is the number of nodes known to
/// hold the write when it was acknowledged (0 on error).
pub type chordsip_store_cb =
    Option<unsafe extern "C" fn(result: chordsip_result, copies: u32, user_data: *mut c_void)>;

/// Completion of a get: `values` is NULL unless `result` is `CHORDSIP_OK`; it
/// is lent for the duration of the call (copy what you keep, never free it).
pub type chordsip_get_cb = Option<
    unsafe extern "C" fn(
        result: chordsip_result,
        values: *const chordsip_values,
        user_data: *mut c_void,
    ),
>;

/// One peer of the overlay. Create with `chordsip_node_new`, free with
/// `chordsip_node_free`. All functions may be called from any thread of the
/// process that created it, concurrently.
pub struct chordsip_node {
    pub(crate) cfg: Config,
    hooks: Option<ThreadHooksC>,
    pub(crate) dispatcher: Arc<Dispatcher>,
    node: Mutex<Option<Node>>,
    /// The publications of `chordsip_node_publish`, made on first use.
    ua: Mutex<Option<Arc<UserAgent>>>,
    pid: u32,
}

/// Hooks of the threads that run now, to refuse a node that wants others.
static RUNNING_HOOKS: Mutex<Option<(usize, usize, usize)>> = Mutex::new(None);

/// # Safety
/// `p` is NULL or a live node.
pub(crate) unsafe fn node_ref<'a>(p: *const chordsip_node) -> FfiResult<&'a chordsip_node> {
    // SAFETY: NULL or a live node by the caller's contract.
    let n = unsafe { p.as_ref() }.ok_or(CHORDSIP_ERR_NULL_POINTER)?;
    if std::process::id() != n.pid {
        return Err(CHORDSIP_ERR_FORKED);
    }
    Ok(n)
}

impl chordsip_node {
    /// The running node, or `CHORDSIP_ERR_BAD_STATE` before `chordsip_node_start`.
    /// The node when started, with no error recorded when it is not.
    pub(crate) fn started_node(&self) -> Option<Node> {
        self.node.lock().clone()
    }

    pub(crate) fn started(&self) -> FfiResult<Node> {
        self.node.lock().clone().ok_or_else(|| {
            super::set_detail(
                "the node is not started: join it first (chordsip_node_join, Node.join)",
            );
            CHORDSIP_ERR_BAD_STATE
        })
    }

    /// The node's user agent (its publications), made on first use.
    pub(crate) fn user_agent(&self) -> FfiResult<Arc<UserAgent>> {
        let node = self.started()?;
        let mut ua = self.ua.lock();
        Ok(Arc::clone(ua.get_or_insert_with(|| {
            Arc::new(UserAgent::new(&node, self.dispatcher.ua_sink()))
        })))
    }

    fn start(&self) -> FfiResult<Node> {
        let mut slot = self.node.lock();
        if let Some(n) = slot.as_ref() {
            return Ok(n.clone());
        }
        if let Some(h) = &self.hooks {
            let mut running = RUNNING_HOOKS.lock();
            if Runtime::running() {
                if *running != Some(h.identity()) {
                    return Err(CHORDSIP_ERR_BAD_STATE);
                }
            } else {
                let (start, stop, ud) = (h.start, h.stop, h.user_data);
                Runtime::set_thread_hooks(ThreadHooks {
                    on_start: start.map(|f| {
                        Arc::new(move || {
                            // SAFETY: a host function registered as a thread hook.
                            unsafe { f(ud.get()) }
                        }) as Arc<dyn Fn() + Send + Sync>
                    }),
                    on_stop: stop.map(|f| {
                        Arc::new(move || {
                            // SAFETY: a host function registered as a thread hook.
                            unsafe { f(ud.get()) }
                        }) as Arc<dyn Fn() + Send + Sync>
                    }),
                });
                *running = Some(h.identity());
            }
        } else if !Runtime::running() {
            Runtime::set_thread_hooks(ThreadHooks::default());
            *RUNNING_HOOKS.lock() = None;
        }
        let mut cfg = self.cfg.clone();
        // A node of the C API serves its client handles' REGISTERs.
        cfg.transactions = Some(crate::sip::remote::transactions());
        let sink = self.dispatcher.sink();
        let node = match Node::start_with_events(cfg.clone(), sink.clone()) {
            Ok(node) => node,
            Err(e) => {
                // The result code alone says "I/O error"; a host that asked
                // for logs also hears why (an address in use, say).
                if let Some(log) = sink.filter(|_| LogLevel::Error <= cfg.log_level) {
                    let text = format!("cannot start the node on {}: {e}", cfg.listen);
                    log(&Event::Log(LogLevel::Error, text));
                }
                return code(Err(e));
            }
        };
        *slot = Some(node.clone());
        Ok(node)
    }
}

/// Creates a node from `cfg` (copied). No thread starts and no socket is
/// bound until `chordsip_node_start` or `chordsip_node_join`. On
/// `CHORDSIP_ERR_INVALID_ARGUMENT` the reason goes to `err_buf` (may be NULL).
///
/// # Safety
/// `cfg` NULL or live; `out` NULL or writable; `err_buf` NULL or writable for `err_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_new(
    cfg: *const chordsip_config,
    out: *mut *mut chordsip_node,
    err_buf: *mut c_char,
    err_len: usize,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live config by the caller's contract.
        let cfg = unsafe { cfg.as_ref() }.ok_or(CHORDSIP_ERR_NULL_POINTER)?;
        if out.is_null() {
            return Err(CHORDSIP_ERR_NULL_POINTER);
        }
        cfg.cfg.validate().map_err(|e| {
            // SAFETY: err_buf is NULL or writable for err_len bytes.
            unsafe { write_truncated(&e.to_string(), err_buf, err_len) };
            CHORDSIP_ERR_INVALID_ARGUMENT
        })?;
        let dispatcher = Dispatcher::new(
            cfg.delivery == chordsip_delivery::CHORDSIP_DELIVER_FD,
            cfg.event_cb,
            cfg.log_cb,
        )
        .map_err(|_| CHORDSIP_ERR_IO)?;
        let node = Box::new(chordsip_node {
            cfg: cfg.cfg.clone(),
            hooks: cfg.hooks,
            dispatcher: Arc::new(dispatcher),
            node: Mutex::new(None),
            ua: Mutex::new(None),
            pid: std::process::id(),
        });
        // SAFETY: out is non-NULL (checked) and writable.
        unsafe { write_out(out, Box::into_raw(node)) }
    })
}

/// Binds the node's socket and starts servicing it on the library's shared
/// threads (started with the first node). The node is not in a ring yet.
/// Calling it again on a started node returns `CHORDSIP_ERR_BAD_STATE`.
/// When the socket cannot be bound (`CHORDSIP_ERR_IO`: an address in use,
/// say), the log callback, if any, hears why at error level.
///
/// # Safety
/// `node` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_start(node: *mut chordsip_node) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { node_ref(node) }?;
        if n.node.lock().is_some() {
            return Err(CHORDSIP_ERR_BAD_STATE);
        }
        n.start().map(|_| ())
    })
}

/// Joins an overlay through the first answering peer of `bootstrap`, a list of
/// addresses separated by commas or spaces (`"127.0.0.1:5000,[::1]:5001"`).
/// NULL or an empty list starts a new ring. Starts the node if needed. Blocks
/// up to twice the operation timeout. Fails with `CHORDSIP_ERR_JOIN_FAILED`
/// when no bootstrap peer answers.
///
/// # Safety
/// `node` NULL or live; `bootstrap` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_join(
    node: *mut chordsip_node,
    bootstrap: *const c_char,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { node_ref(node) }?;
        // SAFETY: NULL or NUL-terminated by the caller's contract.
        let list = unsafe { opt_str_arg(bootstrap) }?.unwrap_or("");
        let peers = parse_addr_list(list)?;
        if on_worker_thread() {
            return Err(CHORDSIP_ERR_IN_CALLBACK);
        }
        let node = n.start()?;
        code(node.join(&peers))
    })
}

/// `chordsip_node_join` without waiting: `cb` gets `CHORDSIP_OK` or the
/// error `chordsip_node_join` would return (`CHORDSIP_ERR_JOIN_FAILED` when
/// no bootstrap peer answered), once, within twice the operation timeout,
/// as the other `_async` calls deliver. Starts the node if needed. Errors in
/// the arguments (a bad address list, a NULL `cb`) or a node that cannot
/// start are returned here, and `cb` never runs. Many nodes may join at
/// once from one thread.
///
/// # Safety
/// `node` NULL or live; `bootstrap` NULL or NUL-terminated; `cb` a valid
/// function; `user_data` valid until the callback ran.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_join_async(
    node: *mut chordsip_node,
    bootstrap: *const c_char,
    cb: chordsip_done_cb,
    user_data: *mut c_void,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { node_ref(node) }?;
        // SAFETY: NULL or NUL-terminated by the caller's contract.
        let list = unsafe { opt_str_arg(bootstrap) }?.unwrap_or("");
        let peers = parse_addr_list(list)?;
        let cb = cb.ok_or(CHORDSIP_ERR_NULL_POINTER)?;
        n.start()?;
        let ud = UserData(user_data);
        start_async(
            n,
            move |r: crate::Result<()>| {
                let ud = ud;
                let rc = match r {
                    Ok(()) => CHORDSIP_OK,
                    Err(e) => e.into(),
                };
                // SAFETY: the host's callback with the documented arguments.
                unsafe { cb(rc, ud.get()) }
            },
            |node, c| node.join_async(&peers, move |r| c.complete(r)),
        )
    })
}

fn parse_addr_list(list: &str) -> FfiResult<Vec<SocketAddr>> {
    let peers = list
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<SocketAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| CHORDSIP_ERR_INVALID_ARGUMENT)?;
    if peers.len() > 64 {
        return Err(CHORDSIP_ERR_TOO_LARGE);
    }
    Ok(peers)
}

/// Leaves the overlay gracefully: withdraws the bindings published with
/// `chordsip_node_publish` (within a third of the time), hands this node's
/// keys to its successor and tells both neighbours, waiting at most
/// `timeout_ms` (0: the operation timeout). The node is stopped afterwards whatever the outcome; free it
/// with `chordsip_node_free`. Pending operations complete with
/// `CHORDSIP_ERR_CANCELLED`.
///
/// # Safety
/// `node` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_leave(
    node: *mut chordsip_node,
    timeout_ms: u32,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { node_ref(node) }?;
        let node = n.started()?;
        if on_worker_thread() {
            return Err(CHORDSIP_ERR_IN_CALLBACK);
        }
        let timeout = timeout_arg(timeout_ms, n.cfg.op_timeout);
        let started = std::time::Instant::now();
        // Published bindings go first, while the ring can still store the removal.
        let ua = n.ua.lock().clone();
        if let Some(ua) = ua.filter(|_| node.is_joined()) {
            ua.withdraw_all(timeout / 3);
        }
        let rest = timeout.saturating_sub(started.elapsed());
        code(node.leave(rest.max(Duration::from_millis(1))))
    })
}

/// Stops the node at once (no graceful leave: call `chordsip_node_leave`
/// first for that) and frees it. NULL is a no-op. Operations still pending
/// complete with `CHORDSIP_ERR_CANCELLED` before this returns (on a library
/// thread, or on this thread in fd mode); no callback of this node runs after
/// it returns. Freeing a node from one of its own callbacks is allowed: the
/// callbacks still pending are then dropped without being called. In a
/// forked child it only releases memory.
///
/// # Safety
/// `node` is NULL or live, and no other thread uses it during or after the call.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_free(node: *mut chordsip_node) {
    guard_void(|| {
        if node.is_null() {
            return;
        }
        // SAFETY: created by Box::into_raw in chordsip_node_new, freed once.
        let n = unsafe { Box::from_raw(node) };
        if std::process::id() != n.pid {
            return; // memory only: the threads and the node live in the parent
        }
        let running = n.node.lock().take();
        let ua = n.ua.lock().take();
        let d = Arc::clone(&n.dispatcher);
        if on_worker_thread() {
            d.close();
            drop(running);
            drop(ua);
        } else {
            if let Some(node) = running {
                node.stop();
            }
            // Requests waiting their turn complete (cancelled) with the rest.
            drop(ua);
            d.finish_completions();
            d.close();
        }
    })
}

/// Writes the node's address (`ip:port`) into `buf` with a NUL; 64 bytes always suffice.
///
/// # Safety
/// `node` NULL or live; `buf` NULL or writable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_addr(
    node: *const chordsip_node,
    buf: *mut c_char,
    len: usize,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { node_ref(node) }?.started()?;
        // SAFETY: NULL or writable for len bytes by the caller's contract.
        unsafe { write_str(&n.addr().to_string(), buf, len, None) }
    })
}

/// Writes the node's ring id (40 hex digits) into `buf` with a NUL (41 bytes).
///
/// # Safety
/// `node` NULL or live; `buf` NULL or writable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_id(
    node: *const chordsip_node,
    buf: *mut c_char,
    len: usize,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { node_ref(node) }?.started()?;
        // SAFETY: NULL or writable for len bytes by the caller's contract.
        unsafe { write_str(&n.id().to_hex(), buf, len, None) }
    })
}

/// Tells whether `owner` (a `chordsip_value.owner`, `CHORDSIP_OWNER_LEN`
/// bytes) is this node's writer key or one of its `trusted_writers`: hosts
/// that read values with `chordsip_node_get` keep only those, as the
/// registrar's lookups do. `*trusted` receives 1 or 0.
///
/// # Safety
/// `node` NULL or live; `owner` NULL or readable for `CHORDSIP_OWNER_LEN`
/// bytes; `trusted` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_writer_trusted(
    node: *const chordsip_node,
    owner: *const u8,
    trusted: *mut u32,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { node_ref(node) }?.started()?;
        // SAFETY: NULL or readable for CHORDSIP_OWNER_LEN bytes by the caller's contract.
        let owner = unsafe { bytes_arg(owner, crate::owner::OWNER_LEN) }?;
        let known = code(n.trusted_writers())?;
        let yes = known.iter().any(|k| k.as_slice() == owner);
        // SAFETY: NULL or writable by the caller's contract.
        unsafe { write_out(trusted, u32::from(yes)) }
    })
}

/// The key, writer and data arguments of a write.
///
/// # Safety
/// As the exported functions that take them.
pub(crate) unsafe fn write_args<'a>(
    key: *const c_char,
    writer: *const c_char,
    data: *const u8,
    data_len: usize,
) -> FfiResult<(Id, &'a str, &'a [u8])> {
    // SAFETY: forwarded caller contract.
    let key = unsafe { key_arg(key) }?;
    // SAFETY: forwarded caller contract.
    let writer = unsafe { str_arg(writer) }?;
    if writer.is_empty() {
        return Err(CHORDSIP_ERR_INVALID_ARGUMENT);
    }
    if writer.len() > super::CHORDSIP_MAX_WRITER_LEN {
        return Err(CHORDSIP_ERR_TOO_LARGE);
    }
    // SAFETY: forwarded caller contract.
    let data = unsafe { bytes_arg(data, data_len) }?;
    if data.len() > crate::wire::MAX_DATAGRAM {
        return Err(CHORDSIP_ERR_TOO_LARGE);
    }
    Ok((Id::from_name(key), writer, data))
}

pub(crate) fn lifetime_arg(seconds: u32) -> FfiResult<Duration> {
    if seconds == 0 {
        return Err(CHORDSIP_ERR_INVALID_ARGUMENT);
    }
    Ok(Duration::from_secs(seconds as u64))
}

/// Stores `data` as `writer`'s entry under `key` (a NUL-terminated UTF-8
/// name, hashed onto the ring) for `lifetime_s` seconds, replacing that
/// writer's older entry. Blocks until the responsible node acknowledged it
/// (at most the operation timeout). `copies` (may be NULL) receives the number
/// of nodes known to hold it.
///
/// # Safety
/// `node` NULL or live; strings NULL or NUL-terminated; `data` NULL or
/// readable for `data_len` bytes; `copies` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_put(
    node: *mut chordsip_node,
    key: *const c_char,
    writer: *const c_char,
    data: *const u8,
    data_len: usize,
    lifetime_s: u32,
    copies: *mut u32,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { node_ref(node) }?.started()?;
        // SAFETY: forwarded caller contract.
        let (key, writer, data) = unsafe { write_args(key, writer, data, data_len) }?;
        let lifetime = lifetime_arg(lifetime_s)?;
        let r = code(n.put(key, writer.as_bytes(), data, lifetime))?;
        // SAFETY: NULL or writable by the caller's contract.
        unsafe { write_opt(copies, r.copies as u32) };
        Ok(())
    })
}

/// Removes `writer`'s entry under `key`. Blocks like `chordsip_node_put`.
///
/// # Safety
/// As `chordsip_node_put`.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_remove(
    node: *mut chordsip_node,
    key: *const c_char,
    writer: *const c_char,
    copies: *mut u32,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { node_ref(node) }?.started()?;
        // SAFETY: forwarded caller contract.
        let (key, writer, _) = unsafe { write_args(key, writer, std::ptr::null(), 0) }?;
        let r = code(n.remove(key, writer.as_bytes()))?;
        // SAFETY: NULL or writable by the caller's contract.
        unsafe { write_opt(copies, r.copies as u32) };
        Ok(())
    })
}

/// Reads every live value stored under `key` (one per writer) into a new list
/// in `*out`, which the caller frees with `chordsip_values_free`. A key with
/// no values gives an empty list. Blocks at most the operation timeout.
///
/// # Safety
/// `node` NULL or live; `key` NULL or NUL-terminated; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_get(
    node: *mut chordsip_node,
    key: *const c_char,
    out: *mut *mut chordsip_values,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { node_ref(node) }?.started()?;
        // SAFETY: NULL or NUL-terminated by the caller's contract.
        let key = Id::from_name(unsafe { key_arg(key) }?);
        if out.is_null() {
            return Err(CHORDSIP_ERR_NULL_POINTER);
        }
        let values = code(n.get(key))?;
        let list = Box::into_raw(Box::new(chordsip_values::new(values)));
        // SAFETY: out is non-NULL (checked) and writable.
        unsafe { write_out(out, list) }
    })
}

/// The bare Chord lookup: the ring node responsible for `key`, with the
/// hops it took, within `timeout_ms` (0: the operation timeout). Not where a
/// SIP AOR is reachable: that is `chordsip_node_lookup_aor`.
///
/// # Safety
/// `node` NULL or live; `key` NULL or NUL-terminated; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_lookup(
    node: *mut chordsip_node,
    key: *const c_char,
    timeout_ms: u32,
    out: *mut chordsip_lookup_info,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let nref = unsafe { node_ref(node) }?;
        let n = nref.started()?;
        // SAFETY: NULL or NUL-terminated by the caller's contract.
        let key = Id::from_name(unsafe { key_arg(key) }?);
        if out.is_null() {
            return Err(CHORDSIP_ERR_NULL_POINTER);
        }
        let o = code(n.lookup_timeout(key, timeout_arg(timeout_ms, nref.cfg.op_timeout)))?;
        // SAFETY: out is non-NULL (checked) and writable.
        unsafe { write_out(out, chordsip_lookup_info::from(&o)) }
    })
}

/// Starts an asynchronous operation: when the call returns `CHORDSIP_OK` the
/// callback runs exactly once; on any other result it never runs.
fn start_async<T: Send + 'static>(
    n: &chordsip_node,
    deliver: impl FnOnce(crate::Result<T>) + Send + 'static,
    submit: impl FnOnce(&Node, Completion<T>) -> crate::Result<()>,
) -> FfiResult<()> {
    let node = n.started()?;
    code(Completion::new(Arc::clone(&n.dispatcher), deliver).start(|c| submit(&node, c)))
}

/// Asynchronous `chordsip_node_lookup`: `cb` receives the result, on a library
/// thread or from `chordsip_node_process` (see `chordsip_config_set_delivery`).
///
/// # Safety
/// `node` NULL or live; `key` NULL or NUL-terminated; `cb` a valid function;
/// `user_data` valid until the callback ran.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_lookup_async(
    node: *mut chordsip_node,
    key: *const c_char,
    timeout_ms: u32,
    cb: super::node::chordsip_lookup_cb,
    user_data: *mut c_void,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { node_ref(node) }?;
        // SAFETY: NULL or NUL-terminated by the caller's contract.
        let key = Id::from_name(unsafe { key_arg(key) }?);
        let cb = cb.ok_or(CHORDSIP_ERR_NULL_POINTER)?;
        let ud = UserData(user_data);
        let timeout = timeout_arg(timeout_ms, n.cfg.op_timeout);
        start_async(
            n,
            move |r: crate::Result<crate::LookupOutcome>| {
                let ud = ud;
                match r {
                    Ok(o) => {
                        let info = chordsip_lookup_info::from(&o);
                        // SAFETY: the host's callback; info lives until it returns.
                        unsafe { cb(CHORDSIP_OK, &info, ud.get()) }
                    }
                    // SAFETY: the host's callback; NULL info on error as documented.
                    Err(e) => unsafe { cb(e.into(), std::ptr::null(), ud.get()) },
                }
            },
            |node, c| node.lookup_async(key, timeout, move |r| c.complete(r)),
        )
    })
}

fn store_deliver(
    cb: unsafe extern "C" fn(chordsip_result, u32, *mut c_void),
    ud: UserData,
) -> impl FnOnce(crate::Result<crate::StoreReceipt>) + Send + 'static {
    move |r| {
        let ud = ud;
        let (res, copies) = match r {
            Ok(rc) => (CHORDSIP_OK, rc.copies as u32),
            Err(e) => (e.into(), 0),
        };
        // SAFETY: the host's callback with the documented arguments.
        unsafe { cb(res, copies, ud.get()) }
    }
}

/// Asynchronous `chordsip_node_put`; `cb` receives the result.
///
/// # Safety
/// As `chordsip_node_put` and `chordsip_node_lookup_async`.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_put_async(
    node: *mut chordsip_node,
    key: *const c_char,
    writer: *const c_char,
    data: *const u8,
    data_len: usize,
    lifetime_s: u32,
    cb: chordsip_store_cb,
    user_data: *mut c_void,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { node_ref(node) }?;
        // SAFETY: forwarded caller contract.
        let (key, writer, data) = unsafe { write_args(key, writer, data, data_len) }?;
        let lifetime = lifetime_arg(lifetime_s)?;
        let cb = cb.ok_or(CHORDSIP_ERR_NULL_POINTER)?;
        start_async(n, store_deliver(cb, UserData(user_data)), |node, c| {
            node.put_async(key, writer.as_bytes(), data, lifetime, move |r| {
                c.complete(r)
            })
        })
    })
}

/// Asynchronous `chordsip_node_remove`; `cb` receives the result.
///
/// # Safety
/// As `chordsip_node_remove` and `chordsip_node_lookup_async`.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_remove_async(
    node: *mut chordsip_node,
    key: *const c_char,
    writer: *const c_char,
    cb: chordsip_store_cb,
    user_data: *mut c_void,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { node_ref(node) }?;
        // SAFETY: forwarded caller contract.
        let (key, writer, _) = unsafe { write_args(key, writer, std::ptr::null(), 0) }?;
        let cb = cb.ok_or(CHORDSIP_ERR_NULL_POINTER)?;
        start_async(n, store_deliver(cb, UserData(user_data)), |node, c| {
            node.remove_async(key, writer.as_bytes(), move |r| c.complete(r))
        })
    })
}

/// Asynchronous `chordsip_node_get`; `cb` receives the values, lent for the call.
///
/// # Safety
/// As `chordsip_node_get` and `chordsip_node_lookup_async`.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_get_async(
    node: *mut chordsip_node,
    key: *const c_char,
    cb: chordsip_get_cb,
    user_data: *mut c_void,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { node_ref(node) }?;
        // SAFETY: NULL or NUL-terminated by the caller's contract.
        let key = Id::from_name(unsafe { key_arg(key) }?);
        let cb = cb.ok_or(CHORDSIP_ERR_NULL_POINTER)?;
        let ud = UserData(user_data);
        start_async(
            n,
            move |r: crate::Result<Vec<crate::Value>>| {
                let ud = ud;
                match r {
                    Ok(v) => {
                        let list = chordsip_values::new(v);
                        // SAFETY: the host's callback; the list lives until it returns.
                        unsafe { cb(CHORDSIP_OK, &list, ud.get()) }
                    }
                    // SAFETY: the host's callback; NULL values on error as documented.
                    Err(e) => unsafe { cb(e.into(), std::ptr::null(), ud.get()) },
                }
            },
            |node, c| node.get_async(key, move |r| c.complete(r)),
        )
    })
}

/// In fd mode (`CHORDSIP_DELIVER_FD`), gives the socket that becomes readable
/// when callbacks are waiting; poll it and call `chordsip_node_process`. The
/// node owns the fd: never read, write or close it. Works before the node starts.
/// An event loop that reads every fd it watches and closes it when it lets
/// go (PJSIP's ioqueue: `pj_ioqueue_register_sock`, `pj_ioqueue_unregister`)
/// gets a `dup()` of it and reads with `MSG_PEEK`, so the byte stays for
/// `chordsip_node_process` to drain (c-examples/pjsua-p2p).
///
/// # Safety
/// `node` NULL or live; `fd` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_event_fd(
    node: *const chordsip_node,
    fd: *mut c_int,
) -> chordsip_result {
    guard(|| {
        // SAFETY: NULL or a live node by the caller's contract.
        let n = unsafe { node_ref(node) }?;
        let f = n.dispatcher.fd().ok_or(CHORDSIP_ERR_BAD_STATE)?;
        // SAFETY: NULL or writable by the caller's contract.
        unsafe { write_out(fd, f) }
    })
}

/// In fd mode, runs the waiting callbacks (completions, events, log lines) on
/// the calling thread and clears the fd's readability. `ran` (may be NULL)
/// receives how many ran. Callbacks may call any function of the node,
/// including blocking ones and `chordsip_node_free`. In thread mode it does
/// nothing and reports 0.
///
/// # Safety
/// `node` NULL or live; `ran` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chordsip_node_process(
    node: *mut chordsip_node,
    ran: *mut usize,
) -> chordsip_result {
    guard(|| {
        // The node may be freed by a callback: keep only the dispatcher.
        // SAFETY: NULL or a live node by the caller's contract.
        let d = Arc::clone(&unsafe { node_ref(node) }?.dispatcher);
        let count = d.process();
        // SAFETY: NULL or writable by the caller's contract.
        unsafe { write_opt(ran, count) };
        Ok(())
    })
}
