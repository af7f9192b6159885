"""Image aliases (a part of corral/image/images.py's Images, which inherits it; the methods use its
database, events and fingerprint lookups)."""
from __future__ import annotations

from typing import Any, Callable

from corral.apitypes import ImageAliasesEntryPut, ImageAliasesPost
from corral.db.queries import images as q
from corral.errors import BadRequest, Conflict, NotFound
from corral.image.imagechecks import alias_url, check_alias_name


class ImageAliases:
    async def alias_names(self, project: str) -> list[str]:
        project = await self.effective_project(project)
        async with self.db.session() as tx:
            return await q.alias_names(tx, project)

    async def aliases(self, project: str) -> list[dict]:
        project = await self.effective_project(project)
        async with self.db.session() as tx:
            return await q.aliases(tx, project)

    async def alias_get(self, project: str, name: str) -> dict:
        project = await self.effective_project(project)
        async with self.db.session() as tx:
            a = await q.alias(tx, project, name)
        if a is None:
            raise NotFound("Image alias not found")
        return a

    async def alias_create(self, project: str, req: ImageAliasesPost, requestor: dict | None = None) -> str:
        project = await self.effective_project(project)
        name, target, desc = req.name, req.target, req.description
        if not name or not target:
            raise BadRequest("name and target are required")
        name = check_alias_name(name)
        async with self.db.transaction() as tx:
            if await q.alias(tx, project, name) is not None:
                raise Conflict(f'Alias "{name}" already exists')
            fp = await self._full(tx, project, target)
            await q.alias_create(tx, project, name, fp, desc)
        self.events.lifecycle("image-alias-created", alias_url(name, project), project=project,
                              context={"target": target}, requestor=requestor)
        return name

    async def alias_update(self, project: str, name: str, req: ImageAliasesEntryPut, *, replace: bool,
                           etag_check: Callable[[Any], None] | None = None,
                           requestor: dict | None = None) -> None:
        project = await self.effective_project(project)
        if replace and not req.target:
            raise BadRequest("The target field is required")
        async with self.db.transaction() as tx:
            cur = await q.alias(tx, project, name)
            if cur is None:
                raise NotFound("Image alias not found")
            if etag_check is not None:
                etag_check(cur)
            if replace:
                target, desc = req.target, req.description
            else:   # PATCH: a field not sent (or null) keeps its value
                target = req.target if req.given("target") and req.target else cur["target"]
                desc = req.description if req.given("description") else cur["description"]
            fp = await self._full(tx, project, target)
            await q.alias_update(tx, project, name, fp, desc)
        self.events.lifecycle("image-alias-updated", alias_url(name, project), project=project,
                              context={"target": target}, requestor=requestor)

    async def alias_rename(self, project: str, name: str, new_name: Any, requestor: dict | None = None) -> str:
        project = await self.effective_project(project)
        new_name = check_alias_name(new_name)
        async with self.db.transaction() as tx:
            if await q.alias(tx, project, new_name) is not None:
                raise Conflict(f'Alias "{new_name}" already exists')
            if await q.alias(tx, project, name) is None:
                raise NotFound("Image alias not found")
            await q.alias_rename(tx, project, name, new_name)
        self.events.lifecycle("image-alias-renamed", alias_url(new_name, project), project=project,
                              context={"old_name": name}, requestor=requestor)
        return new_name

    async def alias_delete(self, project: str, name: str, requestor: dict | None = None) -> None:
        project = await self.effective_project(project)
        async with self.db.transaction() as tx:
            if await q.alias(tx, project, name) is None:
                raise NotFound("Image alias not found")
            await q.alias_delete(tx, project, name)
        self.events.lifecycle("image-alias-deleted", alias_url(name, project), project=project,
                              requestor=requestor)
