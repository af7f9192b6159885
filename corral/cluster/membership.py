"""The cluster this member belongs to (LXD's cluster package, membership side): bootstrap, enable,
join and accept, removal, leadership handover, and role rebalancing.

A standalone corrald is a one-member cluster: raft id 1, `nodes` row 1. It becomes clustered (its
data kept) by `enable`; another corrald joins it (its own global data replaced by the cluster's).
Clustered state on disk: `cluster.crt`/`cluster.key` in the daemon dir (every member serves and
presents them), the local `raft_nodes`, and `cluster.https_address` in the local config.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from corral.cluster import gateway as gw
from corral.cluster import join as _join
from corral.cluster.peer import PeerClient, PeerError
from corral.db.queries import cluster as qc
from corral.db.queries import lxd
from corral.errors import CorralError, NotFound
from corral.operations import Work
from corral.pki import certs, tls

log = logging.getLogger(__name__)


class Cluster:
    def __init__(self, state, gateway: gw.Gateway):
        self.state = state
        self.gateway = gateway
        self.paths = state.paths
        self.peer = PeerClient(self.client_context)
        self.server_name = "none"
        self.heartbeat = None                 # corral.cluster.heartbeat.Heartbeat, once started
        self._ctx = None
        self._ctx_key = None
        self._lock = asyncio.Lock()           # membership changes, one at a time
        # The daemon's hooks: the HTTPS listener to serve the cluster certificate, the layers to
        # reload from the cluster's database after a join.
        self.on_member: list = []
        self.shutdown_hook = None
        self.versions = lambda: (0, 0)       # (schema, API extension count), set by the daemon
        self._wipe_on_stop = False
        self.leaving = False                  # shutting down: handed over, answering no heartbeat
        self.streams: set = set()             # transports of the other members' dqlite streams
        self.reloaders: dict = {}             # table -> async reload of what a layer caches of it
        # cluster.offline_threshold as it was at the last config write or reload: a member online under
        # it is still told of a new, lower threshold (under the new one it may already count as offline)
        self._threshold_known: float | None = None

    # ---- what this member is ------------------------------------------------------------------

    @property
    def clustered(self) -> bool:
        return self.gateway.clustered

    @property
    def member_id(self) -> int:
        return self.gateway.node_id

    @property
    def address(self) -> str:
        return self.gateway.address

    def cert_files(self) -> tuple[str, str]:
        return self.paths.join("cluster.crt"), self.paths.join("cluster.key")

    def cluster_cert_pem(self) -> str:
        with open(self.cert_files()[0]) as f:
            return f.read()

    def fingerprint(self) -> str:
        return certs.fingerprint(self.cluster_cert_pem()) if self.clustered else ""

    def is_peer(self, fingerprint: str) -> bool:
        """A request made with the cluster certificate: another member."""
        return self.clustered and bool(fingerprint) and fingerprint == self._peer_fp()

    def _peer_fp(self) -> str:
        key = os.stat(self.cert_files()[0]).st_mtime_ns
        if key != getattr(self, "_fp_key", None):
            self._fp, self._fp_key = self.fingerprint(), key
        return self._fp

    def client_context(self):
        """Member-to-member TLS: present the cluster certificate and accept only it."""
        crt, key = self.cert_files()
        stamp = os.stat(crt).st_mtime_ns
        if self._ctx is None or self._ctx_key != stamp:
            self._ctx = tls.client_context(crt, key, server_cert_pem=self.cluster_cert_pem())
            self._ctx_key = stamp
        return self._ctx

    def serving_cert(self) -> tuple[str, str]:
        """The certificate the HTTPS listener serves: the cluster's once clustered (as LXD)."""
        return self.cert_files() if self.clustered else certs.ensure_server_cert(self.paths.root)

    def cluster_address_config(self) -> str:
        cfg = self.state.db.open_local().get_config()
        return cfg.get("cluster.https_address") or cfg.get("core.https_address") or ""

    def prepare(self) -> None:
        """Before the database starts: configure the gateway from the local state."""
        local = self.state.db.open_local()
        address = local.get_config().get("cluster.https_address", "")
        if not address or not os.path.exists(self.cert_files()[0]):
            return
        mine = next((n for n in local.raft_nodes() if n["address"] == address), None)
        if mine is None:
            log.error("cluster address %s is not in the local raft_nodes: starting standalone", address)
            return
        self.gateway.configure(mine["id"], address, self.client_context)

    async def start(self) -> None:
        """After the database started: this member's name; the heartbeat task."""
        lxd.LOCAL_NODE_ID = self.member_id
        async with self.state.db.session() as tx:
            row = next((m for m in await qc.members(tx) if m["id"] == self.member_id), None)
        self.server_name = row["name"] if row else "none"
        if self.clustered:
            async with self.state.db.transaction() as tx:
                await qc.joined(tx, self.member_id)
            self._start_heartbeat()

    def _start_heartbeat(self) -> None:
        if self.heartbeat is None:
            from corral.cluster.beat import start_heartbeat
            self._threshold_known = self.threshold()
            self.heartbeat = start_heartbeat(self)

    def close_streams(self) -> None:
        """Cut the other members' dqlite streams into our node (they redial the new leader now,
        not after a read timeout)."""
        for tr in list(self.streams):
            tr.close()
        self.streams.clear()

    async def stop(self) -> None:
        self.close_streams()
        if self.heartbeat is not None:
            await self.heartbeat.stop()
            self.heartbeat = None
        await self.peer.close()

    # ---- raft questions -----------------------------------------------------------------------

    async def raft_roles(self) -> dict[int, str]:
        return {n.id: gw.ROLE_NAMES[n.role] for n in await self.gateway.members()}

    async def leader_address(self) -> str:
        leader = await self.gateway.leader()
        return leader[1] if leader else ""

    async def is_leader(self) -> bool:
        try:
            return await self.gateway.is_leader()
        except Exception:
            return False

    async def members(self) -> list[dict]:
        async with self.state.db.session() as tx:
            return await qc.members(tx)

    async def member_address(self, name: str) -> str:
        """The cluster address of the member called `name` (NotFound when there is none)."""
        for m in await self.members():
            if m["name"] == name:
                return m["address"]
        raise NotFound("Cluster member not found")

    def threshold(self) -> float:
        return float(self.state.config.get("cluster.offline_threshold") or 20)

    def online(self, member: dict, threshold: float | None = None) -> bool:
        """Ourselves, or a member whose last heartbeat is younger than cluster.offline_threshold
        (or the `threshold` given)."""
        from datetime import datetime, timezone
        from corral.cluster import render
        return member["id"] == self.member_id or render.online(
            member["heartbeat"], threshold if threshold is not None else self.threshold(),
            datetime.now(timezone.utc))

    async def notify_all(self, method: str, path: str, body=None,
                         threshold: float | None = None) -> dict[str, str | None]:
        """Call every other online member (a cluster notification); their errors by name. `threshold`
        widens who counts as online (a config write that lowered cluster.offline_threshold)."""
        if not self.clustered:
            return {}
        others = [m for m in await self.members() if m["id"] != self.member_id and self.online(m, threshold)]

        async def one(m):
            try:
                status, doc = await self.peer.request(m["address"], method, path, body, timeout=10, notify=True)
                return m["name"], (doc.get("error") or f"HTTP {status}") if status >= 400 else None
            except PeerError as e:
                return m["name"], str(e)
        return dict(await asyncio.gather(*(one(m) for m in others)))

    async def on_leader(self, method: str, path: str, body=None, timeout: float = 30.0):
        """Run an internal call on the leader (ourselves directly when we lead)."""
        leader = await self.leader_address()
        if not leader:
            raise CorralError("No leader is available in the cluster", 503)
        return await self.peer.call(leader, method, path, body, timeout=timeout)

    # ---- roles --------------------------------------------------------------------------------

    async def apply_roles(self, changes: list[tuple[int, str]]) -> None:
        if not changes:
            return
        current = {n.id: gw.ROLE_NAMES[n.role] for n in await self.gateway.members()}
        for member_id, role in changes:
            log.info("raft: member %d becomes %s", member_id, role)
            if current.get(member_id) == "voter" and role == "spare":
                await self.gateway.assign(member_id, "stand-by")   # as LXD's Assign: via stand-by
            await self.gateway.assign(member_id, role)
            current[member_id] = role

    async def rebalance(self) -> list[tuple[int, str]]:
        """On the leader: bring the raft roles to the targets (cluster.max_voters, max_standby)."""
        from corral.cluster import roles
        if not self.clustered or self.leaving or not await self.is_leader():
            return []
        async with self._lock:
            if self.leaving:
                return []
            plan = roles.plan(await self._role_members(), self._max("cluster.max_voters", 3),
                              self._max("cluster.max_standby", 2), leader_id=self.member_id)
            await self.apply_roles(plan)
            await self._sync_raft_nodes()
            return plan

    def _max(self, key: str, default: int) -> int:
        try:
            return int(self.state.config.get(key) or default)
        except ValueError:
            return default

    async def _role_members(self):
        from corral.cluster.roles import Member
        rows = {m["id"]: m for m in await self.members()}
        out = []
        for n in await self.gateway.members():
            m = rows.get(n.id)
            out.append(Member(id=n.id, name=m["name"] if m else "", address=n.address,
                              role=gw.ROLE_NAMES[n.role], online=bool(m) and self.online(m),
                              failure_domain=(m or {}).get("failure_domain") or ""))
        return out

    async def _sync_raft_nodes(self) -> None:
        names = {m["id"]: m["name"] for m in await self.members()}
        nodes = await self.gateway.members()
        for n in nodes:
            n.name = names.get(n.id, n.name)
        self.gateway.set_raft_nodes(nodes)

    # ---- changing membership (corral/cluster/join.py) -------------------------------------------

    async def enable(self, server_name: str) -> None:
        await _join.enable(self, server_name)

    def join_work(self, req: dict) -> Work:
        async def run(_op):
            await _join.join(self, req)
        return Work(description="Joining cluster", run=run)

    async def accept(self, body: dict, validated: bool = False) -> dict:
        return await _join.accept(self, body, validated=validated)

    async def remove_member(self, name: str, force: bool) -> None:
        await _join.remove_member(self, name, force)

    async def rename_member(self, old: str, new: str) -> None:
        await _join.rename_member(self, old, new)

    async def handover(self) -> None:
        await _join.handover(self)

    async def handover_plan(self, member_id: int) -> list:
        plan = await _join.handover_plan(self, member_id)
        log.info("handover of member %d: %s", member_id, plan)
        return plan

    async def became_member(self) -> None:
        """Clustering enabled or joined: serve the cluster certificate, reload, beat."""
        for hook in self.on_member:
            await hook()
        await self.start()

    async def announce(self) -> None:
        """A joined member tells every member about itself (LXD's NotifyHeartbeat)."""
        if self.heartbeat is not None:
            await self.heartbeat.announce()

    async def _sync_raft_nodes_safe(self) -> None:
        try:
            await self._sync_raft_nodes()
        except Exception as e:   # the next heartbeat brings it
            log.debug("raft_nodes refresh failed: %s", e)

    async def reset(self) -> None:
        """This member was removed from the cluster: forget it and stop (LXD wipes a removed member)."""
        log.warning("this member was removed from the cluster: stopping")
        local = self.state.db.open_local()
        local.set_raft_nodes([])
        local.set_config({"cluster.https_address": None})
        for path in self.cert_files():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self._wipe_on_stop = True
        if self.shutdown_hook is not None:
            self.shutdown_hook()

    def after_stop(self) -> None:
        """The database stopped: a removed member starts again as an empty standalone server."""
        if self._wipe_on_stop:
            import shutil
            data = self.paths.global_db
            for entry in os.listdir(data):
                path = os.path.join(data, entry)
                shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)

    async def refresh(self, tables: list[str]) -> None:
        """Another member wrote these tables: reload what we keep in memory of them."""
        for load in dict.fromkeys(self.reloaders[t] for t in tables if t in self.reloaders):
            await load()
        if "config" in tables:
            self._threshold_known = self.threshold()
            if self.heartbeat is not None:
                self.heartbeat.poke()

    async def tables_changed(self, tables: set[str]) -> None:
        """We committed writes to these tables: the other members reload their copies, before the
        request that wrote them answers (a write on any member is read on every member)."""
        if not self.clustered:
            return
        window = None
        if "config" in tables:
            # Members whose heartbeat is older than a new, lower threshold (but younger than the old
            # one) are online still: the leader's next round reaches them. They must get the new value.
            before, self._threshold_known = self._threshold_known, self.threshold()
            window = max(before if before is not None else 20.0, self._threshold_known)
            if self.heartbeat is not None:
                self.heartbeat.poke()
        cached = sorted(t for t in tables if t in self.reloaders)
        if not cached:
            return
        errors = await self.notify_all("POST", "/internal/cluster/refresh", {"tables": cached}, threshold=window)
        for name, err in errors.items():
            if err:
                log.warning("member %s did not reload %s: %s", name, ", ".join(cached), err)
