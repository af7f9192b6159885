"""This member's dqlite node, how to reach the others' nodes, and raft membership (LXD's Gateway).

Standalone, the node is a one-member cluster on a fresh abstract unix socket and never dials out.
Clustered, the node's raft address is the member's cluster address ("IP:PORT"): it still binds
only an abstract unix socket; the others reach it through `GET /internal/database` (Upgrade: dqlite)
on the cluster's mutual TLS, and its own raft connections go out the same way (`transport`).
The raft member list is kept in the local database's `raft_nodes` (id, address, role, name), current
from the leader's heartbeats; it seeds leader discovery.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets

import dqliteclient
from dqlitewire.constants import NodeRole

from corral.cluster import transport
from corral.db.node import Node

log = logging.getLogger(__name__)

ROLE_NAMES = {0: "voter", 1: "stand-by", 2: "spare"}
ROLE_CODES = {v: k for k, v in ROLE_NAMES.items()}
DB_NAME = "global"


@dataclasses.dataclass
class RaftNode:
    id: int
    address: str
    role: int = 0
    name: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class _Store:
    """dqliteclient's node store over the gateway's current raft member list."""

    def __init__(self, gateway: "Gateway"):
        self.gateway = gateway

    async def get_nodes(self):
        nodes = [dqliteclient.NodeInfo(n.id, n.address, NodeRole(n.role)) for n in self.gateway.raft_nodes()]
        return nodes or [dqliteclient.NodeInfo(self.gateway.node_id, self.gateway.raft_address, NodeRole.VOTER)]


class Gateway:
    def __init__(self, data_dir: str, *, latency_ms: int = 20):
        self.data_dir = data_dir
        self.local = None                   # corral.db.local.LocalDB (raft_nodes), given at start
        self.latency_ms = latency_ms
        self.node_id = 1
        self.address = ""                   # the cluster address; "" standalone
        self.tls_context = None             # () -> ssl.SSLContext for member-to-member calls
        self.bind = "@corral-db-" + secrets.token_hex(8)
        self.node: Node | None = None
        self._tasks: set[asyncio.Task] = set()
        self._connector: transport.Connector | None = None
        self._client: dqliteclient.ClusterClient | None = None

    @property
    def clustered(self) -> bool:
        return bool(self.address)

    @property
    def raft_address(self) -> str:
        return self.address or self.bind

    def configure(self, node_id: int, address: str, tls_context) -> None:
        """Before start: this member's raft id and cluster address, and its TLS context factory."""
        self.node_id, self.address, self.tls_context = node_id, address, tls_context

    def raft_nodes(self) -> list[RaftNode]:
        if not self.clustered:
            return []
        return [RaftNode(r["id"], r["address"], int(r["role"] or 0), r["name"] or "")
                for r in self.local.raft_nodes()]

    def set_raft_nodes(self, nodes: list[RaftNode]) -> None:
        self.local.set_raft_nodes([n.to_dict() for n in nodes])

    # ---- the node -----------------------------------------------------------------------------

    async def start(self, local, recover: list[tuple[int, str, int]] | None = None) -> None:
        self.local = local
        loop = asyncio.get_running_loop()
        connect = None
        if self.clustered:
            self._connector = transport.Connector(loop, self.tls_context, self._tasks)
            connect = self._connector
        self.node = Node(self.node_id, self.raft_address, self.data_dir, self.latency_ms,
                         bind=self.bind, connect=connect)
        await asyncio.to_thread(self.node.start, recover)
        self._client = dqliteclient.ClusterClient(_Store(self), timeout=5, dial_timeout=transport.DIAL_TIMEOUT,
                                                  attempt_timeout=3, dial_func=self.dial)

    async def stop(self) -> None:
        if self._connector is not None:
            self._connector.closed = True
        if self.node is not None:
            node, self.node = self.node, None
            await asyncio.to_thread(node.stop)
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---- reaching nodes -----------------------------------------------------------------------

    async def dial(self, address: str):
        """A dqlite stream to the node at `address`: ours directly, another member's over TLS."""
        if not self.clustered or address in (self.address, self.bind):
            return await transport.open_local(self.bind)
        return await transport.dial(address, self.tls_context())

    async def open_local(self):
        return await transport.open_local(self.bind)

    async def connect(self) -> "dqliteclient.DqliteConnection":
        """A SQL connection to the leader's node (standalone: our own)."""
        if not self.clustered:
            return await dqliteclient.connect("local:1", database=DB_NAME, dial_func=self.dial, timeout=10)
        return await self._client.connect(DB_NAME, max_attempts=1)   # the caller retries, briskly

    # ---- raft membership (all on the leader) ----------------------------------------------------

    async def leader(self) -> tuple[int, str] | None:
        """(raft id, address) of the leader, or None while there is none."""
        if not self.clustered:
            return (self.node_id, self.address)
        try:
            info = await self._client.leader_info()
        except dqliteclient.DqliteError:
            return None
        return (info.node_id, info.address) if info else None

    async def is_leader(self) -> bool:
        if not self.clustered:
            return True
        async with self._admin(self.address) as p:
            node_id, _address = await p.get_leader()
        return node_id == self.node_id

    async def local_leader(self) -> int:
        """The raft id our own node believes leads (0: none known)."""
        async with self._admin(self.address) as p:
            node_id, _address = await p.get_leader()
        return node_id

    async def _on_leader(self, fn):
        """Run an admin request on the leader: our own node when we lead (no discovery, no stale
        cached leader), else the leader the client finds."""
        if await self.is_leader():
            async with self._admin(self.address) as p:
                return await fn(p)
        return await self._client._on_leader(fn, invalidate=True)

    @contextlib.asynccontextmanager
    async def _admin(self, address: str):
        async with self._client.open_admin_connection(address) as p:
            yield p

    async def members(self) -> list[RaftNode]:
        """The raft configuration as the leader has it."""
        if not self.clustered:
            return [RaftNode(self.node_id, "", 0)]
        nodes = await self._on_leader(lambda p: p.cluster())
        names = {n.id: n.name for n in self.raft_nodes()}
        return [RaftNode(n.node_id, n.address, int(n.role), names.get(n.node_id, "")) for n in nodes]

    async def add(self, node_id: int, address: str) -> None:
        await self._on_leader(lambda p: p.add(node_id, address))

    async def assign(self, node_id: int, role: str) -> None:
        await self._on_leader(lambda p: p.assign(node_id, NodeRole(ROLE_CODES[role])))

    async def remove(self, node_id: int) -> None:
        await self._on_leader(lambda p: p.remove(node_id))

    async def transfer(self, node_id: int) -> None:
        await self._on_leader(lambda p: p.transfer(node_id))
