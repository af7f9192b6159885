"""`corrald activateifneeded`: LXD's check whether the daemon should be started now (run at boot by
packaging, before socket activation would start it on first use).

The daemon is needed when core.https_address is set (local database), or an instance is auto-started
(boot.autostart, or unset and running at the last shutdown), is running, or has scheduled snapshots,
or a custom volume has scheduled snapshots. It logs LXD's debug lines saying why (see with --debug),
then "activates": a request to the daemon's unix socket. corrald has no socket activation, so when
activation is needed and no corrald runs, that request fails with the connection error (exit 1).

With no corrald running, the global database is opened in this process (a dqlite node on its
directory, as LXD opens it directly); with one running, its API answers the same questions.
"""
from __future__ import annotations

import asyncio
import logging
import os

import click

from corral.config.keys import is_true
from corral.db.local import read_config_readonly
from corral.lxdcmd.cli import CONTEXT, client, fail, global_options, setup_client_logging
from corral.paths import Paths, socket_alive

log = logging.getLogger("corral.activateifneeded")


@click.command(context_settings=CONTEXT, short_help="Check if LXD should be started")
@global_options
def activateifneeded() -> None:
    """Description:
    Check if LXD should be started

    This command will check if LXD has any auto-started instances, instances which were running prior
    to LXD's last shutdown or if it's configured to listen on the network address.

    If at least one of those is true, then a connection will be attempted to the LXD socket which will
    cause a socket-activated LXD to be spawned."""
    setup_client_logging()
    if os.geteuid() != 0:
        fail("This must be run as root")
    paths = Paths.from_env()
    if not os.path.exists(paths.local_db):
        log.debug("No local database, so no need to start the daemon now")
        return
    if read_config_readonly(paths.local_db, "core.https_address"):
        log.debug("Daemon has core.https_address set, activating...")
        return _activate()
    if not os.path.isdir(paths.global_db) or not os.listdir(paths.global_db):
        log.debug("No global database, so no need to start the daemon now")
        return
    instances, volumes = _from_daemon() if socket_alive(paths.socket) else asyncio.run(_from_disk(paths))
    for inst in instances:
        cfg = inst["expanded_config"]
        auto = cfg.get("boot.autostart")
        if is_true(auto) or (not auto and cfg.get("volatile.last_state.power") == "RUNNING"):
            log.debug("Daemon has auto-started instances, activating...")
            return _activate()
        if inst["status"] == "Running":
            log.debug("Daemon has running instances, activating...")
            return _activate()
        if cfg.get("snapshots.schedule"):
            log.debug("Daemon has scheduled instance snapshots, activating...")
            return _activate()
    if any((v.get("config") or {}).get("snapshots.schedule") for v in volumes):
        log.debug("Daemon has scheduled volume snapshots, activating...")
        return _activate()
    log.debug("No need to start the daemon now")


def _activate() -> None:
    from corral import client as rest
    try:
        client(timeout=30).get("/")
    except (rest.ClientError, OSError) as e:
        fail(str(e))


def _from_daemon() -> tuple[list[dict], list[dict]]:
    c = client(timeout=30)
    insts = c.metadata("/1.0/instances", params={"recursion": "1", "all-projects": "true"}) or []
    vols: list[dict] = []
    for pool in c.metadata("/1.0/storage-pools") or []:
        name = pool.rsplit("/", 1)[1]
        vols += [v for v in c.metadata(f"/1.0/storage-pools/{name}/volumes",
                                       params={"recursion": "1", "all-projects": "true"}) or []
                 if v.get("type") == "custom"]
    return ([{"expanded_config": i.get("expanded_config") or {}, "status": i.get("status")} for i in insts],
            vols)


async def _from_disk(paths: Paths) -> tuple[list[dict], list[dict]]:
    import lxc

    from corral.cluster.gateway import Gateway
    from corral.db import Database
    from corral.db.queries import instances as qi
    from corral.db.queries import profiles as qp
    from corral.db.queries import storage as qs
    from corral.instance.manager import Instances, expand
    db = Database(paths.global_db, paths.local_db, Gateway(paths.global_db))
    await db.start()
    try:
        async with db.session() as tx:
            recs = await qi.get_all(tx)
            profiles = {p: {x["name"]: x for x in await qp.get_all(tx, p)} for p in {r["project"] for r in recs}}
            volumes = await qs.all_volumes(tx, "custom")
    finally:
        await db.stop()
    out = []
    for r in recs:
        profs = [profiles[r["project"]][n] for n in r["profiles"] if n in profiles[r["project"]]]
        cfg, _ = expand(profs, r["config"], r["devices"])
        c = lxc.Container(Instances.volume_name(r["project"], r["name"]), config_path=paths.join("containers"))
        out.append({"expanded_config": cfg, "status": "Running" if c.running else "Stopped"})
    return out, volumes
