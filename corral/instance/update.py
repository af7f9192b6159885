"""Instance and profile updates: validate -> apply to the running container -> commit.

PUT/PATCH of an instance runs under the instance's lock from the If-Match comparison to the database
write, so two updates sent with the same ETag give one success and one 412, and a PATCH merges onto
the latest stored record. A PUT answers with an operation (as LXD does); the lock taken by the request
is handed to that operation and released when it finishes.

Live changes (cgroup limits, hot-plugged devices) are applied before anything is stored. When one
fails, what this update applied is undone (limits written back from the old expanded config, devices
unplugged/replugged by hotplug.apply) and the record stays as it was. A profile change is applied the
same way to every running instance that uses the profile, under all their locks; when one instance
refuses it, the instances already changed are put back and the profile is not stored.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import AsyncIterator, Callable

from corral.config import instance_types
from corral import config
from corral.db.queries import instances as q
from corral.errors import BadRequest, CorralError
from corral.instance import hotplug, live_keys
from corral.instance.devices import validate_devices
from corral.instance.model import Loaded, expand, root_pool, url
from corral.instance.requests import InstanceUpdate

log = logging.getLogger(__name__)

EtagCheck = Callable[[dict], None]


class _HeldLock:
    """An acquired asyncio.Lock whose release() may come once from any task."""

    def __init__(self, lock: asyncio.Lock):
        self._lock = lock
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._lock.release()


async def _acquire(lock: asyncio.Lock) -> _HeldLock:
    await lock.acquire()
    return _HeldLock(lock)


# ---- validation ----------------------------------------------------------------------------------

async def plan(insts, inst, req: InstanceUpdate, *, replace: bool) -> dict:
    """Validate a PUT (replace) or PATCH request against the current record `inst`: the new record
    fields, or a 400. Nothing is changed."""
    r = inst.rec
    if replace:
        cfg = config.validate(config.INSTANCE, req.config)
        # volatile.* belong to the daemon: keep those a client did not send back.
        for k, v in r["config"].items():
            if k.startswith("volatile.") and k not in cfg:
                cfg[k] = v
        devices = validate_devices(insts.d, req.devices, inst)
        description = req.description
        ephemeral = req.ephemeral
    else:
        cfg = {**r["config"], **config.validate(config.INSTANCE, req.config)}
        devices = {**r["devices"], **validate_devices(insts.d, req.devices, inst)}
        description = req.description if "description" in req.sent else r["description"]
        ephemeral = req.ephemeral if "ephemeral" in req.sent else r["ephemeral"]
    itype = r.get("type") or "container"
    instance_types.check({k: v for k, v in cfg.items() if r["config"].get(k) != v}, itype, prefix="")
    profiles = req.profiles if req.profiles is not None else r["profiles"]
    async with insts.db.session() as tx:
        profs = await insts._profiles(tx, inst.project, profiles)
    if itype == "virtual-machine":
        from corral.instance.vm import check_config
        check_config(expand(profs, cfg, devices)[0])
    await insts.d.restrictions.check_instance(inst.project, inst.name, cfg, devices, profs,
                                              current=r["config"])
    await insts.d.limits.check_instance(inst.project, inst.name, r.get("type") or "container", cfg, devices,
                                        profiles, current=True)
    _, edev = expand(profs, cfg, devices)
    if root_pool(edev) != root_pool(inst.devices):
        raise BadRequest("Changing the root disk's pool is not supported here (use `move --storage`)")
    return {"architecture": req.architecture or r["architecture"], "ephemeral": ephemeral,
            "description": description, "config": cfg, "devices": devices, "profiles": profiles}


async def _expanded(insts, rec: dict, replace_profile: dict | None = None):
    """A Loaded for `rec` (not necessarily stored), with one profile optionally replaced."""
    async with insts.db.session() as tx:
        profs = await insts._profiles(tx, rec["project"], rec["profiles"])
    if replace_profile is not None:
        profs = [replace_profile if p["name"] == replace_profile["name"] else p for p in profs]
    return Loaded(rec, *expand(profs, rec["config"], rec["devices"]))


# ---- live apply with undo ------------------------------------------------------------------------

def _limits(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k.startswith("limits.")}


async def apply_live(insts, old, new) -> None:
    """Make the running instance `old` look like `new` (Loaded, same instance): limits, then
    hot-pluggable devices. On failure everything this call changed is put back and the error
    raised; the caller stores nothing."""
    dname = insts.driver_name(old.project, old.name)
    obj = insts.instance(old)
    if obj.type_name == "virtual-machine":   # limits and other keys: at the next start; NICs hot-plugged
        await hotplug.apply_vm(insts.d, obj, old, new)
        return
    driver = obj.driver
    limits_changed = _limits(old.config) != _limits(new.config)
    if limits_changed:
        try:
            await asyncio.to_thread(driver.apply_limits, dname, new.config)
        except BaseException:
            await _restore_limits(driver, dname, old)
            raise
    keys_applied = False
    try:
        pid = await asyncio.to_thread(driver.init_pid, dname)
        await live_keys.apply(insts.d, old, new, pid)
        keys_applied = True
        await hotplug.apply(insts.d, old, new, pid)
    except BaseException:
        if keys_applied:
            try:
                await live_keys.apply(insts.d, new, old, pid)
            except Exception:  # noqa: BLE001 - the first error is the one reported
                log.exception("instance %s: restoring live keys failed", dname)
        if limits_changed:
            await _restore_limits(driver, dname, old)
        raise


async def _restore_limits(driver, dname: str, old) -> None:
    """Write back every limit of the old expanded config (a partial write is undone this way too)."""
    try:
        await asyncio.to_thread(driver.apply_limits, dname, old.config)
    except Exception:  # noqa: BLE001 - the first error is the one reported
        log.exception("instance %s: restoring the previous limits failed", dname)


async def _undo_live(insts, old, new) -> None:
    try:
        await apply_live(insts, new, old)
    except Exception:  # noqa: BLE001
        log.exception("instance %s: undoing a live change failed", old.name)


# ---- instance PUT/PATCH --------------------------------------------------------------------------

async def begin(insts, project: str, name: str, req: InstanceUpdate, *, replace: bool,
                etag_check: EtagCheck | None):
    """Take the instance lock, compare If-Match with the stored record, validate the body.
    Returns (held lock, current Loaded, plan). On any error the lock is released."""
    held = await _acquire(insts.lock(project, name))
    try:
        inst = await insts.load(project, name)
        if etag_check is not None:
            etag_check(insts.etag_fields(inst))
        new_fields = await plan(insts, inst, req, replace=replace)
    except BaseException:
        held.release()
        raise
    return held, inst, new_fields


async def commit(insts, inst, new_fields: dict, *, requestor: dict | None) -> None:
    """Apply (when running) then store `new_fields`; the caller holds the instance lock."""
    new = await _expanded(insts, {**inst.rec, **new_fields})
    obj = insts.instance(inst)
    running = obj.status() == "Running"
    if obj.type_name == "virtual-machine":
        await obj.resize_root(new)   # the disk grown to the root device's new size (a shrink: refused)
    before = await _stored_volatile(insts, inst)
    if running:
        try:
            await apply_live(insts, inst, new)
        except Exception as e:   # what the host refused, as a clear 4xx (its own when it has one)
            await _revert_volatile(insts, inst, before)
            if isinstance(e, CorralError) and e.status < 500:
                raise
            msg = e.message if isinstance(e, CorralError) else str(e) or type(e).__name__
            raise BadRequest(f'Failed to apply the change to instance "{inst.name}": {msg}') from e
        except BaseException:
            await _revert_volatile(insts, inst, before)
            raise
    try:
        async with insts.db.transaction() as tx:
            # Keep what the apply recorded (volatile.<nic>.hwaddr/host_name of hot-plugged NICs).
            rec = await q.get(tx, inst.project, inst.name)
            cfg = _merge(new_fields["config"], _delta(before, _volatile(rec["config"])))
            await q.update(tx, inst.project, inst.name, {**new_fields, "config": cfg})
    except BaseException:
        if running:
            await _undo_live(insts, inst, new)
        await _revert_volatile(insts, inst, before)
        raise
    insts.events.lifecycle("instance-updated", _url(inst), project=inst.project, requestor=requestor)
    await insts.d.on_instance_changed(inst.project, inst.name)


# Hot-plugging a NIC records volatile.<device>.* in the stored record as it goes; an update that
# fails takes back what it recorded for devices the instance did not have before. (A device that was
# unplugged and plugged back keeps the host-side name it has now, which is the truth.)

def _volatile(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k.startswith("volatile.")}


def _delta(before: dict, after: dict) -> dict:
    return {k: after.get(k) for k in set(before) | set(after) if before.get(k) != after.get(k)}


def _merge(cfg: dict, delta: dict) -> dict:
    out = dict(cfg)
    for k, v in delta.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


async def _stored_volatile(insts, inst) -> dict:
    async with insts.db.session() as tx:
        rec = await q.get(tx, inst.project, inst.name)
    return _volatile(rec["config"]) if rec else {}


async def _revert_volatile(insts, inst, before: dict) -> None:
    back = _delta(await _stored_volatile(insts, inst), before)
    back = {k: v for k, v in back.items() if k.split(".")[1] not in inst.devices}
    if back:
        await insts.set_volatile(inst.project, inst.name, back)


def _url(inst) -> str:
    return url(inst.name, inst.project)


async def update(insts, project: str, name: str, req: InstanceUpdate, *, replace: bool,
                 etag_check: EtagCheck | None, requestor: dict | None, operations=None):
    """PUT (with `operations`: returns the operation doing the work) or PATCH (done on return)."""
    held, inst, new_fields = await begin(insts, project, name, req, replace=replace, etag_check=etag_check)
    if operations is None:
        try:
            await insts.instance(inst).update(new_fields, requestor)
        finally:
            held.release()
        return None

    async def run(op):
        try:
            await insts.instance(inst).update(new_fields, requestor)
        finally:
            held.release()
    try:
        op = operations.create(project=project, description="Updating instance",
                               resources={"instances": [url(name, project)]}, run=run)
    except BaseException:
        held.release()
        raise
    op.on_finish(held.release)   # also when the operation is cancelled before it ran
    return op


# ---- profile changes on running instances --------------------------------------------------------

@contextlib.asynccontextmanager
async def profile_change(insts, project: str, profile: dict) -> AsyncIterator[None]:
    """Apply the new `profile` (name, config, devices) to the running instances that use it, hold
    their locks while the caller stores the profile, and undo everything if the caller fails."""
    users: list[tuple[str, str]] = []   # (project, name): also projects sharing these profiles
    async with insts.db.session() as tx:
        for p in insts.d.projects.sharing("profiles", project):
            users += [(p, r["name"]) for r in await q.get_all(tx, p) if profile["name"] in r["profiles"]
                      and Loaded(r, {}, {}).local]   # the other members' instances are theirs
    users.sort()
    held: list[_HeldLock] = []
    done: list[tuple] = []
    try:
        for p, n in users:   # one order for everybody: no deadlock between two profile updates
            held.append(await _acquire(insts.lock(p, n)))
        try:
            for p, n in users:
                async with insts.db.session() as tx:
                    rec = await q.get(tx, p, n)
                if rec is None:
                    continue
                old = await _expanded(insts, rec)
                if insts.status(old) != "Running":
                    continue
                new = await _expanded(insts, rec, {**profile, "name": profile["name"]})
                before = _volatile(rec["config"])
                try:
                    await apply_live(insts, old, new)
                except BaseException as e:
                    await _revert_volatile(insts, old, before)
                    if isinstance(e, CorralError):
                        raise BadRequest(f'Failed to apply the profile to instance "{n}": {e.message}') from e
                    if isinstance(e, Exception):
                        raise BadRequest(f'Failed to apply the profile to instance "{n}": {e}') from e
                    raise
                done.append((old, new, before))
            yield
        except BaseException:
            for old, new, before in reversed(done):
                await _undo_live(insts, old, new)
                await _revert_volatile(insts, old, before)
            raise
    finally:
        for h in reversed(held):
            h.release()
    for old, _, _ in done:
        await insts.d.on_instance_changed(old.project, old.name)

