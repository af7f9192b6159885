"""A small fake LXD server on a unix socket for the CLI's unit tests, plus
the fixtures the test_cli_* modules share.

It answers with LXD-shaped envelopes from a little in-memory state (server
config, profiles, instances, images, operations), records every request, and
speaks the events and exec websocket protocols.  Tests can override any route
with ``fake.route(METHOD, PATH, handler)``."""

from __future__ import annotations

import asyncio
import copy
import json
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
from aiohttp import WSMsgType, web
from click.testing import CliRunner

NOW = "2026-11-21T13:03:34.614456683Z"


def sync(metadata: Any, status: int = 200) -> tuple[int, dict]:
    return status, {"type": "sync", "status": "Success", "status_code": 200, "operation": "", "error_code": 0,
                    "error": "", "metadata": metadata}


def error(message: str, code: int = 404) -> tuple[int, dict]:
    return code, {"type": "error", "status": "", "status_code": 0, "operation": "", "error_code": code,
                  "error": message, "metadata": None}


@dataclass
class Req:
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class ExecSession:
    op_id: str
    interactive: bool
    secrets: dict
    command: list
    stdout: bytes = b""
    stderr: bytes = b""
    return_code: int = 0
    stdin: bytearray = field(default_factory=bytearray)
    stdin_eof: bool = False
    control: list = field(default_factory=list)
    echo_stdin: bool = False


def base_server() -> dict:
    return {
        "config": {},
        "api_extensions": ["etag", "patch", "container_exec_recording", "resources_v2"],
        "api_status": "stable",
        "api_version": "1.0",
        "auth": "trusted",
        "public": False,
        "auth_methods": ["tls"],
        "environment": {
            "addresses": [],
            "architectures": ["x86_64", "i686"],
            "certificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            "driver": "lxc",
            "kernel_features": {"shiftfs": "false", "idmapped_mounts": "true"},
            "server": "lxd",
            "server_clustered": False,
            "server_name": "fake",
            "server_version": "5.0.2",
            "storage_supported_drivers": [{"Name": "dir", "Version": "1", "Remote": False}],
        },
    }


def base_instance(name: str, status: str = "Running") -> dict:
    running = status == "Running"
    return {
        "architecture": "x86_64",
        "config": {"image.os": "Busybox", "volatile.base_image": "ec29b117accc086e8d1f94d6f5ab32a556975f50425c0d5cb82b62c13ef1b6c1"},
        "devices": {},
        "ephemeral": False,
        "profiles": ["default"],
        "stateful": False,
        "description": "",
        "created_at": NOW,
        "expanded_config": {"image.os": "Busybox"},
        "expanded_devices": {"eth0": {"name": "eth0", "network": "lxdbr0", "type": "nic"},
                             "root": {"path": "/", "pool": "default", "type": "disk"}},
        "name": name,
        "status": status,
        "status_code": 103 if running else 102,
        "last_used_at": NOW,
        "location": "none",
        "type": "container",
        "project": "default",
        "backups": None,
        "state": {
            "status": status,
            "status_code": 103 if running else 102,
            "disk": {},
            "memory": {"usage": 843776 if running else 0, "usage_peak": 2256896 if running else 0,
                       "swap_usage": 0, "swap_usage_peak": 0},
            "network": {
                "eth0": {"addresses": [{"family": "inet", "address": "10.166.11.128", "netmask": "24", "scope": "global"},
                                       {"family": "inet6", "address": "fd42::1", "netmask": "64", "scope": "global"},
                                       {"family": "inet6", "address": "fe80::1", "netmask": "64", "scope": "link"}],
                         "counters": {"bytes_received": 686, "bytes_sent": 1200, "packets_received": 2,
                                      "packets_sent": 8},
                         "hwaddr": "00:16:3e:c4:bd:57", "host_name": "vethfb40477e", "mtu": 1500,
                         "state": "up", "type": "broadcast"},
                "lo": {"addresses": [{"family": "inet", "address": "127.0.0.1", "netmask": "8", "scope": "local"}],
                       "counters": {}, "hwaddr": "", "host_name": "", "mtu": 65536, "state": "up",
                       "type": "loopback"},
            } if running else None,
            "pid": 13928 if running else 0,
            "processes": 3 if running else 0,
            "cpu": {"usage": 28471979 if running else 0},
        },
        "snapshots": None,
    }


class FakeLXD:
    def __init__(self, socket_path: str):
        self.socket_path = socket_path
        self.requests: list[Req] = []
        self.routes: dict[tuple[str, str], Callable[[Req], Any]] = {}
        self.server = base_server()
        self.etag = "server-etag-1"
        self.profiles: dict[str, dict] = {
            "default": {"config": {}, "description": "Default LXD profile",
                        "devices": {"eth0": {"name": "eth0", "network": "lxdbr0", "type": "nic"},
                                    "root": {"path": "/", "pool": "default", "type": "disk"}},
                        "name": "default", "used_by": ["/1.0/instances/c1"]},
        }
        self.instances: dict[str, dict] = {}
        self.images: dict[str, dict] = {}
        self.aliases: dict[str, dict] = {}
        self.operations: dict[str, dict] = {}
        self.events: list[dict] = []
        self.exec_sessions: dict[str, ExecSession] = {}
        self.exec_defaults: dict = {}
        self.files: dict[tuple[str, str], dict] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()

    # ---------------------------------------------------------------- control

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._started.wait(10)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.UnixSite(self._runner, self.socket_path)
        self._loop.run_until_complete(site.start())
        self._started.set()
        self._loop.run_forever()

    def stop(self) -> None:
        if self._loop is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
        try:
            fut.result(5)
        except Exception:
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def route(self, method: str, path: str, handler: Callable[[Req], Any]) -> None:
        self.routes[(method.upper(), path)] = handler

    def find(self, method: str, path: str) -> list[Req]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def add_operation(self, status: str = "Success", err: str = "", metadata: Any = None,
                      description: str = "Doing things", resources: dict | None = None,
                      cls: str = "task", may_cancel: bool = False) -> dict:
        op_id = str(uuid.uuid4())
        op = {"id": op_id, "class": cls, "description": description, "created_at": NOW, "updated_at": NOW,
              "status": status, "status_code": {"Success": 200, "Failure": 400, "Running": 103}.get(status, 200),
              "resources": resources or {}, "metadata": metadata, "may_cancel": may_cancel, "err": err,
              "location": "none"}
        self.operations[op_id] = op
        return op

    def async_response(self, **kw: Any) -> tuple[int, dict]:
        op = self.add_operation(**kw)
        return 202, {"type": "async", "status": "Operation created", "status_code": 100,
                     "operation": f"/1.0/operations/{op['id']}", "error_code": 0, "error": "",
                     "metadata": op}

    def add_instance(self, name: str, status: str = "Running", **extra: Any) -> dict:
        inst = base_instance(name, status)
        inst.update(extra)
        self.instances[name] = inst
        return inst

    # ---------------------------------------------------------------- dispatch

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        req = Req(request.method, request.path, dict(request.query), dict(request.headers), body)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            self.requests.append(req)
            return await self._websocket(request, req)
        self.requests.append(req)
        handler = self.routes.get((req.method, req.path))
        try:
            result = handler(req) if handler else self._default(req)
        except KeyError as exc:
            result = error(f"{exc.args[0]} not found")
        if isinstance(result, web.StreamResponse):
            return result
        status, payload = result[0], result[1]
        headers = result[2] if len(result) > 2 else {}
        if isinstance(payload, (bytes, str)):
            return web.Response(status=status, body=payload if isinstance(payload, bytes) else payload.encode(),
                                headers=headers)
        return web.json_response(payload, status=status, headers=headers)

    def _default(self, req: Req):
        p, m = req.path, req.method
        parts = p.strip("/").split("/")
        if p == "/1.0":
            if m == "GET":
                return (*sync(self.server), {"ETag": self.etag})
            if m in ("PUT", "PATCH"):
                data = req.json or {}
                cfg = data.get("config") or {}
                if m == "PUT":
                    self.server["config"] = {k: v for k, v in cfg.items() if v != ""}
                else:
                    self.server["config"].update(cfg)
                return sync({})
        if p == "/1.0/profiles":
            if m == "GET":
                if req.query.get("recursion") == "1":
                    return sync(list(self.profiles.values()))
                return sync([f"/1.0/profiles/{n}" for n in self.profiles])
            if m == "POST":
                data = req.json
                if data["name"] in self.profiles:
                    return error("Error inserting profile into database: The profile already exists", 409)
                self.profiles[data["name"]] = {"config": data.get("config") or {},
                                               "description": data.get("description", ""),
                                               "devices": data.get("devices") or {}, "name": data["name"],
                                               "used_by": []}
                return sync(None)
        if len(parts) == 3 and parts[1] == "profiles":
            name = parts[2]
            if name not in self.profiles:
                return error("Profile not found")
            if m == "GET":
                return (*sync(self.profiles[name]), {"ETag": f"profile-{name}"})
            if m == "PUT":
                data = req.json
                prof = self.profiles[name]
                prof.update({"config": data.get("config") or {}, "description": data.get("description", ""),
                             "devices": data.get("devices") or {}})
                return sync(None)
            if m == "POST":
                prof = self.profiles.pop(name)
                prof["name"] = req.json["name"]
                self.profiles[prof["name"]] = prof
                return sync(None)
            if m == "DELETE":
                del self.profiles[name]
                return sync(None)
        if p == "/1.0/operations" and m == "GET":
            by_status: dict[str, list] = {}
            for op in self.operations.values():
                by_status.setdefault(op["status"].lower(), []).append(op)
            if req.query.get("recursion") == "1":
                return sync(by_status)
            return sync({k: [f"/1.0/operations/{o['id']}" for o in v] for k, v in by_status.items()})
        if len(parts) >= 3 and parts[1] == "operations":
            op = self.operations.get(parts[2])
            if op is None:
                return error("Operation not found")
            if len(parts) == 3 and m == "GET":
                return sync(op)
            if len(parts) == 3 and m == "DELETE":
                op["status"] = "Cancelled"
                return sync(None)
            if len(parts) == 4 and parts[3] == "wait":
                return sync(op)
        if p == "/1.0/instances" and m == "GET":
            if req.query.get("recursion") in ("1", "2"):
                return sync([copy.deepcopy(i) for i in self.instances.values()])
            return sync([f"/1.0/instances/{n}" for n in self.instances])
        if len(parts) >= 3 and parts[1] == "instances":
            name = parts[2]
            if name not in self.instances and not (m == "POST" and len(parts) == 2):
                return error("Instance not found")
            inst = self.instances[name]
            if len(parts) == 3:
                if m == "GET":
                    return (*sync(inst), {"ETag": f"inst-{name}"})
                if m == "PUT":
                    data = req.json or {}
                    for k in ("architecture", "config", "devices", "ephemeral", "profiles", "stateful", "description"):
                        if k in data:
                            inst[k] = data[k]
                    return self.async_response(description="Updating instance")
                if m == "DELETE":
                    del self.instances[name]
                    return self.async_response(description="Deleting instance")
            if len(parts) == 4 and parts[3] == "state":
                if m == "GET":
                    return sync(inst["state"])
                if m == "PUT":
                    action = req.json["action"]
                    inst["status"] = {"start": "Running", "stop": "Stopped", "restart": "Running",
                                      "freeze": "Frozen"}.get(action, inst["status"])
                    inst["state"]["status"] = inst["status"]
                    return self.async_response(description=f"{action.capitalize()}ing instance")
            if len(parts) == 4 and parts[3] == "exec" and m == "POST":
                return self._exec(name, req.json)
        return error("not found")

    # ---------------------------------------------------------------- exec

    def _exec(self, name: str, data: dict):
        interactive = bool(data.get("interactive"))
        fds = {"control": secrets.token_hex(8), "0": secrets.token_hex(8)}
        if not interactive:
            fds["1"] = secrets.token_hex(8)
            fds["2"] = secrets.token_hex(8)
        op = self.add_operation(status="Running", cls="websocket", description="Executing command",
                                metadata={"command": data.get("command"), "environment": data.get("environment"),
                                          "fds": fds, "interactive": interactive},
                                resources={"instances": [f"/1.0/instances/{name}"]})
        sess = ExecSession(op_id=op["id"], interactive=interactive, secrets=fds, command=data.get("command") or [],
                           **self.exec_defaults)
        sess.request = data  # type: ignore[attr-defined]
        sess.done = asyncio.Event()  # type: ignore[attr-defined]
        sess.stdin_done = asyncio.Event()  # type: ignore[attr-defined]
        self.exec_sessions[op["id"]] = sess
        return 202, {"type": "async", "status": "Operation created", "status_code": 100,
                     "operation": f"/1.0/operations/{op['id']}", "error_code": 0, "error": "", "metadata": op}

    def _finish_exec(self, sess: ExecSession) -> None:
        op = self.operations[sess.op_id]
        op["status"] = "Success"
        op["status_code"] = 200
        op["metadata"]["return"] = sess.return_code
        sess.done.set()  # type: ignore[attr-defined]

    async def _websocket(self, request: web.Request, req: Req) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if req.path == "/1.0/events":
            wanted = [t for t in req.query.get("type", "").split(",") if t]
            for event in self.events:
                if not wanted or event.get("type") in wanted:
                    await ws.send_str(json.dumps(event))
            await ws.close()
            return ws
        parts = req.path.strip("/").split("/")
        sess = self.exec_sessions.get(parts[2]) if len(parts) == 4 else None
        if sess is None:
            await ws.close()
            return ws
        secret = req.query.get("secret")
        fd = next((k for k, v in sess.secrets.items() if v == secret), None)
        if fd == "control":
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    sess.control.append(json.loads(msg.data))
        elif fd == "0" and not sess.interactive:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    sess.stdin.extend(msg.data)
                elif msg.type == WSMsgType.TEXT and msg.data == "":
                    break
            sess.stdin_eof = True
            sess.stdin_done.set()  # type: ignore[attr-defined]
        elif fd == "0" and sess.interactive:
            await ws.send_bytes(sess.stdout)
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    sess.stdin.extend(msg.data)
                    if sess.echo_stdin:
                        await ws.send_bytes(bytes(msg.data))
                    if b"\x04" in msg.data:
                        break
                else:
                    break
            self._finish_exec(sess)
            await ws.close()
        elif fd in ("1", "2"):
            if sess.echo_stdin:
                await sess.stdin_done.wait()  # type: ignore[attr-defined]
            payload = (bytes(sess.stdin) if sess.echo_stdin else sess.stdout) if fd == "1" else sess.stderr
            if payload:
                await ws.send_bytes(payload)
            await ws.send_str("")
            if fd == "1":
                self._finish_exec(sess)
            await ws.close()
        return ws


@pytest.fixture
def fake(tmp_path, monkeypatch):
    sock = str(tmp_path / "unix.socket")
    server = FakeLXD(sock)
    server.start()
    monkeypatch.setenv("CORRAL_SOCKET", sock)
    yield server
    server.stop()


@pytest.fixture
def run(fake):
    """run(args..., input=None) -> click Result (stdout/stderr separate)."""
    from corral.cli.main import cli

    def _run(*args: str, input: str | bytes | None = None, env: dict | None = None):
        runner = CliRunner()
        return runner.invoke(cli, list(args), input=input, env=env, catch_exceptions=False)

    return _run


def test_fake_server_answers(fake, run):
    result = run("query", "/1.0")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["api_version"] == "1.0"
