"""Who may do what: the unix socket is trusted, HTTPS clients by their certificate's fingerprint.

- untrusted HTTPS clients: GET / and GET /1.0 (the untrusted view), POST /1.0/certificates (with the
  trust password or a token), public images (and private ones with an image secret); 403 elsewhere;
- trusted, unrestricted certificates: everything;
- restricted certificates: only their projects, and none of the server-wide admin endpoints.
"""
from __future__ import annotations

import re
import socket

from aiohttp import web

from corral import tls
from corral.errors import Forbidden, NotFound
from corral.trust import der_fingerprint

# Untrusted clients may reach these (method, path regex); the handlers narrow further (public images).
_UNTRUSTED = [
    ("GET", re.compile(r"^/$")),
    ("GET", re.compile(r"^/1\.0/?$")),
    ("POST", re.compile(r"^/1\.0/certificates/?$")),
    ("GET", re.compile(r"^/1\.0/images/?$")),
    ("GET", re.compile(r"^/1\.0/images/aliases(/.*)?$")),
    ("GET", re.compile(r"^/1\.0/images/[^/]+/?$")),
    ("GET", re.compile(r"^/1\.0/images/[^/]+/export/?$")),
]

# Server-wide endpoints a restricted certificate may read but never change (or never touch at all).
_ADMIN_WRITE = re.compile(r"^/1\.0/?$|^/1\.0/(certificates|storage-pools|projects|cluster)(/|$)")
_ADMIN_ALL = re.compile(r"^/internal(/|$)|^/1\.0/(warnings|cluster)(/|$)")
_PROJECT_SCOPED = re.compile(r"^/1\.0/(instances|containers|profiles|images|operations|events|networks|"
                             r"storage-pools/[^/]+/volumes)(/|$)")
_OPERATION = re.compile(r"^/1\.0/operations/([^/]+)")
_PROJECT_ITEM = re.compile(r"^/1\.0/projects/([^/]+)")


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


def check_project(request: web.Request, project: str) -> None:
    allowed = allowed_projects(request)
    if allowed is not None and project not in allowed:
        raise Forbidden("not authorized")


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
        cert = request.app["daemon"].trust.lookup(fp)
        if cert is not None:
            request["trusted"] = True
            if cert["restricted"]:
                request["allowed_projects"] = set(cert["projects"])


@web.middleware
async def auth_middleware(request: web.Request, handler):
    identify(request)
    path, method = request.path, request.method
    if not trusted(request):
        if any(method == m and rx.match(path) for m, rx in _UNTRUSTED):
            return await handler(request)
        raise Forbidden("not authorized")
    allowed = allowed_projects(request)
    if allowed is None:
        return await handler(request)
    # A restricted certificate.
    if _ADMIN_ALL.match(path) or (method != "GET" and _ADMIN_WRITE.match(path)):
        raise Forbidden("not authorized")
    if request.query.get("all-projects") in ("true", "1"):
        raise Forbidden("not authorized")
    if m := _PROJECT_ITEM.match(path):
        check_project(request, m.group(1))
    elif m := _OPERATION.match(path):
        try:
            op = request.app["daemon"].operations.get(m.group(1))
        except NotFound:
            op = None
        if op is not None:
            check_project(request, op.project)
    elif _PROJECT_SCOPED.match(path):
        check_project(request, request.query.get("project") or "default")
    return await handler(request)
