"""Storage pools across cluster members, as LXD 5.0 makes them (lxd/storage_pools.go):

- `POST /1.0/storage-pools?target=M` defines the pool on member M (Pending there) with M's own
  keys only (Pools.define);
- `POST /1.0/storage-pools` without a target, once the pool is pending on every member, stores the
  cluster-wide keys, marks the pool Errored (until all is done), creates it here, then tells every
  other member to create its part (a cluster notification: the member creates the pool from the
  config it sees, Pools.create_local) and marks it Created when all did. A member that failed is
  Errored on it, the pool stays Errored and the error names every failed member with its reason;
  the same request again creates it on the members where it is not Created yet;
- `DELETE` removes each member's part (this one first), then the records.

A standalone server (or a cluster of one member) creates a pool at once (Pools.create)."""
from __future__ import annotations

from corral.cluster import fanout
from corral.config import member_keys
from corral.db.queries import storage as q
from corral.errors import BadRequest, CorralError


async def _count(d) -> int:
    return len(await d.cluster.members()) if d.cluster.clustered else 1


async def create(d, body: dict, target: str | None, requestor=None, notification: bool = False) -> str:
    """POST /1.0/storage-pools (with ?target=, or as a cluster notification)."""
    pools = d.pools
    if notification:   # another member asks for this member's part
        name, _driver, _desc, _cls = pools.check_request(body)
        await pools.create_local(name)
        return name
    if target:
        return await pools.define(body, target)
    name, driver, _desc, cls = pools.check_request(body)
    async with d.db.session() as tx:
        existing = await q.pool(tx, name)
    if await _count(d) > 1 or (existing is not None and existing["status"] != "Created"):
        await create_everywhere(d, body, existing, requestor)
        return name
    return await pools.create(body, requestor)


def _partially_created(p: dict) -> bool:
    """LXD's storagePoolPartiallyCreated: a create ran before (Errored, or cluster-wide keys stored)."""
    return p["status"] == "Errored" or any(k not in member_keys.POOL for k in p["config"])


async def create_everywhere(d, body: dict, existing: dict | None, requestor=None) -> None:
    """LXD's storagePoolsPostCluster."""
    pools = d.pools
    name, driver, description, cls = pools.check_request(body)
    config = body.get("config") or {}
    if not isinstance(config, dict):
        raise BadRequest("Invalid config: expected a map of strings")
    for key in config:
        if key in member_keys.POOL:
            raise BadRequest(f'Config key "{key}" is cluster member specific')
    config = pools.check_config(cls, config)
    if existing is not None:
        if existing["status"] == "Created":
            raise BadRequest("The storage pool is already created")
        if existing["driver"] != driver:
            raise BadRequest(f'Requested storage pool driver "{driver}" doesn\'t match driver in existing '
                             f'database record "{existing["driver"]}"')
    async with pools.lock(name):
        async with d.db.transaction() as tx:
            p = await q.pool(tx, name)
            if p is None:
                raise BadRequest("Pool not pending on any node (use --target <node> first)")
            if _partially_created(p):
                if config:
                    raise BadRequest("Storage pool already partially created. Please do not specify any "
                                     "global config when re-running create")
            else:
                missing, _configs = await q.member_configs(tx, p["id"])
                if missing:
                    raise BadRequest(f"Pool not defined on nodes: {', '.join(missing)}")
                # every member's full config must be valid for the driver before anything is stored
                for member, own in _configs.items():
                    try:
                        pools.check_config(cls, {**config, **own})
                    except CorralError as e:
                        raise BadRequest(f'Invalid config for member "{member}": {e.message}') from None
                await q.set_global_config(tx, p["id"], config)
                await tx.execute("UPDATE storage_pools SET description = ? WHERE id = ?", [description, p["id"]])
            await q.set_pool_state(tx, p["id"], "Errored")   # until every member made its part
            pool_id = p["id"]
    failed: dict[str, str] = {}
    try:
        await pools.create_local(name)
    except CorralError as e:
        failed[d.cluster.server_name] = e.message
    except Exception as e:  # noqa: BLE001 - reported as the member's failure
        failed[d.cluster.server_name] = str(e) or type(e).__name__
    if not failed:
        glob = {k: v for k, v in (await pools.get(name))["config"].items() if k not in member_keys.POOL}

        def body_for(member: str) -> dict:
            return {"name": name, "driver": driver, "description": description, "config": dict(glob)}
        failed.update({m: err for m, err in (await fanout.each(d.cluster, "POST", "/1.0/storage-pools",
                                                               body_for)).items() if err})
    ids = {m["name"]: m["id"] for m in await d.cluster.members()} if d.cluster.clustered else {}
    async with d.db.transaction() as tx:
        for member in failed:
            if member in ids:
                await q.set_member_state(tx, pool_id, "Errored", ids[member])
        if not failed:
            await q.set_pool_state(tx, pool_id, "Created")
    if failed:
        raise CorralError("; ".join(f'Failed to create storage pool "{name}" on member "{m}": {err}'
                                    for m, err in sorted(failed.items())))
    d.events.lifecycle("storage-pool-created", f"/1.0/storage-pools/{name}", requestor=requestor)


async def delete(d, name: str, requestor=None, notification: bool = False) -> None:
    """DELETE /1.0/storage-pools/NAME: every member's part, then the records."""
    pools = d.pools
    if notification:
        await pools.delete_local(name)
        return
    p = await pools.get(name)
    if await _count(d) <= 1 and p["status"] == "Created" and len(p["members"]) <= 1:
        await pools.delete(name, await d.pool_used_by(name), requestor)
        return
    if await d.pool_used_by(name):
        raise BadRequest("The storage pool is currently in use")
    down = await fanout.offline(d.cluster)
    if down:
        raise BadRequest(f'Cluster member "{down[0]}" is offline: the storage pool cannot be deleted on it')
    await pools.delete_local(name)
    failed = {m: err for m, err in (await fanout.each(d.cluster, "DELETE", f"/1.0/storage-pools/{name}",
                                                      lambda _m: None)).items() if err}
    if failed:
        raise CorralError("; ".join(f'Failed to delete storage pool "{name}" on member "{m}": {err}'
                                    for m, err in sorted(failed.items())))
    async with d.db.transaction() as tx:
        await q.delete_pool(tx, name)
    d.events.lifecycle("storage-pool-deleted", f"/1.0/storage-pools/{name}", requestor=requestor)


def render(p: dict, clustered: bool, member_view: bool) -> dict:
    """The config and status a GET shows: clustered without ?target=, the cluster-wide keys and
    the pool's status; otherwise (standalone, or the member a ?target= named) this member's keys
    too and its own status."""
    config = dict(p["config"])
    status = p["status"]
    if clustered and not member_view:
        config = {k: v for k, v in config.items() if k not in member_keys.POOL}
    elif p["local_status"] is not None:
        status = p["local_status"]
    return {"config": config, "status": status, "locations": p["locations"]}



async def update(d, name: str, body: dict, *, replace: bool, target: str = "", requestor=None,
                 notification: bool = False, etag_check=None) -> None:
    """PUT/PATCH /1.0/storage-pools/NAME (LXD's storagePoolPut): in a cluster, without ?target= only
    cluster-wide keys change, on every member (the others told first, as LXD does; this member
    stores); with ?target= (answered by that member) only that member's own keys."""
    pools = d.pools
    if not d.cluster.clustered:
        await pools.update(name, body, replace=replace, requestor=requestor, etag_check=etag_check)
        return
    if notification:   # the cluster-wide keys another member changed (and stores)
        await pools.update(name, body, replace=replace, store=False)
        return
    p = await pools.get(name)
    config = body.get("config") or {}
    if not isinstance(config, dict):
        raise BadRequest("Invalid config: expected a map of strings")
    if target:
        for k, v in config.items():
            if k not in member_keys.POOL and p["config"].get(k) != v:
                raise BadRequest(f'Config key "{k}" may not be used as cluster member specific key')
        await pools.update(name, body, replace=replace, requestor=requestor, etag_check=etag_check)
        return
    if p["status"] != "Created":
        raise BadRequest("Cannot update storage pool global config when not in created state")
    for k in config:
        if k in member_keys.POOL:
            raise BadRequest(f'Config key "{k}" is cluster member specific')
    if etag_check is not None:   # what a GET without ?target= showed
        etag_check({"config": render(p, True, False)["config"], "description": p["description"]})
    pools.check_config(type(pools.pool(name).driver), config)
    down = await fanout.offline(d.cluster)
    if down:
        raise BadRequest(f'Cluster member "{down[0]}" is offline: the storage pool cannot be updated on it')
    failed = {m: err for m, err in (await fanout.each(
        d.cluster, "PUT" if replace else "PATCH", f"/1.0/storage-pools/{name}",
        lambda _m: {"config": dict(config), "description": body.get("description", p["description"])})).items()
        if err}
    if failed:
        raise CorralError("; ".join(f'Failed to update storage pool "{name}" on member "{m}": {err}'
                                    for m, err in sorted(failed.items())))
    await pools.update(name, body, replace=replace, requestor=requestor)
