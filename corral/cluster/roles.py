"""Raft roles of the cluster members (voter / stand-by / spare): which changes bring them to the targets.

Pure functions, no I/O, after go-dqlite's app/roles.go (RolesChanges: Adjust, Handover) as LXD 5.0's
lxd/cluster/membership.go (Rebalance, Handover) drives it. Where go-dqlite hands back one role and a
list of candidates per call (and LXD applies candidates[0], then asks again at the next heartbeat),
`plan` iterates to the fixed point at once and returns every change, in the order to apply them.

The targets, over the members counted online (the leader always counts as online):
  - voters   = min(max_voters, online members), rounded down to an odd number (at least 1): an even
               number of voters tolerates no more failures than one fewer. With fewer than 3 members
               this is one voter, as go-dqlite's "cluster too small" rule.
  - stand-bys = min(max_standby, online members - voters).
  - an offline member holds no role: its voter or stand-by role goes to a spare.
Choices:
  - online voters and stand-bys keep their roles while within the targets (no churn);
  - a promotion to voter prefers a candidate whose failure domain no voter covers yet, then a
    stand-by over a spare (it holds a current copy), then the lowest id; a promotion to stand-by
    prefers a domain no stand-by covers, then one no voter covers, then a member that was a voter;
  - a demotion of an excess member drops one from the most crowded failure domain, then the
    highest id; the leader is never demoted;
  - no plan while the voters online are not a majority of the voters: a raft configuration change
    cannot commit without quorum (that is `corrald cluster recover-from-quorum-loss`'s job).
Order of the changes: promotions to voter first, then voter demotions (offline ones first), then
promotions to stand-by, then stand-by demotions, so the voter count never dips below the target on
the way (a handover promotes the replacement before the leaving member steps down).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace


VOTER = "voter"
STANDBY = "stand-by"
SPARE = "spare"
ROLES = (VOTER, STANDBY, SPARE)

DEFAULT_MAX_VOTERS = 3
DEFAULT_MAX_STANDBY = 2

Change = tuple[int, str]      # (member id == raft id, new role)


@dataclass
class Member:
    id: int                     # nodes.id == raft id
    name: str
    address: str
    role: str                   # "voter" | "stand-by" | "spare"
    online: bool
    failure_domain: str = ""    # "" is LXD's "default" domain, a domain like any other


def _check(members: list[Member]) -> list[Member]:
    seen: set[int] = set()
    for m in members:
        if m.role not in ROLES:
            raise ValueError(f"Unknown raft role {m.role!r} for member {m.name!r}")
        if m.id in seen:
            raise ValueError(f"Duplicate member id {m.id}")
        seen.add(m.id)
    return sorted(members, key=lambda m: m.id)


def targets(online: int, max_voters: int = DEFAULT_MAX_VOTERS,
            max_standby: int = DEFAULT_MAX_STANDBY) -> tuple[int, int]:
    """(voters, stand-bys) wanted with `online` members online."""
    if online <= 0:
        return 0, 0
    voters = max(1, min(max_voters, online))
    if voters % 2 == 0:
        voters -= 1
    return voters, max(0, min(max_standby, online - voters))


def _drop_one(chosen: list[Member], protected: int | None) -> Member | None:
    """The member to drop from `chosen`: from the most crowded failure domain, then the highest id."""
    crowd = Counter(m.failure_domain for m in chosen)
    candidates = [m for m in chosen if m.id != protected]
    if not candidates:
        return None
    return max(candidates, key=lambda m: (crowd[m.failure_domain], m.id))


def plan(members: list[Member], max_voters: int = DEFAULT_MAX_VOTERS, max_standby: int = DEFAULT_MAX_STANDBY,
         leader_id: int | None = None) -> list[Change]:
    """The role changes, in order, that bring `members` to the targets; [] when they match already."""
    ms = _check(members)
    if len(ms) <= 1:
        return []                      # a one-member cluster: its only member is the voter
    online = {m.id for m in ms if m.online or m.id == leader_id}
    if not online:
        return []
    voters_now = [m for m in ms if m.role == VOTER]
    online_voters = [m for m in voters_now if m.id in online]
    if voters_now and 2 * len(online_voters) <= len(voters_now):
        return []                      # no quorum: no configuration change can commit
    want_voters, want_standbys = targets(len(online), max_voters, max_standby)
    protected = leader_id if any(m.id == leader_id for m in online_voters) else None

    # Voters: keep the online ones, drop the excess, then promote the best candidates one by one.
    voters = list(online_voters)
    dropped_voters: list[Member] = []
    while len(voters) > want_voters:
        m = _drop_one(voters, protected)
        if m is None:
            break
        voters.remove(m)
        dropped_voters.append(m)
    promoted_voters: list[Member] = []
    while len(voters) < want_voters:
        chosen = {m.id for m in voters}
        pool = [m for m in ms if m.id in online and m.id not in chosen and m.role != VOTER]
        if not pool:
            break
        covered = {m.failure_domain for m in voters}
        best = min(pool, key=lambda m: (m.failure_domain in covered, m.role != STANDBY, m.id))
        voters.append(best)
        promoted_voters.append(best)
    voter_ids = {m.id for m in voters}

    # Stand-bys: from the online members that are not voters.
    rest = [m for m in ms if m.id in online and m.id not in voter_ids]
    standbys = [m for m in rest if m.role == STANDBY]
    dropped_standbys: list[Member] = []
    while len(standbys) > want_standbys:
        m = _drop_one(standbys, None)
        standbys.remove(m)
        dropped_standbys.append(m)
    promoted_standbys: list[Member] = []
    while len(standbys) < want_standbys:
        chosen = {m.id for m in standbys}
        pool = [m for m in rest if m.id not in chosen and m.role != STANDBY]
        if not pool:
            break
        by_standbys = {m.failure_domain for m in standbys}
        by_voters = {m.failure_domain for m in voters}
        best = min(pool, key=lambda m: (m.failure_domain in by_standbys, m.failure_domain in by_voters,
                                        m.role != VOTER, m.id))
        standbys.append(best)
        promoted_standbys.append(best)
    standby_ids = {m.id for m in standbys}

    def final(m: Member) -> str:
        return VOTER if m.id in voter_ids else STANDBY if m.id in standby_ids else SPARE

    changes: list[Change] = [(m.id, VOTER) for m in promoted_voters]
    offline_voters = [m for m in voters_now if m.id not in online]
    changes += [(m.id, final(m)) for m in offline_voters + dropped_voters]
    changes += [(m.id, STANDBY) for m in promoted_standbys if m.role != VOTER]
    offline_standbys = [m for m in ms if m.role == STANDBY and m.id not in online]
    changes += [(m.id, SPARE) for m in offline_standbys + dropped_standbys]
    return changes


def apply(members: list[Member], changes: list[Change]) -> list[Member]:
    """A copy of `members` with `changes` applied (what the cluster looks like afterwards)."""
    new = dict(changes)
    return [replace(m, role=new.get(m.id, m.role)) for m in members]


def handover(members: list[Member], leaving_id: int, max_voters: int = DEFAULT_MAX_VOTERS,
             max_standby: int = DEFAULT_MAX_STANDBY, leader_id: int | None = None) -> list[Change]:
    """A member leaving gracefully (shutdown, removal): promote its replacement first, then demote it
    to spare. As go-dqlite's Handover, the replacement of a voter is an online stand-by (preferred)
    or spare, the replacement of a stand-by an online spare, each preferring a failure domain its
    remaining peers do not cover. This is `plan` with the leaving member counted offline, so the
    cluster is balanced once it has gone ([] when it holds no role, or is unknown).

    The leader transfers leadership before it leaves: handing over the leader is refused."""
    ms = _check(members)
    leaving = next((m for m in ms if m.id == leaving_id), None)
    if leaving is None or leaving.role == SPARE:
        return []
    if leaving_id == leader_id:
        raise ValueError("The leader must transfer leadership before handing over its role")
    # As go-dqlite's Handover: the leaving member still acks while it goes, so the change never
    # waits for a quorum without it; the others keep their roles (the next rebalance evens out the
    # rest once it has gone), and only a replacement is promoted first.
    others = [m for m in ms if m.id != leaving_id and m.online]
    spares = sorted((m for m in others if m.role == SPARE), key=lambda m: m.id)
    first: list[Change] = []      # the replacement, promoted before the leaving member steps down
    after: list[Change] = []      # a stand-by promoted to voter hands its own role on to a spare
    if leaving.role == VOTER:
        pool = [m for m in others if m.role in (STANDBY, SPARE)]
        if pool:
            covered = {m.failure_domain for m in others if m.role == VOTER}
            best = min(pool, key=lambda m: (m.failure_domain in covered, m.role != STANDBY, m.id))
            first.append((best.id, VOTER))
            rest = [m for m in spares if m.id != best.id]
            if best.role == STANDBY and rest:
                after.append((rest[0].id, STANDBY))
    elif spares:
        covered = {m.failure_domain for m in others if m.role == STANDBY}
        first.append((min(spares, key=lambda m: (m.failure_domain in covered, m.id)).id, STANDBY))
    return first + [(leaving_id, SPARE)] + after


# Validators of the server keys cluster.max_voters and cluster.max_standby, with LXD 5.0's texts
# (lxd/cluster/config.go maxVotersValidator, maxStandByValidator). They parse the raw string as
# Go's strconv.Atoi does and return the int.
