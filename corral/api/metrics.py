"""GET /1.0/metrics (LXD 5.0's `metrics` and `metrics_authentication` extensions), the listener on
core.metrics_address that serves only it, and the request-latency middleware feeding corrald's own
metrics.

Who may read it (as LXD 5.0.2 answers here): trusted clients, `metrics` certificates (which may
read nothing else: elsewhere they are untrusted), and anyone when core.metrics_authentication is
false; everyone else gets 403 "not authorized". A restricted certificate sees the instances of its
projects only (and ?project= of another project is refused). ?project= narrows to one project (an
unknown one gives no samples, as LXD); ?target= asks another cluster member (each member reports
its own instances).
"""
from __future__ import annotations

import time

from aiohttp import web

from corral.api import root
from corral.api.auth import allowed_projects, is_admin, metrics_authentication
from corral.api.member_target import forward_to_target
from corral.api.request import daemon
from corral.errors import Forbidden
from corral.metrics.collectors import exposition

routes = web.RouteTableDef()

def _visible_projects(request: web.Request) -> set[str] | None:
    """None: every project; else the projects of a restricted certificate (client or metrics)."""
    if not metrics_authentication(daemon(request)):
        return None
    if request.get("metrics_cert"):
        return request.get("metrics_projects")
    return allowed_projects(request)


@routes.get("/1.0/metrics")
async def get_metrics(request: web.Request):
    d = daemon(request)
    visible = _visible_projects(request)
    project = request.query.get("project", "")
    if project and visible is not None and project not in visible:
        raise Forbidden(f'not authorized: project "{project}" is not one of this restricted certificate\'s projects')
    if visible is not None and not project and request.query.get("target"):
        # The member asked answers the cluster (a peer): a restricted client names its project.
        raise Forbidden("not authorized: a restricted certificate must give ?project= with ?target=")
    if (answer := await forward_to_target(request)) is not None:
        return answer
    projects = [project] if project else d.projects.names()
    if visible is not None:
        projects = [p for p in projects if p in visible]
    projects = [p for p in projects if d.projects.known(p)]
    body = await d.scraper.exposition(projects)
    # corrald's own metrics are the server's: for unrestricted clients, with the default project's.
    server_wide = visible is None and (is_admin(request) or request.get("metrics_cert")
                                       or not metrics_authentication(d))
    if server_wide and project in ("", "default"):
        body += exposition(d.metrics.collector(d.operations, d.scraper.last_seconds))
    resp = web.Response(body=body + b"# EOF\n", content_type="text/plain")
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        resp.enable_compression()
    return resp


@web.middleware
async def latency_middleware(request: web.Request, handler):
    """The API request latency histogram, by route pattern (unmatched paths count as one)."""
    t0 = time.perf_counter()
    try:
        return await handler(request)
    finally:
        route = request.match_info.route if request.match_info is not None else None
        resource = getattr(route, "resource", None)
        endpoint = resource.canonical if resource is not None else "unmatched"
        m = getattr(request.app["daemon"], "metrics", None)
        if m is not None:
            m.observe_api(endpoint, request.method, time.perf_counter() - t0)


def make_metrics_app(d, middlewares) -> web.Application:
    """The application of the core.metrics_address listener: /, /1.0 and /1.0/metrics only (the
    rest is 404, as on LXD's metrics listener)."""
    app = web.Application(middlewares=middlewares)
    app["daemon"] = d
    app.router.add_get("/", root.get_root)
    app.router.add_get("/1.0", root.get_server)
    app.router.add_routes(routes)
    return app
