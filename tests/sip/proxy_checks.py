#!/usr/bin/env python3
"""Protocol checks and malformed-SIP abuse of one running sip-proxy.

    proxy_checks.py --proxy 127.0.0.1:PORT [--fuzz N] [--seed S] [--registrar-only]

Plays UAC, UAS and edge proxy on loopback UDP sockets of its own:

1. functional checks: OPTIONS to the proxy, REGISTER (multi-value and
   several Contact headers, q, expires, compact and lower-case header names,
   Path, +sip.instance/reg-id, received), the 200 OK's contents, REGISTER
   errors (423 + Min-Expires, 500 out of order, 400, 403, 420), Contact: *,
   stateless forwarding (R-URI rewrite, Via on top with a branch that is the
   same for a retransmission and the CANCEL, Max-Forwards, Route/Path),
   responses routed back by Via, 404 + ACK absorbed, 483, 416;
   routing (RFC 3261 §16.4-16.6): Record-Route on dialog-creating requests
   only, responses passed back with it, our Route entries removed (also
   twice, also across headers), the next Route as next hop, a strict
   router's Request-URI, contacts and foreign domains forwarded as they are
   (no lookup), 480 for a host name, REGISTER outside the served domain 403,
   loops 482 (the --domain given is the one the proxy serves);
2. garbage: random bytes, every truncation of valid requests, oversized
   datagrams and headers, absurd numbers, broken URIs/Vias/quotes, forged
   responses, and N random mutations of valid messages;
3. afterwards the proxy must still answer OPTIONS and REGISTER correctly and
   forward to a binding made before the abuse.

--registrar-only runs the REGISTER rules of 1 and where requests for the
bindings go (highest q first, the other contacts as branches, received,
Path, outbound flows) and nothing else: for a Kamailio with the chordsip
module, whose proxy part is Kamailio's own.

Exit status 0 when every check passed. Standard library only.
"""

import argparse
import os
import random
import re
import socket
import sys
import time

COMPACT = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "l": "content-length",
    "k": "supported",
    "c": "content-type",
}

failures = []
checks = 0
RUN = "-%d" % (int.from_bytes(os.urandom(4), "big") % 1000000)  # fresh AORs on every run


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        failures.append(what)
        print("  FAIL", what)
    return cond


def split_commas(v):
    """Splits a header value at commas outside quotes and <>."""
    out, cur, q, a = [], "", False, False
    i = 0
    while i < len(v):
        ch = v[i]
        if q:
            cur += ch
            if ch == "\\" and i + 1 < len(v):
                cur += v[i + 1]
                i += 1
            elif ch == '"':
                q = False
        elif ch == '"':
            q = True
            cur += ch
        elif ch == "<":
            a = True
            cur += ch
        elif ch == ">":
            a = False
            cur += ch
        elif ch == "," and not a:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
        i += 1
    if cur.strip():
        out.append(cur.strip())
    return out


class Msg:
    def __init__(self, data):
        self.raw = data
        text = data.decode("utf-8", "replace")
        head, _, self.body = text.partition("\r\n\r\n")
        lines = head.split("\r\n")
        self.start = lines[0]
        parts = self.start.split(" ", 2)
        self.status = int(parts[1]) if parts[0] == "SIP/2.0" else None
        self.method = None if self.status else parts[0]
        self.ruri = None if self.status else parts[1]
        self.headers = []  # (lower-case full name, value)
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and self.headers:
                n, v = self.headers[-1]
                self.headers[-1] = (n, v + " " + line.strip())
                continue
            name, _, value = line.partition(":")
            name = name.strip().lower()
            self.headers.append((COMPACT.get(name, name), value.strip()))

    def all(self, name):
        """Every comma-separated value of every `name` header, in order."""
        out = []
        for n, v in self.headers:
            if n == name:
                out.extend(split_commas(v) if name in ("via", "contact", "route", "record-route", "path")
                           else [v])
        return out

    def get(self, name):
        v = self.all(name)
        return v[0] if v else None

    def __repr__(self):
        return self.start


class Peer:
    """A UDP SIP endpoint on loopback."""

    def __init__(self, ip="127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.ip, self.port = self.sock.getsockname()

    def send(self, data, to):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendto(data, to)

    def recv(self, timeout=2.0):
        self.sock.settimeout(timeout)
        try:
            data, src = self.sock.recvfrom(70000)
        except socket.timeout:
            return None
        self.last_src = src
        return Msg(data)

    def drain(self, timeout=0.05):
        n = 0
        while self.recv(timeout) is not None:
            n += 1
        return n


_branch = [0]


def new_branch():
    _branch[0] += 1
    return "z9hG4bK-pc%d-%d" % (random.randrange(1 << 30), _branch[0])


def request(method, ruri, peer, *, branch=None, call_id=None, cseq=1, frm="sip:tester@example.com",
            from_tag="ft1", to=None, to_tag=None, extra=(), body="", via_params=";rport",
            max_forwards=70):
    branch = branch or new_branch()
    call_id = call_id or "pc-%d@test" % random.randrange(1 << 40)
    to = to or ruri
    lines = [
        "%s %s SIP/2.0" % (method, ruri),
        "Via: SIP/2.0/UDP %s:%d;branch=%s%s" % (peer.ip, peer.port, branch, via_params),
        "From: <%s>;tag=%s" % (frm, from_tag),
        "To: <%s>%s" % (to, ";tag=" + to_tag if to_tag else ""),
        "Call-ID: %s" % call_id,
        "CSeq: %d %s" % (cseq, method),
    ]
    if max_forwards is not None:
        lines.append("Max-Forwards: %d" % max_forwards)
    lines.extend(extra)
    lines.append("Content-Length: %d" % len(body.encode()))
    return "\r\n".join(lines) + "\r\n\r\n" + body


def response_to(req, code, reason, extra=(), to_tag="uas1"):
    """A UAS's response: Vias, From, To (+tag), Call-ID, CSeq copied."""
    lines = ["SIP/2.0 %d %s" % (code, reason)]
    for n, v in req.headers:
        if n == "via":
            lines.append("Via: " + v)
    lines.append("From: " + req.get("from"))
    to = req.get("to")
    lines.append("To: " + to + ("" if "tag=" in to else ";tag=" + to_tag))
    lines.append("Call-ID: " + req.get("call-id"))
    lines.append("CSeq: " + req.get("cseq"))
    lines.extend(extra)
    lines.append("Content-Length: 0")
    return "\r\n".join(lines) + "\r\n\r\n"


def contact_params(c):
    uri = c[c.index("<") + 1 : c.index(">")]
    params = {}
    for p in c[c.index(">") + 1 :].split(";"):
        if p.strip():
            k, _, v = p.partition("=")
            params[k.strip().lower()] = v.strip()
    return uri, params


def transact(ua, proxy, msg, timeout=2.0):
    """Sends a request and returns the first final response to it (skipping
    1xx and answers to earlier requests, matched by Call-ID)."""
    call_id = Msg(msg.encode() if isinstance(msg, str) else msg).get("call-id")
    ua.send(msg, proxy)
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = ua.recv(max(0.01, deadline - time.time()))
        if r is None:
            return None
        if r.status and r.status >= 200 and r.get("call-id") == call_id:
            return r
    return None


def functional(proxy, domain, full=True):
    """The REGISTER rules and where requests go; with full, also what only
    sip-proxy promises (OPTIONS, Require/Proxy-Require, Max-Forwards, its
    own Via and Path, Route handling)."""
    print("functional checks" if full else "registrar checks")
    ua = Peer()
    uas = Peer()
    uas2 = Peer()
    edge = Peer()

    # OPTIONS for the proxy itself
    if full:
        r = transact(ua, proxy, request("OPTIONS", "sip:%s:%d" % proxy, ua))
        check(r is not None and r.status == 200, "OPTIONS to the proxy gets 200")
        if r:
            check(";tag=" in r.get("to"), "OPTIONS 200 has a To-tag")
            via = r.get("via")
            check("rport=%d" % ua.port in via and "received=127.0.0.1" in via,
                  "rport and received filled in the reply's Via (RFC 3581): " + via)
            check(r.get("allow") is not None, "OPTIONS 200 has Allow")

    # REGISTER: two Contact headers, one of them multi-valued
    alice = "sip:alice%s@%s" % (RUN, domain)
    cid = "reg-alice-%d" % random.randrange(1 << 30)
    reg = request("REGISTER", "sip:" + domain, ua, call_id=cid, cseq=10, frm=alice, to=alice,
                  extra=[
                      "Contact: <sip:alice@127.0.0.1:%d>;q=0.9;expires=600, "
                      "\"Al, the 2nd\" <sip:alice@127.0.0.1:%d;transport=udp>;q=0.4" % (uas.port, uas2.port),
                      "Contact: <sip:alice@127.0.0.1:9>;q=0.1;expires=120",
                      "Expires: 300",
                  ])
    r = transact(ua, proxy, reg)
    check(r is not None and r.status == 200, "REGISTER with 3 contacts gets 200")
    if r:
        contacts = r.all("contact")
        check(len(contacts) == 3, "200 lists 3 contacts: %r" % contacts)
        by_uri = {contact_params(c)[0]: contact_params(c)[1] for c in contacts}
        p1 = by_uri.get("sip:alice@127.0.0.1:%d" % uas.port, {})
        p2 = by_uri.get("sip:alice@127.0.0.1:%d;transport=udp" % uas2.port, {})
        p3 = by_uri.get("sip:alice@127.0.0.1:9", {})
        check(p1.get("q") == "0.9" and 590 <= int(p1.get("expires", "0")) <= 600,
              "contact 1: q=0.9, its expires param wins: %r" % p1)
        check(p2.get("q") == "0.4" and 290 <= int(p2.get("expires", "0")) <= 300,
              "contact 2: q=0.4, Expires header applies: %r" % p2)
        check(p3.get("q") == "0.1" and 110 <= int(p3.get("expires", "0")) <= 120,
              "contact 3 from a second Contact header: %r" % p3)
        check(";tag=" in r.get("to") and r.get("call-id") == cid and r.get("cseq") == "10 REGISTER",
              "200 copies Call-ID and CSeq and adds a To-tag")
        if full:
            check(r.get("date") is not None, "200 has a Date")

    # a retransmission (same Call-ID and CSeq) is answered 200 again...
    r = transact(ua, proxy, reg)
    check(r is not None and r.status == 200 and len(r.all("contact")) == 3,
          "retransmitted REGISTER: 200 with the bindings again: %r" % r)
    # ...a lower CSeq of the same Call-ID is out of order: 500 (§10.3 step 7)
    r = transact(ua, proxy, reg.replace("CSeq: 10 REGISTER", "CSeq: 9 REGISTER"))
    check(r is not None and r.status == 500, "same Call-ID, lower CSeq: 500: %r" % r)
    r = transact(ua, proxy, reg.replace("CSeq: 10 REGISTER", "CSeq: 11 REGISTER"))
    check(r is not None and r.status == 200 and len(r.all("contact")) == 3, "higher CSeq: 200 (refresh)")
    r = transact(ua, proxy, request("REGISTER", "sip:" + domain, ua, frm=alice, to=alice))
    check(r is not None and r.status == 200 and len(r.all("contact")) == 3,
          "REGISTER without Contact lists the bindings: %r" % (r and r.all("contact")))

    # REGISTER errors
    def reg_status(extra, aor="sip:errors%s@%s" % (RUN, domain), **kw):
        r = transact(ua, proxy, request("REGISTER", "sip:" + domain, ua, frm=aor, to=aor,
                                        extra=extra, **kw))
        return r
    r = reg_status(["Contact: <sip:e@127.0.0.1:9>;expires=30"])
    check(r is not None and r.status == 423 and r.get("min-expires") == "60",
          "expires=30: 423 with Min-Expires: 60: %r" % r)
    r = reg_status(["Contact: <sip:e@127.0.0.1:9>;q=7"])
    check(r is not None and r.status == 400, "q=7: 400: %r" % r)
    r = reg_status(["Contact: *"])
    check(r is not None and r.status == 400, "Contact: * without Expires: 0: 400: %r" % r)
    r = reg_status(["Contact: <sip:e@127.0.0.1:9>;reg-id=1"])
    check(r is not None and r.status == 400, "reg-id without +sip.instance: 400: %r" % r)
    if full:
        r = reg_status(["Contact: <sip:e@127.0.0.1:9>", "Require: path, frobnicate"])
        check(r is not None and r.status == 420 and "frobnicate" in (r.get("unsupported") or "")
              and "path" not in (r.get("unsupported") or ""),
              "Require: frobnicate: 420 with Unsupported: frobnicate: %r" % r)
    # a REGISTER refused for one contact binds none of them (RFC 3261 §10.3)
    half = "sip:half%s@%s" % (RUN, domain)
    r = reg_status(["Contact: <sip:h1@127.0.0.1:9>, <sip:h2@127.0.0.1:9>;+sip.instance=\"<urn:%s>\""
                    % ("x" * 4500)], aor=half)
    check(r is not None and r.status == 400, "oversized +sip.instance: 400: %r" % r)
    r = reg_status([], aor=half)
    check(r is not None and r.status == 200 and not r.all("contact"),
          "REGISTER without Contact (a query): 200, and the refused REGISTER bound nothing: %r"
          % (r and r.all("contact")))
    many = ", ".join("<sip:m%d@127.0.0.1:9>" % i for i in range(17))
    r = reg_status(["Contact: " + many], aor="sip:many%s@%s" % (RUN, domain))
    check(r is not None and r.status == 403, "17 bindings: 403: %r" % r)
    r = reg_status(["Contact: <mailto:e@example.com>"])
    check(r is not None and r.status == 400, "mailto contact: 400: %r" % r)

    # compact and lower-case header names
    bob = "sip:bob%s@%s" % (RUN, domain)
    compact = ("REGISTER sip:%s SIP/2.0\r\n"
               "v: SIP/2.0/UDP 127.0.0.1:%d;branch=%s\r\n"
               "f: <%s>;tag=c1\r\n"
               "t: %s\r\n"
               "i: compact-%d\r\n"
               "cseq: 1 REGISTER\r\n"
               "m: <sip:bob@127.0.0.1:%d>\r\n"
               "EXPIRES: 200\r\n"
               "l: 0\r\n\r\n") % (domain, ua.port, new_branch(), bob, bob, random.randrange(1 << 30), uas.port)
    r = transact(ua, proxy, compact)
    check(r is not None and r.status == 200 and len(r.all("contact")) == 1
          and "expires=" in r.get("contact"), "compact-form REGISTER: 200: %r" % r)
    # Contact: * with Expires: 0 removes bob's bindings
    r = transact(ua, proxy, request("REGISTER", "sip:" + domain, ua, frm=bob, to=bob,
                                    extra=["Contact: *", "Expires: 0"]))
    check(r is not None and r.status == 200 and not r.all("contact"),
          "Contact: * with Expires: 0 removes every binding: %r" % (r and r.all("contact")))
    r = transact(ua, proxy, request("INVITE", bob, ua))
    check(r is not None and r.status == 404, "INVITE for bob after Contact: *: 404: %r" % r)

    # Forwarding: INVITE to alice goes to the q=0.9 contact (a stateful
    # registrar's answers to it come later: from a caller of its own)
    caller = ua if full else Peer()
    inv_branch = new_branch()
    inv = request("INVITE", alice, caller, branch=inv_branch, call_id="inv-%d" % random.randrange(1 << 30),
                  extra=["Contact: <sip:tester@127.0.0.1:%d>" % caller.port, "Content-Type: application/sdp"],
                  body="v=0\r\n", max_forwards=10)
    caller.send(inv, proxy)
    got = uas.recv()
    check(got is not None and got.method == "INVITE", "INVITE forwarded to the highest-q contact")
    if got:
        check(got.ruri == "sip:alice@127.0.0.1:%d" % uas.port, "R-URI rewritten to the contact: " + got.ruri)
    if got and not full:
        # the other contacts are branches, forked to at once; both answer busy
        b = uas2.recv()
        check(b is not None and b.method == "INVITE"
              and b.ruri == "sip:alice@127.0.0.1:%d;transport=udp" % uas2.port,
              "the next contact gets the INVITE as a branch: %r" % (b and b.ruri))
        for peer, m in ((uas, got), (uas2, b)):
            if m is not None:
                peer.send(response_to(m, 486, "Busy Here"), peer.last_src)
    if got and full:
        vias = got.all("via")
        check(len(vias) == 2 and "branch=z9hG4bKcsp" in vias[0] and "%s:%d" % proxy in vias[0],
              "proxy's Via on top: %r" % vias)
        check("rport=%d" % ua.port in vias[1] and "received=127.0.0.1" in vias[1],
              "caller's Via got received/rport: " + vias[1])
        check(got.get("max-forwards") == "9", "Max-Forwards decremented: %s" % got.get("max-forwards"))
        check(got.body == "v=0\r\n" and got.get("content-length") == "5", "body and Content-Length kept")
        first_branch = vias[0].split("branch=")[1].split(";")[0]
        # a retransmission maps to the same branch (§16.11)
        ua.send(inv, proxy)
        again = uas.recv()
        check(again is not None and again.all("via")[0].split("branch=")[1].split(";")[0] == first_branch,
              "retransmitted INVITE forwarded with the same branch")
        # responses are routed back by Via, our Via removed
        uas.send(response_to(got, 180, "Ringing"), uas.last_src)
        r = ua.recv()
        check(r is not None and r.status == 180 and len(r.all("via")) == 1
              and inv_branch in r.get("via"), "180 routed back with the proxy's Via removed: %r" % r)
        # CANCEL: same branch as the INVITE downstream
        cancel = request("CANCEL", alice, ua, branch=inv_branch, call_id=got.get("call-id"),
                         cseq=1, from_tag="ft1")
        ua.send(cancel, proxy)
        c = uas.recv()
        check(c is not None and c.method == "CANCEL"
              and c.all("via")[0].split("branch=")[1].split(";")[0] == first_branch,
              "CANCEL forwarded with the INVITE's branch")
        if c:
            uas.send(response_to(c, 200, "OK"), uas.last_src)
            r = ua.recv()
            check(r is not None and r.status == 200 and "CANCEL" in r.get("cseq"), "200 to CANCEL back")
        uas.send(response_to(got, 487, "Request Terminated"), uas.last_src)
        r = ua.recv()
        check(r is not None and r.status == 487, "487 routed back")
        # a response whose top Via is not ours is dropped
        uas.send(response_to(Msg(inv.encode()), 200, "OK"), uas.last_src)
        check(ua.recv(0.3) is None, "a response without the proxy's Via is dropped")

    if full:
        # Max-Forwards: absent -> 70 added; 0 -> 483; absurd -> capped
        ua.send(request("OPTIONS", alice, ua, max_forwards=None), proxy)
        got = uas.recv()
        check(got is not None and got.get("max-forwards") == "70", "Max-Forwards added as 70 when absent")
        r = transact(ua, proxy, request("OPTIONS", alice, ua, max_forwards=0))
        check(r is not None and r.status == 483, "Max-Forwards: 0: 483: %r" % r)
        ua.send(request("OPTIONS", alice, ua, extra=[], max_forwards=4000000000), proxy)
        got = uas.recv()
        check(got is not None and int(got.get("max-forwards")) <= 70, "absurd Max-Forwards capped")

    # unknown user: 404 with a To-tag, its ACK absorbed; other errors
    b404 = new_branch()
    cid404 = "nf-%d" % random.randrange(1 << 30)
    r = transact(ua, proxy, request("INVITE", "sip:nobody%s@%s" % (RUN, domain), ua, branch=b404, call_id=cid404))
    check(r is not None and r.status == 404 and ";tag=" in r.get("to"), "unknown user: 404 with To-tag")
    if r:
        tag = r.get("to").split("tag=")[1]
        ua.send(request("ACK", "sip:nobody%s@%s" % (RUN, domain), ua, branch=b404, call_id=cid404, to_tag=tag), proxy)
        check(ua.recv(0.3) is None, "ACK to the 404 absorbed (nothing comes back)")
    ua.send(request("ACK", "sip:nobody%s@%s" % (RUN, domain), ua, to_tag="x"), proxy)
    check(ua.recv(0.3) is None, "ACK for an unknown user: nothing comes back")
    if full:
        r = transact(ua, proxy, request("MESSAGE", "mailto:x@example.com", ua))
        check(r is not None and r.status == 416, "mailto: Request-URI: 416: %r" % r)
        r = transact(ua, proxy, request("INVITE", "sip:127.0.0.1:%d" % proxy[1], ua))
        check(r is not None and r.status == 404, "INVITE for the proxy itself: 404: %r" % r)
        r = transact(ua, proxy, request("INVITE", alice, ua, extra=["Proxy-Require: foo"]))
        check(r is not None and r.status == 420, "Proxy-Require: foo: 420: %r" % r)
    uas.drain()

    # received: a contact whose IP is not where the REGISTER came from (NAT)
    carol = "sip:carol%s@%s" % (RUN, domain)
    nat = Peer()
    r = transact(nat, proxy, request("REGISTER", "sip:" + domain, nat, frm=carol, to=carol,
                                     extra=["Contact: <sip:carol@10.255.0.1:5060>"]))
    check(r is not None and r.status == 200, "REGISTER from behind a NAT: 200")
    ua.send(request("INVITE", carol, ua), proxy)
    got = nat.recv()
    check(got is not None and got.ruri == "sip:carol@10.255.0.1:5060",
          "NATed contact reached at the REGISTER's source (received), R-URI = contact")

    if full:
        # RFC 5626 edge proxy: the NATed binding got our Path, naming the flow
        # (echoed to a UA that supports path), and our Record-Route names it too
        r = transact(nat, proxy, request("REGISTER", "sip:" + domain, nat, frm=carol, to=carol,
                                         extra=["Contact: <sip:carol@10.255.0.1:5060>", "Supported: path"]))
        flow_path = (r and r.get("path")) or ""
        m = re.match(r"<sip:(ob[0-9a-f]+)@%s:%d;lr;ob>$" % (re.escape(proxy[0]), proxy[1]), flow_path)
        check(r is not None and r.status == 200 and m is not None,
              "NATed REGISTER: our Path with a flow token stored and echoed: %r" % flow_path)
        if got is not None:
            rr = got.all("record-route")
            check(len(rr) == 1 and re.match(r"<sip:ob[0-9a-f]+@", rr[0]) is not None,
                  "INVITE sent over a flow: our Record-Route names the flow: %r" % rr)
        if m is not None:
            # an in-dialog request routed by the token (from another address): over the flow
            ua.send(request("BYE", "sip:carol@10.255.0.1:5060", ua, to_tag="x",
                            extra=["Route: " + flow_path]), proxy)
            got = nat.recv()
            check(got is not None and got.method == "BYE" and got.get("route") is None,
                  "Route with our flow token: sent over the flow, our Route removed")
            # a token altered by anyone: 403, nothing sent
            token = m.group(1)
            bad = token[:-1] + ("0" if token[-1] != "0" else "1")
            r = transact(ua, proxy, request("BYE", "sip:carol@10.255.0.1:5060", ua, to_tag="x",
                                            extra=["Route: " + flow_path.replace(token, bad)]))
            check(r is not None and r.status == 403 and nat.recv(0.3) is None,
                  "forged flow token: 403, nothing forwarded: %r" % r)

    # RFC 5626 flow: +sip.instance + reg-id go to the flow (received)
    dave = "sip:dave%s@%s" % (RUN, domain)
    flow = Peer()
    inst = "<urn:uuid:00000000-0000-1000-8000-%012d>" % random.randrange(10 ** 12)
    r = transact(flow, proxy, request("REGISTER", "sip:" + domain, flow, frm=dave, to=dave, extra=[
        "Contact: <sip:dave@127.0.0.1:9;ob>;+sip.instance=\"%s\";reg-id=1" % inst,
        "Supported: outbound, path"]))
    check(r is not None and r.status == 200 and inst in (r.get("contact") or "")
          and "reg-id=1" in (r.get("contact") or "") and r.get("require") == "outbound",
          "outbound REGISTER: instance and reg-id echoed, Require: outbound: %r" % (r and r.get("contact")))
    ua.send(request("INVITE", dave, ua), proxy)
    got = flow.recv()
    check(got is not None and got.ruri == "sip:dave@127.0.0.1:9;ob", "outbound flow: sent over the flow")

    # Path (RFC 3327): echoed in the 200, and requests go via the edge proxy
    erin = "sip:erin%s@%s" % (RUN, domain)
    path = "<sip:127.0.0.1:%d;lr>" % edge.port
    r = transact(ua, proxy, request("REGISTER", "sip:" + domain, ua, frm=erin, to=erin, extra=[
        "Contact: <sip:erin@127.0.0.1:%d>" % uas.port, "Path: " + path, "Supported: path"]))
    check(r is not None and r.status == 200 and r.get("path") == path, "Path echoed in the 200: %r" % r)
    ua.send(request("INVITE", erin, ua), proxy)
    got = edge.recv()
    check(got is not None and got.get("route") == path and got.ruri == "sip:erin@127.0.0.1:%d" % uas.port,
          "request for a Path binding sent to the edge with Route: %r" % (got and got.get("route")))

    if full:
    # a loose Route naming this proxy is removed (§16.4)
        ua.send(request("OPTIONS", alice, ua, extra=["Route: <sip:%s:%d;lr>" % proxy]), proxy)
        got = uas.recv()
        check(got is not None and got.get("route") is None, "our own Route entry removed")
        uas.drain()
    return alice, uas


def top_branch(msg):
    return msg.all("via")[0].split("branch=")[1].split(";")[0]


def seen(m):
    """What a routing check reports of a forwarded request."""
    return repr(m and (m.start, m.all("route"), m.all("record-route")))


def routing(proxy, domain):
    print("routing checks")
    ua, uas, nxt = Peer(), Peer(), Peer()
    me = "<sip:%s:%d;lr>" % proxy
    there = "<sip:127.0.0.1:%d;lr>" % nxt.port
    callee = "sip:rr%s@%s" % (RUN, domain)
    contact = "sip:callee@127.0.0.1:%d" % uas.port
    r = transact(ua, proxy, request("REGISTER", "sip:" + domain, ua, frm=callee, to=callee,
                                    extra=["Contact: <%s>" % contact]))
    check(r is not None and r.status == 200, "routing: callee registered: %r" % r)

    # a dialog-creating INVITE: our Record-Route on top of those already there (§16.6 step 4)
    cid = "rr-%d" % random.randrange(1 << 30)
    ua.send(request("INVITE", callee, ua, call_id=cid, extra=[
        "Record-Route: <sip:127.0.0.1:9;lr>", "Contact: <sip:caller@127.0.0.1:%d>" % ua.port]), proxy)
    got = uas.recv()
    check(got is not None and got.ruri == contact and got.all("record-route") == [me, "<sip:127.0.0.1:9;lr>"],
          "INVITE without To-tag: our Record-Route first: %r" % (got and got.all("record-route")))
    if got:
        # the 200 passes back unchanged: the Record-Route the UAS copied is the caller's route set
        uas.send(response_to(got, 200, "OK", extra=[
            "Record-Route: " + ", ".join(got.all("record-route")), "Contact: <%s>" % contact]), uas.last_src)
        r = ua.recv()
        check(r is not None and r.status == 200 and r.all("record-route") == [me, "<sip:127.0.0.1:9;lr>"]
              and len(r.all("via")) == 1, "200 passed back with its Record-Route: %r" % (r and r.all("record-route")))
    # in the dialog: ACK and BYE to the contact, Route = the route set (RFC 3261 §12.2.1.1;
    # the caller's set is the Record-Route reversed, so ours is last when the callee sends)
    for method, cseq in (("ACK", 1), ("BYE", 2)):
        ua.send(request(method, contact, ua, call_id=cid, cseq=cseq, to=callee, to_tag="uas1",
                        extra=["Route: " + me]), proxy)
        got = uas.recv()
        check(got is not None and got.method == method and got.ruri == contact
              and not got.all("route") and not got.all("record-route")
              and "branch=z9hG4bKcsp" in got.all("via")[0],
              "in-dialog %s: our Route removed, sent to %s as is, no Record-Route: %s"
              % (method, contact, seen(got)))
        if got and method == "BYE":
            uas.send(response_to(got, 200, "OK"), uas.last_src)
            r = ua.recv()
            check(r is not None and r.status == 200 and "BYE" in r.get("cseq"), "200 to the in-dialog BYE back")
    uas.drain()

    # Route: <us;lr>, <next;lr>: the next Route is the next hop, the Request-URI unchanged
    ua.send(request("BYE", contact, ua, to_tag="x", extra=["Route: %s, %s" % (me, there)]), proxy)
    got = nxt.recv()
    check(got is not None and got.ruri == contact and got.all("route") == [there],
          "Route: us, next: sent to next with Route: next only: %s" % seen(got))
    # ...also with the values in separate headers, and us twice (record-routed twice)
    ua.send(request("BYE", contact, ua, to_tag="x", extra=["Route: " + me, "Route: %s, %s" % (me, there)]),
            proxy)
    got = nxt.recv()
    check(got is not None and got.ruri == contact and got.all("route") == [there],
          "Route: us / us, next: both of ours removed, sent to next: %s" % seen(got))
    # a served AOR with a Route left after ours: looked up (R-URI := contact), sent to that Route
    ua.send(request("INVITE", callee, ua, extra=["Route: %s, %s" % (me, there)]), proxy)
    got = nxt.recv()
    check(got is not None and got.ruri == contact and got.all("route") == [there],
          "AOR with a Route after ours: looked up, sent to the Route: %s" % seen(got))
    # a strict router upstream: the Request-URI is our Record-Route, the target the last Route (§16.4)
    ua.send(request("BYE", "sip:%s:%d;lr" % proxy, ua, to_tag="x", extra=["Route: <%s>" % contact]), proxy)
    got = uas.recv()
    check(got is not None and got.ruri == contact and not got.all("route"),
          "strict router: R-URI restored from the last Route, sent there: %s" % seen(got))
    ua.send(request("BYE", "sip:%s:%d;lr" % proxy, ua, to_tag="x",
                    extra=["Route: %s, <%s>" % (there, contact)]), proxy)
    got = nxt.recv()
    check(got is not None and got.ruri == contact and got.all("route") == [there],
          "strict router with a Route left: R-URI restored, sent to the Route: %s" % seen(got))

    # a contact address (not a served domain) is forwarded as it is: no lookup
    ua.send(request("BYE", "sip:someone@127.0.0.1:%d;transport=udp" % nxt.port, ua, to_tag="x"), proxy)
    got = nxt.recv()
    check(got is not None and got.ruri == "sip:someone@127.0.0.1:%d;transport=udp" % nxt.port
          and not got.all("record-route") and got.get("max-forwards") == "69",
          "R-URI = a contact address: forwarded to it as it is: %r" % got)
    # record-routed: dialog-creating requests without a To-tag; nothing else
    for method, to_tag, want in (("SUBSCRIBE", None, True), ("REFER", None, True), ("INVITE", "x", False),
                                 ("MESSAGE", None, False), ("OPTIONS", None, False), ("BYE", "x", False)):
        ua.send(request(method, "sip:u@127.0.0.1:%d" % nxt.port, ua, to_tag=to_tag,
                        extra=["Event: presence"] if method == "SUBSCRIBE" else []), proxy)
        got = nxt.recv()
        check(got is not None and got.method == method and (got.all("record-route") == [me]) == want,
              "%s%s: Record-Route %s: %r" % (method, " with To-tag" if to_tag else "",
                                            "added" if want else "absent", got and got.all("record-route")))
    nxt.drain()

    # a foreign domain is not looked up: forwarded as it is, and a name cannot be (no DNS): 480
    r = transact(ua, proxy, request("INVITE", "sip:bob@foreign.invalid", ua))
    check(r is not None and r.status == 480, "foreign domain name: 480 (not a 404 from a lookup): %r" % r)
    # REGISTER outside the served domains: 403 (§10.3 steps 1 and 3)
    for ruri, aor in (("sip:foreign.invalid", "sip:x@foreign.invalid"), ("sip:" + domain, "sip:x@foreign.invalid"),
                      ("sip:" + domain, "sip:x@127.0.0.1"), ("sip:foreign.invalid", "sip:x@" + domain)):
        r = transact(ua, proxy, request("REGISTER", ruri, ua, frm=aor, to=aor,
                                        extra=["Contact: <sip:x@127.0.0.1:9>"]))
        check(r is not None and r.status == 403 and "not our domain" in r.start,
              "REGISTER %s for %s: 403: %r" % (ruri, aor, r))
    r = transact(ua, proxy, request("REGISTER", "sip:%s:%d" % proxy, ua, frm=callee, to=callee))
    check(r is not None and r.status == 200 and r.get("contact"),
          "REGISTER sent to the proxy's address for a served AOR: 200: %r" % r)

    # loops: a user at this proxy's own address (not a domain: it would come back forever)...
    b482, cid482 = new_branch(), "loop-%d" % random.randrange(1 << 30)
    loop_uri = "sip:loop@%s:%d" % proxy
    r = transact(ua, proxy, request("INVITE", loop_uri, ua, branch=b482, call_id=cid482))
    check(r is not None and r.status == 482 and ";tag=" in r.get("to"), "R-URI = a user at the proxy: 482: %r" % r)
    if r:
        ua.send(request("ACK", loop_uri, ua, branch=b482, call_id=cid482, to_tag=r.get("to").split("tag=")[1]),
                proxy)
        check(ua.recv(0.3) is None, "ACK to the 482: nothing comes back")
    # ...a binding whose contact is this proxy...
    looper = "sip:looper%s@%s" % (RUN, domain)
    r = transact(ua, proxy, request("REGISTER", "sip:" + domain, ua, frm=looper, to=looper,
                                    extra=["Contact: <sip:looper@%s:%d>" % proxy]))
    check(r is not None and r.status == 200, "REGISTER of a contact at the proxy itself: 200: %r" % r)
    r = transact(ua, proxy, request("INVITE", looper, ua))
    check(r is not None and r.status == 482, "a binding pointing at the proxy: 482: %r" % r)
    # ...and a request for the proxy itself that is not OPTIONS: 404, with or without our Route
    r = transact(ua, proxy, request("BYE", "sip:%s:%d" % proxy, ua, to_tag="x", extra=["Route: " + me]))
    check(r is not None and r.status == 404, "BYE for the proxy itself with our Route: 404: %r" % r)
    r = transact(ua, proxy, request("OPTIONS", "sip:%s:%d" % proxy, ua, extra=["Route: " + me]))
    check(r is not None and r.status == 200, "OPTIONS for the proxy with our Route: 200: %r" % r)
    uas.drain()
    nxt.drain()


def garbage(proxy, domain, n_mutations, rng):
    print("malformed input")
    bad = Peer()
    sent = 0

    def fire(data):
        nonlocal sent
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        try:
            bad.sock.sendto(data, proxy)
        except OSError:
            return  # e.g. over the UDP limit
        sent += 1
        if sent % 50 == 0:
            bad.drain(0.002)
            time.sleep(0.002)

    valid = [
        request("INVITE", "sip:alice%s@%s" % (RUN, domain), bad, extra=["Contact: <sip:x@127.0.0.1:9>",
                "Content-Type: application/sdp"], body="v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"),
        request("REGISTER", "sip:" + domain, bad, frm="sip:fz@%s" % domain, to="sip:fz@%s" % domain,
                extra=["Contact: \"x\" <sip:fz@127.0.0.1:9>;q=0.5;expires=100;+sip.instance=\"<urn:x>\";reg-id=2",
                       "Path: <sip:127.0.0.1:9;lr>", "Expires: 100"]),
        request("OPTIONS", "sip:%s:%d" % proxy, bad),
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bKcsp00, SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\n"
        "From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n" % proxy,
    ]
    fixed = [
        b"", b"\r\n\r\n", b"\r\n", b"\x00" * 100, b"INVITE", b"INVITE sip:a@b SIP/2.0", b"SIP/2.0",
        b"SIP/2.0 200 OK\r\n\r\n", b"SIP/2.0 999 Huh\r\nVia: x\r\n\r\n", b"SIP/2.0 20 OK\r\n\r\n",
        b"\xff\xfe\xfd" * 500, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0\r\n" + b"X: y\r\n" * 300 + b"\r\n",
        b"INVITE sip:a@b SIP/2.0\r\nVia: " + b"A" * 20000 + b"\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKq\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP [::1\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:99999\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1\x00:9\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0\r\n Via: folded-first\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKlf\nFrom: <sip:a@b>;tag=1\n"
        b"To: <sip:a@b>\nCall-ID: lf\nCSeq: 1 INVITE\n\n",
        b"INVITE sip:a@b SIP/2.0\rVia: cr-only\r\r",
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKcsp1\r\n\r\n",
        ("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bKcsp1\r\n\r\n" % proxy).encode(),
        ("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bKcsp1\r\nVia: garbage\r\n\r\n" % proxy).encode(),
        ("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bKcsp1,SIP/2.0/UDP evil.example.com:5060\r\n\r\n"
         % proxy).encode(),
        ("SIP/2.0 200 OK\r\nv: SIP/2.0/UDP %s:%d;branch=z9hG4bKcsp1,,,,\r\n\r\n" % proxy).encode(),
    ]
    for f in fixed:
        fire(f)
    # header values with absurd or broken contents
    weird = [
        "Content-Length: 999999", "Content-Length: -1", "Content-Length: 18446744073709551616",
        "CSeq: 99999999999999999999999 INVITE", "CSeq: INVITE", "CSeq: 1", "CSeq: 1 REGISTER",
        "Max-Forwards: 99999999999999999999999", "Max-Forwards: -1", "Max-Forwards: x",
        "Expires: 99999999999999999999999", "Expires: -5", "Expires: abc",
        "Contact: <<<<<<", "Contact: \"unterminated <sip:x@y>", "Contact: <sip:x@y", "Contact: ,,,,,,",
        "Contact: *, <sip:x@127.0.0.1:9>", "Contact: <sip:x@127.0.0.1:9>;expires=abc;q=;reg-id=x",
        "Contact: <sip:x@127.0.0.1:9>;+sip.instance", "Contact: <sip:x@[::1>",
        "Contact: " + ", ".join("<sip:c%d@127.0.0.1:9>" % i for i in range(100)),
        "Contact: <sip:" + "u" * 3000 + "@127.0.0.1:9>",
        "To: <sip:unterminated", "To: \"\\\"\\\"\\\"", "To: <>", "To: <sip:@>", "To: <sip:a@b:0>",
        "From: ;;;;;;;;", "Call-ID: ", "Call-ID: " + "c" * 5000,
        "Via: SIP/2.0/UDP", "Via: SIP/3.0/UDP 127.0.0.1:9", "Via: SIP/2.0/UDP 127.0.0.1:9;branch",
        "Via: SIP/2.0/UDP 127.0.0.1:9;rport=abc;received=zz", "Route: <sip:%s:%d;lr>, <sip:evil.example;lr>" % proxy,
        "Route: <sip:127.0.0.1:9;lr" , "Path: " + ", ".join("<sip:p%d@127.0.0.1:9;lr>" % i for i in range(40)),
        "Require: " + ",".join(["x" * 50] * 50), "Proxy-Require: " + "y" * 3000,
        "X-Folded: a\r\n b\r\n\tc", "Supported: ,,,", "m: \"a,b\" <sip:a@127.0.0.1:9>, <sip:b@127.0.0.1:9>",
        "Content-Type: \x01\x02",
    ]
    for method in ("INVITE", "REGISTER", "ACK", "BYE"):
        for w in weird:
            base = request(method, "sip:alice%s@%s" % (RUN, domain) if method != "REGISTER" else "sip:" + domain, bad,
                           frm="sip:fz@%s" % domain, to="sip:fz@%s" % domain)
            name = w.split(":", 1)[0].lower()
            lines = [ln for ln in base.split("\r\n") if ln and ln.split(":", 1)[0].lower() != name]
            fire("\r\n".join(lines[:1] + [w] + lines[1:]) + "\r\n\r\n")
    for ruri in ["sip:" + "a" * 2000 + "@x", "sip:", "sip:@", "sip:a@[::1", "tel:", "sip:a@b:70000",
                 "sip:a%zz@b", "sip:a@b;;;;;", "sip:a@b?x=y", "\xff\xfe", "sips:a@127.0.0.1"]:
        fire(request("INVITE", ruri, bad))
    # every truncation of each valid message
    for v in valid:
        b = v.encode()
        for i in range(len(b)):
            fire(b[:i])
    # oversized datagrams
    fire(request("INVITE", "sip:alice%s@%s" % (RUN, domain), bad, body="x" * 60000))
    fire(request("INVITE", "sip:alice%s@%s" % (RUN, domain), bad, extra=["X-Big: " + "y" * 8100]))
    fire(b"A" * 65507)
    # random bytes and random mutations of valid messages
    for _ in range(200):
        fire(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 1500))))
    alphabet = b" \r\n\t:;,<>\"@=[]\x00\xff0123456789zZ"
    for _ in range(n_mutations):
        b = bytearray(rng.choice(valid).encode())
        for _ in range(rng.randrange(1, 8)):
            op = rng.randrange(4)
            pos = rng.randrange(len(b)) if b else 0
            if op == 0 and b:
                b[pos] = rng.choice(alphabet)
            elif op == 1:
                b[pos:pos] = bytes([rng.choice(alphabet)]) * rng.randrange(1, 40)
            elif op == 2 and b:
                del b[pos:pos + rng.randrange(1, 40)]
            else:
                b = b[:pos]
        fire(bytes(b))
    bad.drain(0.2)
    print("  %d malformed or mutated datagrams sent" % sent)


def still_alive(proxy, domain, alice, uas):
    print("after the abuse")
    ua = Peer()
    r = transact(ua, proxy, request("OPTIONS", "sip:%s:%d" % proxy, ua), timeout=5)
    check(r is not None and r.status == 200, "OPTIONS still answered 200: %r" % r)
    frank = "sip:frank%s@%s" % (RUN, domain)
    r = transact(ua, proxy, request("REGISTER", "sip:" + domain, ua, frm=frank, to=frank,
                                    extra=["Contact: <sip:frank@127.0.0.1:%d>;expires=300" % ua.port]))
    check(r is not None and r.status == 200 and "expires=" in (r.get("contact") or ""),
          "REGISTER still answered 200 with the binding: %r" % r)
    uas.drain()
    ua.send(request("INVITE", alice, ua), proxy)
    got = uas.recv(3)
    check(got is not None and got.method == "INVITE", "a binding made before the abuse still forwards")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxy", required=True, help="ip:port of the sip-proxy")
    ap.add_argument("--registrar-only", action="store_true",
                    help="only the REGISTER rules and where requests then go (for a server "
                    "with the Kamailio module, whose proxy part is Kamailio's own)")
    ap.add_argument("--domain", default="example.com")
    ap.add_argument("--fuzz", type=int, default=3000, help="random mutations to send")
    ap.add_argument("--seed", type=int, default=4)
    a = ap.parse_args()
    host, port = a.proxy.rsplit(":", 1)
    proxy = (host, int(port))
    random.seed(a.seed)
    rng = random.Random(a.seed)
    start = time.time()
    alice, uas = functional(proxy, a.domain, full=not a.registrar_only)
    if not a.registrar_only:
        routing(proxy, a.domain)
        garbage(proxy, a.domain, a.fuzz, rng)
        still_alive(proxy, a.domain, alice, uas)
    print("%d checks, %d failed, %.1f s" % (checks, len(failures), time.time() - start))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
