"""Instance volumes (type "container", and "virtual-machine" for VMs) as editable records, as in
LXD: `lxc storage volume set POOL container/c1 user.k=v`, `... virtual-machine/vm1 ...`, `... edit`,
`... show`.

An instance volume is the instance's root directory in its pool (a VM's: its config directory
holding its disk); the volume's own description and config (user.* keys) are kept in a
storage_volumes row of the instance's volume type, made on the first edit and removed, renamed or
moved with the instance (corral/instance/manager.py, poolmove.py).
"""
from __future__ import annotations

from corral import timeutil
from corral.config.storage import check_instance_volume
from corral.db.queries import storage as q
from corral.errors import BadRequest
from corral.locks import LOCKS

TYPE = "container"
VM = "virtual-machine"
TYPES = (TYPE, VM)


async def record(db, pool: str, project: str, name: str, vtype: str = TYPE) -> dict | None:
    async with db.session() as tx:
        return await q.volume(tx, pool, project, vtype, name)


async def records(db, pool: str, project: str, vtype: str = TYPE) -> dict[str, dict]:
    async with db.session() as tx:
        return {v["name"]: v for v in await q.volumes(tx, pool, project) if v["type"] == vtype}


def check_config(config, volume: str = "") -> dict[str, str]:
    """What an instance volume's config may hold (corral/config/storage.py; LXD: its size is the
    root disk device's "size")."""
    return check_instance_volume(config, volume)


async def update(vols, pool: str, project: str, name: str, body: dict, *, replace: bool, etag_check=None,
                 vtype: str = TYPE) -> None:
    async with LOCKS.hold("volume", pool, project, f"{vtype}/{name}"):
        cur = await vols.get(pool, project, vtype, name)   # 404 when there is no such instance volume
        if etag_check is not None:
            etag_check({"description": cur["description"], "config": cur["config"]})
        config = check_config(body.get("config") or {}, name if project == "default" else f"{project}_{name}")
        volatile = {k: v for k, v in cur["config"].items() if k.startswith("volatile.")}
        new = {**volatile, **config} if replace else {**cur["config"], **config}
        description = body.get("description", "" if replace else cur["description"])
        if not isinstance(description, str):
            raise BadRequest('Invalid value for field "description": expected string')
        async with vols.db.transaction() as tx:
            row = await q.volume(tx, pool, project, vtype, name)
            if row is None:
                await q.create_volume(tx, {"pool": pool, "project": project, "type": vtype, "name": name,
                                           "description": description, "config": new,
                                           "content_type": "block" if vtype == VM else "filesystem",
                                           "created_at": timeutil.now()})
            else:
                await q.update_volume(tx, row["id"], description, new)
