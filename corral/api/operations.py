"""/1.0/operations: an operation lives on the member that runs it. Asked on another member, a request
about one operation (GET, DELETE, /wait, /websocket: exec and console streams included) is forwarded
to its member, found in the `operations` table (corral/cluster/operation_records.py), as LXD does.
The listing shows every member's operations, each with its `location`: the others are asked in
parallel, those that cannot answer in time are left out."""
from urllib.parse import urlencode

from aiohttp import web

from corral.api import response
from corral.api.auth import allowed_projects, can_see_operation
from corral.api.forward import FORWARDED, forwarded, proxy
from corral.api.request import daemon, recursion
from corral.cluster import fanout
from corral.errors import BadRequest, Forbidden, NotFound

routes = web.RouteTableDef()


async def _remote_listing(request: web.Request) -> dict[str, list]:
    """The other members' operations (as recursion=1 lists them), grouped by status."""
    d = daemon(request)
    if not d.cluster.clustered or forwarded(request) or d.operations.registry is None:
        return {}
    members = [m for m in await d.operations.registry.members_with_operations() if d.cluster.online(m)]
    if not members:
        return {}
    query = {k: v for k, v in request.query.items() if k in ("project", "all-projects")}
    if allowed_projects(request) is not None:   # a restricted client: only its (checked) project's
        query = {"project": request.query.get("project") or "default"}
    query["recursion"] = "1"
    path = "/1.0/operations?" + urlencode(sorted(query.items()))
    out: dict[str, list] = {}
    for got in (await fanout.ask_all(d.cluster.peer, members, path, {FORWARDED: "1"})).values():
        if isinstance(got, dict):
            for status, ops in got.items():
                out.setdefault(status, []).extend(o for o in ops or [] if isinstance(o, dict))
    return out


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
    for status, ops in (await _remote_listing(request)).items():
        grouped.setdefault(status, []).extend(ops if rec else [f"/1.0/operations/{o.get('id')}" for o in ops])
    return response.sync(grouped)


async def _local_or_forward(request: web.Request):
    """(the operation, None) when it runs here; (None, the forwarded answer) when another member
    runs it; NotFound when nobody does."""
    d = daemon(request)
    op_id = request.match_info["id"]
    try:
        return d.operations.get(op_id), None
    except NotFound:
        if not d.cluster.clustered or forwarded(request) or d.operations.registry is None:
            raise
    owner = await d.operations.registry.owner(op_id)
    if owner is None:
        raise NotFound("Operation not found")
    allowed = allowed_projects(request)
    if allowed is not None and (owner.get("project") or "default") not in allowed:
        raise Forbidden("not authorized: the operation is not of this restricted certificate's projects")
    return None, await proxy(request, owner["address"])


@routes.get("/1.0/operations/{id}")
async def get_operation(request: web.Request):
    op, forwarded_answer = await _local_or_forward(request)
    if op is None:
        return forwarded_answer
    return response.sync(op.to_api())


@routes.delete("/1.0/operations/{id}")
async def cancel_operation(request: web.Request):
    op, forwarded_answer = await _local_or_forward(request)
    if op is None:
        return forwarded_answer
    op.cancel()
    return response.empty()


@routes.get("/1.0/operations/{id}/wait")
async def wait_operation(request: web.Request):
    op, forwarded_answer = await _local_or_forward(request)
    if op is None:
        return forwarded_answer
    raw = request.query.get("timeout", "-1")
    try:
        timeout = float(raw)
    except ValueError:
        raise BadRequest(f'Invalid timeout "{raw}"') from None
    await op.wait(timeout)
    return response.sync(op.to_api())


@routes.get("/1.0/operations/{id}/websocket")
async def operation_websocket(request: web.Request):
    op, forwarded_answer = await _local_or_forward(request)
    if op is None:
        return forwarded_answer
    return await op.connect(request, request.query.get("secret", ""))
