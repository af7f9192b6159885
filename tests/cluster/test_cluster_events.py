"""Events, warnings and host requests across members (ISSUE13: "Events", "Warnings ... resources with
?target="; acceptance 3): three members in network namespaces, the real `lxc` client.

- `lxc monitor` on any member shows every member's lifecycle events, each once, with `location` the
  member that produced it (its own with its own name);
- another member's subscription (the cluster certificate, LXD's notifier user agent) gets only the
  member's own events (full mesh: nothing is sent on);
- the mesh follows kill -9 and restart, a join and a removal;
- /1.0/warnings on any member lists every member's warnings with their locations;
- `/1.0?target=M`, `/1.0/resources?target=M` (`lxc info [--resources] --target M`) are answered by M;
  an unknown target is LXD's 404 "Cluster member not found".

One cluster for the module. With CORRAL_CLUSTER_DAEMON=lxd the same runs against LXD 5.0.2, without
corrald's test endpoint and corrald's leftover warnings.
"""
from __future__ import annotations

import os
import time

import pytest
import yaml

import clusterlib as cl
from events_lib import Monitor, PeerStream, mesh_status, produce_until_seen, profile_event, wait_links

CORRALD = cl.DAEMON == "corrald"
corrald_only = pytest.mark.skipif(not CORRALD, reason="corrald's test endpoint / state layout")


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, real corrald)")
    c = cl.Cluster()
    try:
        ms = cl.form(c, 3)
        cl.set_server_config(ms[0], {"cluster.offline_threshold": str(cl.OFFLINE_THRESHOLD)})
        yield c, ms
    finally:
        c.cleanup()
        assert not cl.leftovers(c.made())


@pytest.fixture
def monitors(cluster):
    made: list[Monitor] = []

    def make(member, *args):
        made.append(Monitor(member, *args))
        return made[-1]
    yield make
    for m in made:
        m.close()


def test_monitor_sees_every_members_events_with_location(cluster, monitors):
    _, (m1, m2, m3) = cluster
    mon1 = monitors(m1)
    mon3 = monitors(m3)
    name, event = produce_until_seen(m3, mon1)           # acceptance 3
    assert event["location"] == "m3" and event["type"] == "lifecycle" and event["project"] == "default"
    doc = next(t for t, e in zip(mon1.text, mon1.events) if e is event)
    assert "location: m3\n" in doc                         # as lxc monitor prints it
    assert mon3.wait_for(profile_event(name), 5)["location"] == "m3"   # its own, with its name

    _, e2 = produce_until_seen(m2, mon1)
    assert e2["location"] == "m2"
    # m1's own events carry its name; every member's monitor shows them
    own, e1 = produce_until_seen(m1, mon3)
    assert e1["location"] == "m1"
    assert mon1.wait_for(profile_event(own), 5)["location"] == "m1"

    # each event once: nothing is sent on from member to member
    m3.lxc("profile", "delete", name)
    for mon in (mon1, mon3):
        assert mon.wait_for(profile_event(name, "profile-deleted"), 10) is not None
    time.sleep(1.5)
    for mon in (mon1, mon3):
        assert len(mon.matching(profile_event(name, "profile-deleted"))) == 1, mon.events[-6:]
        assert len(mon.matching(profile_event(own))) == 1


def test_member_subscription_gets_only_its_own_events(cluster, monitors):
    _, (m1, m2, m3) = cluster
    mon1 = monitors(m1)
    peer = PeerStream(m1, m2, "cluster" if CORRALD else "server")   # as m2's mesh subscribes to m1
    try:
        remote, _ = produce_until_seen(m3, mon1)          # reached m1's hub through its mesh
        local, _ = produce_until_seen(m1, mon1)
        got = peer.wait_for(lambda e: (e.get("metadata") or {}).get("source") == f"/1.0/profiles/{local}", 10)
        assert got is not None and got["location"] == "m1", peer.error
        sources = [(e.get("metadata") or {}).get("source") for e in peer.events]
        assert f"/1.0/profiles/{remote}" not in sources     # m3's event was not sent on
        assert all(e.get("location") == "m1" for e in peer.events), peer.events
    finally:
        peer.close()


def test_host_requests_with_target(cluster):
    _, (m1, m2, m3) = cluster
    r = m1.request("GET", "/1.0?target=m2")
    assert r.status == 200
    env = r.metadata["environment"]
    assert env["server_name"] == "m2" and m2.address in env["addresses"]
    assert m1.request("GET", "/1.0?target=m1").metadata["environment"]["server_name"] == "m1"
    info = yaml.safe_load(m1.lxc("info", "--target", "m3").stdout)
    assert info["environment"]["server_name"] == "m3"
    res = m1.request("GET", "/1.0/resources?target=m3")
    assert res.status == 200 and res.metadata["cpu"]["total"] >= 1 and res.metadata["memory"]["total"] > 0
    assert "CPU" in m1.lxc("info", "--resources", "--target", "m2").stdout
    for path in ("/1.0?target=nope", "/1.0/resources?target=nope"):
        r = m1.request("GET", path)
        assert (r.status, r.json["error"]) == (404, "Cluster member not found"), (path, r.body)
    bad = m1.lxc("info", "--target", "nope", check=False)
    assert bad.returncode != 0 and "Cluster member not found" in bad.stderr


def _put_leftover(member, name: str) -> None:
    """A log dir of an instance that does not exist: corrald removes it at start, with a warning."""
    os.makedirs(os.path.join(member.dir, "logs", name), exist_ok=True)


@corrald_only
def test_warnings_of_every_member_and_mesh_after_kill9(cluster, monitors):
    _, (m1, m2, m3) = cluster
    m2.kill9()
    m3.kill9()
    # while m2 is down, a request for its host cannot be answered by m1 itself
    r = m1.request("GET", "/1.0/resources?target=m2", timeout=30)
    assert r.status >= 500, r.body
    _put_leftover(m2, "ghost-m2")
    _put_leftover(m3, "ghost-m3")
    m2.start()
    m3.start()
    cl.wait_all_online([m1, m2, m3], 3)

    by_entity = {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(by_entity) < 2:
        ws = m1.request("GET", "/1.0/warnings?recursion=1").metadata
        by_entity = {w["entity_url"]: w for w in ws if w["entity_url"] in ("/1.0/instances/ghost-m2",
                                                                           "/1.0/instances/ghost-m3")}
        time.sleep(0.2)
    assert by_entity["/1.0/instances/ghost-m2"]["location"] == "m2"
    assert by_entity["/1.0/instances/ghost-m3"]["location"] == "m3"
    # the same list from every member; ?target= does not narrow it (as LXD 5.0)
    for m in (m2, m3):
        assert {w["uuid"] for w in m.request("GET", "/1.0/warnings?recursion=1").metadata} >= \
            {w["uuid"] for w in by_entity.values()}
    listed = m1.request("GET", "/1.0/warnings?target=m3").metadata
    assert f"/1.0/warnings/{by_entity['/1.0/instances/ghost-m2']['uuid']}" in listed
    csv = m1.lxc("warning", "list", "--format", "csv", "-c", "uLt").stdout
    assert f"{by_entity['/1.0/instances/ghost-m2']['uuid']},m2," in csv
    # one member acknowledges another's warning
    uuid3 = by_entity["/1.0/instances/ghost-m3"]["uuid"]
    m1.lxc("warning", "ack", uuid3)
    assert m3.request("GET", f"/1.0/warnings/{uuid3}").metadata["status"] == "acknowledged"

    # the mesh came back: the restarted members' events reach m1, m1's reach theirs
    mon1 = monitors(m1)
    mon3 = monitors(m3)
    _, e = produce_until_seen(m3, mon1)
    assert e["location"] == "m3"
    _, e = produce_until_seen(m1, mon3)
    assert e["location"] == "m1"
    wait_links(m1, {"m2", "m3"})
    wait_links(m3, {"m1", "m2"})


@corrald_only
def test_mesh_drops_an_offline_member_and_takes_it_back(cluster, monitors):
    _, (m1, m2, m3) = cluster
    wait_links(m1, {"m2", "m3"})
    mon1 = monitors(m1)
    m3.kill9()
    cl.wait_status(m1, "m3", "Offline", cl.OFFLINE_THRESHOLD * 3 + 10)
    deadline = time.monotonic() + 10
    while "m3" in mesh_status(m1)["links"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "m3" not in mesh_status(m1)["links"]
    _, e = produce_until_seen(m2, mon1, timeout=10)     # the others' events go on meanwhile
    assert e["location"] == "m2"
    m3.start()
    cl.wait_all_online([m1, m2, m3], 3)
    wait_links(m1, {"m2", "m3"})
    _, e = produce_until_seen(m3, mon1)
    assert e["location"] == "m3"


def test_mesh_follows_join_and_removal(cluster, monitors):
    c, (m1, m2, m3) = cluster
    m4 = c.add_member(https=False)
    cl.join(m4, m1)
    cl.wait_all_online([m1, m2, m3, m4], 4)
    mon1 = monitors(m1)
    mon4 = monitors(m4)
    _, e = produce_until_seen(m4, mon1)
    assert e["location"] == "m4"
    _, e = produce_until_seen(m2, mon4)
    assert e["location"] == "m2"
    if CORRALD:
        wait_links(m1, {"m2", "m3", "m4"})
        wait_links(m4, {"m1", "m2", "m3"})
    m1.lxc("cluster", "remove", "m4")
    if CORRALD:
        wait_links(m1, {"m2", "m3"})
        wait_links(m2, {"m1", "m3"})
    _, e = produce_until_seen(m3, mon1)
    assert e["location"] == "m3"
