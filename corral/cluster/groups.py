"""Cluster groups as LXD 5.0 shows and edits them (/1.0/cluster/groups): named sets of members that
`--target @GROUP` places instances on. The `default` group holds every new member and can be
neither renamed nor deleted; a member always belongs to at least one group.

LXD 5.0.2's texts. Where LXD 5.0.2 answers bad input with a 500 (an existing name: "This cluster
group already exists"; an unknown group renamed or deleted: "Query affected 0 rows instead of 1")
Corral answers 409 / 404 with a clear text. LXD 5.0.2 lets a PUT take a member out of its only group
(the member is then in none); Corral refuses it with later LXD's text, keeping the invariant.
"""
from __future__ import annotations

from corral.db.queries import cluster_groups as qg
from corral.errors import BadRequest, Conflict, Forbidden, NotFound

DEFAULT = qg.DEFAULT
NOT_FOUND = "Cluster group not found"
MEMBER_NOT_FOUND = "Failed to get node info: Cluster member not found"


def render(group: dict) -> dict:
    """api.ClusterGroup, in LXD's field order."""
    return {"description": group["description"], "members": list(group["members"]), "name": group["name"]}


def writable(group: dict) -> dict:
    """api.ClusterGroupPut: what the ETag covers."""
    return {"description": group["description"], "members": list(group["members"])}


def url(name: str) -> str:
    return f"/1.0/cluster/groups/{name}"


def check_name(name: str) -> None:
    if not name:
        raise BadRequest("No name provided")
    if "/" in name:
        raise BadRequest("Cluster group names may not contain slashes")


async def get_all(state) -> list[dict]:
    async with state.db.session() as tx:
        return [render(g) for g in await qg.get_all(tx)]


async def names(state) -> list[str]:
    async with state.db.session() as tx:
        return await qg.names(tx)


async def get(state, name: str) -> dict:
    async with state.db.session() as tx:
        g = await qg.get(tx, name)
    if g is None:
        raise NotFound(NOT_FOUND)
    return render(g)


async def _member_ids(tx, members: list[str]) -> dict[str, int]:
    ids = await qg.member_ids(tx, members)
    if any(m not in ids for m in members):
        raise NotFound(MEMBER_NOT_FOUND)
    return ids


async def create(state, name: str, description: str, members: list[str]) -> None:
    check_name(name)
    async with state.db.transaction() as tx:
        if await qg.get(tx, name) is not None:
            raise Conflict("This cluster group already exists")
        ids = await _member_ids(tx, members)
        await qg.create(tx, name, description, [ids[m] for m in members])


async def update(state, name: str, description: str, members: list[str]) -> None:
    """Replace a group's description and members (PUT; a PATCH fills in what it did not send). A
    member taken out must still be in another group."""
    async with state.db.transaction() as tx:
        g = await qg.get(tx, name)
        if g is None:
            raise NotFound(NOT_FOUND)
        ids = await _member_ids(tx, members)
        gone = [m for m in g["members"] if m not in ids]
        if gone:
            gone_ids = await qg.member_ids(tx, gone)
            counts = await qg.group_counts(tx, list(gone_ids.values()))
            for m in gone:
                if counts.get(gone_ids[m], 0) <= 1:
                    raise BadRequest(f"Cannot remove {m} from group as member needs to belong to at least one group")
            await qg.remove_members(tx, g["id"], list(gone_ids.values()))
        await qg.set_description(tx, g["id"], description)
        await qg.add_members(tx, g["id"], [ids[m] for m in members if m not in g["members"]])


async def rename(state, old: str, new: str) -> None:
    if old == DEFAULT:
        raise Forbidden(f'The "{DEFAULT}" group cannot be renamed')
    check_name(new)
    async with state.db.transaction() as tx:
        if await qg.get(tx, old) is None:
            raise NotFound(NOT_FOUND)
        if await qg.get(tx, new) is not None:
            raise Conflict(f'Name "{new}" already in use')
        await qg.rename(tx, old, new)


async def delete(state, name: str) -> None:
    if name == DEFAULT:
        raise Forbidden(f"The '{DEFAULT}' cluster group cannot be deleted")
    async with state.db.transaction() as tx:
        g = await qg.get(tx, name)
        if g is None:
            raise NotFound(NOT_FOUND)
        if g["members"]:
            raise BadRequest("Only empty cluster groups can be removed")
        await qg.delete(tx, g["id"])
