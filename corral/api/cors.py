"""CORS headers from the server's core.https_allowed_* keys, as LXD's setCORSHeaders: set on every
response to a request carrying an Origin; OPTIONS (a browser's preflight) needs nothing more."""
from __future__ import annotations

from aiohttp import web


def cors_headers(cfg, origin: str | None) -> dict[str, str]:
    if not origin:
        return {}
    out = {}
    for key, header in (("core.https_allowed_origin", "Access-Control-Allow-Origin"),
                        ("core.https_allowed_methods", "Access-Control-Allow-Methods"),
                        ("core.https_allowed_headers", "Access-Control-Allow-Headers")):
        if cfg.get(key):
            out[header] = cfg.get(key)
    if cfg.get("core.https_allowed_credentials"):
        out["Access-Control-Allow-Credentials"] = "true"
    return out


@web.middleware
async def cors_middleware(request: web.Request, handler):
    headers = cors_headers(request.app["daemon"].config, request.headers.get("Origin"))
    if request.method == "OPTIONS":
        return web.Response(status=200, headers=headers)
    resp = await handler(request)
    if headers and isinstance(resp, web.StreamResponse) and not resp.prepared:
        resp.headers.update(headers)
    return resp
