"""Profiles: LXD semantics (default profile, PUT/PATCH, rename, used_by), stored in dqlite."""
from __future__ import annotations

import contextlib
from typing import AsyncContextManager, AsyncIterator, Callable, Protocol

from corral import config
from corral.apitypes import ProfilePut, ProfilesPost
from corral.db import Database
from corral.db.queries import profiles as q
from corral.devices import check_devices
from corral.errors import BadRequest, Conflict, NotFound
from corral.locks import LOCKS
from corral.names import check_entity_name

class ProfileHooks(Protocol):
    """What profiles need from the layers above them (the daemon's State implements it)."""

    async def profile_used_by(self, project: str, name: str) -> list[str]:
        """The URLs (instances) using the profile."""

    def validate_profile_devices(self, devices) -> dict[str, dict[str, str]]:
        """Per-type device validation (the device registry)."""

    def apply_profile_change(self, project: str, profile: dict) -> AsyncContextManager:
        """Applies a changed profile to the instances using it, around the commit."""

    async def check_profile(self, project: str, name: str, new: dict) -> None:
        """Project restrictions and limits on a new or changed profile."""


class NoHooks:
    """Profiles alone (tests): no instances use them, devices get the shape checks only."""

    async def profile_used_by(self, project: str, name: str) -> list[str]:
        return []

    def validate_profile_devices(self, devices) -> dict[str, dict[str, str]]:
        return check_devices(devices)

    @contextlib.asynccontextmanager
    async def apply_profile_change(self, project: str, profile: dict) -> AsyncIterator[None]:
        yield

    async def check_profile(self, project: str, name: str, new: dict) -> None:
        pass


def url(name: str, project: str = "default") -> str:
    return f"/1.0/profiles/{name}" + ("" if project == "default" else f"?project={project}")


class Profiles:
    def __init__(self, db: Database, events, hooks: ProfileHooks | None = None):
        self.db = db
        self.events = events
        self.hooks: ProfileHooks = hooks or NoHooks()

    async def used_by(self, project: str, name: str) -> list[str]:
        return await self.hooks.profile_used_by(project, name)

    async def _with_used_by(self, project: str, p: dict) -> dict:
        return {"config": p["config"], "description": p["description"], "devices": p["devices"],
                "name": p["name"], "used_by": await self.used_by(project, p["name"])}

    async def project_of(self, project: str) -> str:
        """The project holding the profiles of `project` (default's when features.profiles is off)."""
        from corral.projects import profiles_project
        async with self.db.session() as tx:
            return await profiles_project(tx, project)

    async def names(self, project: str) -> list[str]:
        async with self.db.session() as tx:
            return await q.names(tx, project)

    async def get_all(self, project: str) -> list[dict]:
        async with self.db.session() as tx:
            rows = await q.get_all(tx, project)
        return [await self._with_used_by(project, p) for p in rows]

    async def get_raw(self, project: str, name: str) -> dict:
        async with self.db.session() as tx:
            p = await q.get(tx, project, name)
        if p is None:
            raise NotFound("Profile not found")
        return p

    async def get(self, project: str, name: str) -> dict:
        return await self._with_used_by(project, await self.get_raw(project, name))

    @staticmethod
    def etag_fields(p: dict) -> dict:
        return {"config": p["config"], "description": p["description"], "devices": p["devices"]}

    def _check(self, req: ProfilePut) -> dict:
        return {"description": req.description,
                "config": config.validate(config.INSTANCE, req.config),
                "devices": self.hooks.validate_profile_devices(req.devices)}

    async def create(self, project: str, req: ProfilesPost, requestor: dict | None = None) -> str:
        name = check_entity_name("profile", req.name)
        p = {"name": name, **self._check(req)}
        await self.hooks.check_profile(project, name, p)
        async with self.db.transaction() as tx:
            if await q.get(tx, project, name) is not None:
                raise Conflict(f'Profile "{name}" already exists')
            await q.create(tx, project, p)
        self.events.lifecycle("profile-created", url(name, project), project=project, requestor=requestor)
        return name

    async def update(self, project: str, name: str, req: ProfilePut, *, replace: bool,
                     requestor: dict | None = None, etag_check: Callable[[dict], None] | None = None) -> None:
        """PUT/PATCH under the profile's lock: If-Match, validate, apply to the running instances
        that use it (hooks.apply_profile_change), store. Any failure stores nothing and undoes the instances."""
        async with LOCKS.hold("profile", project, name):
            cur = await self.get_raw(project, name)
            if etag_check is not None:
                etag_check(self.etag_fields(cur))
            if replace:
                new = self._check(req)
            else:  # PATCH: merge config keys and whole devices into the current profile
                patch = self._check(req)
                new = {"description": req.description if req.given("description") else cur["description"],
                       "config": {**cur["config"], **patch["config"]},
                       "devices": {**cur["devices"], **patch["devices"]}}
            # outside the transaction: it reads the project's instances
            await self.hooks.check_profile(project, name, new)
            async with self.hooks.apply_profile_change(project, {"name": name, **new}):
                async with self.db.transaction() as tx:
                    await q.update(tx, project, name, new)
        self.events.lifecycle("profile-updated", url(name, project), project=project, requestor=requestor)

    async def rename(self, project: str, name: str, new_name, requestor: dict | None = None) -> None:
        if name == "default":
            raise BadRequest("The 'default' profile cannot be renamed")
        new_name = check_entity_name("profile", new_name)
        async with LOCKS.hold("profile", project, name), self.db.transaction() as tx:
            if await q.get(tx, project, name) is None:
                raise NotFound("Profile not found")
            if await q.get(tx, project, new_name) is not None:
                raise Conflict(f'Name "{new_name}" already in use')
            await q.rename(tx, project, name, new_name)
        self.events.lifecycle("profile-renamed", url(new_name, project), project=project,
                              context={"old_name": name}, requestor=requestor)

    async def delete(self, project: str, name: str, requestor: dict | None = None) -> None:
        if name == "default":
            raise BadRequest("The 'default' profile cannot be deleted")
        async with LOCKS.hold("profile", project, name):   # not while an update applies it
            await self.get_raw(project, name)
            if await self.used_by(project, name):
                raise BadRequest("Profile is currently in use")
            async with self.db.transaction() as tx:
                await q.delete(tx, project, name)
        self.events.lifecycle("profile-deleted", url(name, project), project=project, requestor=requestor)
