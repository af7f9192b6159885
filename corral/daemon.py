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

from corral import hardening, hostinfo, logthrottle, netguard, storage, timeutil
from corral.pki import certs
from corral.api.server import make_app, make_metrics_app
from corral.cluster.event_mesh import EventMesh
from corral.cluster.gateway import Gateway
from corral.cluster.membership import Cluster
from corral.cluster.operation_records import OperationRecords
from corral.db import Database
from corral.devlxd import DevLXD
from corral.events import EventHub, EventLogHandler
from corral.https import HttpsListener
from corral.image.autoupdate import ImageTasks
from corral.image.cache import ImageCache
from corral.image.images import Images
from corral.instance.manager import Instances
from corral.backup.format import remove_stale_uploads
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
from corral.state import State
from corral.network.drivers.fake import NoHost
from corral.instance.snapshot_schedule import SnapshotScheduler
from corral.metrics.daemon_metrics import DaemonMetrics
from corral.metrics.scrape import Scraper
from corral.trust import Trust
from corral.warnings import Warnings

log = logging.getLogger("corrald")
WORKER_THREADS = 128


def _versions() -> tuple[int, int]:
    from corral.api.extensions import EXTENSIONS
    from corral.db.schema import GLOBAL
    return len(GLOBAL), len(EXTENSIONS)


class Daemon:
    """Start-up, listeners and shutdown. The layers share a typed State (corral/state.py): each
    is built with it and reaches the others through it; the API reaches them through the daemon,
    whose attributes fall through to the state."""

    def __init__(self, paths: Paths, *, group: str | None = None, mock: bool = False):
        self.paths = paths
        self.mock = mock   # fake drivers (corral/mock.py installed them before this daemon was built)
        hide_host_paths(paths.root)
        self.group = group
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._force_shutdown = False
        events = EventHub()
        gateway = Gateway(paths.global_db)
        db = Database(paths.global_db, paths.local_db, gateway)
        s = self.state = State(paths=paths, db=db, events=events, operations=OperationManager(events),
                               config=ServerConfig(db), mock=mock, net_host=NoHost() if mock else None)
        s.cluster = Cluster(s, gateway)
        s.operations.registry = OperationRecords(s)
        s.cluster.on_member.append(self._became_member)
        s.cluster.shutdown_hook = self.request_shutdown
        s.cluster.versions = _versions
        self.event_mesh = EventMesh(s)   # the other members' events into ours; our name on ours
        s.projects = Projects(db, hooks=s)
        s.profiles = Profiles(db, events, hooks=s)
        s.warnings = Warnings(db)
        s.pools = Pools(db, paths.root, events, s.warnings)
        s.images = Images(db, paths, s.pools, events, s.operations, s.config, cluster=s.cluster)
        s.image_cache = ImageCache(s)
        self.image_tasks = ImageTasks(s)
        s.instances = Instances(s)
        s.images.default_compression = lambda project: s.project_setting(project, "images.compression_algorithm")
        s.networks = Networks(s)
        s.proxies = ProxyManager(s)
        s.volumes = Volumes(s)
        s.volume_backups = VolumeBackups(s)
        s.reaper = Reaper()
        s.trust = Trust(db, s.operations)
        s.restrictions = Restrictions(s)
        s.limits = Limits(s)
        s.devlxd = DevLXD(s)
        s.backup_yaml = BackupYamlWriter(s)
        s.snapshot_schedule = SnapshotScheduler(s)
        db.on_commit.append(s.cluster.tables_changed)
        # What each member keeps in memory of the cluster's tables, reloaded when another member
        # writes them (storage pools and networks are also host state: part 2 of clustering).
        s.cluster.reloaders.update({"config": s.config.load, "projects": s.projects.load,
                                    "projects_config": s.projects.load, "certificates": s.trust.load,
                                    "certificates_projects": s.trust.load})
        self.metrics = DaemonMetrics()   # corrald's own metrics; the instances' come from the scraper
        self.scraper = Scraper(s)
        db.on_query = self.metrics.observe_db
        self.https: HttpsListener | None = None
        self.metrics_https: HttpsListener | None = None   # core.metrics_address: /1.0/metrics only
        self._runner: web.AppRunner | None = None
        self._metrics_runner: web.AppRunner | None = None
        self._cert_pem = ""
        self._fingerprint = ""
        self._hardening: asyncio.Task | None = None

    def __getattr__(self, name: str):
        # Only reached for what the Daemon itself lacks: the layers and the cross-layer questions.
        if name == "state":
            raise AttributeError(name)
        return getattr(self.state, name)

    # ---- start-up -------------------------------------------------------------------------

    async def start(self) -> None:
        self.paths.ensure()
        self.reaper.start()
        certs.ensure_server_cert(self.paths.root)
        self.cluster.prepare()
        crt, _key = self.cluster.serving_cert()
        with open(crt) as f:
            self._cert_pem = f.read()
        self._fingerprint = certs.fingerprint(self._cert_pem)
        self._runner = web.AppRunner(make_app(self), access_log=None, handle_signals=False)
        await self._runner.setup()
        if self.cluster.clustered:   # the other members' raft traffic comes in through it
            await self._listen_https()
        await self.db.start()
        await self.db.apply_patch_file(os.path.join(self.paths.database, "patch.global.sql"))
        await self.cluster.start()
        await self.operations.registry.start()
        await self._record_member()
        await self.config.load()
        await self.projects.load()
        await self.trust.load()
        await self.pools.load()
        await self.images.load()
        await reconcile(self.state)
        await reconcile_instances(self.state)
        remove_stale_uploads(self.paths.join("backups"))
        await self.networks.load()
        await self.networks.startup()
        # /dev/lxd first: the instances started now (boot.autostart, last_state) bind its socket directory
        await self.devlxd.start()
        await self.instances.startup()
        await self.backup_yaml.start()
        await self.proxies.restore()
        self.snapshot_schedule.start()
        logging.getLogger().addHandler(logthrottle.install(EventLogHandler(self.events)))
        await self._listen_unix()
        if self.https is None:
            await self._listen_https()
        await self._listen_metrics()
        self._hardening = await hardening.check(self.state)
        self.event_mesh.start()
        self.ready.set()
        self.image_tasks.start()   # expired cached images, then auto-updates (now and hourly)
        log.info("corrald ready on %s (pid %d)", self.paths.socket, os.getpid())

    async def _listen_unix(self) -> None:
        path = self.paths.socket
        with contextlib.suppress(FileNotFoundError):
            if socket_alive(path):
                raise RuntimeError(f"another daemon is already listening on {path}")
            os.unlink(path)
        await netguard.serve_unix(self._runner, path, "unix", netguard.unix_peer)
        gid = grp.getgrnam(self.group).gr_gid if self.group else 0
        if os.geteuid() == 0:
            os.chown(path, 0, gid)
        elif self.group:   # mock mode as an ordinary user: only a group of ours
            os.chown(path, -1, gid)
        os.chmod(path, 0o660)

    async def _listen_https(self) -> None:
        crt, key = self.cluster.serving_cert()
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
        if "core.metrics_address" in changed and self.metrics_https is not None:
            await self.metrics_https.apply(changed["core.metrics_address"])

    async def _listen_metrics(self) -> None:
        crt, key = self.cluster.serving_cert()
        self._metrics_runner = web.AppRunner(make_metrics_app(self), access_log=None, handle_signals=False)
        await self._metrics_runner.setup()
        self.metrics_https = HttpsListener(self._metrics_runner, crt, key, label="metrics")
        address = self.config.all().get("core.metrics_address", "")
        if address:
            try:
                await self.metrics_https.apply(address)
            except Exception as e:  # keep the daemon up
                log.error("cannot listen on core.metrics_address %s: %s", address, e)

    def reload_certificate(self) -> None:
        """Serve (and show in /1.0) the certificate of now: the cluster's once clustered, rotated."""
        crt, key = self.cluster.serving_cert()
        with open(crt) as f:
            self._cert_pem = f.read()
        self._fingerprint = certs.fingerprint(self._cert_pem)
        if self.https is not None:
            self.https.reload(crt, key)
        if self.metrics_https is not None:
            self.metrics_https.reload(crt, key)

    async def _became_member(self) -> None:
        """Clustering enabled or joined: serve the cluster certificate; reload what the layers
        loaded from the database (after a join it is the cluster's)."""
        self.reload_certificate()
        await self.config.load()
        await self.projects.load()
        await self.trust.load()
        await self.pools.load()
        await self.images.load()

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
            storage_drivers=storage.supported_drivers(),
            server_name=self.cluster.server_name if self.cluster.clustered else socket.gethostname(),
            clustered=self.cluster.clustered, drivers=self._instance_drivers())

    @staticmethod
    def _instance_drivers() -> dict:
        """LXD's "lxc | qemu" with both versions when QEMU is installed, and how VMs run (KVM or TCG)."""
        from corral.instance.drivers import qemuhost
        lxc = hostinfo.liblxc_version()
        qemu = qemuhost.qemu_version()
        if not qemu:
            return {"driver": "lxc", "driver_version": lxc}
        accel = qemuhost.accelerator()
        return {"driver": "lxc | qemu", "driver_version": f"{lxc} | {qemu}",
                "vm_accelerator": accel.name, "vm_accelerator_reason": accel.reason}

    async def _record_member(self) -> None:
        """This member's row in LXD's `nodes` table: schema version, API extensions, architecture."""
        from corral.api.extensions import EXTENSIONS
        from corral.db.queries import nodes as qnodes
        from corral.db.schema import GLOBAL
        async with self.db.transaction() as tx:
            await qnodes.update_local(tx, schema=len(GLOBAL), api_extensions=len(EXTENSIONS),
                                      arch=os.uname().machine, heartbeat=timeutil.now())

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
        if self.db.node is not None:
            await self.cluster.handover()   # leadership and the raft role go to others first
            self.cluster.close_streams()
        self.ready.clear()
        await self.image_tasks.stop()
        if self._hardening is not None:
            self._hardening.cancel()
        minutes = self.config.get("core.shutdown_timeout") if self.db.node and not self._force_shutdown else 0
        if self.https is not None:
            await self.https.stop()
        if self.metrics_https is not None:
            await self.metrics_https.stop()
        if self._metrics_runner is not None:
            await self._metrics_runner.cleanup()
        self.scraper.close()
        await self.devlxd.stop()
        if self._runner is not None:
            # Stop accepting new connections; in-flight requests and operations go on.
            for site in list(self._runner.sites):
                await site.stop()
        if not await self.operations.drain((minutes or 0) * 60):
            log.warning("operations still running after core.shutdown_timeout; cancelling them")
        self.operations.cancel_all()
        await asyncio.sleep(0)
        await self.event_mesh.stop()
        self.events.close()   # event streams end (the runner would wait for them)
        if self._runner is not None:
            await self._runner.cleanup()
        await self.backup_yaml.stop()
        await self.snapshot_schedule.stop()
        await self.instances.shutdown()
        await self.proxies.shutdown()
        self.networks.shutdown()
        self.reaper.stop()
        await self.cluster.stop()
        await self.db.stop()
        self.cluster.after_stop()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.paths.socket)
        log.info("shutdown complete")
