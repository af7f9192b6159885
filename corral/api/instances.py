"""/1.0/instances (and its older alias /1.0/containers)."""
from __future__ import annotations

import asyncio
import os
import tempfile

import yaml

from aiohttp import web

from corral.api import auth, console_ws, decode, exec_ws, filtering, response
from corral.api.request import check_etag, daemon, project, read_object, recursion, requestor, spool_body
from corral.errors import BadRequest, NotFound
from corral.instance import backup_import, files, listing
from corral.instance import update as instance_update
from corral.apitypes import InstanceConsolePost, InstanceExecPost


routes = web.RouteTableDef()
PREFIXES = ("/1.0/instances", "/1.0/containers")


def route(method: str, suffix: str = ""):
    """Register a handler under /1.0/instances and /1.0/containers."""
    def wrap(fn):
        for prefix in PREFIXES:
            routes.route(method, prefix + suffix)(fn)
        return fn
    return wrap


def _instances(request):
    return daemon(request).instances


async def _load(request):
    proj = await project(request)
    return await _instances(request).load(proj, request.match_info["name"])


# ---- collection ---------------------------------------------------------------------------

@route("GET")
async def list_instances(request: web.Request):
    insts = _instances(request)
    all_projects = request.query.get("all-projects") in ("true", "1")
    proj = None if all_projects else await project(request)
    loaded = await insts.load_all(proj)
    rec = recursion(request)
    if request.query.get("filter"):
        clauses = filtering.parse(request.query["filter"])
        loaded = [i for i, r in zip(loaded, listing.render_many(insts, loaded)) if filtering.matches(r, clauses)]
    if rec >= 2:
        return response.sync(await listing.render_all(insts, loaded))
    if rec == 1:
        return response.sync(listing.render_many(insts, loaded))
    base = request.path.rstrip("/")
    return response.sync([f"{base}/{i.name}" + ("" if i.project == "default" else f"?project={i.project}")
                          for i in loaded])


@route("POST")
async def create_instance(request: web.Request):
    proj, d, h = await project(request), daemon(request), request.headers
    if h.get("Content-Type", "").startswith("application/octet-stream"):   # lxc import
        tar = await spool_body(request, d.paths.join("backups"))
        return response.async_(await backup_import.import_instance(
            d.instances, proj, tar, h.get("X-LXD-name") or None, h.get("X-LXD-pool") or None, requestor(request)))
    auth.check_other_projects(request, body := await read_object(request))   # copies from other projects
    return response.async_(await d.instances.create(proj, body, requestor(request)))


@route("PUT")
async def bulk_state(request: web.Request):
    proj = await project(request)
    body = await read_object(request)
    state = body.get("state")
    if not isinstance(state, dict):
        raise BadRequest("No state given")
    insts = _instances(request)
    ops = [await insts.change_state(proj, name, state, requestor(request)) for name in await insts.names(proj)]

    async def run(op):
        for sub in ops:
            await sub.wait(None)
        failed = [o.err for o in ops if o.status == "Failure"]
        if failed:
            raise BadRequest("; ".join(failed))

    op = daemon(request).operations.create(project=proj, description="Updating instances state",
                                           resources={"instances": [o.resources["instances"][0] for o in ops]},
                                           run=run)
    return response.async_(op)


# ---- one instance -------------------------------------------------------------------------

@route("GET", "/{name}")
async def get_instance(request: web.Request):
    insts = _instances(request)
    inst = await _load(request)
    body = await insts.render_full(inst) if recursion(request) >= 1 else insts.render(inst)
    return response.sync(body, etag=insts.etag_fields(inst))


async def _update(request: web.Request, replace: bool):
    insts = _instances(request)
    body = await read_object(request)
    if replace and body.get("restore"):
        inst = await _load(request)
        check_etag(request, insts.etag_fields(inst))
        op = await insts.restore(inst.project, inst.name, body["restore"], requestor(request))
        return response.async_(op)
    # If-Match, validation and the write under the instance lock; bad input gets a 400 here.
    op = await instance_update.update(
        insts, await project(request), request.match_info["name"], body, replace=replace,
        etag_check=lambda cur: check_etag(request, cur), requestor=requestor(request),
        operations=daemon(request).operations if replace else None)
    return response.async_(op) if op is not None else response.empty()


@route("PUT", "/{name}")
async def put_instance(request: web.Request):
    return await _update(request, True)


@route("PATCH", "/{name}")
async def patch_instance(request: web.Request):
    return await _update(request, False)


@route("POST", "/{name}")
async def rename_instance(request: web.Request):
    proj, body = await project(request), await read_object(request)
    auth.check_other_projects(request, body)   # a move to another project
    op = await _instances(request).rename(proj, request.match_info["name"], body, requestor(request))
    return response.async_(op)


@route("DELETE", "/{name}")
async def delete_instance(request: web.Request):
    proj = await project(request)
    op = await _instances(request).delete(proj, request.match_info["name"], requestor(request))
    return response.async_(op)


# ---- state and exec -----------------------------------------------------------------------

@route("GET", "/{name}/state")
async def get_state(request: web.Request):
    inst = await _load(request)
    return response.sync(await _instances(request).state(inst))


@route("PUT", "/{name}/state")
async def put_state(request: web.Request):
    proj = await project(request)
    op = await _instances(request).change_state(proj, request.match_info["name"], await read_object(request),
                                                requestor(request))
    return response.async_(op)


@route("POST", "/{name}/exec")
async def exec_command(request: web.Request):
    inst = await _load(request)
    req = await decode.read(request, InstanceExecPost)
    return response.operation(request, exec_ws.exec_work(_instances(request), inst, req, requestor(request)))


# ---- logs and console ---------------------------------------------------------------------

def _log_dir(request, inst) -> str:
    return _instances(request).log_dir(inst.project, inst.name)


@route("GET", "/{name}/logs")
async def list_logs(request: web.Request):
    inst = await _load(request)
    d, q = _log_dir(request, inst), ("" if inst.project == "default" else f"?project={inst.project}")
    names = sorted(f for f in os.listdir(d) if f != "console.log") if os.path.isdir(d) else []
    return response.sync([f"/1.0/instances/{inst.name}/logs/{f}{q}" for f in names])


def _log_path(request, inst) -> str:
    name = request.match_info["file"]
    if "/" in name or name.startswith(".") or not (name.endswith(".log") or name.startswith("exec_")
                                                    or name == "lxc.conf"):
        raise BadRequest(f'Invalid log file name "{name}"')
    path = os.path.join(_log_dir(request, inst), name)
    if not os.path.isfile(path):
        raise NotFound("Log file not found")
    return path


@route("GET", "/{name}/logs/{file}")
async def get_log(request: web.Request):
    inst = await _load(request)
    path = _log_path(request, inst)
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream",
                                           "Content-Disposition": f"inline;filename={os.path.basename(path)}"})


@route("DELETE", "/{name}/logs/{file}")
async def delete_log(request: web.Request):
    inst = await _load(request)
    path = _log_path(request, inst)
    if not os.path.basename(path).startswith("exec_"):
        raise BadRequest("Only exec logs can be deleted")
    os.unlink(path)
    return response.empty()


@route("GET", "/{name}/console")
async def get_console_log(request: web.Request):
    inst = await _load(request)
    insts = _instances(request)
    data = await asyncio.to_thread(insts.driver.console_log, insts.driver_name(inst.project, inst.name))
    return web.Response(body=data, headers={"Content-Type": "application/octet-stream"})


@route("DELETE", "/{name}/console")
async def clear_console_log(request: web.Request):
    inst = await _load(request)
    path = os.path.join(_log_dir(request, inst), "console.log")
    if os.path.exists(path):
        with open(path, "r+b") as f:
            f.truncate(0)
    return response.empty()


@route("POST", "/{name}/console")
async def console(request: web.Request):
    inst = await _load(request)
    req = await decode.read(request, InstanceConsolePost, required=False)
    return response.operation(request, console_ws.console_work(_instances(request), inst, req))


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
    body = await read_object(request)
    op = await _instances(request).create_snapshot(proj, request.match_info["name"], body, requestor(request))
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
                                              await read_object(request))
    return response.empty()


@route("POST", "/{name}/snapshots/{snap}")
async def rename_snapshot(request: web.Request):
    proj = await project(request)
    op = await _instances(request).rename_snapshot(proj, request.match_info["name"], request.match_info["snap"],
                                                   await read_object(request), requestor(request))
    return response.async_(op)


@route("DELETE", "/{name}/snapshots/{snap}")
async def delete_snapshot(request: web.Request):
    proj = await project(request)
    op = await _instances(request).delete_snapshot(proj, request.match_info["name"], request.match_info["snap"],
                                                   requestor(request))
    return response.async_(op)


# ---- files --------------------------------------------------------------------------------

def _file_headers(info) -> dict:
    return {"X-LXD-uid": str(info.uid), "X-LXD-gid": str(info.gid), "X-LXD-mode": f"{info.mode & 0o777:04o}",
            "X-LXD-type": info.type}


def _rootfs_and_path(request, inst) -> tuple[str, str]:
    path = request.query.get("path")
    if not path:
        raise BadRequest("Missing path argument")
    return _instances(request).rootfs(inst), files.clean_path(path)


@route("GET", "/{name}/files")
async def get_file(request: web.Request):
    inst = await _load(request)
    rootfs, path = _rootfs_and_path(request, inst)
    entry = await asyncio.to_thread(files.get, rootfs, path)
    headers = _file_headers(entry.info)
    if entry.info.type == "directory":
        resp = response.sync(entry.entries)
        resp.headers.update(headers)
        return resp
    if entry.info.type == "symlink":
        target = await asyncio.to_thread(files.read_link, rootfs, path, True)
        return web.Response(body=target.encode(), headers={**headers, "Content-Type": "application/octet-stream"})
    resp = web.StreamResponse(headers={**headers, "Content-Type": "application/octet-stream",
                                       "Content-Length": str(entry.info.size)})
    await resp.prepare(request)
    try:
        while chunk := await asyncio.to_thread(entry.file.read, 1 << 20):
            await resp.write(chunk)
    finally:
        entry.file.close()
    await resp.write_eof()
    return resp


@route("POST", "/{name}/files")
async def put_file(request: web.Request):
    inst = await _load(request)
    rootfs, path = _rootfs_and_path(request, inst)
    h = request.headers
    ftype = h.get("X-LXD-type") or "file"
    uid, gid, mode = (h.get("X-LXD-uid"), h.get("X-LXD-gid"), h.get("X-LXD-mode"))
    try:
        uid = int(uid) if uid not in (None, "") else None
        gid = int(gid) if gid not in (None, "") else None
    except ValueError:
        raise BadRequest("Invalid X-LXD-uid or X-LXD-gid header") from None
    write = h.get("X-LXD-write") or "overwrite"
    if write not in ("overwrite", "append"):
        raise BadRequest(f'Invalid X-LXD-write header "{write}"')
    if ftype == "directory":
        await asyncio.to_thread(files.make_dir, rootfs, path, uid, gid, int(mode, 8) if mode else None)
    elif ftype == "symlink":
        target = (await request.read()).decode(errors="surrogateescape")
        await asyncio.to_thread(files.make_symlink, rootfs, path, target, uid, gid)
    elif ftype == "file":
        with tempfile.SpooledTemporaryFile(max_size=8 << 20) as spool:
            async for chunk in request.content.iter_chunked(1 << 20):
                spool.write(chunk)
            spool.seek(0)
            await asyncio.to_thread(files.write_file, rootfs, path, spool, uid, gid, mode,
                                    write == "append")
    else:
        raise BadRequest(f'Invalid X-LXD-type header "{ftype}"')
    daemon(request).events.lifecycle("instance-file-pushed", f"/1.0/instances/{inst.name}/files?path={path}",
                                     project=inst.project, requestor=requestor(request))
    return response.empty()


@route("DELETE", "/{name}/files")
async def delete_file(request: web.Request):
    inst = await _load(request)
    rootfs, path = _rootfs_and_path(request, inst)
    await asyncio.to_thread(files.delete, rootfs, path)
    daemon(request).events.lifecycle("instance-file-deleted", f"/1.0/instances/{inst.name}/files?path={path}",
                                     project=inst.project, requestor=requestor(request))
    return response.empty()


# ---- image metadata and templates of an instance ----------------------------------------------

@route("GET", "/{name}/metadata")
async def get_metadata(request: web.Request):
    inst = await _load(request)
    path = os.path.join(_instances(request).instance_dir(inst), "metadata.yaml")
    meta = {}
    if os.path.exists(path):
        with open(path) as f:
            meta = yaml.safe_load(f) or {}
    return response.sync(meta, etag=meta)


@route("PUT", "/{name}/metadata")
@route("PATCH", "/{name}/metadata")
async def put_metadata(request: web.Request):
    from corral.image.store import parse_metadata
    inst = await _load(request)
    body = await read_object(request)
    text = yaml.safe_dump(body, default_flow_style=False)
    from corral.image.images import check_properties
    check_properties(parse_metadata(text)["properties"])   # ImageError / BadRequest (400) on invalid metadata
    path = os.path.join(_instances(request).instance_dir(inst), "metadata.yaml")
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    return response.empty()


def _template_path(request, inst, required: bool = True) -> str:
    name = request.query.get("path", "")
    if not name:
        if required:
            raise BadRequest("Missing path argument")
        return ""
    if "/" in name or name in (".", ".."):
        raise BadRequest(f'Invalid template name "{name}"')
    return os.path.join(_instances(request).instance_dir(inst), "templates", name)


@route("GET", "/{name}/metadata/templates")
async def get_templates(request: web.Request):
    inst = await _load(request)
    path = _template_path(request, inst, required=False)
    if not path:
        tdir = os.path.join(_instances(request).instance_dir(inst), "templates")
        return response.sync(sorted(os.listdir(tdir)) if os.path.isdir(tdir) else [])
    if not os.path.isfile(path) or os.path.islink(path):
        raise NotFound("Template not found")
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})


@route("POST", "/{name}/metadata/templates")
@route("PUT", "/{name}/metadata/templates")
async def put_template(request: web.Request):
    inst = await _load(request)
    path = _template_path(request, inst)
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    if os.path.islink(path):
        os.unlink(path)
    with open(path + ".tmp", "wb") as f:
        f.write(await request.read())
    os.replace(path + ".tmp", path)
    return response.empty()


@route("DELETE", "/{name}/metadata/templates")
async def delete_template(request: web.Request):
    inst = await _load(request)
    path = _template_path(request, inst)
    if not os.path.lexists(path):
        raise NotFound("Template not found")
    os.unlink(path)
    return response.empty()


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
