"""The event hub: every listener gets the events of the types (and project) it asked for.

Event shape, as LXD 5.0: {"type", "timestamp", "metadata", "location", "project"}.
Lifecycle action names follow LXD ("profile-created", "instance-started", ...).
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from corral import timeutil

TYPES = ("logging", "operation", "lifecycle")
_QUEUE_MAX = 4096


@dataclass(eq=False)
class Listener:
    types: frozenset[str]
    project: str | None           # None: all projects
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(_QUEUE_MAX))
    dropped: bool = False

    def wants(self, event: dict) -> bool:
        if event["type"] not in self.types:
            return False
        proj = event.get("project")
        return self.project is None or not proj or proj == self.project


class EventHub:
    def __init__(self, location: str = "none"):
        self.location = location
        self._listeners: set[Listener] = set()

    def listen(self, types: list[str] | None = None, project: str | None = "default") -> Listener:
        listener = Listener(frozenset(types or TYPES), project)
        self._listeners.add(listener)
        return listener

    def unlisten(self, listener: Listener) -> None:
        self._listeners.discard(listener)

    @property
    def has_logging_listeners(self) -> bool:
        return any("logging" in lst.types for lst in self._listeners)

    def send(self, type_: str, metadata: dict, project: str | None = "default") -> dict:
        event = {"type": type_, "timestamp": timeutil.now(), "metadata": metadata,
                 "location": self.location}
        if project is not None:
            event["project"] = project
        for lst in list(self._listeners):
            if lst.wants(event):
                try:
                    lst.queue.put_nowait(event)
                except asyncio.QueueFull:
                    # A listener that cannot keep up is disconnected, like LXD does.
                    lst.dropped = True
                    self._listeners.discard(lst)
        return event

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
