"""Plain Python values returned by the binding (copies; nothing borrows C memory)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Dict, List, NamedTuple, Optional, Tuple, Union

from .errors import ChordsipError


class Delivery(str, enum.Enum):
    """How a node delivers completions and events (``chordsip_delivery``)."""

    #: Callbacks run on library threads as soon as results arrive.
    THREAD = "thread"
    #: Callbacks are queued; :meth:`Node.event_fd` becomes readable and
    #: :meth:`Node.process` runs them on the caller's thread.
    FD = "fd"


class EventKind(enum.IntEnum):
    """What an :class:`Event` reports (``chordsip_event_kind``)."""

    PREDECESSOR = 1
    SUCCESSOR = 2
    KEYS_IN = 3
    KEYS_OUT = 4
    #: One-hop overlays: a member joined (``peer``, ``weight``, ``sip_address``).
    MEMBER_UP = 5
    #: One-hop overlays: a member left or failed.
    MEMBER_DOWN = 6
    #: A binding of :meth:`Node.publish` was refreshed on the library's
    #: timer (``aor``; ``expires``: the seconds it now lives).
    REFRESHED = 7
    #: A refresh on the library's timer failed (``aor``, ``error``;
    #: ``expires``: seconds the binding still lives, 0 when it lapsed;
    #: ``retry_ms``: when the library tries again).
    REFRESH_FAILED = 8


class Neighbours(enum.IntEnum):
    """Which neighbours :meth:`Node.neighbours` lists (``chordsip_neighbours``)."""

    PREDECESSORS = 0
    SUCCESSORS = 1
    FINGERS = 2
    #: One-hop overlays: every member of the table.
    MEMBERS = 3


class InfoKind(enum.IntEnum):
    """What :meth:`Node.info` / :meth:`Client.info` reports."""

    RING = 0
    STATS = 1
    METRICS = 2


class LogLevel(enum.IntEnum):
    """Log levels of the log callback (1 error .. 5 trace; 0 off)."""

    OFF = 0
    ERROR = 1
    WARN = 2
    INFO = 3
    DEBUG = 4
    TRACE = 5


class Hop(enum.IntEnum):
    """Where a request for a :class:`Binding` goes first (``chordsip_hop``)."""

    #: To the contact itself.
    CONTACT = 0
    #: To the address the REGISTER came from (an RFC 5626 flow, or NAT).
    RECEIVED = 1
    #: To the first Path entry (RFC 3327); the Path values become Route headers.
    PATH = 2


class AuthVerdict(enum.IntEnum):
    """What to answer a request whose credentials :meth:`Node.authenticate`
    checked (``chordsip_auth_verdict``)."""

    #: Authenticated as the AOR's user.
    OK = 0
    #: No credentials for the realm, or on a nonce the node did not issue: 401.
    CHALLENGE = 1
    #: Credentials on an expired nonce: 401 with a ``stale=true`` challenge.
    STALE = 2
    #: Wrong password or unknown user: 403.
    FORBIDDEN = 3
    #: Authenticated as another user than the AOR's: 403.
    NOT_YOURS = 4
    #: A malformed or oversized Authorization header: 400.
    MALFORMED = 5


@dataclass(frozen=True)
class AuthResult:
    """The outcome of :meth:`Node.authenticate`: the verdict, the SIP status
    and reason to answer with, and for 401 the ``WWW-Authenticate`` value."""

    verdict: AuthVerdict
    status: int
    reason: str
    challenge: str


@dataclass(frozen=True)
class RingSnapshot:
    """A node's view of the ring at one moment (:meth:`Node.ring`): every
    list comes from the same step of the node, so they agree."""

    #: This node.
    node: "Peer"
    joined: bool
    stored_keys: int
    stored_entries: int
    #: Nearest first.
    predecessors: List["Peer"]
    #: Nearest first.
    successors: List["Peer"]
    #: The distinct finger-table nodes, nearest finger first.
    fingers: List["Peer"]
    #: One-hop overlays: every member (this node included), in id order.
    members: List["Peer"]


@dataclass(frozen=True)
class Peer:
    """A node of the overlay."""

    #: Ring id, 40 hex digits.
    id: str
    #: ``ip:port`` or ``[ipv6]:port``.
    addr: str


@dataclass(frozen=True)
class AbilityPeer:
    """A peer found by ability (:meth:`Node.find_peers`)."""

    #: Ring id, 40 hex digits.
    id: str
    #: Overlay address, ``ip:port`` or ``[ipv6]:port``.
    addr: str
    #: The ability's name, e.g. ``"relay"``.
    name: str
    #: How much the peer can take (0: not stated) and how much is in use.
    capacity: int
    load: int
    #: The other attributes, e.g. ``{"turn": "10.0.0.5:3478"}``.
    attrs: Dict[str, str]
    #: How long the announcement lives unless its peer refreshes it, in ms.
    expires_in_ms: int


@dataclass(frozen=True)
class Value:
    """One stored value (one per writer under a key)."""

    writer: str
    data: bytes
    #: Writer-chosen version: a larger one replaces a smaller one.
    version: int
    #: Remaining lifetime when read, in milliseconds.
    expires_in_ms: int
    #: Public key (32 bytes) of the writer that signed the value: only the
    #: holder of its secret (``writer_key``) can change or remove it.
    owner: bytes = b""


@dataclass(frozen=True)
class LookupInfo:
    """The answer of the bare Chord lookup."""

    #: Ring id of the node responsible for the key.
    node_id: str
    #: Its address.
    addr: str
    #: Remote nodes asked on the way (0: the asking node or its successor is responsible).
    hops: int
    #: Time the lookup took, in microseconds.
    latency_us: int

    @property
    def peer(self) -> Peer:
        return Peer(self.node_id, self.addr)


@dataclass(frozen=True)
class Event:
    """A membership or storage event of a node."""

    kind: EventKind
    #: The new predecessor/successor (None for KEYS events or "none known").
    peer: Optional[Peer]
    #: Number of entries, for the KEYS events.
    count: int
    #: MEMBER_UP: the member's capacity (its SRV weight).
    weight: int = 0
    #: MEMBER_UP: where the member serves SIP (``ip:port``), or None.
    sip_address: Optional[str] = None
    #: REFRESHED, REFRESH_FAILED: the published AOR (canonical form).
    aor: Optional[str] = None
    #: REFRESHED: seconds the binding now lives; REFRESH_FAILED: seconds it
    #: still lives (0: it lapsed until a retry succeeds).
    expires: int = 0
    #: REFRESH_FAILED: milliseconds until the next try.
    retry_ms: int = 0
    #: REFRESH_FAILED: why, as the exception a call would have raised.
    error: Optional[ChordsipError] = None


@dataclass(frozen=True)
class Contact:
    """One Contact of a REGISTER (``chordsip_contact``)."""

    #: The contact URI, e.g. ``"sip:alice@192.0.2.1:5060;transport=tcp"``.
    uri: str
    #: The contact's ``expires`` parameter in seconds (None: the request's
    #: ``expires``, else 3600). 0 removes the binding.
    expires: Optional[int] = None
    #: The ``q`` parameter: a number (``0.5``) or the text as written
    #: (``"0.5"``); None is q=1.
    q: Union[None, float, str] = None
    #: ``+sip.instance`` (RFC 5626), e.g. ``"<urn:uuid:...>"``.
    instance: Optional[str] = None
    #: ``reg-id`` (RFC 5626); needs ``instance``.
    reg_id: Optional[int] = None


@dataclass(frozen=True)
class Binding:
    """One binding of an address-of-record (``chordsip_binding``)."""

    #: The contact URI to reach the device.
    contact: str
    #: The q-value, 0.0 .. 1.0 (e.g. 0.5).
    q: float
    #: Remaining lifetime in seconds.
    expires: int
    #: ``+sip.instance``, or None.
    instance: Optional[str]
    #: ``reg-id``, or None.
    reg_id: Optional[int]
    #: Where the REGISTER came from, when given, or None.
    received: Optional[str]
    #: Call-ID and CSeq of the REGISTER that stored it.
    call_id: str
    cseq: int
    #: Path header values, in order.
    path: Tuple[str, ...] = ()
    #: Where a request for this binding goes first, as a SIP URI, decided by
    #: the library (``chordsip_bindings_next_hop``): the first Path entry's
    #: URI, else ``received`` for a flow or a UA behind NAT, else the contact.
    next_hop: str = ""
    #: Which of those :attr:`next_hop` is.
    next_hop_kind: Hop = Hop.CONTACT
    #: The value of the Contact header that lists this binding in a 200 OK
    #: (``<uri>;expires=N;q=0.5;+sip.instance="...";reg-id=1``), in the
    #: library's formatting (``chordsip_bindings_contact``).
    contact_value: str = ""
    #: The writer key the binding is stored under (64 hex digits): who wrote
    #: it. None in a REGISTER's answer.
    owner: Optional[str] = None


@dataclass(frozen=True)
class RegisterResult:
    """What a REGISTER did: the AOR's bindings afterwards (for the 200 OK,
    highest q first) and how many bindings it inserted, updated and deleted."""

    bindings: List[Binding] = field(default_factory=list)
    inserted: int = 0
    updated: int = 0
    deleted: int = 0


class SipReply(NamedTuple):
    """The SIP answer for a result (:func:`chordsip.sip_reply`)."""

    #: Status code, e.g. 423.
    status: int
    #: Reason phrase, e.g. ``"Interval Too Brief"``.
    reason: str
    #: Header lines the reply must carry, each ending in CRLF
    #: (a ``Min-Expires`` line with 423, ``Retry-After`` with 503), or ``""``.
    headers: str
