"""The Instance interface (LXD's instance.Instance): one object per instance, made by the manager
for the instance's type (corral/instance/types.py) around its record. The manager loads, locks and
starts up; the object does the work on one instance. Methods that change the instance expect the
caller to hold the instance's lock (`Instances.lock`)."""
from __future__ import annotations

import abc
from typing import TYPE_CHECKING, ClassVar

from corral.instance.model import Loaded

if TYPE_CHECKING:
    from corral.instance.drivers.base import ExecProcess, InstanceDriver
    from corral.instance.files import Entry


class Instance(abc.ABC):
    type_name: ClassVar[str]            # the registry name ("container", "fake")
    api_type: ClassVar[str] = "container"   # LXD's "type" field of the instances it makes

    def __init__(self, insts, loaded: Loaded):
        self.insts = insts
        self.d = insts.d
        self.loaded = loaded

    # ---- the record ------------------------------------------------------------------------

    @property
    def rec(self) -> dict:
        return self.loaded.rec

    @property
    def config(self) -> dict:
        return self.loaded.config

    @property
    def devices(self) -> dict:
        return self.loaded.devices

    @property
    def name(self) -> str:
        return self.loaded.name

    @property
    def project(self) -> str:
        return self.loaded.project

    @property
    def pool(self) -> str:
        return self.loaded.pool

    @property
    def driver(self) -> InstanceDriver:
        return self.insts.driver_for(type(self))

    @classmethod
    @abc.abstractmethod
    def make_driver(cls, insts) -> InstanceDriver:
        """The driver instances of this type run on (one per daemon, shared by them)."""

    # ---- reading ---------------------------------------------------------------------------

    @abc.abstractmethod
    def status(self) -> str:
        """"Running", "Stopped", "Frozen" or "Error"."""

    @abc.abstractmethod
    def render(self, status: str | None = None) -> dict:
        """LXD's api.Instance (without state, snapshots, backups)."""

    @abc.abstractmethod
    async def state(self) -> dict:
        """LXD's api.InstanceState."""

    # ---- lifecycle (the caller holds the instance lock) -------------------------------------

    @abc.abstractmethod
    async def start(self, requestor: dict | None = None) -> None: ...

    @abc.abstractmethod
    async def stop(self, *, force: bool, timeout: float, requestor: dict | None = None,
                   event: bool = True) -> None:
        """Stop (forcibly, or a clean shutdown within `timeout` seconds, < 0: no limit)."""

    async def shutdown(self, timeout: float, requestor: dict | None = None) -> None:
        await self.stop(force=False, timeout=timeout, requestor=requestor)

    @abc.abstractmethod
    async def restart(self, *, force: bool, timeout: float, requestor: dict | None = None) -> None: ...

    @abc.abstractmethod
    async def freeze(self, requestor: dict | None = None) -> None: ...

    @abc.abstractmethod
    async def unfreeze(self, requestor: dict | None = None) -> None: ...

    @abc.abstractmethod
    async def update(self, fields: dict, requestor: dict | None = None) -> None:
        """Apply (when running) and store new record fields (config, devices, profiles, ...)."""

    @abc.abstractmethod
    async def snapshot(self, name: str, expires_at: str, description: str = "") -> None: ...

    @abc.abstractmethod
    async def restore(self, snapshot: str) -> None: ...

    @abc.abstractmethod
    async def rename(self, new: str) -> None: ...

    @abc.abstractmethod
    async def delete(self, requestor: dict | None = None) -> None: ...

    # ---- inside the instance ---------------------------------------------------------------

    @abc.abstractmethod
    def exec(self, command: list[str], env: dict[str, str], cwd: str = "/", uid: int = 0, gid: int = 0,
             interactive: bool = False, width: int = 80, height: int = 24) -> ExecProcess:
        """Blocking: start `command` inside the running instance."""

    @abc.abstractmethod
    def console(self) -> int:
        """Blocking: a new fd on the console (a pty master); the caller closes it."""

    @abc.abstractmethod
    def console_log(self) -> bytes: ...

    @abc.abstractmethod
    def file_get(self, path: str) -> Entry:
        """Blocking: a file, directory or symlink inside the instance (corral/instance/files.py)."""

    @abc.abstractmethod
    def file_put(self, path: str, kind: str, data=None, uid: int | None = None, gid: int | None = None,
                 mode: int | str | None = None, append: bool = False) -> None:
        """Blocking: write a file (`data`), a directory or a symlink (`data` is its target)."""

    @abc.abstractmethod
    def file_delete(self, path: str) -> None: ...
