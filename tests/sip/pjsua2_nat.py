#!/usr/bin/env python3
"""PJSUA2 user agents behind NAT (scripts/nat-tests.sh): each agent runs in
a private network namespace behind its own masquerading router, asks the
overlay for a media relay through the public peer it attaches to (a
chordsip client handle: `find_peers("relay")`), registers at that peer's
SIP proxy (RFC 5626 outbound: the proxy stores its own Path with the flow
token, so calls from anywhere reach the agent through it), keeps its NAT
binding open with keep-alives, and calls with ICE over the relay (TURN).

    pjsua2_nat.py --control DIR --domain nat.test --media 3 --idle 15 \\
        --expect-relay 10.78.0.5:3478 \\
        --agent 'NAMESPACE name=alice password=P address=192.168.1.2 proxy=10.78.0.1:5060 \\
                 peer=10.78.0.1:4000 ka=3 turn=1' ...

Agents (one process each, one Endpoint per process) are started with
`ip netns exec NAMESPACE`; the driver talks to them over pipes. The first
agent is the caller, the second a callee with keep-alives, the third a
callee without keep-alives (its NAT binding must lapse: the negative
control that shows the keep-alives are what keeps the binding).

1. every agent lists the relays the overlay knows (least loaded first)
   and takes the first one's TURN server; the first must be --expect-relay;
2. every agent registers (200, digest credentials);
3. nobody sends anything for --idle seconds (longer than the NAT's UDP
   timeout, which the script lowered);
4. the caller calls the second agent: 200, --media seconds of RTP both
   ways through the relay (ICE), BYE; RTP packets counted from PJSUA2's
   call statistics;
5. the caller calls the third agent: no INVITE may reach it (its NAT
   dropped the binding), the call is cancelled after 6 s.

Prints PASS/FAIL lines and exits 0 when all passed. Every wait is bounded.
"""

import argparse
import os
import queue
import select
import subprocess
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


# ---------------------------------------------------------------- agent ----

def agent_main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--address", required=True)
    ap.add_argument("--domain", required=True)
    ap.add_argument("--proxy", required=True, help="ip:port of the SIP proxy to attach to")
    ap.add_argument("--peer", default="", help="overlay address of that peer (finds the relay)")
    ap.add_argument("--client-key-file", default="")
    ap.add_argument("--ka", type=int, default=0, help="keep-alive interval, s (0: none)")
    ap.add_argument("--turn-user", default="")
    ap.add_argument("--turn-password", default="")
    ap.add_argument("--log", default="")
    a = ap.parse_args(argv)

    def say(*words):
        print(" ".join(str(w) for w in words), flush=True)

    turn = ""
    if a.peer:
        sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
        import chordsip

        key = open(a.client_key_file, "rb").read().rstrip(b"\n")
        try:
            with chordsip.Client(a.peer, key=key, timeout_ms=3000) as c:
                relays = c.find_peers("relay", 4)
        except chordsip.ChordsipError as e:
            say("relays-error", type(e).__name__, str(e).replace(" ", "_"))
            relays = []
        say("relays", *["%s,load=%d/%d,turn=%s" % (r.addr, r.load, r.capacity, r.attrs.get("turn", "-"))
                        for r in relays])
        if relays:
            turn = relays[0].attrs.get("turn", "")

    import pjsua2 as pj
    from pjsua2_media import connect_call_audio

    class Call(pj.Call):
        def __init__(self, acc, role, call_id=pj.PJSUA_INVALID_ID):
            super().__init__(acc, call_id)
            self.role = role
            self.confirmed_at = None
            self.hangup_after = None
            self.started = time.time()
            self.done = False
            self.code = 0
            self.rx = self.tx = 0

        def onCallState(self, prm):
            ci = self.getInfo()
            self.code = ci.lastStatusCode
            if ci.state == pj.PJSIP_INV_STATE_CONFIRMED and self.confirmed_at is None:
                self.confirmed_at = time.time()
                say("call-confirmed", self.role)
            elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                self.done = True

        def onCallMediaState(self, prm):
            connect_call_audio(self, pj)

        def sample(self):
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
            say("reg", prm.code, prm.expiration)

        def onIncomingCall(self, prm):
            say("incoming")
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
    cfg.uaConfig.userAgent = "pjsua2-nat-" + a.name
    cfg.medConfig.noVad = True
    cfg.logConfig.level = 5 if a.log else 0
    cfg.logConfig.consoleLevel = 0
    if a.log:
        cfg.logConfig.filename = a.log
    ep.libInit(cfg)
    tc = pj.TransportConfig()
    tc.boundAddress = a.address
    tc.port = 5060
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tc)
    ep.libStart()
    ep.audDevManager().setNullDev()
    say("ready", ep.libVersion().full, "turn=" + (turn or "-"))

    ac = pj.AccountConfig()
    ac.idUri = "sip:%s@%s" % (a.name, a.domain)
    ac.regConfig.registrarUri = "sip:%s" % a.proxy
    ac.regConfig.timeoutSec = 600
    ac.regConfig.retryIntervalSec = 2
    ac.regConfig.firstRetryIntervalSec = 1
    ac.sipConfig.proxies.append("sip:%s;lr" % a.proxy)
    ac.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", a.name, 0, a.password))
    # RFC 5626 outbound (reg-id, +sip.instance, ;ob); keep-alives to the proxy
    ac.natConfig.sipOutboundUse = 1
    ac.natConfig.udpKaIntervalSec = a.ka
    if turn:
        ac.natConfig.iceEnabled = True
        ac.natConfig.turnEnabled = True
        ac.natConfig.turnServer = turn
        ac.natConfig.turnConnType = pj.PJ_TURN_TP_UDP
        ac.natConfig.turnUserName = a.turn_user
        ac.natConfig.turnPasswordType = 0
        ac.natConfig.turnPassword = a.turn_password
        # behind NAT with no STUN server: the private host address is of no
        # use to the other side; the relayed candidate is the only one
        ac.natConfig.iceMaxHostCands = 0
        ac.natConfig.iceNoRtcp = True
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
            if c.hangup_after is not None and not c.done:
                up = c.confirmed_at is not None and now - c.confirmed_at >= c.hangup_after
                # an unanswered call is cancelled after as long
                never = c.confirmed_at is None and now - c.started >= c.hangup_after
                if up or never:
                    c.hangup_after = None
                    c.sample()
                    try:
                        c.hangup(pj.CallOpParam())
                    except pj.Error as e:
                        say("error", "hangup", e.status, e.reason)
            if c.done:
                acc.calls.remove(c)
                say("call-done", c.role, c.code, "confirmed=%d" % (c.confirmed_at is not None),
                    "rx=%d" % c.rx, "tx=%d" % c.tx)
        r, _, _ = select.select([0], [], [], 0)
        if not r:
            continue
        chunk = os.read(0, 4096)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            cmd = line.decode().split()
            if not cmd:
                continue
            try:
                if cmd[0] == "call":
                    c = Call(acc, "caller")
                    c.hangup_after = float(cmd[2])
                    acc.calls.append(c)
                    c.makeCall(cmd[1], pj.CallOpParam(True))
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
    def __init__(self, spec, a):
        ns, *pairs = spec.split()
        o = dict(p.split("=", 1) for p in pairs)
        self.name = o["name"]
        log = os.path.join(a.control, "pjsua-%s.log" % self.name)
        cmd = ["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__), "agent",
               "--name", self.name, "--password", o["password"], "--address", o["address"],
               "--domain", a.domain, "--proxy", o["proxy"], "--ka", o.get("ka", "0"), "--log", log]
        if o.get("peer"):
            cmd += ["--peer", o["peer"], "--client-key-file", a.client_key_file]
        if o.get("turn") == "1":
            cmd += ["--turn-user", a.turn_user, "--turn-password", a.turn_password]
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=open(os.path.join(a.control, "agent-%s.err" % self.name), "w"),
                                  text=True, bufsize=1)
        self.q = queue.Queue()
        self.transcript = open(os.path.join(a.control, "agent-%s.out" % self.name), "w")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.transcript.write("%.3f %s" % (time.time(), line))
            self.transcript.flush()
            self.q.put(line.split())
        self.q.put(None)

    def send(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def expect(self, pred, secs):
        end = time.time() + secs
        while True:
            left = end - time.time()
            if left <= 0:
                return None
            try:
                ev = self.q.get(timeout=left)
            except queue.Empty:
                return None
            if ev is None:
                return None
            if ev and pred(ev):
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
    ap.add_argument("--control", required=True)
    ap.add_argument("--domain", required=True)
    ap.add_argument("--agent", action="append", required=True)
    ap.add_argument("--client-key-file", required=True)
    ap.add_argument("--turn-user", required=True)
    ap.add_argument("--turn-password", required=True)
    ap.add_argument("--expect-relay", required=True, help="the TURN server the least loaded relay announces")
    ap.add_argument("--media", type=float, default=3)
    ap.add_argument("--idle", type=float, default=15)
    a = ap.parse_args()
    if len(a.agent) != 3:
        ap.error("three --agent options: caller, callee with keep-alives, callee without")
    os.makedirs(a.control, exist_ok=True)
    results = []

    def check(name, ok, text):
        results.append(ok)
        print("%s  %-24s %s" % ("PASS" if ok else "FAIL", name, text), flush=True)
        return ok

    agents = [Agent(spec, a) for spec in a.agent]
    caller, callee, lapsed = agents
    try:
        for ag in (caller, callee):
            ev = ag.expect(lambda e: e[0] in ("relays", "relays-error"), 15)
            ok = ev is not None and ev[0] == "relays" and len(ev) > 1 and ev[1].endswith("turn=" + a.expect_relay)
            check("nat-find-relay-" + ag.name, ok,
                  "through its public peer, least loaded first: %s" % " ".join(ev[1:]) if ok
                  else "relays: %s (wanted %s first)" % (ev, a.expect_relay))
        for ag in agents:
            ev = ag.expect(lambda e: e[0] == "reg" and e[1] not in ("401", "407") and not e[1].startswith("1"), 20)
            check("nat-register-" + ag.name, ev is not None and ev[1] == "200",
                  "registered from behind NAT (outbound flow through its proxy)" if ev and ev[1] == "200"
                  else "no 200 within 20 s: %s" % (ev,))
        if not all(results):
            return 1

        time.sleep(a.idle)
        min_rtp = int(25 * a.media)

        t0 = time.time()
        caller.send("call sip:%s@%s %g" % (callee.name, a.domain, a.media))
        ev1 = caller.expect(lambda e: e[0] in ("call-done", "error"), a.media + 40)
        ev2 = callee.expect(lambda e: e[0] == "call-done", 10)

        def stats(ev):
            return dict(w.split("=") for w in ev[3:]) if ev and ev[0] == "call-done" else {}
        s1, s2 = stats(ev1), stats(ev2)
        ok = (s1.get("confirmed") == "1" and s2.get("confirmed") == "1"
              and int(s1.get("rx", 0)) >= min_rtp and int(s2.get("rx", 0)) >= min_rtp)
        check("nat-relayed-call", ok,
              "%s -> %s after %g s idle (keep-alives held the NAT binding): 200, %g s of RTP via the relay "
              "(packets received: caller %s, callee %s), BYE; %.1f s"
              % (caller.name, callee.name, a.idle, a.media, s1.get("rx"), s2.get("rx"), time.time() - t0) if ok
              else "caller %s, callee %s (RTP wanted: %d each way)" % (ev1, ev2, min_rtp))

        caller.send("call sip:%s@%s 6" % (lapsed.name, a.domain))
        ev1 = caller.expect(lambda e: e[0] in ("call-done", "error"), 40)
        inc = lapsed.expect(lambda e: e[0] == "incoming", 1)
        ok = inc is None and ev1 is not None and stats(ev1).get("confirmed") == "0"
        check("nat-no-keepalive", ok,
              "%s kept no keep-alives: its NAT dropped the binding, no INVITE reached it (caller: %s)"
              % (lapsed.name, " ".join(ev1[1:3]) if ev1 else "-") if ok
              else "caller %s, callee saw %s" % (ev1, inc))
    finally:
        for ag in agents:
            ag.stop()
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
