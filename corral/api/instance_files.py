"""/1.0/instances/NAME/files (through the instance object's file access), /1.0/instances/NAME/metadata
and /1.0/instances/NAME/metadata/templates."""
from __future__ import annotations

import asyncio
import os
import tempfile

import yaml

from aiohttp import web

from corral.api import response
from corral.api.instance_routes import instances as _instances, load as _load, load_instance, route
from corral.api.request import STREAMED, daemon, read_object, requestor
from corral.errors import BadRequest, NotFound
from corral.instance import files


# ---- files --------------------------------------------------------------------------------

def _file_headers(info) -> dict:
    return {"X-LXD-uid": str(info.uid), "X-LXD-gid": str(info.gid), "X-LXD-mode": f"{info.mode & 0o777:04o}",
            "X-LXD-type": info.type}


def _path(request) -> str:
    path = request.query.get("path")
    if not path:
        raise BadRequest("Missing path argument")
    return files.clean_path(path)


@route("GET", "/{name}/files")
async def get_file(request: web.Request):
    inst = await load_instance(request)
    path = _path(request)
    entry = await asyncio.to_thread(inst.file_get, path)
    headers = _file_headers(entry.info)
    if entry.info.type == "directory":
        resp = response.sync(entry.entries)
        resp.headers.update(headers)
        return resp
    if entry.info.type == "symlink":
        target = files.absolute_target(path, entry.target)
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
    inst = await load_instance(request)
    path = _path(request)
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
        await asyncio.to_thread(inst.file_put, path, ftype, None, uid, gid, mode)
    elif ftype == "symlink":
        target = (await request.read()).decode(errors="surrogateescape")
        await asyncio.to_thread(inst.file_put, path, ftype, target, uid, gid)
    elif ftype == "file":
        with tempfile.SpooledTemporaryFile(max_size=8 << 20) as spool:
            request[STREAMED] = True   # not replayable: never run again (api/server.py)
            async for chunk in request.content.iter_chunked(1 << 20):
                spool.write(chunk)
            spool.seek(0)
            await asyncio.to_thread(inst.file_put, path, ftype, spool, uid, gid, mode, write == "append")
    else:
        raise BadRequest(f'Invalid X-LXD-type header "{ftype}"')
    daemon(request).events.lifecycle("instance-file-pushed", f"/1.0/instances/{inst.name}/files?path={path}",
                                     project=inst.project, requestor=requestor(request))
    return response.empty()


@route("DELETE", "/{name}/files")
async def delete_file(request: web.Request):
    inst = await load_instance(request)
    path = _path(request)
    await asyncio.to_thread(inst.file_delete, path)
    daemon(request).events.lifecycle("instance-file-deleted", f"/1.0/instances/{inst.name}/files?path={path}",
                                     project=inst.project, requestor=requestor(request))
    return response.empty()


# ---- image metadata and templates of an instance ----------------------------------------------

async def _volume_dir(request, inst) -> str:
    """The instance volume's mount path, as its storage pool hands it out."""
    return await asyncio.to_thread(_instances(request).instance_path, inst)


@route("GET", "/{name}/metadata")
async def get_metadata(request: web.Request):
    inst = await _load(request)
    path = os.path.join(await _volume_dir(request, inst), "metadata.yaml")
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
    path = os.path.join(await _volume_dir(request, inst), "metadata.yaml")
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    return response.empty()


async def _template_path(request, inst, required: bool = True) -> str:
    name = request.query.get("path", "")
    if not name:
        if required:
            raise BadRequest("Missing path argument")
        return ""
    if "/" in name or name in (".", ".."):
        raise BadRequest(f'Invalid template name "{name}"')
    return os.path.join(await _volume_dir(request, inst), "templates", name)


@route("GET", "/{name}/metadata/templates")
async def get_templates(request: web.Request):
    inst = await _load(request)
    path = await _template_path(request, inst, required=False)
    if not path:
        tdir = os.path.join(await _volume_dir(request, inst), "templates")
        return response.sync(sorted(os.listdir(tdir)) if os.path.isdir(tdir) else [])
    if not os.path.isfile(path) or os.path.islink(path):
        raise NotFound("Template not found")
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})


@route("POST", "/{name}/metadata/templates")
@route("PUT", "/{name}/metadata/templates")
async def put_template(request: web.Request):
    inst = await _load(request)
    path = await _template_path(request, inst)
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
    path = await _template_path(request, inst)
    if not os.path.lexists(path):
        raise NotFound("Template not found")
    os.unlink(path)
    return response.empty()


