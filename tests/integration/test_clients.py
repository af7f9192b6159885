"""Acceptance: the real LXD client (lxc, Debian lxd-client 5.0.2) and pylxd drive corrald."""
import json
import subprocess
import time

import pytest
import yaml

from helpers import unique

pytestmark = pytest.mark.integration


def test_lxc_info_and_config(daemon):
    info = yaml.safe_load(daemon.lxc("info").stdout)
    assert info["api_version"] == "1.0" and info["environment"]["server_version"] == "5.0.2"
    daemon.lxc("config", "set", "core.shutdown_timeout", "2")
    assert daemon.lxc("config", "get", "core.shutdown_timeout").stdout.strip() == "2"
    bad = daemon.lxc("config", "set", "no.such.key", "1", check=False)
    assert bad.returncode != 0 and "no.such.key" in bad.stderr
    out = daemon.lxc("query", "/1.0/operations").stdout.strip()
    assert out == "" or isinstance(json.loads(out), dict)   # lxc prints nothing for an empty map


def test_lxc_profiles(daemon):
    name, new = unique("lp"), unique("lr")
    daemon.lxc("profile", "create", name)
    daemon.lxc("profile", "set", name, "limits.memory", "512MiB")
    shown = yaml.safe_load(daemon.lxc("profile", "show", name).stdout)
    assert shown["config"] == {"limits.memory": "512MiB"}
    edited = "config:\n  user.k: v\ndescription: edited\ndevices: {}\n"
    daemon.lxc("profile", "edit", name, input=edited)
    shown = yaml.safe_load(daemon.lxc("profile", "show", name).stdout)
    assert shown["config"] == {"user.k": "v"} and shown["description"] == "edited"
    bad = daemon.lxc("profile", "set", name, "limits.memory", "lots", check=False)
    assert bad.returncode != 0
    daemon.lxc("profile", "rename", name, new)
    listing = json.loads(daemon.lxc("profile", "list", "--format", "json").stdout)
    assert new in [p["name"] for p in listing] and name not in [p["name"] for p in listing]
    daemon.lxc("profile", "delete", new)
    assert daemon.lxc("profile", "show", new, check=False).returncode != 0


def test_lxc_monitor_sees_profile_created(daemon):
    name = unique("mon")
    mon = subprocess.Popen(["lxc", "monitor", "--type=lifecycle", "--format=json"], env=daemon.env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the monitor is connected once the daemon counts a listener; give it a moment
        time.sleep(0.7)
        daemon.lxc("profile", "create", name)
        deadline = time.monotonic() + 10
        seen = None
        import select
        buf = ""
        while time.monotonic() < deadline and seen is None:
            r, _, _ = select.select([mon.stdout], [], [], 0.5)
            if not r:
                continue
            buf += mon.stdout.readline()
            try:
                ev = json.loads(buf)
                buf = ""
            except json.JSONDecodeError:
                continue
            if ev["metadata"].get("action") == "profile-created" and ev["metadata"]["source"].endswith(name):
                seen = ev
        assert seen is not None, "no profile-created event"
        assert seen["type"] == "lifecycle" and seen["project"] == "default"
    finally:
        mon.kill()
        mon.wait()
        daemon.lxc("profile", "delete", name, check=False)


def test_pylxd_host_info_and_profiles(daemon):
    pylxd = pytest.importorskip("pylxd")
    client = pylxd.Client(endpoint=daemon.socket)
    assert client.host_info["api_version"] == "1.0"
    name = unique("py")
    p = client.profiles.create(name, config={"user.a": "b"}, devices={})
    p.config["limits.cpu"] = "1"
    p.save()
    assert client.profiles.get(name).config == {"user.a": "b", "limits.cpu": "1"}
    assert client.profiles.exists(name)
    p.delete()
    assert not client.profiles.exists(name)
