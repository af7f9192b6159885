"""/1.0/projects (read-only: only `default` exists for now)."""
from aiohttp import web

from corral.api import response
from corral.api.request import daemon, recursion
from corral.errors import NotFound, NotImplementedFeature

routes = web.RouteTableDef()


async def _full(d, p: dict) -> dict:
    return {**p, "used_by": await d.project_used_by(p["name"])}


@routes.get("/1.0/projects")
async def list_projects(request: web.Request):
    d = daemon(request)
    projects = await d.projects.get_all()
    if recursion(request):
        return response.sync([await _full(d, p) for p in projects])
    return response.sync([f"/1.0/projects/{p['name']}" for p in projects])


@routes.get("/1.0/projects/{name}")
async def get_project(request: web.Request):
    d = daemon(request)
    p = await d.projects.get(request.match_info["name"])
    if p is None:
        raise NotFound("Project not found")
    full = await _full(d, p)
    return response.sync(full, etag={"config": p["config"], "description": p["description"]})


@routes.post("/1.0/projects")
async def create_project(request: web.Request):
    raise NotImplementedFeature("creating projects")


@routes.route("PUT", "/1.0/projects/{name}")
@routes.route("PATCH", "/1.0/projects/{name}")
@routes.route("POST", "/1.0/projects/{name}")
@routes.route("DELETE", "/1.0/projects/{name}")
async def change_project(request: web.Request):
    raise NotImplementedFeature("changing projects")
