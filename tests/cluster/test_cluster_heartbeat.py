"""ISSUE12 acceptance 2 and 6: one replicated database (a write on any member is read on every member),
heartbeats (a killed member is Offline within cluster.offline_threshold plus one interval, Online again
after a restart, client listings send no heartbeat), and a join notification during a held-open leader
round reaching every member in the next round.

Heartbeat counters come from corrald's test endpoint on the unix socket:
GET /internal/testing/heartbeat -> {"rounds", "sent", "received"}; POST {"hold": true|false} holds the
leader's round after it took its member list, before it sends."""
import time

import pytest

from clusterlib import (DAEMON, OFFLINE_THRESHOLD, form, heartbeat_counters, hold_heartbeat, join, members_api,
                        members_csv, members_lxc, raft_nodes, set_server_config, wait_all_online, wait_leader,
                        wait_status)
from helpers import wait_for

# The real LXD has no counters: with CORRAL_CLUSTER_DAEMON=lxd the counting is left out.
COUNTERS = DAEMON == "corrald"


@pytest.mark.timeout(180)
def test_a_write_on_any_member_is_read_on_every_member(cluster_factory):
    ms = form(cluster_factory(), 3)
    for m in ms:
        r = m.request("POST", "/1.0/profiles", {"name": f"from-{m.name}", "description": f"written on {m.name}",
                                                "config": {"user.origin": m.name}, "devices": {}})
        assert r.status in (200, 201), r.body
        for reader in ms:   # at once: reads on any member see the write (no waiting for replication)
            got = reader.request("GET", f"/1.0/profiles/from-{m.name}")
            assert got.status == 200, (reader.name, got.body)
            assert got.metadata["description"] == f"written on {m.name}"
            assert got.metadata["config"] == {"user.origin": m.name}
    for reader in ms:
        out = reader.sql("global", "SELECT name FROM profiles WHERE name LIKE 'from-%' ORDER BY name").stdout
        assert all(f"from-{m.name}" in out for m in ms), (reader.name, out)
        # every member's local raft_nodes lists the three members (kept current)
        wait_for(lambda: sorted(n["address"] for n in raft_nodes(reader)) == sorted(m.address for m in ms),
                 timeout=OFFLINE_THRESHOLD + 5, interval=0.5)
    # an update on one member is seen by the others, and so is a delete
    ms[2].lxc("profile", "set", "from-m1", "user.origin", "changed")
    assert ms[0].request("GET", "/1.0/profiles/from-m1").metadata["config"]["user.origin"] == "changed"
    ms[1].lxc("profile", "delete", "from-m3")
    assert ms[2].request("GET", "/1.0/profiles/from-m3").status == 404


def counters(ms) -> dict:
    return {m.name: heartbeat_counters(m) for m in ms}


def assert_no_client_heartbeats(ms, leader, before, after, seconds, interval, size=None):
    """Only the leader sent heartbeats, and no more than its timer's rounds account for (to every
    other member of the cluster's `size`, a dead one included: the leader keeps trying it)."""
    rounds = after[leader.name]["rounds"] - before[leader.name]["rounds"]
    assert rounds <= seconds / interval + 2, (rounds, seconds, interval)
    others = (size or len(ms)) - 1
    sent = {m.name: after[m.name]["sent"] - before[m.name]["sent"] for m in ms}
    assert sent[leader.name] <= (rounds + 1) * others, (sent, rounds)
    assert all(v == 0 for k, v in sent.items() if k != leader.name), f"a non-leader sent heartbeats: {sent}"
    for m in ms:
        if m is not leader:
            assert after[m.name]["received"] - before[m.name]["received"] <= rounds + 1, (m.name, before, after)


@pytest.mark.timeout(240)
def test_killed_member_is_offline_within_the_threshold_and_online_after_restart(cluster_factory):
    ms = form(cluster_factory(), 3)
    threshold = OFFLINE_THRESHOLD
    interval = threshold / 2
    leader = wait_leader(ms)
    # The threshold is lowered while every heartbeat is older than the new value (corrald's hold hook
    # keeps the leader's round from sending): every member still gets the new value at once.
    if COUNTERS:
        hold_heartbeat(leader, True)
    try:
        if COUNTERS:
            time.sleep(threshold + 1.0)
        set_server_config(ms[0], {"cluster.offline_threshold": str(threshold)})
        for m in ms:
            assert m.request("GET", "/1.0").metadata["config"]["cluster.offline_threshold"] == str(threshold), m
    finally:
        if COUNTERS:
            hold_heartbeat(leader, False)
    victim, observer = [m for m in ms if m is not leader]
    time.sleep(interval + 0.5)   # the new interval is in force (it applies at once; one round to be sure)

    # listings on every member, the lxc client's and the API's, trigger no heartbeat
    if COUNTERS:
        before, t0 = counters(ms), time.monotonic()
    for _ in range(8):
        for m in ms:
            members_lxc(m)
            members_api(m)
    if COUNTERS:
        after = counters(ms)
        assert_no_client_heartbeats(ms, leader, before, after, time.monotonic() - t0, interval)

    # kill -9 of a non-leader: Offline within the threshold plus one interval, on the leader and elsewhere
    if COUNTERS:
        before, t0 = counters(ms), time.monotonic()
    victim.kill9()
    killed = time.monotonic()
    wait_status(leader, victim.name, "Offline", timeout=threshold + interval + 10)
    seen_leader = time.monotonic() - killed
    wait_status(observer, victim.name, "Offline", timeout=threshold + interval + 10)
    seen_observer = time.monotonic() - killed   # (by then at the latest)
    assert seen_leader <= threshold + interval + 0.5, seen_leader
    assert seen_observer <= threshold + interval + 0.5, seen_observer
    # Offline comes from the heartbeat's age, not from the first failed request
    assert seen_leader >= threshold - interval - 1.0, seen_leader
    shown = {x["server_name"]: x for x in members_api(observer)}[victim.name]
    assert shown["message"].startswith("No heartbeat for "), shown
    assert {r["name"]: r["state"] for r in members_csv(leader)} == \
        {leader.name: "ONLINE", observer.name: "ONLINE", victim.name: "OFFLINE"}
    if COUNTERS:   # all that polling sent no heartbeat either
        after = counters([leader, observer])
        assert_no_client_heartbeats([leader, observer], leader, before, after, time.monotonic() - t0, interval,
                                    size=len(ms))

    # restarted: Online again at the next good heartbeat
    victim.start()
    ready = time.monotonic()
    wait_status(leader, victim.name, "Online", timeout=threshold + 10)
    assert time.monotonic() - ready <= threshold + 1.0
    wait_all_online(ms, 3, timeout=threshold + 5)


@pytest.mark.timeout(240)
def test_join_during_a_held_leader_round_reaches_every_member_in_the_next_round(cluster_factory):
    c = cluster_factory()
    ms = form(c, 3)
    threshold = 20   # interval 10 s: the round after the held one is the re-run, not the timer's
    interval = threshold / 2
    set_server_config(ms[0], {"cluster.offline_threshold": str(threshold)})
    leader = wait_leader(ms)
    newcomer = c.add_member(https=False)

    hold_heartbeat(leader, True)
    try:
        # wait for a round that started after the hold (it takes its member list, the three, then
        # holds): the endpoint's "held" when it has one, else the next count of "rounds"
        start = heartbeat_counters(leader)
        deadline = time.monotonic() + interval + 2
        while time.monotonic() < deadline:
            now = heartbeat_counters(leader)
            if now.get("held") is True or ("held" not in now and now["rounds"] > start["rounds"]):
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"no heartbeat round started within {interval + 2}s: {now}")
        held = heartbeat_counters(leader)
        join(newcomer, ms[0])   # its join notification arrives during the held round
        assert heartbeat_counters(leader)["sent"] == held["sent"], "the held round sent while held"
    finally:
        hold_heartbeat(leader, False)
    released = time.monotonic()
    everyone = ms + [newcomer]
    # the round again at once, with the fresh list, to the 3 others (the held pass's stale requests
    # are dropped: no member is sent the stale list after the announcement)
    wait_for(lambda: heartbeat_counters(leader)["sent"] - held["sent"] >= 3, timeout=5, interval=0.05)
    assert time.monotonic() - released < interval / 2
    assert heartbeat_counters(newcomer)["received"] >= 1
    for m in everyone:   # every member has the newcomer in the data of that round
        wait_for(lambda: newcomer.address in [n["address"] for n in raft_nodes(m)], timeout=3, interval=0.2)
        assert newcomer.name in {x["server_name"] for x in members_api(m)}
    assert time.monotonic() - released < interval
    wait_all_online(everyone, 4, timeout=15)
