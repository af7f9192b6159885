"""/1.0/storage-pools/{pool}/volumes[/{type}[/{name}[/snapshots[/{snapshot}]]]] and .../state"""
from aiohttp import web

from corral.api import filtering, response
from corral.api.auth import check_project
from corral.api.request import check_etag, daemon, project, read_object, recursion, requestor, spool_body
from corral.errors import BadRequest, NotFound
from corral.storage.volumes import TYPES, vol_url

routes = web.RouteTableDef()
BASE = "/1.0/storage-pools/{pool}/volumes"


def _m(request: web.Request, key: str) -> str:
    return request.match_info[key]


def _type(request: web.Request) -> str:
    t = _m(request, "type")
    if t not in TYPES:
        raise BadRequest(f'Invalid storage volume type "{t}"')
    return t


async def _project(request: web.Request, type_: str) -> str:
    """Custom volumes of a project without features.storage.volumes are the default project's."""
    return await project(request, "storage.volumes" if type_ == "custom" else None)


def _etag(v: dict) -> dict:
    return {"description": v["description"], "config": v["config"]}


async def _list(request: web.Request, type_: str | None):
    d, pool = daemon(request), _m(request, "pool")
    if request.query.get("all-projects") in ("true", "1"):   # storage_volumes_all_projects
        vols, seen = [], set()
        for proj in d.projects.names():
            for v in await d.volumes.list(pool, proj, type_):
                # a project without its own custom volumes lists the default project's: keep each once
                key = (v["type"], v["name"], v.get("project") or proj)
                if key not in seen:
                    seen.add(key)
                    vols.append({**v, "project": key[2]})
    else:
        proj = await project(request)
        vols = [{**v, "project": v.get("project") or proj, "_url": proj}
                for v in await d.volumes.list(pool, proj, type_)]
    if request.query.get("filter"):   # storage_volume_api_filtering
        clauses = filtering.parse(request.query["filter"])
        vols = [v for v in vols if filtering.matches(v, clauses)]
    urls = [vol_url(pool, v["type"], v["name"], v.pop("_url", v["project"])) for v in vols]
    return response.sync(vols if recursion(request) else urls)


@routes.get(BASE)
async def list_volumes(request: web.Request):
    return await _list(request, None)


@routes.get(BASE + "/{type}")
async def list_volumes_type(request: web.Request):
    return await _list(request, _type(request))


async def _create(request: web.Request, type_: str | None):
    # Only custom volumes can be created.
    d, proj, pool = daemon(request), await project(request, "storage.volumes"), _m(request, "pool")
    if request.headers.get("Content-Type", "").startswith("application/octet-stream"):
        if type_ not in (None, "custom"):
            raise BadRequest("Only custom storage volumes can be imported from a backup")
        tar = await spool_body(request, d.paths.join("backups"))
        op = await d.volume_backups.import_volume(pool, proj, tar, request.headers.get("X-LXD-name") or None,
                                                  requestor(request))
        return response.async_(op)
    body = await read_object(request)
    if isinstance(body.get("source"), dict) and body["source"].get("project"):
        check_project(request, body["source"]["project"])   # a copy reads its source project
    op = await d.volumes.create(pool, proj, body, type_, requestor(request))
    return response.empty() if op is None else response.async_(op)


@routes.post(BASE)
async def create_volume(request: web.Request):
    return await _create(request, None)


@routes.post(BASE + "/{type}")
async def create_volume_type(request: web.Request):
    return await _create(request, _type(request))


@routes.get(BASE + "/{type}/{name}")
async def get_volume(request: web.Request):
    d, proj = daemon(request), await _project(request, _type(request))
    v = await d.volumes.get(_m(request, "pool"), proj, _type(request), _m(request, "name"))
    return response.sync(v, etag=_etag(v))


async def _update(request: web.Request, replace: bool):
    vtype = _type(request)
    d, proj, pool, name = daemon(request), await _project(request, vtype), _m(request, "pool"), _m(request, "name")
    await d.volumes.update(pool, proj, vtype, name, await read_object(request), replace=replace,
                           requestor=requestor(request), etag_check=lambda cur: check_etag(request, cur))
    return response.empty()


@routes.put(BASE + "/{type}/{name}")
async def put_volume(request: web.Request):
    return await _update(request, True)


@routes.patch(BASE + "/{type}/{name}")
async def patch_volume(request: web.Request):
    return await _update(request, False)


@routes.post(BASE + "/{type}/{name}")
async def post_volume(request: web.Request):
    d, proj, body = daemon(request), await _project(request, _type(request)), await read_object(request)
    if isinstance(body.get("project"), str):
        check_project(request, body["project"])   # a move to another project needs access to it too
    op = await d.volumes.post(_m(request, "pool"), proj, _type(request), _m(request, "name"), body,
                              requestor(request))
    if op is None:   # renamed in place, as LXD's SyncResponseLocation
        return response.created(f"/1.0/storage-pools/{_m(request, 'pool')}/volumes/custom")
    return response.async_(op)


@routes.delete(BASE + "/{type}/{name}")
async def delete_volume(request: web.Request):
    d, proj = daemon(request), await _project(request, _type(request))
    await d.volumes.delete(_m(request, "pool"), proj, _type(request), _m(request, "name"), requestor(request))
    return response.empty()


@routes.get(BASE + "/{type}/{name}/state")
async def volume_state(request: web.Request):
    d, proj = daemon(request), await _project(request, _type(request))
    return response.sync(await d.volumes.state(_m(request, "pool"), proj, _type(request), _m(request, "name")))


# ---- snapshots -------------------------------------------------------------------------------

async def _vol(request: web.Request) -> dict:
    d, proj = daemon(request), await project(request, "storage.volumes")
    if _type(request) != "custom":
        raise BadRequest("Only custom storage volumes have snapshots here (use the instance snapshot API)")
    return await d.volumes.custom(_m(request, "pool"), proj, _m(request, "name"))


async def _instance_volume_snapshots(request: web.Request):
    """An instance volume's snapshots are its instance's (read-only here, as `lxc storage volume info`
    lists them); they are made and removed with the instance snapshot API."""
    pool, name = _m(request, "pool"), _m(request, "name")
    snaps = await _instance_snapshots(request)
    if recursion(request):
        return response.sync([_instance_snapshot(s, _type(request)) for s in snaps])
    proj = await project(request)
    return response.sync([vol_url(pool, _type(request), f"{name}/snapshots/{s['name']}", proj) for s in snaps])


async def _instance_snapshots(request: web.Request) -> list[dict]:
    d, proj = daemon(request), await project(request)
    inst = await d.instances.load(proj, _m(request, "name"))
    if inst.pool != _m(request, "pool") or \
            (inst.type == "virtual-machine") != (_type(request) == "virtual-machine"):
        raise NotFound("Storage volume not found")
    return await d.instances.snapshots(inst)


def _instance_snapshot(s: dict, type_: str = "container") -> dict:
    """A snapshot of an instance volume (a VM's: content type block)."""
    return {"config": {}, "description": s["description"], "name": s["name"],
            "content_type": "block" if type_ == "virtual-machine" else "filesystem",
            "created_at": s["created_at"], "expires_at": s["expires_at"]}


@routes.get(BASE + "/{type}/{name}/snapshots")
async def list_snapshots(request: web.Request):
    if _type(request) in ("container", "virtual-machine"):
        return await _instance_volume_snapshots(request)
    d, v = daemon(request), await _vol(request)
    snaps = await d.volumes.snapshots(v)
    if recursion(request):
        return response.sync([d.volumes.render_snapshot(v, s) for s in snaps])
    return response.sync([vol_url(v["pool"], "custom", f"{v['name']}/snapshots/{s['name']}", v["project"])
                          for s in snaps])


@routes.post(BASE + "/{type}/{name}/snapshots")
async def create_snapshot(request: web.Request):
    d, proj = daemon(request), await _project(request, _type(request))
    body = await read_object(request)
    op = await d.volumes.create_snapshot(_m(request, "pool"), proj, _type(request), _m(request, "name"), body,
                                         requestor(request))
    return response.async_(op)


@routes.get(BASE + "/{type}/{name}/snapshots/{snap}")
async def get_snapshot(request: web.Request):
    if _type(request) in ("container", "virtual-machine"):
        snap = next((s for s in await _instance_snapshots(request) if s["name"] == _m(request, "snap")), None)
        if snap is None:
            raise NotFound("Storage volume snapshot not found")
        return response.sync(_instance_snapshot(snap, _type(request)))
    d, v = daemon(request), await _vol(request)
    s = await d.volumes.snapshot(v, _m(request, "snap"))
    return response.sync(d.volumes.render_snapshot(v, s), etag={"description": s["description"],
                                                                 "expires_at": s["expires_at"]})


@routes.put(BASE + "/{type}/{name}/snapshots/{snap}")
@routes.patch(BASE + "/{type}/{name}/snapshots/{snap}")
async def update_snapshot(request: web.Request):
    d, v = daemon(request), await _vol(request)
    await d.volumes.update_snapshot(v, _m(request, "snap"), await read_object(request))
    return response.empty()


@routes.post(BASE + "/{type}/{name}/snapshots/{snap}")
async def rename_snapshot(request: web.Request):
    d, v = daemon(request), await _vol(request)
    op = await d.volumes.rename_snapshot(v, _m(request, "snap"), await read_object(request), requestor(request))
    return response.async_(op)


@routes.delete(BASE + "/{type}/{name}/snapshots/{snap}")
async def delete_snapshot(request: web.Request):
    d, v = daemon(request), await _vol(request)
    return response.async_(await d.volumes.delete_snapshot(v, _m(request, "snap"), requestor(request)))
