"""Raft role rebalance (corral/cluster/roles.py): targets, preferences, leader protection, ordering
that keeps quorum, idempotence, handover, and the cluster.max_voters / max_standby validators."""
import itertools
import random

import pytest

from corral.cluster import roles
from corral.config import server as server_keys
from corral.cluster.roles import SPARE, STANDBY, VOTER, Member, apply, handover, plan

LETTER = {"V": VOTER, "S": STANDBY, "P": SPARE}


def cluster(spec: str) -> list[Member]:
    """ "V S P! V:rack2" -> members 1.. with a role letter, "!" = offline, ":domain" = failure domain."""
    out = []
    for i, tok in enumerate(spec.split(), start=1):
        tok, _, domain = tok.partition(":")
        out.append(Member(i, f"m{i}", f"10.0.0.{i}:8443", LETTER[tok[0]], not tok.endswith("!"), domain))
    return out


def roles_of(members: list[Member]) -> str:
    return " ".join({VOTER: "V", STANDBY: "S", SPARE: "P"}[m.role] for m in members)


def has_quorum(members: list[Member], leader: int | None) -> bool:
    voters = [m for m in members if m.role == VOTER]
    online = [m for m in voters if m.online or m.id == leader]
    return not voters or 2 * len(online) > len(voters)


def check_targets(members, max_voters, max_standby, leader):
    online = [m for m in members if m.online or m.id == leader]
    want_v, want_s = roles.targets(len(online), max_voters, max_standby)
    assert sum(m.role == VOTER for m in online) == want_v, roles_of(members)
    assert sum(m.role == STANDBY for m in online) == want_s, roles_of(members)
    assert all(m.role == SPARE for m in members if m not in online), roles_of(members)


@pytest.mark.parametrize("online,max_voters,max_standby,want", [
    (1, 3, 2, (1, 0)), (2, 3, 2, (1, 1)), (3, 3, 2, (3, 0)), (4, 3, 2, (3, 1)), (5, 3, 2, (3, 2)),
    (6, 3, 2, (3, 2)), (7, 3, 2, (3, 2)), (4, 5, 2, (3, 1)), (5, 5, 2, (5, 0)), (7, 5, 2, (5, 2)),
    (9, 7, 0, (7, 0)), (0, 3, 2, (0, 0)),
])
def test_targets(online, max_voters, max_standby, want):
    assert roles.targets(online, max_voters, max_standby) == want


# (cluster, max_voters, max_standby, expected changes); member 1 is the leader.
CASES = [
    ("V", 3, 2, []),                                          # standalone: a one-member cluster
    ("V P", 3, 2, [(2, STANDBY)]),                            # LXD: the 2nd member is a stand-by
    ("V S", 3, 2, []),
    ("V V", 3, 2, [(2, STANDBY)]),                            # an even voter count is rounded down
    ("V S P", 3, 2, [(2, VOTER), (3, VOTER)]),                # the 3rd member: three voters
    ("V P S", 3, 2, [(3, VOTER), (2, VOTER)]),                # the stand-by is promoted first
    ("V V V", 3, 2, []),
    ("V V V P", 3, 2, [(4, STANDBY)]),
    ("V V V S P", 3, 2, [(5, STANDBY)]),
    ("V V V S S", 3, 2, []),
    ("V V V S S P P", 3, 2, []),                              # more members than roles: spares
    ("V V V V V", 3, 2, [(5, STANDBY), (4, STANDBY)]),        # max_voters lowered: demoted to stand-by
    ("V V V V V P P", 3, 1, [(5, SPARE), (4, STANDBY)]),
    ("V V V! S P", 3, 2, [(4, VOTER), (3, SPARE), (5, STANDBY)]),   # offline voter replaced
    ("V V V! P P", 3, 2, [(4, VOTER), (3, SPARE), (5, STANDBY)]),
    ("V V V! S S", 3, 2, [(4, VOTER), (3, SPARE)]),           # one stand-by left: 4 online -> 3+1
    ("V V V S! S", 3, 2, [(4, SPARE)]),                       # offline stand-by, nobody to replace it
    ("V V V S! S P", 3, 2, [(6, STANDBY), (4, SPARE)]),
    ("V V V!", 3, 2, [(3, SPARE), (2, STANDBY)]),             # 2 online of 3: one voter, one stand-by
    ("V V! V!", 3, 2, []),                                    # no quorum: nothing can commit
    ("V V V! V! V", 5, 2, [(3, SPARE), (4, SPARE)]),          # 3 online of 5 voters: 3 voters
    ("V V V V V", 5, 2, []),
    ("V V V S S P P", 5, 2, [(4, VOTER), (5, VOTER), (6, STANDBY), (7, STANDBY)]),
    ("V V V S S P", 5, 0, [(4, VOTER), (5, VOTER)]),          # 6 online -> 5 voters, no stand-by wanted
    ("V V V S S", 3, 0, [(5, SPARE), (4, SPARE)]),
    ("V S! P", 3, 2, [(3, STANDBY), (2, SPARE)]),           # replacement first
]


@pytest.mark.parametrize("spec,max_voters,max_standby,want", CASES)
def test_plan_table(spec, max_voters, max_standby, want):
    members = cluster(spec)
    got = plan(members, max_voters, max_standby, leader_id=1)
    assert got == want
    if has_quorum(members, 1) and got:
        after = apply(members, got)
        check_targets(after, max_voters, max_standby, 1)
        assert plan(after, max_voters, max_standby, leader_id=1) == []


def test_the_leader_is_never_demoted():
    # Voters are dropped from the highest id down; the leader (5) stays.
    members = cluster("V V V V V")
    got = plan(members, 3, 2, leader_id=5)
    assert (5, STANDBY) not in got and (5, SPARE) not in got
    assert got == [(4, STANDBY), (3, STANDBY)]
    # A leader whose own heartbeat looks stale still counts as online and keeps its role.
    members = cluster("V! V V P")
    got = plan(members, 3, 2, leader_id=1)
    assert got == [(4, STANDBY)]


def test_without_a_leader_an_offline_member_is_just_offline():
    assert plan(cluster("V! V V P"), 3, 2) == [(4, VOTER), (1, SPARE)]


def test_failure_domains_steer_promotions():
    # The voters cover rack1; a spare in rack2 beats a stand-by in rack1.
    members = cluster("V:rack1 V:rack1 V!:rack2 S:rack1 P:rack2")
    assert plan(members, 3, 2, leader_id=1)[:2] == [(5, VOTER), (3, SPARE)]
    # Without a domain difference the stand-by wins.
    members = cluster("V:rack1 V:rack1 V!:rack2 S:rack1 P:rack1")
    assert plan(members, 3, 2, leader_id=1)[:2] == [(4, VOTER), (3, SPARE)]
    # Promotions spread over the domains one at a time.
    members = cluster("V:a P:a P:a P:b P:c")
    got = plan(members, 3, 2, leader_id=1)
    assert [c for c in got if c[1] == VOTER] == [(4, VOTER), (5, VOTER)]


def test_failure_domains_steer_standbys_and_demotions():
    # Stand-bys: a domain no stand-by covers, then one no voter covers.
    members = cluster("V:a V:b V:c P:a P:d P:a")
    assert plan(members, 3, 2, leader_id=1) == [(5, STANDBY), (4, STANDBY)]
    # Excess voters leave the most crowded domain first.
    members = cluster("V:a V:a V:a V:b V:c")
    assert plan(members, 3, 0, leader_id=1) == [(3, SPARE), (2, SPARE)]


def test_default_domain_is_one_domain():
    members = cluster("V V:x P P:x P:y")
    got = plan(members, 3, 2, leader_id=1)
    assert got[0] == (5, VOTER)                 # y: covered by no voter ("" and x are)


def _configs(n):
    for roles_ in itertools.product("VSP", repeat=n):
        for online in itertools.product((True, False), repeat=n):
            yield " ".join(r + ("" if up else "!") for r, up in zip(roles_, online))


def _check_plan(members, max_voters, max_standby, leader):
    got = plan(members, max_voters, max_standby, leader_id=leader)
    if not has_quorum(members, leader) or len(members) <= 1:
        assert got == []
        return
    ids = [i for i, _ in got]
    assert len(ids) == len(set(ids)), got                     # one change per member
    assert all(role != m.role for i, role in got for m in members if m.id == i)
    state = members
    for change in got:                                         # quorum holds after every step
        state = apply(state, [change])
        assert has_quorum(state, leader), (roles_of(members), got, change)
    if leader is not None and any(m.id == leader and m.role == VOTER for m in members):
        assert dict(got).get(leader, VOTER) == VOTER
    if any(m.online or m.id == leader for m in members):
        check_targets(state, max_voters, max_standby, leader)
    assert plan(state, max_voters, max_standby, leader_id=leader) == []    # idempotent


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_every_small_cluster(n):
    for spec in _configs(n):
        members = cluster(spec)
        leaders = [None] + [m.id for m in members if m.role == VOTER][:1]
        for leader in leaders:
            for mv, ms in ((3, 2), (5, 1), (3, 0)):
                _check_plan(members, mv, ms, leader)


@pytest.mark.parametrize("n", [6, 7])
def test_random_larger_clusters(n):
    rnd = random.Random(n)
    for _ in range(1500):
        members = [Member(i, f"m{i}", f"a{i}", rnd.choice(roles.ROLES), rnd.random() < 0.8,
                          rnd.choice(["", "a", "b"])) for i in range(1, n + 1)]
        voters = [m.id for m in members if m.role == VOTER]
        leader = rnd.choice(voters) if voters else None
        _check_plan(members, rnd.choice([3, 5, 7]), rnd.randint(0, 5), leader)


def test_plan_refuses_bad_input():
    with pytest.raises(ValueError, match="Unknown raft role"):
        plan([Member(1, "a", "x", "leader", True)])
    with pytest.raises(ValueError, match="Duplicate member id"):
        plan([Member(1, "a", "x", VOTER, True), Member(1, "b", "y", SPARE, True)])


def test_plan_does_not_touch_its_input():
    members = cluster("V V V! S P")
    before = [(m.id, m.role, m.online) for m in members]
    plan(members, leader_id=1)
    assert [(m.id, m.role, m.online) for m in members] == before


@pytest.mark.parametrize("spec,leaving,want", [
    ("V V V S", 3, [(4, VOTER), (3, SPARE)]),                         # stand-by replaces the voter
    ("V V V S P", 2, [(4, VOTER), (2, SPARE), (5, STANDBY)]),       # ... and a spare the stand-by
    ("V V V P", 3, [(4, VOTER), (3, SPARE)]),                         # a spare when no stand-by
    ("V V V S S", 4, [(4, SPARE)]),                                   # stand-by leaving, no spare
    ("V V V S S P", 5, [(6, STANDBY), (5, SPARE)]),
    ("V V V S P", 5, []),                                              # a spare holds nothing
    ("V V V S", 9, []),                                                # not a member
    ("V V V", 3, [(3, SPARE)]),     # no replacement: only it goes (the next rebalance evens the rest)
])
def test_handover(spec, leaving, want):
    members = cluster(spec)
    got = handover(members, leaving, leader_id=1)
    assert got == want
    if got:
        # Promotion before demotion: the leaving member steps down after its replacement.
        pos = [i for i, _ in got].index(leaving)
        held = next(m.role for m in members if m.id == leaving)
        assert all(k < pos for k, (_, role) in enumerate(got) if role == held)
        after = apply(members, got)
        gone = [Member(m.id, m.name, m.address, m.role, m.online and m.id != leaving, m.failure_domain)
                for m in after]
        # Once it has gone the others' roles are left to the next rebalance, which never needs to
        # touch the member that left or the replacement
        assert all(i not in (leaving, got[0][0]) for i, _ in plan(gone, leader_id=1))


def test_handover_prefers_a_domain_its_peers_lack():
    members = cluster("V:a V:b V:c S:a S:c")
    assert handover(members, 3, leader_id=1)[0] == (5, VOTER)     # c is left uncovered by 3's leaving


def test_handover_of_the_leader_is_refused():
    with pytest.raises(ValueError, match="transfer leadership"):
        handover(cluster("V V V S"), 1, leader_id=1)


@pytest.mark.parametrize("value,want", [("3", 3), ("5", 5), ("7", 7), ("+9", 9), ("101", 101)])
def test_validate_max_voters_accepts(value, want):
    assert server_keys.validate_max_voters(value) == want


@pytest.mark.parametrize("value,message", [
    ("1", "Value must be an odd number equal to or higher than 3"),
    ("2", "Value must be an odd number equal to or higher than 3"),
    ("4", "Value must be an odd number equal to or higher than 3"),
    ("-3", "Value must be an odd number equal to or higher than 3"),
    ("three", "Value is not a number"), ("3.0", "Value is not a number"), (" 3", "Value is not a number"),
    ("", "Value is not a number"),
])
def test_validate_max_voters_refuses(value, message):
    with pytest.raises(ValueError) as e:
        server_keys.validate_max_voters(value)
    assert str(e.value) == message


@pytest.mark.parametrize("value,want", [("0", 0), ("2", 2), ("5", 5)])
def test_validate_max_standby_accepts(value, want):
    assert server_keys.validate_max_standby(value) == want


@pytest.mark.parametrize("value,message", [
    ("6", "Value must be between 0 and 5"), ("-1", "Value must be between 0 and 5"),
    ("two", "Value is not a number"), ("1e1", "Value is not a number"),
])
def test_validate_max_standby_refuses(value, message):
    with pytest.raises(ValueError) as e:
        server_keys.validate_max_standby(value)
    assert str(e.value) == message
