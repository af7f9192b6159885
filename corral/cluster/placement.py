"""Where a new instance goes in a cluster, as LXD 5.0's scheduler does (instancesPost,
GetCandidateMembers, GetNodeWithLeastInstances).

- `target=MEMBER`: that member (404 "Cluster member not found"); in a restricted project with
  `restricted.cluster.groups`, it must be in one of those groups.
- `target=@GROUP`: the member of the group with the fewest instances among the candidates below
  (400 'Cluster group "G" doesn't exist'; in a restricted project the group must be one of
  `restricted.cluster.groups`).
- no target: the candidate with the fewest instances (ties: the lowest member id).

Candidates are the members that are online, not evacuated nor pending, whose `scheduler.instance`
allows it (`all`, the default: always; `group`: only when targeted through one of its groups;
`manual`: only by name) and, when the project sets `restricted.cluster.groups` (LXD 5.0.2 applies
it whether or not the project is `restricted`), in one of those groups. A member named explicitly
must be online and not evacuated either: nothing is created on a member that cannot take it.
`restricted.cluster.target` (targeting refused to restricted certificates) is the API layer's check
(corral/api/auth.py), done before any of this.
"""
from __future__ import annotations

from corral.config.keys import is_true
from corral.db.queries import cluster_groups as qg
from corral.db.queries import nodes as qn
from corral.errors import BadRequest, Forbidden, NotFound

GROUP_PREFIX = "@"
SCHEDULER_KEY = "scheduler.instance"
MEMBER_NOT_FOUND = "Cluster member not found"
NO_MEMBER = "No suitable cluster member could be found"


def split_target(target: str | None) -> tuple[str, str]:
    """(member, group) of a `?target=` value: "m1" -> ("m1", ""), "@gpu" -> ("", "gpu")."""
    target = target or ""
    if target.startswith(GROUP_PREFIX):
        return "", target[len(GROUP_PREFIX):]
    return target, ""


def allowed_groups(project_config: dict) -> list[str]:
    """The project's `restricted.cluster.groups` as a list (empty: no restriction)."""
    return [g.strip() for g in (project_config.get("restricted.cluster.groups") or "").split(",") if g.strip()]


def scheduler_mode(member: dict) -> str:
    return (member.get("config") or {}).get(SCHEDULER_KEY) or "all"


def candidates(members: list[dict], *, online, group: str = "", allowed: list[str] | tuple = (),
               exclude: frozenset[str] | set[str] = frozenset()) -> list[dict]:
    """The members an instance may be placed on without naming one (LXD's GetCandidateMembers).
    `online(member) -> bool`; `group`: the group targeted ("" for none); `allowed`: the project's
    restricted.cluster.groups; `exclude`: member names left out (an evacuation's source, say)."""
    out = []
    for m in members:
        if m.get("state", qn.CREATED) != qn.CREATED or not online(m) or m["name"] in exclude:
            continue
        groups = m.get("groups") or []
        mode = scheduler_mode(m)
        if mode == "manual" or (mode == "group" and group not in groups):
            continue
        if group and group not in groups:
            continue
        if allowed and not any(g in groups for g in allowed):
            continue
        out.append(m)
    return out


def least_loaded(members: list[dict], counts: dict[int, int]) -> dict | None:
    """The member holding the fewest instances (`counts` by member id); the first of equals."""
    best = None
    for m in members:
        if best is None or counts.get(m["id"], 0) < counts.get(best["id"], 0):
            best = m
    return best


def check_member(member: dict | None, *, online: bool, project_config: dict) -> dict:
    """An explicitly named member: it exists, the project may use it, it can take an instance."""
    if member is None:
        raise NotFound(MEMBER_NOT_FOUND)
    allowed = allowed_groups(project_config)
    if is_true(project_config.get("restricted")) and allowed and \
            not any(g in (member.get("groups") or []) for g in allowed):
        raise Forbidden("Project isn't allowed to use this cluster member")
    if member.get("state") == qn.EVACUATED:
        raise Forbidden("Cluster member is evacuated")
    if not online:
        raise BadRequest("Target cluster member is offline")
    return member


def check_group(group: str, *, exists: bool, project_config: dict) -> None:
    allowed = allowed_groups(project_config)
    if is_true(project_config.get("restricted")) and allowed and group not in allowed:
        raise Forbidden("Project isn't allowed to use this cluster group")
    if not exists:
        raise BadRequest(f'Cluster group "{group}" doesn\'t exist')


def pick(members: list[dict], counts: dict[int, int], *, target: str | None, project_config: dict,
         group_names: set[str] | frozenset[str], online, exclude: frozenset[str] | set[str] = frozenset()) -> dict:
    """The member (a `nodes` row from corral.db.queries.nodes.members) a new instance goes to."""
    name, group = split_target(target)
    if name:
        m = next((m for m in members if m["name"] == name), None)
        return check_member(m, online=bool(m) and online(m), project_config=project_config)
    if group:
        check_group(group, exists=group in group_names, project_config=project_config)
    found = least_loaded(candidates(members, online=online, group=group,
                                    allowed=allowed_groups(project_config), exclude=exclude), counts)
    if found is None:
        raise BadRequest(NO_MEMBER)
    return found


async def choose(state, project: str, target: str | None = None, *, exclude: frozenset[str] | set[str] = frozenset(),
                 instance_type: str = "container") -> str:
    """The name of the member a new instance of `project` goes to ("none" standalone).

    `target`: "MEMBER", "@GROUP" or None/"" (the scheduler's pick). `exclude`: member names the
    scheduler's pick must avoid. Errors (LXD 5.0.2's texts): NotFound for an unknown member,
    BadRequest for an unknown group, a target on a standalone server, an offline target or no
    candidate at all, Forbidden for a member or group the project's restrictions refuse or an
    evacuated target. `instance_type` is for the architecture check LXD makes (every member here
    runs the host's architecture, so it does not narrow the choice)."""
    cluster = state.cluster
    if not cluster.clustered:
        if target:
            raise BadRequest("Target only allowed when clustered")
        return cluster.server_name
    project_row = await state.projects.get(project) if state.projects is not None else None
    project_config = (project_row or {}).get("config") or {}
    async with state.db.session() as tx:
        members = await qn.members(tx)
        counts = await qn.instance_counts(tx)
        group_names = set(await qg.names(tx)) if split_target(target)[1] else set()
    return pick(members, counts, target=target, project_config=project_config, group_names=group_names,
                online=cluster.online, exclude=exclude)["name"]
