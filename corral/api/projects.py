"""/1.0/projects"""
from aiohttp import web

from corral.api import decode, response
from corral.api.auth import allowed_projects
from corral.api.request import check_etag, daemon, recursion, requestor
from corral.apitypes import ProjectPost, ProjectPut, ProjectsPost
from corral.errors import NotFound

routes = web.RouteTableDef()


def _url(name: str) -> str:
    return f"/1.0/projects/{name}"


async def _full(d, p: dict) -> dict:
    return {**p, "used_by": await d.project_used_by(p["name"])}


@routes.get("/1.0/projects")
async def list_projects(request: web.Request):
    d = daemon(request)
    projects = await d.projects.get_all()
    allowed = allowed_projects(request)
    if allowed is not None:  # a restricted client sees its own projects only
        projects = [p for p in projects if p["name"] in allowed]
    if recursion(request):
        return response.sync([await _full(d, p) for p in projects])
    return response.sync([_url(p["name"]) for p in projects])


@routes.get("/1.0/projects/{name}")
async def get_project(request: web.Request):
    d = daemon(request)
    p = await d.projects.get(request.match_info["name"])
    if p is None:
        raise NotFound("Project not found")
    full = await _full(d, p)
    return response.sync(full, etag={"config": p["config"], "description": p["description"]})


@routes.get("/1.0/projects/{name}/state")
async def project_state(request: web.Request):
    """Usage against limits (API extension project_usage), as LXD's GetCurrentAllocations."""
    d = daemon(request)
    name = request.match_info["name"]
    if await d.projects.get(name) is None:
        raise NotFound("Project not found")
    return response.sync({"resources": await d.limits.state(name)})


@routes.post("/1.0/projects")
async def create_project(request: web.Request):
    d = daemon(request)
    name = await d.projects.create(await decode.read(request, ProjectsPost))
    d.events.lifecycle("project-created", _url(name), project=name, requestor=requestor(request))
    return response.created(_url(name))


async def _update(request: web.Request, replace: bool):
    d = daemon(request)
    name = request.match_info["name"]
    req = await decode.read(request, ProjectPut)
    await d.projects.update(name, req, replace=replace, used_by=await d.project_used_by(name),
                            etag_check=lambda cur: check_etag(request, cur))
    await d.restrictions.warn_project(name)
    d.events.lifecycle("project-updated", _url(name), project=name, requestor=requestor(request))
    return response.empty()


@routes.put("/1.0/projects/{name}")
async def put_project(request: web.Request):
    return await _update(request, True)


@routes.patch("/1.0/projects/{name}")
async def patch_project(request: web.Request):
    return await _update(request, False)


@routes.post("/1.0/projects/{name}")
async def rename_project(request: web.Request):
    d = daemon(request)
    name = request.match_info["name"]
    req = await decode.read(request, ProjectPost)
    new = await d.projects.rename(name, req.name, used_by=await d.project_used_by(name))
    await d.trust.rename_project(name, new)
    d.events.lifecycle("project-renamed", _url(new), project=new, context={"old_name": name},
                       requestor=requestor(request))
    return response.created(_url(new))


@routes.delete("/1.0/projects/{name}")
async def delete_project(request: web.Request):
    d = daemon(request)
    name = request.match_info["name"]
    await d.projects.delete(name, used_by=await d.project_used_by(name))
    d.events.lifecycle("project-deleted", _url(name), project=name, requestor=requestor(request))
    return response.empty()
