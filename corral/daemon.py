"""corrald: wiring, start-up and shutdown. Everything long-lived hangs off one Daemon object."""
from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
import signal
import socket
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from corral import certs, hardening, hostinfo, logthrottle, netguard, storage, timeutil
from corral.api.server import make_app
from corral.db import Database
from corral.devlxd import DevLXD
from corral.events import EventHub, EventLogHandler
from corral.https import HttpsListener
from corral.image.autoupdate import ImageTasks
from corral.image.cache import ImageCache
from corral.image.images import Images
from corral.instance import layout, update as instance_update
from corral.instance.devices import validate_devices
from corral.instance.manager import Instances
from corral.instance.backup_format import remove_stale_uploads
from corral.instance.backup_yaml import BackupYamlWriter
from corral.instance.recovery import reconcile_instances
from corral.network.networks import Networks
from corral.network.proxy import ProxyManager
from corral.operations import OperationManager
from corral.errors import hide_host_paths
from corral.paths import Paths, socket_alive
from corral.profiles import Profiles
from corral.project_limits import Limits
from corral.project_restrictions import Restrictions
from corral.projects import Projects
from corral.reaper import Reaper
from corral.serverconfig import ServerConfig
from corral.storage.pools import Pools
from corral.storage.reconcile import reconcile
from corral.storage.volume_backups import VolumeBackups
from corral.storage.volumes import Volumes
from corral.instance.snapshot_schedule import SnapshotScheduler
from corral.trust import Trust
from corral.warnings import Warnings

log = logging.getLogger("corrald")
WORKER_THREADS = 128


class Daemon:
    def __init__(self, paths: Paths, *, group: str | None = None):
        self.paths = paths
        hide_host_paths(paths.root)
        self.group = group
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._force_shutdown = False
        self.events = EventHub()
        self.operations = OperationManager(self.events)
        self.db = Database(paths.global_db, paths.local_db)
        self.config = ServerConfig(self.db)
        self.projects = Projects(self.db)
        self.profiles = Profiles(self.db, self.events)
        self.warnings = Warnings(self.db)
        self.pools = Pools(self.db, paths.root, self.events, self.warnings)
        self.images = Images(self.db, self.paths, self.pools, self.events, self.operations, self.config)
        self.image_cache = ImageCache(self)
        self.image_tasks = ImageTasks(self)
        self.instances = Instances(self)
        self.images.default_compression = lambda project: self.project_setting(project, "images.compression_algorithm")
        self.networks = Networks(self)
        self.proxies = ProxyManager(self)
        self.volumes = Volumes(self)
        self.volume_backups = VolumeBackups(self)
        self.profiles.used_by_sources.append(self.instances.used_by_profile)
        self.profiles.validate_devices = lambda devices: validate_devices(self, devices)
        self.profiles.apply_change = lambda project, profile: instance_update.profile_change(
            self.instances, project, profile)
        self.reaper = Reaper()
        self.trust = Trust(self.db, self.operations)
        self.restrictions = Restrictions(self)
        self.limits = Limits(self)
        self.profiles.check_restrictions = self._check_profile
        self.projects.check_restrictions = self.restrictions.check_project_config
        self.projects.check_limits = self.limits.check_project_config
        self.devlxd = DevLXD(self)
        self.backup_yaml = BackupYamlWriter(self)
        self.snapshot_schedule = SnapshotScheduler(self)
        self.https: HttpsListener | None = None
        self._runner: web.AppRunner | None = None
        self._cert_pem = ""
        self._fingerprint = ""

    def project_setting(self, project: str, key: str):
        """A server setting a project may override (images.*, backups.*, as in LXD): the project's
        value when it sets one, else the server's."""
        value = self.projects.config_of(project).get(key)
        return value if value not in (None, "") else self.config.get(key)

    # ---- start-up -------------------------------------------------------------------------

    async def start(self) -> None:
        self.paths.ensure()
        self.reaper.start()
        crt, _key = certs.ensure_server_cert(self.paths.root)
        with open(crt) as f:
            self._cert_pem = f.read()
        self._fingerprint = certs.fingerprint(self._cert_pem)
        await self.db.start()
        await self._record_member()
        await self.config.load()
        await self.projects.load()
        await self.trust.load()
        await self.pools.load()
        await self.images.load()
        await reconcile(self)
        await reconcile_instances(self)
        remove_stale_uploads(self.paths.join("backups"))
        await self.networks.load()
        await self.networks.startup()
        await self.instances.startup()
        await self.backup_yaml.start()
        await self.proxies.restore()
        self.snapshot_schedule.start()
        logging.getLogger().addHandler(logthrottle.install(EventLogHandler(self.events)))
        await self.devlxd.start()
        await self._listen_unix()
        await self._listen_https()
        await hardening.check(self)
        self.ready.set()
        self.image_tasks.start()   # expired cached images, then auto-updates (now and hourly)
        log.info("corrald ready on %s (pid %d)", self.paths.socket, os.getpid())

    async def _listen_unix(self) -> None:
        path = self.paths.socket
        with contextlib.suppress(FileNotFoundError):
            if socket_alive(path):
                raise RuntimeError(f"another daemon is already listening on {path}")
            os.unlink(path)
        self._runner = web.AppRunner(make_app(self), access_log=None, handle_signals=False)
        await self._runner.setup()
        await netguard.serve_unix(self._runner, path, "unix", netguard.unix_peer)
        gid = grp.getgrnam(self.group).gr_gid if self.group else 0
        os.chown(path, 0, gid)
        os.chmod(path, 0o660)

    async def _listen_https(self) -> None:
        crt, key = certs.ensure_server_cert(self.paths.root)
        self.https = HttpsListener(self._runner, crt, key)
        self.config.watchers.append(self._config_changed)
        address = self.config.all().get("core.https_address", "")
        if address:
            try:
                await self.https.apply(address)
            except Exception as e:  # keep the daemon (and its unix socket) up
                log.error("cannot listen on core.https_address %s: %s", address, e)

    async def _config_changed(self, changed: dict[str, str]) -> None:
        if "core.https_address" in changed and self.https is not None:
            await self.https.apply(changed["core.https_address"])

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def https_addresses(self) -> list[str]:
        return self.https.addresses() if self.https is not None else []

    # ---- information ----------------------------------------------------------------------

    def environment(self) -> dict:
        in_use = sorted({self.pools.driver_name(name) for name in self.pools.names()})
        return hostinfo.environment(
            certificate=self._cert_pem, fingerprint=self._fingerprint, addresses=self.https_addresses(),
            storage=" | ".join(in_use), storage_version=" | ".join(storage.driver_version(n) for n in in_use),
            storage_drivers=storage.supported_drivers(), server_name=socket.gethostname())

    async def pool_used_by(self, pool: str) -> list[str]:
        """Instances and profiles whose root disk uses `pool`."""
        out = await self.instances.used_by_pool(pool)
        out += await self.volumes.used_by_pool(pool)
        for p in await self.profiles.get_all("default"):
            if any(dev.get("type") == "disk" and dev.get("pool") == pool for dev in p["devices"].values()):
                out.append(f"/1.0/profiles/{p['name']}")
        return out

    async def _check_profile(self, project: str, name: str, new: dict) -> None:
        """A profile's new config and devices against the project's restrictions and limits."""
        await self.restrictions.check_profile(project, name, new)
        await self.limits.check_profile(project, name, new)

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

    async def _record_member(self) -> None:
        """This member's row in LXD's `nodes` table: schema version, API extensions, architecture."""
        from corral.api.extensions import EXTENSIONS
        from corral.db.queries import nodes as qnodes
        from corral.db.schema import GLOBAL
        async with self.db.transaction() as tx:
            await qnodes.update_local(tx, schema=len(GLOBAL), api_extensions=len(EXTENSIONS),
                                      arch=os.uname().machine, heartbeat=timeutil.now())

    async def on_instance_changed(self, project: str, name: str) -> None:
        """Hook for listeners of instance config changes (the guest API's events, backup.yaml)."""
        await layout.write_backup_file(self.instances, project, name)
        await self.devlxd.instance_changed(project, name)

    # ---- shutdown -------------------------------------------------------------------------

    def request_shutdown(self, force: bool = False) -> None:
        """Stop; with force (`corrald shutdown --force`), without waiting for running operations."""
        self._force_shutdown = self._force_shutdown or force
        self._stop.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        # Blocking host work (liblxc, copies, exec pipes) runs in worker threads; exec sessions hold
        # some for their whole life, so the pool must be larger than asyncio's cpu+4 default.
        loop.set_default_executor(ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="corral"))
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_shutdown)
        try:
            await self.start()
            await self._stop.wait()
        finally:
            await self.shutdown()

    async def shutdown(self) -> None:
        log.info("shutting down")
        self.ready.clear()
        await self.image_tasks.stop()
        minutes = self.config.get("core.shutdown_timeout") if self.db.node and not self._force_shutdown else 0
        if self.https is not None:
            await self.https.stop()
        await self.devlxd.stop()
        if self._runner is not None:
            # Stop accepting new connections; in-flight requests and operations go on.
            for site in list(self._runner.sites):
                await site.stop()
        if not await self.operations.drain((minutes or 0) * 60):
            log.warning("operations still running after core.shutdown_timeout; cancelling them")
        self.operations.cancel_all()
        await asyncio.sleep(0)
        if self._runner is not None:
            await self._runner.cleanup()
        await self.backup_yaml.stop()
        await self.snapshot_schedule.stop()
        await self.instances.shutdown()
        await self.proxies.shutdown()
        self.networks.shutdown()
        self.reaper.stop()
        await self.db.stop()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.paths.socket)
        log.info("shutdown complete")
