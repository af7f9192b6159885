"""The web UI at /ui/ (static files of corral/ui/static/), as LXD serves its UI: /ui redirects to /ui/,
unknown paths under /ui/ get index.html (the page routes itself), and a browser asking for / is sent to
/ui/ (LXD tells browsers by "Gecko" in the User-Agent; see corral/api/root.py).

The files are public: an untrusted browser must load the first-run page (how to get a client
certificate trusted). Everything the UI shows comes from the REST API, which checks trust as for any
client.
"""
from __future__ import annotations

import os

from aiohttp import web

from corral.errors import NotFound
from corral.ui import STATIC_DIR

routes = web.RouteTableDef()

_TYPES = {".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
          ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon", ".md": "text/plain",
          ".json": "application/json", ".txt": "text/plain"}
# No inline scripts, nothing from elsewhere; xterm.js sets inline styles; websockets to this origin.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
_ROOT = os.path.realpath(STATIC_DIR)


def is_browser(request: web.Request) -> bool:
    """LXD's test (lxd/api.go): a browser's User-Agent says "Gecko"; lxc, pylxd and curl do not."""
    return "Gecko" in request.headers.get("User-Agent", "")


def _file(rel: str) -> str | None:
    path = os.path.realpath(os.path.join(_ROOT, rel))
    if path != _ROOT and not path.startswith(_ROOT + os.sep):
        return None
    return path if os.path.isfile(path) else None


@routes.get("/ui")
async def ui_redirect(request: web.Request):
    raise web.HTTPMovedPermanently("/ui/")


@routes.get("/ui/{path:.*}")
async def ui_file(request: web.Request):
    rel = request.match_info["path"]
    path = _file(rel or "index.html")
    if path is None:
        if "." in os.path.basename(rel):   # a missing asset is a 404, not the page
            raise NotFound("not found")
        path = _file("index.html")
    ext = os.path.splitext(path)[1]
    headers = {"Content-Type": _TYPES.get(ext, "application/octet-stream"), "Content-Security-Policy": _CSP,
               "X-Content-Type-Options": "nosniff",
               # the app's own files change with corrald; the vendored ones only with their version
               "Cache-Control": "public, max-age=86400" if "/vendor/" in path else "no-cache"}
    return web.FileResponse(path, headers=headers)
