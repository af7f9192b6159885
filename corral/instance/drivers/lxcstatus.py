"""The status of many containers at once, without a liblxc container object each.

`lxc.Container(name).state` parses the container's config and asks its monitor over the command
socket: about 0.2 ms per container, which is most of a `recursion=1` listing. Here liblxc lists the
active containers once (it reads /proc/net/unix for their command sockets), and the freezer cgroup
of each active one tells Running from Frozen. A container whose freezer cgroup is not where liblxc
puts it on this host (the hierarchy root) is asked the slow way, through `fallback`.
"""
from __future__ import annotations

import os
from typing import Callable

import lxc

from corral.instance.drivers import cgroups

_V1_FREEZER = {"THAWED": "Running", "FROZEN": "Frozen", "FREEZING": "Freezing"}


def _read(path: str) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, 64).decode().strip()
    except OSError:
        return None
    finally:
        os.close(fd)


def _freezer() -> Callable[[str], str | None]:
    """A function: container name -> its status from the freezer cgroup (None: not found)."""
    if "freezer" in cgroups.v1_controllers():
        base = f"{cgroups.ROOT}/freezer"
        return lambda n: _V1_FREEZER.get(_read(f"{base}/lxc.payload.{n}/freezer.state") or "")
    root = cgroups.v2_root()
    if root is None:
        return lambda n: None
    return lambda n: {"0": "Running", "1": "Frozen"}.get(_read(f"{root}/lxc.payload.{n}/cgroup.freeze") or "")


def statuses(lxcpath: str, names: list[str], fallback: Callable[[str], str]) -> dict[str, str]:
    if not names:
        return {}
    active = set(lxc.list_containers(active=True, defined=False, config_path=lxcpath))
    frozen = _freezer()
    out = {}
    for n in names:
        if n not in active:
            out[n] = "Stopped"
            continue
        st = frozen(n)
        out[n] = st if st is not None else fallback(n)
    return out


_CODES = {"Running": 103, "Frozen": 110, "Freezing": 109, "Stopped": 102}
# (lxcpath, name) -> (init pid, its start time): a container's init keeps its pid while it runs,
# and the start time tells a recycled pid from it.
_INIT_PIDS: dict[tuple[str, str], tuple[int, str]] = {}


def _start_time(pid: int) -> str | None:
    stat = _read_all(f"/proc/{pid}/stat")
    try:
        return stat.rsplit(")", 1)[1].split()[19] if stat else None
    except IndexError:
        return None


def _read_all(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return None


def init_pid(lxcpath: str, name: str, slow: Callable[[str], int]) -> int:
    """The init pid of running container `name`, asked of liblxc (`slow`) once per start."""
    key = (lxcpath, name)
    known = _INIT_PIDS.get(key)
    if known is not None and _start_time(known[0]) == known[1]:
        return known[0]
    pid = slow(name)
    started = _start_time(pid) if pid > 0 else None
    if started is not None:
        _INIT_PIDS[key] = (pid, started)
    else:
        _INIT_PIDS.pop(key, None)
    return pid


def states(driver, names: list[str]) -> dict[str, dict]:
    """`driver.state(name)` of each of `names`, with the statuses read at once and the init pids
    remembered: no liblxc container object per running container."""
    out = {}
    for n, status in statuses(driver.lxcpath, names, driver.status).items():
        if status == "Stopped":
            out[n] = driver.state_of(n, status, _CODES[status], -1)
            continue
        pid = init_pid(driver.lxcpath, n, driver.init_pid) if status in _CODES else 0
        out[n] = driver.state_of(n, status, _CODES[status], pid) if pid > 0 else driver.state(n)
    stale = [k for k in _INIT_PIDS if k[0] == driver.lxcpath and k[1] in out and out[k[1]]["status"] == "Stopped"]
    for k in stale:
        del _INIT_PIDS[k]
    return out
