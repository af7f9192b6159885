"""The event hub: every listener gets the events of the types (and project) it asked for.

Event shape, as LXD 5.0: {"type", "timestamp", "metadata", "location", "project"}.
Lifecycle action names follow LXD ("profile-created", "instance-started", ...).

In a cluster the hub also carries the other members' events (corral/cluster/event_mesh.py injects
what it receives from them, their `location` kept). Only listeners that ask for them get those
(`listen(..., remote=True)`: the /1.0/events clients); the daemon's own listeners and the other
members' subscriptions get this member's events only (LXD's "local only" listeners of its full-mesh
mode: an event is never sent on from member to member).
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Callable

from corral import timeutil

TYPES = ("logging", "operation", "lifecycle")
_QUEUE_MAX = 4096


@dataclass(eq=False)
class Listener:
    types: frozenset[str]
    project: str | None           # None: all projects
    remote: bool = False          # also the events of other members (injected into the hub)
    client: bool = False          # an API client's stream (ended by close())
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(_QUEUE_MAX))
    dropped: bool = False         # disconnected: it could not keep up, or the hub closed
    # (None in the queue: the hub closed; the listener's consumer stops)

    def wants(self, event: dict) -> bool:
        if event["type"] not in self.types:
            return False
        proj = event.get("project")
        return self.project is None or not proj or proj == self.project


class EventHub:
    def __init__(self, location: str = "none"):
        self.location = location
        self.locate: Callable[[], str] | None = None   # this member's name now (set once clustered)
        self._listeners: set[Listener] = set()

    def listen(self, types: list[str] | None = None, project: str | None = "default", *,
               remote: bool = False, client: bool = False) -> Listener:
        listener = Listener(frozenset(types or TYPES), project, remote, client)
        self._listeners.add(listener)
        return listener

    def unlisten(self, listener: Listener) -> None:
        self._listeners.discard(listener)

    def close(self) -> None:
        """Shutting down: the API clients' streams are told to end (their consumer gets None)."""
        for lst in [x for x in self._listeners if x.client]:
            lst.dropped = True
            self._listeners.discard(lst)
            try:
                lst.queue.put_nowait(None)
            except asyncio.QueueFull:
                pass   # its consumer is busy sending, and sees `dropped` next

    @property
    def has_logging_listeners(self) -> bool:
        return any("logging" in lst.types for lst in self._listeners)

    def current_location(self) -> str:
        return self.locate() if self.locate is not None else self.location

    def send(self, type_: str, metadata: dict, project: str | None = "default") -> dict:
        event = {"type": type_, "timestamp": timeutil.now(), "metadata": metadata,
                 "location": self.current_location()}
        if project is not None:
            event["project"] = project
        self._deliver(event, remote=False)
        return event

    def inject(self, event: dict) -> None:
        """An event another member produced (received by the event mesh), as it came."""
        if isinstance(event, dict) and event.get("type") in TYPES and isinstance(event.get("metadata"), dict):
            self._deliver(event, remote=True)

    def _deliver(self, event: dict, remote: bool) -> None:
        for lst in list(self._listeners):
            if (lst.remote or not remote) and lst.wants(event):
                try:
                    lst.queue.put_nowait(event)
                except asyncio.QueueFull:
                    # A listener that cannot keep up is disconnected, like LXD does.
                    lst.dropped = True
                    self._listeners.discard(lst)

    def lifecycle(self, action: str, source: str, *, project: str = "default", context: dict | None = None,
                  requestor: dict | None = None) -> dict:
        meta: dict = {"action": action, "source": source}
        if context:
            meta["context"] = context
        if requestor:
            meta["requestor"] = requestor
        return self.send("lifecycle", meta, project)


class EventLogHandler(logging.Handler):
    """Forwards daemon log records to `logging` event listeners (lxc monitor --type=logging)."""

    _LEVELS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning",
               logging.ERROR: "error", logging.CRITICAL: "crit"}

    def __init__(self, hub: EventHub):
        super().__init__(logging.DEBUG)
        self.hub = hub

    def emit(self, record: logging.LogRecord) -> None:
        if not self.hub.has_logging_listeners:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        context = {k: str(v) for k, v in getattr(record, "ctx", {}).items()}
        meta = {"context": context, "level": self._LEVELS.get(record.levelno, "info"),
                "message": record.getMessage()}
        loop.call_soon(self.hub.send, "logging", meta, None)
