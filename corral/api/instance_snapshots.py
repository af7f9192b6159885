"""/1.0/instances/NAME/snapshots and /1.0/instances/NAME/backups."""
from __future__ import annotations

from aiohttp import web

from corral.api import instance_requests as decode
from corral.api import response
from corral.api.instance_routes import instances as _instances, load as _load, route
from corral.api.request import project, read_object, recursion, requestor
from corral.errors import BadRequest


# ---- snapshots ----------------------------------------------------------------------------

@route("GET", "/{name}/snapshots")
async def list_snapshots(request: web.Request):
    insts = _instances(request)
    inst = await _load(request)
    snaps = await insts.snapshots(inst)
    if recursion(request):
        return response.sync([insts.render_snapshot(inst, s) for s in snaps])
    return response.sync([f"/1.0/instances/{inst.name}/snapshots/{s['name']}" for s in snaps])


@route("POST", "/{name}/snapshots")
async def create_snapshot(request: web.Request):
    proj = await project(request)
    req = await decode.read(request, decode.snapshot_create)
    op = await _instances(request).create_snapshot(proj, request.match_info["name"], req, requestor(request))
    return response.async_(op)


@route("GET", "/{name}/snapshots/{snap}")
async def get_snapshot(request: web.Request):
    insts = _instances(request)
    inst = await _load(request)
    s = await insts.get_snapshot(inst, request.match_info["snap"])
    return response.sync(insts.render_snapshot(inst, s), etag={"expires_at": s["expires_at"]})


@route("PUT", "/{name}/snapshots/{snap}")
@route("PATCH", "/{name}/snapshots/{snap}")
async def update_snapshot(request: web.Request):
    proj = await project(request)
    await _instances(request).update_snapshot(proj, request.match_info["name"], request.match_info["snap"],
                                              await decode.read(request, decode.snapshot_update))
    return response.empty()


@route("POST", "/{name}/snapshots/{snap}")
async def rename_snapshot(request: web.Request):
    proj = await project(request)
    req = await decode.read(request, decode.snapshot_rename)
    op = await _instances(request).rename_snapshot(proj, request.match_info["name"], request.match_info["snap"],
                                                   req, requestor(request))
    return response.async_(op)


@route("DELETE", "/{name}/snapshots/{snap}")
async def delete_snapshot(request: web.Request):
    proj = await project(request)
    op = await _instances(request).delete_snapshot(proj, request.match_info["name"], request.match_info["snap"],
                                                   requestor(request))
    return response.async_(op)


# ---- backups ------------------------------------------------------------------------------

@route("GET", "/{name}/backups")
async def list_backups(request: web.Request):
    inst = await _load(request)
    backups = _instances(request).backups
    items = backups.list(inst)
    if recursion(request):
        return response.sync(items)
    return response.sync([backups.url(inst, b["name"]) for b in items])


@route("POST", "/{name}/backups")
async def create_backup(request: web.Request):
    inst = await _load(request)
    body = await read_object(request) if request.can_read_body else {}
    return response.async_(await _instances(request).backups.create(inst, body, requestor(request)))


@route("GET", "/{name}/backups/{backup}")
async def get_backup(request: web.Request):
    inst = await _load(request)
    return response.sync(_instances(request).backups.get(inst, request.match_info["backup"]))


@route("POST", "/{name}/backups/{backup}")
async def rename_backup(request: web.Request):
    inst = await _load(request)
    body = await read_object(request)
    new = body.get("name")
    if not isinstance(new, str) or not new:
        raise BadRequest("No new name provided")
    _instances(request).backups.rename(inst, request.match_info["backup"], new)
    return response.created(_instances(request).backups.url(inst, new))


@route("DELETE", "/{name}/backups/{backup}")
async def delete_backup(request: web.Request):
    inst = await _load(request)
    _instances(request).backups.delete(inst, request.match_info["backup"])
    return response.empty()


@route("GET", "/{name}/backups/{backup}/export")
async def export_backup(request: web.Request):
    inst = await _load(request)
    path = _instances(request).backups.tarball(inst, request.match_info["backup"])
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream",
                                           "Content-Disposition": "attachment;filename=backup.tar.gz"})
