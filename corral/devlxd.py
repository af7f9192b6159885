"""The /dev/lxd guest API: one host socket, bind-mounted into every container at /dev/lxd/sock.

The caller is identified by the kernel, never by what it sends: SO_PEERCRED gives the host pid of the
connecting process, and /proc/<pid>/cgroup names the `lxc.payload.<name>` cgroup of its container.
Answers are LXD 5.0's (plain JSON or raw text, no envelope; see lxd-api-samples/devlxd-*).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import socket
import uuid

from aiohttp import WSMsgType, web

from corral import config, netguard, timeutil
from corral.errors import CorralError

log = logging.getLogger(__name__)

SOCKET_NAME = "sock"
_PAYLOAD = re.compile(r"lxc\.payload\.([^/]+?)(?:-\d+)?(?:/|$)")
_USER_KEYS = ("user.", "cloud-init.")


class GuestError(Exception):
    def __init__(self, status: int, text: str):
        super().__init__(text)
        self.status = status
        self.text = text


def _raw(text: str, status: int = 200) -> web.Response:
    return web.Response(status=status, body=text.encode(), content_type="application/octet-stream")


def _json(obj, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(obj, separators=(",", ":")).encode() + b"\n",
                        content_type="application/json")


def _error(status: int, text: str) -> web.Response:
    # Go's http.Error: text/plain, the message and a newline.
    return web.Response(status=status, body=(text + "\n").encode(), content_type="text/plain",
                        charset="utf-8", headers={"X-Content-Type-Options": "nosniff"})


def peer_pid(request: web.Request) -> int:
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is None or sock.family != socket.AF_UNIX:
        raise GuestError(500, "not a unix socket")
    return netguard.peer_cred(sock)[0]


def container_of_pid(pid: int) -> str | None:
    """The liblxc name of the container `pid` runs in (from its cgroup), or None for host processes."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            text = f.read()
    except OSError:
        return None
    names = {m.group(1) for line in text.splitlines() if (m := _PAYLOAD.search(line.split(":", 2)[-1]))}
    return names.pop() if len(names) == 1 else None


def _guest_peer(sock: socket.socket, _addr) -> str:
    """Guests are capped per container (unprivileged containers share host uids), else per uid."""
    pid, uid, _gid = netguard.peer_cred(sock)
    name = container_of_pid(pid)
    return f"container:{name}" if name else f"uid:{uid}"


class DevLXD:
    def __init__(self, daemon):
        self.d = daemon
        self.dir = daemon.paths.join("devlxd")
        self.socket = os.path.join(self.dir, SOCKET_NAME)
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # (project, name) -> list of [ws, types, last known (config, devices)]
        self._subs: dict[tuple[str, str], list] = {}

    # ---- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket)
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024)
        app.router.add_get("/", self.get_root)
        app.router.add_get("/1.0", self.get_info)
        app.router.add_get("/1.0/config", self.get_config)
        app.router.add_get("/1.0/config/{key}", self.get_config_key)
        app.router.add_get("/1.0/devices", self.get_devices)
        app.router.add_get("/1.0/meta-data", self.get_meta_data)
        app.router.add_get("/1.0/events", self.get_events)
        app.router.add_get("/1.0/images/{fingerprint}/export", self.export_image)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await netguard.serve_unix(self._runner, self.socket, "devlxd", _guest_peer)
        # Container roots (root or a mapped uid) must be able to connect.
        os.chmod(self.socket, 0o666)

    async def stop(self) -> None:
        for subs in list(self._subs.values()):
            for ws, *_ in list(subs):
                with contextlib.suppress(Exception):
                    await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket)

    def mounts(self, inst) -> list[tuple[str, str, str]]:
        if not config.value(config.INSTANCE, inst.config, "security.devlxd"):
            return []
        return [(self.dir, "dev/lxd", "bind,create=dir,ro")]

    # ---- who is asking --------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler):
        try:
            if request.method != "GET":
                return _error(405, "method not allowed")
            request["instance"] = await self._caller(request)
            return await handler(request)
        except GuestError as e:
            return _error(e.status, e.text)
        except web.HTTPNotFound:
            return _error(404, "404 page not found")
        except web.HTTPMethodNotAllowed:
            return _error(405, "method not allowed")
        except CorralError as e:
            return _error(e.status, e.message)
        except web.HTTPException:
            raise
        except Exception as e:
            log.exception("devlxd: %s %s", request.method, request.path)
            return _error(500, str(e))

    def serve_vm_thread(self, project: str, name: str, sock) -> None:
        """A /dev/lxd connection a VM's agent tunnelled (a connected socket; from the agent's thread)."""
        loop = self._loop
        if loop is None or self._runner is None:
            sock.close()
            return
        asyncio.run_coroutine_threadsafe(self._serve_vm(project, name, sock), loop)

    async def _serve_vm(self, project: str, name: str, sock) -> None:
        """Serve the app on one tunnelled connection, its requests marked with the VM they come from.
        (aiohttp has no public hook to tag a connection: a web.Server of its own on the app's request
        factory and handler, as AppRunner makes one.)"""
        app = self._runner.app

        async def handle(request):
            request["corral_vm"] = (project, name)   # who asks: the VM whose agent opened the stream
            return await app._handle(request)
        server = web.Server(handle, request_factory=app._make_request, loop=asyncio.get_running_loop())
        sock.setblocking(False)
        await asyncio.get_running_loop().connect_accepted_socket(server, sock)

    async def _caller(self, request: web.Request):
        vm = request.get("corral_vm")
        if vm is not None:
            inst = await self.d.instances.load(*vm)
            if not config.value(config.INSTANCE, inst.config, "security.devlxd"):
                raise GuestError(403, "not authorized")
            return inst
        driver_name = container_of_pid(peer_pid(request))
        if driver_name is None:
            raise GuestError(403, "not authorized")
        for inst in await self.d.instances.load_local(None):
            if self.d.instances.driver_name(inst.project, inst.name) == driver_name:
                if not config.value(config.INSTANCE, inst.config, "security.devlxd"):
                    raise GuestError(403, "not authorized")
                return inst
        raise GuestError(403, "not authorized")

    # ---- endpoints ------------------------------------------------------------------------

    async def get_root(self, request: web.Request):
        return _json(["/1.0"])

    async def get_info(self, request: web.Request):
        # `location` is the name of the cluster member the container runs on ("none" standalone).
        return _json({"state": "", "api_version": "1.0", "instance_type": request["instance"].rec.get("type") or
                      "container", "location": self.d.cluster.server_name})

    async def get_config(self, request: web.Request):
        cfg = request["instance"].config
        return _json([f"/1.0/config/{k}" for k in sorted(cfg) if k.startswith(_USER_KEYS)])

    async def get_config_key(self, request: web.Request):
        key = request.match_info["key"]
        if not key.startswith(_USER_KEYS):
            raise GuestError(403, "not authorized")
        cfg = request["instance"].config
        if key not in cfg:
            raise GuestError(404, "not found")
        return _raw(cfg[key])

    @staticmethod
    def _devices(inst) -> dict:
        out = {}
        for name, dev in inst.devices.items():
            dev = dict(dev)
            if dev.get("type") == "nic" and not dev.get("hwaddr"):
                hw = inst.config.get(f"volatile.{name}.hwaddr")
                if hw:
                    dev["hwaddr"] = hw
            out[name] = dev
        return out

    async def get_devices(self, request: web.Request):
        return _json(self._devices(request["instance"]))

    async def get_meta_data(self, request: web.Request):
        inst = request["instance"]
        cfg = inst.config
        iid = cfg.get("volatile.cloud-init.instance-id") or cfg.get("volatile.uuid") or \
            str(uuid.uuid5(uuid.NAMESPACE_URL, f"corral:{inst.project}/{inst.name}"))
        return _raw(f"#cloud-config\ninstance-id: {iid}\nlocal-hostname: {inst.name}\n{cfg.get('user.meta-data', '')}")

    async def export_image(self, request: web.Request):
        inst = request["instance"]
        if not config.value(config.INSTANCE, inst.config, "security.devlxd.images"):
            raise GuestError(403, "not authorized")
        from corral.api.images import export_response
        fp = request.match_info["fingerprint"]
        img = await self.d.images.get(inst.project, fp)
        return await export_response(request, self.d, inst.project, img["fingerprint"])

    # ---- events ---------------------------------------------------------------------------

    async def get_events(self, request: web.Request):
        inst = request["instance"]
        raw = request.query.get("type", "")
        types = {t for t in raw.split(",") if t} or {"config", "device"}
        if types - {"config", "device"}:
            raise GuestError(400, f"Invalid event type: {raw}")
        ws = web.WebSocketResponse()
        if not ws.can_prepare(request).ok:
            raise GuestError(400, "Missing websocket upgrade")
        await ws.prepare(request)
        key = (inst.project, inst.name)
        entry = [ws, types, (dict(inst.config), self._devices(inst))]
        self._subs.setdefault(key, []).append(entry)
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
        finally:
            subs = self._subs.get(key, [])
            if entry in subs:
                subs.remove(entry)
            if not subs:
                self._subs.pop(key, None)
        return ws

    async def instance_changed(self, project: str, name: str) -> None:
        subs = self._subs.get((project, name))
        if not subs:
            return
        try:
            inst = await self.d.instances.load(project, name)
        except CorralError:
            return
        cfg, devices = dict(inst.config), self._devices(inst)
        for entry in list(subs):
            ws, types, (old_cfg, old_devices) = entry
            entry[2] = (cfg, devices)
            events = []
            if "config" in types:
                for k in sorted(set(old_cfg) | set(cfg)):
                    if k.startswith("user.") and old_cfg.get(k, "") != cfg.get(k, ""):
                        events.append(("config", {"key": k, "old_value": old_cfg.get(k, ""),
                                                  "value": cfg.get(k, "")}))
            if "device" in types:
                for n in sorted(set(old_devices) | set(devices)):
                    if n not in devices:
                        events.append(("device", {"action": "removed", "config": old_devices[n], "name": n}))
                    elif n not in old_devices:
                        events.append(("device", {"action": "added", "config": devices[n], "name": n}))
                    elif devices[n] != old_devices[n]:
                        events.append(("device", {"action": "updated", "config": devices[n], "name": n}))
            for etype, meta in events:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.send_str(json.dumps(
                        {"type": etype, "timestamp": timeutil.now(), "metadata": meta})), 5)
