"""Who may do what. The unix socket is trusted; HTTPS clients are known by their certificate's fingerprint.

- untrusted HTTPS clients: GET / and GET /1.0 (the untrusted view), POST /1.0/certificates (with the
  trust password or a token), public images (and private ones with an image secret); 403 elsewhere;
- trusted, unrestricted certificates (and the unix socket): everything;
- restricted certificates: only what `_RESTRICTED` lists below, always inside their projects. Host-wide
  objects (server config, storage pools, networks, certificates other than their own, cluster,
  internal endpoints, warnings that are not of their projects) are read-only or refused, and
  `all-projects` is refused. Operations are visible to a restricted client when they belong to one of
  its projects or when it started them (`Operation.owners`), wherever the daemon registered them.

Project restrictions (`restricted=true` projects) apply to every client; see corral/project_restrictions.py.
"""
from __future__ import annotations

import re
import socket
from urllib.parse import parse_qs, unquote, urlsplit

from aiohttp import web

from corral.config.keys import SERVER, value
from corral.pki import tls
from corral.errors import Forbidden, NotFound
from corral.trust import der_fingerprint

METRICS_PATH = re.compile(r"^/1\.0/metrics/?$")


def metrics_authentication(d) -> bool:
    """core.metrics_authentication: false lets anyone read /1.0/metrics."""
    return bool(value(SERVER, d.config.all(), "core.metrics_authentication"))


def may_read_metrics(request: web.Request) -> bool:
    """Trusted clients and metrics certificates may GET /1.0/metrics (anyone, without authentication)."""
    return trusted(request) or bool(request.get("metrics_cert")) \
        or not metrics_authentication(request.app["daemon"])

# Untrusted clients may reach these (method, path regex); the handlers narrow further (public images).
_UNTRUSTED = [
    ("GET", re.compile(r"^/$")),
    ("GET", re.compile(r"^/1\.0/?$")),
    ("POST", re.compile(r"^/1\.0/certificates/?$")),
    ("GET", re.compile(r"^/1\.0/images/?$")),
    ("GET", re.compile(r"^/1\.0/images/aliases(/.*)?$")),
    ("GET", re.compile(r"^/1\.0/images/[^/]+/?$")),
    ("GET", re.compile(r"^/1\.0/images/[^/]+/export/?$")),
    ("GET", re.compile(r"^/streams/v1/(index\.json|images\.json|images/[^/]+/[^/]+)$")),   # public images
    ("POST", re.compile(r"^/internal/cluster/accept$")),   # a joining server, with its token or password
    ("GET", re.compile(r"^/ui(/.*)?$")),   # the web UI's static files: its first-run page needs no trust
]

_READ = frozenset({"GET", "HEAD"})
_ANY = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})

# What a restricted certificate may reach: (methods, path, rule). Rules:
#   "open"      nothing more to check (the handler narrows: own certificate, own projects' warnings);
#   "project"   the request's ?project= (default: "default") must be one of the certificate's;
#   "item"      the project named in the path must be one of the certificate's;
#   "operation" the operation must be visible to the certificate (its projects, or started by it).
# Anything not listed is refused; so are the listed paths with other methods, with the host-wide
# reason of `_HOST_WIDE` when one matches.
_RESTRICTED = [
    (_READ, re.compile(r"^/$|^/1\.0/?$"), "open"),
    (_READ | {"POST"}, re.compile(r"^/1\.0/certificates/?$"), "open"),
    (_READ, re.compile(r"^/1\.0/certificates/[^/]+/?$"), "open"),
    (_READ, re.compile(r"^/1\.0/resources/?$"), "open"),
    (_READ, re.compile(r"^/1\.0/storage-pools(/[^/]+)?/?$|^/1\.0/storage-pools/[^/]+/resources/?$"), "open"),
    (_ANY, re.compile(r"^/1\.0/storage-pools/[^/]+/volumes(/.*)?$"), "project"),
    (_READ, re.compile(r"^/1\.0/networks(/.*)?$"), "project"),
    (_READ, re.compile(r"^/1\.0/projects/?$"), "open"),
    (_READ, re.compile(r"^/1\.0/projects/([^/]+)(/state)?/?$"), "item"),
    (_ANY, re.compile(r"^/1\.0/(instances|containers|profiles|images)(/.*)?$"), "project"),
    (_READ, re.compile(r"^/1\.0/(operations|events)/?$"), "project"),
    (_ANY, re.compile(r"^/1\.0/operations/([^/]+)(/.*)?$"), "operation"),
    (_READ, re.compile(r"^/1\.0/warnings(/[^/]+)?/?$"), "open"),
    (_READ, re.compile(r"^/ui(/.*)?$"), "open"),
]
_HOST_WIDE = [
    (re.compile(r"^/1\.0/?$"), "the server configuration"),
    (re.compile(r"^/1\.0/certificates(/|$)"), "the trust store"),
    (re.compile(r"^/1\.0/storage-pools(/|$)"), "storage pools"),
    (re.compile(r"^/1\.0/networks(/|$)"), "networks (a project without features.networks uses the "
                                         "default project's, which only an administrator may change)"),
    (re.compile(r"^/1\.0/projects(/|$)"), "projects and their restrictions"),
    (re.compile(r"^/1\.0/warnings(/|$)"), "warnings"),
    (re.compile(r"^/1\.0/cluster(/|$)"), "the cluster"),
    (re.compile(r"^/internal(/|$)"), "internal endpoints"),
]
# Objects a project without the feature shares with the default project (corral/projects.py holder).
_SHARED_WRITE = re.compile(r"^/1\.0/(images|profiles)(/|$)")


def is_unix(request: web.Request) -> bool:
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport else None
    return sock is not None and sock.family == socket.AF_UNIX


def trusted(request: web.Request) -> bool:
    return bool(request.get("trusted"))


def allowed_projects(request: web.Request) -> set[str] | None:
    """None for an unrestricted client, else the projects a restricted certificate may use."""
    return request.get("allowed_projects")


def is_admin(request: web.Request) -> bool:
    return trusted(request) and allowed_projects(request) is None


def _restricted_to(allowed: set[str]) -> str:
    return ", ".join(f'"{p}"' for p in sorted(allowed)) or "none"


def check_project(request: web.Request, project: str) -> None:
    allowed = allowed_projects(request)
    if allowed is not None and project not in allowed:
        raise Forbidden(f'not authorized: project "{project}" is not one of this restricted certificate\'s '
                        f'projects ({_restricted_to(allowed)})')


def check_other_projects(request: web.Request, body: dict) -> None:
    """A copy (`source.project`) or move (`project`) touching another project needs access to it too."""
    src = body.get("source")
    for other in (body.get("project"), src.get("project") if isinstance(src, dict) else None):
        if isinstance(other, str) and other:
            check_project(request, other)


def can_see_operation(request: web.Request, op) -> bool:
    allowed = allowed_projects(request)
    return allowed is None or op.project in allowed or bool(op.also_projects & allowed) \
        or request.get("client_fingerprint", "") in op.owners


def visible_used_by(request: web.Request, urls: list[str]) -> list[str]:
    """A host-wide object's used_by, narrowed for a restricted client to the entries of its projects."""
    allowed = allowed_projects(request)
    if allowed is None:
        return urls
    return [u for u in urls if parse_qs(urlsplit(u).query).get("project", ["default"])[0] in allowed]


def identify(request: web.Request) -> None:
    """Fill request['trusted'], ['client_fingerprint'], ['allowed_projects'] for this request."""
    if is_unix(request):
        request["trusted"] = True
        return
    der = tls.peer_der(request.transport)
    request["trusted"] = False
    if der:
        fp = der_fingerprint(der)
        request["client_fingerprint"] = fp
        request["client_der"] = der
        if request.app["daemon"].cluster.is_peer(fp):   # another member (the cluster certificate)
            request["trusted"] = request["cluster_peer"] = True
            return
        cert = request.app["daemon"].trust.lookup(fp)
        if cert is not None and cert.get("type") == "metrics":
            # A metrics certificate reads /1.0/metrics only; everywhere else it is untrusted.
            request["metrics_cert"] = True
            if cert["restricted"]:
                request["metrics_projects"] = set(cert["projects"])
        elif cert is not None:
            request["trusted"] = True
            if cert["restricted"]:
                request["allowed_projects"] = set(cert["projects"])


def _host_wide(path: str) -> Forbidden:
    what = next((w for rx, w in _HOST_WIDE if rx.match(path)), None)
    if what is None:
        return Forbidden("not authorized")
    return Forbidden(f"not authorized: {what} can't be changed with a restricted certificate")


async def _check_restricted(request: web.Request, allowed: set[str]) -> None:
    # The router matches the raw (still percent-encoded) path: so does this table, so that an encoded
    # "/" can never make a request look like another route than the one that answers it.
    path, method = request.rel_url.raw_path, request.method
    if request.query.get("all-projects") in ("true", "1"):
        raise Forbidden("not authorized: a restricted certificate can't list all projects")
    rule = m = None
    for methods, rx, r in _RESTRICTED:
        m = rx.match(path)
        if m:
            if method not in methods:
                raise _host_wide(path)
            rule = r
            break
    if rule is None:
        raise _host_wide(path)
    d = request.app["daemon"]
    if rule == "item":
        check_project(request, unquote(m.group(1)))
    elif rule == "operation":
        try:
            op = d.operations.get(unquote(m.group(1)))
        except NotFound:
            return   # the handler answers 404
        if not can_see_operation(request, op):
            raise Forbidden("not authorized: the operation is not of this restricted certificate's projects")
    elif rule == "project":
        project = request.query.get("project") or "default"
        check_project(request, project)
        shared = _SHARED_WRITE.match(path)
        if method not in _READ and shared and d.projects.known(project):
            kind = shared.group(1)
            holder = d.projects.holder(kind, project)
            if holder not in allowed:
                raise Forbidden(f'not authorized: project "{project}" uses the {kind} of project '
                                f'"{holder}" (features.{kind}=false), which a restricted '
                                f"certificate can't change")
        if request.query.get("target") and d.projects.known(project):
            await d.restrictions.check_target(project, request.query["target"])


@web.middleware
async def auth_middleware(request: web.Request, handler):
    identify(request)
    path, method = request.rel_url.raw_path, request.method
    if method in _READ and METRICS_PATH.match(path):   # trusted, metrics certificates (corral/api/metrics.py)
        if not may_read_metrics(request):
            raise Forbidden("not authorized")
        return await handler(request)
    if not trusted(request):
        if any(method == m and rx.match(path) for m, rx in _UNTRUSTED):
            return await handler(request)
        raise Forbidden("not authorized")
    allowed = allowed_projects(request)
    if allowed is not None:
        await _check_restricted(request, allowed)
    resp = await handler(request)
    location = resp.headers.get("Location", "") if resp.status == 202 else ""
    if location.startswith("/1.0/operations/"):
        # The operation belongs to the request's project and its client, wherever it was registered.
        ops = request.app["daemon"].operations
        ops.claim(location.rsplit("/", 1)[1], project=request.query.get("project") or "default",
                  owner=request.get("client_fingerprint", ""))
        await ops.recorded(location.rsplit("/", 1)[1])   # every member finds it once we answer
    return resp
