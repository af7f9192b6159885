"""Helpers of the cluster events tests (tests/cluster/test_cluster_events.py): the real `lxc monitor`
read in a thread, a raw events websocket that presents the cluster certificate (what another member's
event mesh connects with), and producing lifecycle events until a monitor shows one."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import ssl
import subprocess
import threading
import time

import yaml

from helpers import unique

NOTIFIER = "lxd-cluster-notifier"


class Monitor:
    """`lxc monitor --type=lifecycle` (YAML, the default format) on a member; the events it printed."""

    def __init__(self, member, *args: str):
        self.member = member
        self.proc = subprocess.Popen(["lxc", "monitor", "--type=lifecycle", *args], env=member.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.events: list[dict] = []
        self.text: list[str] = []       # the raw YAML documents, as printed
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        block: list[str] = []
        for line in self.proc.stdout:
            if line.strip():
                block.append(line)
                continue
            if block:
                doc = "".join(block)
                block = []
                try:
                    event = yaml.safe_load(doc)
                except yaml.YAMLError:
                    continue
                if isinstance(event, dict):
                    with self._cond:
                        self.events.append(event)
                        self.text.append(doc)
                        self._cond.notify_all()

    def matching(self, pred) -> list[dict]:
        with self._cond:
            return [e for e in self.events if pred(e)]

    def wait_for(self, pred, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self.events:
                    if pred(e):
                        return e
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return None
                self._cond.wait(min(left, 0.2))

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc.stdout.close()
        self._thread.join(5)


def profile_event(name: str, action: str = "profile-created"):
    def pred(e: dict) -> bool:
        meta = e.get("metadata") or {}
        return meta.get("action") == action and meta.get("source") == f"/1.0/profiles/{name}"
    return pred


def produce_until_seen(producer, monitor: Monitor, timeout: float = 30, per_try: float = 1.5) -> tuple[str, dict]:
    """Create profiles on `producer` until `monitor` shows the creation of one (the mesh may still be
    connecting); returns (profile name, the event). AssertionError with what was seen otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        name = unique("ev")
        producer.lxc("profile", "create", name)
        event = monitor.wait_for(profile_event(name), per_try)
        if event is not None:
            return name, event
    raise AssertionError(f"{monitor.member.name}'s lxc monitor never showed a profile created on "
                         f"{producer.name} within {timeout}s; it showed: {monitor.events[-5:]}")


class PeerStream:
    """A websocket to `member`'s /1.0/events as member `as_member` subscribes (LXD's notifier user
    agent, all projects), read in a thread of its own. corrald's members present the cluster
    certificate; LXD's their own server certificate (in the cluster's trust store)."""

    def __init__(self, member, as_member, cert: str = "cluster"):
        self.ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE
        self.ctx.load_cert_chain(os.path.join(as_member.dir, f"{cert}.crt"), os.path.join(as_member.dir, f"{cert}.key"))
        self.url = f"https://{member.address}/1.0/events?all-projects=true"
        self.events: list[dict] = []
        self.error: str | None = None
        self.connected = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self.connected.wait(15):
            self.close()
            raise AssertionError(f"peer events websocket to {self.url} did not connect: {self.error}")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        import aiohttp
        self._stop = asyncio.Event()
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ctx)) as s:
                async with s.ws_connect(self.url, headers={"User-Agent": NOTIFIER}) as ws:
                    self.connected.set()
                    reader = asyncio.ensure_future(self._read(ws))
                    stopper = asyncio.ensure_future(self._stop.wait())
                    await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
                    reader.cancel()
                    stopper.cancel()
        except Exception as e:   # noqa: BLE001 - reported by the constructor / the test
            self.error = f"{type(e).__name__}: {e}"
            self.connected.set()

    async def _read(self, ws) -> None:
        async for msg in ws:
            with contextlib.suppress(ValueError):
                self.events.append(json.loads(msg.data))

    def wait_for(self, pred, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in list(self.events):
                if pred(e):
                    return e
            time.sleep(0.05)
        return None

    def close(self) -> None:
        if self._stop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def mesh_status(member) -> dict:
    """corrald's GET /internal/testing/event-mesh on the unix socket: {"links": {...}, "refreshes": n}."""
    r = member.request("GET", "/internal/testing/event-mesh", timeout=10)
    if r.status != 200:
        raise AssertionError(f"{member.name}: GET /internal/testing/event-mesh: {r.status} {r.body[:300]!r}")
    return r.metadata


def wait_links(member, expect: set[str], timeout: float = 20) -> dict:
    """Until `member`'s event mesh has connected links to exactly the members named in `expect`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = mesh_status(member)["links"]
        if set(last) == expect and all(v["connected"] for v in last.values()):
            return last
        time.sleep(0.2)
    raise AssertionError(f"{member.name}'s event mesh links are not {sorted(expect)} (all connected) "
                         f"within {timeout}s: {last}")
