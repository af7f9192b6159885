"""Managed networks across cluster members, as LXD 5.0 makes them (lxd/networks.go):
`POST /1.0/networks?target=M` defines the network Pending on member M with M's own keys
(bridge.external_interfaces, parent, bgp.*.nexthop); `POST /1.0/networks` without a target, once
it is pending on every member, fills in and stores the cluster-wide keys (the same subnets on every
member: each member's bridge is its own), marks the network Errored, creates it here and tells
every other member to create its part, then marks it Created. A member that failed is Errored on
it with its reason in the error, and the same request again creates it where it is not Created
yet. A delete removes every member's part, then the records; a rename is refused in a cluster
(LXD 5.0: "Renaming clustered network not supported")."""
from __future__ import annotations

from corral.apitypes import NetworkPut, NetworksPost
from corral.cluster import fanout
from corral.config import member_keys
from corral.db.queries import networks as q
from corral.errors import BadRequest, CorralError
from corral.network import driver_class
from corral.network.networks import check_network_name, url


async def _count(d) -> int:
    return len(await d.cluster.members()) if d.cluster.clustered else 1


async def create(d, req: NetworksPost, target: str | None, requestor=None, notification: bool = False) -> str:
    nets = d.networks
    name = check_network_name(req.name)
    if notification:   # another member asks for this member's part
        await nets.create_local(name)
        return name
    ntype = req.type or "bridge"
    if target:
        return await nets.define(name, ntype, dict(req.config), target)
    existing = await nets.record(name)
    if await _count(d) > 1 or (existing is not None and existing["status"] != "Created"):
        await create_everywhere(d, name, ntype, req, existing, requestor)
        return name
    return await nets.create(req, requestor)


def _partially_created(rec: dict) -> bool:
    return rec["status"] == "Errored" or any(k not in member_keys.NETWORK for k in rec["config"])


async def create_everywhere(d, name: str, ntype: str, req: NetworksPost, existing: dict | None,
                            requestor=None) -> None:
    """LXD's networksPostCluster."""
    nets = d.networks
    cls = driver_class(ntype)
    config = dict(req.config)
    for key in config:
        if key in member_keys.NETWORK:
            raise BadRequest(f'Config key "{key}" is cluster member specific')
    if existing is not None:
        if existing["status"] == "Created":
            raise BadRequest("The network is already created")
        if existing["type"] != ntype:
            raise BadRequest(f'Requested network type "{ntype}" doesn\'t match type in existing database '
                             f'record "{existing["type"]}"')
    async with nets.lock(name):
        async with d.db.session() as tx:
            rec = await q.get(tx, name)
            missing, configs = await q.member_configs(tx, rec["id"]) if rec is not None else ([], {})
        if rec is None:
            raise BadRequest("Network not pending on any node (use --target <node> first)")
        fill = None
        if _partially_created(rec):
            if config:
                raise BadRequest("Network already partially created. Please do not specify any global "
                                 "config when re-running create")
        else:
            if missing:
                raise BadRequest(f"Network not defined on nodes: {', '.join(missing)}")
            config = nets.check_member_config(name, ntype, config)
            try:
                fill = cls.fill(name, config, await nets._used_subnets(None))
            except ValueError as e:
                raise BadRequest(str(e)) from None
            for member, own in configs.items():   # every member's whole config valid before anything is stored
                try:
                    nets.check_member_config(name, ntype, {**fill, **own})
                except BadRequest as e:
                    raise BadRequest(f'Invalid config for member "{member}": {e.message}') from None
        async with d.db.transaction() as tx:
            if fill is not None:
                await q.set_global_config(tx, rec["id"], fill)
                await q.set_description(tx, rec["id"], req.description)
            await q.set_state(tx, rec["id"], "Errored")   # until every member made its part
    failed: dict[str, str] = {}
    try:
        await nets.create_local(name)
    except CorralError as e:
        failed[d.cluster.server_name] = e.message
    except Exception as e:  # noqa: BLE001 - reported as this member's failure
        failed[d.cluster.server_name] = str(e) or type(e).__name__
    if not failed:
        rec = await nets.record(name)
        glob = {k: v for k, v in rec["config"].items() if k not in member_keys.NETWORK}
        body = {"name": name, "type": ntype, "description": rec["description"], "config": glob}
        failed.update({m: err for m, err in (await fanout.each(d.cluster, "POST", "/1.0/networks",
                                                               lambda _m: body)).items() if err})
    ids = {m["name"]: m["id"] for m in await d.cluster.members()} if d.cluster.clustered else {}
    async with d.db.transaction() as tx:
        for member in failed:
            if member in ids:
                await q.set_member_state(tx, rec["id"], "Errored", ids[member])
        if not failed:
            await q.set_state(tx, rec["id"], "Created")
    if failed:
        raise CorralError("; ".join(f'Failed to create network "{name}" on member "{m}": {err}'
                                    for m, err in sorted(failed.items())))
    d.events.lifecycle("network-created", url(name), requestor=requestor)


async def delete(d, name: str, requestor=None, notification: bool = False) -> None:
    nets = d.networks
    if notification:
        await nets.delete_local(name)
        return
    rec = await nets.record(name)
    if rec is None or (await _count(d) <= 1 and rec["status"] == "Created" and len(rec["members"]) <= 1):
        await nets.delete(name, requestor)   # standalone (and its errors for unmanaged or unknown names)
        return
    if await nets.used_by(name):
        raise BadRequest("The network is currently in use")
    down = await fanout.offline(d.cluster)
    if down:
        raise BadRequest(f'Cluster member "{down[0]}" is offline: the network cannot be deleted on it')
    await nets.delete_local(name)
    failed = {m: err for m, err in (await fanout.each(d.cluster, "DELETE", url(name), lambda _m: None)).items()
              if err}
    if failed:
        raise CorralError("; ".join(f'Failed to delete network "{name}" on member "{m}": {err}'
                                    for m, err in sorted(failed.items())))
    async with d.db.transaction() as tx:
        await q.delete(tx, name)
    d.events.lifecycle("network-deleted", url(name), requestor=requestor)


async def rename(d, name: str, new: str, requestor=None) -> None:
    if d.cluster.clustered and await _count(d) > 1:
        raise BadRequest("Renaming clustered network not supported")
    await d.networks.rename(name, new, requestor)


async def update(d, name: str, req: NetworkPut, *, replace: bool, target: str = "", requestor=None,
                 notification: bool = False, etag_check=None) -> None:
    """PUT/PATCH /1.0/networks/NAME (LXD's networkPut): in a cluster, without ?target= only the
    cluster-wide keys, on every member (the others first; this member stores); with ?target=
    (answered by that member) only that member's own keys."""
    nets = d.networks
    if not d.cluster.clustered:
        await nets.update(name, req, replace=replace, requestor=requestor, etag_check=etag_check)
        return
    if notification:
        await nets.update(name, req, replace=replace, store=False)
        return
    rec = await nets.record(name)
    if rec is None:
        await nets.update(name, req, replace=replace, requestor=requestor, etag_check=etag_check)  # its errors
        return
    config = dict(req.config)
    if target:
        for k, v in config.items():
            if k not in member_keys.NETWORK and rec["config"].get(k) != v:
                raise BadRequest(f'Config key "{k}" may not be used as cluster member specific key')
        await nets.update(name, req, replace=replace, requestor=requestor, etag_check=etag_check)
        return
    if rec["status"] != "Created":
        raise BadRequest("Cannot update network global config when not in created state")
    for k in config:
        if k in member_keys.NETWORK:
            raise BadRequest(f'Config key "{k}" is cluster member specific')
    if etag_check is not None:   # what a GET without ?target= showed
        etag_check({"config": nets.view(rec)["config"], "description": rec["description"], "name": name,
                    "type": rec["type"], "managed": True})
    down = await fanout.offline(d.cluster)
    if down:
        raise BadRequest(f'Cluster member "{down[0]}" is offline: the network cannot be updated on it')
    body: dict = {"config": config}
    if replace or req.given("description"):
        body["description"] = req.description
    failed = {m: err for m, err in (await fanout.each(d.cluster, "PUT" if replace else "PATCH", url(name),
                                                      lambda _m: body)).items() if err}
    if failed:
        raise CorralError("; ".join(f'Failed to update network "{name}" on member "{m}": {err}'
                                    for m, err in sorted(failed.items())))
    await nets.update(name, req, replace=replace, requestor=requestor)
