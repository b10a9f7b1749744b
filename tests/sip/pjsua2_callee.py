#!/usr/bin/env python3
"""A PJSUA2 user agent registering with a password through a registrar that
authenticates (scripts/kamailio-tests.sh), then receiving one call.

    pjsua2_callee.py --registrar 127.0.0.1:PORT --user bob --password PW
                     [--domain example.com] [--port 25080] [--wait 30]

1. an account with a wrong password must be refused: its REGISTER is
   challenged and the answer with that password gets 403;
2. an account with the right password registers (401, then 200 with the
   digest PJSUA2 computes: RFC 8760 order, MD5 here); prints
   "registered 200" (the caller then places the call);
3. the first incoming call is answered 200 and must be hung up by the
   caller within --wait seconds: prints "call done".

Everything on 127.0.0.1 (signalling and media), one Endpoint in this
process, bounded waits. Exit status 0 when all three happened. Needs PyPI's
pjsua2-python (scripts/kamailio-tests.sh installs it into target/pyenv).
"""

import argparse
import sys
import time

import pjsua2 as pj
from pjsua2_media import connect_call_audio


class Call(pj.Call):
    def __init__(self, acc, call_id=pj.PJSUA_INVALID_ID):
        super().__init__(acc, call_id)
        self.state = None

    def onCallState(self, prm):
        ci = self.getInfo()
        self.state = ci.state
        print("call %s %d" % (ci.stateText, ci.lastStatusCode), flush=True)

    def onCallMediaState(self, prm):
        connect_call_audio(self, pj)


class Acc(pj.Account):
    def __init__(self, name):
        super().__init__()
        self.name = name
        self.reg = None
        self.calls = []

    def onRegState(self, prm):
        self.reg = prm.code
        print("%s: registration %d %s" % (self.name, prm.code, prm.reason), flush=True)

    def onIncomingCall(self, prm):
        c = Call(self, prm.callId)
        self.calls.append(c)  # keep a reference
        op = pj.CallOpParam()
        op.statusCode = 200
        c.answer(op)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--registrar", required=True, help="ip:port of the registrar")
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--domain", default="example.com")
    ap.add_argument("--port", type=int, default=25080)
    ap.add_argument("--wait", type=float, default=30)
    a = ap.parse_args()

    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.logConfig.level = 0
    cfg.logConfig.consoleLevel = 0
    ep.libInit(cfg)
    tc = pj.TransportConfig()
    tc.boundAddress = "127.0.0.1"
    tc.port = a.port
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tc)
    ep.libStart()
    ep.audDevManager().setNullDev()
    print("PJSUA2 %s" % ep.libVersion().full, flush=True)

    def pump(cond, secs):
        end = time.time() + secs
        while time.time() < end and not cond():
            ep.libHandleEvents(20)
        return cond()

    def account(name, password, register):
        ac = pj.AccountConfig()
        ac.idUri = "sip:%s@%s" % (a.user, a.domain)
        ac.regConfig.registrarUri = "sip:%s" % a.domain  # R-URI; sent via the proxy
        ac.regConfig.registerOnAdd = register
        ac.regConfig.retryIntervalSec = 0  # a refused REGISTER is not retried
        ac.sipConfig.proxies.append("sip:%s;lr" % a.registrar)
        ac.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", a.user, 0, password))
        ac.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        acc = Acc(name)
        acc.create(ac)
        return acc

    ok = {"wrong password refused": False, "registered": False, "call done": False}
    wrong = account("wrong password", a.password + "-wrong", True)
    if pump(lambda: wrong.reg is not None and wrong.reg != 401 and wrong.reg // 100 != 1, 10):
        ok["wrong password refused"] = wrong.reg == 403
    try:
        wrong.setRegistration(False)
    except pj.Error:
        pass  # not registered: nothing to remove
    del wrong

    acc = account("right password", a.password, True)
    if pump(lambda: acc.reg is not None and acc.reg // 100 not in (1,) and acc.reg != 401, 10) \
            and acc.reg == 200:
        ok["registered"] = True
        print("registered 200", flush=True)
        ok["call done"] = pump(
            lambda: bool(acc.calls) and acc.calls[0].state == pj.PJSIP_INV_STATE_DISCONNECTED,
            a.wait)
    acc.calls = []
    del acc
    ep.libDestroy(pj.PJSUA_DESTROY_NO_NETWORK)
    for what, good in ok.items():
        print("%s: %s" % (what, "yes" if good else "NO"), flush=True)
    print("pjsua2 callee %s" % ("OK" if all(ok.values()) else "FAILED"), flush=True)
    return 0 if all(ok.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
