"""A member's part in moving an instance to another cluster member (POST /1.0/instances/NAME?target=,
evacuation; the orchestration is corral/cluster/migrate.py's) and in copying an instance that lives
on another member:

- the source member (where the instance lives) `send`s it: under the instance's lock it checks that
  it is stopped (a stateless move stops it first), has the target `receive` the volume and its
  snapshots, moves the records to the target in one transaction, has the target `activate` it and
  then removes its own copy. The records move only once the target holds the data, the source's copy
  goes last; a failure before the records moved has the target `discard` what it received.
- the target `receive`s: it pulls each volume from the source's stream endpoint (GET
  /internal/cluster/instance-volume, corral/api/cluster_move.py; corral/storage/transfer.py's tar
  stream) into new volumes of the same pool.
- a member creating a copy (`lxc copy`) of another member's instance pulls the volumes the same way.

Members are reached through `state.cluster.peer` (mutual TLS with the cluster certificate).
"""
from __future__ import annotations

import asyncio
import logging
import shutil
from urllib.parse import urlencode

import aiohttp

from corral.db.queries import moves as qm
from corral.errors import BadRequest, Conflict, CorralError, NotFound
from corral.instance import layout
from corral.storage import transfer

log = logging.getLogger(__name__)

CRIU = "Unable to perform container live migration. CRIU isn't installed"
STOP_TIMEOUT = 30          # seconds of clean shutdown before a forced stop (LXD's default)
LONG = 24 * 3600           # member calls that move data: no practical limit
VOLUME_PATH = "/internal/cluster/instance-volume"


def _peer(insts):
    return insts.d.cluster.peer


def is_remote(insts, inst) -> bool:
    """Whether the instance lives on another member of this cluster."""
    cluster = insts.d.cluster
    return bool(cluster.clustered) and inst.rec.get("node") not in (None, cluster.server_name)


async def _local(insts, project: str, name: str):
    """The instance, refused unless it lives on this member."""
    inst = await insts.load(project, name)
    if is_remote(insts, inst):
        raise BadRequest(f'Instance "{name}" is on cluster member "{inst.rec["node"]}", not on this one')
    return inst


# ---- what the orchestrator asks of a member -----------------------------------------------------

async def info(insts, project: str, name: str) -> dict:
    """The instance as this member (where it lives) sees it: status, backups, last power state."""
    inst = await _local(insts, project, name)
    return {"status": insts.status(inst), "backups": len(insts.backups.list(inst)),
            "last_state": inst.rec["config"].get("volatile.last_state.power", "")}


async def stop(insts, project: str, name: str, *, remember_running: bool = False, keep: bool = False) -> bool:
    """Stop the instance if it runs (a clean shutdown, forced after STOP_TIMEOUT seconds); whether it
    ran. `remember_running`: keep volatile.last_state.power=RUNNING, so a restore starts it again.
    `keep`: stopped to be moved, so an ephemeral one is not deleted by its stop."""
    async with insts.lock(project, name):
        inst = await _local(insts, project, name)
        if insts.status(inst) == "Stopped":
            return False
        await _stop(insts, inst, keep)
        if remember_running:
            await insts.set_volatile(project, name, {"volatile.last_state.power": "RUNNING"})
        return True


async def _stop(insts, inst, keep: bool) -> None:
    obj = insts.instance(inst)
    ephemeral = obj.rec["ephemeral"]
    if keep:
        obj.rec["ephemeral"] = False   # as a restart does: this stop does not delete it
    try:
        await obj.stop(force=False, timeout=STOP_TIMEOUT)
    finally:
        obj.rec["ephemeral"] = ephemeral


async def start(insts, project: str, name: str) -> None:
    async with insts.lock(project, name):
        inst = await _local(insts, project, name)
        if insts.status(inst) != "Running":
            await insts.instance(inst).start()


# ---- the source member ----------------------------------------------------------------------------

async def send(insts, project: str, name: str, *, target: dict, new_name: str, live: bool) -> None:
    """Move the instance to member `target` ({name, id, address}) as `new_name`; a running one is
    refused when `live` (no CRIU), else stopped, moved and started again on the target."""
    d = insts.d
    peer = _peer(insts)
    was_running = False
    async with insts.lock(project, name):
        inst = await _local(insts, project, name)
        if insts.status(inst) != "Stopped":
            if live:
                reason = CRIU if shutil.which("criu") is None else "not implemented: stateful stop (CRIU)"
                raise BadRequest(f'Failed stopping instance "{name}": {reason}')
            await _stop(insts, inst, keep=True)
            was_running = True
            inst = await insts.load(project, name)
        if insts.backups.list(inst):
            raise BadRequest("Instance has backups")
        snaps = [s["name"] for s in await insts.snapshots(inst)]
        body = {"project": project, "name": name, "new_name": new_name, "pool": inst.pool,
                "snapshots": snaps, "source_address": d.cluster.address}
        try:
            await peer.call(target["address"], "POST", "/internal/cluster/instance-receive", body, timeout=LONG)
        except Exception as e:
            await _restart(insts, project, name, was_running)
            raise BadRequest(f'Failed to copy instance "{name}" to cluster member "{target["name"]}": {e}') from None
        try:
            async with d.db.transaction() as tx:
                await qm.move(tx, inst.rec["id"], target["id"], new_name)
        except BaseException:
            try:
                await peer.call(target["address"], "POST", "/internal/cluster/instance-discard",
                                {"project": project, "name": new_name, "pool": inst.pool}, timeout=LONG)
            except Exception as e:   # noqa: BLE001 - the move's own error is the one reported
                log.error("instance %s: removing the copy on %s failed: %s", name, target["name"], e)
            await _restart(insts, project, name, was_running)
            raise
        # From here on the instance lives on the target: only this member's leftovers remain.
        try:
            await peer.call(target["address"], "POST", "/internal/cluster/instance-activate",
                            {"project": project, "name": new_name}, timeout=LONG)
        except Exception as e:   # noqa: BLE001 - its next start writes the definition again
            log.warning("instance %s: activating on %s: %s", new_name, target["name"], e)
        try:
            await forget(insts, inst)
            left = None
        except Exception as e:   # noqa: BLE001 - moved all the same: said after the start below
            log.exception("instance %s: removing this member's copy after its move", name)
            left = e
    if was_running:
        await peer.call(target["address"], "POST", "/internal/cluster/instance-state",
                        {"project": project, "name": new_name, "action": "start"}, timeout=LONG)
    if left is not None:
        raise CorralError(f'Instance "{name}" moved to cluster member "{target["name"]}", but removing its '
                          f"copy on this member failed: {left}", 500)


async def _restart(insts, project: str, name: str, was_running: bool) -> None:
    if was_running:
        try:
            await insts.instance(await insts.load(project, name)).start()
        except CorralError as e:
            log.error("instance %s: starting it again after a failed move: %s", name, e.message)


async def forget(insts, inst) -> None:
    """This member's copy of an instance that moved away: its volume and snapshots, its liblxc
    definition, data dir links, logs and (empty) backups dir. The records are the target's now."""
    project, name = inst.project, inst.name
    vol = insts.volume_name(project, name)
    pool = insts.d.pools.pool(inst.pool)
    await asyncio.to_thread(insts.instance(inst).driver.delete, insts.driver_name(project, name))
    await asyncio.to_thread(layout.remove, insts, project, name)
    await asyncio.to_thread(pool.delete_instance, vol)
    await asyncio.to_thread(shutil.rmtree, insts.log_dir(project, name), True)
    await asyncio.to_thread(insts.backups.delete_all, project, name)
    insts.forget_lock(project, name)


def stream_volume(insts, inst, snapshot: str | None, out) -> int:
    """Blocking: the instance's volume (or snapshot) as a transfer stream written to `out`."""
    pool = insts.d.pools.usable(inst.pool)
    return transfer.write_tree(pool.instance_path(insts.volume_name(inst.project, inst.name), snapshot or None), out)


# ---- the target member ----------------------------------------------------------------------------

async def receive(insts, project: str, name: str, *, new_name: str, pool: str, snapshots: list[str],
                  source: str) -> None:
    """Pull instance `name`'s volume and `snapshots` from the member at `source` into this member's
    pool `pool`, as the volume of `new_name` (no records change here)."""
    spool = insts.d.pools.usable(pool)
    vol = insts.volume_name(project, new_name)
    if await asyncio.to_thread(spool.has_instance, vol) or await asyncio.to_thread(spool.has_instance_snapshots, vol):
        raise Conflict(f'Storage volume for instance "{new_name}" already exists in pool "{pool}" on this member')
    await _pull(insts, spool, vol, source, project, name, None, snapshots)


async def _pull(insts, spool, vol: str, source: str, project: str, name: str, snap: str | None,
                snapshots: list[str]) -> None:
    """Fill new volume `vol` (and its `snapshots`) from member `source`'s streams of instance
    `name` (its snapshot `snap` for the volume itself); undone whole on failure."""
    loop = asyncio.get_running_loop()
    session = _peer(insts).session()

    def filler(of: str | None):
        return lambda path: _fetch(loop, session, source, project, name, of, path)

    await asyncio.to_thread(spool.create_from_backup, spool.instance_volume(vol), filler(snap),
                            [(s, filler(s)) for s in snapshots])


def _fetch(loop, session, source: str, project: str, name: str, snap: str | None, path: str) -> None:
    """Blocking (a worker thread): GET one volume stream from `source`, extracted into `path`."""
    query = {"project": project, "name": name, **({"snapshot": snap} if snap else {})}
    url = f"https://{source}{VOLUME_PATH}?{urlencode(query)}"
    what = f"{name}/{snap}" if snap else name

    def on_loop(coro):
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    try:
        resp = on_loop(_open(session, url, what, source))
        try:
            transfer.extract_tree(transfer.buffered_reader(loop, resp.content.read), path)
        finally:
            on_loop(_close(resp))
    except transfer.TransferError as e:
        raise BadRequest(f"Failed to receive volume {what} from {source}: {e}") from None
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as e:
        raise BadRequest(f"Failed to receive volume {what} from {source}: {e or type(e).__name__}") from None


async def _open(session, url: str, what: str, source: str):
    resp = await session.get(url, timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=300),
                             auto_decompress=False)
    if resp.status != 200:
        text = await resp.text()
        resp.close()
        raise BadRequest(f"Failed to fetch volume {what} from {source}: {_error_of(text, resp.status)}")
    return resp


async def _close(resp) -> None:
    resp.close()


def _error_of(text: str, status: int) -> str:
    import json
    try:
        return json.loads(text).get("error") or f"HTTP {status}"
    except ValueError:
        return f"HTTP {status}"


async def activate(insts, project: str, name: str) -> None:
    """The records say the instance is here now: its liblxc definition, data dir links, backup.yaml."""
    inst = await _local(insts, project, name)
    obj = insts.instance(inst)
    await asyncio.to_thread(obj.driver.create, obj.spec())
    await asyncio.to_thread(layout.sync, insts, inst)
    await layout.write_backup_file(insts, project, name)


async def discard(insts, project: str, name: str, pool: str) -> None:
    """Remove what `receive` made for `name`, unless the records say the instance lives here."""
    async with insts.db.session() as tx:
        where = await qm.location(tx, project, name)
    cluster = insts.d.cluster
    if where is not None and where["node"] == cluster.server_name:
        raise BadRequest(f'Instance "{name}" lives on this member: its volume stays')
    spool = insts.d.pools.pool(pool)
    await asyncio.to_thread(spool.delete_instance, insts.volume_name(project, name))


# ---- copies of another member's instance --------------------------------------------------------------

async def copy_from_member(insts, src, spool, vol: str, snap: str | None, snapshots: list[str]) -> None:
    """New volume `vol` in `spool` (with `snapshots`) copied from instance `src` (or its snapshot
    `snap`), which lives on another member: pulled from that member's streams."""
    async with insts.db.session() as tx:
        where = await qm.location(tx, src.project, src.name)
    if where is None:
        raise NotFound("Instance not found")
    await _pull(insts, spool, vol, where["address"], src.project, src.name, snap, snapshots)
