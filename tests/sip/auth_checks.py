#!/usr/bin/env python3
"""SIP digest authentication checks of one registrar (scripts/kamailio-tests.sh),
over UDP on loopback, standard library only.

    auth_checks.py --target 127.0.0.1:PORT --user U --password P --other V
                   --contact 127.0.0.1:UAS [--domain example.com] [--nonce-expire 3]

U is a provisioned user with password P, V another provisioned user; both
AORs get (or keep) a binding with the contact hostport given, so the caller
can check afterwards that they are still called. Checks, each a request
and the exact answer expected:

1. no credentials: 401 with WWW-Authenticate: Digest, the AOR's domain as
   realm, qop="auth", algorithm=MD5; the right password: 200 with the
   contact; a wrong one: 403 "Forbidden"; an unknown user: the same 403
   (nobody learns which users exist); U's credentials for V's AOR: 403
   "Forbidden (not your AOR)"; a domain not the server's: 403 "Forbidden
   (not our domain)", no challenge;
2. bad input: malformed Authorization headers (no parameters, missing
   nonce/response, unbalanced quotes, Basic, a response of the wrong length,
   qop without nc/cnonce, binary bytes, thousands of parameters, a 5,000
   character user name, two headers) and a 10 kB nonce: each 400 or 401,
   never a lost answer;
3. a replayed REGISTER whose nonce has expired (after --nonce-expire
   seconds and one more): 401 with stale=true, and the new challenge
   answered: 200;
4. afterwards the server still answers: U and V register again (200).

Prints one line per check and "auth-checks: N passed, M failed"; exit
status 0 when every check passed.
"""

import argparse
import hashlib
import os
import re
import socket
import sys
import time

failures = []
passed = 0


def check(cond, what, detail=""):
    global passed
    if cond:
        passed += 1
        print("  ok    %s%s" % (what, (" (" + detail + ")") if detail else ""))
    else:
        failures.append(what)
        print("  FAIL  %s%s" % (what, (": " + detail) if detail else ""))
    return cond


class Ua:
    """One UDP socket and the requests of one test run."""

    def __init__(self, target, domain, contact):
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.domain = domain
        self.contact = contact
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind(("127.0.0.1", 0))
        self.local = "127.0.0.1:%d" % self.s.getsockname()[1]
        self.seq = 0

    def register(self, user, domain=None, auth=None, cseq=None, callid=None, timeout=3.0):
        """Sends one REGISTER for user@domain; returns (status, reason, headers
        dict of lists, raw text) or None when nothing came within timeout."""
        domain = domain or self.domain
        self.seq += 1
        callid = callid or "ac-%s-%d-%s" % (user[:20], self.seq, os.urandom(4).hex())
        lines = [
            "REGISTER sip:%s SIP/2.0" % domain,
            "Via: SIP/2.0/UDP %s;branch=z9hG4bK-ac%s" % (self.local, os.urandom(6).hex()),
            "Max-Forwards: 70",
            "From: <sip:%s@%s>;tag=%s" % (user, domain, os.urandom(4).hex()),
            "To: <sip:%s@%s>" % (user, domain),
            "Call-ID: %s" % callid,
            "CSeq: %d REGISTER" % (cseq or self.seq),
            "Contact: <sip:%s@%s>;expires=3600" % (user, self.contact),
            "Expires: 3600",
        ]
        for a in ([auth] if isinstance(auth, (str, bytes)) else auth or []):
            lines.append(a if isinstance(a, str) else a.decode("latin-1"))
        lines.append("Content-Length: 0")
        msg = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return self.exchange(msg, callid, timeout)

    def exchange(self, msg, callid, timeout):
        # Retransmit like a UA over UDP (RFC 3261 timer A): 0.5 s, 1 s, ...
        deadline = time.monotonic() + timeout
        interval = 0.5
        while time.monotonic() < deadline:
            self.s.sendto(msg, self.target)
            until = min(deadline, time.monotonic() + interval)
            while True:
                left = until - time.monotonic()
                if left <= 0:
                    break
                self.s.settimeout(left)
                try:
                    data, _ = self.s.recvfrom(65535)
                except socket.timeout:
                    break
                r = parse(data)
                if r and callid in r[2].get("call-id", [""])[0] and r[0] >= 200:
                    return r
            interval *= 2
        return None


def parse(data):
    text = data.decode("latin-1")
    head = text.split("\r\n\r\n", 1)[0].split("\r\n")
    m = re.match(r"SIP/2\.0 (\d{3}) ?(.*)", head[0])
    if not m:
        return None
    hdrs = {}
    for line in head[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            hdrs.setdefault(k.strip().lower(), []).append(v.strip())
    return int(m.group(1)), m.group(2), hdrs, text


def challenge_of(r):
    """The WWW-Authenticate parameters of a 401 as a dict, or {}."""
    if not r or r[0] != 401:
        return {}
    v = r[2].get("www-authenticate", [""])[0]
    if not v.startswith("Digest "):
        return {}
    return {k.lower(): (q if q else t) for k, q, t in
            re.findall(r'([A-Za-z-]+)=(?:"([^"]*)"|([^,\s]+))', v[7:])}


def md5(s):
    return hashlib.md5(s.encode()).hexdigest()


def digest(user, realm, password, nonce, uri="sip:example.com", nc="00000001", cnonce=None):
    """An Authorization value answering a qop=auth MD5 challenge (RFC 2617)."""
    cnonce = cnonce or os.urandom(4).hex()
    ha1 = md5("%s:%s:%s" % (user, realm, password))
    ha2 = md5("REGISTER:%s" % uri)
    resp = md5("%s:%s:%s:%s:auth:%s" % (ha1, nonce, nc, cnonce, ha2))
    return ('Authorization: Digest username="%s", realm="%s", nonce="%s", uri="%s", '
            'response="%s", algorithm=MD5, qop=auth, nc=%s, cnonce="%s"'
            % (user, realm, nonce, uri, resp, nc, cnonce))


def status(r):
    return "no answer" if r is None else "%d %s" % (r[0], r[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--other", required=True, help="another provisioned user")
    ap.add_argument("--other-password", required=True)
    ap.add_argument("--contact", required=True, help="hostport of the bindings made")
    ap.add_argument("--domain", default="example.com")
    ap.add_argument("--nonce-expire", type=float, default=0, help="0: skip the stale check")
    a = ap.parse_args()
    ua = Ua(a.target, a.domain, a.contact)
    u, pw, d = a.user, a.password, a.domain

    def authed(user, password, aor=None, expect=200, reason=None, what=""):
        """Challenge, then answer it; checks the final status (and reason)."""
        aor = aor or user
        callid = "ac-%s-%s" % (aor, os.urandom(4).hex())
        r = ua.register(aor, callid=callid, cseq=1)
        ch = challenge_of(r)
        if not check(bool(ch.get("nonce")), "%s: challenged first" % what, status(r)):
            return None
        r = ua.register(aor, callid=callid, cseq=2,
                        auth=digest(user, ch["realm"], password, ch["nonce"]))
        ok = r is not None and r[0] == expect and (reason is None or r[1] == reason)
        check(ok, "%s: %d%s" % (what, expect, (' "%s"' % reason) if reason else ""), status(r))
        return r

    print("== challenge, passwords, users, AORs, domains")
    r = ua.register(u)
    ch = challenge_of(r)
    check(r is not None and r[0] == 401 and ch.get("realm") == d and ch.get("qop") == "auth"
          and ch.get("algorithm") == "MD5" and ch.get("nonce") and "stale" not in ch,
          "no credentials: 401 Digest realm=%s qop=auth algorithm=MD5" % d, status(r))
    r = authed(u, pw, what="right password")
    if r is not None:
        check(any("sip:%s@%s" % (u, a.contact) in c for c in r[2].get("contact", [])),
              "right password: 200 lists the contact", str(r[2].get("contact")))
    authed(u, pw + "x", expect=403, reason="Forbidden", what="wrong password")
    authed("nosuchuser" + os.urandom(3).hex(), "x", expect=403, reason="Forbidden",
           what="unknown user")
    authed(u, pw, aor=a.other, expect=403, reason="Forbidden (not your AOR)",
           what="%s's credentials for %s's AOR" % (u, a.other))
    r = ua.register(u, domain="not-" + d)
    check(r is not None and r[0] == 403 and r[1] == "Forbidden (not our domain)",
          "foreign domain: 403 \"Forbidden (not our domain)\"", status(r))

    print("== malformed Authorization headers and a 10 kB nonce: 400 or 401, always an answer")
    r = ua.register(u)
    nonce = challenge_of(r).get("nonce", "x")
    good = digest(u, d, pw, nonce)
    bad = [
        ("no parameters", "Authorization: Digest"),
        ("no nonce or response", 'Authorization: Digest username="%s", realm="%s"' % (u, d)),
        ("unbalanced quotes", 'Authorization: Digest username="%s, realm="%s", nonce="%s' % (u, d, nonce)),
        ("Basic", "Authorization: Basic dXNlcjpwYXNzd29yZA=="),
        ("response of the wrong length", re.sub(r'response="[0-9a-f]+"', 'response="abc"', good)),
        ("qop without nc and cnonce", re.sub(r", nc=\S+, cnonce=\"[^\"]*\"", "", good)),
        ("binary bytes", "Authorization: Digest username=\"\x01\x02\xff\xfe\", realm=\"%s\", nonce=\"\x00\"" % d),
        ("5,000 parameters", "Authorization: Digest " + ",".join("p%d=x" % i for i in range(5000))),
        ("5,000 character user name", good.replace('username="%s"' % u, 'username="%s"' % ("u" * 5000))),
        ("a user name with control characters", good.replace('username="%s"' % u, 'username="%s\x07"' % u)),
        ("two Authorization headers, the first malformed",
         [good.replace('response="', 'response=x"'), good]),
        ("a nonce not ours", good.replace('nonce="%s"' % nonce, 'nonce="%s"' % ("Zm9v" * 8))),
        ("a 10 kB nonce", good.replace('nonce="%s"' % nonce, 'nonce="%s"' % ("A" * 10240))),
    ]
    for what, hdr in bad:
        r = ua.register(u, auth=hdr)
        check(r is not None and r[0] in (400, 401), "%s: 400 or 401" % what, status(r))

    if a.nonce_expire > 0:
        print("== a nonce replayed after it expired: 401 stale=true")
        callid = "ac-stale-%s" % os.urandom(4).hex()
        r = ua.register(u, callid=callid, cseq=1)
        ch = challenge_of(r)
        hdr = digest(u, d, pw, ch.get("nonce", "x"))
        r = ua.register(u, callid=callid, cseq=2, auth=hdr)
        check(r is not None and r[0] == 200, "fresh nonce: 200", status(r))
        time.sleep(a.nonce_expire + 1.0)
        r = ua.register(u, callid=callid, cseq=3, auth=hdr)
        ch = challenge_of(r)
        check(r is not None and r[0] == 401 and ch.get("stale", "").lower() == "true",
              "the same credentials %.0f s later: 401 stale=true" % (a.nonce_expire + 1), status(r))
        if ch.get("nonce"):
            r = ua.register(u, callid=callid, cseq=4, auth=digest(u, d, pw, ch["nonce"]))
            check(r is not None and r[0] == 200, "the new challenge answered: 200", status(r))

    print("== afterwards")
    authed(u, pw, what="%s registers again" % u)
    authed(a.other, a.other_password, what="%s registers again" % a.other)
    print("auth-checks: %d passed, %d failed" % (passed, len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
