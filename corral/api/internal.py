"""/internal: what `corrald waitready|shutdown|sql` talk to (unix socket only, like LXD)."""
import asyncio

from aiohttp import web

from corral.api import response
from corral.api.request import daemon, read_object
from corral.errors import BadRequest, Forbidden

routes = web.RouteTableDef()


def _local_only(request: web.Request) -> None:
    if request.get("remote"):
        raise Forbidden("Internal endpoints are only available on the unix socket")


@routes.get("/internal/ready")
async def ready(request: web.Request):
    _local_only(request)
    d = daemon(request)
    if not d.ready.is_set():
        return response.error(503, "LXD daemon not ready yet")
    return response.empty()


@routes.put("/internal/shutdown")
async def shutdown(request: web.Request):
    _local_only(request)
    d = daemon(request)
    asyncio.get_running_loop().call_soon(d.request_shutdown)
    return response.empty()


@routes.post("/internal/sql")
async def sql(request: web.Request):
    _local_only(request)
    d = daemon(request)
    body = await read_object(request)
    database, query = body.get("database"), body.get("query")
    if database not in ("local", "global"):
        raise BadRequest('Invalid database type: expected "local" or "global"')
    if not isinstance(query, str) or not query.strip():
        raise BadRequest("No query provided")
    results = []
    for stmt in [s for s in query.split(";") if s.strip()]:
        try:
            if database == "global":
                cols, rows = await d.db.query(stmt)
            else:
                cols, rows = d.db.local.query(stmt)
        except Exception as e:
            raise BadRequest(f"Failed to execute query: {e}") from None
        results.append({"type": "select" if cols != ["rows_affected"] else "exec",
                        "columns": cols, "rows": [list(r) for r in rows],
                        "rows_affected": rows[0][0] if cols == ["rows_affected"] else 0})
    return response.sync({"results": results})


@routes.post("/internal/testing/image-tasks")
async def image_tasks(request: web.Request):
    """Run a periodic image task now (the code the timer runs): {"task": "auto-update"|"expire",
    "hour": N (hours since start the auto-update task acts as, default 0: every interval is due)}."""
    _local_only(request)
    d = daemon(request)
    body = await read_object(request)
    op = d.image_tasks.run_task(body.get("task"), body.get("hour", 0))
    return response.async_(op)
