"""Instance (and profile) configuration keys, as in LXD 5.0."""
import re

from corral.config.network import parse_ifname, parse_mac
from corral.config.keys import (
    INSTANCE, Key, declare, one_of, parse_bool, parse_expiry, parse_cpuset, parse_int, parse_size_or_percent,
    parse_uint,
)

_RAW_LXC_LINE = re.compile(r"\s*lxc\.[A-Za-z0-9_.-]+\s*=[^\x00]*")
# Keys LXD refuses in raw.lxc (lxcValidConfig): the daemon owns logging and the container's lifetime.
_RAW_LXC_FORBIDDEN = ("lxc.logfile", "lxc.log.file", "lxc.syslog", "lxc.log.syslog", "lxc.ephemeral")


def parse_raw_lxc(v: str) -> str:
    """raw.lxc: liblxc config lines, each "lxc.KEY = VALUE" (or blank, or a # comment)."""
    for n, line in enumerate(v.replace("\r\n", "\n").split("\n"), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if not _RAW_LXC_LINE.fullmatch(line) or "\r" in line:
            raise ValueError(f'line {n} is not a liblxc "lxc.KEY = VALUE" setting')
        key = text.split("=", 1)[0].strip()
        if key in _RAW_LXC_FORBIDDEN:
            raise ValueError(f'line {n}: "{key}" can\'t be set in raw.lxc')
    return v


declare(
    Key("limits.memory", INSTANCE, parse_size_or_percent),
    Key("limits.memory.swap", INSTANCE, parse_bool, default="true"),
    Key("limits.memory.enforce", INSTANCE, one_of("hard", "soft"), default="hard"),
    Key("limits.cpu", INSTANCE, parse_cpuset),
    Key("limits.cpu.allowance", INSTANCE),
    Key("limits.cpu.priority", INSTANCE, parse_uint),
    Key("limits.processes", INSTANCE, parse_uint),
    Key("limits.kernel.*", INSTANCE),
    Key("security.privileged", INSTANCE, parse_bool, default="false", live=False),
    Key("security.nesting", INSTANCE, parse_bool, default="false", live=False),
    Key("security.protection.delete", INSTANCE, parse_bool, default="false"),
    Key("security.idmap.isolated", INSTANCE, parse_bool, default="false", live=False),
    Key("security.idmap.size", INSTANCE, parse_uint, default="65536", live=False),
    Key("security.devlxd", INSTANCE, parse_bool, default="true", live=False),
    Key("security.devlxd.images", INSTANCE, parse_bool, default="false"),
    Key("boot.autostart", INSTANCE, parse_bool),
    Key("boot.autostart.delay", INSTANCE, parse_uint, default="0"),
    Key("boot.autostart.priority", INSTANCE, parse_int, default="0"),
    Key("boot.stop.priority", INSTANCE, parse_int, default="0"),
    Key("boot.host_shutdown_timeout", INSTANCE, parse_uint, default="30"),
    Key("snapshots.schedule", INSTANCE),
    Key("snapshots.schedule.stopped", INSTANCE, parse_bool, default="false"),
    Key("snapshots.pattern", INSTANCE, default="snap%d"),
    Key("snapshots.expiry", INSTANCE, parse_expiry),
    Key("raw.lxc", INSTANCE, parse_raw_lxc, live=False),
    Key("raw.idmap", INSTANCE, live=False),
    Key("linux.kernel_modules", INSTANCE),
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
