"""Moving a stopped instance to another project (POST /1.0/instances/NAME with "project", what
`lxc move c --target-project p` sends; LXD's instance_project_move): the instance and its snapshots
are copied into the target project (a copy with `source.project`), then the source is deleted. If the
copy fails nothing changes; the source is kept until the copy exists."""
from __future__ import annotations

from corral.errors import BadRequest, Conflict, NotFound
from corral.instance.model import resources, url
from corral.instance.requests import InstanceCreate, InstanceMove, InstanceSource
from corral.names import check_instance_name


async def move(instances, project: str, name: str, req: InstanceMove, requestor):
    d = instances.d
    target = req.project
    if not d.projects.known(target):
        raise NotFound("Project not found")
    new = check_instance_name(req.name or name)
    inst = await instances.load(project, name)
    if target == project:
        raise BadRequest(f'Instance "{name}" is already in project "{target}"')
    if instances.status(inst) != "Stopped":
        raise BadRequest("Instance must be stopped to be moved to another project")
    if req.pool:
        raise BadRequest("Moving to another project and storage pool at once is not supported")
    if new in await instances.names(target):
        raise Conflict(f'Name "{new}" already in use')
    copy = InstanceCreate(name=new, profiles=list(inst.rec["profiles"]),
                          source=InstanceSource(type="copy", source=name, project=project,
                                                instance_only=req.instance_only))
    created = await instances.create(target, copy, requestor)   # checks the target project's limits

    async def run(op):
        await created.wait(None)
        if created.status != "Success":
            raise BadRequest(f"Failed to copy the instance to project {target}: {created.err}")
        deleted = await instances.delete(project, name, requestor)
        await deleted.wait(None)
        if deleted.status != "Success":
            raise BadRequest(f"Copied to project {target} but failed to delete the source: {deleted.err}")
        instances.events.lifecycle("instance-renamed", url(new, target), project=target,
                                   context={"old_name": name, "old_project": project}, requestor=requestor)

    return d.operations.create(project=project, description="Moving instance to another project",
                               resources=resources(name, project), run=run)
