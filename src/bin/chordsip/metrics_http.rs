//! `chordsip node --metrics ADDR`: a small HTTP/1.1 endpoint that serves the
//! node's counters at `GET /metrics` for Prometheus to scrape: OpenMetrics
//! when the scraper's `Accept` asks for it, else the older text format.
//!
//! Safe by default: on a loopback address it answers anyone on the machine;
//! on any other address it refuses to start without `--metrics-token-file`
//! and then answers only requests bearing that token (`Authorization:
//! Bearer`, Prometheus' `authorization.credentials_file`). One thread, one
//! connection at a time, each bounded in time and size, so a slow or
//! hostile client can delay a scrape but never grow the node's memory.

use chordsip::metrics::{self, Format};
use chordsip::Node;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest request head read; anything longer is refused.
const MAX_REQUEST: usize = 8 * 1024;
/// Bound on one connection, from accept to the answer written: a client
/// that trickles its request a byte at a time is cut off at it.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Refuses an address off loopback without a token.
pub fn check(addr: SocketAddr, has_token: bool) -> Result<(), String> {
    if addr.ip().is_loopback() || has_token {
        return Ok(());
    }
    Err(format!(
        "--metrics {addr} is not a loopback address: give --metrics-token-file \
         so that only scrapers holding the token read the node's counters"
    ))
}

/// Binds `addr` and serves the node's metrics on a thread of its own until
/// `stop` is set. Returns the bound address (a port 0 gets a free one).
pub fn serve(
    node: Arc<Node>,
    addr: SocketAddr,
    token: Option<Vec<u8>>,
    stop: Arc<AtomicBool>,
) -> Result<SocketAddr, String> {
    check(addr, token.is_some())?;
    let listener =
        TcpListener::bind(addr).map_err(|e| format!("cannot listen for metrics on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("metrics listener: {e}"))?;
    std::thread::Builder::new()
        .name("chordsip-metrics".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let _ = answer(&node, conn, token.as_deref());
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        })
        .map_err(|e| format!("metrics thread: {e}"))?;
    Ok(bound)
}

/// Reads one request head and answers it; the connection then closes.
fn answer(node: &Node, mut conn: TcpStream, token: Option<&[u8]>) -> std::io::Result<()> {
    let deadline = Instant::now() + IO_TIMEOUT;
    conn.set_nonblocking(false)?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    let head = match read_head(&mut conn, deadline)? {
        Some(head) => head,
        None => {
            return reply(
                &mut conn,
                "431 Request Header Fields Too Large",
                "",
                b"",
                false,
            )
        }
    };
    let (status, content_type, body) = respond(node, &head, token);
    // HEAD: the same headers (Content-Length included), no body.
    let head_only = head.starts_with("HEAD ");
    reply(&mut conn, status, content_type, body.as_bytes(), head_only)
}

/// The request head up to the blank line; None when it passes `MAX_REQUEST`.
/// Each read waits only for what is left of the connection's time.
fn read_head(conn: &mut TcpStream, deadline: Instant) -> std::io::Result<Option<String>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        conn.set_read_timeout(Some(left))?;
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_REQUEST {
            return Ok(None);
        }
    }
    Ok(Some(String::from_utf8_lossy(&head).into_owned()))
}

/// The status line, content type and body for one request head.
fn respond(node: &Node, head: &str, token: Option<&[u8]>) -> (&'static str, &'static str, String) {
    let mut lines = head.lines();
    let request = lines.next().unwrap_or("");
    let mut parts = request.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let headers: Vec<(&str, &str)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(name, value)| (name.trim(), value.trim()))
        .collect();
    let header = |want: &str| {
        headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(want))
            .map(|(_, value)| *value)
    };
    if let Some(token) = token {
        let bearer = header("authorization").and_then(|v| v.strip_prefix("Bearer ").map(str::trim));
        if !bearer.is_some_and(|b| constant_time_eq(b.as_bytes(), token)) {
            return (
                "401 Unauthorized",
                "text/plain",
                "a bearer token is needed\n".into(),
            );
        }
    }
    if method != "GET" && method != "HEAD" {
        return (
            "405 Method Not Allowed",
            "text/plain",
            "GET /metrics\n".into(),
        );
    }
    let path = target.split('?').next().unwrap_or("");
    if path != "/metrics" && path != "/" {
        return ("404 Not Found", "text/plain", "GET /metrics\n".into());
    }
    // OpenMetrics for scrapers that ask for it (Prometheus does), the older
    // text format for the rest, as Prometheus' own client libraries do.
    let (format, content_type) =
        if header("accept").is_some_and(|a| a.contains("application/openmetrics-text")) {
            (Format::OpenMetrics, metrics::CONTENT_TYPE)
        } else {
            (Format::Prometheus, metrics::CONTENT_TYPE_PROMETHEUS)
        };
    match node.stats() {
        Ok(stats) => (
            "200 OK",
            content_type,
            metrics::render_as(&node.info(), &stats, format),
        ),
        Err(e) => (
            "503 Service Unavailable",
            "text/plain",
            format!("the node did not answer: {e}\n"),
        ),
    }
}

fn reply(
    conn: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if !content_type.is_empty() {
        out.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    if status.starts_with("401") {
        out.push_str("WWW-Authenticate: Bearer\r\n");
    }
    out.push_str("\r\n");
    conn.write_all(out.as_bytes())?;
    if !head_only {
        conn.write_all(body)?;
    }
    conn.flush()
}

/// Compares a presented token with the configured one without leaking, by
/// timing, how long a prefix matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
