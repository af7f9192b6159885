"""The interface every instance driver implements, and the data it exchanges with the daemon."""
from __future__ import annotations

import abc
from dataclasses import dataclass, field

from corral.errors import CorralError
from corral.idmap import IdmapEntry


class DriverError(CorralError):
    """An instance operation failed; the message carries the driver's diagnostics."""


@dataclass
class InstanceSpec:
    name: str                      # the driver-level name (liblxc container name)
    rootfs: str                    # absolute path of the root directory, owned by the storage layer
    config: dict[str, str] = field(default_factory=dict)    # expanded LXD config
    devices: dict[str, dict[str, str]] = field(default_factory=dict)  # expanded LXD devices
    idmap: list[IdmapEntry] | None = None                   # None: privileged, no user namespace
    log_file: str = ""
    console_log_file: str = ""
    hostname: str = ""
    mounts: list[tuple[str, str, str]] = field(default_factory=list)  # extra (source, dest, options)
    extra: list[str] = field(default_factory=list)   # raw liblxc config lines from devices


class ExecProcess(abc.ABC):
    """A command running inside an instance. Either `pty` (interactive) or the three pipes are set;
    the caller owns these fds and closes them."""

    pid: int
    pty: int | None = None
    stdin: int | None = None     # write end
    stdout: int | None = None    # read end
    stderr: int | None = None    # read end

    @abc.abstractmethod
    def wait(self) -> int:
        """Block until the command ends; its exit code (128+N when killed by signal N)."""

    @abc.abstractmethod
    def kill(self, signum: int) -> None: ...

    @abc.abstractmethod
    def resize(self, width: int, height: int) -> None: ...


class InstanceDriver(abc.ABC):
    @abc.abstractmethod
    def create(self, spec: InstanceSpec) -> None:
        """Record the instance with the driver (no rootfs work)."""

    @abc.abstractmethod
    def start(self, spec: InstanceSpec) -> None:
        """Start and return once running; DriverError with diagnostics on failure."""

    @abc.abstractmethod
    def stop(self, name: str, force: bool = False, timeout: int = 30) -> None: ...

    def restart(self, spec: InstanceSpec, force: bool = False, timeout: int = 30) -> None:
        if self.status(spec.name) != "Stopped":
            self.stop(spec.name, force=force, timeout=timeout)
        self.start(spec)

    @abc.abstractmethod
    def freeze(self, name: str) -> None: ...

    @abc.abstractmethod
    def unfreeze(self, name: str) -> None: ...

    @abc.abstractmethod
    def delete(self, name: str) -> None:
        """Forget the instance's driver state (never the rootfs)."""

    @abc.abstractmethod
    def status(self, name: str) -> str:
        """"Running", "Stopped" or "Frozen"."""

    def statuses(self, names: list[str]) -> dict[str, str]:
        """The status of each of `names` (a driver may read them all at once, for listings)."""
        return {n: self.status(n) for n in names}

    @abc.abstractmethod
    def state(self, name: str) -> dict:
        """The metadata of LXD's GET /1.0/instances/NAME/state."""

    def states(self, names: list[str]) -> dict[str, dict]:
        """The state of each of `names` (a driver may read them in one go, for listings)."""
        return {n: self.state(n) for n in names}

    @abc.abstractmethod
    def list_running(self) -> list[str]: ...

    def list_defined(self) -> list[str]:
        """Every container this driver has a definition of (running or not)."""
        return self.list_running()

    @abc.abstractmethod
    def init_pid(self, name: str) -> int:
        """The host pid of the instance's init (0 when not running)."""

    def running_pids(self, names: list[str]) -> dict[str, int]:
        """The init pid of each of `names` that runs (frozen ones included), for metrics scrapes
        (a driver may read them all at once)."""
        out = {}
        for n in names:
            if self.status(n) != "Stopped" and (pid := self.init_pid(n)) > 0:
                out[n] = pid
        return out

    @abc.abstractmethod
    def exec(self, name: str, command: list[str], env: dict[str, str], cwd: str = "/",
             uid: int = 0, gid: int = 0, interactive: bool = False,
             width: int = 80, height: int = 24) -> ExecProcess: ...

    @abc.abstractmethod
    def console_log(self, name: str) -> bytes: ...

    @abc.abstractmethod
    def console(self, name: str) -> int:
        """A new fd on the instance's console (a pty master); the caller closes it."""

    @abc.abstractmethod
    def apply_limits(self, name: str, config: dict[str, str]) -> None:
        """Apply limits.* of `config` to the running instance."""
