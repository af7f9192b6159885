"""Project restrictions: LXD 5.0's `restricted` and `restricted.*` project keys.

A project with `restricted=true` refuses, for every client (the unix socket too, as in LXD), instance
and profile configurations that reach the host: low-level keys (raw.lxc, raw.idmap outside
`restricted.idmap.*`, linux.kernel_modules, daemon-owned volatile.* keys...), privileged or nested
containers, disks not backed by a storage pool, NICs not on a managed network, device types that
pass host devices or sockets through, snapshots and backups; each per its `restricted.*` key, whose
default is the blocking value. A project with `restricted` unset or false restricts nothing.

The pure checks take a project's config; `Restrictions` (one per daemon) loads what they need and is
called from the instance create/update/snapshot/backup paths, the profile create/update paths and
project updates (a project cannot be restricted while its content breaks the restrictions).
"""
from __future__ import annotations

import os.path

from corral import config
from corral.config.keys import is_true
from corral.errors import Forbidden

# LXD's isContainerLowLevelOptionForbidden (the keys Corral knows are refused by validation anyway).
_LOWLEVEL = frozenset({"boot.host_shutdown_timeout", "linux.kernel_modules", "linux.kernel_modules.load",
                       "raw.apparmor", "raw.idmap", "raw.lxc", "raw.seccomp", "security.devlxd.images",
                       "security.idmap.base", "security.idmap.size"})
_INTERCEPT = frozenset({"security.syscalls.intercept.bpf", "security.syscalls.intercept.bpf.devices",
                        "security.syscalls.intercept.mknod", "security.syscalls.intercept.mount",
                        "security.syscalls.intercept.mount.fuse", "security.syscalls.intercept.setxattr",
                        "security.syscalls.intercept.sysinfo"})
_SAFE_VOLATILE = frozenset({"volatile.apply_template", "volatile.base_image", "volatile.last_state.power"})
# Device types allowed or refused by one block|allow key each; message as LXD's.
_DEVICE_KEYS = {
    "unix-char": ("restricted.devices.unix-char", "Unix character devices are forbidden"),
    "unix-block": ("restricted.devices.unix-block", "Unix block devices are forbidden"),
    "unix-hotplug": ("restricted.devices.unix-hotplug", "Unix hotplug devices are forbidden"),
    "infiniband": ("restricted.devices.infiniband", "Infiniband devices are forbidden"),
    "gpu": ("restricted.devices.gpu", "GPU devices are forbidden"),
    "usb": ("restricted.devices.usb", "USB devices are forbidden"),
    "pci": ("restricted.devices.pci", "PCI devices are forbidden"),
    "proxy": ("restricted.devices.proxy", "Proxy devices are forbidden"),
}


def is_restricted(pcfg: dict) -> bool:
    return is_true(pcfg.get("restricted"))


def setting(pcfg: dict, key: str) -> str:
    """A restricted.* value: the project's, or the key's (blocking) default."""
    v = pcfg.get(key, "")
    return v if v != "" else config.lookup(config.PROJECT, key).default


def lowlevel_forbidden(key: str) -> bool:
    return key in _LOWLEVEL or (key.startswith("security.syscalls.intercept") and key not in _INTERCEPT) \
        or key.startswith("raw.")


# ---- raw.idmap against restricted.idmap.uid / .gid -------------------------------------------------

def _ranges(value: str) -> list[tuple[int, int]]:
    out = []
    for item in (v.strip() for v in value.split(",")):
        if item:
            lo, _, hi = item.partition("-")
            out.append((int(lo), int(hi or lo)))
    return out


def parse_raw_idmap(value: str) -> list[tuple[str, int, int]]:
    """LXD's raw.idmap lines ("uid|gid|both HOST[-END] NS[-END]") -> (kind, first host id, last host id)."""
    out = []
    for n, line in enumerate(value.splitlines()):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3 or parts[0] not in ("uid", "gid", "both"):
            raise Forbidden(f'Invalid raw.idmap line {n + 1}: "{line.strip()}"')
        try:
            (lo, hi), = _ranges(parts[1])
        except ValueError:
            raise Forbidden(f'Invalid raw.idmap line {n + 1}: "{line.strip()}"') from None
        out.append((parts[0], lo, hi))
    return out


def _covered(lo: int, hi: int, allowed: list[tuple[int, int]]) -> bool:
    return any(a <= lo and hi <= b for a, b in allowed)


# ---- one instance or profile ---------------------------------------------------------------------

def check_entity(project: str, pcfg: dict, kind: str, name: str, cfg: dict, devices: dict) -> None:
    """Refuse (403) a container's or profile's config/devices that break a restricted project's rules.

    `kind` is "container" or "profile"; the caller decides whether the project is restricted."""
    where = f'{kind} "{name}" of project "{project}"'
    lowlevel_ok = setting(pcfg, "restricted.containers.lowlevel") == "allow"
    if kind == "profile":   # a profile may end up on either instance type, as in LXD
        lowlevel_ok = lowlevel_ok and setting(pcfg, "restricted.virtual-machines.lowlevel") == "allow"
    privilege = setting(pcfg, "restricted.containers.privilege")
    for key, value in sorted(cfg.items()):
        if not lowlevel_ok:
            if key == "raw.idmap":
                uids = _ranges(pcfg.get("restricted.idmap.uid", ""))
                gids = _ranges(pcfg.get("restricted.idmap.gid", ""))
                for i, (k, lo, hi) in enumerate(parse_raw_idmap(value)):
                    if (k in ("uid", "both") and not _covered(lo, hi, uids)) or \
                            (k in ("gid", "both") and not _covered(lo, hi, gids)):
                        raise Forbidden(f'Use of low-level "raw.idmap" element {i} on {where} is forbidden')
            elif lowlevel_forbidden(key):
                raise Forbidden(f'Use of low-level config "{key}" on {where} is forbidden')
        err = None
        if key == "security.nesting" and is_true(value) and \
                setting(pcfg, "restricted.containers.nesting") == "block":
            err = "Container nesting is forbidden"
        elif key == "security.privileged" and is_true(value) and privilege != "allow":
            err = "Privileged containers are forbidden"
        elif key.startswith("security.syscalls.intercept.") and is_true(value) and \
                setting(pcfg, "restricted.containers.interception") == "block":
            err = "Container syscall interception is forbidden"
        if err:
            raise Forbidden(f'Invalid value "{value}" for config "{key}" on {where}: {err}')
    if kind == "container" and privilege == "isolated" and not is_true(cfg.get("security.idmap.isolated")):
        raise Forbidden(f'Invalid value "{cfg.get("security.idmap.isolated", "")}" for config '
                        f'"security.idmap.isolated" on {where}: Non-isolated containers are forbidden')
    for dev_name, dev in sorted(devices.items()):
        err = device_error(pcfg, dev)
        if err:
            raise Forbidden(f'Invalid device "{dev_name}" on {where}: {err}')


def device_error(pcfg: dict, dev: dict) -> str | None:
    dtype = dev.get("type")
    if dtype in _DEVICE_KEYS:
        key, msg = _DEVICE_KEYS[dtype]
        return None if setting(pcfg, key) == "allow" else msg
    if dtype == "disk":
        if dev.get("path") == "/" and dev.get("pool"):
            return None   # the root disk
        mode = setting(pcfg, "restricted.devices.disk")
        if mode == "block":
            return "Disk devices are forbidden"
        if mode == "managed" and not dev.get("pool"):
            return "Attaching disks not backed by a pool is forbidden"
        if mode == "allow" and not dev.get("pool") and not disk_path_allowed(pcfg, dev.get("source", "")):
            return f'Disk source path "{dev.get("source", "")}" not allowed'
        return None
    if dtype == "nic":
        mode = setting(pcfg, "restricted.devices.nic")
        if mode == "block":
            return "Network devices are forbidden"
        if mode == "managed" and not dev.get("network"):
            return "Only managed network devices are allowed"
        target = dev.get("network") or dev.get("parent")
        if target and not network_allowed(pcfg, target):
            return "Network not allowed in project"
    return None


def disk_path_allowed(pcfg: dict, source: str) -> bool:
    """LXD's CheckRestrictedDevicesDiskPaths: no list allows every path; else a whole-path prefix match."""
    allowed = pcfg.get("restricted.devices.disk.paths", "")
    if not allowed:
        return True
    if not source.startswith("/"):
        return False
    # Symlinks resolved: a link under an allowed path (one a container can write to) must not lead out.
    src = os.path.realpath(source).rstrip("/") + "/"
    return any(src.startswith(os.path.realpath(p.strip()).rstrip("/") + "/") for p in allowed.split(","))


def network_allowed(pcfg: dict, network: str) -> bool:
    access = pcfg.get("restricted.networks.access", "")
    return not access or network in [n.strip() for n in access.split(",")]


def check_volatile(project: str, pcfg: dict, name: str, new: dict, current: dict) -> None:
    """Daemon-owned volatile.* keys (the idmap, for one) may not be set or changed by a client."""
    if setting(pcfg, "restricted.containers.lowlevel") == "allow":
        return
    for key, value in sorted(new.items()):
        if not key.startswith("volatile.") or key in _SAFE_VOLATILE or \
                key.endswith(".hwaddr") or key.endswith(".apply_quota"):
            continue
        if key not in current:
            raise Forbidden(f'Setting "{key}" on container "{name}" in project "{project}" is forbidden')
        if current[key] != value:
            raise Forbidden(f'Changing "{key}" on container "{name}" in project "{project}" is forbidden')


def expand(profiles: list[dict], cfg: dict, devices: dict) -> tuple[dict, dict]:
    from corral.instance.manager import expand as _expand
    return _expand(profiles, cfg, devices)


class Restrictions:
    """The daemon's entry points; each is a no-op for a project without `restricted=true`."""

    def __init__(self, daemon):
        self.d = daemon

    async def _config(self, project: str) -> dict | None:
        p = await self.d.projects.get(project)
        return p["config"] if p is not None and is_restricted(p["config"]) else None

    async def check_instance(self, project: str, name: str, cfg: dict, devices: dict, profiles: list[dict],
                             *, current: dict | None = None, copy_of: dict | None = None) -> None:
        """A new (current=None) or changed instance, with the profiles it will use (in order).

        `copy_of`: the source record of a copy, whose config and devices the copy inherits."""
        pcfg = await self._config(project)
        if pcfg is None:
            return
        check_volatile(project, pcfg, name, cfg, current or {})
        if copy_of is not None:
            cfg = {**{k: v for k, v in copy_of["config"].items() if not k.startswith("volatile.")}, **cfg}
            devices = devices or copy_of["devices"]
        ecfg, edev = expand(profiles, cfg, devices)
        what = "update" if current is not None else "creation"
        try:
            check_entity(project, pcfg, "container", name, ecfg, edev)
        except Forbidden as e:
            raise Forbidden(f"Failed checking if instance {what} allowed: {e.message}") from None

    async def check_restore(self, project: str, name: str, snap: dict) -> None:
        """Restoring a snapshot brings back its config, devices and profiles: they must pass too."""
        pcfg = await self._config(project)
        if pcfg is None:
            return
        from corral.db.queries import profiles as qp
        from corral.projects import profiles_project
        async with self.d.db.session() as tx:
            allp = {p["name"]: p for p in await qp.get_all(tx, await profiles_project(tx, project))}
        cfg = {k: v for k, v in snap["config"].items() if not k.startswith("volatile.")}
        ecfg, edev = expand([allp[n] for n in snap["profiles"] if n in allp], cfg, snap["devices"])
        try:
            check_entity(project, pcfg, "container", name, ecfg, edev)
        except Forbidden as e:
            raise Forbidden(f"Failed checking if instance restore allowed: {e.message}") from None

    async def check_profile(self, project: str, name: str, new: dict) -> None:
        """A profile's new config/devices, and every instance of the project expanded with it."""
        pcfg = await self._config(project)
        if pcfg is None:
            return
        try:
            await self._check_content(project, pcfg, {name: new})
        except Forbidden as e:
            raise Forbidden(f"Failed checking if profile update allowed: {e.message}") from None

    async def check_project_config(self, project: str, new_cfg: dict, changed: list[str]) -> None:
        """A project may not be (more) restricted while its instances or profiles break the rules."""
        keys = [k for k in changed if k == "restricted" or k.startswith("restricted.")]
        if not keys or not is_restricted(new_cfg):
            return
        try:
            await self._check_content(project, new_cfg, {})
        except Forbidden as e:
            raise Forbidden(f'Conflict detected when changing "{keys[0]}" in project "{project}": {e.message}') \
                from None

    async def _check_content(self, project: str, pcfg: dict, override: dict[str, dict]) -> None:
        from corral.db.queries import profiles as qp
        from corral.projects import profiles_project
        async with self.d.db.session() as tx:
            profiles = {p["name"]: p for p in await qp.get_all(tx, await profiles_project(tx, project))}
        for n, p in override.items():
            profiles[n] = {**profiles.get(n, {}), **p, "name": n}
        for n, p in sorted(profiles.items()):
            check_entity(project, pcfg, "profile", n, p["config"], p["devices"])
        for inst in await self.d.instances.load_all(project):
            rec = inst.rec
            used = [profiles[n] for n in rec["profiles"] if n in profiles]
            ecfg, edev = expand(used, rec["config"], rec["devices"])
            check_entity(project, pcfg, "container", rec["name"], ecfg, edev)

    async def check_snapshot(self, project: str) -> None:
        pcfg = await self._config(project)
        if pcfg is not None and setting(pcfg, "restricted.snapshots") == "block":
            raise Forbidden(f'Project "{project}" doesn\'t allow for snapshot creation')

    async def check_backup(self, project: str) -> None:
        pcfg = await self._config(project)
        if pcfg is not None and setting(pcfg, "restricted.backups") == "block":
            raise Forbidden(f'Project "{project}" doesn\'t allow for backup creation')

    async def check_target(self, project: str, target: str) -> None:
        pcfg = await self._config(project)
        if target and pcfg is not None and setting(pcfg, "restricted.cluster.target") == "block":
            raise Forbidden("This project doesn't allow cluster member targeting")

    # ---- restricted certificates given unrestricted projects ---------------------------------------

    async def warn_certificate(self, cert: dict) -> None:
        """A restricted certificate that lists a project without `restricted=true` can reach host root
        through it (raw.lxc, privileged containers, host paths...): say so in /1.0/warnings."""
        if not cert["restricted"]:
            return
        for project in cert["projects"]:
            p = await self.d.projects.get(project)
            if p is None or is_restricted(p["config"]):
                continue
            await self.d.warnings.raise_(
                UNRESTRICTED_PROJECT_WARNING,
                f'Restricted certificate "{cert["name"]}" ({cert["fingerprint"][:12]}) can use project '
                f'"{project}", which is not restricted (restricted=true): through its unrestricted '
                f"settings (raw.lxc, security.privileged, disk devices of host paths...) the certificate "
                f"can reach host root",
                severity="high", project=project, entity_url=f"/1.0/certificates/{cert['fingerprint']}")

    async def warn_project(self, project: str) -> None:
        """After a project update: warn for each restricted certificate if the project is unrestricted."""
        for cert in await self.d.trust.get_all():
            if project in cert["projects"]:
                await self.warn_certificate({**cert, "projects": [project]})


UNRESTRICTED_PROJECT_WARNING = "Restricted certificate with access to an unrestricted project"
