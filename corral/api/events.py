"""GET /1.0/events: the event stream over a websocket.

A client gets the events of every cluster member (corral/cluster/event_mesh.py brings the others'
into the hub); another member's subscription (a cluster notification, as the event mesh connects)
gets this member's own events only, as LXD's full-mesh mode does."""
import asyncio
import contextlib

from aiohttp import web

from corral.api import response
from corral.api.auth import allowed_projects, is_unix
from corral.api.request import daemon, project
from corral.api.response import dumps
from corral.cluster.peer import NOTIFIER
from corral.errors import BadRequest, Forbidden
from corral.events import TYPES

routes = web.RouteTableDef()


@routes.get("/1.0/events")
async def events(request: web.Request):
    d = daemon(request)
    types = [t for t in request.query.get("type", "").split(",") if t]
    if allowed_projects(request) is not None and "logging" in types:   # the daemon's log is host-wide
        raise Forbidden("not authorized: logging events can't be read with a restricted certificate")
    ws = web.WebSocketResponse(heartbeat=30)
    if not ws.can_prepare(request).ok:
        return web.Response(status=400, text="Bad Request\n", headers={"Sec-Websocket-Version": "13"})
    for t in types:
        if t not in TYPES:
            raise BadRequest(f'"{t}" isn\'t a supported event type')
    if allowed_projects(request) is not None and not types:
        types = [t for t in TYPES if t != "logging"]
    proj = None if request.query.get("all-projects") in ("true", "1") else await project(request)
    peer = bool(request.get("cluster_peer")) and request.headers.get("User-Agent", "") == NOTIFIER
    listener = d.events.listen(types, proj, remote=not peer, client=True)
    await ws.prepare(request)

    async def drain_client():
        async for _ in ws:  # clients send nothing; this notices when they go away
            pass

    reader = asyncio.ensure_future(drain_client())
    try:
        while not reader.done():
            getter = asyncio.ensure_future(listener.queue.get())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            event = getter.result()
            if event is None:   # the hub closed: the daemon is shutting down
                break
            await ws.send_str(dumps(event))
            if listener.dropped:
                break
    except ConnectionError:   # the client went away while an event was on its way: nothing to report
        pass
    finally:
        d.events.unlisten(listener)
        reader.cancel()
        with contextlib.suppress(Exception):
            await ws.close()
    return ws


@routes.get("/internal/testing/event-mesh")
async def event_mesh_status(request: web.Request):
    """The event mesh's links (tests): {"links": {member: {address, connected, connects, failures,
    received, last_error}}, "refreshes": n}."""
    if not is_unix(request):
        raise Forbidden("Internal endpoints are only available on the unix socket")
    mesh = daemon(request).event_mesh
    return response.sync({"links": mesh.status(), "refreshes": mesh.refreshes})
