#!/usr/bin/env python3
"""Hostile SIP against a registrar (scripts/kamailio-tests.sh): mutated and
malformed REGISTERs and INVITEs over UDP, bounded and seeded.

    fuzz_register.py --target 127.0.0.1:5060 --count 5000 [--seed 1] [--rate 1000]

The templates are valid requests; each message sent is one of them with
targeted damage (registrar fields: Contact, Expires, q, +sip.instance,
reg-id, Path, CSeq, Call-ID, To) or generic damage (bit flips, truncation,
splices, inserted bytes). Prints one line: messages sent, responses seen;
exits 1 unless every message was sent and at least --min-answered responses
came back (a server that stopped answering, or a fuzzer that sent nothing,
fails here). The caller checks that the server still works afterwards.
"""

import argparse
import random
import socket
import time

DOMAIN = "example.com"


def register(user, contacts, extra="", expires="3600", cseq="1", callid=None):
    callid = callid or "fz-%s-%d" % (user, random.getrandbits(32))
    lines = [
        "REGISTER sip:%s SIP/2.0" % DOMAIN,
        "Via: SIP/2.0/UDP 127.0.0.1:5999;rport;branch=z9hG4bK-%d" % random.getrandbits(40),
        "Max-Forwards: 70",
        "From: <sip:%s@%s>;tag=%d" % (user, DOMAIN, random.getrandbits(30)),
        "To: <sip:%s@%s>" % (user, DOMAIN),
        "Call-ID: %s" % callid,
        "CSeq: %s REGISTER" % cseq,
    ]
    lines += ["Contact: %s" % c for c in contacts]
    if expires is not None:
        lines.append("Expires: %s" % expires)
    if extra:
        lines.append(extra)
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


def invite(user):
    body = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    head = [
        "INVITE sip:%s@%s SIP/2.0" % (user, DOMAIN),
        "Via: SIP/2.0/UDP 127.0.0.1:5999;rport;branch=z9hG4bK-%d" % random.getrandbits(40),
        "Max-Forwards: 70",
        "From: <sip:caller@%s>;tag=1" % DOMAIN,
        "To: <sip:%s@%s>" % (user, DOMAIN),
        "Call-ID: fz-inv-%d" % random.getrandbits(32),
        "CSeq: 1 INVITE",
        "Contact: <sip:caller@127.0.0.1:5999>",
        "Content-Type: application/sdp",
        "Content-Length: %d" % len(body),
    ]
    return ("\r\n".join(head) + "\r\n\r\n" + body).encode()


def targeted(rng):
    """A REGISTER whose registrar fields are hostile but whose framing is sane."""
    user = "fz%d" % rng.randrange(200)
    c = "<sip:%s@192.0.2.%d:5060>" % (user, rng.randrange(1, 255))
    pick = rng.randrange(16)
    if pick == 0:
        return register(user, [c], expires=rng.choice(["-1", "abc", "99999999999999999999", "", "0x10"]))
    if pick == 1:
        return register(user, [c + ";q=" + rng.choice(["2.0", "-1", "0.12345", "q", "1e3", ""])])
    if pick == 2:
        return register(user, [c] * rng.choice([65, 200, 500]))
    if pick == 3:
        return register(user, ["<sip:%s@%s>" % (user, "h" * rng.choice([300, 1200, 5000]))])
    if pick == 4:
        return register(user, ["*"], expires=rng.choice(["0", "60", None]))
    if pick == 5:
        return register(user, ["*", c], expires="0")
    if pick == 6:
        inst = rng.choice(['"<urn:uuid:%s>"' % ("x" * 400), '""', '"<urn:uuid:\x01>"', "noquote"])
        return register(user, [c + ";+sip.instance=%s;reg-id=%s" % (inst, rng.choice(["1", "-5", "x", "4294967296"]))])
    if pick == 7:
        return register(user, [c], extra="Path: " + ",".join(["<sip:p%d@192.0.2.9;lr>" % i for i in range(rng.choice([5, 40, 400]))]))
    if pick == 8:
        return register(user, [c], cseq=rng.choice(["0", "-1", "4294967296", "abc", ""]))
    if pick == 9:
        return register(user, [c], callid=rng.choice(["", "x" * 2000, "\x00\x01"]))
    if pick == 10:
        return register(user, ["<%s>" % rng.choice(["sip:", "sip:@", "tel:", "sip:u@[::1", "sips:u@h:99999", "mailto:x@y", "sip:u@h;transport=" + "t" * 300])])
    if pick == 11:
        return register(user, [c], extra="Contact: <sip:%s@192.0.2.1>;expires=%s" % (user, rng.choice(["-3", "x", "1" * 30])))
    if pick == 12:
        m = register(user, [c]).replace(b"To: <sip:", b"To: <" + rng.choice([b"tel:", b"sip:%00", b"sips:", b"xyz:"]))
        return m
    if pick == 13:
        return register(user, [c.replace("sip:", "sip:\xff\xfe".encode("latin1").decode("utf-8", "surrogateescape"))])
    if pick == 14:
        return invite(user)
    return invite(rng.choice(["", "%00", "a" * 500, "nobody"]))


def generic(rng, base):
    """Byte-level damage to a valid request."""
    m = bytearray(base)
    for _ in range(rng.randrange(1, 6)):
        op = rng.randrange(5)
        if op == 0 and m:
            m[rng.randrange(len(m))] ^= 1 << rng.randrange(8)
        elif op == 1 and m:
            del m[rng.randrange(len(m)):]
        elif op == 2:
            at = rng.randrange(len(m) + 1)
            m[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        elif op == 3 and m:
            a = rng.randrange(len(m))
            m[a:a] = m[a:a + rng.randrange(1, 200)] * rng.randrange(1, 20)
        elif op == 4:
            m = m.replace(b"\r\n", rng.choice([b"\n", b"\r", b"\r\n ", b"\r\n\r\n"]), 1)
    return bytes(m[:65000])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--min-answered", type=int, default=1)
    a = ap.parse_args()
    host, port = a.target.rsplit(":", 1)
    rng = random.Random(a.seed)
    random.seed(a.seed)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    answered = sent = 0
    start = time.monotonic()
    for i in range(a.count):
        if rng.random() < 0.5:
            msg = targeted(rng)
        else:
            msg = generic(rng, targeted(rng) if rng.random() < 0.5 else register("u%d" % i, ["<sip:u@192.0.2.1>"]))
        try:
            sock.sendto(msg, (host, int(port)))
            sent += 1
        except OSError as e:
            print("message %d not sent: %s" % (i, e))
        while True:
            try:
                sock.recv(65535)
                answered += 1
            except BlockingIOError:
                break
        delay = start + (i + 1) / a.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        try:
            sock.recv(65535)
            answered += 1
        except BlockingIOError:
            time.sleep(0.05)
    print("%d of %d hostile messages sent, %d responses" % (sent, a.count, answered))
    if sent != a.count or answered < a.min_answered:
        print("FAILED: want all %d sent and at least %d responses" % (a.count, a.min_answered))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
