"""GET /1.0/metrics (issue 16, acceptance 2): the real `curl` with a metrics certificate over HTTPS
reads Prometheus text (parsed by prometheus_client's parser) with LXD 5.0's metric names for a
running container; untrusted clients get 403; the core.metrics_address listener serves only the
metrics; ?project= and restricted certificates narrow what is shown."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from corral.pki import certs
from helpers import free_port, unique

pytestmark = pytest.mark.integration

LXD_CONTAINER_METRICS = [
    "lxd_cpu_seconds_total", "lxd_filesystem_avail_bytes", "lxd_filesystem_free_bytes", "lxd_filesystem_size_bytes",
    "lxd_memory_Active_anon_bytes", "lxd_memory_Active_file_bytes", "lxd_memory_Active_bytes",
    "lxd_memory_Cached_bytes", "lxd_memory_Dirty_bytes", "lxd_memory_Inactive_anon_bytes",
    "lxd_memory_Inactive_file_bytes", "lxd_memory_Inactive_bytes", "lxd_memory_Mapped_bytes",
    "lxd_memory_MemAvailable_bytes", "lxd_memory_MemFree_bytes", "lxd_memory_MemTotal_bytes",
    "lxd_memory_RSS_bytes", "lxd_memory_Shmem_bytes", "lxd_memory_Swap_bytes", "lxd_memory_Unevictable_bytes",
    "lxd_memory_Writeback_bytes", "lxd_network_receive_bytes_total", "lxd_network_receive_drop_total",
    "lxd_network_receive_errs_total", "lxd_network_receive_packets_total", "lxd_network_transmit_bytes_total",
    "lxd_network_transmit_drop_total", "lxd_network_transmit_errs_total", "lxd_network_transmit_packets_total",
    "lxd_procs_total",
]


def _cert(directory: str, name: str) -> tuple[str, str]:
    crt, key = certs.generate(name)
    paths = os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")
    for path, data in zip(paths, (crt, key)):
        with open(path, "wb") as f:
            f.write(data)
    return paths


def curl(port: int, path: str, cert: tuple[str, str] | None = None) -> tuple[int, str]:
    """The real curl over HTTPS: (HTTP status, body)."""
    args = ["curl", "-sS", "-k", "--max-time", "60", "-w", "\n%{http_code}", f"https://127.0.0.1:{port}{path}"]
    if cert:
        args += ["--cert", cert[0], "--key", cert[1]]
    res = subprocess.run(args, capture_output=True, text=True, timeout=90,
                         env={k: v for k, v in os.environ.items() if k not in ("CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE")})
    assert res.returncode == 0, res.stderr
    body, _, status = res.stdout.rpartition("\n")
    return int(status), body


def families(text: str) -> dict:
    return {f.name if f.type != "counter" else f.name + "_total": f for f in text_string_to_metric_families(text)}


def samples_of(fams: dict, metric: str, **labels) -> list:
    fam = fams.get(metric)
    if fam is None:
        return []
    return [s for s in fam.samples if s.name == metric and all(s.labels.get(k) == v for k, v in labels.items())]


@pytest.fixture(scope="module")
def setup(host):
    d = host
    tmp = tempfile.mkdtemp(prefix="corral-metrics-test-")
    name, project = unique("met"), unique("mp")
    port, mport = free_port(), free_port()
    try:
        d.lxc("launch", "busybox", name)
        d.lxc("project", "create", project)
        d.lxc("config", "set", "core.https_address", f"127.0.0.1:{port}")
        d.lxc("config", "set", "core.metrics_address", f"127.0.0.1:{mport}")
        metrics = _cert(tmp, "metrics")
        d.lxc("config", "trust", "add", metrics[0], "--type", "metrics")
        client = _cert(tmp, "client")
        d.lxc("config", "trust", "add", client[0])
        restricted = _cert(tmp, "restricted")
        d.lxc("config", "trust", "add", restricted[0], "--type", "metrics", "--restricted", "--projects", project)
        untrusted = _cert(tmp, "stranger")
        yield {"d": d, "name": name, "project": project, "port": port, "mport": mport, "metrics": metrics,
               "client": client, "restricted": restricted, "untrusted": untrusted}
    finally:
        d.lxc("delete", "-f", name, check=False)
        d.lxc("project", "delete", project, check=False)
        d.lxc("config", "unset", "core.metrics_address", check=False)
        d.lxc("config", "unset", "core.metrics_authentication", check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def test_metrics_certificate_reads_lxd_metrics_of_a_running_container(setup):
    s = setup
    status, text = curl(s["port"], "/1.0/metrics", s["metrics"])
    assert status == 200, text
    assert text.endswith("# EOF\n")
    fams = families(text)
    mine = {"name": s["name"], "project": "default"}
    for metric in LXD_CONTAINER_METRICS:
        assert samples_of(fams, metric, **mine), f"{metric} missing for {s['name']}:\n{text[:3000]}"
    # Labels as LXD 5.0.2 gives them.
    assert samples_of(fams, "lxd_procs_total", type="container", **mine)[0].value >= 1
    cpu = samples_of(fams, "lxd_cpu_seconds_total", **mine)
    assert {x.labels["mode"] for x in cpu} == {"user", "system"} and all("cpu" in x.labels for x in cpu)
    fs = samples_of(fams, "lxd_filesystem_size_bytes", **mine)[0]
    assert fs.labels["mountpoint"] == "/" and fs.labels["fstype"] and fs.value > 0
    assert {x.labels["device"] for x in samples_of(fams, "lxd_network_receive_bytes_total", **mine)} >= {"lo"}
    # Values are the container's: its memory as the kernel counts it, its processes.
    total = samples_of(fams, "lxd_memory_MemTotal_bytes", **mine)[0].value
    free = samples_of(fams, "lxd_memory_MemFree_bytes", **mine)[0].value
    assert 0 < free < total
    state = s["d"].get(f"/1.0/instances/{s['name']}/state").metadata
    assert samples_of(fams, "lxd_procs_total", **mine)[0].value == pytest.approx(state["processes"], abs=2)
    # corrald's own metrics, for an unrestricted client.
    assert samples_of(fams, "corral_threads")[0].value >= 1
    assert "corral_api_request_duration_seconds" in fams and "corral_dqlite_query_duration_seconds" in fams


def test_metrics_certificate_reads_nothing_else(setup):
    s = setup
    status, body = curl(s["port"], "/1.0/instances", s["metrics"])
    assert status == 403 and json.loads(body)["error"] == "not authorized"
    status, body = curl(s["port"], "/1.0", s["metrics"])
    assert status == 200 and json.loads(body)["metadata"]["auth"] == "untrusted"


def test_untrusted_clients_get_403(setup):
    s = setup
    for cert in (None, s["untrusted"]):
        status, body = curl(s["port"], "/1.0/metrics", cert)
        assert status == 403, body
        assert json.loads(body)["error"] == "not authorized"


def test_trusted_client_reads_metrics(setup):
    status, text = curl(setup["port"], "/1.0/metrics", setup["client"])
    assert status == 200 and samples_of(families(text), "lxd_procs_total", name=setup["name"])


def test_project_filter_and_restricted_certificate(setup):
    s = setup
    status, text = curl(s["port"], f"/1.0/metrics?project={s['project']}", s["metrics"])
    assert status == 200 and not samples_of(families(text), "lxd_procs_total", name=s["name"])
    status, text = curl(s["port"], "/1.0/metrics?project=no-such-project", s["metrics"])
    assert status == 200 and text == "# EOF\n"
    status, text = curl(s["port"], "/1.0/metrics", s["restricted"])
    fams = families(text)
    assert status == 200 and not samples_of(fams, "lxd_procs_total", name=s["name"]) and "corral_threads" not in fams
    status, body = curl(s["port"], "/1.0/metrics?project=default", s["restricted"])
    assert status == 403, body
    status, body = curl(s["port"], "/1.0/metrics?target=elsewhere", s["restricted"])   # no way around it
    assert status == 403, body


def test_metrics_listener_serves_only_metrics(setup):
    s = setup
    status, text = curl(s["mport"], "/1.0/metrics", s["metrics"])
    assert status == 200 and samples_of(families(text), "lxd_memory_RSS_bytes", name=s["name"])
    status, body = curl(s["mport"], "/1.0/instances", s["client"])
    assert status == 404 and json.loads(body)["error"] == "not found"
    status, body = curl(s["mport"], "/1.0/metrics")
    assert status == 403, body
    status, body = curl(s["mport"], "/")
    assert status == 200 and json.loads(body)["metadata"] == ["/1.0"]


def test_metrics_without_authentication(setup):
    s = setup
    s["d"].lxc("config", "set", "core.metrics_authentication", "false")
    try:
        status, text = curl(s["port"], "/1.0/metrics")
        assert status == 200 and samples_of(families(text), "lxd_procs_total", name=s["name"])
        status, _ = curl(s["port"], "/1.0/instances")
        assert status == 403
    finally:
        s["d"].lxc("config", "set", "core.metrics_authentication", "true")
    assert curl(s["port"], "/1.0/metrics")[0] == 403


def test_metrics_are_cached_for_a_few_seconds(setup):
    """Two scrapes in a row read the containers once (LXD keeps a scrape 8 s); a stopped container
    then gives no samples once the cache has expired."""
    s = setup
    a = curl(s["port"], "/1.0/metrics", s["metrics"])[1]
    b = curl(s["port"], "/1.0/metrics", s["metrics"])[1]
    pick = lambda t: [x.value for x in samples_of(families(t), "lxd_memory_MemFree_bytes", name=s["name"])]  # noqa: E731
    assert pick(a) == pick(b)
    other = unique("mst")
    s["d"].lxc("launch", "busybox", other)
    try:
        s["d"].lxc("stop", "-f", other)
        time.sleep(8.5)
        text = curl(s["port"], "/1.0/metrics", s["metrics"])[1]
        assert not samples_of(families(text), "lxd_procs_total", name=other)
    finally:
        s["d"].lxc("delete", "-f", other, check=False)
