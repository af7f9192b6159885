"""The operations that change one instance as a whole: state changes (PUT .../state), rename and
moves (POST), delete. Each checks what it can at once (404, a running instance, a taken name) and
returns an operation that does the work on the instance object under the instance's lock."""
from __future__ import annotations

from corral import config
from corral.errors import BadRequest, Conflict, NotImplementedFeature
from corral.instance import poolmove, projectmove
from corral.instance.model import resources, url
from corral.instance.requests import InstanceMove, InstanceStateChange
from corral.names import check_instance_name

DESCRIPTIONS = {"start": "Starting instance", "stop": "Stopping instance", "restart": "Restarting instance",
                "freeze": "Freezing instance", "unfreeze": "Unfreezing instance"}


async def change_state(insts, project: str, name: str, req: InstanceStateChange, requestor: dict | None):
    if req.action not in DESCRIPTIONS:
        raise BadRequest(f"Unknown action: '{req.action}'")
    if req.stateful:
        raise NotImplementedFeature("stateful stop/start (CRIU)")
    await insts.load(project, name)   # 404 now rather than a failed operation

    async def run(op):
        async with insts.lock(project, name):
            cur = insts.instance(await insts.load(project, name))
            await do_state(cur, req, requestor)

    return insts.d.operations.create(project=project, description=DESCRIPTIONS[req.action],
                                     resources={"instances": [url(name, project)]}, run=run)


async def do_state(inst, req: InstanceStateChange, requestor: dict | None) -> None:
    """One state change on an Instance; the caller holds its lock."""
    if req.action == "start":
        await inst.start(requestor)
    elif req.action == "stop":
        await inst.stop(force=req.force, timeout=req.timeout, requestor=requestor)
    elif req.action == "restart":
        await inst.restart(force=req.force, timeout=req.timeout, requestor=requestor)
    elif req.action == "freeze":
        await inst.freeze(requestor)
    elif req.action == "unfreeze":
        await inst.unfreeze(requestor)


async def rename(insts, project: str, name: str, req: InstanceMove, requestor: dict | None):
    if req.pool or req.project:
        cur = await insts.load(project, name)
        if (cur.rec.get("type") or "container") == "virtual-machine":
            raise NotImplementedFeature("moving virtual machines to another pool or project")
    if req.pool and not req.project:   # "live" is sent by lxc; a move needs a stopped instance
        body = {"pool": req.pool, "name": req.name, "instance_only": req.instance_only}
        return await poolmove.move(insts, project, name, body, requestor)
    if req.project and not req.target:   # instance_project_move (lxc sends migration=true)
        return await projectmove.move(insts, project, name, req, requestor)
    if req.migration or req.pool or req.live:
        raise NotImplementedFeature("moving instances between servers")
    new = check_instance_name(req.name or None)
    inst = await insts.load(project, name)
    if insts.status(inst) != "Stopped":
        raise BadRequest("Renaming of running instance not allowed")
    if new in await insts.names(project) or (project, new) in insts._reserved:
        raise Conflict(f'Name "{new}" already in use')

    async def run(op):
        async with insts.lock(project, name):
            await insts.instance(await insts.load(project, name)).rename(new)
        insts.events.lifecycle("instance-renamed", url(new, project), project=project,
                               context={"old_name": name}, requestor=requestor)

    return insts.d.operations.create(project=project, description="Renaming instance",
                                     resources=resources(name, project), run=run)


async def delete(insts, project: str, name: str, requestor: dict | None):
    inst = await insts.load(project, name)
    if insts.status(inst) != "Stopped":
        raise BadRequest("Instance is running")
    if config.value(config.INSTANCE, inst.config, "security.protection.delete"):
        raise BadRequest("Instance is protected")

    async def run(op):
        async with insts.lock(project, name):
            await insts.instance(await insts.load(project, name)).delete(requestor)

    return insts.d.operations.create(project=project, description="Deleting instance",
                                     resources=resources(name, project), run=run)
