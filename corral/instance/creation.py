"""Creating instances (POST /1.0/instances): the request checked against names, profiles, pools,
project restrictions and limits, then an operation that makes the volume (from an image, a copy or
empty), the records and the driver's definition."""
from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid

from corral import config, timeutil
from corral.config import instance_types
from corral.db.queries import instances as q
from corral.errors import BadRequest, Conflict, NotFound
from corral.image.remote import check_source
from corral.instance import clustermove
from corral.instance.devices import validate_devices
from corral.idmap import IdmapEntry, default_idmap
from corral.instance.model import Loaded, expand, resources, root_pool, url
from corral.instance.requests import InstanceCreate
from corral.instance.types import instance_class
from corral.locks import LOCKS
from corral.names import check_instance_name

log = logging.getLogger(__name__)

_ADJECTIVES = ("amazing", "brave", "calm", "daring", "eager", "fancy", "gentle", "happy", "jolly", "keen",
               "lucky", "merry", "nimble", "proud", "quick", "sunny", "tidy", "vivid", "witty", "zesty")
_NOUNS = ("badger", "bison", "crane", "dingo", "eagle", "ferret", "gecko", "heron", "ibex", "jackal",
          "koala", "lemur", "marten", "newt", "otter", "panda", "quail", "raven", "stoat", "tapir")


def random_name(taken: set[str]) -> str:
    while True:
        name = f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}"
        if name not in taken:
            return name


async def create(insts, project: str, req: InstanceCreate, requestor: dict | None):
    """Validate a POST /1.0/instances request; return the operation that creates the instance."""
    d = insts.d
    itype = req.type or "container"
    if itype == "virtual-machine":   # a project's VM count limit refuses first, as LXD would
        await d.limits.check_count(project, itype)
    if itype not in ("container", "virtual-machine"):
        instance_class(itype)   # LXD's error: not built yet, or not a type at all
        raise BadRequest("Invalid instance type")
    existing = set(await insts.names(project))
    name = req.name or random_name(existing | {n for p, n in insts._reserved if p == project})
    check_instance_name(name)
    if name in existing or (project, name) in insts._reserved:
        raise Conflict(f'Instance "{name}" already exists')
    cfg = config.validate(config.INSTANCE, req.config)
    devices = validate_devices(d, req.devices)
    source = req.source
    profile_names = req.profiles
    if profile_names is None:   # LXD 5.0: an image's own profiles list, else the default profile
        from_image = await _image_profiles(insts, project, req)
        profile_names = ["default"] if from_image is None else from_image
    async with insts.db.session() as tx:
        profiles = await insts._profiles(tx, project, profile_names)
    ecfg, edev = expand(profiles, cfg, devices)
    pool = root_pool(edev)
    if not pool:
        raise BadRequest("Failed to get root disk device: No root device could be found")
    d.pools.pool(pool)  # NotFound when the pool does not exist
    plan: dict = {"type": source.type}
    if source.type == "image":
        if source.remote_image:
            plan["remote"] = check_source(source.image, req.type or "")   # downloaded (or reused) by the operation
        else:
            plan["fingerprint"] = await d.images.resolve(project, source.image)
            await check_image_type(d, project, plan["fingerprint"], itype)
    elif source.type == "copy":
        if not source.source:
            raise BadRequest("No source instance given")
        src_name, _, src_snap = source.source.partition("/")
        src_project = source.project or project   # container_copy_project
        if not d.projects.known(src_project):
            raise NotFound("Project not found")
        src_inst = await insts.load(src_project, src_name)
        src_type = src_inst.rec.get("type") or "container"
        if req.type and req.type != src_type:
            raise BadRequest(f"Requested instance type '{req.type}' doesn't match the source's type '{src_type}'")
        itype = src_type
        if src_snap:
            await insts.get_snapshot(src_inst, src_snap)
        plan.update(source=src_inst, snapshot=src_snap, instance_only=source.instance_only)
    elif source.type in ("migration", "conversion"):
        from corral.errors import NotImplementedFeature
        raise NotImplementedFeature(f"creating instances by {source.type}")
    elif source.type != "none":
        raise BadRequest(f'Unknown source type "{source.type}"')
    instance_types.check(cfg, itype)
    if itype == "virtual-machine":
        from corral.instance.vm import check_config
        check_config(ecfg)
    plan["root_size"] = next((dv.get("size") for dv in edev.values() if dv.get("type") == "disk"
                              and dv.get("path") == "/" and not dv.get("source")), None)
    if plan["root_size"] and itype == "container":
        from corral.errors import NotImplementedFeature
        raise NotImplementedFeature("a size on a container's root disk (volume quotas through the root disk "
                                    "device); set the volume's own \"size\"")
    copy_of = plan["source"].rec if source.type == "copy" else None
    await d.restrictions.check_instance(project, name, cfg, devices, profiles, copy_of=copy_of)
    rec = {"project": project, "name": name, "type": itype, "architecture": "x86_64",
           "ephemeral": req.ephemeral, "stateful": False, "description": req.description,
           "config": cfg, "devices": devices, "profiles": profile_names}
    # Counted and reserved under the project's lock: two creations can't both take the last slot,
    # nor can a project update lower a limit between the check and the reservation.
    async with LOCKS.hold("project", project):
        if (project, name) in insts._reserved:
            raise Conflict(f'Instance "{name}" already exists')
        await d.limits.check_instance(project, name, itype, cfg, devices, profile_names, copy_of=copy_of)
        insts._reserved.add((project, name))

    async def run(op):
        try:
            async with insts.lock(project, name):
                await _create(insts, rec, pool, plan, op)
        finally:
            insts._reserved.discard((project, name))
        insts.events.lifecycle("instance-created", url(name, project), project=project,
                               context={"storage-pool": pool, "type": itype}, requestor=requestor)
        if req.start:
            async with insts.lock(project, name):
                await insts.instance(await insts.load(project, name)).start(requestor)

    return d.operations.create(project=project, description="Creating instance",
                               resources=resources(name, project), run=run)


async def _image_profiles(insts, project: str, req: InstanceCreate) -> list[str] | None:
    """The profiles of the local image an instance is created from (None for other sources)."""
    if req.source.type != "image" or req.source.remote_image:
        return None
    images = insts.d.images
    image = await images.get(project, await images.resolve(project, req.source.image))
    return list(image.get("profiles") or [])


async def _create(insts, rec: dict, pool: str, plan: dict, op) -> None:
    d = insts.d
    project, name = rec["project"], rec["name"]
    spool = d.pools.pool(pool)
    vol = insts.volume_name(project, name)
    cfg = rec["config"]
    kw = {"vtype": rec["type"]} if rec["type"] == "virtual-machine" else {}
    if plan["type"] == "image":
        if plan.get("remote") is not None:
            plan["fingerprint"] = await d.image_cache.for_instance(project, plan["remote"], op)
        fp = plan["fingerprint"]
        await check_image_type(d, project, fp, rec["type"])
        await d.images.ensure_local(project, fp)   # in a cluster: fetched from a member that has it
        await d.images.ensure_unpacked(fp, spool, **kw)
        image = await d.images.get(project, fp)
        rec["architecture"] = image.get("architecture") or "x86_64"
        for k, v in (image.get("properties") or {}).items():
            if config.keys.valid_key_name(f"image.{k}"):   # a property from an image's metadata.yaml
                cfg.setdefault(f"image.{k}", v)
        cfg["volatile.base_image"] = fp
        cfg["volatile.apply_template"] = "create"
        op.update_metadata({"create_instance_from_image_unpack_progress": "Unpack: 100%"})
        await asyncio.to_thread(spool.create_instance_from_image, vol, fp, **kw, **_root_size(rec, plan))
        image_project = await d.images.effective_project(project)
        plan["in_tx"] = lambda tx: d.images.touch(tx, image_project, fp)   # marked used with the records
    elif plan["type"] == "copy":
        src: Loaded = plan["source"]
        if not plan["snapshot"] and not clustermove.is_remote(insts, src) and insts.status(src) != "Stopped":
            log.info("copying running instance %s (stateless copy)", src.name)
        for k, v in src.rec["config"].items():
            if not k.startswith("volatile.") or k == "volatile.base_image":
                cfg.setdefault(k, v)
        if not rec["devices"]:
            rec["devices"] = dict(src.rec["devices"])
        rec["architecture"] = src.rec["architecture"]
        cfg["volatile.apply_template"] = "copy"
        if not plan["snapshot"] and not plan["instance_only"]:
            plan["copy_snapshots"] = await insts.snapshots(src)
        snaps = [s["name"] for s in plan.get("copy_snapshots") or []]
        if clustermove.is_remote(insts, src):   # pulled from the member it lives on
            await clustermove.copy_from_member(insts, src, spool, vol, plan["snapshot"] or None, snaps)
        else:
            # The volume (or the snapshot copied) with its snapshots, in one pool call (btrfs:
            # subvolume snapshots); undone whole by the pool when it fails.
            await asyncio.to_thread(spool.create_instance_from_copy, vol, d.pools.pool(src.pool),
                                    insts.volume_name(src.project, src.name), plan["snapshot"] or None, snaps, **kw)
    else:
        await asyncio.to_thread(spool.create_instance_empty, vol, **kw, **_root_size(rec, plan))
    try:
        cfg["volatile.uuid"] = str(uuid.uuid4())
        rec["created_at"], rec["last_used_at"] = timeutil.now(), timeutil.EPOCH
        await register(insts, rec, plan.get("copy_snapshots") or [], in_tx=plan.get("in_tx"))
    except BaseException:
        await asyncio.to_thread(spool.delete_instance, vol, **kw)
        async with insts.db.transaction() as tx:
            await q.delete(tx, project, name)
        raise


async def register(insts, rec: dict, snaps: list[dict], in_tx=None) -> None:
    """A new instance whose volume (and snapshot volumes) are in place: its idmap, its records
    (and its snapshots'), its driver config. Also the last step of `lxc import`. `in_tx(tx)`: more
    writes made in the same transaction (one commit)."""
    from corral.instance import layout
    from corral.instance.container import idmap_of
    project, name, cfg = rec["project"], rec["name"], rec["config"]
    cfg.setdefault("volatile.uuid", str(uuid.uuid4()))
    async with insts.db.session() as tx:
        profiles = await insts._profiles(tx, project, rec["profiles"])
    ecfg, _ = expand(profiles, cfg, rec["devices"])
    if config.value(config.INSTANCE, ecfg, "security.idmap.isolated") and \
            not config.value(config.INSTANCE, ecfg, "security.privileged"):
        idmap = await isolated_idmap(insts, config.value(config.INSTANCE, ecfg, "security.idmap.size"))
    else:
        idmap = idmap_of(ecfg)
    if idmap is not None and rec.get("type", "container") == "container":
        cfg["volatile.idmap.base"] = str(idmap[0].hostid)
        cfg["volatile.idmap.next"] = json.dumps([e.to_lxd() for e in idmap], separators=(",", ":"))
        cfg["volatile.last_state.idmap"] = "[]"
    async with insts.db.transaction() as tx:
        if await q.get(tx, project, name) is not None:
            raise Conflict(f'Instance "{name}" already exists')
        new_id = await q.create(tx, rec)
        for s in snaps:
            await q.create_snapshot(tx, new_id, s)
        if in_tx is not None:
            await in_tx(tx)
    inst = insts.instance(await insts.load(project, name))
    await asyncio.to_thread(inst.driver.create, inst.spec())
    await asyncio.to_thread(layout.sync, insts, inst.loaded)
    # backup.yaml: written by the writer on the instance-created event, off the request path.


async def isolated_idmap(insts, size: int) -> list[IdmapEntry]:
    """security.idmap.isolated: a block of `size` host ids no other isolated instance uses,
    taken from root's subordinate range after the first block (as LXD does); host ids are this
    member's, so only its instances count."""
    shared = default_idmap()
    uid_range, gid_range = shared[0], shared[1]
    used = {int(i.config["volatile.idmap.base"]) for i in await insts.load_local(None)
            if i.config.get("security.idmap.isolated") == "true" and i.config.get("volatile.idmap.base")}
    n = 1
    while (n + 1) * size <= min(uid_range.maprange, gid_range.maprange):
        if uid_range.hostid + n * size not in used:
            return [IdmapEntry(True, False, uid_range.hostid + n * size, 0, size),
                    IdmapEntry(False, True, gid_range.hostid + n * size, 0, size)]
        n += 1
    raise BadRequest("Not enough uid/gid available for the container (security.idmap.isolated)")


async def check_image_type(d, project: str, fingerprint: str, itype: str) -> None:
    """LXD's refusal of an image of the other type (a container image for --vm, and the reverse)."""
    image = await d.images.get(project, fingerprint)
    itype_of_image = image.get("type") or "container"
    if itype_of_image != itype:
        raise BadRequest(f'Requested image\'s type "{itype_of_image}" doesn\'t match instance type "{itype}"')


def _root_size(rec: dict, plan: dict) -> dict:
    """A VM's root disk `size` (its root disk device, expanded with its profiles) for the pool."""
    size = plan.get("root_size")
    return {"size": size} if rec["type"] == "virtual-machine" and size else {}
