"""ISSUE12 acceptance 5: raft roles. Five members hold the targets (cluster.max_voters 3,
cluster.max_standby 2); `lxc cluster remove --force` of a voter promotes a stand-by before the call
returns, the roles match the targets again, and again once a fifth member is back. Also the roles a
user may set (`lxc cluster role add|remove`) and the voters' key's validation."""
import re

import pytest

from clusterlib import (form, join, members_api, raft_nodes, role_counts, wait_leader, wait_roles)
from helpers import wait_for


def roles_of(members: list[dict]) -> dict[str, set]:
    return {x["server_name"]: set(x.get("roles") or []) for x in members}


@pytest.mark.timeout(300)
def test_force_removing_a_voter_promotes_a_standby_before_the_call_returns(cluster_factory):
    c = cluster_factory()
    ms = form(c, 5)
    leader = wait_leader(ms)
    before = roles_of(wait_roles(leader, 5, voters=3, standby=2, timeout=30))
    for m in ms:   # every member reads the same roles
        assert roles_of(members_api(m)) == before
    voters = {n for n, r in before.items() if "database" in r}
    standbys = {n for n, r in before.items() if "database-standby" in r}
    victim = c.member(sorted(voters - {leader.name})[0])

    victim.kill9()   # it died; it is removed before anyone noticed (the offline threshold is 20 s)
    res = leader.lxc("cluster", "remove", "--force", "--yes", victim.name)
    assert f"Member {victim.name} removed" in res.stdout, res.stdout
    after = members_api(leader)   # at once: the rebalance ran within the call
    got = roles_of(after)
    assert victim.name not in got and len(got) == 4
    assert role_counts(after) == {"voters": 3, "standby": 1, "leaders": 1}, got
    promoted = {n for n, r in got.items() if "database" in r} - voters
    assert len(promoted) == 1 and promoted <= standbys, (before, got)
    rest = [m for m in ms if m is not victim]
    for m in rest:
        assert roles_of(members_api(m)) == got
    # the raft configuration follows: the victim leaves every member's raft_nodes
    for m in rest:
        wait_for(lambda: victim.address not in [n["address"] for n in raft_nodes(m)], timeout=25, interval=0.5)
    c.forget(victim)

    # a fifth member again: back to 3 voters and 2 stand-bys
    newcomer = c.add_member(https=False)
    join(newcomer, leader)
    final = wait_roles(leader, 5, voters=3, standby=2, timeout=30)
    assert roles_of(final)[newcomer.name] <= {"database-standby", "database"}


@pytest.mark.timeout(180)
def test_user_roles_and_the_voters_key(cluster_factory):
    ms = form(cluster_factory(), 3)
    m1, m2 = ms[0], ms[1]
    m1.lxc("cluster", "role", "add", m2.name, "event-hub")
    assert "event-hub" in roles_of(members_api(m1))[m2.name]
    assert "event-hub" in m2.lxc("cluster", "show", m2.name).stdout
    m1.lxc("cluster", "role", "remove", m2.name, "event-hub")
    assert "event-hub" not in roles_of(members_api(m2))[m2.name]
    # cluster.max_voters: odd, at least 3
    for bad in ("4", "1"):
        res = m1.lxc("config", "set", "cluster.max_voters", bad, check=False)
        assert res.returncode != 0 and re.search(r"(?i)odd|3", res.stderr), res.stderr
    res = m1.lxc("config", "set", "cluster.max_standby", "-1", check=False)
    assert res.returncode != 0, res.stdout
    assert role_counts(members_api(m1)) == {"voters": 3, "standby": 0, "leaders": 1}
