"""Which instance keys apply to which instance type (LXD 5.0.2's "condition" column: container,
unprivileged container, virtual machine). A key of the other type is refused as LXD's
ConfigKeyChecker refuses it: as an unknown key for that type."""
from __future__ import annotations

import fnmatch

from corral.config.keys import ConfigError

CONTAINER_ONLY = (
    "limits.cpu.allowance", "limits.cpu.priority", "limits.hugepages.*", "limits.kernel.*",
    "limits.memory.enforce", "limits.memory.swap", "limits.memory.swap.priority", "limits.processes",
    "linux.kernel_modules", "linux.sysctl.*", "migration.incremental.memory*", "nvidia.*", "raw.idmap", "raw.lxc",
    "raw.seccomp", "security.devlxd.images", "security.idmap.*", "security.nesting", "security.privileged",
    "security.protection.shift", "security.syscalls.*", "volatile.idmap.*", "volatile.last_state.idmap",
)
VM_ONLY = ("agent.nic_config", "limits.memory.hugepages", "migration.stateful", "raw.qemu", "raw.qemu.conf",
           "security.agent.metrics", "security.secureboot", "volatile.apply_nvram", "volatile.vsock_id")


def applies(name: str, itype: str) -> bool:
    other = VM_ONLY if itype == "container" else CONTAINER_ONLY
    return not any(fnmatch.fnmatchcase(name, pat) for pat in other)


def check(config: dict, itype: str, prefix: str = "Failed creating instance record: ") -> None:
    """Refuse the first key of `config` that does not apply to `itype` (LXD's text, which at creation
    comes with its "Failed creating instance record: ")."""
    for name in config:
        if not applies(name, itype):
            raise ConfigError(f"{prefix}Unknown configuration key: {name}")
