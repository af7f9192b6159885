"""Custom storage volume PUT/PATCH: under the volume's lock, If-Match against the stored record,
validate, apply (a new size), store. When the store fails the old size is put back."""
from __future__ import annotations

import asyncio

from corral.config.keys import is_true
from corral.db.queries import storage as q
from corral.errors import BadRequest
from corral.locks import LOCKS
from corral.storage import instvolumes
from corral.storage.sizes import parse_size
from corral.storage.volumes import check_volume_config, disk_key, vol_url


async def update(vols, pool: str, project: str, type_: str, name: str, body: dict, *, replace: bool,
                 requestor, etag_check=None) -> None:
    """PUT/PATCH under the volume's lock: If-Match, validate, apply (size), store; a failed store
    puts the old size back."""
    if type_ in instvolumes.TYPES:
        await instvolumes.update(vols, pool, project, name, body, replace=replace, etag_check=etag_check,
                                 vtype=type_)
        vols.events.lifecycle("storage-volume-updated", vol_url(pool, type_, name, project),
                              project=project, requestor=requestor)
        return
    if type_ != "custom":
        raise BadRequest(f'Storage volumes of type "{type_}" cannot be modified here')
    async with LOCKS.hold("volume", pool, project, name):
        v = await vols.custom(pool, project, name)
        if etag_check is not None:
            etag_check({"description": v["description"], "config": v["config"]})
        if body.get("restore"):
            await vols.restore(v, body["restore"], requestor)
            return
        await _update(vols, v, body, replace=replace)
    vols.events.lifecycle("storage-volume-updated", vol_url(pool, "custom", name, project),
                          project=project, requestor=requestor)

async def _update(vols, v: dict, body: dict, *, replace: bool) -> None:
    pool = vols._pool(v["pool"])
    config = check_volume_config(body.get("config") or {}, pool.driver.name, v.get("content_type") or "filesystem",
                                 volume=disk_key(v["project"], v["name"]))
    volatile = {k: val for k, val in v["config"].items() if k.startswith("volatile.")}
    new = {**volatile, **config} if replace else {**v["config"], **config}
    description = body.get("description", "" if replace else v["description"])
    if not isinstance(description, str):
        raise BadRequest('Invalid value for field "description": expected string')
    in_use = await vols.used_by(v["pool"], v["project"], v["name"])
    for k in ("security.shifted", "security.unmapped"):
        if is_true(new.get(k)) != is_true(v["config"].get(k)) and in_use:
            raise BadRequest(f'"{k}" cannot be changed while the volume is in use')
    resized = new.get("size") != v["config"].get("size")
    if resized:
        await vols.d.limits.check_volume(v["project"], v["pool"], v["name"], new)
        size = parse_size(new["size"]) if new.get("size") else None
        vol = vols.vol(v)
        if size and vol.content_type != "block":
            used = await asyncio.to_thread(pool.usage, vol)
            if size < used:
                raise BadRequest("Volume size cannot be smaller than the space it uses")
        await asyncio.to_thread(pool.set_quota, vol, size)
    try:
        async with vols.db.transaction() as tx:
            await q.update_volume(tx, v["id"], description or "", new)
    except BaseException:
        if resized:
            old = parse_size(v["config"]["size"]) if v["config"].get("size") else None
            if vol.content_type != "block":   # a grown disk stays grown (it cannot be shrunk)
                await asyncio.to_thread(pool.set_quota, vol, old)
        raise
