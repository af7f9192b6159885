"""A network's part on this member, in a cluster (mixed into Networks, corral/network/networks.py):
defined here pending with this member's own keys (`--target`), made here from the config this
member sees when the network is created cluster-wide (corral/network/cluster_networks.py),
removed here on delete. Members are network namespaces or hosts of their own: each has its own
bridge (and dnsmasq, nftables rules) of the network's name."""
from __future__ import annotations

import logging

from corral.config import member_keys
from corral.db.queries import networks as q
from corral.errors import BadRequest, NotFound
from corral.network import driver_class
from corral.network.drivers.base import NetworkError

log = logging.getLogger(__name__)


class MemberParts:
    async def define(self, name: str, ntype: str, config: dict, target: str) -> str:
        """LXD's CreatePendingNetwork: Pending on `target` with its own keys; nothing made yet."""
        driver_class(ntype)   # an unknown type: LXD's error
        for key in config:
            if key not in member_keys.NETWORK:
                raise BadRequest(f'Config key "{key}" may not be used as member-specific key')
        for k, v in config.items():
            if not isinstance(v, str):
                raise BadRequest(f'Invalid value for network "{name}" option "{k}": expected a string')
        async with self.lock(name):
            async with self.db.transaction() as tx:
                wrong = await q.define_on_member(tx, name, ntype, target, config)
        if wrong == "member":
            raise NotFound("Cluster member not found")
        if wrong == "type":
            raise BadRequest("Network already exists with a different type")
        if wrong == "state":
            raise BadRequest("Network is not in pending state")
        if wrong == "defined":
            raise BadRequest(f'The network is already defined on member "{target}"')
        return name

    async def create_local(self, name: str) -> None:
        """This member's part of a network created cluster-wide (LXD's doNetworksCreate on each
        member): validated with this member's whole config, started, Created here. Nothing is
        done when it is Created here already; on failure nothing is left here."""
        async with self.lock(name):
            rec = await self.record(name)
            if rec is None:
                raise NotFound("Network not found")
            if rec["local_status"] is None:
                raise BadRequest(f'Network "{name}" is not defined on this member')
            if rec["local_status"] == "Created" and name in self._drivers:
                return
            cls = driver_class(rec["type"])
            try:
                config = cls.validate(name, rec["config"])
            except NetworkError as e:
                raise BadRequest(e.message) from None
            if rec["type"] == "bridge" and name in {i["name"] for i in await self._host_interfaces()}:
                raise BadRequest(f'Network interface "{name}" already exists')
            drv = cls(name, config, self.netdir(name))
            await self._check_overlap(drv, None)
            try:
                await drv.start()
                async with self.db.transaction() as tx:
                    await q.set_member_state(tx, rec["id"], "Created")
            except BaseException:
                try:
                    await drv.delete()
                except Exception:
                    log.exception("network %s: clean-up after a failed create", name)
                raise
            rec.update(config=config, local_status="Created")
            self._drivers[name], self._recs[name], self._status[name] = drv, rec, "Created"

    async def delete_local(self, name: str) -> None:
        """This member's part removed (the records stay until every member removed its part);
        Pending here again."""
        async with self.lock(name):
            drv = self._drivers.pop(name, None)
            if drv is not None:
                await drv.delete()
                self._recs.pop(name, None)
                self._status.pop(name, None)
            rec = await self.record(name)
            if rec is not None and rec["local_status"] is not None:
                async with self.db.transaction() as tx:
                    await q.set_member_state(tx, rec["id"], "Pending")

    def check_member_config(self, name: str, ntype: str, config: dict) -> dict[str, str]:
        """A member's whole config of a network (cluster-wide and its own keys) against the type."""
        try:
            return driver_class(ntype).validate(name, config)
        except NetworkError as e:
            raise BadRequest(e.message) from None
