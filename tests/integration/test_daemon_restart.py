"""Acceptance: containers outlive a killed daemon; shutdown waits for running operations."""
import json
import os
import shutil
import time

import pytest

from helpers import unique

pytestmark = pytest.mark.integration


def test_kill9_with_running_containers_then_readopt(fresh_host):
    d = fresh_host
    names = [unique("k") for _ in range(5)]
    for n in names:
        d.lxc("launch", "busybox", n)
    pids = {n: d.get(f"/1.0/instances/{n}/state").metadata["pid"] for n in names}
    d.kill9()
    time.sleep(0.5)
    for n, pid in pids.items():   # still running without the daemon
        with open(f"/proc/{pid}/status") as f:
            assert "State:" in f.read()
    d.start()
    listing = json.loads(d.lxc("list", "--format", "json").stdout)
    status = {x["name"]: x["status"] for x in listing}
    assert all(status[n] == "Running" for n in names), status
    assert {n: d.get(f"/1.0/instances/{n}/state").metadata["pid"] for n in names} == pids
    assert d.lxc("exec", names[0], "--", "echo", "still here").stdout == "still here\n"
    d.lxc("stop", names[1])
    assert d.get(f"/1.0/instances/{names[1]}").metadata["status"] == "Stopped"
    d.lxc("delete", "-f", *names)


def test_shutdown_waits_for_running_operation(fresh_host):
    d = fresh_host
    c = unique("sd")
    d.lxc("launch", "busybox", c)
    d.lxc("config", "set", "core.shutdown_timeout", "1")
    r = d.request("POST", f"/1.0/instances/{c}/exec",
                  {"command": ["sleep", "3"], "wait-for-websocket": False, "record-output": True})
    assert r.status == 202
    t0 = time.monotonic()
    res = d.run("corrald", "shutdown", "--timeout", "90")
    elapsed = time.monotonic() - t0
    assert res.returncode == 0, res.stderr
    d.proc.wait(30)
    assert d.proc.returncode == 0
    assert 2.0 <= elapsed < 60, f"shutdown took {elapsed:.2f}s (operation needed ~3s)"
    print(f"shutdown waited {elapsed:.2f}s for a 3s operation and exited 0")
    # the exec finished inside the container: its recorded output log exists
    logs = d.dir + f"/logs/{c}"
    import os
    assert any(f.startswith("exec_") for f in os.listdir(logs))
    d.start()
    d.lxc("delete", "-f", c)


def test_autostart_and_ephemeral(fresh_host):
    d = fresh_host
    auto, plain, eph, eph2 = (unique(p) for p in ("au", "pl", "ep", "ei"))
    d.lxc("init", "busybox", auto, "-c", "boot.autostart=true")
    d.lxc("init", "busybox", plain)
    # ephemeral: deleted when stopped through the API, and when it powers off by itself
    d.lxc("launch", "busybox", eph, "--ephemeral")
    d.lxc("stop", eph)
    assert d.get(f"/1.0/instances/{eph}").status == 404
    d.lxc("launch", "busybox", eph2, "--ephemeral")
    time.sleep(0.5)
    d.lxc("exec", eph2, "--", "kill", "-USR2", "1", check=False)   # the image's init halts on USR2
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and d.get(f"/1.0/instances/{eph2}").status != 404:
        time.sleep(0.2)
    assert d.get(f"/1.0/instances/{eph2}").status == 404
    d.stop()
    # a data directory without devlxd/ (e.g. moved in from LXD): autostarted instances bind its socket
    # directory, so it is there before they start
    shutil.rmtree(os.path.join(d.dir, "devlxd"))
    d.start()
    assert d.get(f"/1.0/instances/{auto}").metadata["status"] == "Running"
    assert d.get(f"/1.0/instances/{plain}").metadata["status"] == "Stopped"
    d.lxc("delete", "-f", auto, plain)


def test_adopted_container_powering_off_is_noticed(fresh_host):
    """A container started before a kill -9 of the daemon powers off by itself afterwards: the
    restarted daemon's driver watches its monitor, so the ephemeral instance is deleted."""
    d = fresh_host
    eph = unique("ea")
    d.lxc("launch", "busybox", eph, "--ephemeral")
    d.kill9()
    d.start()
    time.sleep(0.5)
    d.lxc("exec", eph, "--", "kill", "-USR2", "1", check=False)   # the image's init powers off on USR2
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and d.get(f"/1.0/instances/{eph}").status != 404:
        time.sleep(0.2)
    assert d.get(f"/1.0/instances/{eph}").status == 404
