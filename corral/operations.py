"""Operations: long work as asyncio tasks with LXD's lifecycle, status codes and events.

Classes: task (background work), websocket (waits for clients to connect, e.g. exec),
token (a pending grant, done when used or cancelled).

Made in one way: the domain layer answers a request that takes time with a `Work` (what to run,
its description, resources and metadata) and never starts it; whoever asked starts it with
`OperationManager.start`: the API for a request (corral/api/response.py's `operation`, which also
builds the 202 envelope), the daemon's own schedulers for periodic tasks.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from typing import Any, Awaitable, Callable

from corral import timeutil
from corral.errors import BadRequest, CorralError, NotFound, public_message

log = logging.getLogger(__name__)

TASK, WEBSOCKET, TOKEN = "task", "websocket", "token"
STATUS_CODES = {"Pending": 105, "Running": 103, "Success": 200, "Failure": 400, "Cancelled": 401}
# Finished operations stay listed for a while so clients can still wait on them.
RETENTION_SECONDS = 60

RunFunc = Callable[["Operation"], Awaitable[Any]]
ConnectFunc = Callable[["Operation", Any, str], Awaitable[Any]]


@dataclasses.dataclass
class Work:
    """An operation to be: what the domain layer returns for slow work, started by the caller."""
    description: str
    run: RunFunc | None = None
    project: str = "default"
    cls: str = TASK
    resources: dict | None = None
    metadata: Any = None
    connect: ConnectFunc | None = None
    cancellable: bool = False
    # Called with the new operation before it is returned (a lifecycle event naming it, say).
    on_start: Callable[["Operation"], None] | None = None


class Operation:
    def __init__(self, manager: "OperationManager", *, project: str, cls: str, description: str,
                 resources: dict | None, metadata: Any, run: RunFunc | None,
                 connect: ConnectFunc | None, cancellable: bool, location: str):
        self.manager = manager
        self.id = str(uuid.uuid4())
        self.project = project
        # Projects whose clients also see this operation (and get its events): those it was requested
        # from when the daemon registers it elsewhere (an image of `default` used by a project), and
        # the certificates (fingerprints) of the clients that started it.
        self.also_projects: set[str] = set()
        self.owners: set[str] = set()
        self.cls = cls
        self.description = description
        self.resources = resources
        self.metadata = metadata
        self.created_at = self.updated_at = timeutil.now()
        self.status = "Pending"
        self.err = ""
        self.location = location
        self._run = run
        self._connect = connect
        self.may_cancel = cancellable
        self._task: asyncio.Task | None = None
        self._done = asyncio.Event()
        self._on_finish: list[Callable[[], Any]] = []

    @property
    def url(self) -> str:
        return f"/1.0/operations/{self.id}"

    @property
    def status_code(self) -> int:
        return STATUS_CODES[self.status]

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def to_api(self) -> dict:
        return {
            "id": self.id, "class": self.cls, "description": self.description,
            "created_at": self.created_at, "updated_at": self.updated_at,
            "status": self.status, "status_code": self.status_code,
            "resources": self.resources, "metadata": self.metadata,
            "may_cancel": self.may_cancel, "err": self.err, "location": self.location,
        }

    def _set(self, status: str, err: str = "") -> None:
        self.status = status
        self.err = public_message(err)
        self.updated_at = timeutil.now()
        self._publish()

    def _publish(self) -> None:
        api = self.to_api()
        for project in [self.project, *sorted(self.also_projects - {self.project})]:
            self.manager.events.send("operation", api, project)

    def visible_in(self, project: str) -> bool:
        return project == self.project or project in self.also_projects

    def start(self) -> None:
        self._set("Running")
        if self._run is not None:
            self._task = asyncio.get_running_loop().create_task(self._execute())
            # A task cancelled before it ever ran never reaches _execute's handlers.
            self._task.add_done_callback(lambda t: t.cancelled() and self.finish("Cancelled", "Operation cancelled"))

    async def _execute(self) -> None:
        try:
            result = await self._run(self)
            if isinstance(result, dict):
                self.metadata = {**(self.metadata or {}), **result}
            self.finish()
        except asyncio.CancelledError:
            self.finish("Cancelled", "Operation cancelled")
        except CorralError as e:
            self.finish("Failure", e.message)
        except Exception as e:  # a bug or host failure: report it, keep the daemon up
            log.exception("operation %s (%s) failed", self.id, self.description)
            self.finish("Failure", str(e) or type(e).__name__)

    def finish(self, status: str = "Success", err: str = "") -> None:
        if self.done:
            return
        self._set(status, err)
        self._done.set()
        self.manager._retire(self)
        for cb in self._on_finish:
            cb()

    def on_finish(self, cb: Callable[[], Any]) -> None:
        """Call `cb` once the operation is done, however it ends (now, if it already has)."""
        if self.done:
            cb()
        else:
            self._on_finish.append(cb)

    def update_metadata(self, changes: dict) -> None:
        self.metadata = {**(self.metadata or {}), **changes}
        self.updated_at = timeutil.now()
        self._publish()

    async def wait(self, timeout: float | None) -> bool:
        """True when the operation is done; False on timeout (-1 or None waits forever)."""
        if timeout is not None and timeout < 0:
            timeout = None
        try:
            await asyncio.wait_for(self._done.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    def cancel(self) -> None:
        if self.done:
            return
        if not self.may_cancel:
            raise BadRequest("This operation can't be cancelled")
        if self._task is not None:
            self._task.cancel()
        else:
            self.finish("Cancelled", "Operation cancelled")

    async def connect(self, request, secret: str):
        if self.cls != WEBSOCKET or self._connect is None:
            raise BadRequest("Only websocket operations can be connected")
        if self.done:
            raise BadRequest("Operation is already done")
        return await self._connect(self, request, secret)


class OperationManager:
    def __init__(self, events, location: str = "none"):
        self.events = events
        self._location = location
        self._ops: dict[str, Operation] = {}
        # Where this member's operations are recorded for the other members (LXD's `operations`
        # table): set by the daemon (corral/cluster/operation_records.py); None: nowhere.
        self.registry = None
        self._recording: dict[str, asyncio.Task] = {}

    @property
    def location(self) -> str:
        """The name of the member running the operations made here ("none" standalone)."""
        return self.registry.location() if self.registry is not None else self._location

    def create(self, *, project: str = "default", cls: str = TASK, description: str,
               resources: dict | None = None, metadata: Any = None, run: RunFunc | None = None,
               connect: ConnectFunc | None = None, cancellable: bool = False) -> Operation:
        op = Operation(self, project=project, cls=cls, description=description, resources=resources,
                       metadata=metadata, run=run, connect=connect,
                       cancellable=cancellable or cls == TOKEN, location=self.location)
        self._ops[op.id] = op
        if self.registry is not None:
            task = self.registry.record(op)
            if task is not None:
                self._recording[op.id] = task
                task.add_done_callback(lambda _t, i=op.id: self._recording.pop(i, None))
        self.events.send("operation", op.to_api(), project)
        op.start()
        return op

    async def recorded(self, op_id: str, timeout: float = 5.0) -> None:
        """Once operation `op_id` is recorded where the other members look for it (awaited before
        the request that made it answers, so that any member finds it at once)."""
        task = self._recording.get(op_id)
        if task is not None:
            await asyncio.wait([task], timeout=timeout)

    def start(self, work: Work) -> Operation:
        """The one way an operation is made from a `Work`."""
        op = self.create(project=work.project, cls=work.cls, description=work.description,
                         resources=work.resources, metadata=work.metadata, run=work.run,
                         connect=work.connect, cancellable=work.cancellable)
        if work.on_start is not None:
            work.on_start(op)
        return op

    def get(self, op_id: str) -> Operation:
        op = self._ops.get(op_id)
        if op is None:
            raise NotFound("Operation not found")
        return op

    def all(self, project: str | None = None) -> list[Operation]:
        return [o for o in self._ops.values() if project is None or o.visible_in(project)]

    def claim(self, op_id: str, *, project: str, owner: str = "") -> None:
        """The operation `op_id` was started by a request of `project` (by the certificate `owner`)."""
        op = self._ops.get(op_id)
        if op is None:
            return
        if project != op.project:
            op.also_projects.add(project)
        if owner:
            op.owners.add(owner)

    def running(self) -> list[Operation]:
        return [o for o in self._ops.values() if not o.done and o.cls != TOKEN]

    def _retire(self, op: Operation) -> None:
        try:
            asyncio.get_running_loop().call_later(RETENTION_SECONDS, self._drop, op.id)
        except RuntimeError:
            self._ops.pop(op.id, None)

    def _drop(self, op_id: str) -> None:
        op = self._ops.pop(op_id, None)
        if op is not None and self.registry is not None:
            self.registry.forget(op)

    async def drain(self, timeout: float) -> bool:
        """Wait for running operations (shutdown); True if all finished in time."""
        pending = [o for o in self.running()]
        if not pending:
            return True
        log.info("waiting up to %ss for %d running operation(s)", timeout, len(pending))
        results = await asyncio.gather(*(o.wait(timeout) for o in pending))
        return all(results)

    def cancel_all(self) -> None:
        for op in list(self._ops.values()):
            if not op.done:
                if op._task is not None:
                    op._task.cancel()
                else:
                    op.finish("Cancelled", "Daemon is shutting down")
