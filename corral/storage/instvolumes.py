"""Instance volumes (type "container") as editable records, as in LXD: `lxc storage volume set POOL
container/c1 user.k=v`, `... edit`, `... show`.

An instance volume is the instance's root directory in its pool; the volume's own description and
config (user.* keys) are kept in a storage_volumes row of type "container", made on the first edit
and removed, renamed or moved with the instance (corral/instance/manager.py, poolmove.py).
"""
from __future__ import annotations

from corral import timeutil
from corral.config.keys import check_key_name
from corral.db.queries import storage as q
from corral.errors import BadRequest
from corral.locks import LOCKS

TYPE = "container"


async def record(db, pool: str, project: str, name: str) -> dict | None:
    async with db.session() as tx:
        return await q.volume(tx, pool, project, TYPE, name)


async def records(db, pool: str, project: str) -> dict[str, dict]:
    async with db.session() as tx:
        return {v["name"]: v for v in await q.volumes(tx, pool, project) if v["type"] == TYPE}


def check_config(config) -> dict[str, str]:
    """What an instance volume's config may hold (LXD: its size is the root disk device's "size")."""
    if not isinstance(config, dict) or any(not isinstance(v, str) for v in config.values()):
        raise BadRequest("Invalid config: expected a map of strings")
    for k in config:
        check_key_name(k)
        if k == "size":
            raise BadRequest('Instance volume quota must be set via the instance\'s root disk device "size" property')
        if not k.startswith(("user.", "volatile.")):
            raise BadRequest(f'Invalid option "{k}" for an instance storage volume (only user.* keys)')
    return dict(config)


async def update(vols, pool: str, project: str, name: str, body: dict, *, replace: bool, etag_check=None) -> None:
    async with LOCKS.hold("volume", pool, project, f"{TYPE}/{name}"):
        cur = await vols.get(pool, project, TYPE, name)   # 404 when there is no such instance volume
        if etag_check is not None:
            etag_check({"description": cur["description"], "config": cur["config"]})
        config = check_config(body.get("config") or {})
        volatile = {k: v for k, v in cur["config"].items() if k.startswith("volatile.")}
        new = {**volatile, **config} if replace else {**cur["config"], **config}
        description = body.get("description", "" if replace else cur["description"])
        if not isinstance(description, str):
            raise BadRequest('Invalid value for field "description": expected string')
        async with vols.db.transaction() as tx:
            row = await q.volume(tx, pool, project, TYPE, name)
            if row is None:
                await q.create_volume(tx, {"pool": pool, "project": project, "type": TYPE, "name": name,
                                           "description": description, "config": new,
                                           "created_at": timeutil.now()})
            else:
                await q.update_volume(tx, row["id"], description, new)
