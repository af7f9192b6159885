"""More instance behaviour: bulk state changes, snapshot expiry, preseed, the corral CLI end to end."""
import datetime
import json
import time

import pytest
import yaml

from helpers import unique

pytestmark = pytest.mark.integration


def test_bulk_state_change(host):
    names = [unique("bk") for _ in range(2)]
    for n in names:
        host.lxc("init", "busybox", n)
    try:
        r = host.request("PUT", "/1.0/instances", {"state": {"action": "start"}})
        assert host.wait_op(r)["status"] == "Success"
        assert all(host.get(f"/1.0/instances/{n}").metadata["status"] == "Running" for n in names)
        r = host.request("PUT", "/1.0/instances", {"state": {"action": "stop", "force": True}})
        assert host.wait_op(r)["status"] == "Success"
        assert all(host.get(f"/1.0/instances/{n}").metadata["status"] == "Stopped" for n in names)
    finally:
        host.lxc("delete", "-f", *names, check=False)


def test_expired_snapshots_are_removed(host):
    c = unique("ex")
    host.lxc("init", "busybox", c)
    try:
        soon = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1)).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        host.wait_op(host.request("POST", f"/1.0/instances/{c}/snapshots", {"name": "short", "expires_at": soon}))
        host.wait_op(host.request("POST", f"/1.0/instances/{c}/snapshots", {"name": "kept"}))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            snaps = [s.rsplit("/", 1)[1] for s in host.get(f"/1.0/instances/{c}/snapshots").metadata]
            if snaps == ["kept"]:
                break
            time.sleep(0.5)
        assert snaps == ["kept"]
    finally:
        host.lxc("delete", "-f", c)


def test_preseed_applies_config_and_profiles(host):
    name = unique("ps")
    doc = {"config": {"images.auto_update_interval": "7"},
           "profiles": [{"name": name, "description": "from preseed", "config": {"limits.memory": "128MiB"},
                         "devices": {}}]}
    host.run("corrald", "init", "--preseed", input=yaml.safe_dump(doc), check=True)
    assert host.get("/1.0").metadata["config"]["images.auto_update_interval"] == "7"
    p = host.get(f"/1.0/profiles/{name}").metadata
    assert p["description"] == "from preseed" and p["config"] == {"limits.memory": "128MiB"}
    bad = host.run("corrald", "init", "--preseed", input="config:\n  no.such.key: 1\n")
    assert bad.returncode != 0 and "no.such.key" in bad.stderr
    bad = host.run("corrald", "init", "--preseed", input="- just a list\n")
    assert bad.returncode != 0
    host.request("DELETE", f"/1.0/profiles/{name}")
    host.request("PATCH", "/1.0", {"config": {"images.auto_update_interval": ""}})


def test_corral_cli_end_to_end(host):
    p, c = unique("cp"), unique("cc")
    host.run("corral", "profile", "create", p, check=True)
    host.run("corral", "profile", "set", p, "limits.memory", "256MiB", check=True)
    shown = yaml.safe_load(host.run("corral", "profile", "show", p, check=True).stdout)
    assert shown["config"] == {"limits.memory": "256MiB"}
    listed = json.loads(host.run("corral", "profile", "list", "--format", "json", check=True).stdout)
    assert p in [x["name"] for x in listed]
    host.run("corral", "launch", "busybox", c, "-p", "default", "-p", p, check=True)
    out = host.run("corral", "exec", c, "--", "sh", "-c", "echo hi; exit 4")
    assert out.returncode == 4 and out.stdout == "hi\n"
    rows = json.loads(host.run("corral", "list", "--format", "json", check=True).stdout)
    assert any(r["name"] == c and r["status"] == "Running" for r in rows)
    q = json.loads(host.run("corral", "query", f"/1.0/instances/{c}", check=True).stdout)
    assert q["profiles"] == ["default", p]
    bad = host.run("corral", "config", "set", "nope.key", "1")
    assert bad.returncode == 1 and "nope.key" in bad.stderr
    host.run("corral", "delete", "-f", c, check=True)
    host.run("corral", "profile", "delete", p, check=True)
