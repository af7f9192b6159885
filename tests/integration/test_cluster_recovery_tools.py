"""`corrald cluster list-database|show|edit|recover-from-quorum-loss|remove-raft-node` on real dqlite.

A three-member raft cluster runs in this process (corral.db.node.Node, libdqlite) on loopback TCP
ports: plain TCP is enough here, the tests exercise the raft recovery, not the cluster transport.
Each member has a state directory laid out as corrald's (database/global = the dqlite data dir,
database/local.db with cluster.https_address and raft_nodes); the commands run as `corrald cluster ...`
subprocesses on those directories, with every dqlite node stopped, as LXD requires.
"""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import tempfile

import dqliteclient
import pytest
from dqlitewire.constants import NodeRole

from corral.db.local import LocalDB
from corral.db.node import Node
from helpers import VENV_BIN, Corrald, free_port, unique

pytestmark = pytest.mark.integration

ROLE = {0: "voter", 1: "stand-by", 2: "spare"}


def corrald(state_dir: str, *args: str, input: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ, CORRAL_DIR=state_dir)
    env.pop("CORRAL_SOCKET", None)
    env.pop("LXD_SOCKET", None)
    return subprocess.run([os.path.join(VENV_BIN, "corrald"), "cluster", *args], env=env, input=input,
                          capture_output=True, text=True, timeout=60)


class Member:
    def __init__(self, base: str, raft_id: int):
        self.id = raft_id
        self.name = unique(f"m{raft_id}-")
        self.dir = os.path.join(base, f"member{raft_id}")
        self.address = f"127.0.0.1:{free_port()}"
        self.node: Node | None = None
        os.makedirs(os.path.join(self.dir, "database", "global"), mode=0o700)

    @property
    def global_dir(self) -> str:
        return os.path.join(self.dir, "database", "global")

    def local(self) -> LocalDB:
        return LocalDB(os.path.join(self.dir, "database", "local.db"))

    def start(self, address: str | None = None) -> None:
        self.node = Node(self.id, address or self.address, self.global_dir)
        self.node.start()

    def stop(self) -> None:
        if self.node is not None:
            self.node.stop()
            self.node = None


@pytest.fixture
def members():
    """Three members forming one raft cluster (all voters) with a table `t` holding one row, then
    all stopped. Everything is stopped and removed afterwards, also when the test fails."""
    base = tempfile.mkdtemp(prefix="corral-recovery-", dir="/var/tmp")
    ms = [Member(base, i) for i in (1, 2, 3)]
    try:
        rows = [{"id": m.id, "address": m.address, "role": 0, "name": m.name} for m in ms]
        for m in ms:
            local = m.local()
            local.set_config({"cluster.https_address": m.address})
            local.set_raft_nodes(rows)
            local.close()
            m.start()

        async def form():
            cc = dqliteclient.ClusterClient.from_addresses([ms[0].address])
            for m in ms[1:]:
                await cc.add_node(m.id, m.address, role=NodeRole.VOTER)
            conn = await dqliteclient.connect(ms[0].address, database="global", timeout=5)
            try:
                await conn.execute("CREATE TABLE t (v TEXT)", [])
                await conn.execute("INSERT INTO t VALUES ('before')", [])
            finally:
                await conn.close()
            return sorted((n.node_id, n.role) for n in await cc.cluster_info())

        assert asyncio.run(form()) == [(1, NodeRole.VOTER), (2, NodeRole.VOTER), (3, NodeRole.VOTER)]
        for m in ms:
            m.stop()
        yield ms
    finally:
        for m in ms:
            m.stop()
        shutil.rmtree(base, ignore_errors=True)


async def _leader_session(address: str, cluster: list[str] | None = None, wait: float = 10):
    """Rows of `t` read on the leader after one more insert, and the raft membership."""
    cc = dqliteclient.ClusterClient.from_addresses(cluster or [address], timeout=5)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:   # an election may still be running
        try:
            leader = await cc.find_leader()
            break
        except dqliteclient.ClusterError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.1)
    conn = await dqliteclient.connect(leader, database="global", timeout=5)
    try:
        await conn.execute("INSERT INTO t VALUES ('after')", [])
        rows = [r["v"] for r in await conn.fetch("SELECT v FROM t ORDER BY rowid", [])]
    finally:
        await conn.close()
    return rows, sorted((n.node_id, n.address, int(n.role)) for n in await cc.cluster_info())


def _show_yaml(ms, roles=None, addresses=None) -> str:
    out = "members:\n"
    for m in ms:
        role = ROLE[(roles or {}).get(m.id, 0)]
        out += f"- id: {m.id}\n  name: {m.name}\n  address: {(addresses or {}).get(m.id, m.address)}\n  role: {role}\n"
    return out


def test_recover_from_quorum_loss_makes_the_survivor_writable_alone(members):
    m1 = members[0]
    r = corrald(m1.dir, "list-database")
    width = max(len("ADDRESS"), *(len(m.address) for m in members))
    sep = "+" + "-" * (width + 2) + "+"
    expected = [sep, "|" + "ADDRESS".center(width + 2) + "|", sep]
    for m in members:
        expected += ["| " + m.address.ljust(width) + " |", sep]
    assert (r.returncode, r.stdout, r.stderr) == (0, "\n".join(expected) + "\n", "")

    r = corrald(m1.dir, "show")
    assert r.returncode == 0, r.stderr
    head, body = r.stdout.split("\n\n", 1)
    assert re.fullmatch(r"# Latest dqlite segment ID: ([0-9]+|none)", head)
    assert body == _show_yaml(members)

    # Alone with a three-voter configuration: no quorum, not writable.
    m1.start()
    with pytest.raises(dqliteclient.ClusterError, match="no leader"):
        asyncio.run(_leader_session(m1.address, wait=3))
    m1.stop()

    # The confirmation: anything but "yes" aborts and changes nothing.
    r = corrald(m1.dir, "recover-from-quorum-loss", input="no\n")
    assert r.returncode == 1 and r.stderr == "Error: Recover operation aborted\n"
    assert r.stdout.startswith("You should run this command only if you are *absolutely* certain")
    assert r.stdout.endswith("Do you want to proceed? (yes/no): ")
    assert corrald(m1.dir, "show").stdout.endswith(_show_yaml(members))

    r = corrald(m1.dir, "recover-from-quorum-loss", "--quiet")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert corrald(m1.dir, "show").stdout.split("\n\n", 1)[1] == _show_yaml(members[:1])
    assert m1.address in corrald(m1.dir, "list-database").stdout
    assert members[1].address not in corrald(m1.dir, "list-database").stdout

    m1.start()
    rows, raft = asyncio.run(_leader_session(m1.address))
    assert rows == ["before", "after"]
    assert raft == [(1, m1.address, 0)]


def test_recover_needs_a_clustered_member_with_a_database_role(members):
    m3 = members[2]
    local = m3.local()
    local.set_config({"cluster.https_address": "127.0.0.1:1"})   # matches no raft node
    local.close()
    r = corrald(m3.dir, "recover-from-quorum-loss", "-q")
    assert (r.returncode, r.stderr) == (1, "Error: This LXD instance has no database role\n")
    local = m3.local()
    local.set_config({"cluster.https_address": None})
    local.close()
    r = corrald(m3.dir, "recover-from-quorum-loss", "-q")
    assert (r.returncode, r.stderr) == (1, "Error: This LXD instance is not clustered\n")
    r = corrald(m3.dir, "edit", input="")
    assert r.returncode == 1
    assert r.stderr == ("Error: Can't edit cluster configuration as server isn't clustered "
                        "(missing \"cluster.https_address\" config)\n")


def test_edit_moves_the_members_to_new_addresses(members):
    """Members 1 and 2 come back on new addresses, member 3 is gone for good: `edit` on both with
    the same list (3 as a spare) and they form a writable cluster again with the data."""
    m1, m2, m3 = members
    moved = {1: f"127.0.0.1:{free_port()}", 2: f"127.0.0.1:{free_port()}"}
    new_yaml = _show_yaml(members, roles={3: 2}, addresses=moved)

    # A bad edit first: the error, the prompt, EOF (stdin is not a terminal), nothing changed.
    r = corrald(m1.dir, "edit", input=new_yaml.replace("role: spare", "role: boss"))
    assert r.returncode == 1
    assert r.stderr == 'Config validation error: unknown raft role: "boss"\nError: EOF\n'
    assert r.stdout == "Press enter to open the editor again or ctrl+c to abort change\n"
    r = corrald(m1.dir, "edit", input=_show_yaml(members[:2]))
    assert r.stderr.startswith("Config validation error: Removing cluster members is not supported\n")
    assert corrald(m1.dir, "show").stdout.endswith(_show_yaml(members))

    for m in (m1, m2):
        r = corrald(m.dir, "edit", input=new_yaml)
        assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
        assert corrald(m.dir, "show").stdout.split("\n\n", 1)[1] == new_yaml
        local = m.local()
        assert local.get_config()["cluster.https_address"] == moved[m.id]
        local.close()
        with open(os.path.join(m.dir, "database", "patch.global.sql")) as f:
            assert f.read() == "".join(f"UPDATE nodes SET address = '{moved.get(x.id, x.address)}' WHERE id = {x.id};\n"
                                       for x in members)

    m1.start(moved[1])
    m2.start(moved[2])
    rows, raft = asyncio.run(_leader_session(moved[1], [moved[1], moved[2]]))
    assert rows == ["before", "after"]
    assert raft == sorted([(1, moved[1], 0), (2, moved[2], 0), (3, m3.address, 2)])


def test_offline_commands_refuse_while_the_daemon_runs():
    d = Corrald()
    try:
        d.start()
        for args in (("edit",), ("recover-from-quorum-loss", "-q"), ("recover-from-quorum-loss",)):
            r = d.run("corrald", "cluster", *args, input="yes\n")
            assert (r.returncode, r.stdout, r.stderr) == (1, "", "Error: The LXD daemon is running, please stop "
                                                                "it first.\n"), args
        # The read-only ones work next to the daemon, as LXD's do: the daemon's own raft_nodes.
        local = LocalDB(os.path.join(d.dir, "database", "local.db"))
        rows = local.raft_nodes()
        local.close()
        r = d.run("corrald", "cluster", "show")
        assert r.returncode == 0, r.stderr
        if rows:
            head, body = r.stdout.split("\n\n", 1)
            assert re.fullmatch(r"# Latest dqlite segment ID: ([0-9]+|none)", head)
            assert body == "members:\n" + "".join(
                f"- id: {n['id']}\n" + (f"  name: {n['name']}\n" if n["name"] else "")
                + f"  address: {n['address']}\n  role: {ROLE[n['role']]}\n" for n in rows)
        else:
            assert r.stdout == "members: []\n"
        r = d.run("corrald", "cluster", "list-database")
        assert r.returncode == 0, r.stderr
        assert [line.strip("| ") for line in r.stdout.splitlines()[3::2]] == [n["address"] for n in rows
                                                                            if n["role"] == 0]
    finally:
        d.cleanup()


def test_remove_raft_node_asks_the_running_daemon():
    """The online one, as in LXD: DELETE /internal/cluster/raft-node/{address} on the unix socket
    (the daemon's handler is corral.cluster.recovery.remove_raft_node)."""
    d = Corrald()
    try:
        d.start()
        r = d.run("corrald", "cluster", "remove-raft-node", "10.0.0.1", input="no\n")
        assert (r.returncode, r.stderr) == (1, "Error: Remove raft node operation aborted\n")
        r = d.run("corrald", "cluster", "remove-raft-node", "-q", "10.0.0.1")
        assert (r.returncode, r.stderr) == (1, 'Error: No raft node with address "10.0.0.1:8443"\n')
    finally:
        d.cleanup()
    r = d.run("corrald", "cluster", "remove-raft-node", "-q", "10.0.0.1")
    assert r.returncode == 1 and r.stderr.startswith("Error: Failed to connect to LXD daemon: ")


def test_remove_raft_node_on_a_live_cluster(members):
    """The daemon side on real dqlite: member 3 leaves the raft configuration through the leader."""
    from corral.cluster.recovery import RecoveryError, remove_raft_node
    for m in members:
        m.start()

    async def run():
        cc = dqliteclient.ClusterClient.from_addresses([m.address for m in members], timeout=5)

        async def is_leader(member_id):
            info = await cc.leader_info()
            return info is not None and info.node_id == member_id

        async def raft_nodes():
            return [(n.node_id, n.address) for n in await cc.cluster_info()]

        rows, _ = await _leader_session(members[0].address, [m.address for m in members])
        assert rows == ["before", "after"]
        leader = (await cc.leader_info()).node_id
        follower = next(m.id for m in members if m.id != leader)
        with pytest.raises(RecoveryError, match="^Failed to get current raft nodes: Not leader$"):
            await remove_raft_node(members[2].address, is_leader=lambda: is_leader(follower),
                                   raft_nodes=raft_nodes, remove=cc.remove_node)
        with pytest.raises(RecoveryError, match='^No raft node with address "127.0.0.1:1"$'):
            await remove_raft_node("127.0.0.1:1", is_leader=lambda: is_leader(leader),
                                   raft_nodes=raft_nodes, remove=cc.remove_node)
        gone = next(m for m in members if m.id != leader)
        await remove_raft_node(gone.address, is_leader=lambda: is_leader(leader), raft_nodes=raft_nodes,
                               remove=cc.remove_node)
        return gone.id, sorted(i for i, _ in await raft_nodes())

    gone, left = asyncio.run(run())
    assert left == sorted({1, 2, 3} - {gone})
