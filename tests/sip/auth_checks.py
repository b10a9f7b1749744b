#!/usr/bin/env python3
"""Digest authentication of REGISTER at one running registrar (sip-proxy or
Kamailio with the chordsip module), with raw UDP datagrams:

    auth_checks.py --registrar 127.0.0.1:PORT --user USER --password PW
                   --other USER2 [--domain example.com] [--stale-after S]

1. no Authorization: 401 with a Digest challenge (realm = the domain);
2. the right answer: 200, and the binding is listed;
3. a wrong password: 403 (or 401), no binding stored;
4. USER's right credentials for USER2's AOR: 403;
5. bad input, each answered 4xx (400, 401 or 403), never 200, and the
   registrar still answers afterwards: a malformed Authorization, a 10 kB
   nonce, a parameter repeated, a Basic Authorization, a SHA-512 answer;
6. with --stale-after S: a right answer on a nonce older than S seconds
   (a replay after expiry) gets 401 with stale=true; a fresh one then 200.

Exit status 0 when every check passed. Standard library only.
"""

import argparse
import hashlib
import os
import re
import socket
import sys
import time

failures = []
checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        failures.append(what)
        print("  FAIL", what)
    return cond


class UA:
    def __init__(self, registrar):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        host, port = registrar.rsplit(":", 1)
        self.to = (host, int(port))
        self.cseq = 0

    def register(self, user, domain, authorization=None, expires=60):
        self.cseq += 1
        branch = "z9hG4bK" + os.urandom(6).hex()
        call_id = "auth-%s-%d@127.0.0.1" % (os.urandom(4).hex(), self.cseq)
        lines = [
            "REGISTER sip:%s SIP/2.0" % domain,
            "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport" % (self.port, branch),
            "From: <sip:%s@%s>;tag=%s" % (user, domain, os.urandom(4).hex()),
            "To: <sip:%s@%s>" % (user, domain),
            "Call-ID: %s" % call_id,
            "CSeq: %d REGISTER" % self.cseq,
            "Contact: <sip:%s@127.0.0.1:%d>;expires=%d" % (user, self.port, expires),
            "Max-Forwards: 70",
        ]
        if authorization is not None:
            lines.append("Authorization: " + authorization)
        lines += ["Content-Length: 0", "", ""]
        self.sock.sendto("\r\n".join(lines).encode(), self.to)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data, _ = self.sock.recvfrom(65535)
            except socket.timeout:
                break
            text = data.decode("utf-8", "replace")
            if branch in text and text.startswith("SIP/2.0 "):
                status = int(text.split(" ", 2)[1])
                if status >= 200:
                    return status, text
        return None, ""


def header(text, name):
    m = re.search(r"^%s:\s*(.*)$" % re.escape(name), text, re.M | re.I)
    return m.group(1).strip() if m else ""


def answer(challenge, user, password, domain, alg=None, nonce=None):
    p = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    alg = alg or p.get("algorithm", "MD5")
    h = hashlib.md5 if alg.upper() == "MD5" else hashlib.sha256
    uri = "sip:%s" % domain
    nonce = nonce or p["nonce"]
    ha1 = h(("%s:%s:%s" % (user, p["realm"], password)).encode()).hexdigest()
    ha2 = h(("REGISTER:%s" % uri).encode()).hexdigest()
    resp = h(("%s:%s:00000001:0a4f113b:auth:%s" % (ha1, nonce, ha2)).encode()).hexdigest()
    return (
        'Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", '
        'algorithm=%s, qop=auth, nc=00000001, cnonce="0a4f113b"' % (user, p["realm"], nonce, uri, resp, alg)
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--registrar", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--other", required=True, help="another provisioned user")
    ap.add_argument("--domain", default="example.com")
    ap.add_argument("--stale-after", type=float, default=0)
    a = ap.parse_args()
    ua = UA(a.registrar)
    d = a.domain

    status, text = ua.register(a.user, d)
    check(status == 401, "no credentials: 401 (got %s)" % status)
    ch = header(text, "WWW-Authenticate")
    check(ch.startswith("Digest ") and 'realm="%s"' % d in ch, "a Digest challenge for the realm: %r" % ch)
    if not ch:
        print("no challenge: cannot go on")
        return 1

    status, text = ua.register(a.user, d, answer(ch, a.user, a.password, d))
    check(status == 200, "right password: 200 (got %s)" % status)
    contacts = " ".join(re.findall(r"^(?:Contact|m):(.*)$", text, re.M | re.I))
    check("127.0.0.1:%d" % ua.port in contacts, "the 200 lists the binding: %r" % contacts)

    status, _ = ua.register(a.user, d, answer(ch, a.user, a.password + "x", d))
    check(status in (401, 403), "wrong password: 401 or 403 (got %s)" % status)

    status, _ = ua.register(a.other, d, answer(ch, a.user, a.password, d))
    check(status == 403, "%s's credentials for %s's AOR: 403 (got %s)" % (a.user, a.other, status))

    good = answer(ch, a.user, a.password, d)
    bad = {
        "malformed": 'Digest username="%s", realm=' % a.user,
        "unterminated quote": 'Digest username="%s, realm="%s", nonce="x"' % (a.user, d),
        "10 kB nonce": answer(ch, a.user, a.password, d, nonce="n" * 10000),
        "parameter repeated": good + ', username="%s"' % a.other,
        "Basic": "Basic " + "YWxhZGRpbjpvcGVuc2VzYW1l",
        "SHA-512 answer": good.replace("algorithm=MD5", "algorithm=SHA-512"),
        "empty": "",
    }
    for what, value in bad.items():
        status, _ = ua.register(a.user, d, value)
        check(status is not None and 400 <= status < 500, "%s Authorization: 4xx (got %s)" % (what, status))
    status, _ = ua.register(a.user, d, answer(ch, a.user, a.password, d))
    check(status == 200, "still answering after bad input: 200 (got %s)" % status)

    if a.stale_after > 0:
        status, text = ua.register(a.user, d)
        old = header(text, "WWW-Authenticate")
        time.sleep(a.stale_after + 1.5)
        status, text = ua.register(a.user, d, answer(old, a.user, a.password, d))
        check(status == 401, "a nonce replayed after it expired: 401 (got %s)" % status)
        check("stale=true" in header(text, "WWW-Authenticate").lower(), "the new challenge says stale=true")
        fresh = header(text, "WWW-Authenticate")
        if fresh:
            status, _ = ua.register(a.user, d, answer(fresh, a.user, a.password, d))
            check(status == 200, "the fresh challenge answered: 200 (got %s)" % status)

    print("%d checks, %d failed" % (checks, len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
