"""/1.0/storage-pools/{pool}/volumes/custom/{name}/backups[/{backup}[/export]] (custom_volume_backup)."""
from aiohttp import web

from corral.api import response
from corral.api.request import daemon, project, read_object, recursion, requestor
from corral.errors import BadRequest
from corral.storage.volumes import vol_url

routes = web.RouteTableDef()
BASE = "/1.0/storage-pools/{pool}/volumes/{type}/{name}/backups"


async def _vol(request: web.Request) -> dict:
    if request.match_info["type"] != "custom":
        raise BadRequest("Only custom storage volumes have backups here (use the instance backup API)")
    return await daemon(request).volumes.custom(request.match_info["pool"], await project(request),
                                                request.match_info["name"])


def _done(d, v: dict, what: str):
    """LXD answers backup deletions with an (already finished) operation."""
    async def run(op):
        return None
    url = vol_url(v["pool"], "custom", v["name"], v["project"])
    return response.async_(d.operations.create(project=v["project"], description=what,
                                               resources={"storage_volumes": [url]}, run=run))


@routes.get(BASE)
async def list_backups(request: web.Request):
    d, v = daemon(request), await _vol(request)
    items = d.volume_backups.list(v)
    if recursion(request):
        return response.sync(items)
    return response.sync([d.volume_backups.url(v, b["name"]) for b in items])


@routes.post(BASE)
async def create_backup(request: web.Request):
    d, v = daemon(request), await _vol(request)
    body = await read_object(request) if request.can_read_body else {}
    return response.async_(await d.volume_backups.create(v, body, requestor(request)))


@routes.get(BASE + "/{backup}")
async def get_backup(request: web.Request):
    d, v = daemon(request), await _vol(request)
    return response.sync(d.volume_backups.get(v, request.match_info["backup"]))


@routes.post(BASE + "/{backup}")
async def rename_backup(request: web.Request):
    d, v = daemon(request), await _vol(request)
    new = (await read_object(request)).get("name")
    if not isinstance(new, str) or not new:
        raise BadRequest("No new name provided")
    d.volume_backups.rename(v, request.match_info["backup"], new)
    return _done(d, v, "Renaming storage volume backup")


@routes.delete(BASE + "/{backup}")
async def delete_backup(request: web.Request):
    d, v = daemon(request), await _vol(request)
    d.volume_backups.delete(v, request.match_info["backup"])
    return _done(d, v, "Deleting storage volume backup")


@routes.get(BASE + "/{backup}/export")
async def export_backup(request: web.Request):
    d, v = daemon(request), await _vol(request)
    path = d.volume_backups.tarball(v, request.match_info["backup"])
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})
