"""Listings read statuses and states for all instances at once (issue 11: no liblxc object per
container on recursion=1, no pyroute2 per container on recursion=2). What they show must be what
the single-instance endpoints show, for running, frozen and stopped instances, and right after a
restart (a new init pid) and a stop from inside (the remembered init pid is gone)."""
import time

import pytest

from helpers import unique, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trio(host):
    run, frz, stp = unique("lrun"), unique("lfrz"), unique("lstp")
    host.lxc("launch", "busybox", run)
    host.lxc("launch", "busybox", frz)
    host.lxc("init", "busybox", stp)
    host.lxc("pause", frz)
    yield host, run, frz, stp
    host.lxc("delete", "-f", run, frz, stp, check=False)


def _listed(host, recursion: int) -> dict[str, dict]:
    return {i["name"]: i for i in host.get(f"/1.0/instances?recursion={recursion}").metadata}


def test_recursion_1_statuses_match_single_gets(trio):
    host, run, frz, stp = trio
    listed = _listed(host, 1)
    for name, status, code in ((run, "Running", 103), (frz, "Frozen", 110), (stp, "Stopped", 102)):
        assert (listed[name]["status"], listed[name]["status_code"]) == (status, code)
        single = host.get(f"/1.0/instances/{name}").metadata
        assert (single["status"], single["status_code"]) == (status, code)
    filtered = host.get("/1.0/instances?recursion=1&filter=status+eq+Frozen").metadata
    assert [i["name"] for i in filtered if i["name"] in (run, frz, stp)] == [frz]


def test_recursion_2_states_match_the_state_endpoint(trio):
    host, run, frz, stp = trio
    listed = _listed(host, 2)
    for name in (run, frz, stp):
        st = host.get(f"/1.0/instances/{name}/state").metadata
        got = listed[name]["state"]
        assert (got["status"], got["status_code"], got["pid"]) == (st["status"], st["status_code"], st["pid"])
        assert (got["network"] is None) == (st["network"] is None)
        if st["network"] is not None:
            assert got["network"].keys() == st["network"].keys()
            assert got["network"]["lo"]["addresses"] == st["network"]["lo"]["addresses"]
    assert listed[run]["state"]["pid"] > 0 and listed[run]["state"]["processes"] > 0
    assert listed[stp]["state"] == {**listed[stp]["state"], "pid": 0, "processes": 0, "network": None}


def test_a_restart_and_a_stop_from_inside_are_seen(trio):
    host, run, _, _ = trio
    before = _listed(host, 2)[run]["state"]["pid"]
    host.lxc("restart", "--force", run)
    after = _listed(host, 2)[run]["state"]
    assert after["status"] == "Running" and after["pid"] not in (0, before)
    assert after["pid"] == host.get(f"/1.0/instances/{run}/state").metadata["pid"]
    time.sleep(0.5)   # busybox init sets its handlers
    host.lxc("exec", run, "--", "kill", "-USR2", "1", check=False)   # init stops: the container halts itself
    wait_for(lambda: _listed(host, 1)[run]["status"] == "Stopped", timeout=20)
    assert _listed(host, 2)[run]["state"]["pid"] == 0
    host.lxc("start", run)
    assert _listed(host, 2)[run]["state"]["pid"] == host.get(f"/1.0/instances/{run}/state").metadata["pid"] > 0
