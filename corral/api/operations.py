"""/1.0/operations"""
from aiohttp import web

from corral.api import response
from corral.api.auth import can_see_operation
from corral.api.request import daemon, recursion
from corral.errors import BadRequest

routes = web.RouteTableDef()


@routes.get("/1.0/operations")
async def list_operations(request: web.Request):
    d = daemon(request)
    project = request.query.get("project") or None
    if request.query.get("all-projects") in ("true", "1"):
        project = None
    rec = recursion(request)
    grouped: dict[str, list] = {}
    for op in d.operations.all(project or "default" if project is not None else None):
        if not can_see_operation(request, op):
            continue
        grouped.setdefault(op.status.lower(), []).append(op.to_api() if rec else op.url)
    return response.sync(grouped)


@routes.get("/1.0/operations/{id}")
async def get_operation(request: web.Request):
    op = daemon(request).operations.get(request.match_info["id"])
    return response.sync(op.to_api())


@routes.delete("/1.0/operations/{id}")
async def cancel_operation(request: web.Request):
    op = daemon(request).operations.get(request.match_info["id"])
    op.cancel()
    return response.empty()


@routes.get("/1.0/operations/{id}/wait")
async def wait_operation(request: web.Request):
    op = daemon(request).operations.get(request.match_info["id"])
    raw = request.query.get("timeout", "-1")
    try:
        timeout = float(raw)
    except ValueError:
        raise BadRequest(f'Invalid timeout "{raw}"') from None
    await op.wait(timeout)
    return response.sync(op.to_api())


@routes.get("/1.0/operations/{id}/websocket")
async def operation_websocket(request: web.Request):
    op = daemon(request).operations.get(request.match_info["id"])
    return await op.connect(request, request.query.get("secret", ""))
