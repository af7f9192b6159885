"""Networks the daemon knows: LXD's semantics (create, update, rename, delete, used_by, state,
leases, host interfaces listed as unmanaged) over the network drivers and the database."""
from __future__ import annotations

import asyncio
import logging
import re

from corral.apitypes import NetworkPut, NetworksPost
from corral.config import member_keys
from corral.db.queries import networks as q
from corral.errors import BadRequest, Conflict, CorralError, NotFound
from corral.network import driver_class
from corral.network.drivers.base import NetworkDriver, NetworkError
from corral.network.member_parts import MemberParts
from corral.network.subnets import overlaps

log = logging.getLogger(__name__)

_IFNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$")


def url(name: str) -> str:
    return f"/1.0/networks/{name}"


def check_network_name(name) -> str:
    if not isinstance(name, str) or not name:
        raise BadRequest("No name provided")
    if not _IFNAME.match(name) or name in (".", ".."):
        raise BadRequest(f'Invalid network name "{name}": at most 15 letters, digits, "-", "_" or "."')
    return name


def nic_network(dev: dict) -> tuple[str, str]:
    """("network", NAME) for a NIC on a managed network, ("parent", IFACE) for a parented NIC."""
    if dev.get("network"):
        return "network", dev["network"]
    return "parent", dev.get("parent", "")


class Networks(MemberParts):
    def __init__(self, daemon):
        self.d = daemon
        self.db = daemon.db
        self.events = daemon.events
        self.host = daemon.net_host   # the host's links and routes (mock mode: a host without any)
        self._drivers: dict[str, NetworkDriver] = {}
        self._recs: dict[str, dict] = {}
        self._status: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def netdir(self, name: str) -> str:
        return self.d.paths.join("networks", name)

    def lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    # ---- loading and daemon lifecycle -----------------------------------------------------------

    async def load(self) -> None:
        """A driver per network created on this member; the others (pending or errored here)
        are only records until they are created here (create_local)."""
        async with self.db.transaction() as tx:
            recs = await q.get_all(tx)
            for i, rec in enumerate(recs):
                # a standalone server kept member-specific keys cluster-wide: they are this member's
                if len(rec["members"]) == 1 and rec["local_status"] is not None and \
                        await q.localise_member_keys(tx, rec["id"], member_keys.NETWORK):
                    recs[i] = await q.get(tx, rec["name"])
        self._drivers, self._recs = {}, {}
        for rec in recs:
            if rec["local_status"] == "Created":
                self._recs[rec["name"]] = rec
                self._drivers[rec["name"]] = driver_class(rec["type"])(rec["name"], rec["config"],
                                                                       self.netdir(rec["name"]))

    async def record(self, name: str) -> dict | None:
        """The network's record as this member sees it (any state), None when there is none."""
        async with self.db.session() as tx:
            return await q.get(tx, name)

    async def startup(self) -> None:
        """Bring every managed network up; what a previous daemon left running is adopted."""
        for name, drv in sorted(self._drivers.items()):
            try:
                async with self.lock(name):
                    await drv.start()
                self._status[name] = "Created"
            except CorralError as e:
                self._status[name] = "Errored"
                log.error("network %s: %s", name, e.message)
            except Exception:
                self._status[name] = "Errored"
                log.exception("network %s: start-up failed", name)

    def shutdown(self) -> None:
        """Networks keep serving running containers when the daemon stops."""
        for drv in self._drivers.values():
            drv.detach()

    # ---- lookups --------------------------------------------------------------------------------

    def managed(self, name: str) -> NetworkDriver | None:
        return self._drivers.get(name)

    def driver(self, name: str) -> NetworkDriver:
        drv = self._drivers.get(name)
        if drv is None:
            raise NotFound("Network not found")
        return drv

    def names(self) -> list[str]:
        return sorted(self._drivers)

    async def _host_interfaces(self) -> list[dict]:
        return await asyncio.to_thread(self.host.interfaces)

    async def list_names(self) -> list[str]:
        """Managed networks (in any state), then host interfaces (veths left out, as LXD does)."""
        async with self.db.session() as tx:
            managed = sorted(set(self.names()) | {r["name"] for r in await q.get_all(tx)})
        out = list(managed)
        for iface in await self._host_interfaces():
            if iface["name"] in managed or iface["name"].startswith("veth"):
                continue
            out.append(iface["name"])
        return out

    @staticmethod
    def _unmanaged_type(iface: dict) -> str:
        if iface["flags"] & 0x8:
            return "loopback"
        return {"bridge": "bridge", "bond": "bond", "vlan": "vlan", "": "physical"}.get(iface["kind"], "unknown")

    def _clustered(self) -> bool:
        cluster = getattr(self.d, "cluster", None)
        return bool(cluster is not None and cluster.clustered)

    def view(self, rec: dict, member_view: bool = False) -> dict:
        """Config and status as a GET shows them: clustered without ?target=, the cluster-wide keys
        and the network's status; otherwise this member's keys too and its own status (Errored
        when it failed to start here)."""
        config, status = dict(rec["config"]), rec["status"]
        if self._clustered() and not member_view:
            config = {k: v for k, v in config.items() if k not in member_keys.NETWORK}
        elif rec["local_status"] is not None:
            status = rec["local_status"]
            if status == "Created":
                status = self._status.get(rec["name"], "Created")
        return {"config": config, "status": status}

    async def render(self, name: str, member_view: bool = False) -> dict:
        rec = await self.record(name)
        if rec is not None:
            v = self.view(rec, member_view)
            return {"config": v["config"], "description": rec["description"], "name": name, "type": rec["type"],
                    "used_by": await self.used_by(name), "managed": True,
                    "status": v["status"], "locations": rec["locations"]}
        for iface in await self._host_interfaces():
            if iface["name"] == name:
                return {"config": {}, "description": "", "name": name, "type": self._unmanaged_type(iface),
                        "used_by": await self.used_by(name), "managed": False, "status": "", "locations": None}
        raise NotFound("Network not found")

    @staticmethod
    def etag_of(rendered: dict) -> dict | None:
        if not rendered.get("managed"):
            return None
        return {k: rendered[k] for k in ("config", "description", "name", "type", "managed")}

    def etag(self, name: str) -> dict | None:
        rec = self._recs.get(name)
        if rec is None:
            return None
        return {"config": rec["config"], "description": rec["description"], "name": name,
                "type": rec["type"], "managed": True}

    # ---- used_by ------------------------------------------------------------------------------

    def _uses(self, dev: dict, name: str) -> bool:
        if dev.get("type") != "nic":
            return False
        kind, target = nic_network(dev)
        if kind == "network":
            return target == name
        drv = self._drivers.get(name)
        iface = drv.interface if drv is not None and drv.type == "bridge" else name
        return target == iface and dev.get("nictype") in ("bridged", "macvlan", "p2p", "physical", "ipvlan")

    async def used_by(self, name: str) -> list[str]:
        out = []
        for p in await self.d.profiles.get_all("default"):
            if any(self._uses(dev, name) for dev in p["devices"].values()):
                out.append(f"/1.0/profiles/{p['name']}")
        for inst in await self.d.instances.load_all(None):
            if any(self._uses(dev, name) for dev in inst.devices.values()):
                out.append(f"/1.0/instances/{inst.name}" + ("" if inst.project == "default" else f"?project={inst.project}"))
        return out

    async def instances_on(self, name: str) -> list:
        return [inst for inst in await self.d.instances.load_all(None)
                if any(self._uses(dev, name) for dev in inst.devices.values())]

    # ---- create / update / rename / delete ---------------------------------------------------------

    async def _used_subnets(self, exclude: str | None) -> list:
        used = await asyncio.to_thread(self.host.host_routes_and_addresses, exclude)
        for n, drv in self._drivers.items():
            if n != exclude:
                used += drv.subnets()
        return used

    async def _check_overlap(self, drv: NetworkDriver, exclude: str | None) -> None:
        used = await self._used_subnets(exclude)
        for net in drv.subnets():
            other = overlaps(net, used)
            if other is not None:
                raise BadRequest(f'Subnet "{net}" of network "{drv.name}" overlaps with "{other}" '
                                 "already used on this host")

    def _prepare(self, name: str, ntype: str, config: dict, exclude: str | None) -> type[NetworkDriver]:
        cls = driver_class(ntype)
        try:
            cls.validate(name, config)
        except NetworkError as e:
            raise BadRequest(e.message) from None
        return cls

    async def create(self, req: NetworksPost, requestor: dict | None = None) -> str:
        name = check_network_name(req.name)
        ntype = req.type or "bridge"
        description = req.description
        raw_config = req.config
        cls = self._prepare(name, ntype, raw_config, None)
        config = cls.validate(name, raw_config)
        async with self.lock(name):
            if name in self._drivers or await self.record(name) is not None:
                raise Conflict(f'Network "{name}" already exists')
            if ntype == "bridge" and name in {i["name"] for i in await self._host_interfaces()}:
                # another daemon (or the admin) owns it: never take over a bridge we did not make
                raise BadRequest(f'Network interface "{name}" already exists')
            try:
                config = cls.fill(name, config, await self._used_subnets(None))
            except ValueError as e:
                raise BadRequest(str(e)) from None
            drv = cls(name, config, self.netdir(name))
            await self._check_overlap(drv, None)
            rec = {"name": name, "type": ntype, "description": description, "config": config, "status": "Created",
                   "project": "default"}
            try:
                await drv.start()
                async with self.db.transaction() as tx:
                    await q.create(tx, rec, member_keys=member_keys.NETWORK)
            except BaseException:
                try:
                    await drv.delete()
                except Exception:
                    log.exception("network %s: clean-up after a failed create", name)
                raise
            self._drivers[name], self._recs[name], self._status[name] = drv, rec, "Created"
        self.events.lifecycle("network-created", url(name), requestor=requestor)
        return name

    async def update(self, name: str, req: NetworkPut, *, replace: bool, requestor: dict | None = None,
                     etag_check=None, store: bool = True) -> None:
        """PUT/PATCH under the network's lock: If-Match, validate, apply to the host, store (not
        when `store` is False: a change another member stores)."""
        if name not in self._drivers:
            if name in {i["name"] for i in await self._host_interfaces()}:
                raise BadRequest("Only managed networks can be modified")
            raise NotFound("Network not found")
        async with self.lock(name):
            if name not in self._drivers:   # renamed or deleted while this request waited
                raise NotFound("Network not found")
            if etag_check is not None:
                etag_check(self.etag(name))
            rec = self._recs[name]
            drv = self._drivers[name]
            cfg_in = req.config
            if replace:
                new_cfg = dict(cfg_in)
                # volatile.* belong to the daemon
                for k, v in rec["config"].items():
                    # (in a cluster, a member's own keys too: a PUT without ?target= changes
                    # only the cluster-wide ones)
                    if (k.startswith("volatile.") or (self._clustered() and k in member_keys.NETWORK)) \
                            and k not in new_cfg:
                        new_cfg[k] = v
                description = req.description
            else:
                new_cfg = {**rec["config"], **cfg_in}
                new_cfg = {k: v for k, v in new_cfg.items() if v is not None}
                description = req.description if req.given("description") else rec["description"]
            cls = self._prepare(name, rec["type"], new_cfg, name)
            new_cfg = cls.validate(name, new_cfg)
            try:
                new_cfg = cls.fill(name, new_cfg, await self._used_subnets(name))
            except ValueError as e:
                raise BadRequest(str(e)) from None
            probe = cls(name, new_cfg, self.netdir(name))
            await self._check_overlap(probe, name)
            old_cfg = dict(rec["config"])
            try:
                try:
                    await drv.update(new_cfg)
                except Exception as e:   # the host refused it (netlink, nft, dnsmasq): a clear 400
                    if isinstance(e, CorralError) and e.status < 500:
                        raise
                    msg = e.message if isinstance(e, CorralError) else str(e) or type(e).__name__
                    raise BadRequest(f'Failed to apply the configuration of network "{name}": {msg}') from e
                if store:
                    async with self.db.transaction() as tx:
                        await q.update(tx, name, description, new_cfg, member_keys=member_keys.NETWORK)
            except BaseException:
                try:
                    await drv.update(old_cfg)
                except Exception:
                    log.exception("network %s: restoring the old config failed", name)
                raise
            rec.update(config=new_cfg, description=description)
            self._status[name] = "Created"
        if store:
            self.events.lifecycle("network-updated", url(name), requestor=requestor)

    async def rename(self, name: str, new_name: str, requestor: dict | None = None) -> None:
        new = check_network_name(new_name)
        drv = self.driver(name)
        async with self.lock(name):
            if await self.used_by(name):
                raise BadRequest("Network is currently in use")
            if new in self._drivers:
                raise Conflict(f'Network "{new}" already exists')
            if new in {i["name"] for i in await self._host_interfaces()}:
                raise BadRequest(f'Network interface "{new}" already exists')
            rec = self._recs[name]
            cls = type(drv)
            try:
                cls.validate(new, rec["config"])
            except NetworkError as e:
                raise BadRequest(e.message) from None
            await drv.delete()
            newdrv = cls(new, rec["config"], self.netdir(new))
            try:
                await newdrv.start()
                async with self.db.transaction() as tx:
                    await q.rename(tx, name, new)
            except BaseException:
                await newdrv.delete()
                await drv.start()
                raise
            del self._drivers[name]
            self._recs.pop(name)
            self._status.pop(name, None)
            rec["name"] = new
            self._drivers[new], self._recs[new], self._status[new] = newdrv, rec, "Created"
        self.events.lifecycle("network-renamed", url(new), context={"old_name": name}, requestor=requestor)

    async def delete(self, name: str, requestor: dict | None = None) -> None:
        if name not in self._drivers:
            if name in {i["name"] for i in await self._host_interfaces()}:
                raise BadRequest("Only managed networks can be deleted")
            raise NotFound("Network not found")
        async with self.lock(name):
            if await self.used_by(name):
                raise BadRequest("The network is currently in use")
            drv = self._drivers[name]
            await drv.delete()
            async with self.db.transaction() as tx:
                await q.delete(tx, name)
            del self._drivers[name]
            self._recs.pop(name)
            self._status.pop(name, None)
        self.events.lifecycle("network-deleted", url(name), requestor=requestor)

    # ---- state and leases -------------------------------------------------------------------------

    async def state(self, name: str) -> dict:
        drv = self._drivers.get(name)
        if drv is not None:
            try:
                return await drv.state()
            except NetworkError as e:
                raise CorralError(e.message, e.status) from None
        st = await asyncio.to_thread(self.host.link_state, name)
        if st is None:
            raise NotFound("Network not found")
        is_bridge = any(i["name"] == name and i["kind"] == "bridge" for i in await self._host_interfaces())
        st.update({"bond": None, "bridge": await asyncio.to_thread(self.host.bridge_info, name) if is_bridge else None,
                   "vlan": None, "ovn": None})
        return st

    async def leases(self, name: str, projects: set[str] | None = None) -> list[dict]:
        """LXD's GET /1.0/networks/NAME/leases: the gateway, static and dynamic leases (with `projects`,
        only those of instances of these projects)."""
        drv = self._drivers.get(name)
        if drv is None:
            if name in {i["name"] for i in await self._host_interfaces()}:
                raise BadRequest("Networks not managed by LXD don't have leases")
            raise NotFound("Network not found")
        out = [{"hostname": f"{name}.gw", "hwaddr": "", "address": a, "type": "gateway", "location": ""}
               for a in drv.gateway_addresses()]
        by_mac: dict[str, str] = {}
        static: set[tuple[str, str]] = set()
        foreign: set[str] = set()
        for inst in await self.instances_on(name):
            for dev_name, dev in sorted(inst.devices.items()):
                if not self._uses(dev, name):
                    continue
                mac = (dev.get("hwaddr") or inst.config.get(f"volatile.{dev_name}.hwaddr") or "").lower()
                if not mac:
                    continue
                by_mac[mac] = inst.name
                if projects is not None and inst.project not in projects:
                    foreign.add(mac)
                    continue
                for fam in ("ipv4.address", "ipv6.address"):
                    if dev.get(fam):
                        out.append({"hostname": inst.name, "hwaddr": mac, "address": dev[fam], "type": "static",
                                    "location": "none"})
                        static.add((mac, dev[fam]))
        for lease in await asyncio.to_thread(drv.leases):
            if (lease["hwaddr"], lease["address"]) in static or lease["hwaddr"] in foreign or \
                    (projects is not None and lease["hwaddr"] not in by_mac):
                continue
            out.append({"hostname": by_mac.get(lease["hwaddr"], lease["hostname"]), "hwaddr": lease["hwaddr"],
                        "address": lease["address"], "type": "dynamic", "location": "none"})
        return out
