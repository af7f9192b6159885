"""The daemon's typed state: what the layers of one corrald share, handed to each layer instead of
the Daemon object (LXD's `state.State`).

The daemon builds the layers in dependency order and records each one here; a layer keeps the
State and reaches the others through it when it needs them (at call time, never at construction),
so no layer gets callbacks patched into it afterwards. The cross-layer questions (what uses a pool
or a project, a project's effective setting) and the hooks the lower layers declare
(`profiles.ProfileHooks`, `projects.ProjectHooks`) are answered here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncContextManager

if TYPE_CHECKING:
    from corral.cluster.membership import Cluster
    from corral.db import Database
    from corral.devlxd import DevLXD
    from corral.events import EventHub
    from corral.image.cache import ImageCache
    from corral.image.images import Images
    from corral.instance.backup_yaml import BackupYamlWriter
    from corral.instance.manager import Instances
    from corral.instance.snapshot_schedule import SnapshotScheduler
    from corral.network.networks import Networks
    from corral.network.proxy import ProxyManager
    from corral.operations import OperationManager
    from corral.paths import Paths
    from corral.profiles import Profiles
    from corral.project_limits import Limits
    from corral.project_restrictions import Restrictions
    from corral.projects import Projects
    from corral.reaper import Reaper
    from corral.serverconfig import ServerConfig
    from corral.storage.pools import Pools
    from corral.storage.volume_backups import VolumeBackups
    from corral.storage.volumes import Volumes
    from corral.trust import Trust
    from corral.warnings import Warnings


@dataclass(eq=False)
class State:
    paths: Paths
    db: Database
    events: EventHub
    operations: OperationManager
    config: ServerConfig
    mock: bool = False          # fake drivers (corral/mock.py), the daemon runs as any user
    # What the network layer reads of the host's links and routes: corral.network.host, or in
    # mock mode a host with no interfaces (corral.network.drivers.fake.NoHost).
    net_host: Any = None
    # The layers, recorded as the daemon builds them (None until then).
    projects: Projects = field(default=None)  # type: ignore[assignment]
    profiles: Profiles = field(default=None)  # type: ignore[assignment]
    warnings: Warnings = field(default=None)  # type: ignore[assignment]
    pools: Pools = field(default=None)  # type: ignore[assignment]
    images: Images = field(default=None)  # type: ignore[assignment]
    image_cache: ImageCache = field(default=None)  # type: ignore[assignment]
    instances: Instances = field(default=None)  # type: ignore[assignment]
    networks: Networks = field(default=None)  # type: ignore[assignment]
    proxies: ProxyManager = field(default=None)  # type: ignore[assignment]
    volumes: Volumes = field(default=None)  # type: ignore[assignment]
    volume_backups: VolumeBackups = field(default=None)  # type: ignore[assignment]
    reaper: Reaper = field(default=None)  # type: ignore[assignment]
    trust: Trust = field(default=None)  # type: ignore[assignment]
    restrictions: Restrictions = field(default=None)  # type: ignore[assignment]
    limits: Limits = field(default=None)  # type: ignore[assignment]
    devlxd: DevLXD = field(default=None)  # type: ignore[assignment]
    backup_yaml: BackupYamlWriter = field(default=None)  # type: ignore[assignment]
    snapshot_schedule: SnapshotScheduler = field(default=None)  # type: ignore[assignment]
    cluster: Cluster = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.net_host is None:
            from corral.network import host
            self.net_host = host

    # ---- cross-layer questions ----------------------------------------------------------------

    def project_setting(self, project: str, key: str):
        """A server setting a project may override (images.*, backups.*, as in LXD): the project's
        value when it sets one, else the server's."""
        value = self.projects.config_of(project).get(key)
        return value if value not in (None, "") else self.config.get(key)

    async def pool_used_by(self, pool: str) -> list[str]:
        """Instances, custom volumes and profiles whose disks use `pool`."""
        out = await self.instances.used_by_pool(pool)
        out += await self.volumes.used_by_pool(pool)
        for p in await self.profiles.get_all("default"):
            if any(dev.get("type") == "disk" and dev.get("pool") == pool for dev in p["devices"].values()):
                out.append(f"/1.0/profiles/{p['name']}")
        return out

    async def project_used_by(self, project: str) -> list[str]:
        """What the project holds, as LXD's projectUsedBy lists it (its custom volumes included)."""
        from corral.db.queries import storage as qs
        from corral.storage.volumes import vol_url
        suffix = "" if project == "default" else f"?project={project}"
        urls = [f"/1.0/instances/{n}{suffix}" for n in await self.instances.names(project)]
        urls += [f"/1.0/profiles/{n}{suffix}" for n in await self.profiles.names(project)]
        urls += await self.images.used_by_project(project)
        async with self.db.session() as tx:
            urls += [vol_url(v["pool"], "custom", v["name"], project)
                     for v in await qs.project_custom_volumes(tx, project)]
        return urls

    def instance_mounts(self, inst) -> list[tuple[str, str, str]]:
        """Extra mounts the daemon adds to every container (the /dev/lxd socket comes here)."""
        return self.devlxd.mounts(inst)

    async def on_instance_changed(self, project: str, name: str) -> None:
        """Listeners of instance config changes: backup.yaml, the guest API's events."""
        from corral.instance import layout
        await layout.write_backup_file(self.instances, project, name)
        await self.devlxd.instance_changed(project, name)

    # ---- profiles.ProfileHooks ----------------------------------------------------------------

    async def profile_used_by(self, project: str, name: str) -> list[str]:
        return await self.instances.used_by_profile(project, name)

    def validate_profile_devices(self, devices) -> dict[str, dict[str, str]]:
        from corral.instance.devices import validate_devices
        return validate_devices(self, devices)

    def apply_profile_change(self, project: str, profile: dict) -> AsyncContextManager:
        from corral.instance import update
        return update.profile_change(self.instances, project, profile)

    async def check_profile(self, project: str, name: str, new: dict) -> None:
        await self.restrictions.check_profile(project, name, new)
        await self.limits.check_profile(project, name, new)

    # ---- projects.ProjectHooks ----------------------------------------------------------------

    async def check_project_config(self, name: str, config: dict, changed: list[str]) -> None:
        await self.restrictions.check_project_config(name, config, changed)
        await self.limits.check_project_config(name, config, changed)
