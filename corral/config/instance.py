"""Instance (and profile) configuration keys, as in LXD 5.0."""
import re

from corral.config.network import parse_ifname, parse_mac
from corral.config.keys import (
    INSTANCE, Key, KeyRefused, declare, not_implemented, not_on_host, one_of, parse_bool, parse_expiry, parse_cpuset,
    parse_int, parse_size, parse_size_or_percent, parse_uint,
)
from corral.config.rawlxc import parse_raw_lxc
from corral.config.schedule import parse_schedule, parse_snapshot_pattern


def parse_raw_idmap(v: str) -> str:
    from corral.rawidmap import parse_raw_idmap as check
    return check(v)

_EVACUATE = one_of("auto", "migrate", "live-migrate", "stop")


def _evacuate_mode(v: str) -> str:
    """cluster.evacuate: what evacuating the instance's member does to it (corral/cluster/evacuate.py).
    LXD's live-migrate moves a running container with its memory (CRIU): not built."""
    _EVACUATE(v)
    if v == "live-migrate":
        raise KeyRefused("not implemented: cluster.evacuate=live-migrate (live migration needs CRIU)")
    return v


def parse_memory(v: str):
    """limits.memory: a size or a percentage of the host's memory, not zero (LXD's words)."""
    out = parse_size_or_percent(v)
    if out == 0:
        raise ValueError("Memory limit can't be 0")
    return out


def parse_allowance(v: str) -> str:
    """limits.cpu.allowance: a share ("50%") or a time slice ("25ms/100ms")."""
    if m := re.fullmatch(r"(\d+)%", v):
        if int(m[1]) <= 0:
            raise ValueError(f'Invalid CPU allowance "{v}"')
        return v
    if m := re.fullmatch(r"(\d+)ms/(\d+)ms", v):
        if int(m[1]) <= 0 or int(m[2]) <= 0:
            raise ValueError(f'Invalid CPU allowance "{v}"')
        return v
    raise ValueError(f'Invalid CPU allowance "{v}" (a percentage or "Nms/Mms")')


def parse_priority(v: str) -> int:
    """validate.IsPriority: an integer from 0 to 10."""
    n = parse_int(v)
    if not 0 <= n <= 10:
        raise ValueError("Invalid value for a limit (must be between 0 and 10)")
    return n


# lxc.prlimit names (limits.kernel.<name>): getrlimit(2)'s resources, as LXD's allow-list.
PRLIMITS = ("as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
            "rss", "rtprio", "rttime", "sigpending", "stack")


def parse_swap_priority(v: str) -> int:
    n = parse_priority(v)
    from corral.hostinfo import v1_controllers
    if "memory" not in v1_controllers():
        raise ValueError("not supported on this host: limits.memory.swap.priority needs the cgroup v1 memory "
                         "controller (cgroup v2 has no per-cgroup swappiness)")
    return n


def parse_prlimit(v: str) -> str:
    """limits.kernel.*: "unlimited", N, or SOFT:HARD (each N or unlimited)."""
    parts = v.split(":")
    if len(parts) > 2 or not all(p == "unlimited" or p.isdigit() for p in parts):
        raise ValueError(f'Invalid limit "{v}" (N, "unlimited" or SOFT:HARD)')
    return v


def parse_sysctl_value(v: str) -> str:
    if any(c in v for c in "\n\r\0"):
        raise ValueError("sysctl values are one line")
    return v


def parse_kernel_modules(v: str) -> list[str]:
    mods = [m.strip() for m in v.split(",") if m.strip()]
    for m in mods:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", m):
            raise ValueError(f'Invalid kernel module name "{m}"')
    return mods


def parse_yaml(v: str):
    import yaml
    try:
        return yaml.safe_load(v)
    except yaml.YAMLError as e:
        raise ValueError(f"Invalid YAML: {str(e).splitlines()[0]}") from None


def parse_cloud_config(v: str) -> str:
    """validate.IsCloudInitUserData: "#cloud-config" documents must be YAML; scripts are anything."""
    if v.startswith("#cloud-config"):
        parse_yaml(v)
    return v


_VM = "for virtual machines"
_NO_CRIU = "live migration and stateful snapshots need CRIU, which Corral does not drive"
_NO_NVIDIA = "the NVIDIA container runtime (libnvidia-container) is not part of Corral"


def _cgroup_controllers() -> set[str]:
    """The cgroup controllers the host has mounted (v1 hierarchies and the v2 tree)."""
    from corral import hostinfo as cgroups
    try:
        return set(cgroups.v1_controllers()) | set(cgroups.v2_controllers())
    except OSError:
        return set()


def _no_controller(ctrl: str, name: str, what: str, parse) -> Key:
    """Refused: not possible on this host when the kernel lacks the cgroup controller, else not
    implemented."""
    if ctrl not in _cgroup_controllers():
        return not_on_host(name, INSTANCE, f"the host has no {ctrl} cgroup controller mounted", parse)
    return not_implemented(name, INSTANCE, what, parse)


def parse_raw_qemu(v: str) -> list[str]:
    """Extra QEMU command-line arguments (split as a shell would, no control characters)."""
    import shlex
    if any(ord(c) < 32 and c not in "\t\n" for c in v):
        raise ValueError("Invalid QEMU arguments: control characters")
    try:
        return shlex.split(v)
    except ValueError as e:
        raise ValueError(f"Invalid QEMU arguments: {e}") from None


def _vm(name: str, parse=str, default: str = "") -> Key:
    return not_implemented(name, INSTANCE, "for virtual machines", parse, default)


declare(
    Key("limits.memory", INSTANCE, parse_memory),
    Key("limits.memory.swap", INSTANCE, parse_bool, default="true"),
    Key("limits.memory.enforce", INSTANCE, one_of("hard", "soft"), default="hard"),
    Key("limits.cpu", INSTANCE, parse_cpuset),
    Key("limits.cpu.allowance", INSTANCE, parse_allowance, default="100%"),
    Key("limits.cpu.priority", INSTANCE, parse_priority, default="10"),
    not_implemented("limits.disk.priority", INSTANCE, "block I/O weights", parse_priority),
    _no_controller("net_prio", "limits.network.priority", "per-instance network priority (net_prio)",
                   parse_priority),
    Key("limits.memory.swap.priority", INSTANCE, parse_swap_priority, default="10"),
    not_implemented("limits.memory.hugepages", INSTANCE, "hugetlbfs in containers", parse_bool, "false"),
    *(_no_controller("hugetlb", f"limits.hugepages.{size}", "hugetlb cgroup limits", parse_size)
      for size in ("64KB", "1MB", "2MB", "1GB")),
    Key("limits.processes", INSTANCE, parse_uint),
    *(Key(f"limits.kernel.{n}", INSTANCE, parse_prlimit, live=False) for n in PRLIMITS),
    Key("linux.sysctl.*", INSTANCE, parse_sysctl_value, live=False),
    Key("linux.kernel_modules", INSTANCE, parse_kernel_modules),
    Key("security.privileged", INSTANCE, parse_bool, default="false", live=False),
    Key("security.nesting", INSTANCE, parse_bool, default="false", live=False),
    Key("security.protection.delete", INSTANCE, parse_bool, default="false"),
    not_implemented("security.protection.shift", INSTANCE, "Corral never shifts a container's filesystem "
                    "on disk; idmapped mounts leave it untouched", parse_bool, "false"),
    Key("security.idmap.isolated", INSTANCE, parse_bool, default="false", live=False),
    Key("security.idmap.size", INSTANCE, parse_uint, default="65536", live=False),
    not_implemented("security.idmap.base", INSTANCE, "a fixed host id base for the container's map",
                    parse_uint),
    Key("security.devlxd", INSTANCE, parse_bool, default="true"),
    Key("security.devlxd.images", INSTANCE, parse_bool, default="false"),
    Key("security.agent.metrics", INSTANCE, parse_bool, default="true"),
    Key("security.secureboot", INSTANCE, parse_bool, default="true", live=False),
    not_implemented("security.syscalls.allow", INSTANCE, "seccomp allow lists"),
    not_implemented("security.syscalls.deny", INSTANCE, "seccomp deny lists"),
    not_implemented("security.syscalls.deny_compat", INSTANCE, "seccomp compat-syscall filters", parse_bool,
                    "false"),
    not_implemented("security.syscalls.deny_default", INSTANCE, "switching off liblxc's default seccomp "
                    "policy", parse_bool, "true"),
    *(not_implemented(f"security.syscalls.intercept.{n}", INSTANCE, "seccomp system call interception",
                      parse_bool, "false")
      for n in ("bpf", "bpf.devices", "mknod", "mount", "mount.shift", "sched_setscheduler", "setxattr")),
    not_implemented("security.syscalls.intercept.mount.allowed", INSTANCE, "seccomp system call interception"),
    not_implemented("security.syscalls.intercept.mount.fuse", INSTANCE, "seccomp system call interception"),
    Key("boot.autostart", INSTANCE, parse_bool),
    Key("boot.autostart.delay", INSTANCE, parse_int, default="0"),
    Key("boot.autostart.priority", INSTANCE, parse_int, default="0"),
    not_implemented("boot.stop.priority", INSTANCE, "corrald leaves containers running when it stops; there "
                    "is no host-shutdown stop sequence to order", parse_int, "0"),
    not_implemented("boot.host_shutdown_timeout", INSTANCE, "corrald leaves containers running when it "
                    "stops; there is no host-shutdown stop sequence", parse_int, "30"),
    Key("cluster.evacuate", INSTANCE, _evacuate_mode, default="auto"),
    _vm("agent.nic_config", parse_bool, "false"),
    not_implemented("migration.stateful", INSTANCE, _NO_CRIU, parse_bool, "false"),
    not_implemented("migration.incremental.memory", INSTANCE, _NO_CRIU, parse_bool, "false"),
    not_implemented("migration.incremental.memory.goal", INSTANCE, _NO_CRIU, parse_uint, "70"),
    not_implemented("migration.incremental.memory.iterations", INSTANCE, _NO_CRIU, parse_uint, "10"),
    not_on_host("nvidia.runtime", INSTANCE, _NO_NVIDIA, parse_bool, "false"),
    not_on_host("nvidia.driver.capabilities", INSTANCE, _NO_NVIDIA, default="compute,utility"),
    not_on_host("nvidia.require.cuda", INSTANCE, _NO_NVIDIA),
    not_on_host("nvidia.require.driver", INSTANCE, _NO_NVIDIA),
    Key("snapshots.schedule", INSTANCE, parse_schedule),
    Key("snapshots.schedule.stopped", INSTANCE, parse_bool, default="false"),
    Key("snapshots.pattern", INSTANCE, parse_snapshot_pattern, default="snap%d"),
    Key("snapshots.expiry", INSTANCE, parse_expiry),
    Key("raw.lxc", INSTANCE, parse_raw_lxc, live=False),
    Key("raw.idmap", INSTANCE, parse_raw_idmap, live=False),
    not_implemented("raw.apparmor", INSTANCE, "Corral does not generate per-instance AppArmor profiles"),
    not_implemented("raw.seccomp", INSTANCE, "raw seccomp policies"),
    Key("raw.qemu", INSTANCE, parse_raw_qemu, live=False),
    not_implemented("raw.qemu.conf", INSTANCE, "Corral starts QEMU without a config file (QEMU soft-deprecated "
                    "it); use raw.qemu"),
    Key("cloud-init.network-config", INSTANCE, parse_yaml),
    Key("cloud-init.user-data", INSTANCE, parse_cloud_config),
    Key("cloud-init.vendor-data", INSTANCE, parse_cloud_config),
    Key("cloud-init.*", INSTANCE),
    Key("user.*", INSTANCE),
    Key("environment.*", INSTANCE),
    Key("image.*", INSTANCE),
    # Values the daemon records and later writes into liblxc's config and dnsmasq's hosts files.
    Key("volatile.*.hwaddr", INSTANCE, parse_mac),
    Key("volatile.*.host_name", INSTANCE, parse_ifname),
    Key("volatile.*.name", INSTANCE, parse_ifname),
    Key("volatile.*", INSTANCE),
)
