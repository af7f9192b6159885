"""corral/cluster/recovery.py without dqlite: the YAML of `corrald cluster show|edit` (yaml.v2's
decoding and quoting), LXD's validation of an edited member list, and the small LXD helpers."""
import asyncio
import os

import pytest

from corral.cluster import recovery
from corral.cluster.recovery import RecoveryError, parse_config, render_config, validate
from corral.db.local import LocalDB

NODES = [{"id": 1, "address": "10.0.0.1:8443", "role": 0, "name": "m1"},
         {"id": 2, "address": "10.0.0.2:8443", "role": 1, "name": "m2"},
         {"id": 3, "address": "10.0.0.3:8443", "role": 2, "name": "m3"}]

SHOWN = """members:
- id: 1
  name: m1
  address: 10.0.0.1:8443
  role: voter
- id: 2
  name: m2
  address: 10.0.0.2:8443
  role: stand-by
- id: 3
  name: m3
  address: 10.0.0.3:8443
  role: spare
"""


def test_render_is_lxds_cluster_config_yaml():
    assert render_config(NODES) == SHOWN
    assert render_config([]) == "members: []\n"


def test_render_quotes_as_yaml_v2():
    out = render_config([{"id": 1, "address": "1", "role": 0, "name": ""},
                         {"id": 2, "address": "[::1]:8443", "role": 0, "name": "true"}])
    # no name line when empty (omitempty); a string that reads as another type is double quoted
    assert out == 'members:\n- id: 1\n  address: "1"\n  role: voter\n- id: 2\n  name: "true"\n' \
                  "  address: '[::1]:8443'\n  role: voter\n"


def test_parse_round_trips_show():
    assert parse_config(SHOWN) == NODES
    assert parse_config("# Latest dqlite segment ID: 42\n\n" + SHOWN) == NODES


def test_parse_ignores_unknown_keys_and_takes_scalars_as_text():
    text = "members:\n- id: 7\n  address: 10.0.0.1:8443\n  role: voter\n  extra: [1, 2]\n  name: 123\nother: x\n"
    assert parse_config(text) == [{"id": 7, "address": "10.0.0.1:8443", "role": 0, "name": "123"}]
    assert parse_config("") == []
    assert parse_config("members:\n") == []
    assert parse_config("members:\n- id: ~\n  role: spare\n") == [{"id": 0, "address": "", "role": 2, "name": ""}]


@pytest.mark.parametrize("role", ["boss", "Voter", "1", ""])
def test_parse_refuses_unknown_roles(role):
    text = f"members:\n- id: 1\n  address: a:1\n  role: {role!s}\n" if role else "members:\n- id: 1\n  address: a:1\n"
    with pytest.raises(RecoveryError) as e:
        parse_config(text)
    assert str(e.value) == f'unknown raft role: "{role}"'


@pytest.mark.parametrize("text, error", [
    ("members:\n- id: abc\n  role: voter\n", "line 2: cannot unmarshal !!str `abc` into uint64"),
    ("members:\n- id: -1\n  role: voter\n", "line 2: cannot unmarshal !!int `-1` into uint64"),
    ("members:\n- id: 1\n  address: [a]\n", "line 3: cannot unmarshal !!seq into string"),
    ("members: nope\n", "line 1: cannot unmarshal !!str `nope` into []main.ClusterMember"),
    ("members:\n- just-a-string-here\n", "line 2: cannot unmarshal !!str `just-a-...` into main.ClusterMember"),
    ("- a\n- b\n", "line 1: cannot unmarshal !!seq into main.ClusterConfig"),
])
def test_parse_type_errors_in_yaml_v2_words(text, error):
    with pytest.raises(RecoveryError) as e:
        parse_config(text)
    assert str(e.value) == "yaml: unmarshal errors:\n  " + error


def test_parse_reports_every_type_error():
    with pytest.raises(RecoveryError) as e:
        parse_config("members:\n- id: x\n  role: voter\n- id: y\n  role: voter\n")
    assert str(e.value).splitlines()[1:] == ["  line 2: cannot unmarshal !!str `x` into uint64",
                                             "  line 4: cannot unmarshal !!str `y` into uint64"]


def test_parse_syntax_error():
    with pytest.raises(RecoveryError) as e:
        parse_config("members:\n- id: 1\n role: [\n")
    assert str(e.value).startswith("yaml: line ")


# voter, voter, spare: a valid configuration to edit
BASE = [NODES[0], dict(NODES[1], role=0), NODES[2]]


def _with(changes):
    return [dict(n, **changes.get(n["id"], {})) for n in BASE]


def test_validate_accepts_new_addresses_and_roles():
    validate(BASE, BASE)
    validate(BASE, _with({1: {"address": "192.0.2.1:8443"}, 2: {"address": "192.0.2.2:8443"}}))
    validate(BASE, _with({3: {"role": 1}}))              # spare to stand-by
    validate(BASE, _with({2: {"name": ""}}))            # an empty name is ignored
    validate(NODES, _with({3: {"role": 2}}))            # stand-by to voter
    validate(BASE[:1], BASE[:1])


@pytest.mark.parametrize("new, error", [
    (BASE[:2], "Removing cluster members is not supported"),
    (BASE + [dict(BASE[0], id=4)], "Adding cluster members is not supported"),
    ([BASE[1], BASE[0], BASE[2]], "Changing cluster member ID is not supported"),
    (_with({2: {"name": "other"}}), "Changing cluster member name is not supported"),
    (_with({3: {"role": 0}}), 'A "spare" cluster member cannot become a "voter"'),
    (_with({2: {"role": 1}}), 'Number of "voter" must be 2 or more'),
])
def test_validate_refuses_as_lxd(new, error):
    with pytest.raises(RecoveryError) as e:
        validate(BASE, new)
    assert str(e.value) == error


def test_validate_needs_a_voter_in_small_clusters():
    two = [dict(n, role=1) for n in BASE[:2]]
    with pytest.raises(RecoveryError, match='^At least one member must be a "voter"$'):
        validate(BASE[:2], two)
    validate(BASE[:2], [BASE[0], two[1]])   # one voter of two is allowed


@pytest.mark.parametrize("given, canonical", [
    ("10.0.0.1", "10.0.0.1:8443"), ("10.0.0.1:9000", "10.0.0.1:9000"), ("10.0.0.1:", "10.0.0.1:8443"),
    ("::1", "[::1]:8443"), ("2001:db8:0::1", "[2001:db8::1]:8443"), ("[::1]:9000", "[::1]:9000"),
    ("[::1]", "[::1]:8443"), ("example.org", "example.org:8443"), ("example.org:1", "example.org:1"),
])
def test_canonical_address(given, canonical):
    assert recovery.canonical_address(given) == canonical


def test_go_quote():
    assert recovery.go_quote('a"b\\c\n\x01é') == '"a\\"b\\\\c\\n\\x01é"'


def test_latest_segment(tmp_path):
    d = tmp_path / "global"
    d.mkdir()
    assert recovery.latest_segment(str(d)) == "none"
    for name in ("metadata1", "open-3", "0000000000000001-0000000000000009", "0000000000000010-0000000000000042"):
        (d / name).write_text("")
    assert recovery.latest_segment(str(d)) == "42"
    with pytest.raises(RecoveryError) as e:
        recovery.latest_segment(str(tmp_path / "missing"))
    assert str(e.value) == (f"Unable to open directory {tmp_path}/missing with error open {tmp_path}/missing: "
                            "no such file or directory")


def test_determine_raft_node_and_list_database(tmp_path):
    local = LocalDB(os.path.join(tmp_path, "local.db"))
    try:
        standalone = {"id": 1, "address": "", "role": 0, "name": ""}
        assert recovery.determine_raft_node(local) == standalone
        local.set_config({"cluster.https_address": "10.0.0.2:8443"})
        assert recovery.determine_raft_node(local) == standalone   # joining: no raft_nodes yet
        local.set_raft_nodes(NODES)
        assert recovery.determine_raft_node(local) == NODES[1]
        local.set_config({"cluster.https_address": "10.0.0.9:8443"})
        assert recovery.determine_raft_node(local) is None
        assert recovery.list_database(local) == ["10.0.0.1:8443"]
        local.set_raft_nodes([dict(n, role=0) for n in NODES])
        assert recovery.list_database(local) == [n["address"] for n in NODES]
    finally:
        local.close()


def test_remove_raft_node_over_the_gateways_callables():
    removed = []

    async def yes():
        return True

    async def no():
        return False

    async def nodes():
        return [(1, "10.0.0.1:8443"), (5, "10.0.0.5:8443")]

    async def remove(node_id):
        removed.append(node_id)

    async def broken(node_id):
        raise OSError("connection reset")

    run = asyncio.run
    run(recovery.remove_raft_node("10.0.0.5:8443", is_leader=yes, raft_nodes=nodes, remove=remove))
    assert removed == [5]
    with pytest.raises(RecoveryError, match='^No raft node with address "10.0.0.6:8443"$'):
        run(recovery.remove_raft_node("10.0.0.6:8443", is_leader=yes, raft_nodes=nodes, remove=remove))
    with pytest.raises(RecoveryError, match="^Failed to get current raft nodes: Not leader$"):
        run(recovery.remove_raft_node("10.0.0.5:8443", is_leader=no, raft_nodes=nodes, remove=remove))
    with pytest.raises(RecoveryError, match="^Failed to remove node: connection reset$"):
        run(recovery.remove_raft_node("10.0.0.5:8443", is_leader=yes, raft_nodes=nodes, remove=broken))
    assert removed == [5]
