"""One writer key per device (``device_key_file``): made on first start with
mode 0600, kept across restarts, so a restarted P2P user agent replaces and
removes its own bindings; without it the pre-crash binding stays beside the
new one and ``Contact: *`` cannot remove it."""

from __future__ import annotations

import os
import stat

import chordsip
from conftest import FAST, make_ring

UA_OPTS = {k: v for k, v in FAST.items() if k != "writer_key"}
AOR = "sip:device@p2p.example"


def contacts(bindings):
    return sorted(b.contact for b in bindings)


def ua(ring, **opts):
    n = chordsip.Node(dict(UA_OPTS, **opts))
    n.join(ring[0].addr)
    return n


def test_key_file_is_made_once_with_mode_0600(tmp_path):
    path = tmp_path / "ua.key"
    with chordsip.Node(dict(UA_OPTS, device_key_file=str(path))) as n:
        assert n.config("device_key_file") == "set"
    text = path.read_text()
    assert len(text.strip()) == 64 and int(text, 16) >= 0 and text.endswith("\n")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with chordsip.Node(dict(UA_OPTS, device_key_file=str(path))):
        pass
    assert path.read_text() == text  # read again, never replaced
    assert [p for p in os.listdir(tmp_path) if p != "ua.key"] == []  # no temporary left


def test_a_restarted_ua_replaces_and_removes_its_own_bindings(tmp_path):
    ring = make_ring(3)
    try:
        key = str(tmp_path / "phone.key")
        # Before the crash: registered from one port.
        first = ua(ring, device_key_file=key)
        first.register(AOR, "call-1", 1, ["sip:device@127.0.0.1:5071"], expires=300)
        first.close()  # a crash: no unregister
        # After the restart, from another port, with a new Call-ID.
        again = ua(ring, device_key_file=key)
        again.register(AOR, "call-2", 1, ["sip:device@127.0.0.1:5072"], expires=300)
        seen = ring[1].lookup_aor(AOR, all=True)
        assert contacts(ring[2].lookup_aor_async(AOR, all=True).result(10)) == contacts(seen)
        assert ring[2].lookup_aor_async(AOR).result(10) == []  # not a trusted writer
        assert contacts(seen) == ["sip:device@127.0.0.1:5071", "sip:device@127.0.0.1:5072"]
        assert len({b.owner for b in seen}) == 1  # one device, one owner
        # The same contact again replaces, whatever the Call-ID.
        again.register(AOR, "call-3", 1, ["sip:device@127.0.0.1:5072"], expires=120)
        assert len(ring[2].lookup_aor(AOR, all=True)) == 2
        # Contact: * removes the pre-crash binding too.
        again.register(AOR, "call-3", 2, [], star=True, expires=0)
        assert ring[1].lookup_aor(AOR, all=True) == []
        again.close()

        # Without a kept key the old binding outlives Contact: *.
        other = "sip:forgetful@p2p.example"
        first = ua(ring)
        first.register(other, "c-1", 1, ["sip:forgetful@127.0.0.1:5081"], expires=300)
        first.close()
        again = ua(ring)
        again.register(other, "c-2", 1, ["sip:forgetful@127.0.0.1:5082"], expires=300)
        again.register(other, "c-2", 2, [], star=True, expires=0)
        assert contacts(ring[1].lookup_aor(other, all=True)) == ["sip:forgetful@127.0.0.1:5081"]
        again.close()
    finally:
        for n in ring:
            n.close()
