"""Member-to-member endpoints of instance moves and evacuation (only other members, with the cluster
certificate, and the unix socket reach them). The member's part of each step is
corral/instance/clustermove.py's; who calls which member when is corral/cluster/migrate.py's and
evacuate.py's.

    GET  /internal/cluster/instance-info     ?project&name: status, backups (the member it lives on)
    POST /internal/cluster/instance-state    {project, name, action: start|stop, remember_running, keep}
    POST /internal/cluster/instance-send     {project, name, new_name, target, live}: move it away
    POST /internal/cluster/instance-receive  {project, name, new_name, pool, snapshots, source_address}
    POST /internal/cluster/instance-activate {project, name}: the records moved here
    POST /internal/cluster/instance-discard  {project, name, pool}: drop a received copy
    GET  /internal/cluster/instance-volume   ?project&name[&snapshot]: the volume as a tar stream
"""
from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from corral.api import response
from corral.api.auth import is_unix
from corral.api.request import daemon, read_object
from corral.db.queries import nodes as qn
from corral.errors import BadRequest, Forbidden, NotFound
from corral.instance import clustermove
from corral.storage import transfer

log = logging.getLogger(__name__)

routes = web.RouteTableDef()


def _peer_only(request: web.Request) -> None:
    """Other members (the cluster certificate); the unix socket (root) too."""
    if not (request.get("cluster_peer") or is_unix(request)):
        raise Forbidden("not authorized: only cluster members may call this")


def _str(body: dict, name: str, required: bool = True) -> str:
    v = body.get(name)
    if v is None and not required:
        return ""
    if not isinstance(v, str) or (required and not v):
        raise BadRequest(f'Invalid value for field "{name}": expected a string')
    return v


async def _body(request: web.Request) -> tuple[dict, str, str]:
    _peer_only(request)
    body = await read_object(request)
    return body, _str(body, "project"), _str(body, "name")


@routes.get("/internal/cluster/instance-info")
async def instance_info(request: web.Request):
    _peer_only(request)
    q = request.query
    return response.sync(await clustermove.info(daemon(request).instances, q.get("project", "default"),
                                                q.get("name", "")))


@routes.post("/internal/cluster/instance-state")
async def instance_state(request: web.Request):
    body, project, name = await _body(request)
    insts = daemon(request).instances
    action = body.get("action")
    if action == "start":
        await clustermove.start(insts, project, name)
        return response.sync({"was_running": False})
    if action == "stop":
        ran = await clustermove.stop(insts, project, name, remember_running=bool(body.get("remember_running")),
                                     keep=bool(body.get("keep")))
        return response.sync({"was_running": ran})
    raise BadRequest(f"Unknown action: '{action}'")


@routes.post("/internal/cluster/instance-send")
async def instance_send(request: web.Request):
    body, project, name = await _body(request)
    d = daemon(request)
    target = _str(body, "target")
    async with d.db.session() as tx:
        member = await qn.member(tx, target)
    if member is None:
        raise NotFound("Failed to get target node: Cluster member not found")
    await clustermove.send(d.instances, project, name, target=member,
                           new_name=_str(body, "new_name", required=False) or name, live=bool(body.get("live")))
    return response.empty()


@routes.post("/internal/cluster/instance-receive")
async def instance_receive(request: web.Request):
    body, project, name = await _body(request)
    snapshots = body.get("snapshots") or []
    if not isinstance(snapshots, list) or not all(isinstance(s, str) and s for s in snapshots):
        raise BadRequest('Invalid value for field "snapshots": expected a list of names')
    await clustermove.receive(daemon(request).instances, project, name, new_name=_str(body, "new_name"),
                              pool=_str(body, "pool"), snapshots=snapshots, source=_str(body, "source_address"))
    return response.empty()


@routes.post("/internal/cluster/instance-activate")
async def instance_activate(request: web.Request):
    _, project, name = await _body(request)
    await clustermove.activate(daemon(request).instances, project, name)
    return response.empty()


@routes.post("/internal/cluster/instance-discard")
async def instance_discard(request: web.Request):
    body, project, name = await _body(request)
    await clustermove.discard(daemon(request).instances, project, name, _str(body, "pool"))
    return response.empty()


@routes.get("/internal/cluster/instance-volume")
async def instance_volume(request: web.Request):
    """The instance's volume (or one snapshot) as corral/storage/transfer.py's tar stream. A failure
    half-way cuts the connection (no final chunk): the receiver never takes a cut stream for whole."""
    _peer_only(request)
    insts = daemon(request).instances
    q = request.query
    inst = await insts.load(q.get("project", "default"), q.get("name", ""))
    if clustermove.is_remote(insts, inst):
        raise NotFound("Instance not found")
    snap = q.get("snapshot") or None
    if snap:
        await insts.get_snapshot(inst, snap)
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/x-tar"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    out = transfer.buffered_writer(asyncio.get_running_loop(), resp.write)

    def send() -> None:
        clustermove.stream_volume(insts, inst, snap, out)
        out.flush()

    try:
        await asyncio.to_thread(send)
    except Exception as e:   # noqa: BLE001 - the stream is cut; the receiver reports it
        log.warning("sending volume %s%s: %s", inst.name, f"/{snap}" if snap else "", e)
        if request.transport is not None:
            request.transport.abort()
        return resp
    finally:
        out.raw.abandon()
    await resp.write_eof()
    return resp
