"""The heartbeat task wired to this member: what `corral.cluster.heartbeat.Heartbeat` reads and calls
(its `ops`), over the cluster database, the raft configuration and member-to-member HTTPS."""
from __future__ import annotations

import logging

from corral import timeutil
from corral.cluster import gateway as gw
from corral.cluster.heartbeat import Heartbeat, fmt_time
from corral.cluster.peer import PeerError
from corral.db.queries import cluster as qc

log = logging.getLogger(__name__)


class MemberOps:
    def __init__(self, cluster):
        self.cluster = cluster

    async def is_leader(self) -> bool:
        return await self.cluster.is_leader()

    async def members(self) -> list[dict]:
        rows = await self.cluster.members()
        try:
            raft = {n.id: n for n in await self.cluster.gateway.members()}
        except Exception as e:   # no leader reachable: nothing to send this round
            log.debug("heartbeat: raft configuration unavailable: %s", e)
            raft = {}
        out = []
        for m in rows:
            n = raft.get(m["id"])
            try:
                last = timeutil.parse(str(m["heartbeat"]))
            except (ValueError, TypeError):
                last = timeutil.parse(timeutil.EPOCH)
            out.append({"id": m["id"], "name": m["name"], "address": m["address"],
                        "raft_id": n.id if n else 0, "raft_role": gw.ROLE_NAMES[n.role] if n else "",
                        "last_heartbeat": last, "schema": m["schema"], "api_extensions": m["api_extensions"]})
        return out

    async def send(self, member: dict, payload: dict, timeout: float) -> bool:
        try:
            status, _ = await self.cluster.peer.request(member["address"], "PUT", "/internal/database",
                                                        payload, timeout=timeout)
        except PeerError as e:
            log.debug("heartbeat to %s failed: %s", member["name"], e)
            return False
        return status < 400

    async def record_heartbeat(self, member_id: int, when) -> None:
        stamp = fmt_time(when) if when is not None else timeutil.now()
        async with self.cluster.state.db.transaction() as tx:
            await qc.set_heartbeat(tx, [member_id], stamp)

    def offline_threshold(self) -> float:
        return self.cluster.threshold()

    def self_id(self) -> int:
        return self.cluster.member_id

    def version(self) -> dict:
        schema, api = self.cluster.versions()
        return {"schema": schema, "api_extensions": api}

    async def after_round(self, online_ids, offline_ids) -> None:
        try:
            await self.cluster.rebalance()
        except Exception as e:
            log.warning("raft role rebalance failed: %s", e)

    async def apply_raft_nodes(self, nodes: list[dict]) -> None:
        """The leader's raft member list (with role names), into the local raft_nodes."""
        mine = [gw.RaftNode(int(n["id"]), n["address"], gw.ROLE_CODES.get(n.get("role"), 2), n.get("name", ""))
                for n in nodes]
        if any(n.id == self.cluster.member_id for n in mine):
            self.cluster.gateway.set_raft_nodes(mine)


def start_heartbeat(cluster) -> Heartbeat:
    hb = Heartbeat(MemberOps(cluster))
    hb.start()
    return hb
