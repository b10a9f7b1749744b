#!/usr/bin/env python3
"""Two PJSUA2 user agents that know only a SIP domain and a DNS server
(scripts/hybrid-tests.sh): they find the domain's SIP servers by DNS SRV
(RFC 3263, `_sip._udp.<domain>`, records the chordsip overlay publishes),
register with digest credentials, call each other, and after servers were
killed re-register through the servers that remain and call again.

    pjsua2_hybrid.py --nameserver 127.0.0.53 --domain hybrid.test \\
        --agent alice,PASSWORD,127.0.0.31 --agent bob,PASSWORD,127.0.0.32 \\
        --control DIR [--media 3] [--dns-ttl 5]

Each agent is a process of its own (one Endpoint per process) driven over
its standard input; this driver starts both and runs:

1. both register (`sip:<user>@<domain>` as registrar URI, resolved by the
   Endpoint's own DNS resolver: `uaConfig.nameserver`, no proxy) and report
   which server answered (the 200's source address);
2. the first calls the second (`sip:<user2>@<domain>`): 200, --media
   seconds of RTP both ways (to and from the null audio device), BYE;
3. writes DIR/ready ("<server of agent 1> <server of agent 2>") and waits for
   DIR/killed ("<kill epoch> <DNS-updated epoch> <killed servers...>"),
   which the script writes once it killed servers and the DNS no longer
   lists them;
4. lets the resolver's cache run out (the records' TTL, --dns-ttl, after the
   DNS update: pjsip re-resolves only then; it does not fail over on a UDP
   timeout before Timer F, 32 s), asks both agents to register again
   (setRegistration(True)) and requires a 200 from a server not killed;
   prints the time from the kill to each 200;
5. the second calls the first: 200, media, BYE.

Prints one line per step ("PASS ..." / "FAIL ...") and exits 0 when all
passed. Every wait is bounded.
"""

import argparse
import os
import queue
import select
import subprocess
import sys
import threading
import time


# ---------------------------------------------------------------- agent ----

def agent_main(argv):
    import pjsua2 as pj
    from pjsua2_media import connect_call_audio

    ap = argparse.ArgumentParser()
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--address", required=True, help="loopback IP to bind SIP and RTP to")
    ap.add_argument("--port", type=int, default=5060)
    ap.add_argument("--domain", required=True)
    ap.add_argument("--nameserver", required=True)
    ap.add_argument("--log", default="")
    a = ap.parse_args(argv)

    def say(*words):
        print(" ".join(str(w) for w in words), flush=True)

    class Call(pj.Call):
        def __init__(self, acc, role, call_id=pj.PJSUA_INVALID_ID):
            super().__init__(acc, call_id)
            self.role = role
            self.confirmed_at = None
            self.hangup_after = None
            self.done = False
            self.code = 0
            self.rx = self.tx = 0

        def onCallState(self, prm):
            ci = self.getInfo()
            self.code = ci.lastStatusCode
            if ci.state == pj.PJSIP_INV_STATE_CONFIRMED and self.confirmed_at is None:
                self.confirmed_at = time.time()
                say("call-confirmed", self.role, ci.remoteUri)
            elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                self.done = True

        def onCallMediaState(self, prm):
            connect_call_audio(self, pj)

        def sample(self):
            """RTP packets so far (RTCP statistics of the audio stream)."""
            try:
                ci = self.getInfo()
                for i, mi in enumerate(ci.media):
                    if mi.type == pj.PJMEDIA_TYPE_AUDIO:
                        st = self.getStreamStat(i)
                        self.rx, self.tx = st.rtcp.rxStat.pkt, st.rtcp.txStat.pkt
            except pj.Error:
                pass

    class Acc(pj.Account):
        def __init__(self):
            super().__init__()
            self.calls = []

        def onRegState(self, prm):
            src = prm.rdata.srcAddress if prm.code // 100 == 2 else "-"
            say("reg", prm.code, src or "-", prm.expiration)

        def onIncomingCall(self, prm):
            c = Call(self, "callee", prm.callId)
            self.calls.append(c)
            op = pj.CallOpParam()
            op.statusCode = 200
            c.answer(op)

    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    # the only thing this agent knows of the servers: the DNS server (port 53:
    # pjsua passes no port to pj_dns_resolver_set_ns)
    cfg.uaConfig.nameserver.append(a.nameserver)
    cfg.uaConfig.userAgent = "pjsua2-hybrid-" + a.user
    # no silence suppression: the null device sends silence, and every
    # 20 ms frame must still go out as RTP (the driver counts them)
    cfg.medConfig.noVad = True
    cfg.logConfig.level = 5 if a.log else 0
    cfg.logConfig.consoleLevel = 0
    if a.log:
        cfg.logConfig.filename = a.log
    ep.libInit(cfg)
    tc = pj.TransportConfig()
    tc.boundAddress = a.address
    tc.port = a.port
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tc)
    ep.libStart()
    ep.audDevManager().setNullDev()
    say("ready", ep.libVersion().full)

    ac = pj.AccountConfig()
    ac.idUri = "sip:%s@%s" % (a.user, a.domain)
    ac.regConfig.registrarUri = "sip:%s" % a.domain
    ac.regConfig.timeoutSec = 300
    ac.regConfig.retryIntervalSec = 2
    ac.regConfig.firstRetryIntervalSec = 1
    ac.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", a.user, 0, a.password))
    ac.mediaConfig.transportConfig.boundAddress = a.address
    acc = Acc()
    acc.create(ac)

    buf = b""
    last_sample = 0.0
    running = True
    while running:
        ep.libHandleEvents(10)
        now = time.time()
        if now - last_sample > 0.2:
            last_sample = now
            for c in acc.calls:
                if c.confirmed_at is not None and not c.done:
                    c.sample()
        for c in list(acc.calls):
            if c.hangup_after is not None and c.confirmed_at is not None and not c.done \
                    and now - c.confirmed_at >= c.hangup_after:
                c.hangup_after = None
                c.sample()
                c.hangup(pj.CallOpParam())
            if c.done:
                acc.calls.remove(c)
                say("call-done", c.role, c.code, "confirmed=%d" % (c.confirmed_at is not None),
                    "rx=%d" % c.rx, "tx=%d" % c.tx)
        r, _, _ = select.select([0], [], [], 0)
        if not r:
            continue
        chunk = os.read(0, 4096)
        if not chunk:
            break  # the driver went away
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            cmd = line.decode().split()
            if not cmd:
                continue
            try:
                if cmd[0] == "register":
                    acc.setRegistration(True)
                elif cmd[0] == "call":
                    c = Call(acc, "caller")
                    c.hangup_after = float(cmd[2])
                    acc.calls.append(c)
                    prm = pj.CallOpParam(True)
                    c.makeCall(cmd[1], prm)
                elif cmd[0] == "quit":
                    running = False
            except pj.Error as e:
                say("error", cmd[0], e.status, e.reason)
    for c in acc.calls:
        try:
            c.hangup(pj.CallOpParam())
        except pj.Error:
            pass
    acc.calls = []
    del acc
    ep.libDestroy(pj.PJSUA_DESTROY_NO_NETWORK)
    return 0


# --------------------------------------------------------------- driver ----

class Agent:
    def __init__(self, name, password, address, a):
        self.name, self.address = name, address
        log = os.path.join(a.control, "pjsua-%s.log" % name)
        self.p = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "agent", "--user", name,
             "--password", password, "--address", address, "--domain", a.domain,
             "--nameserver", a.nameserver, "--log", log],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.q = queue.Queue()
        self.at = 0.0
        self.transcript = open(os.path.join(a.control, "agent-%s.out" % name), "w")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.transcript.write("%.3f %s" % (time.time(), line))
            self.transcript.flush()
            self.q.put((time.time(), line.split()))
        self.q.put((time.time(), None))

    def send(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def expect(self, pred, secs):
        """The first event for which pred is true, within secs; else None.
        self.at: when it arrived."""
        end = time.time() + secs
        while True:
            left = end - time.time()
            if left <= 0:
                return None
            try:
                self.at, ev = self.q.get(timeout=left)
            except queue.Empty:
                return None
            if ev is None:
                return None
            if pred(ev):
                return ev

    def stop(self):
        try:
            self.send("quit")
            self.p.wait(timeout=5)
        except Exception:
            self.p.kill()
            self.p.wait()


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "agent":
        return agent_main(sys.argv[2:])
    ap = argparse.ArgumentParser()
    ap.add_argument("--nameserver", required=True)
    ap.add_argument("--domain", required=True)
    ap.add_argument("--agent", action="append", required=True, help="user,password,address")
    ap.add_argument("--control", required=True)
    ap.add_argument("--media", type=float, default=3)
    ap.add_argument("--dns-ttl", type=float, default=5)
    ap.add_argument("--kill-wait", type=float, default=90)
    a = ap.parse_args()
    if len(a.agent) != 2:
        ap.error("two --agent options")
    os.makedirs(a.control, exist_ok=True)
    results = []

    def check(name, ok, text):
        results.append(ok)
        print("%s  %-22s %s" % ("PASS" if ok else "FAIL", name, text), flush=True)
        return ok

    agents = [Agent(*spec.split(","), a) for spec in a.agent]
    one, two = agents
    try:
        # 1. registration through whichever server DNS gave
        servers = {}
        for ag in agents:
            ev = ag.expect(lambda e: e[0] == "reg" and e[1] != "401" and not e[1].startswith("1"), 20)
            ok = ev is not None and ev[1] == "200"
            servers[ag.name] = ev[2] if ok else "-"
            check("pjsua2-register-" + ag.name, ok,
                  "sip:%s@%s registered through %s (found by DNS SRV)" % (ag.name, a.domain, servers[ag.name])
                  if ok else "no 200 within 20 s: %s" % (ev,))
        if not all(results):
            return 1

        # RTP both ways: at least half of the 50 packets a second of 20 ms frames
        min_rtp = int(25 * a.media)

        def call(caller, callee, label):
            t0 = time.time()
            caller.send("call sip:%s@%s %g" % (callee.name, a.domain, a.media))
            limit = a.media + 40
            ev1 = caller.expect(lambda e: e[0] in ("call-done", "error"), limit)
            ev2 = callee.expect(lambda e: e[0] == "call-done", 10)

            def stats(ev):
                return dict(w.split("=") for w in ev[3:]) if ev and ev[0] == "call-done" else {}
            s1, s2 = stats(ev1), stats(ev2)
            ok = (ev1 is not None and ev1[0] == "call-done" and s1.get("confirmed") == "1"
                  and ev2 is not None and s2.get("confirmed") == "1"
                  and int(s1.get("rx", 0)) >= min_rtp and int(s2.get("rx", 0)) >= min_rtp)
            return check(label, ok, "%s -> sip:%s@%s: 200, %g s of media (RTP packets received: caller %s, callee %s), BYE; %.1f s"
                         % (caller.name, callee.name, a.domain, a.media, s1.get("rx", "?"), s2.get("rx", "?"),
                            time.time() - t0) if ok
                         else "caller %s, callee %s (RTP wanted: %d each way)" % (ev1, ev2, min_rtp))

        call(one, two, "pjsua2-call")

        # 2. the script kills servers; we wait for its word
        with open(os.path.join(a.control, "ready.tmp"), "w") as f:
            f.write("%s %s\n" % (servers[one.name], servers[two.name]))
        os.rename(os.path.join(a.control, "ready.tmp"), os.path.join(a.control, "ready"))
        killed_file = os.path.join(a.control, "killed")
        end = time.time() + a.kill_wait
        while not os.path.exists(killed_file) and time.time() < end:
            time.sleep(0.05)
        if not check("pjsua2-kill-notice", os.path.exists(killed_file),
                     "the script killed servers and the DNS dropped them" if os.path.exists(killed_file)
                     else "no notice within %g s" % a.kill_wait):
            return 1
        words = open(killed_file).read().split()
        t_kill, t_dns, dead = float(words[0]), float(words[1]), set(words[2:])

        # 3. re-registration once the agents' DNS caches can no longer hold the dead
        wake = t_dns + a.dns_ttl + 0.3
        if wake > time.time():
            time.sleep(wake - time.time())
        t_ask = time.time()
        for ag in agents:
            ag.send("register")
        for ag in agents:
            ev = ag.expect(lambda e: e[0] in ("reg", "error") and e[1] != "401", 45)
            t = ag.at
            ok = ev is not None and ev[0] == "reg" and ev[1] == "200" and ev[2] not in dead
            check("pjsua2-reregister-" + ag.name, ok,
                  "200 through %s (was %s, killed: %s) %.2f s after the kill (DNS updated after %.2f s, "
                  "REGISTER asked after the %g s TTL, 401 and 200 in %.0f ms)"
                  % (ev[2], servers[ag.name], " ".join(sorted(dead)), t - t_kill, t_dns - t_kill,
                     a.dns_ttl, 1000 * (t - t_ask)) if ok else "got %s" % (ev,))
        call(two, one, "pjsua2-call-after-kill")
    finally:
        for ag in agents:
            ag.stop()
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
