"""ISSUE12 acceptance 3, 4 and 7: the leader killed under a steady write load (writes succeed again
within 2 s, no acknowledged write lost), the leader shut down gracefully (leadership handed over first:
the writers see no error), and quorum loss repaired with `corrald cluster recover-from-quorum-loss`.

The load: one thread per member creating profiles `w-<member>-<n>` over its unix socket, one request
at a time, every attempt recorded (clusterlib.Writer)."""
import re
import time

import pytest
import yaml

from clusterlib import (DAEMON, Writer, form, members_api, profile_names, raft_nodes, set_server_config,
                        wait_all_online, wait_leader)

# Writes succeed again within this long after the leader's kill -9. The real LXD 5.0.2 takes about
# 6.6 s here (host-facts.md); with CORRAL_CLUSTER_DAEMON=lxd the bound is LXD's, to check the rest.
RECOVERY = 2.0 if DAEMON == "corrald" else 12.0


def start_writers(ms, timeout: float, tag: str = "") -> dict:
    ws = {m.name: Writer(m, timeout=timeout, **({"tag": f"{tag}{m.name}"} if tag else {})) for m in ms}
    for w in ws.values():
        w.start()
    return ws


def stop_writers(ws: dict) -> None:
    for w in ws.values():
        w.stop()


def assert_everywhere(ms, acked: set) -> None:
    for m in ms:
        missing = acked - profile_names(m)
        assert not missing, f"{m.name} lacks {len(missing)} acknowledged writes, e.g. {sorted(missing)[:5]}"


@pytest.mark.timeout(240)
def test_leader_killed_under_write_load_writes_resume_within_2s_and_none_is_lost(cluster_factory):
    ms = form(cluster_factory(), 3)
    leader = wait_leader(ms)
    survivors = [m for m in ms if m is not leader]
    # a request timeout below the bound: a write stuck on the dead leader does not hide the recovery
    ws = start_writers(ms, timeout=min(1.0, RECOVERY / 2))
    try:
        time.sleep(2.0)
        steady = {n: (len(w.acked), len(w.errors())) for n, w in ws.items()}
        killed = time.monotonic()
        leader.kill9()
        time.sleep(RECOVERY + 4.0)
    finally:
        stop_writers(ws)
    assert all(acks > 10 and errs == 0 for acks, errs in steady.values()), f"no steady load before the kill: {steady}"
    for m in survivors:
        w = ws[m.name]
        first = w.first_ok_started_after(killed)
        assert first is not None, f"{m.name}: no write succeeded after the kill: {w.attempts[-5:]}"
        assert first.end - killed <= RECOVERY, f"{m.name}: writes resumed {first.end - killed:.2f}s after the kill"
        late = w.errors(since=killed + RECOVERY)
        assert not late, f"{m.name}: errors after recovery: {late[:5]}"
    wait_leader(survivors, among=survivors)

    # the old leader comes back; every acknowledged write (its own before the kill too) is on every member
    leader.start()
    wait_all_online(ms, 3, timeout=30)
    acked = {n for w in ws.values() for n in w.acked}
    assert_everywhere(ms, acked)


@pytest.mark.timeout(240)
def test_leader_shutdown_hands_leadership_over_first_and_writers_see_no_error(cluster_factory):
    ms = form(cluster_factory(), 3)
    leader = wait_leader(ms)
    others = [m for m in ms if m is not leader]
    ws = start_writers(others, timeout=5.0)
    try:
        time.sleep(1.5)
        began = time.monotonic()
        res = leader.shutdown(timeout=60)
        ended = time.monotonic()
        time.sleep(3.0)
    finally:
        stop_writers(ws)
    assert res.returncode == 0, res.stderr
    assert leader.proc.returncode == 0, leader.log_tail()
    for m in others:
        w = ws[m.name]
        assert not w.errors(), f"{m.name}: writers saw errors around the leader's shutdown: {w.errors()[:5]}"
        assert w.first_ok_started_after(began) is not None and w.first_ok_started_after(ended) is not None
    new = wait_leader(others, among=others)
    assert new is not leader

    leader.start()
    wait_all_online(ms, 3, timeout=30)
    assert_everywhere(ms, {n for w in ws.values() for n in w.acked})


@pytest.mark.timeout(240)
def test_quorum_loss_recover_from_quorum_loss_brings_the_last_member_back_writable(cluster_factory):
    ms = form(cluster_factory(), 3)
    last, gone = ms[0], ms[1:]
    for i in range(5):
        r = last.request("POST", "/1.0/profiles", {"name": f"before-loss-{i}", "config": {}, "devices": {}})
        assert r.status in (200, 201), r.body
    for m in gone:
        m.kill9()
    # two of three voters gone: no quorum, no write
    try:
        r = last.request("POST", "/1.0/profiles", {"name": "during-loss", "config": {}, "devices": {}}, timeout=5)
        assert r.status not in (200, 201), "a write succeeded without quorum"
    except OSError:
        pass   # timed out: as good as refused

    # refused while the daemon runs, saying why
    res = last.corrald("cluster", "recover-from-quorum-loss", "--quiet")
    assert res.returncode != 0 and re.search(r"(?i)daemon is running", res.stderr), (res.stdout, res.stderr)
    last.kill9()   # stopped (a daemon without quorum may not shut down cleanly)
    res = last.corrald("cluster", "recover-from-quorum-loss", "--quiet")
    assert res.returncode == 0, (res.stdout, res.stderr)
    # the raft member list, read offline: this member is the only voter
    shown = last.corrald("cluster", "show", check=True).stdout
    voters = [x["address"] for x in (yaml.safe_load(shown) or {}).get("members", []) if x.get("role") == "voter"]
    assert voters == [last.address], shown

    last.start()
    nodes = raft_nodes(last)
    assert [n["address"] for n in nodes if n["role"] == 0] == [last.address], nodes
    r = last.request("POST", "/1.0/profiles", {"name": "after-recovery", "config": {}, "devices": {}}, timeout=30)
    assert r.status in (200, 201), r.body
    names = profile_names(last)
    assert {f"before-loss-{i}" for i in range(5)} | {"after-recovery"} <= names
    listed = {x["server_name"]: x for x in members_api(last)}
    assert "database-leader" in listed[last.name]["roles"] and "database" in listed[last.name]["roles"]
    for m in gone:   # still known, not voters any more
        assert "database" not in (listed[m.name].get("roles") or []), listed[m.name]
    # the dead members can then be removed for good
    for m in gone:
        last.lxc("cluster", "remove", "--force", "--yes", m.name)
    assert [x["server_name"] for x in members_api(last)] == [last.name]
    r = last.request("POST", "/1.0/profiles", {"name": "after-removal", "config": {}, "devices": {}}, timeout=30)
    assert r.status in (200, 201), r.body


@pytest.mark.timeout(300)
def test_repeated_leadership_transfers_under_fast_heartbeats_never_fail(cluster_factory):
    """Each graceful restart of the leader is a dqlite TRANSFER; with heartbeats every second (the
    smallest threshold) some reach a member just as it becomes a candidate: no transfer fails for it,
    and writers on the others see no error."""
    ms = form(cluster_factory(), 3)
    set_server_config(ms[0], {"cluster.offline_threshold": "2"})
    time.sleep(1.5)
    for rep in range(3):
        leader = wait_leader(ms)
        others = [m for m in ms if m is not leader]
        ws = start_writers(others, timeout=5.0, tag=f"t{rep}")
        try:
            time.sleep(0.5)
            res = leader.shutdown(timeout=60)
            time.sleep(1.0)
        finally:
            stop_writers(ws)
        assert res.returncode == 0 and leader.proc.returncode == 0, res.stderr + leader.log_tail()
        assert "leadership handed over" in leader.log_tail(200), leader.log_tail()
        for m in others:
            assert not ws[m.name].errors(), ws[m.name].errors()[:5]
        assert wait_leader(others, among=others) is not leader
        leader.start()
        wait_all_online(ms, 3, timeout=30)
