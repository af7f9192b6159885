"""Full-mesh events between cluster members, as LXD 5.0's full-mesh event mode (lxd/cluster/events.go,
lxd/events/): every member keeps one events listener connected to every other online member's
`/1.0/events` (as a cluster peer: the cluster certificate and LXD's notifier user agent, all projects,
every type) and injects what it receives into its own hub (`EventHub.inject`), so a `/1.0/events`
client of any member gets every member's events, each with its `location`.

A member's subscription to another gets only that member's own events (corral/api/events.py makes it a
local-only listener), so an event crosses one hop and never loops.

The member list is read again whenever a heartbeat came (the leader: at each of its rounds), and at
least every REFRESH_MAX seconds: a new member is connected to, a removed or offline one is dropped
(as LXD, no connection is tried to an offline member), a pending one waits until it has joined. A
link that breaks reconnects on its own with a growing delay (BACKOFF) while its member is online.
Nothing waits on a link: each runs in a task of its own. While not clustered there are no links.

This member's own events carry its name as `location` once clustered ("none" standalone).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field

import aiohttp

from corral.cluster.peer import NOTIFIER

log = logging.getLogger(__name__)

EVENTS_PATH = "/1.0/events?all-projects=true"   # every type (no `type`), every project
CHECK_EVERY = 0.5        # seconds between looks at the heartbeat counters (in memory)
REFRESH_MAX = 10.0       # read the member list at least this often
CONNECT_TIMEOUT = 5.0
WS_HEARTBEAT = 10.0      # websocket pings: a member gone without closing its side is noticed
BACKOFF = (0.25, 0.5, 1.0, 2.0, 4.0, 5.0)   # seconds before reconnection attempt n (the last repeats)
STABLE = 10.0            # a connection that lasted this long resets the backoff
PENDING = 1              # nodes.state of a member still joining (corral/db/queries/nodes.py)


def backoff(failures: int) -> float:
    return BACKOFF[min(max(failures, 1), len(BACKOFF)) - 1]


@dataclass(eq=False)
class Link:
    """The events listener on one other member."""
    member_id: int
    name: str
    address: str
    connected: bool = False
    connects: int = 0             # connections made
    failures: int = 0             # attempts failed or connections lost since the last stable one
    received: int = 0             # events injected
    last_error: str = ""
    task: asyncio.Task | None = field(default=None, repr=False)

    def status(self) -> dict:
        return {"address": self.address, "connected": self.connected, "connects": self.connects,
                "failures": self.failures, "received": self.received, "last_error": self.last_error}


class EventMesh:
    """Start with `start()` (the daemon, once its database is up), stop with `await stop()`.

    `subscribe(link)` (injectable for tests) runs one connection to `link.address` until it ends:
    it calls `self.opened(link)` once connected and `self.received(link, text)` per message."""

    def __init__(self, state, subscribe=None):
        self.state = state
        self.hub = state.events
        self.links: dict[int, Link] = {}
        self.refreshes = 0
        self._subscribe = subscribe or self._websocket
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self.hub.locate = lambda: state.cluster.server_name if state.cluster.clustered else "none"

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="event-mesh")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._close_all()

    def poke(self) -> None:
        """Read the member list now (membership changed)."""
        self._wake.set()

    def status(self) -> dict:
        return {link.name: link.status() for link in self.links.values()}

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        seen, last = None, -REFRESH_MAX
        while True:
            stamp = self._stamp()
            if stamp != seen or self._wake.is_set() or loop.time() - last >= REFRESH_MAX:
                self._wake.clear()
                seen, last = stamp, loop.time()
                try:
                    await self.refresh()
                except asyncio.CancelledError:
                    raise
                except Exception as e:   # noqa: BLE001 - e.g. no leader right now: the next look retries
                    log.debug("event mesh: member list unavailable: %s", e)
                    last = loop.time() - REFRESH_MAX + 1   # try again in a second
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), CHECK_EVERY)

    def _stamp(self) -> tuple:
        c = self.state.cluster
        hb = c.heartbeat
        return (c.clustered, c.member_id, id(hb), hb.received if hb else 0, hb.rounds if hb else 0)

    # ---- the member list -----------------------------------------------------------------------

    async def refresh(self) -> None:
        """Links to every other online member that has joined; none to the others."""
        c = self.state.cluster
        wanted: dict[int, dict] = {}
        if c.clustered:
            for m in await c.members():
                if (m["id"] != c.member_id and m.get("address") and m.get("state") != PENDING
                        and c.online(m)):
                    wanted[m["id"]] = m
        self.refreshes += 1
        self.apply(wanted)

    def apply(self, wanted: dict[int, dict]) -> None:
        """Bring the links to `wanted` ({member id: member row}) without waiting on any of them."""
        stale = [self.links.pop(mid) for mid, link in list(self.links.items())
                 if mid not in wanted or wanted[mid]["address"] != link.address]
        for link in stale:
            self._cancel(link)
        loop = asyncio.get_running_loop()
        for mid, m in wanted.items():
            link = self.links.get(mid)
            if link is not None:
                link.name = m["name"]   # renamed
                continue
            link = self.links[mid] = Link(mid, m["name"], m["address"])
            link.task = loop.create_task(self._run(link), name=f"event-mesh-{m['name']}")
            log.debug("event mesh: listening for events on member %s (%s)", link.name, link.address)

    @staticmethod
    def _cancel(link: Link) -> asyncio.Task | None:
        link.connected = False
        if link.task is not None and not link.task.done():
            link.task.cancel()
            return link.task
        return None

    async def _close_all(self) -> None:
        links, self.links = list(self.links.values()), {}
        tasks = [t for t in (self._cancel(link) for link in links) if t is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # ---- one link ------------------------------------------------------------------------------

    async def _run(self, link: Link) -> None:
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            try:
                await self._subscribe(link)
                error = "the member closed the event stream"
            except asyncio.CancelledError:
                link.connected = False
                raise
            except Exception as e:   # noqa: BLE001 - reported in the status, retried
                error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            was_connected, link.connected = link.connected, False
            if was_connected and loop.time() - began >= STABLE:
                link.failures = 0
            link.failures += 1
            link.last_error = error
            if link.failures == 1:
                log.info("event mesh: events of member %s (%s) lost: %s; reconnecting", link.name,
                         link.address, error)
            await asyncio.sleep(backoff(link.failures))

    def opened(self, link: Link) -> None:
        link.connected = True
        link.connects += 1

    def received(self, link: Link, text: str) -> None:
        try:
            event = json.loads(text)
        except ValueError:
            return
        link.received += 1
        self.hub.inject(event)

    async def _websocket(self, link: Link) -> None:
        """The real subscription: a websocket to the member's /1.0/events over the cluster TLS."""
        session = self.state.cluster.peer.session()
        ws = await asyncio.wait_for(
            session.ws_connect(f"https://{link.address}{EVENTS_PATH}", headers={"User-Agent": NOTIFIER},
                               heartbeat=WS_HEARTBEAT, max_msg_size=0, autoclose=True),
            CONNECT_TIMEOUT)
        try:
            self.opened(link)
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self.received(link, msg.data)
                elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    break
        finally:
            with contextlib.suppress(Exception):
                await ws.close()
