"""Instance volumes (type "container") as editable records, as in LXD: `lxc storage volume set POOL
container/c1 user.k=v`, `... edit`, `... show`.

An instance volume is the instance's root directory in its pool; the volume's own description and
config (user.* keys) are kept in a storage_volumes row of type "container", made on the first edit
and removed, renamed or moved with the instance (corral/instance/manager.py, poolmove.py).
"""
from __future__ import annotations

from corral import timeutil
from corral.config.storage import check_instance_volume
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


def check_config(config, volume: str = "") -> dict[str, str]:
    """What an instance volume's config may hold (corral/config/storage.py; LXD: its size is the
    root disk device's "size")."""
    return check_instance_volume(config, volume)


async def update(vols, pool: str, project: str, name: str, body: dict, *, replace: bool, etag_check=None) -> None:
    async with LOCKS.hold("volume", pool, project, f"{TYPE}/{name}"):
        cur = await vols.get(pool, project, TYPE, name)   # 404 when there is no such instance volume
        if etag_check is not None:
            etag_check({"description": cur["description"], "config": cur["config"]})
        config = check_config(body.get("config") or {}, name if project == "default" else f"{project}_{name}")
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
