"""The aiohttp application: routes from every endpoint module, LXD error envelopes for everything."""
from __future__ import annotations

import logging

from aiohttp import web

from corral.api import response
from corral.api.request import check_request_text
from corral.errors import CorralError

log = logging.getLogger(__name__)


@web.middleware
async def envelope_middleware(request: web.Request, handler):
    try:
        check_request_text(request)
        return await handler(request)
    except CorralError as e:
        return response.error(e.status, e.message)
    except web.HTTPMethodNotAllowed:
        return response.error(501, f"not implemented: {request.method} {request.path}")
    except web.HTTPNotFound:
        return response.error(404, "not found")
    except web.HTTPRequestEntityTooLarge:
        return response.error(413, "Request body too large")
    except web.HTTPException:
        raise
    except Exception as e:
        log.exception("internal error handling %s %s", request.method, request.path)
        return response.error(500, f"Internal error: {e}")


def make_app(daemon) -> web.Application:
    from corral.api import ENDPOINT_MODULES

    from corral.api.auth import auth_middleware
    from corral.api.cors import cors_middleware

    app = web.Application(middlewares=[cors_middleware, envelope_middleware, auth_middleware],
                          client_max_size=1024**4)
    app["daemon"] = daemon
    for module in ENDPOINT_MODULES:
        app.router.add_routes(module.routes)
    return app
