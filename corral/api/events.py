"""GET /1.0/events: the event stream over a websocket."""
import asyncio
import contextlib

from aiohttp import web

from corral.api.auth import allowed_projects
from corral.api.request import daemon, project
from corral.api.response import dumps
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
    listener = d.events.listen(types, proj)
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
            await ws.send_str(dumps(getter.result()))
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
