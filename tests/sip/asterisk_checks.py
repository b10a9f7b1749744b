#!/usr/bin/env python3
"""Hostile and edge-case REGISTERs at an Asterisk server whose contacts live
in the chordsip overlay (scripts/asterisk-tests.sh runs it).

The users open0001.. have endpoints without authentication, so that each
request is exactly the bytes written here. Every check prints PASS or FAIL;
the exit status is the number of failures.

    asterisk_checks.py HOST:PORT DOMAIN CONTACT_HOSTPORT MAX_EXPIRES
"""
import random
import re
import socket
import sys
import time

failures = 0


def check(ok, label, detail=""):
    global failures
    print(("PASS  " if ok else "FAIL  ") + label + (f"  ({detail})" if detail else ""))
    if not ok:
        failures += 1


class Sip:
    def __init__(self, server):
        host, port = server.rsplit(":", 1)
        self.server = (host, int(port))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.local = "127.0.0.1:%d" % self.sock.getsockname()[1]

    def request(self, text, timeout=3.0):
        """Sends one request; the final answer (status, headers text) or None."""
        self.sock.sendto(text.encode("latin-1"), self.server)
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.time()))
            try:
                data, _ = self.sock.recvfrom(65535)
            except socket.timeout:
                return None
            reply = data.decode("latin-1")
            m = re.match(r"SIP/2\.0 (\d{3})", reply)
            if m and int(m.group(1)) >= 200:
                return int(m.group(1)), reply
        return None

    def register(self, user, domain, contact, expires_hdr="3600", extra="", call_id=None, cseq=1):
        call_id = call_id or "chk-%08x" % random.getrandbits(32)
        branch = "z9hG4bK-chk-%08x" % random.getrandbits(32)
        msg = (
            f"REGISTER sip:{domain} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {self.local};branch={branch}\r\n"
            f"From: <sip:{user}@{domain}>;tag=chk{random.getrandbits(24)}\r\n"
            f"To: <sip:{user}@{domain}>\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: {cseq} REGISTER\r\n"
            f"Contact: {contact}\r\n"
            f"Expires: {expires_hdr}\r\n"
            f"Max-Forwards: 70\r\n"
            f"{extra}"
            f"Content-Length: 0\r\n\r\n"
        )
        return self.request(msg)


def contact_expires(reply):
    m = re.search(r"^(?:Contact|m):.*?;expires=(\d+)", reply, re.M | re.I)
    return int(m.group(1)) if m else None


def main():
    server, domain, contact_hp, max_expires = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    sip = Sip(server)

    # A malformed Contact: pjsip refuses to parse it (400) or drops it; never 200.
    for i, bad in enumerate(["<sip:open0001@", "<>;expires=60", "sip:@@@;;;="]):
        r = sip.register("open0001", domain, bad)
        check(r is None or r[0] >= 400, f"malformed Contact {i + 1} refused", f"answer {r[0] if r else 'none'}")

    # A User-Agent with quotes, backslashes, a newline's escape and bytes that
    # are not UTF-8 (JSON could not hold it): stored, and read back for the
    # 200's Contact list.
    odd = f'<sip:open0001@{contact_hp};ob>'
    r = sip.register("open0001", domain, odd, extra="User-Agent: caf\xe9 \"q\" \\n \\ \xff\xfe\r\n")
    bound = r is not None and re.search(r"^(?:Contact|m):.*open0001", r[1], re.M | re.I)
    check(r is not None and r[0] == 200 and bound,
          "User-Agent with quotes, backslashes, non-UTF-8: stored and read back",
          f"answer {r[0] if r else 'none'}, binding listed: {bool(bound)}")

    # A huge Expires: pjsip reads 2^32 as 0 (an unregister, 200 with no
    # binding) or the registrar cuts it to maximum_expiration.
    r = sip.register("open0002", domain, f"<sip:open0002@{contact_hp}>", expires_hdr="4294967296")
    got = contact_expires(r[1]) if r else None
    check(r is not None and r[0] == 200 and (got is None or got <= max_expires),
          "Expires 4294967296 capped or read as 0", f"answer {r[0] if r else 'none'}, contact expires {got}, max {max_expires}")
    r = sip.register("open0003", domain, f"<sip:open0003@{contact_hp}>;expires=99999999999999999999")
    got = contact_expires(r[1]) if r else None
    check(r is not None and r[0] in (200, 400) and (r[0] == 400 or (got or 0) <= max_expires),
          "contact expires=10^20 capped or refused", f"answer {r[0] if r else 'none'}, expires {got}")

    # A contact whose record is larger than an overlay value may be
    # (4,096 bytes): the registrar would answer 200 with nothing stored; the
    # module turns that into 400.
    ua = "User-Agent: " + "x" * 4300 + "\r\n"
    r = sip.register("open0004", domain, f"<sip:open0004@{contact_hp}>", extra=ua)
    check(r is not None and 400 <= r[0] < 600 and r[0] != 200, "contact too large to store refused",
          f"answer {r[0] if r else 'none'}")
    if r is not None and r[0] != 200:
        check(not re.search(r"^(?:Contact|m):", r[1], re.M | re.I), "refusal lists no binding")

    # Bytes that are not SIP at all, and an empty datagram.
    for junk in [b"\x00\xff" * 50, b"REGISTER\r\n\r\n", b""]:
        sip.sock.sendto(junk, sip.server)
    time.sleep(0.2)

    # Out-of-order CSeq on the same Call-ID: 500 (RFC 3261 §10.3 step 7).
    cid = "chk-order-%08x" % random.getrandbits(32)
    r1 = sip.register("open0005", domain, f"<sip:open0005@{contact_hp}>", call_id=cid, cseq=10)
    r2 = sip.register("open0005", domain, f"<sip:open0005@{contact_hp}>", call_id=cid, cseq=9)
    r3 = sip.register("open0005", domain, f"<sip:open0005@{contact_hp}>", call_id=cid, cseq=11)
    check(r1 is not None and r1[0] == 200 and r2 is not None and r2[0] == 500
          and r3 is not None and r3[0] == 200,
          "CSeq 10, 9, 11 on one Call-ID: 200, 500, 200",
          f"{[x[0] if x else None for x in (r1, r2, r3)]}")

    # Still serving: a plain REGISTER is stored.
    r = sip.register("open0006", domain, f"<sip:open0006@{contact_hp}>")
    check(r is not None and r[0] == 200, "a valid REGISTER after all that gets 200",
          f"answer {r[0] if r else 'none'}")
    return failures


if __name__ == "__main__":
    sys.exit(main())
