"""Moving a custom volume to another project (POST .../volumes/custom/NAME with "project", what
`lxc storage volume move p/v p/v --target-project other` sends; LXD's storage_volume_project_move):
a copy with its snapshots into the target project (and pool, if given), then the source is deleted.
If the copy fails nothing changes; the source is kept until the copy exists."""
from __future__ import annotations

from corral.errors import BadRequest, NotFound
from corral.names import check_entity_name
from corral.storage.volumes import vol_url


async def move(volumes, pool: str, project: str, name: str, body: dict, requestor):
    d = volumes.d
    if not isinstance(body["project"], str) or not d.projects.known(body["project"]):
        raise NotFound("Project not found")
    target_project = d.projects.holder("storage.volumes", body["project"])
    target_pool = body.get("pool") or pool
    new = check_entity_name("storage volume", body.get("name") or name)
    v = await volumes.custom(pool, project, name)
    if await volumes.used_by(pool, project, name):
        raise BadRequest("Volume is still in use by instances or profiles")
    created = await volumes.create(target_pool, target_project, {
        "name": new, "description": v.get("description") or "",
        "source": {"type": "copy", "name": name, "pool": pool, "project": project}}, "custom", requestor)

    async def run(op):
        await created.wait(None)
        if created.status != "Success":
            raise BadRequest(f"Failed to copy the volume to project {target_project}: {created.err}")
        await volumes.delete(pool, project, "custom", name, requestor)
        volumes.events.lifecycle("storage-volume-moved", vol_url(target_pool, "custom", new, target_project),
                                 project=target_project, context={"old_name": name, "old_project": project},
                                 requestor=requestor)

    return d.operations.create(project=project, description="Moving storage volume",
                               resources={"storage_volumes": [vol_url(pool, "custom", name, project)]}, run=run)
