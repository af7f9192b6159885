"""Project limits: LXD 5.0's `limits.*` project keys (lxd/project/permissions.go, state.go).

Counts (`limits.containers`, `limits.virtual-machines`, `limits.instances`) refuse a new instance once
the project holds that many. Aggregates (`limits.cpu`, `limits.memory`, `limits.processes`,
`limits.disk`) sum what every instance of the project sets, directly or via its profiles (and, for
`limits.disk`, the `size` of the root disk and of each custom volume): while one is set, every
instance must set the matching key ("Instance "c" in project "p" has no "limits.cpu" config, either
directly or via a profile") and the sum may not pass the limit. Checked at instance create / copy /
update, profile create / update, custom volume create / update, and project update (a limit can't be
set below current usage). `limits.networks` caps the networks a project makes of its own, which needs
features.networks (not implemented here): a project's usage is 0, the default project's its networks.

The pure checks take a snapshot of the project (`Info`); `Limits` (one per daemon) loads it. Every
check raises Forbidden (403) with LXD's text and is made before anything changes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from corral.config.keys import parse_size
from corral.errors import Forbidden

COUNT_KEYS = {"limits.containers": "container", "limits.virtual-machines": "virtual-machine"}
AGGREGATE_KEYS = ("limits.cpu", "limits.disk", "limits.memory", "limits.processes")


@dataclass
class Info:
    name: str
    config: dict
    profiles: dict[str, dict]                       # name -> profile (the project's or default's)
    instances: list[dict] = field(default_factory=list)   # records: name, type, config, devices, profiles
    volumes: list[dict] = field(default_factory=list)     # custom volumes: name, config
    reserved: int = 0                               # instances being created, not yet recorded

    def expanded(self, rec: dict) -> tuple[dict, dict]:
        from corral.instance.manager import expand
        return expand([self.profiles[n] for n in rec["profiles"] if n in self.profiles],
                      rec["config"], rec["devices"])

    def has_limits(self) -> bool:
        return any(k.startswith("limits.") and v != "" for k, v in self.config.items())


# ---- values ----------------------------------------------------------------------------------------

def _parse(key: str, value: str) -> int:
    if key in ("limits.memory", "limits.disk"):
        if value.endswith("%"):
            raise ValueError("Value can't be a percentage")
        return parse_size(value)
    if key == "limits.cpu" and ("," in value or "-" in value):
        raise ValueError("CPUs can't be pinned if project limits are used")
    return int(value)


def iec(n: int) -> str:
    """LXD's units.GetByteSizeStringIEC(n, 1)."""
    if n < 1024:
        return f"{n}B"
    v = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        v /= 1024
        if v < 1024:
            return f"{v:.1f}{unit}"
    return f"{v:.1f}EiB"


def _printed(key: str, n: int) -> str:
    return iec(n) if key in ("limits.memory", "limits.disk") else str(n)


def _root_size(devices: dict) -> str:
    for dev in devices.values():
        if dev.get("type") == "disk" and dev.get("path") == "/" and not dev.get("source"):
            return dev.get("size", "")
    return ""


def instance_usage(info: Info, rec: dict, keys, *, skip_unset: bool) -> dict[str, int]:
    """What one instance (expanded with its profiles) takes of each aggregate key."""
    cfg, devices = info.expanded(rec)
    out = {}
    for key in keys:
        value = _root_size(devices) if key == "limits.disk" else cfg.get(key, "")
        if value == "":
            if skip_unset:
                continue
            if key == "limits.disk":
                raise Forbidden(f'Instance "{rec["name"]}" in project "{info.name}" has no "size" config set on '
                                "the root device either directly or via a profile")
            raise Forbidden(f'Instance "{rec["name"]}" in project "{info.name}" has no "{key}" config, '
                            "either directly or via a profile")
        try:
            out[key] = _parse(key, value)
        except ValueError:
            if skip_unset:
                continue
            raise Forbidden(f'Failed parsing "{key}" for instance "{rec["name"]}" in project "{info.name}"') \
                from None
    return out


def totals(info: Info, keys, *, skip_unset: bool = False) -> dict[str, int]:
    out = {k: 0 for k in keys}
    if "limits.disk" in keys:
        for v in info.volumes:
            size = v["config"].get("size", "")
            if not size:
                if skip_unset:
                    continue
                raise Forbidden(f'Custom volume "{v["name"]}" in project "{info.name}" has no "size" config set')
            out["limits.disk"] += parse_size(size)
    for rec in info.instances:
        for k, n in instance_usage(info, rec, keys, skip_unset=skip_unset).items():
            out[k] += n
    return out


def count(info: Info, itype: str | None = None) -> int:
    n = sum(1 for r in info.instances if itype is None or r.get("type", "container") == itype)
    return n + (info.reserved if itype in (None, "container") else 0)


def _limit(info: Info, key: str) -> int:
    v = info.config.get(key, "")
    return int(v) if v != "" else -1


# ---- checks ----------------------------------------------------------------------------------------

def check_counts(info: Info, itype: str) -> None:
    """LXD's checkInstanceCountLimit and checkTotalInstanceCountLimit, before adding one instance."""
    key = "limits.virtual-machines" if itype == "virtual-machine" else "limits.containers"
    limit = _limit(info, key)
    if limit >= 0 and count(info, itype) >= limit:
        raise Forbidden(f'Reached maximum number of instances of type "{itype}" in project "{info.name}"')
    limit = _limit(info, "limits.instances")
    if limit >= 0 and count(info) >= limit:
        raise Forbidden(f'Reached maximum number of instances in project "{info.name}"')


def check_aggregates(info: Info, what: str) -> None:
    """LXD's checkAggregateLimits over every instance and volume of `info` (already changed)."""
    keys = [k for k in AGGREGATE_KEYS if info.config.get(k, "") != ""]
    if not keys:
        return
    try:
        used = totals(info, keys)
        for key in keys:
            if used[key] > _parse(key, info.config[key]):
                raise Forbidden(f'Reached maximum aggregate value "{info.config[key]}" for "{key}" in project '
                                f'"{info.name}"')
    except Forbidden as e:
        raise Forbidden(f"Failed checking if {what} allowed: {e.message}") from None


def check_project_update(info: Info, new_cfg: dict, changed: list[str]) -> None:
    """LXD's AllowProjectUpdate for the limits.* keys: no limit below current usage."""
    name = info.name
    aggregate = []
    for key in changed:
        value = new_cfg.get(key, "")
        if value == "":
            continue
        if key == "limits.instances":
            if int(value) < count(info):
                raise Forbidden(f'Can\'t change limits.instances in project "{name}": "limits.instances" is too '
                                f'low: there currently are {count(info)} total instances in project "{name}"')
        elif key in COUNT_KEYS:
            n = count(info, COUNT_KEYS[key])
            if int(value) < n:
                raise Forbidden(f'Can\'t change "{key}" in project "{name}": "{key}" is too low: there currently '
                                f'are {n} instances of type {COUNT_KEYS[key]} in project "{name}"')
        elif key in AGGREGATE_KEYS:
            aggregate.append(key)
    if aggregate:
        used = totals(info, aggregate)
        for key in aggregate:
            if _parse(key, new_cfg[key]) < used[key]:
                raise Forbidden(f'"{key}" is too low: current total is "{_printed(key, used[key])}"')


def state(info: Info, networks: int = 0) -> dict[str, dict]:
    """GET /1.0/projects/<name>/state's `resources` (LXD's GetCurrentAllocations)."""
    used = totals(info, AGGREGATE_KEYS, skip_unset=True)
    out = {}
    for key in AGGREGATE_KEYS:
        v = info.config.get(key, "")
        out[key[len("limits."):]] = {"limit": _parse(key, v) if v else -1, "usage": used[key]}
    out["instances"] = {"limit": _limit(info, "limits.instances"), "usage": count(info)}
    out["containers"] = {"limit": _limit(info, "limits.containers"), "usage": count(info, "container")}
    out["virtual-machines"] = {"limit": _limit(info, "limits.virtual-machines"),
                               "usage": count(info, "virtual-machine")}
    out["networks"] = {"limit": _limit(info, "limits.networks"), "usage": networks}
    return out


class Limits:
    """The daemon's entry points; each is a no-op for a project without limits.* set."""

    def __init__(self, daemon):
        self.d = daemon

    async def info(self, project: str, config: dict | None = None) -> Info:
        from corral.db.queries import instances as qi, profiles as qp, storage as qs
        projects = self.d.projects
        async with self.d.db.session() as tx:
            recs = await qi.get_all(tx, project)
            profiles = {p["name"]: p for p in await qp.get_all(tx, projects.holder("profiles", project))}
            volumes = await qs.project_custom_volumes(tx, project)
        recorded = {r["name"] for r in recs}
        reserved = sum(1 for p, n in self.d.instances._reserved if p == project and n not in recorded)
        return Info(project, projects.config_of(project) if config is None else config, profiles,
                    [{"name": r["name"], "type": r.get("type") or "container", "config": r["config"],
                      "devices": r["devices"], "profiles": r["profiles"]} for r in recs],
                    [{"name": v["name"], "pool": v["pool"], "config": v["config"]} for v in volumes], reserved)

    def _limited(self, project: str) -> bool:
        return any(k.startswith("limits.") and v != "" for k, v in self.d.projects.config_of(project).items())

    async def check_instance(self, project: str, name: str, itype: str, cfg: dict, devices: dict,
                             profiles: list[str], *, current: bool = False, copy_of: dict | None = None) -> None:
        """A new instance (current=False: counts, then aggregates with it added) or an instance's
        new config/devices/profiles (current=True: aggregates with it changed)."""
        if not self._limited(project):
            return
        info = await self.info(project)
        if copy_of is not None:
            cfg = {**{k: v for k, v in copy_of["config"].items() if not k.startswith("volatile.")}, **cfg}
            devices = devices or copy_of["devices"]
        rec = {"name": name, "type": itype, "config": cfg, "devices": devices, "profiles": profiles}
        if current:
            info.instances = [rec if r["name"] == name else r for r in info.instances]
            check_aggregates(info, "instance update")
        else:
            check_counts(info, itype)
            info.instances.append(rec)
            check_aggregates(info, "instance creation")

    async def check_count(self, project: str, itype: str) -> None:
        """The count limits alone, for one more instance of type `itype`."""
        if self._limited(project):
            check_counts(await self.info(project), itype)

    async def check_profile(self, project: str, name: str, new: dict) -> None:
        """A profile's new config/devices, for every project whose instances use it."""
        for p in self.d.projects.sharing("profiles", project):
            if not self._limited(p):
                continue
            info = await self.info(p)
            info.profiles[name] = {**info.profiles.get(name, {}), **new, "name": name}
            check_aggregates(info, "profile update")

    async def check_volume(self, project: str, pool: str, name: str, config: dict) -> None:
        """A new or resized custom volume (LXD's AllowVolumeCreation / AllowVolumeUpdate)."""
        if self.d.projects.config_of(project).get("limits.disk", "") == "":
            return
        info = await self.info(project)
        same = [v for v in info.volumes if (v["pool"], v["name"]) == (pool, name)]
        existed = bool(same)
        info.volumes = [v for v in info.volumes if v not in same] + [{"name": name, "pool": pool, "config": config}]
        check_aggregates(info, "volume update" if existed else "volume creation")

    async def check_project_config(self, project: str, new_cfg: dict, changed: list[str]) -> None:
        if not any(k.startswith("limits.") for k in changed):
            return
        check_project_update(await self.info(project, new_cfg), new_cfg, changed)

    async def state(self, project: str) -> dict[str, dict]:
        # The networks a project holds: only the default project has any (no features.networks).
        networks = len(self.d.networks.names()) if self.d.projects.holder("networks", project) == project else 0
        return state(await self.info(project), networks)
