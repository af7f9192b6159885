"""Static facts about the host for GET /1.0 `environment` (read once)."""
from __future__ import annotations

import functools
import os
import platform
import socket


@functools.cache
def os_release() -> tuple[str, str]:
    data = {}
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    data[k] = v.strip('"')
    except OSError:
        pass
    return data.get("NAME", "Linux"), data.get("VERSION_ID", "")


@functools.cache
def liblxc_version() -> str:
    try:
        import lxc
        return getattr(lxc, "version", "") or ""
    except ImportError:
        return ""


def architectures() -> list[str]:
    machine = platform.machine()
    return {"x86_64": ["x86_64", "i686"], "aarch64": ["aarch64", "armv7l"]}.get(machine, [machine])


def kernel_features() -> dict[str, str]:
    return {"idmapped_mounts": "true", "netnsid_getifaddrs": "true", "seccomp_listener": "true",
            "seccomp_listener_continue": "true", "shiftfs": "false", "uevent_injection": "true",
            "unpriv_fscaps": "true"}


def lxc_features() -> dict[str, str]:
    cgroup2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers") or os.path.exists("/sys/fs/cgroup/unified")
    return {"cgroup2": str(cgroup2).lower(), "devpts_fd": "true", "idmapped_mounts_v2": "true",
            "mount_injection_file": "true", "network_gateway_device_route": "true", "network_ipvlan": "true",
            "network_l2proxy": "true", "network_phys_macvlan_mtu": "true", "network_veth_router": "true",
            "pidfd": "true", "seccomp_allow_deny_syntax": "true", "seccomp_notify": "true",
            "seccomp_proxy_send_notify_fd": "true"}


def environment(*, certificate: str, fingerprint: str, addresses: list[str], storage: str,
                storage_version: str, storage_drivers: list[dict], server_name: str,
                clustered: bool = False, drivers: dict | None = None) -> dict:
    """`drivers`: LXD's "driver"/"driver_version" (and how VMs run), made by the caller."""
    uname = os.uname()
    os_name, os_version = os_release()
    return {
        "addresses": addresses,
        "architectures": architectures(),
        "certificate": certificate,
        "certificate_fingerprint": fingerprint,
        **(drivers or {"driver": "lxc", "driver_version": liblxc_version()}),
        "firewall": "nftables",
        "kernel": uname.sysname,
        "kernel_architecture": uname.machine,
        "kernel_features": kernel_features(),
        "kernel_version": uname.release,
        "lxc_features": lxc_features(),
        "os_name": os_name,
        "os_version": os_version,
        "project": "default",
        "server": "lxd",
        "server_clustered": clustered,
        "server_event_mode": "full-mesh",
        "server_name": server_name or socket.gethostname(),
        "server_pid": os.getpid(),
        "server_version": "5.0.2",
        "storage": storage,
        "storage_version": storage_version,
        "storage_supported_drivers": storage_drivers,
    }


# ---- cgroups: which controllers this host has, and where ----------------------------------------

CGROUP_ROOT = "/sys/fs/cgroup"


def _read_line(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def v2_root() -> str | None:
    for path in (CGROUP_ROOT, f"{CGROUP_ROOT}/unified"):
        if os.path.exists(f"{path}/cgroup.controllers"):
            return path
    return None


def v2_controllers() -> set[str]:
    root = v2_root()
    return set(_read_line(f"{root}/cgroup.controllers").split()) if root else set()


def v1_controllers() -> set[str]:
    found = set()
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, _ = line.rstrip("\n").split(":", 2)
            found.update(c for c in ctrls.split(",") if c and not c.startswith("name="))
    return found


def has_swap_accounting() -> bool:
    if "memory" in v1_controllers():
        return os.path.exists(f"{CGROUP_ROOT}/memory/memory.memsw.limit_in_bytes")
    return "memory" in v2_controllers()

