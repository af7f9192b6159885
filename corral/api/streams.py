"""/streams/v1/...: the server's public images over simplestreams (corral/image/simplestreams/serve.py),
readable without a client certificate, as `lxc remote add x https://HOST:PORT --protocol simplestreams`
reads them."""
from __future__ import annotations

import json
import weakref

from aiohttp import web

from corral.api.request import daemon
from corral.image.simplestreams.serve import StreamsView

routes = web.RouteTableDef()
_VIEWS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # one per daemon's image store


def _view(request: web.Request) -> StreamsView:
    images = daemon(request).images
    view = _VIEWS.get(images)
    if view is None:
        view = _VIEWS[images] = StreamsView(images)
    return view


def _json(doc: dict) -> web.Response:
    return web.Response(body=json.dumps(doc, indent=1, sort_keys=True).encode(), content_type="application/json")


@routes.get("/streams/v1/index.json")
async def index_json(request: web.Request):
    return _json(await _view(request).index_json())


@routes.get("/streams/v1/images.json")
async def images_json(request: web.Request):
    return _json(await _view(request).images_json())


@routes.get("/streams/v1/images/{fingerprint}/{name}")
async def image_file(request: web.Request):
    path = await _view(request).file(request.match_info["fingerprint"], request.match_info["name"])
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})
