"""SIP credentials kept in the overlay: an administrator adds a user with the
``chordsip user`` CLI; registrar nodes (and a client handle given the key)
read the HA1 and authenticate REGISTERs with it."""

from __future__ import annotations

import hashlib
import re
import subprocess

import pytest

import chordsip
from conftest import CLI, FAST

REALM = "example.com"


def _keygen(path) -> str:
    """Makes a key file; returns its public half (what `keygen` prints)."""
    r = subprocess.run([str(CLI), "keygen", "--out", str(path)], capture_output=True, text=True, check=True)
    return r.stderr.split()[-1]


def _answer(challenge: str, user: str, password: str, uri: str = "sip:example.com") -> str:
    """A UA's Authorization for a 401's challenge (qop=auth)."""
    p = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    h = hashlib.md5 if p["algorithm"] == "MD5" else hashlib.sha256
    ha1 = h(("%s:%s:%s" % (user, p["realm"], password)).encode()).hexdigest()
    ha2 = h(("REGISTER:%s" % uri).encode()).hexdigest()
    resp = h(("%s:%s:00000001:c0ffee:auth:%s" % (ha1, p["nonce"], ha2)).encode()).hexdigest()
    return (
        'Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", '
        'algorithm=%s, qop=auth, nc=00000001, cnonce="c0ffee"'
        % (user, p["realm"], p["nonce"], uri, resp, p["algorithm"])
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    if not CLI.is_file():
        pytest.fail("%s is missing: build it with `cargo build --release`" % CLI)
    d = tmp_path_factory.mktemp("creds")
    admin_pub = _keygen(d / "admin.key")
    _keygen(d / "creds.key")
    key_hex = (d / "creds.key").read_text().strip()
    opts = dict(FAST, credentials_key=key_hex, credential_admins=admin_pub)
    nodes = []
    try:
        for i in range(3):
            n = chordsip.Node(dict(opts))
            nodes.append(n)
            n.join(nodes[0].addr if i else None)
        add = [
            str(CLI), "user", "add", "alice@" + REALM, "--bootstrap", nodes[0].addr,
            "--admin-key-file", str(d / "admin.key"), "--credentials-key-file", str(d / "creds.key"),
        ]
        r = subprocess.run(add, input="wonderland\n", capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        yield nodes, key_hex, admin_pub
    finally:
        for n in nodes:
            n.close()


def test_registrars_read_the_ha1_the_admin_stored(setup):
    nodes, key_hex, admin_pub = setup
    want = chordsip.digest_ha1("alice", REALM, "wonderland")
    assert want == hashlib.md5(b"alice:example.com:wonderland").hexdigest()
    for n in nodes:
        assert n.credential_ha1("alice", REALM) == want
        assert n.credential_ha1("alice", REALM, "SHA-256") == chordsip.digest_ha1(
            "alice", REALM, "wonderland", "SHA-256"
        )
        assert n.credential_ha1("nobody", REALM) is None
    with pytest.raises(chordsip.InvalidArgument):
        nodes[0].credential_ha1("alice", REALM, "SHA-512")
    client = chordsip.Client(nodes[1].addr, key=FAST["client_key"].encode())
    with client:
        with pytest.raises(chordsip.Unauthorized):
            client.credential_ha1("alice", REALM)
        client.set_credential_trust(key_hex, [admin_pub])
        assert client.credential_ha1("alice", REALM) == want
        # another credentials key cannot open the record
        client.set_credential_trust("11" * 32, admin_pub)
        with pytest.raises(chordsip.Unauthorized):
            client.credential_ha1("alice", REALM)


def test_a_node_authenticates_registers(setup):
    nodes, _, _ = setup
    aor = "sip:alice@" + REALM
    first = nodes[0].authenticate("REGISTER", aor)
    assert (first.verdict, first.status) == (chordsip.AuthVerdict.CHALLENGE, 401)
    assert first.challenge.startswith('Digest realm="example.com", nonce="')
    good = _answer(first.challenge, "alice", "wonderland")
    ok = nodes[0].authenticate("REGISTER", aor, good)
    assert (ok.verdict, ok.status, ok.challenge) == (chordsip.AuthVerdict.OK, 200, "")
    wrong = nodes[0].authenticate("REGISTER", aor, _answer(first.challenge, "alice", "guess"))
    assert (wrong.verdict, wrong.status) == (chordsip.AuthVerdict.FORBIDDEN, 403)
    other = nodes[0].authenticate("REGISTER", "sip:bob@" + REALM, good)
    assert (other.verdict, other.status) == (chordsip.AuthVerdict.NOT_YOURS, 403)
    huge = good.replace('cnonce="c0ffee"', 'cnonce="%s"' % ("x" * 10000))
    bad = nodes[0].authenticate("REGISTER", aor, huge)
    assert (bad.verdict, bad.status) == (chordsip.AuthVerdict.MALFORMED, 400)
    garbage = nodes[0].authenticate("REGISTER", aor, 'Digest username="alice", realm=')
    assert garbage.status == 400
    # another node issued no such nonce (nodes make their own nonce secret):
    # challenged again, so the UA can answer there
    elsewhere = nodes[1].authenticate("REGISTER", aor, good)
    assert (elsewhere.verdict, elsewhere.status) == (chordsip.AuthVerdict.CHALLENGE, 401)
    assert elsewhere.challenge
    # authenticate_async gives the same verdicts through its Future
    for authorization, want in [
        (None, chordsip.AuthVerdict.CHALLENGE),
        (good, chordsip.AuthVerdict.OK),
        (_answer(first.challenge, "alice", "guess"), chordsip.AuthVerdict.FORBIDDEN),
        ('Digest username="alice", realm=', chordsip.AuthVerdict.MALFORMED),
    ]:
        r = nodes[0].authenticate_async("REGISTER", aor, authorization).result(10)
        assert r.verdict == want, authorization
        assert r.status == {"CHALLENGE": 401, "OK": 200, "FORBIDDEN": 403, "MALFORMED": 400}[want.name]
        assert bool(r.challenge) == (want == chordsip.AuthVerdict.CHALLENGE)


def test_a_node_without_the_credentials_key_says_so():
    with chordsip.Node(dict(FAST)) as n:
        n.join()
        with pytest.raises(chordsip.Unauthorized):
            n.authenticate("REGISTER", "sip:alice@example.com")
        with pytest.raises(chordsip.Unauthorized):
            n.credential_ha1("alice", REALM)
