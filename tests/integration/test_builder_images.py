"""corral-builder's shipped definitions, built for real and run in corrald with the real `lxc` client
(issue 15, acceptance 1):

- images/debian-bookworm.yaml with debootstrap (from the Debian mirror this host's apt uses; the .debs
  cached under the builder's cache so reruns download nothing), built once for the module: it boots
  systemd (`systemctl is-system-running` answers running or degraded), its hostname and its network
  come from the generators (hostname template, networkd's DHCP on a managed bridge), it stops cleanly
  on `lxc stop` (systemd's halt signal), and a second build of the same definition gives the same
  file list;
- `corral image build definition busybox` builds images/busybox.yaml and imports it.
"""
from __future__ import annotations

import ipaddress
import os
import subprocess
import sys

import pytest

from corral.builder.sources.debootstrap import host_mirror
from corral.network.host import host_routes_and_addresses
from corral.network.subnets import pick_ipv4
from helpers import ROOT, initialised_corrald, unique, wait_for

pytestmark = pytest.mark.integration

DEBIAN = os.path.join(ROOT, "images", "debian-bookworm.yaml")


def build(definition: str, out: str, *opts: str) -> list[str]:
    argv = [sys.executable, "-m", "corral.builder.cli", "-o", f"source.url={host_mirror()}", *opts,
            "build-lxd", definition, out, "--compression", "gzip"]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout.split()


def file_list(squashfs: str) -> list[str]:
    out = subprocess.run(["unsquashfs", "-lls", "-n", squashfs], capture_output=True, text=True, check=True).stdout
    # "-rw-r--r-- root/root 1234 2026-01-01 10:00 squashfs-root/etc/x": keep mode, owner and path
    rows = []
    for line in out.splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and "squashfs-root" in parts[5]:
            rows.append(f"{parts[0]} {parts[1]} {parts[5].split(' -> ')[0]}")
    return sorted(rows)


@pytest.fixture(scope="module")
def debian_image(tmp_path_factory):
    return build(DEBIAN, str(tmp_path_factory.mktemp("debian-bookworm")))


def test_debian_boots_systemd_with_hostname_and_network(debian_image):
    meta, rootfs = debian_image
    name, net, alias = unique("deb"), unique("bnet")[:15], unique("debimg")
    subnet = pick_ipv4(host_routes_and_addresses())
    with initialised_corrald() as d:
        try:
            d.lxc("image", "import", meta, rootfs, "--alias", alias, timeout=300)
            d.lxc("network", "create", net, f"ipv4.address={subnet}", "ipv4.nat=false", "ipv6.address=none")
            d.lxc("launch", alias, name, "-n", net, timeout=300)

            def booted():
                res = d.lxc("exec", name, "--", "systemctl", "is-system-running", check=False)
                return res.stdout.strip() in ("running", "degraded") and res.stdout.strip()
            state = wait_for(booted, timeout=120, interval=1)
            assert state in ("running", "degraded"), d.lxc("exec", name, "--", "systemctl", "--failed", check=False).stdout
            assert d.lxc("exec", name, "--", "hostname").stdout.strip() == name
            assert d.lxc("exec", name, "--", "cat", "/etc/hostname").stdout == f"{name}\n"
            assert f"127.0.1.1\t{name}\n" in d.lxc("exec", name, "--", "cat", "/etc/hosts").stdout

            def address():
                out = d.lxc("exec", name, "--", "ip", "-4", "-o", "addr", "show", "dev", "eth0", check=False).stdout
                for word in out.split():
                    if "/" in word and word[0].isdigit():
                        return ipaddress.ip_interface(word)
                return None
            addr = wait_for(address, timeout=60, interval=0.5)
            assert addr is not None and addr.ip in ipaddress.ip_interface(str(subnet)).network
            assert "eth0.network" in d.lxc("exec", name, "--", "networkctl", "status", "eth0", check=False).stdout
            d.lxc("stop", name, timeout=120)            # systemd halts on SIGRTMIN+3: no --force needed
            assert d.lxc("list", name, "-c", "s", "-f", "csv").stdout.strip() == "STOPPED"
        finally:
            d.lxc("delete", "-f", name, check=False)
            d.lxc("network", "delete", net, check=False)


def test_debian_build_is_reproducible(debian_image, tmp_path):
    again = build(DEBIAN, str(tmp_path / "again"))
    first, second = file_list(debian_image[1]), file_list(again[1])
    assert len(first) > 5000
    assert first == second


def test_corral_image_build_definition(tmp_path):
    name, alias = unique("bbd"), unique("bbimg")
    with initialised_corrald() as d:
        try:
            res = d.run("corral", "image", "build", "definition", "busybox", "--alias", alias,
                        "--compression", "gzip", "--cache-dir", str(tmp_path / "cache"), timeout=300)
            assert res.returncode == 0, res.stderr
            assert "Image imported with fingerprint:" in res.stdout
            d.lxc("launch", alias, name)
            assert d.lxc("exec", name, "--", "cat", "/etc/hostname").stdout == f"{name}\n"
            props = d.lxc("image", "show", alias).stdout
            assert "os: busybox" in props and "variant: default" in props
            res = d.run("corral", "image", "build", "definition", "no-such-def")
            assert res.returncode != 0 and 'No definition "no-such-def"' in res.stderr
        finally:
            d.lxc("delete", "-f", name, check=False)
