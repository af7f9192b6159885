"""A container's cgroups on this host's layout (v1 hierarchies, possibly some controllers on v2):
limits as liblxc keys, live writes, and the usage numbers of the instance state."""
from __future__ import annotations

import os
import re

from corral.hostinfo import (CGROUP_ROOT as ROOT, has_swap_accounting, v1_controllers,  # noqa: F401
                             v2_controllers, v2_root)
UNLIMITED = "-1"


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _v2_value(key: str, value: str, limits: dict[str, str]) -> tuple[str, str] | None:
    """The cgroup2 file and value for a v1-named limit (None when it folds into another)."""
    unlimited = value == UNLIMITED
    if key == "memory.limit_in_bytes":
        return "memory.max", "max" if unlimited else value
    if key == "memory.soft_limit_in_bytes":
        return "memory.high", "max" if unlimited else value
    if key == "memory.memsw.limit_in_bytes":
        mem = limits.get("memory.limit_in_bytes", UNLIMITED)
        if unlimited or mem == UNLIMITED:
            return "memory.swap.max", "max"
        return "memory.swap.max", str(max(0, int(value) - int(mem)))
    if key == "cpu.shares":
        return "cpu.weight", str(max(1, min(10000, int(value) * 100 // 1024)))
    if key == "cpu.cfs_quota_us":
        quota = "max" if unlimited else value
        return "cpu.max", f"{quota} {limits.get('cpu.cfs_period_us', '100000')}"
    if key == "cpu.cfs_period_us":
        return None
    if key == "pids.max":
        return "pids.max", value
    if key == "memory.swappiness":
        return None   # cgroup2 has no per-cgroup swappiness (limits.memory.swap.priority is refused there)
    return key, value


def config_lines(limits: dict[str, str]) -> list[str]:
    """liblxc keys setting `limits` (v1 file names) wherever each controller lives."""
    v1, v2 = v1_controllers(), v2_controllers()
    lines = []
    for key, value in limits.items():
        ctrl = key.split(".", 1)[0]
        if ctrl in v1:
            lines.append(f"lxc.cgroup.{key} = {value}")
        elif ctrl in v2 and (kv := _v2_value(key, value, limits)):
            lines.append(f"lxc.cgroup2.{kv[0]} = {kv[1]}")
    return lines


def remove_tree(path: str) -> None:
    """rmdir an (empty of tasks) cgroup and its children; silently skip busy ones."""
    for dirpath, dirnames, _ in os.walk(path, topdown=False):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass


class Cgroups:
    """The cgroup directories of one running container, by controller."""

    def __init__(self, paths: dict[str, str]):
        self.paths = paths  # controller -> directory; "" for the v2 directory

    def file(self, ctrl: str, name: str) -> str | None:
        """Where controller `ctrl`'s file `name` of this container is (v1 or cgroup2), or None."""
        return self._file(ctrl, name)

    def _file(self, ctrl: str, name: str) -> str | None:
        if ctrl in self.paths:
            return f"{self.paths[ctrl]}/{name}"
        if "" in self.paths and ctrl in v2_controllers():
            return f"{self.paths['']}/{name}"
        return None

    def _int(self, ctrl: str, name: str) -> int:
        path = self._file(ctrl, name)
        try:
            return int(_read(path)) if path else 0
        except (OSError, ValueError):
            return 0

    def memory(self) -> dict[str, int]:
        if "memory" in self.paths:
            usage = self._int("memory", "memory.usage_in_bytes")
            peak = self._int("memory", "memory.max_usage_in_bytes")
            memsw = self._int("memory", "memory.memsw.usage_in_bytes")
            memsw_peak = self._int("memory", "memory.memsw.max_usage_in_bytes")
            return {"usage": usage, "usage_peak": peak, "swap_usage": max(0, memsw - usage),
                    "swap_usage_peak": max(0, memsw_peak - peak)}
        return {"usage": self._int("memory", "memory.current"), "usage_peak": self._int("memory", "memory.peak"),
                "swap_usage": self._int("memory", "memory.swap.current"),
                "swap_usage_peak": self._int("memory", "memory.swap.peak")}

    def cpu_usage(self) -> int:
        if "cpuacct" in self.paths:
            return self._int("cpuacct", "cpuacct.usage")
        path = self._file("cpu", "cpu.stat")
        try:
            stat = dict(line.split() for line in _read(path).splitlines()) if path else {}
            return int(stat.get("usage_usec", 0)) * 1000
        except OSError:
            return 0

    def processes(self) -> int:
        if (n := self._int("pids", "pids.current")) > 0:
            return n
        count = 0
        for ctrl in ("pids", "memory", ""):
            if ctrl in self.paths:
                for dirpath, _, _ in os.walk(self.paths[ctrl]):
                    try:
                        count += len(_read(f"{dirpath}/cgroup.procs").split())
                    except OSError:
                        pass
                return count
        return 0

    def apply(self, limits: dict[str, str]) -> None:
        """Write v1-named limits live. Memory and memsw go in the order the kernel accepts."""
        limits = dict(limits)
        if "memory.memsw.limit_in_bytes" in limits and "memory" in self.paths:
            current = self._int("memory", "memory.limit_in_bytes")
            new = int(limits.get("memory.limit_in_bytes", current))
            raising = new == -1 or new > current
            order = ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
            if not raising:
                order.reverse()
            limits = {k: limits[k] for k in order if k in limits} | limits
        v2 = {}
        for key, value in limits.items():
            ctrl = key.split(".", 1)[0]
            if ctrl in self.paths:
                with open(f"{self.paths[ctrl]}/{key}", "w") as f:
                    f.write(value)
            elif "" in self.paths and (kv := _v2_value(key, value, limits)):
                v2[kv[0]] = kv[1]
        for name, value in v2.items():
            with open(f"{self.paths['']}/{name}", "w") as f:
                f.write(value)


def of_pid(pid: int, name: str) -> Cgroups:
    """The cgroups of container `name` whose init is `pid` (cut at its lxc.payload.<name> level)."""
    payload = re.compile(rf"^(.*?/lxc\.payload\.{re.escape(name)}(?:-\d+)?)(?:/|$)")
    paths = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if m := payload.match(path):
                path = m.group(1)
            if not ctrls:
                if (root := v2_root()) is not None:
                    paths[""] = root + path
                continue
            for ctrl in ctrls.split(","):
                if not ctrl.startswith("name="):
                    paths[ctrl] = f"{ROOT}/{ctrl}{path}"
    return Cgroups(paths)


_HIERARCHIES: dict[frozenset, str] | None = None


def _hierarchy_mounts() -> dict[frozenset, str]:
    """v1 hierarchy (its controllers and name=) -> where it is mounted; frozenset() -> the v2 mount."""
    global _HIERARCHIES
    if _HIERARCHIES is None:
        found: dict[frozenset, str] = {}
        with open("/proc/cgroups") as f:
            known = {line.split()[0] for line in f if not line.startswith("#")}
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                sep = fields.index("-")
                fstype, options = fields[sep + 1], fields[sep + 3]
                if fstype == "cgroup2":
                    found.setdefault(frozenset(), fields[4])
                elif fstype == "cgroup":
                    opts = frozenset(o for o in options.split(",") if o in known or o.startswith("name="))
                    found.setdefault(opts, fields[4])
        _HIERARCHIES = found
    return _HIERARCHIES


def attach_dirs(pid: int, name: str) -> tuple[list[str], str | None]:
    """Where a command run in container `name` (init `pid`) goes, as liblxc's attach puts it: the
    container's lxc.payload.<name> directory in every v1 hierarchy (named ones included), and in
    the v2 hierarchy its `.lxc` leaf (None when there is none). Raises OSError/KeyError when a
    hierarchy of the container is not mounted here."""
    payload = re.compile(rf"^(.*?/lxc\.payload\.{re.escape(name)}(?:-\d+)?)(?:/|$)")
    mounts = _hierarchy_mounts()
    v1, v2 = [], None
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if not (m := payload.match(path)):
                raise KeyError(f"{path} is not a payload cgroup of {name}")
            if ctrls:
                v1.append(mounts[frozenset(ctrls.split(","))] + m.group(1))
            elif frozenset() in mounts:
                v2 = f"{mounts[frozenset()]}{m.group(1)}/.lxc"
    return v1, v2
