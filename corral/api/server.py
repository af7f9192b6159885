"""The aiohttp application: routes from every endpoint module, LXD error envelopes for everything."""
from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web

from corral.api import response
from corral.api.request import STREAMED, check_request_text
from corral.db import DatabaseUnavailable
from corral.errors import CorralError

RETRY_FOR = 3.0   # seconds a request is run again while the cluster's leader changes

log = logging.getLogger(__name__)


@web.middleware
async def envelope_middleware(request: web.Request, handler):
    try:
        check_request_text(request)
        d = request.app["daemon"]
        if not d.ready.is_set() and request.transport is not None and not request.path.startswith("/internal/") \
                and request.transport.get_extra_info("sslcontext") is not None:
            return response.error(503, "LXD daemon not ready yet")
        return await _run(request, handler, d)
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
        log.exception("internal error handling %s %s (%s, code %s)", request.method, request.path,
                      type(e).__name__, getattr(e, "code", None))
        return response.error(500, f"Internal error: {e}")


async def _run(request: web.Request, handler, d):
    """Run the handler; clustered, a transaction the leader change cut off before its COMMIT (so
    nothing of it was stored) is run again on the new leader for a few seconds, as LXD's
    query.Retry does, so clients see no error from a handover."""
    start = time.monotonic()
    delay = 0.02
    while True:
        try:
            return await handler(request)
        except DatabaseUnavailable as e:
            if not (e.retryable and d.cluster.clustered) or request.get(STREAMED) \
                    or time.monotonic() - start > RETRY_FOR:
                raise
            log.info("retrying %s %s after a lost database connection: %s", request.method, request.path, e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)


def _middlewares() -> list:
    from corral.api.auth import auth_middleware
    from corral.api.cors import cors_middleware
    from corral.api.metrics import latency_middleware
    return [latency_middleware, cors_middleware, envelope_middleware, auth_middleware]


def make_metrics_app(daemon) -> web.Application:
    """The core.metrics_address listener's application (corral/api/metrics.py)."""
    from corral.api.metrics import make_metrics_app as make
    return make(daemon, _middlewares())


def make_app(daemon) -> web.Application:
    from corral.api import ENDPOINT_MODULES

    app = web.Application(middlewares=_middlewares(), client_max_size=1024**4)
    app["daemon"] = daemon
    for module in ENDPOINT_MODULES:
        app.router.add_routes(module.routes)
    return app
