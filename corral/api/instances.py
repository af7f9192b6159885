"""/1.0/instances (and its older alias /1.0/containers): the collection, one instance, its state,
exec, logs and console. Snapshots and backups: instance_snapshots.py; files, metadata and
templates: instance_files.py. Bodies are decoded into request objects (instance_requests.py)."""
from __future__ import annotations

import asyncio
import os

from aiohttp import web

from corral.api import auth, console_ws, exec_ws, instance_files, instance_snapshots, response  # noqa: F401 (routes)
from corral.api import decode, forward, instance_listing
from corral.api import instance_requests as idecode
from corral.api.instance_routes import PREFIXES, instances as _instances, load as _load, load_instance, route, \
    routes  # noqa: F401 (PREFIXES, routes: the API's route table)
from corral.api.forward import FORWARDED, forwarded
from corral.api.request import check_etag, daemon, project, recursion, requestor, spool_body
from corral.cluster import placement, remote_instances
from corral.errors import BadRequest, NotFound
from corral.cluster import migrate
from corral.instance import backup_import
from corral.instance import update as instance_update
from corral.apitypes import InstanceConsolePost, InstanceExecPost


# ---- collection ---------------------------------------------------------------------------

@route("GET")
async def list_instances(request: web.Request):
    return await instance_listing.list_instances(request)


async def _create_elsewhere(request: web.Request, proj: str, target: str, itype: str):
    """In a cluster, the member the new instance goes to (corral/cluster/placement.py): when it is
    another one, the whole create is forwarded there with that member as `?target=`, so it creates
    the instance locally; its answer (the operation, or the error) is the client's. None: create here."""
    d = daemon(request)
    cluster = getattr(d, "cluster", None)
    if forward.forwarded(request):   # another member placed it here
        return None
    if cluster is None or not cluster.clustered:
        if target:
            raise BadRequest("Target only allowed when clustered")
        return None
    member = await placement.choose(d.state, proj, target or None, instance_type=itype or "container")
    if member == cluster.server_name:
        return None
    address = await cluster.member_address(member)
    return await forward.proxy(request, address, str(request.rel_url.update_query(target=member)))


@route("POST")
async def create_instance(request: web.Request):
    proj, d, h = await project(request), daemon(request), request.headers
    target = request.query.get("target", "")
    if h.get("Content-Type", "").startswith("application/octet-stream"):   # lxc import
        # LXD 5.0.2 imports a backup where it is sent; a named target takes it there (streamed).
        if target and (elsewhere := await _create_elsewhere(request, proj, target, "")) is not None:
            return elsewhere
        tar = await spool_body(request, d.paths.join("backups"))
        return response.async_(await backup_import.import_instance(
            d.instances, proj, tar, h.get("X-LXD-name") or None, h.get("X-LXD-pool") or None, requestor(request)))
    body = await idecode.read(request, lambda b: b)
    req = idecode.instance_create(body)
    auth.check_other_projects(request, body)   # copies from other projects
    if (elsewhere := await _create_elsewhere(request, proj, target, req.type)) is not None:
        return elsewhere
    return response.async_(await d.instances.create(proj, req, requestor(request)))


@route("PUT")
async def bulk_state(request: web.Request):
    """Every instance's state: this member changes its own; clustered, each other member holding
    instances of the project is asked to change its own (in the same operation)."""
    proj = await project(request)
    body = await idecode.read(request, lambda b: b)
    state = idecode.bulk_state(body)
    insts = _instances(request)
    loaded = await insts.load_all(proj)
    others = set() if forwarded(request) else {int(i.rec["node_id"]) for i in loaded if not i.local}
    ops = [await insts.change_state(proj, i.name, state, requestor(request)) for i in loaded if i.local]

    async def run(op):
        remote = asyncio.ensure_future(remote_instances.change_state(
            daemon(request).state, others, proj, body, {FORWARDED: "1"})) if others else None
        for sub in ops:
            await sub.wait(None)
        failed = [o.err for o in ops if o.status == "Failure"] + (await remote if remote is not None else [])
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
    req = await idecode.read(request, idecode.instance_update)
    if replace and req.restore:
        inst = await _load(request)
        check_etag(request, insts.etag_fields(inst))
        op = await insts.restore(inst.project, inst.name, req.restore, requestor(request))
        return response.async_(op)
    # If-Match, validation and the write under the instance lock; bad input gets a 400 here.
    op = await instance_update.update(
        insts, await project(request), request.match_info["name"], req, replace=replace,
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
    proj, body = await project(request), await idecode.read(request, lambda b: b)
    req = idecode.instance_move(body)
    auth.check_other_projects(request, body)   # a move to another project
    target = request.query.get("target", "")
    if target and req.migration:   # another cluster member (`lxc move c1 --target m2`), from here
        if req.pool or req.project:
            raise BadRequest("Moving to another cluster member and to another storage pool or project at "
                             "once is not supported")
        live = req.live if "live" in body else True   # LXD: a request without "live" means live
        work = await migrate.move_work(daemon(request).state, proj, request.match_info["name"], target,
                                       req.name, live)
        return response.operation(request, work)
    op = await _instances(request).rename(proj, request.match_info["name"], req, requestor(request))
    return response.async_(op)


@route("DELETE", "/{name}")
async def delete_instance(request: web.Request):
    proj = await project(request)
    op = await _instances(request).delete(proj, request.match_info["name"], requestor(request))
    return response.async_(op)


# ---- state and exec -----------------------------------------------------------------------

@route("GET", "/{name}/state")
async def get_state(request: web.Request):
    inst = await load_instance(request)
    return response.sync(await inst.state())


@route("PUT", "/{name}/state")
async def put_state(request: web.Request):
    proj = await project(request)
    req = await idecode.read(request, idecode.state_change)
    op = await _instances(request).change_state(proj, request.match_info["name"], req, requestor(request))
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
    inst = await load_instance(request)
    data = await asyncio.to_thread(inst.console_log)
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
