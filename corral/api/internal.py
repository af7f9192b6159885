"""/internal: what `corrald waitready|shutdown|sql|recover` talk to (unix socket only, like LXD)."""
import asyncio

from aiohttp import web

from corral.api import decode, response
from corral.api.request import daemon, read_object
from corral.apitypes import ImageTaskPost, SQLQuery
from corral.db.queries import sqlcmd
from corral.instance import dbrecover
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
    force = request.query.get("force") in ("1", "true")
    asyncio.get_running_loop().call_soon(d.request_shutdown, force)
    return response.empty()


@routes.post("/internal/sql")
async def sql(request: web.Request):
    """LXD's internalSQLPost: {"database", "query"} -> {"Results": [{"type", "columns", "rows",
    "rows_affected"}]} (LXD 5.0's key spelling); ".sync" is accepted (see docs/api.md)."""
    _local_only(request)
    d = daemon(request)
    req = await decode.read(request, SQLQuery)
    database, query = req.database, req.query
    if database not in ("local", "global"):
        raise BadRequest('Invalid database type: expected "local" or "global"')
    if not query.strip():
        raise BadRequest("No query provided")
    if query.strip() == ".sync":
        return response.sync({"Results": []})
    stmts = sqlcmd.split(query)
    try:
        if database == "global":
            results = await sqlcmd.run_global(d.db, stmts)
        else:
            results = await asyncio.to_thread(sqlcmd.run_local, d.db.local, stmts)
    except sqlcmd.SQLError as e:
        raise BadRequest(str(e)) from None
    return response.sync({"Results": results})


@routes.get("/internal/sql")
async def sql_dump(request: web.Request):
    """LXD's internalSQLGet: ?database=local|global[&schema=1] -> {"text": SQL dump}."""
    _local_only(request)
    d = daemon(request)
    database = request.query.get("database")
    if database not in ("local", "global"):
        raise BadRequest('Invalid database type: expected "local" or "global"')
    schema_only = request.query.get("schema") in ("1", "true")
    if database == "global":
        text = await sqlcmd.dump_global(d.db, schema_only)
    else:
        text = await asyncio.to_thread(sqlcmd.dump_local, d.db.local, schema_only)
    return response.sync({"text": text})


@routes.post("/internal/recover/validate")
async def recover_validate(request: web.Request):
    _local_only(request)
    return response.sync(await dbrecover.validate(daemon(request), await read_object(request)))


@routes.post("/internal/recover/import")
async def recover_import(request: web.Request):
    _local_only(request)
    return response.sync(await dbrecover.import_(daemon(request), await read_object(request)))


@routes.post("/internal/testing/image-tasks")
async def image_tasks(request: web.Request):
    """Run a periodic image task now (the code the timer runs): {"task": "auto-update"|"expire",
    "hour": N (hours since start the auto-update task acts as, default 0: every interval is due)}."""
    _local_only(request)
    d = daemon(request)
    req = await decode.read(request, ImageTaskPost)
    return response.operation(request, d.image_tasks.run_task(req.task, req.hour))
