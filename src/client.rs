//! The client handle: reaches the overlay through one peer, with no place on
//! the ring and no threads of its own. Every call blocks with a hard timeout.
//! This is how forked SIP workers, hosts behind NAT and the CLI use an overlay.

use crate::ability::{self, Ability, Peer};
use crate::clock::next_version;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::owner::{self, Owner};
use crate::sip::binding::{Plan, RegisterRequest};
use crate::sip::registrar::RegistrarError;
use crate::sip::remote::{decode_outcome, encode_request, Outcome};
use crate::types::{dict_store_by_methods, CredentialTrust, StoreReceipt, TraceHop, Value};
use crate::wire::{
    error_of, Body, Codec, InfoKind, Message, NodeInfo, Status, WireEntry, FLAG_CLIENT,
    FLAG_RESPONSE,
};
use rand::Rng;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Pages a get reads before it gives up on a peer (each page holds at least
/// one entry; a node keeps 64 entries per key unless configured otherwise).
const MAX_PAGES: usize = 1024;

/// Where a client's peer is: a UDP address, or the node's local UNIX socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerAddr {
    Udp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerAddr::Udp(a) => write!(f, "{a}"),
            PeerAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl std::str::FromStr for PeerAddr {
    type Err = Error;

    /// `host:port` (IPv6 as `[addr]:port`) or `unix:/path/to/socket`.
    fn from_str(s: &str) -> Result<PeerAddr> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(Error::InvalidArgument("empty UNIX socket path".into()));
            }
            return Ok(PeerAddr::Unix(PathBuf::from(path)));
        }
        s.parse()
            .map(PeerAddr::Udp)
            .map_err(|_| Error::InvalidArgument(format!("bad peer address {s:?}")))
    }
}

enum Transport {
    Udp(UdpSocket, SocketAddr),
    /// Bound to an abstract name so the node can answer; not connected, so a
    /// node restarted at the same path is reached again.
    Unix(UnixDatagram, PathBuf),
}

impl Transport {
    fn send(&self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Transport::Udp(s, peer) => s.send_to(data, peer).map(|_| ()),
            Transport::Unix(s, path) => s.send_to(data, path).map(|_| ()),
        }
    }

    fn set_read_timeout(&self, timeout: Duration) -> std::io::Result<()> {
        match self {
            Transport::Udp(s, _) => s.set_read_timeout(Some(timeout)),
            Transport::Unix(s, _) => s.set_read_timeout(Some(timeout)),
        }
    }

    /// One datagram from the peer, or None for one from anywhere else
    /// (waiting as long as the socket's read timeout).
    fn recv(&self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        match self {
            Transport::Udp(s, peer) => {
                let (n, from) = s.recv_from(buf)?;
                Ok((from == *peer).then_some(n))
            }
            Transport::Unix(s, path) => {
                let (n, from) = s.recv_from(buf)?;
                Ok((from.as_pathname() == Some(path.as_path())).then_some(n))
            }
        }
    }
}

/// A connection-less handle to one peer of an overlay.
pub struct Client {
    transport: Transport,
    peer: PeerAddr,
    pid: u32,
    codec: Codec,
    /// Answers must carry a tag made with the client key (but a refusal,
    /// which the node sends plain to whoever lacks the key).
    keyed: bool,
    id: Id,
    /// The node's id and its cookie for our address, once it told them.
    node: Option<Id>,
    cookie: u64,
    next_request: u64,
    timeout: Duration,
    /// What the socket's read timeout is set to (None: not set yet).
    read_timeout: Option<Duration>,
    buf: Vec<u8>,
    /// The node's trusted writer keys, asked once: they are fixed for the
    /// node's lifetime, and every registrar lookup needs them.
    trusted: Option<Vec<Owner>>,
    /// What opens SIP credential records, when the host gave it
    /// ([`Client::set_credential_trust`]): it never crosses the wire.
    credentials: Option<CredentialTrust>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("peer", &self.peer).finish()
    }
}

/// Initial retransmission interval toward the peer; doubled on each retry.
const FIRST_RTO: Duration = Duration::from_millis(100);

impl Client {
    /// A handle to the peer at `peer` of overlay `overlay` (with its key, if any).
    pub fn connect(peer: SocketAddr, overlay: &str, key: Option<&[u8]>) -> Result<Client> {
        Self::connect_to(&PeerAddr::Udp(peer), overlay, key)
    }

    /// A handle to a node's local UNIX socket (see `Config::client_socket`).
    pub fn connect_unix(path: &Path, overlay: &str, key: Option<&[u8]>) -> Result<Client> {
        Self::connect_to(&PeerAddr::Unix(path.to_path_buf()), overlay, key)
    }

    /// `key` is the node's client credential (its `client_key`), which a
    /// UDP client needs; on the UNIX socket the socket's permissions admit
    /// the caller and `key` is not used.
    pub fn connect_to(peer: &PeerAddr, overlay: &str, key: Option<&[u8]>) -> Result<Client> {
        if overlay.is_empty() || overlay.len() > 255 {
            return Err(Error::InvalidArgument(
                "overlay name must be 1..=255 bytes".into(),
            ));
        }
        if key.is_some_and(|k| k.is_empty()) {
            return Err(Error::InvalidArgument(
                "client key must not be empty".into(),
            ));
        }
        let key = key.filter(|_| matches!(peer, PeerAddr::Udp(_)));
        let mut rng = rand::thread_rng();
        let transport = match peer {
            PeerAddr::Udp(peer) => {
                let bind: SocketAddr = match (peer.is_ipv4(), peer.ip().is_loopback()) {
                    (true, true) => "127.0.0.1:0",
                    (true, false) => "0.0.0.0:0",
                    (false, true) => "[::1]:0",
                    (false, false) => "[::]:0",
                }
                .parse()
                .expect("valid");
                Transport::Udp(UdpSocket::bind(bind)?, *peer)
            }
            PeerAddr::Unix(path) => {
                use std::os::linux::net::SocketAddrExt;
                let name = format!(
                    "chordsip-client-{}-{:016x}",
                    std::process::id(),
                    rng.gen::<u64>()
                );
                let local = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
                Transport::Unix(UnixDatagram::bind_addr(&local)?, path.clone())
            }
        };
        let mut id = [0u8; 20];
        rng.fill(&mut id);
        Ok(Client {
            transport,
            peer: peer.clone(),
            pid: std::process::id(),
            codec: Codec::new(overlay, None, crate::wire::MAX_DATAGRAM).with_client_key(key),
            keyed: key.is_some(),
            node: None,
            cookie: 0,
            id: Id(id),
            next_request: rng.gen::<u64>() >> 1,
            timeout: Duration::from_secs(6),
            read_timeout: None,
            buf: vec![0; 65_536],
            trusted: None,
            credentials: None,
        })
    }

    pub fn peer(&self) -> &PeerAddr {
        &self.peer
    }

    /// The hard deadline of every call.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout.max(Duration::from_millis(1));
    }

    fn call(&mut self, body: Body) -> Result<Body> {
        if std::process::id() != self.pid {
            // The socket is shared with the parent: answers could reach either process.
            return Err(Error::Forked);
        }
        self.next_request = self.next_request.wrapping_add(1);
        let rid = self.next_request;
        let deadline = Instant::now() + self.timeout;
        let mut rto = FIRST_RTO;
        let mut retries_left = 4;
        loop {
            // Encoded anew each time: with the node's cookie and id once a
            // Retry (or any answer) told them, and a fresh timestamp.
            let msg = Message {
                flags: FLAG_CLIENT,
                overlay: self.codec.overlay(),
                request_id: rid,
                timestamp_ms: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0),
                sender: self.id,
                receiver: self.node.unwrap_or(Id::ZERO),
                cookie: self.cookie,
                body: body.clone(),
            };
            let data = self.codec.encode(&msg).map_err(|_| Error::TooLarge)?;
            match self.transport.send(&data) {
                Ok(()) => {}
                // The node may be restarting; retransmission covers it until the deadline.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionRefused
                            | std::io::ErrorKind::NotFound
                            | std::io::ErrorKind::WouldBlock
                    ) => {}
                Err(e) => return Err(e.into()),
            }
            let sent_at = Instant::now();
            let resend_at = (sent_at + rto).min(deadline);
            // The first wait of a call is the same every time (FIRST_RTO,
            // unless the deadline is nearer): the socket keeps it, one
            // setsockopt per handle instead of one per call.
            let mut wait = Some(resend_at.saturating_duration_since(sent_at));
            rto = (rto * 2).min(Duration::from_secs(1));
            let mut again = false;
            while !again {
                let now = Instant::now();
                if now >= resend_at {
                    break;
                }
                let t = wait.take().unwrap_or(resend_at - now);
                if self.read_timeout != Some(t) {
                    self.transport.set_read_timeout(t)?;
                    self.read_timeout = Some(t);
                }
                match self.transport.recv(&mut self.buf) {
                    Ok(None) => continue,
                    Ok(Some(n)) => {
                        let Ok((reply, tagged)) = self.codec.decode_authenticated(&self.buf[..n])
                        else {
                            continue;
                        };
                        let refusal = matches!(
                            reply.body,
                            Body::Error {
                                status: Status::Unauthorized
                            }
                        );
                        let trusted = tagged || !self.keyed || refusal;
                        if reply.request_id != rid || reply.flags & FLAG_RESPONSE == 0 || !trusted {
                            continue;
                        }
                        if reply.cookie != 0 {
                            self.cookie = reply.cookie;
                        }
                        self.node = Some(reply.sender);
                        if reply.body != Body::Retry {
                            return Ok(reply.body);
                        }
                        // The node wants proof that we receive here: ask again
                        // at once with the cookie it sent.
                        if retries_left == 0 {
                            return Err(Error::Refused("the node keeps asking to retry".into()));
                        }
                        retries_left -= 1;
                        again = true;
                    }
                    // Timeouts and interruptions just mean "no answer yet"; an ICMP
                    // "port unreachable" comes once per datagram sent, and the peer may
                    // be restarting: keep waiting until the deadline.
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock
                                | std::io::ErrorKind::TimedOut
                                | std::io::ErrorKind::Interrupted
                                | std::io::ErrorKind::ConnectionRefused
                        ) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout);
            }
        }
    }

    /// The node responsible for `key` and the hops the peer needed.
    pub fn lookup(&mut self, key: Id) -> Result<(NodeInfo, u32)> {
        match self.call(Body::ClientLookup { key })? {
            Body::ClientLookupReply {
                status: Status::Ok,
                node: Some(n),
                hops,
            } => Ok((n, hops as u32)),
            Body::ClientLookupReply { status, .. } | Body::Error { status } => {
                Err(error_of(status))
            }
            _ => Err(Error::Refused("unexpected reply".into())),
        }
    }

    /// The peer's round trip to the node at `addr` (the peer pings it).
    pub fn ping(&mut self, addr: SocketAddr) -> Result<Duration> {
        match self.call(Body::ClientPing { addr })? {
            Body::ClientPingReply {
                status: Status::Ok,
                rtt_us,
            } => Ok(Duration::from_micros(rtt_us as u64)),
            Body::ClientPingReply { status, .. } | Body::Error { status } => Err(error_of(status)),
            _ => Err(Error::Refused("unexpected reply".into())),
        }
    }

    /// A lookup run by the peer that reports its route: the node found
    /// responsible, and each node that answered a step with its round trip.
    pub fn trace(&mut self, key: Id) -> Result<(NodeInfo, Vec<TraceHop>)> {
        match self.call(Body::ClientTrace { key })? {
            Body::ClientTraceReply {
                status: Status::Ok,
                node: Some(node),
                path,
            } => Ok((
                node,
                path.into_iter()
                    .map(|(node, rtt_us)| TraceHop {
                        node,
                        rtt: Duration::from_micros(rtt_us as u64),
                    })
                    .collect(),
            )),
            Body::ClientTraceReply { status, .. } | Body::Error { status } => Err(error_of(status)),
            _ => Err(Error::Refused("unexpected reply".into())),
        }
    }

    pub fn put(
        &mut self,
        key: Id,
        writer: &[u8],
        data: &[u8],
        lifetime: Duration,
    ) -> Result<StoreReceipt> {
        self.put_entry(key, writer, data, next_version(), lifetime, false)
    }

    pub fn remove(&mut self, key: Id, writer: &[u8]) -> Result<StoreReceipt> {
        self.put_entry(
            key,
            writer,
            &[],
            next_version(),
            Duration::from_secs(600),
            true,
        )
    }

    pub fn put_entry(
        &mut self,
        key: Id,
        writer: &[u8],
        data: &[u8],
        version: u64,
        lifetime: Duration,
        tombstone: bool,
    ) -> Result<StoreReceipt> {
        if writer.len() > crate::wire::MAX_LABEL_LEN {
            return Err(Error::TooLarge);
        }
        // The node puts the label in its own slot and signs the entry.
        let lifetime_ms = lifetime.as_millis().min(u32::MAX as u128) as u32;
        let entry = WireEntry::unsigned(
            writer.to_vec(),
            version,
            lifetime_ms,
            tombstone,
            data.to_vec(),
        );
        match self.call(Body::ClientPut { key, entry })? {
            Body::StoreReply {
                status: Status::Ok,
                copies,
            } => Ok(StoreReceipt { copies }),
            Body::StoreReply { status, .. } | Body::Error { status } => Err(error_of(status)),
            _ => Err(Error::Refused("unexpected reply".into())),
        }
    }

    /// Up to `n` peers that announce ability `name`, least loaded first (as
    /// [`crate::Node::find_peers`]; the peer reads the key for us).
    pub fn find_peers(&mut self, name: &str, n: usize) -> Result<Vec<Peer>> {
        Ability::new(name)?;
        let values = self.get(ability::key(name))?;
        Ok(ability::select(&values, name, n))
    }

    pub fn get(&mut self, key: Id) -> Result<Vec<Value>> {
        let mut values = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        // Each page is one request; a key holds a bounded number of entries,
        // so a peer that keeps paging is broken.
        for _ in 0..MAX_PAGES {
            let body = self.call(Body::ClientGet {
                key,
                after: after.clone(),
            })?;
            match body {
                Body::FetchReply {
                    status: Status::Ok,
                    entries,
                    next,
                } => {
                    values.extend(entries.into_iter().filter_map(Value::from_wire));
                    match next {
                        Some(n) if after.as_ref().is_none_or(|a| n > *a) => after = Some(n),
                        Some(_) => return Err(Error::Refused("peer repeated a page".into())),
                        None => {
                            values.sort_by_key(|v| std::cmp::Reverse(v.version));
                            return Ok(values);
                        }
                    }
                }
                Body::FetchReply { status, .. } | Body::Error { status } => {
                    return Err(error_of(status))
                }
                _ => return Err(Error::Refused("unexpected reply".into())),
            }
        }
        Err(Error::Refused("peer sent too many pages".into()))
    }

    /// Processes a REGISTER in one round trip: the peer reads the AOR, applies
    /// the registrar's rules and writes the changes (all or nothing) itself.
    /// Same result as [`crate::sip::registrar::register`] over this handle,
    /// with one exchange instead of a read and a write per binding.
    pub fn register(&mut self, req: &RegisterRequest) -> std::result::Result<Plan, RegistrarError> {
        let request = encode_request(req);
        match self.call(Body::ClientTransaction { request })? {
            Body::ClientTransactionReply {
                status: Status::Ok,
                outcome,
            } => match decode_outcome(&outcome) {
                Some(Outcome::Done { plan, listed: true }) => Ok(plan),
                Some(Outcome::Done { mut plan, .. }) => {
                    // Too many bindings for one reply: read the registrar's
                    // own (paged), listed as a REGISTER's answer lists them.
                    use crate::sip::registrar::{lookup_trusting, Trust};
                    let own = [self.owner()?];
                    plan.result = lookup_trusting(self, &req.to, Trust::Writers(&own))?
                        .into_iter()
                        .map(|(mut b, e)| {
                            b.owner = None;
                            (b, e)
                        })
                        .collect();
                    Ok(plan)
                }
                Some(Outcome::Refused(e)) => Err(RegistrarError::Request(e)),
                None => Err(Error::Refused("malformed register reply".into()).into()),
            },
            Body::ClientTransactionReply { status, .. } | Body::Error { status } => {
                Err(error_of(status).into())
            }
            _ => Err(Error::Refused("unexpected reply".into()).into()),
        }
    }

    /// The peer's ring neighbours and stored keys, as text.
    pub fn ring_text(&mut self) -> Result<String> {
        self.info(InfoKind::Ring)
    }

    /// The peer's statistics, as `name value` lines.
    pub fn stats_text(&mut self) -> Result<String> {
        self.info(InfoKind::Stats)
    }

    /// The peer's counters as OpenMetrics text (`crate::metrics`).
    pub fn metrics_text(&mut self) -> Result<String> {
        let text = self.info(InfoKind::Metrics)?;
        // A node older than the metrics answers with its stats text.
        if !text.ends_with("# EOF\n") {
            return Err(Error::Refused(
                "the node answered no OpenMetrics text (a version without metrics?)".into(),
            ));
        }
        Ok(text)
    }

    /// The public key the node signs this handle's writes with (the node's own).
    pub fn owner(&mut self) -> Result<Owner> {
        let text = self.info(InfoKind::Ring)?;
        text.lines()
            .find_map(|l| l.strip_prefix("writer "))
            .and_then(owner::parse_owner)
            .ok_or_else(|| Error::Refused("the node did not name its writer key".into()))
    }

    /// The writer keys the node's registrar lookups trust: its writer key
    /// and its `trusted_writers` (bindings of other keys are not routed to).
    pub fn trusted_writers(&mut self) -> Result<Vec<Owner>> {
        if let Some(t) = &self.trusted {
            return Ok(t.clone());
        }
        let text = self.info(InfoKind::Ring)?;
        let keys: Vec<Owner> = text
            .lines()
            .filter_map(|l| {
                l.strip_prefix("writer ")
                    .or_else(|| l.strip_prefix("trusted "))
            })
            .filter_map(owner::parse_owner)
            .collect();
        if keys.is_empty() {
            return Err(Error::Refused(
                "the node did not name its writer key".into(),
            ));
        }
        self.trusted = Some(keys.clone());
        Ok(keys)
    }

    /// Lets this handle read SIP credentials (`sip::credentials`): the
    /// credentials key and the admins' writer keys, as the node's
    /// `credentials_key` and `credential_admins`.
    pub fn set_credential_trust(&mut self, trust: CredentialTrust) -> Result<()> {
        if trust.admins.is_empty() {
            return Err(Error::InvalidArgument(
                "credential_admins is empty: no credential record would count".into(),
            ));
        }
        self.credentials = Some(trust);
        Ok(())
    }

    pub fn credential_trust(&mut self) -> Result<CredentialTrust> {
        self.credentials.clone().ok_or_else(|| {
            Error::Unauthorized(
                "no credentials_key: this handle cannot read SIP credentials".into(),
            )
        })
    }

    fn info(&mut self, kind: InfoKind) -> Result<String> {
        let what = kind.code();
        match self.call(Body::ClientInfo { what })? {
            Body::ClientInfoReply { text } => Ok(String::from_utf8_lossy(&text).into_owned()),
            Body::Error { status } => Err(error_of(status)),
            _ => Err(Error::Refused("unexpected reply".into())),
        }
    }
}

dict_store_by_methods!(Client, methods of Client);
