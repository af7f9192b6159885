"""Offline recovery of the raft membership, LXD 5.0's `lxd cluster ...` tools (lxd/main_cluster.go,
lxd/cluster/recover.go) on corral's state: the local database's `raft_nodes` and the dqlite data
directory of the global database (`database/global`).

- list_database(): the addresses of the voters in the local `raft_nodes`.
- the raft member list as YAML (`members: [{id, name, address, role}]`), parsed with yaml.v2's rules
  and checked as LXD's validateNewConfig does, then reconfigure(): the dqlite raft configuration
  replaced (dqlite_node_recover_ext), `raft_nodes` and cluster.https_address rewritten, and
  `database/patch.global.sql` appended with the new member addresses for the next start.
- recover(): this member becomes the only voter (recover-from-quorum-loss); the others stay in the
  global `nodes` table, to be removed with `lxc cluster remove --force`.
- remove_raft_node(): the daemon side of `remove-raft-node` (LXD's DELETE /internal/cluster/raft-node/
  {address}), over callables the cluster gateway provides.

The offline steps must never run next to a running daemon: daemon_running() says whether one answers.
"""
from __future__ import annotations

import ipaddress
import os
import re
from typing import Awaitable, Callable

import yaml

from corral.db.local import LocalDB
from corral.db.node import DqliteError, Node
from corral.paths import Paths, socket_alive

VOTER, STANDBY, SPARE = 0, 1, 2
ROLE_NAMES = {VOTER: "voter", STANDBY: "stand-by", SPARE: "spare"}
ROLES = {v: k for k, v in ROLE_NAMES.items()}
DEFAULT_PORT = 8443
DAEMON_RUNNING = "The LXD daemon is running, please stop it first."
SEGMENT_COMMENT = "# Latest dqlite segment ID: {}"
PATCH_FILE = "patch.global.sql"


class RecoveryError(Exception):
    pass


def go_quote(s: str) -> str:
    """Go's %q (strconv.Quote) of a string."""
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(ch)])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def canonical_address(address: str, default_port: int = DEFAULT_PORT) -> str:
    """LXD's util.CanonicalNetworkAddress: "host:port", the default port added when missing, a bare
    IP in its canonical form (IPv6 in brackets)."""
    host, port = _split_host_port(address)
    if host is None:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return f"{address}:{default_port}"
        return _join_host_port(str(ip), default_port)
    if port == "" and address.endswith(":"):
        return _join_host_port(host, default_port)
    return address


def _split_host_port(address: str) -> tuple[str | None, str]:
    """Go's net.SplitHostPort, reduced to what canonical_address needs: (None, "") when it fails."""
    if address.startswith("["):
        end = address.find("]")
        if end < 0 or address[end + 1:end + 2] != ":" or ":" in address[end + 2:]:
            return None, ""
        return address[1:end], address[end + 2:]
    i = address.rfind(":")
    if i < 0 or ":" in address[:i]:
        return None, ""
    return address[:i], address[i + 1:]


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ---------------------------------------------------------------------------------------------- state

def daemon_running(paths: Paths) -> bool:
    """Whether a daemon answers on this state directory's unix socket (LXD: ConnectLXDUnix works)."""
    return socket_alive(paths.socket)


def open_local(paths: Paths) -> LocalDB:
    """The local database, never created where there is no state directory."""
    if not os.path.isdir(paths.database):
        raise RecoveryError(f"unable to open database file: no directory {paths.database}")
    try:
        return LocalDB(paths.local_db)
    except Exception as e:
        raise RecoveryError(str(e)) from None


def determine_raft_node(local: LocalDB) -> dict | None:
    """LXD's node.DetermineRaftNode: this member's raft node. Not clustered (no cluster.https_address),
    or clustered with an empty `raft_nodes` (a joining member): id 1 with no address. Otherwise the
    `raft_nodes` row with this member's cluster.https_address, or None: this member has no database role."""
    address = local.get_config().get("cluster.https_address", "")
    if not address:
        return {"id": 1, "address": "", "role": VOTER, "name": ""}
    nodes = local.raft_nodes()
    if not nodes:
        return {"id": 1, "address": "", "role": VOTER, "name": ""}
    return next((n for n in nodes if n["address"] == address), None)


def list_database(local: LocalDB) -> list[str]:
    """LXD's cluster.ListDatabaseNodes: the addresses of the voters."""
    try:
        nodes = local.raft_nodes()
    except Exception as e:
        raise RecoveryError(f"Failed to list database nodes: {e}") from None
    return [n["address"] for n in nodes if n["role"] == VOTER]


def latest_segment(global_dir: str) -> str:
    """LXD's db.DqliteLatestSegment: the end index of the newest closed raft segment, or "none"."""
    try:
        names = os.listdir(global_dir)
    except OSError as e:
        raise RecoveryError(f"Unable to open directory {global_dir} with error open {global_dir}: "
                            f"{_go_errno(e)}") from None
    for name in sorted(names, reverse=True):
        if re.fullmatch(r"[0-9]+-[0-9]+", name):
            end = name.split("-")[1]
            return end.lstrip("0") or "0"
    return "none"


def _go_errno(e: OSError) -> str:
    text = e.strerror or str(e)
    return text[:1].lower() + text[1:]


# ----------------------------------------------------------------------------------------------- YAML

def config_members(nodes: list[dict]) -> dict:
    """The `raft_nodes` rows as LXD's ClusterConfig (name omitted when empty, role by name)."""
    members = []
    for n in nodes:
        m: dict = {"id": int(n["id"])}
        if n.get("name"):
            m["name"] = n["name"]
        m["address"] = n["address"]
        m["role"] = ROLE_NAMES.get(n["role"], "unknown")
        members.append(m)
    return {"members": members}


class _GoDumper(yaml.SafeDumper):
    """yaml.v2's scalar quoting: a string that would read back as another type is double quoted."""


def _represent_str(dumper: _GoDumper, data: str):
    tag = "tag:yaml.org,2002:str"
    if data == "" or dumper.resolve(yaml.ScalarNode, data, (True, False)) != tag:
        return dumper.represent_scalar(tag, data, style='"')
    return dumper.represent_scalar(tag, data)


_GoDumper.add_representer(str, _represent_str)


def render_config(nodes: list[dict]) -> str:
    """`lxd cluster show`'s YAML (without the segment comment)."""
    return yaml.dump(config_members(nodes), Dumper=_GoDumper, default_flow_style=False, sort_keys=False,
                     allow_unicode=True)


_STR, _INT, _FLOAT, _NULL = (f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "null"))


def parse_config(text: str) -> list[dict]:
    """Members of an edited ClusterConfig, decoded as gopkg.in/yaml.v2 decodes them into LXD's struct
    (unknown keys ignored, scalars into strings by their text), each converted as ToRaftNode does.
    Returns raft_nodes rows {"id", "address", "role", "name"}; raises RecoveryError."""
    try:
        root = next(iter(yaml.compose_all(text, Loader=yaml.SafeLoader)), None)
    except yaml.YAMLError as e:
        raise RecoveryError(_yaml_error(e)) from None
    errors: list[str] = []
    members: list[dict] = []
    if root is not None and not _is_null(root):
        if not isinstance(root, yaml.MappingNode):
            errors.append(_terror(root, "main.ClusterConfig"))
        else:
            for key, value in root.value:
                if _key(key) != "members" or _is_null(value):
                    continue
                if not isinstance(value, yaml.SequenceNode):
                    errors.append(_terror(value, "[]main.ClusterMember"))
                    continue
                members = [_member(item, errors) for item in value.value]
    if errors:
        raise RecoveryError("yaml: unmarshal errors:\n  " + "\n  ".join(errors))
    out = []
    for m in members:
        if m["role"] not in ROLES:
            raise RecoveryError(f"unknown raft role: {go_quote(m['role'])}")
        out.append({"id": m["id"], "address": m["address"], "role": ROLES[m["role"]], "name": m["name"]})
    return out


def _member(node, errors: list[str]) -> dict:
    m = {"id": 0, "name": "", "address": "", "role": ""}
    if _is_null(node):
        return m
    if not isinstance(node, yaml.MappingNode):
        errors.append(_terror(node, "main.ClusterMember"))
        return m
    for key, value in node.value:
        field = _key(key)
        if field == "id":
            m["id"] = _uint64(value, errors)
        elif field in ("name", "address", "role"):
            m[field] = _string(value, errors)
    return m


def _key(node) -> str | None:
    return node.value if isinstance(node, yaml.ScalarNode) else None


def _is_null(node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL


def _string(node, errors: list[str]) -> str:
    if not isinstance(node, yaml.ScalarNode):
        errors.append(_terror(node, "string"))
        return ""
    return "" if node.tag == _NULL else node.value


def _uint64(node, errors: list[str]) -> int:
    if isinstance(node, yaml.ScalarNode):
        if node.tag == _NULL:
            return 0
        if node.tag in (_INT, _FLOAT):
            value = yaml.safe_load(node.value)
            if isinstance(value, (int, float)) and 0 <= value < 2 ** 64 and value == value:
                return int(value)
    errors.append(_terror(node, "uint64"))
    return 0


def _terror(node, into: str) -> str:
    """yaml.v2's decoder type error: "line N: cannot unmarshal !!tag `value` into type"."""
    tag = "!!" + node.tag.rsplit(":", 1)[-1]
    value = ""
    if isinstance(node, yaml.ScalarNode):
        value = f" `{node.value[:7]}...`" if len(node.value) > 10 else f" `{node.value}`"
    return f"line {node.start_mark.line + 1}: cannot unmarshal {tag}{value} into {into}"


def _yaml_error(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    problem = getattr(e, "problem", None) or str(e)
    return f"yaml: line {mark.line + 1}: {problem}" if mark is not None else f"yaml: {problem}"


def validate(old: list[dict], new: list[dict]) -> None:
    """LXD's validateNewConfig: same members in the same order with the same ids (and names), only
    addresses and roles change; a spare never becomes a voter; enough voters remain."""
    if len(old) > len(new):
        raise RecoveryError("Removing cluster members is not supported")
    if len(old) < len(new):
        raise RecoveryError("Adding cluster members is not supported")
    voters = 0
    for o, n in zip(old, new):
        if o["id"] != n["id"]:
            raise RecoveryError("Changing cluster member ID is not supported")
        if o.get("name") and n.get("name") and o["name"] != n["name"]:
            raise RecoveryError("Changing cluster member name is not supported")
        if o["role"] == SPARE and n["role"] == VOTER:
            raise RecoveryError('A "spare" cluster member cannot become a "voter"')
        voters += n["role"] == VOTER
    if voters < 2 and len(new) > 2:
        raise RecoveryError('Number of "voter" must be 2 or more')
    if voters < 1:
        raise RecoveryError('At least one member must be a "voter"')


# ------------------------------------------------------------------------------------------- recovery

def _this_node(local: LocalDB, missing: str) -> dict:
    """This member's raft node from the local database, or a RecoveryError (`missing`: when it has none)."""
    try:
        info = determine_raft_node(local)
    except Exception as e:
        raise RecoveryError(f"Failed to determine node role: {e}") from None
    if info is None:
        raise RecoveryError(missing)
    return info


def recover(paths: Paths, local: LocalDB) -> None:
    """LXD's cluster.Recover (recover-from-quorum-loss): the raft configuration in database/global
    becomes this member alone, as a voter; `raft_nodes` follows. The data is kept: the next start
    elects this member leader on its own."""
    info = _this_node(local, "This LXD instance has no database role")
    if not info["address"]:
        raise RecoveryError("This LXD instance is not clustered")
    node = Node(info["id"], info["address"], paths.global_db)
    try:
        node.recover([(info["id"], info["address"], VOTER)])
    except DqliteError as e:
        raise RecoveryError(f"Failed to recover database state: {e}") from None
    try:
        local.set_raft_nodes([{"id": info["id"], "address": info["address"], "role": VOTER,
                               "name": info.get("name") or ""}])
    except Exception as e:
        raise RecoveryError(f"Failed to update database nodes: {e}") from None


def reconfigure(paths: Paths, local: LocalDB, nodes: list[dict]) -> None:
    """LXD's cluster.Reconfigure (`lxd cluster edit`): replace the whole raft configuration; ids are
    fixed, addresses and roles may change. Run it on every surviving member with the same list."""
    info = _this_node(local, "Failed to determine node role")
    address = next((n["address"] for n in nodes if n["id"] == info["id"]), info["address"])
    if address != info["address"]:
        try:
            local.set_config({"cluster.https_address": address})
        except Exception as e:
            raise RecoveryError(f"Failed to update node configuration: {e}") from None
    node = Node(info["id"], address or info["address"] or "1", paths.global_db)
    try:
        node.recover([(n["id"], n["address"], n["role"]) for n in nodes])
    except DqliteError as e:
        raise RecoveryError(f"Failed to recover database state: {e}") from None
    local.set_raft_nodes(nodes)
    # Read at the next start: the global `nodes` table gets the new addresses (raft id == nodes.id).
    content = "".join(f"UPDATE nodes SET address = {_sql_str(n['address'])} WHERE id = {int(n['id'])};\n"
                      for n in nodes)
    if content:
        with open(os.path.join(paths.database, PATCH_FILE), "a") as f:
            f.write(content)


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


# ------------------------------------------------------------------------------------- daemon side

async def remove_raft_node(address: str, *, is_leader: Callable[[], Awaitable[bool]],
                           raft_nodes: Callable[[], Awaitable[list[tuple[int, str]]]],
                           remove: Callable[[int], Awaitable[None]]) -> None:
    """LXD's cluster.RemoveRaftNode, behind DELETE /internal/cluster/raft-node/{address}: drop the raft
    node with `address` from the live configuration (a member removed uncleanly, still in raft).
    Only on the leader, as LXD (its gateway lists the raft nodes only there). `raft_nodes()` gives
    (raft id, address) from dqlite's cluster listing, `remove(id)` removes through the leader.
    The caller rebalances the roles afterwards, as LXD's handler does."""
    try:
        leader = await is_leader()
    except Exception as e:
        raise RecoveryError(f"Failed to get current raft nodes: {e}") from None
    if not leader:
        raise RecoveryError("Failed to get current raft nodes: Not leader")
    try:
        nodes = await raft_nodes()
    except Exception as e:
        raise RecoveryError(f"Failed to get current raft nodes: {e}") from None
    node_id = next((i for i, a in nodes if a == address), 0)
    if not node_id:
        raise RecoveryError(f"No raft node with address {go_quote(address)}")
    try:
        await remove(node_id)
    except Exception as e:
        raise RecoveryError(f"Failed to remove node: {e}") from None
