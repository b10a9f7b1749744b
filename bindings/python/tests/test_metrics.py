"""OpenMetrics from every path (Node.metrics, Client.metrics, `chordsip node
--metrics`), read with Prometheus' own parsers from PyPI."""

from __future__ import annotations

import select
import subprocess
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as prometheus_text

import chordsip
from conftest import cli_path

EXPECTED = {
    "chordsip_node": "info",
    "chordsip_joined": "gauge",
    "chordsip_messages_sent": "counter",
    "chordsip_sent_bytes": "counter",
    "chordsip_dropped": "counter",
    "chordsip_forged_entries": "counter",
    "chordsip_checked_entries": "counter",
    "chordsip_refused_membership": "counter",
    "chordsip_operations": "counter",
    "chordsip_lookup_hops": "histogram",
    "chordsip_lookup_duration_seconds": "histogram",
    "chordsip_stored_entries": "gauge",
}


def families(text: str) -> dict:
    return {f.name: f for f in openmetrics(text)}


def value(family, **labels) -> float:
    for s in family.samples:
        if all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise AssertionError("no sample %r in %s" % (labels, family.name))


def check_histogram(family) -> None:
    buckets = [s for s in family.samples if s.name.endswith("_bucket")]
    counts = [s.value for s in buckets]
    assert counts == sorted(counts), "cumulative buckets: %r" % counts
    assert buckets[-1].labels["le"] == "+Inf"
    count = [s.value for s in family.samples if s.name.endswith("_count")][0]
    assert count == buckets[-1].value


def test_node_metrics_are_openmetrics_with_the_node_counters(ring_factory):
    nodes = ring_factory(3)
    n = nodes[0]
    for i in range(20):
        n.lookup("sip:metrics%d@example.com" % i)
    n.put("sip:stored@example.com", "w", b"v", 60)
    before = n.stats()["lookups_ok"]
    text = n.metrics()
    after = n.stats()["lookups_ok"]
    assert text.endswith("# EOF\n")
    fams = families(text)
    for name, kind in EXPECTED.items():
        assert fams[name].type == kind, name
    info = fams["chordsip_node"].samples[0]
    assert info.labels == {"id": n.id, "addr": n.addr}
    assert value(fams["chordsip_joined"]) == 1
    ok = value(fams["chordsip_operations"], op="lookup", result="ok")
    assert 20 <= before <= ok <= after
    assert value(fams["chordsip_operations"], op="put", result="ok") >= 1
    for h in ("chordsip_lookup_hops", "chordsip_lookup_duration_seconds"):
        check_histogram(fams[h])
    hops = fams["chordsip_lookup_hops"]
    assert value(hops, le="16") == value(hops, le="+Inf")  # 3 nodes: never more
    assert set(families(n.info("metrics"))) == set(fams)


def test_cli_endpoint_and_client_give_the_same_families(tmp_path):
    cli = cli_path()
    assert cli is not None, "the CLI is built by scripts/python-tests.sh"
    sock = str(tmp_path / "node.sock")
    proc = subprocess.Popen(
        [str(cli), "node", "--listen", "127.0.0.1:0", "--client-socket", sock, "--log", "off",
         "--metrics", "127.0.0.1:0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        # "node <id> listening on <addr> joined metrics http://127.0.0.1:PORT/metrics"
        words = line.split()
        assert words[5:7] == ["joined", "metrics"], line
        url = words[7]
        with chordsip.Client("unix:" + sock) as c:
            c.lookup("sip:endpoint@example.com")
            from_client = families(c.metrics())
        with urllib.request.urlopen(url, timeout=5) as r:
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            older = {f.name: f for f in prometheus_text(r.read().decode())}
        req = urllib.request.Request(url, headers={"Accept": "application/openmetrics-text"})
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.headers["Content-Type"].startswith("application/openmetrics-text")
            served = families(r.read().decode())
        assert set(served) == set(from_client)
        assert served["chordsip_node"].samples[0].labels["id"] == words[1]
        assert value(served["chordsip_operations"], op="lookup", result="ok") >= 1
        # The older format declares the info as a gauge of its own name; the
        # parser files counters under their name without `_total`.
        for name, kind in EXPECTED.items():
            older_name = name + "_info" if kind == "info" else name
            want = "gauge" if kind == "info" else kind
            assert older[older_name].type == want, older_name
        sent = older["chordsip_messages_sent"].samples[0]
        assert sent.name == "chordsip_messages_sent_total"
        assert older["chordsip_joined"].samples[0].value == 1
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
