"""raw.lxc: liblxc config lines, checked as LXD checks them when the key is set.

1. Each line is "lxc.KEY = VALUE" (or blank, or a # comment).
2. Keys LXD refuses (lxcValidConfig): the daemon owns logging and the container's lifetime,
   process limits go through limits.kernel.*, and lxc.net.* only for per-interface addresses.
3. Key names from before LXC 2.1's rename (lxc-update-config's table) are refused with the new name.
4. liblxc itself loads every line into a throwaway container object (LXD: go-lxc SetConfigItem on
   the instance's config before it is stored): what liblxc refuses is refused.
"""
from __future__ import annotations

import concurrent.futures
import re
import shutil
import tempfile

_LINE = re.compile(r"\s*lxc\.[A-Za-z0-9_.-]+\s*=[^\x00]*")
_FORBIDDEN = ("lxc.logfile", "lxc.log.file", "lxc.syslog", "lxc.log.syslog", "lxc.ephemeral")

# liblxc 2.1 renamed these (lxc-update-config): old exact name -> new name.
OLD_NAMES = {
    "lxc.id_map": "lxc.idmap", "lxc.pts": "lxc.pty.max", "lxc.tty": "lxc.tty.max", "lxc.devttydir": "lxc.tty.dir",
    "lxc.aa_profile": "lxc.apparmor.profile", "lxc.aa_allow_incomplete": "lxc.apparmor.allow_incomplete",
    "lxc.se_context": "lxc.selinux.context", "lxc.mount": "lxc.mount.fstab", "lxc.utsname": "lxc.uts.name",
    "lxc.seccomp": "lxc.seccomp.profile", "lxc.console": "lxc.console.path", "lxc.haltsignal": "lxc.signal.halt",
    "lxc.rebootsignal": "lxc.signal.reboot", "lxc.stopsignal": "lxc.signal.stop", "lxc.syslog": "lxc.log.syslog",
    "lxc.loglevel": "lxc.log.level", "lxc.logfile": "lxc.log.file", "lxc.init_cmd": "lxc.init.cmd",
    "lxc.init_uid": "lxc.init.uid", "lxc.init_gid": "lxc.init.gid", "lxc.rootfs": "lxc.rootfs.path",
    "lxc.rootfs.backend": None, "lxc.network": "lxc.net",
}


def renamed(key: str) -> str | None:
    """The post-2.1 name of an old liblxc key (lxc.network.0.link -> lxc.net.0.link), or None."""
    if key in OLD_NAMES:
        return OLD_NAMES[key] or "(removed: the rootfs type comes from lxc.rootfs.path)"
    if key.startswith("lxc.limit."):
        return "lxc.prlimit." + key[len("lxc.limit."):]
    if key.startswith("lxc.network."):
        rest = key[len("lxc.network."):]
        m = re.fullmatch(r"(\d+)\.(ipv[46])", rest)
        if m:
            return f"lxc.net.{m[1]}.{m[2]}.address"
        return f"lxc.net.{rest}" if re.match(r"\d+\.", rest) else f"lxc.net.[i].{rest}"
    return None


def _lines(v: str):
    for n, line in enumerate(v.replace("\r\n", "\n").split("\n"), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if not _LINE.fullmatch(line) or "\r" in line:
            raise ValueError(f'line {n} is not a liblxc "lxc.KEY = VALUE" setting')
        key, value = (p.strip() for p in text.split("=", 1))
        yield n, key, value


def check_shape(v: str) -> str:
    """What the config writer checks again for any stored value: one setting per line, and not the
    keys the daemon owns (logging, the container's lifetime)."""
    for n, key, _ in _lines(v):
        if key in _FORBIDDEN:
            raise ValueError(f'line {n}: "{key}" can\'t be set in raw.lxc')
    return v


def check_lines(v: str) -> list[tuple[int, str, str]]:
    """The (line, key, value) settings of a raw.lxc value; ValueError in LXD's words (no liblxc)."""
    out = []
    for n, key, value in _lines(v):
        new = renamed(key)
        if new is not None:
            raise ValueError(f'line {n}: "{key}" is a liblxc key name from before LXC 2.1; use "{new}"')
        if key in _FORBIDDEN:
            raise ValueError(f'line {n}: "{key}" can\'t be set in raw.lxc')
        if key.startswith("lxc.prlimit."):
            raise ValueError(f'line {n}: Process limits should be set via "limits.kernel.[limit name]" and not '
                             f'directly via "lxc.prlimit.[limit name]"')
        if key.startswith("lxc.net."):
            f = key.split(".")
            if not (len(f) == 5 and f[3] in ("ipv4", "ipv6") and f[4] in ("address", "gateway")):
                raise ValueError(f'line {n}: Only interface-specific ipv4/ipv6 lxc.net. keys are allowed')
        out.append((n, key, value))
    return out


def _liblxc_refuses(settings: list[tuple[int, str, str]]) -> str | None:
    import _lxc   # liblxc's python binding (package "lxc")
    tmp = tempfile.mkdtemp(prefix="corral-rawlxc-")
    try:
        probe = _lxc.Container("raw-lxc-check", tmp)
        for n, key, value in settings:
            if not _lxc.Container.set_config_item(probe, key, value):
                return f'line {n}: liblxc refuses "{key} = {value}"'
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="rawlxc")


def liblxc_check(settings: list[tuple[int, str, str]]) -> None:
    """Load the settings into a throwaway liblxc container object (in a worker thread: liblxc is not
    called from the event loop's thread); ValueError with what liblxc refused."""
    if not settings:
        return
    err = _pool.submit(_liblxc_refuses, settings).result(timeout=30)
    if err:
        raise ValueError(err)


def parse_raw_lxc(v: str) -> str:
    """raw.lxc's validator: the line checks, then liblxc's."""
    liblxc_check(check_lines(v))
    return v
