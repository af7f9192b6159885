"""The pure scheduler of corral/cluster/placement.py (LXD 5.0's GetCandidateMembers and
GetNodeWithLeastInstances, the target checks of instancesPost), on plain member dicts."""
import pytest

from corral.cluster import placement as pl
from corral.db.queries.nodes import CREATED, EVACUATED, PENDING
from corral.errors import BadRequest, Forbidden, NotFound


def member(mid, name=None, *, groups=("default",), state=CREATED, mode=None, online=True):
    cfg = {} if mode is None else {"scheduler.instance": mode}
    return {"id": mid, "name": name or f"m{mid}", "groups": list(groups), "state": state, "config": cfg,
            "_online": online}


def online(m):
    return m["_online"]


def pick(members, counts=None, target=None, project=None, groups=("default", "gpu"), exclude=frozenset()):
    return pl.pick(members, counts or {}, target=target, project_config=project or {},
                   group_names=set(groups), online=online, exclude=exclude)["name"]


def test_split_target():
    assert pl.split_target("m1") == ("m1", "")
    assert pl.split_target("@gpu") == ("", "gpu")
    assert pl.split_target("@") == ("", "")
    assert pl.split_target(None) == ("", "")
    assert pl.split_target("") == ("", "")


def test_fewest_instances_wins_ties_go_to_the_lowest_id():
    ms = [member(1), member(2), member(3)]
    assert pick(ms, {1: 2, 2: 1, 3: 1}) == "m2"
    assert pick(ms, {1: 0, 2: 0, 3: 0}) == "m1"
    assert pick(ms, {1: 5, 2: 4}) == "m3"          # a member with no row counts 0
    # filling one member after another: one each, in id order
    counts: dict[int, int] = {}
    placed = []
    for _ in range(6):
        name = pick(ms, counts)
        placed.append(name)
        mid = int(name[1:])
        counts[mid] = counts.get(mid, 0) + 1
    assert placed == ["m1", "m2", "m3", "m1", "m2", "m3"]


def test_offline_evacuated_pending_and_excluded_members_are_never_picked():
    ms = [member(1, online=False), member(2, state=EVACUATED), member(3, state=PENDING), member(4), member(5)]
    assert pick(ms, {4: 3, 5: 4}) == "m4"
    assert pick(ms, {4: 3, 5: 4}, exclude={"m4"}) == "m5"
    with pytest.raises(BadRequest, match="^No suitable cluster member could be found$"):
        pick(ms[:3])
    with pytest.raises(BadRequest, match="No suitable cluster member"):
        pick(ms, exclude={"m4", "m5"})


def test_scheduler_instance_manual_and_group():
    ms = [member(1, mode="manual"), member(2, groups=("default", "gpu"), mode="group"), member(3, mode="all")]
    counts = {3: 10}
    assert pick(ms, counts) == "m3"                       # manual and group members are left out
    assert pick(ms, counts, target="@gpu") == "m2"        # a group member, targeted through its group
    assert pick(ms, counts, target="@default") == "m2"    # ... through any group it is in
    ms[1]["groups"] = ["gpu"]
    assert pick(ms, counts, target="@default") == "m3"
    # manual: only by name, never through a group it is in
    assert pick(ms, counts, target="m1") == "m1"
    ms[0]["groups"] = ["default", "gpu"]
    assert pick(ms, {2: 5}, target="@gpu") == "m2"
    ms[1]["config"] = {"scheduler.instance": "manual"}
    with pytest.raises(BadRequest, match="No suitable cluster member"):
        pick(ms, target="@gpu")
    # an unknown mode is no restriction (the member config validator refuses such values)
    assert pick([member(1, mode="")], {}) == "m1"


def test_group_target_places_only_on_its_members():
    ms = [member(1), member(2, groups=("default", "gpu")), member(3, groups=("gpu",))]
    assert pick(ms, {1: 0, 2: 3, 3: 1}, target="@gpu") == "m3"
    assert pick(ms, {1: 0, 2: 0, 3: 1}, target="@gpu") == "m2"
    assert pick(ms, {1: 9, 2: 9, 3: 1}, target="@default") == "m1"
    assert pick(ms, {1: 9, 2: 9, 3: 1}) == "m3"
    with pytest.raises(BadRequest, match='^Cluster group "nope" doesn\'t exist$'):
        pick(ms, target="@nope")
    assert pick(ms, {1: 1}, target="@") == "m2"             # "@" alone: no group, the usual pick
    ms[2]["_online"] = False
    ms[1]["state"] = EVACUATED
    with pytest.raises(BadRequest, match="No suitable cluster member"):
        pick(ms, target="@gpu")


def test_named_target():
    ms = [member(1), member(2, mode="manual"), member(3, state=EVACUATED), member(4, online=False)]
    assert pick(ms, {1: 0, 2: 9}, target="m2") == "m2"
    with pytest.raises(NotFound, match="^Cluster member not found$"):
        pick(ms, target="nosuch")
    with pytest.raises(Forbidden, match="^Cluster member is evacuated$"):
        pick(ms, target="m3")
    with pytest.raises(BadRequest, match="^Target cluster member is offline$"):
        pick(ms, target="m4")
    # an explicit target ignores `exclude` (which only narrows the scheduler's own pick)
    assert pick(ms, target="m1", exclude={"m1"}) == "m1"


def test_project_restricted_cluster_groups():
    ms = [member(1), member(2, groups=("default", "gpu")), member(3, groups=("gpu",))]
    restricted = {"restricted": "true", "restricted.cluster.groups": "gpu"}
    # candidates narrowed to the allowed groups
    assert pick(ms, {2: 1}, project=restricted) == "m3"
    assert pick(ms, {3: 1}, project=restricted) == "m2"
    # LXD 5.0.2 narrows the candidates by restricted.cluster.groups even when not restricted=true
    assert pick(ms, {2: 1}, project={"restricted.cluster.groups": "gpu"}) == "m3"
    # named members and groups are checked only in a restricted project
    with pytest.raises(Forbidden, match="^Project isn't allowed to use this cluster member$"):
        pick(ms, target="m1", project=restricted)
    assert pick(ms, target="m1", project={"restricted.cluster.groups": "gpu"}) == "m1"
    assert pick(ms, target="m2", project=restricted) == "m2"
    with pytest.raises(Forbidden, match="^Project isn't allowed to use this cluster group$"):
        pick(ms, target="@default", project=restricted)
    # ... and refused before whether the group exists is looked at
    with pytest.raises(Forbidden, match="^Project isn't allowed to use this cluster group$"):
        pick(ms, target="@nosuch", project=restricted)
    # default targeted in an unrestricted project: its members in gpu only (the narrowing applies)
    assert pick(ms, {2: 0}, target="@default", project={"restricted.cluster.groups": "gpu"}) == "m2"
    # spaces and empty entries in the list
    assert pl.allowed_groups({"restricted.cluster.groups": " gpu, ,default "}) == ["gpu", "default"]
    assert pl.allowed_groups({}) == []


def test_candidates_and_least_loaded_directly():
    ms = [member(1), member(2), member(3, mode="manual")]
    assert [m["name"] for m in pl.candidates(ms, online=online)] == ["m1", "m2"]
    assert pl.least_loaded([], {}) is None
    assert pl.least_loaded(ms, {1: 1, 2: 1, 3: 0})["name"] == "m3"
    assert pl.scheduler_mode(member(1)) == "all"
    assert pl.scheduler_mode(member(1, mode="group")) == "group"
