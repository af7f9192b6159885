"""corral.resources against this machine's real /proc and /sys (no mocks),
compared in shape with the response captured from LXD 5.0.2."""

import json
import os
import time
from pathlib import Path

import pytest

from corral.resources import host_resources, storage_pool_resources

SAMPLES = Path("/work/shared/lxd-api-samples")
# Keys LXD marks omitempty that the captured host happened not to report.
OPTIONAL = {"frequency", "frequency_minimum", "frequency_turbo", "model", "wwn", "serial",
            "device_path", "firmware_version", "vendor", "product", "supported_modes",
            "supported_ports", "link_speed", "link_duplex"}


def _sample(name):
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"{path} not available")
    return json.loads(path.read_text())["metadata"]


def assert_same_shape(got, want, path="metadata"):
    """Same key tree and value types; lists compare their first elements."""
    if want is None:  # LXD's null (e.g. system.firmware without DMI)
        assert got is None or isinstance(got, dict), path
        return
    assert type(got) is type(want), f"{path}: {type(got).__name__} != {type(want).__name__}"
    if isinstance(want, dict):
        got_keys, want_keys = set(got), set(want)
        extra = {k for k in got_keys ^ want_keys if k not in OPTIONAL}
        assert not extra, f"{path}: key mismatch {sorted(extra)}"
        for key in got_keys & want_keys:
            assert_same_shape(got[key], want[key], f"{path}.{key}")
    elif isinstance(want, list) and got and want:
        assert_same_shape(got[0], want[0], f"{path}[0]")


@pytest.fixture(scope="module")
def res():
    return host_resources()


def test_shape_matches_lxd_sample(res):
    assert_same_shape(res, _sample("resources.json"))


def test_json_serialisable(res):
    assert json.loads(json.dumps(res)) == res


def test_cpu_total(res):
    assert res["cpu"]["total"] == os.cpu_count()
    threads = [t for s in res["cpu"]["sockets"] for c in s["cores"] for t in c["threads"]]
    assert sorted(t["id"] for t in threads) == list(range(res["cpu"]["total"]))
    assert res["cpu"]["architecture"] == os.uname().machine


def test_memory_total(res):
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    expected = int(meminfo["MemTotal"].split()[0]) * 1024
    mem = res["memory"]
    assert abs(mem["total"] - expected) <= expected * 0.01
    assert 0 <= mem["used"] <= mem["total"]
    assert 0 <= mem["hugepages_used"] <= mem["hugepages_total"]


def test_counts_and_devices(res):
    for section, key in (("gpu", "cards"), ("network", "cards"), ("storage", "disks"),
                         ("usb", "devices"), ("pci", "devices")):
        assert res[section]["total"] == len(res[section][key])
    assert len(res["pci"]["devices"]) == len(os.listdir("/sys/bus/pci/devices"))
    disk_ids = {d["id"] for d in res["storage"]["disks"]}
    assert not any(i.startswith(("loop", "ram", "zram")) for i in disk_ids)
    for disk in res["storage"]["disks"]:
        assert disk["size"] > 0 and ":" in disk["device"]
    ports = {p["id"] for c in res["network"]["cards"] for p in c["ports"]}
    assert "lo" not in ports


def test_fast():
    def elapsed():
        start = time.perf_counter()
        host_resources()
        return time.perf_counter() - start
    assert min(elapsed() for _ in range(3)) < 0.05  # best of 3: robust to load


def test_storage_pool_resources():
    got = storage_pool_resources("/")
    assert_same_shape(got, _sample("storage-pools-default-resources.json"))
    assert 0 <= got["space"]["used"] <= got["space"]["total"]
    assert 0 <= got["inodes"]["used"] <= got["inodes"]["total"]
