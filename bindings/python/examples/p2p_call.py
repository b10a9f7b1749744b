#!/usr/bin/env python3
"""Pure peer-to-peer SIP: two PJSUA2 user agents find each other through chordsip.

Each process runs one PJSUA2 endpoint (PyPI ``pjsua2-python``) and one
chordsip Node. There is no proxy and no registrar server, and no user agent
sends a REGISTER: each publishes its own contact under its address-of-record
with ``Node.publish`` (the library keeps the Call-ID and CSeq and refreshes
the binding on its own timers), and the caller finds the callee's contact
with ``Node.lookup_aor`` and sends its INVITE straight there.

    # terminal 1: starts a new ring, publishes sip:bob@p2p.example, waits
    python3 p2p_call.py --role callee
    READY overlay=127.0.0.1:40321 aor=sip:bob@p2p.example contact=sip:bob@127.0.0.1:51234

    # terminal 2: joins that ring, publishes sip:alice@p2p.example, calls bob
    python3 p2p_call.py --role caller --bootstrap 127.0.0.1:40321

The callee answers with 200 OK; the caller waits for the call to be
CONFIRMED, keeps it up for ``--hold`` seconds and hangs up. Each side prints
one ``RESULT`` line and exits 0 when the call was answered and hung up. Both
withdraw their binding (``Node.withdraw``) on the way out.

Everything stays on 127.0.0.1 (overlay, SIP and RTP sockets). Audio goes
to PJSUA2's null sound device. Needs ``pip install pjsua2-python`` and
libchordsip (``CHORDSIP_LIBRARY`` or the checkout's ``target/release``).

PJSUA2 rules this script follows: one Endpoint per process; PJSUA2 runs no
threads of its own here (``threadCnt=0``) and the main loop pumps
``libHandleEvents``; the chordsip Node delivers its events in fd mode and
the same loop runs them (``Node.process``), so no library thread ever enters
this script's code, let alone PJSUA2 (a thread unknown to PJLIB aborts the
process); Call objects are dropped before ``libDestroy``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import uuid
from typing import Any, Callable, Dict, Iterator, List, Optional, Union

import chordsip
from chordsip import Binding

try:
    import pjsua2 as pj
except ImportError as e:  # pragma: no cover - reported to the user
    sys.exit("p2p_call: pjsua2 is not installed (pip install pjsua2-python): %s" % e)

DOMAIN = "p2p.example"
LOOPBACK = "127.0.0.1"
CONFIRMED = pj.PJSIP_INV_STATE_CONFIRMED
DISCONNECTED = pj.PJSIP_INV_STATE_DISCONNECTED

#: Overlay maintenance a little faster than the library's defaults, so a
#: two-node ring settles within a few hundred milliseconds.
OVERLAY_OPTIONS: Dict[str, Union[str, int]] = {
    "overlay": "p2p-sip",
    "stabilize_ms": 100,
    "check_predecessor_ms": 100,
    "fix_fingers_ms": 100,
    "op_timeout_ms": 3000,
}


def log(role: str, text: str) -> None:
    print("%s: %s" % (role, text), flush=True)


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Hides what PJLIB prints to fd 1 before its log settings apply (libCreate)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


class Call(pj.Call):  # type: ignore[misc]
    """A call that reports its states to the user agent."""

    def __init__(self, ua: "UserAgent", call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(ua.account, call_id)
        self.ua = ua
        self.states: List[int] = []  # pjsip_inv_state values, in order
        self.last_status = 0
        self.last_reason = ""
        self.media_active = False

    def onCallState(self, prm: Any) -> None:
        try:
            ci = self.getInfo()
            self.states.append(ci.state)
            self.last_status = ci.lastStatusCode
            self.last_reason = ci.lastReason
            log(self.ua.role, "call %s (%d %s)" % (ci.stateText, ci.lastStatusCode, ci.lastReason))
        except Exception as e:  # never let an exception reach PJSUA2
            self.ua.errors.append("onCallState: %r" % e)

    def onCallMediaState(self, prm: Any) -> None:
        try:
            ci = self.getInfo()
            for mi in ci.media:
                if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                    # Audio to and from the null sound device.
                    am = self.getAudioMedia(mi.index)
                    mgr = self.ua.ep.audDevManager()
                    am.startTransmit(mgr.getPlaybackDevMedia())
                    mgr.getCaptureDevMedia().startTransmit(am)
                    self.media_active = True
        except Exception as e:
            self.ua.errors.append("onCallMediaState: %r" % e)

    @property
    def state(self) -> int:
        return self.states[-1] if self.states else pj.PJSIP_INV_STATE_NULL

    @property
    def confirmed(self) -> bool:
        """The call was answered (200 OK and ACK)."""
        return CONFIRMED in self.states

    @property
    def disconnected(self) -> bool:
        return bool(self.state == DISCONNECTED)


class Account(pj.Account):  # type: ignore[misc]
    """A local account (no registrar): receives the INVITEs sent to this UA."""

    def __init__(self, ua: "UserAgent") -> None:
        super().__init__()
        self.ua = ua

    def onIncomingCall(self, prm: Any) -> None:
        try:
            self.ua.on_incoming(Call(self.ua, prm.callId))
        except Exception as e:
            self.ua.errors.append("onIncomingCall: %r" % e)


class UserAgent:
    """One PJSUA2 endpoint with a UDP transport and an account on 127.0.0.1."""

    def __init__(self, role: str, aor: str, sip_port: int, pj_log_level: int, node: chordsip.Node) -> None:
        self.role = role
        self.aor = aor
        #: The overlay peer; its events run in :meth:`pump`, on this thread.
        self.node = node
        #: What the library's own refreshes reported (Node.publish).
        self.refreshed = 0
        self.refresh_failed = 0
        #: The device's identity: the binding is this instance's whatever its contact.
        self.instance = "<urn:uuid:%s>" % uuid.uuid4()
        self.errors: List[str] = []
        self.calls: List[Call] = []
        self.ep = pj.Endpoint()
        with quiet_stdout():
            self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0  # no PJSUA2 worker thread: we pump events
        cfg.uaConfig.userAgent = "chordsip-p2p-call"
        cfg.logConfig.level = pj_log_level
        cfg.logConfig.consoleLevel = pj_log_level
        self.ep.libInit(cfg)
        tcfg = pj.TransportConfig()
        tcfg.boundAddress = LOOPBACK
        tcfg.port = sip_port
        self.transport = self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        self.ep.libStart()
        self.ep.audDevManager().setNullDev()  # no sound card needed
        #: ``127.0.0.1:PORT`` of the SIP transport.
        self.sip_addr = self.ep.transportGetInfo(self.transport).localName
        user = aor.split(":", 1)[1].split("@", 1)[0]
        #: What the account puts in its Contact header, and what we publish.
        self.contact = "sip:%s@%s" % (user, self.sip_addr)
        acfg = pj.AccountConfig()
        acfg.idUri = aor
        acfg.sipConfig.transportId = self.transport
        acfg.mediaConfig.transportConfig.boundAddress = LOOPBACK
        self.account = Account(self)
        self.account.create(acfg)
        self.on_incoming: Callable[[Call], None] = self.reject

    def reject(self, call: Call) -> None:
        """Answers 486 Busy Here."""
        op = pj.CallOpParam()
        op.statusCode = 486
        call.answer(op)

    def pump(self, until: Callable[[], bool], timeout: float) -> bool:
        """Handles SIP and media events on this thread until ``until()`` or the timeout."""
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() >= deadline:
                return False
            self.ep.libHandleEvents(20)
            self.node.process()  # the overlay's events, on this same thread
        return True

    def on_overlay_event(self, e: chordsip.Event) -> None:
        """Runs inside :meth:`pump` (fd delivery): the library's refreshes."""
        if e.kind == chordsip.EventKind.REFRESHED:
            self.refreshed += 1
            log(self.role, "refreshed %s: %d s to live" % (e.aor, e.expires))
        elif e.kind == chordsip.EventKind.REFRESH_FAILED:
            self.refresh_failed += 1
            log(self.role, "refresh of %s failed (%s); retry in %d ms" % (e.aor, e.error, e.retry_ms))

    def close(self) -> None:
        self.calls.clear()  # Call objects go before libDestroy
        try:
            self.account.shutdown()
        except Exception:
            pass
        self.ep.libDestroy(pj.PJSUA_DESTROY_NO_NETWORK)


def publish(node: chordsip.Node, ua: UserAgent, expires: int) -> int:
    """Publishes the UA's contact under its AOR: the library keeps it alive."""
    granted = node.publish(ua.aor, ua.contact, expires, q=1.0, instance=ua.instance)
    log(ua.role, "published %s -> %s (%d s, refreshed by the library)" % (ua.aor, ua.contact, granted))
    return granted


def withdraw(node: chordsip.Node, ua: UserAgent) -> bool:
    try:
        node.withdraw(ua.aor)
        log(ua.role, "withdrew %s" % ua.aor)
        return True
    except chordsip.ChordsipError as e:
        log(ua.role, "withdraw failed: %s" % e)
        return False


def lookup(node: chordsip.Node, aor: str, timeout: float) -> Optional[Binding]:
    """The highest-q binding of ``aor``; retries while a fresh overlay settles."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            # Each user agent publishes itself under its own writer key, so
            # no key is "ours" here: take every binding (a real deployment
            # would check b.owner against the callee's known key).
            bindings = node.lookup_aor(aor, all=True)
        except (chordsip.ChordsipTimeout, chordsip.NoRoute, chordsip.NotJoined):
            bindings = []
        if bindings:
            return max(bindings, key=lambda b: b.q)  # lookup_aor sorts by q already
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


def result(role: str, ok: bool, **fields: Any) -> int:
    parts = " ".join("%s=%s" % (k, v) for k, v in fields.items())
    print("RESULT role=%s ok=%s %s" % (role, "yes" if ok else "no", parts), flush=True)
    return 0 if ok else 1


def run_callee(args: argparse.Namespace, node: chordsip.Node, ua: UserAgent) -> int:
    publish(node, ua, args.expires)

    def answer(call: Call) -> None:
        if ua.calls:  # one call at a time
            ua.reject(call)
            return
        ua.calls.append(call)
        ci = call.getInfo()
        log(ua.role, "incoming call from %s" % ci.remoteUri)
        op = pj.CallOpParam()
        op.statusCode = 200
        call.answer(op)

    ua.on_incoming = answer
    # The line the caller (or the test) waits for.
    print("READY overlay=%s aor=%s contact=%s" % (node.addr, ua.aor, ua.contact), flush=True)

    got_call = ua.pump(lambda: bool(ua.calls), args.timeout)
    confirmed = hung_up = media = False
    if got_call:
        call = ua.calls[0]
        ua.pump(lambda: call.confirmed or call.disconnected, args.timeout)
        confirmed = call.confirmed
        # The caller hangs up: a BYE ends the call here.
        hung_up = confirmed and ua.pump(lambda: call.disconnected, args.timeout)
        media = call.media_active
    withdrawn = withdraw(node, ua)
    ok = got_call and confirmed and hung_up and not ua.errors
    return result(
        "callee",
        ok,
        aor=ua.aor,
        answered="yes" if confirmed else "no",
        hung_up="remote" if hung_up else "no",
        media="yes" if media else "no",
        withdrawn="yes" if withdrawn else "no",
        refreshed=ua.refreshed,
        refresh_failed=ua.refresh_failed,
        errors=len(ua.errors),
    )


def run_caller(args: argparse.Namespace, node: chordsip.Node, ua: UserAgent) -> int:
    publish(node, ua, args.expires)

    target = lookup(node, args.callee, args.timeout)
    if target is None:
        log(ua.role, "no binding for %s in the overlay" % args.callee)
        withdraw(node, ua)
        return result("caller", False, callee=args.callee, found="no")
    log(
        ua.role,
        "lookup %s -> %s (q=%g, expires in %d s)" % (args.callee, target.contact, target.q, target.expires),
    )

    call = Call(ua)
    ua.calls.append(call)
    call.makeCall(target.contact, pj.CallOpParam(True))
    ua.pump(lambda: call.confirmed or call.disconnected, args.timeout)
    answered = call.confirmed
    hung_up = False
    if answered:
        ua.pump(lambda: call.disconnected, args.hold)  # talk for a moment
        if not call.disconnected:
            call.hangup(pj.CallOpParam())
            hung_up = ua.pump(lambda: call.disconnected, 10)
    media = call.media_active
    withdrawn = withdraw(node, ua)
    ok = answered and hung_up and not ua.errors
    return result(
        "caller",
        ok,
        callee=args.callee,
        contact=target.contact,
        answered="yes" if answered else "no(%d %s)" % (call.last_status, call.last_reason.replace(" ", "_")),
        hung_up="local" if hung_up else "no",
        media="yes" if media else "no",
        withdrawn="yes" if withdrawn else "no",
        refreshed=ua.refreshed,
        refresh_failed=ua.refresh_failed,
        errors=len(ua.errors),
    )


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--role", choices=("callee", "caller"), required=True)
    ap.add_argument("--bootstrap", help="overlay address to join (ip:port); the callee may start a ring")
    ap.add_argument("--listen", default="%s:0" % LOOPBACK, help="overlay UDP address (default: any port)")
    ap.add_argument("--sip-port", type=int, default=0, help="SIP UDP port on 127.0.0.1 (default: any)")
    ap.add_argument("--aor", help="this UA's AOR (default sip:bob@%s, or alice for the caller)" % DOMAIN)
    ap.add_argument("--callee", default="sip:bob@%s" % DOMAIN, help="the AOR the caller calls")
    ap.add_argument("--expires", type=int, default=300, help="lifetime of the published binding, in seconds")
    ap.add_argument(
        "--refresh-ms",
        type=int,
        default=0,
        help="refresh the binding this often (publish_refresh_ms; default: at half its lifetime)",
    )
    ap.add_argument("--hold", type=float, default=1.0, help="seconds the caller keeps the call up")
    ap.add_argument("--timeout", type=float, default=20.0, help="longest wait for each step, in seconds")
    ap.add_argument("--pj-log-level", type=int, default=0, help="PJSUA2 log level (0: silent)")
    args = ap.parse_args(argv)
    if args.role == "caller" and not args.bootstrap:
        ap.error("the caller needs --bootstrap (the callee's overlay address)")
    aor = args.aor or "sip:%s@%s" % ("bob" if args.role == "callee" else "alice", DOMAIN)
    role = args.role

    ua: Optional[UserAgent] = None

    def on_event(e: chordsip.Event) -> None:
        if ua is not None:
            ua.on_overlay_event(e)

    options = dict(OVERLAY_OPTIONS, listen=args.listen, publish_refresh_ms=args.refresh_ms)
    # fd delivery: events wait for Node.process, which the PJSUA2 loop calls.
    with chordsip.Node(options, delivery="fd", on_event=on_event) as node:
        node.join(args.bootstrap)  # None: a new ring
        how = "joined " + args.bootstrap if args.bootstrap else "new ring"
        log(role, "overlay node %s %s (%s)" % (node.addr, node.id[:8], how))
        ua = UserAgent(role, aor, args.sip_port, args.pj_log_level, node)
        try:
            log(role, "PJSUA2 %s on %s, contact %s" % (ua.ep.libVersion().full, ua.sip_addr, ua.contact))
            rc = (run_callee if role == "callee" else run_caller)(args, node, ua)
            for err in ua.errors:
                log(role, "error in a PJSUA2 callback: %s" % err)
        finally:
            ua.close()
        try:
            node.leave(1000)  # hand our keys to the other peer
        except chordsip.ChordsipError:
            pass
    return rc


if __name__ == "__main__":
    sys.exit(main())
