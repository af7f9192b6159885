"""Render a liblxc container config from an InstanceSpec (LXD config keys and devices)."""
from __future__ import annotations

import os
import re

from corral.config.rawlxc import check_shape as check_raw_lxc
from corral.config.keys import is_true, parse_size, valid_key_name
from corral.instance.drivers import cgroups
from corral.instance.drivers.base import InstanceSpec

LXCFS_PROC = "/var/lib/lxcfs/proc"
LXCFS_FILES = ("cpuinfo", "meminfo", "stat", "uptime", "loadavg", "diskstats", "swaps")
# The device nodes LXD lets every container use (cgroup devices allow-list).
ALLOWED_DEVICES = ("c *:* m", "b *:* m", "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 1:3 rwm",
                   "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 136:* rwm",
                   "c 10:229 rwm", "c 10:200 rwm")
DEFAULT_CPU_SHARES = "1024"


def _host_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise ValueError("MemTotal missing from /proc/meminfo")


def _memory_limit(value: str) -> int:
    if value.endswith("%"):
        return int(_host_memory() * float(value[:-1]) / 100)
    return parse_size(value)


def _cpuset(value: str) -> str:
    """limits.cpu: a count ("2": the first two usable CPUs) or a set ("0-1", "0,2")."""
    if re.fullmatch(r"\d+", value):
        count = int(value)
        usable = sorted(os.sched_getaffinity(0))
        if count < 1:
            raise ValueError(f'Invalid limits.cpu "{value}"')
        return ",".join(str(c) for c in usable[:count])
    if not re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", value):
        raise ValueError(f'Invalid limits.cpu "{value}"')
    return value


def _host_cpuset() -> str:
    return ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))


def cgroup_limits(config: dict[str, str], reset: bool = False) -> dict[str, str]:
    """limits.* as v1 cgroup file -> value. With reset, unset limits come back as their defaults
    (for live updates that remove a limit)."""
    out: dict[str, str] = {}
    swap = cgroups.has_swap_accounting()
    mem = config.get("limits.memory", "")
    if mem:
        limit = str(_memory_limit(mem))
        if config.get("limits.memory.enforce", "hard") == "soft":
            out["memory.soft_limit_in_bytes"] = limit
            if reset:
                out["memory.limit_in_bytes"] = cgroups.UNLIMITED
        else:
            out["memory.limit_in_bytes"] = limit
            if reset:
                out["memory.soft_limit_in_bytes"] = cgroups.UNLIMITED
        no_swap = not is_true(config.get("limits.memory.swap"), True)
        if swap and no_swap and "memory.limit_in_bytes" in out:
            out["memory.memsw.limit_in_bytes"] = out["memory.limit_in_bytes"]
        elif swap and reset:
            out["memory.memsw.limit_in_bytes"] = cgroups.UNLIMITED
    elif reset:
        out["memory.limit_in_bytes"] = out["memory.soft_limit_in_bytes"] = cgroups.UNLIMITED
        if swap:
            out["memory.memsw.limit_in_bytes"] = cgroups.UNLIMITED
    # LXD: swappiness 0 without swap, else 60 - 10 + limits.memory.swap.priority (cgroup v1 only).
    swap_prio = config.get("limits.memory.swap.priority", "")
    if not is_true(config.get("limits.memory.swap"), True):
        out["memory.swappiness"] = "0"
    elif swap_prio:
        out["memory.swappiness"] = str(50 + int(swap_prio))
    elif reset:
        out["memory.swappiness"] = "60"
    cpu = config.get("limits.cpu", "")
    if cpu or reset:
        out["cpuset.cpus"] = _cpuset(cpu) if cpu else _host_cpuset()
    allowance = config.get("limits.cpu.allowance", "")
    priority = config.get("limits.cpu.priority", "")
    pct = re.fullmatch(r"(\d+)%", allowance)
    slice_ = re.fullmatch(r"(\d+)ms/(\d+)ms", allowance)
    if allowance and not (pct or slice_):
        raise ValueError(f'Invalid limits.cpu.allowance "{allowance}"')
    if allowance or priority:
        # LXD's cgroup.ParseCPU: a share of 1024 (or the percentage of it), less 10 - priority.
        shares = -(10 - (int(priority) if priority else 10))
        shares += 1024 * int(pct[1]) // 100 if pct else 1024
        out["cpu.shares"] = str(max(2, shares))
        if slice_:
            out["cpu.cfs_quota_us"], out["cpu.cfs_period_us"] = str(int(slice_[1]) * 1000), str(int(slice_[2]) * 1000)
        elif reset:
            out["cpu.cfs_quota_us"] = cgroups.UNLIMITED
    elif reset:
        out["cpu.shares"], out["cpu.cfs_quota_us"] = DEFAULT_CPU_SHARES, cgroups.UNLIMITED
    procs = config.get("limits.processes", "")
    if procs or reset:
        out["pids.max"] = str(int(procs)) if procs else "max"
    return out


def _escape(path: str) -> str:
    """A path in an fstab-style mount entry (liblxc decodes these octal escapes as getmntent does)."""
    return (path.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011")
            .replace("\n", "\\012"))


class UnsafeConfig(ValueError):
    """A generated line would not be one liblxc line: refuse to write the config."""


def _checked(lines: list[str]) -> list[str]:
    for line in lines:
        if any(c in line for c in "\n\r\0"):
            raise UnsafeConfig(f"refusing to write a liblxc config line with a control character: {line!r}")
    return lines


def _env_value(value: str) -> str:
    # liblxc has no escaping: a newline would start a new config line.
    return value.replace("\r\n", " ").replace("\n", " ").replace("\r", " ").replace("\0", "")


def render(spec: InstanceSpec) -> str:
    config = spec.config
    privileged = spec.idmap is None
    lines = [
        f"lxc.uts.name = {spec.hostname or spec.name}",
        f"lxc.rootfs.path = dir:{spec.rootfs}",
        "lxc.arch = linux64",
        "lxc.log.level = warn",
        "lxc.autodev = 1",
        "lxc.tty.max = 0",
        "lxc.pty.max = 1024",
        # No lxc.signal.halt (as LXD): liblxc then sends SIGRTMIN+3 to an init that blocks it (systemd)
        # and SIGPWR to any other.
        "lxc.apparmor.profile = unconfined",
        "lxc.apparmor.allow_incomplete = 1",
        "lxc.cap.drop = sys_time sys_module sys_rawio mac_admin mac_override",
        "lxc.mount.auto = proc:mixed sys:mixed cgroup:mixed:force",
        "lxc.mount.entry = mqueue dev/mqueue mqueue rw,relatime,create=dir,optional 0 0",
        "lxc.mount.entry = /sys/fs/fuse/connections sys/fs/fuse/connections none bind,optional 0 0",
    ]
    prefix = "lxc.cgroup" if "devices" in cgroups.v1_controllers() else "lxc.cgroup2"
    lines += [f"{prefix}.devices.deny = a"] + [f"{prefix}.devices.allow = {d}" for d in ALLOWED_DEVICES]
    if spec.log_file:
        lines.append(f"lxc.log.file = {spec.log_file}")
    if spec.console_log_file:
        lines.append(f"lxc.console.logfile = {spec.console_log_file}")
    if not privileged:
        lines += [f"lxc.idmap = {m}" for entry in spec.idmap for m in entry.to_lxc()]
        lines.append("lxc.rootfs.options = idmap=container")
    if is_true(config.get("security.nesting")):
        lines += ["lxc.apparmor.allow_nesting = 1",
                  "lxc.mount.entry = /sys/kernel/security sys/kernel/security none bind,optional 0 0"]
    if os.path.isdir(LXCFS_PROC):
        lines += [f"lxc.mount.entry = {LXCFS_PROC}/{f} proc/{f} none bind,optional 0 0" for f in LXCFS_FILES]
    lines += [f"lxc.mount.entry = {_escape(src)} {_escape(dst.lstrip('/'))} none {opts} 0 0"
              for src, dst, opts in spec.mounts]
    lines += spec.extra
    lines += cgroups.config_lines(cgroup_limits(config))
    for key in sorted(config):
        if key.startswith(("limits.kernel.", "linux.sysctl.")) and config[key]:
            if not valid_key_name(key):
                raise UnsafeConfig(f"invalid key {key!r}")
            # limits.kernel.NAME -> lxc.prlimit.NAME; linux.sysctl.KEY -> lxc.sysctl.KEY (as LXD)
            item = "lxc.prlimit." if key.startswith("limits.kernel.") else "lxc.sysctl."
            lines.append(f"{item}{key.split('.', 2)[2]} = {config[key]}")
        if key.startswith("environment."):
            if not valid_key_name(key):
                raise UnsafeConfig(f"invalid environment key {key!r}")
            lines.append(f"lxc.environment = {key[len('environment.'):]}={_env_value(config[key])}")
    raw = config.get("raw.lxc", "").strip()
    if raw:
        check_raw_lxc(raw)   # validated (LXD's rules, liblxc) when set; its shape checked again here
    return "\n".join(_checked(lines) + ([raw] if raw else [])) + "\n"
