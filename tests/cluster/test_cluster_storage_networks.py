"""ISSUE13 acceptance 2 (pools and networks): a dir pool and a bridge network defined on every
member with `--target` (Pending), then created with one global `lxc ... create` (Created on every
member, each with its own member-specific keys); a member that fails leaves the object Errored with
its reason; delete removes it everywhere. Members are network namespaces (tests/clusterlib.py), so
each member's bridge is really made in its own namespace by its own corrald (dnsmasq, nftables)."""
from __future__ import annotations

import os

import pytest

from clusterlib import Cluster, form, leftovers
from helpers import unique


@pytest.fixture(scope="module")
def members():
    c = Cluster()
    made = None
    try:
        yield form(c, 3)
    finally:
        made = c.made()
        c.cleanup()
    assert leftovers(made) == []


def pool(m, name: str, target: str | None = None) -> dict:
    q = f"?target={target}" if target else ""
    return m.request("GET", f"/1.0/storage-pools/{name}{q}").metadata


def lxc_err(r) -> str:
    assert r.returncode != 0, r.stdout
    return r.stderr.strip().splitlines()[-1]


def test_a_dir_pool_pending_per_member_then_created_everywhere(members):
    m1, m2, m3 = members
    name = unique("pool")
    sources = {m.name: os.path.join(m.dir, name) for m in members}
    m1.lxc("storage", "create", name, "dir", "--target", m1.name, f"source={sources[m1.name]}")
    assert (pool(m2, name)["status"], pool(m2, name)["locations"]) == ("Pending", [m1.name])
    # not defined on every member yet: refused, nothing changes
    assert lxc_err(m1.lxc("storage", "create", name, "dir", check=False)) == \
        f"Error: Pool not defined on nodes: {m2.name}, {m3.name}"
    assert pool(m1, name)["status"] == "Pending"
    for m in (m2, m3):
        m1.lxc("storage", "create", name, "dir", "--target", m.name, f"source={sources[m.name]}")
    # a member-specific key without --target is refused
    assert lxc_err(m1.lxc("storage", "create", name, "dir", "source=/x", check=False)) == \
        'Error: Config key "source" is cluster member specific'
    assert pool(m1, name)["status"] == "Pending"
    m1.lxc("storage", "create", name, "dir")
    for m in members:
        got = pool(m, name)
        assert (got["status"], sorted(got["locations"])) == ("Created", sorted(sources)), got
        assert "source" not in got["config"], got          # member-specific: only with ?target=
        assert pool(m, name, m3.name)["config"]["source"] == sources[m3.name]
        assert os.path.isdir(sources[m.name])
    m2.lxc("storage", "delete", name)
    assert m1.request("GET", f"/1.0/storage-pools/{name}").status == 404
    for src in sources.values():
        assert not os.path.exists(src) or os.listdir(src) == []


def test_a_member_that_fails_leaves_the_pool_errored_with_its_reason(members):
    m1, m2, m3 = members
    name = unique("pool")
    bad = os.path.join(m3.dir, unique("file"))
    open(bad, "w").close()
    try:
        for m in members:
            src = bad if m is m3 else os.path.join(m.dir, name)
            m1.lxc("storage", "create", name, "dir", "--target", m.name, f"source={src}")
        err = lxc_err(m1.lxc("storage", "create", name, "dir", check=False))
        assert err.startswith(f'Error: Failed to create storage pool "{name}" on member "{m3.name}": '), err
        assert "isn't a directory" in err, err
        for m in members:
            assert pool(m, name)["status"] == "Errored"
        assert f"{name},dir,,0,ERRORED" in m2.lxc("storage", "list", "--format", "csv").stdout
    finally:
        m1.lxc("storage", "delete", name, check=False)
        os.unlink(bad)
    assert m1.request("GET", f"/1.0/storage-pools/{name}").status == 404


def test_a_bridge_pending_per_member_then_created_in_every_namespace(members):
    m1, m2, m3 = members
    name = unique("cn")[:10]
    for m in members:
        r = m1.lxc("network", "create", name, "--target", m.name)
        assert r.stdout.strip() == f"Network {name} pending on member {m.name}"
    assert m2.request("GET", f"/1.0/networks/{name}").metadata["status"] == "Pending"
    for m in members:   # nothing made before the global create
        assert m.ns_run("ip", "link", "show", name).returncode != 0
    try:
        m2.lxc("network", "create", name, "ipv4.address=10.123.45.1/24", "ipv6.address=none")
        for m in members:
            got = m.request("GET", f"/1.0/networks/{name}").metadata
            assert (got["status"], sorted(got["locations"])) == ("Created", [m1.name, m2.name, m3.name]), got
            assert got["config"]["ipv4.address"] == "10.123.45.1/24"
            assert "10.123.45.1/24" in m.ns_run("ip", "-4", "addr", "show", name).stdout   # in its namespace
    finally:
        m3.lxc("network", "delete", name, check=False)
    for m in members:
        assert m.ns_run("ip", "link", "show", name).returncode != 0
    assert m1.request("GET", f"/1.0/networks/{name}").status == 404
