"""An in-process corrald for API tests that need to put a double into the daemon (tests/api only):
the real Daemon object in mock mode, its dqlite database started and the layers the API reads
loaded, the real API app on a unix socket, driven from the test thread."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import threading

from aiohttp import web

from corral import mock
from corral.api.server import make_app
from helpers import Response, UnixConn


class Harness:
    """corrald's Daemon (mock mode) with its database and config loaded, the API app served on a
    unix socket by an event loop in a thread. `cluster(state)`, when given, becomes `state.cluster`
    (a test's double of the cluster layer) before the app serves."""

    def __init__(self, cluster=None):
        from corral.daemon import Daemon
        from corral.paths import Paths
        self.dir = tempfile.mkdtemp(prefix="corral-cluster-api-", dir="/var/tmp")
        self.socket = os.path.join(self.dir, "api.socket")
        mock.install()
        self.d = Daemon(Paths(self.dir), mock=True)
        self.state = self.d.state
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.runner = None
        self._error = None
        self._make_cluster = cluster
        self.cluster = None

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as e:  # reported by start()
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        self.d.paths.ensure()
        os.makedirs(self.d.paths.global_db, exist_ok=True)
        await self.d.db.start()
        await self.d.config.load()
        await self.d.projects.load()
        await self.d.trust.load()
        await self.d.pools.load()
        if self._make_cluster is not None:
            self.cluster = self.state.cluster = self._make_cluster(self.state)
        self.runner = web.AppRunner(make_app(self.d), access_log=None, handle_signals=False)
        await self.runner.setup()
        await web.UnixSite(self.runner, self.socket).start()

    def start(self) -> "Harness":
        self._thread.start()
        assert self._ready.wait(60), "the in-process daemon did not start"
        if self._error is not None:
            raise self._error
        return self

    def run(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn, *args):
        """fn(*args) on the daemon's loop (what touches operations must run there)."""
        async def go():
            return fn(*args)
        return self.run(go())

    def request(self, method: str, path: str, body=None, headers: dict | None = None) -> Response:
        conn = UnixConn(self.socket, timeout=30)
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers=headers or {})
        r = conn.getresponse()
        out = Response(r.status, r.headers, r.read())
        conn.close()
        return out

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def wait_op(self, resp: Response) -> dict:
        return self.get(f"{resp.json['operation']}/wait?timeout=30").metadata

    def sql(self, statement: str, params=None):
        async def go():
            async with self.state.db.transaction() as tx:
                if statement.lstrip().upper().startswith("SELECT"):
                    return await tx.fetch(statement, params or [])
                return await tx.execute(statement, params or [])
        return self.run(go())

    def set_config(self, changes: dict) -> None:
        self.run(self.state.config.update(changes, replace=False))

    def stop(self) -> None:
        try:
            if self._thread.is_alive():
                async def down():
                    if self.runner is not None:
                        await self.runner.cleanup()
                    await self.d.db.stop()
                try:
                    self.run(down(), timeout=30)
                finally:
                    self.loop.call_soon_threadsafe(self.loop.stop)
                    self._thread.join(10)
        finally:
            mock.uninstall()
            shutil.rmtree(self.dir, ignore_errors=True)
