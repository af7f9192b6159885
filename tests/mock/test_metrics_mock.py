"""GET /1.0/metrics on the mock mode (fake drivers: no process, so no instance samples): the
exposition, ?project=, corrald's own metrics, and metrics certificates in the trust store."""
import base64
import ssl

from prometheus_client.parser import text_string_to_metric_families

from corral.pki import certs
from helpers import unique


def _families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_metrics_text_has_corrald_metrics(mock_host):
    d = mock_host
    d.get("/1.0/instances")   # at least one request measured
    r = d.get("/1.0/metrics")
    assert r.status == 200 and r.headers["Content-Type"] == "text/plain"
    text = r.body.decode()
    assert text.endswith("# EOF\n")
    fams = _families(text)
    for name in ("corral_api_request_duration_seconds", "corral_dqlite_query_duration_seconds",
                 "corral_tasks", "corral_threads", "corral_uptime_seconds"):
        assert name in fams, name
    api = fams["corral_api_request_duration_seconds"]
    counted = {s.labels["endpoint"] for s in api.samples if s.name.endswith("_count")}
    assert "/1.0/instances" in counted
    assert fams["corral_tasks"].samples[0].value >= 1
    # Fake instances run no process: no instance samples (never made-up values).
    assert not [n for n in fams if n.startswith("lxd_")]


def test_metrics_of_an_unknown_project_are_empty(mock_host):
    r = mock_host.get("/1.0/metrics?project=no-such-project")
    assert r.status == 200 and r.body == b"# EOF\n"


def test_metrics_certificates_in_the_trust_store(mock_host):
    d = mock_host
    crt, _ = certs.generate(unique("metcert"))
    b64 = base64.b64encode(ssl.PEM_cert_to_DER_cert(crt.decode())).decode()
    fp = certs.fingerprint(crt)
    r = d.request("POST", "/1.0/certificates", {"type": "metrics", "certificate": b64, "name": "prom"})
    assert r.status == 201, r.body
    try:
        c = d.get(f"/1.0/certificates/{fp}").metadata
        assert c["type"] == "metrics" and c["name"] == "prom"
    finally:
        d.request("DELETE", f"/1.0/certificates/{fp}")
    r = d.request("POST", "/1.0/certificates", {"type": "server", "certificate": b64})
    assert r.status == 400 and "not supported" in r.json["error"], r.body
