"""The metrics API extensions' checks (imported by test_extensions.py): `metrics`,
`metrics_cpu_seconds` and `metrics_authentication`, on the module's daemon and running container."""
from __future__ import annotations

import ssl
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from helpers import free_port


def _samples(text: str, metric: str, name: str) -> list:
    return [s for f in text_string_to_metric_families(text) for s in f.samples
            if s.name == metric and s.labels.get("name") == name]


def check_metrics(d, c):
    r = d.get("/1.0/metrics")
    assert r.status == 200 and r.headers["Content-Type"] == "text/plain", r.body
    text = r.body.decode()
    for metric in ("lxd_cpu_seconds_total", "lxd_memory_MemTotal_bytes", "lxd_memory_RSS_bytes",
                   "lxd_network_receive_bytes_total", "lxd_filesystem_size_bytes", "lxd_procs_total"):
        assert _samples(text, metric, c), metric
    assert _samples(text, "lxd_procs_total", c)[0].labels == {"name": c, "project": "default", "type": "container"}


def check_metrics_cpu_seconds(d, c):
    """CPU time in seconds (before this extension LXD gave nanoseconds), per cpu and mode."""
    samples = _samples(d.get("/1.0/metrics").body.decode(), "lxd_cpu_seconds_total", c)
    ns = d.get(f"/1.0/instances/{c}/state").metadata["cpu"]["usage"]
    assert {s.labels["mode"] for s in samples} == {"user", "system"}, samples
    used = sum(s.value for s in samples)
    # A scrape is kept 8 s (as LXD): it may be older than the state just read, never newer.
    assert 0 <= used <= ns / 1e9 + 0.05 and ns / 1e9 < 3600, (used, ns)


def _https_status(port: int) -> int:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/1.0/metrics", context=ctx, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def check_metrics_authentication(d, c):
    before = d.get("/1.0").metadata["config"].get("core.metrics_address", "")
    port = free_port()
    d.lxc("config", "set", "core.metrics_address", f"127.0.0.1:{port}")
    try:
        assert _https_status(port) == 403   # untrusted, with authentication (the default)
        d.lxc("config", "set", "core.metrics_authentication", "false")
        assert _https_status(port) == 200
    finally:
        d.lxc("config", "unset", "core.metrics_authentication", check=False)
        d.lxc("config", "set", "core.metrics_address", before, check=False)
