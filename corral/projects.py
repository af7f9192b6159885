"""Projects: LXD 5.0's create / update / rename / delete; `default` always exists."""
from __future__ import annotations

import re

from corral import config
from corral.db import Database
from corral.db.queries import projects as q
from corral.errors import BadRequest, Conflict, Forbidden, NotFound, NotImplementedFeature
from corral.locks import LOCKS

# What a new project gets when its features are not given (LXD's defaults for new projects).
DEFAULT_FEATURES = {"features.images": "true", "features.profiles": "true", "features.storage.volumes": "true"}
_FEATURES = ("features.images", "features.profiles", "features.storage.volumes", "features.networks")


def check_name(name) -> str:
    if not isinstance(name, str) or not name:
        raise BadRequest("No name provided")
    if "/" in name:
        raise BadRequest("Project names may not contain slashes")
    if name in ("*", ".", "..") or any(c.isspace() for c in name) or "?" in name or "&" in name:
        raise BadRequest(f'Project name "{name}" is not valid')
    if len(name) > 63 or not re.fullmatch(r"[\w.+@:-]+", name):
        raise BadRequest(f'Project name "{name}" is not valid')
    return name


class Projects:
    def __init__(self, db: Database):
        self.db = db
        self._names: set[str] = set()
        # Project restrictions (project, new config, changed keys), set by the daemon.
        self.check_restrictions = None

    async def load(self) -> None:
        async with self.db.session() as tx:
            self._names = {p["name"] for p in await q.get_all(tx)}

    def known(self, name: str) -> bool:
        return name in self._names

    async def exists(self, name: str) -> bool:
        return name in self._names

    async def get_all(self) -> list[dict]:
        async with self.db.session() as tx:
            return await q.get_all(tx)

    async def get(self, name: str) -> dict | None:
        async with self.db.session() as tx:
            return await q.get(tx, name)

    @staticmethod
    def _config(raw, name: str) -> dict[str, str]:
        cfg = config.validate(config.PROJECT, raw or {})
        if name == "default" and not config.value(config.PROJECT, cfg, "features.profiles"):
            raise BadRequest("You can't change the features of the default project")
        if name != "default" and config.value(config.PROJECT, cfg, "features.networks"):
            # Networks are host-wide (the default project's) here; a project can't have its own.
            raise NotImplementedFeature("projects with their own networks (features.networks=true)")
        return cfg

    async def create(self, body: dict) -> str:
        name = check_name(body.get("name"))
        description = body.get("description") or ""
        if not isinstance(description, str):
            raise BadRequest('Invalid value for field "description": expected string')
        cfg = {**DEFAULT_FEATURES, **self._config(body.get("config"), name)}
        async with self.db.transaction() as tx:
            if await q.get(tx, name) is not None:
                raise Conflict(f'Project "{name}" already exists')
            await q.create(tx, name, description, cfg)
            if config.value(config.PROJECT, cfg, "features.profiles"):
                await _create_default_profile(tx, name)
        await self.load()
        return name

    async def update(self, name: str, body: dict, *, replace: bool, used_by: list[str],
                     etag_check=None) -> None:
        """PUT/PATCH under the project's lock: If-Match, merge, validate and write as one step."""
        async with LOCKS.hold("project", name):
            await self._update(name, body, replace=replace, used_by=used_by, etag_check=etag_check)

    async def _update(self, name: str, body: dict, *, replace: bool, used_by: list[str],
                      etag_check=None) -> None:
        cur = await self.get(name)
        if cur is None:
            raise NotFound("Project not found")
        if etag_check:
            etag_check({"config": cur["config"], "description": cur["description"]})
        description = body.get("description", None if not replace else "")
        if description is None:
            description = cur["description"]
        if not isinstance(description, str):
            raise BadRequest('Invalid value for field "description": expected string')
        raw = body.get("config")
        new = dict(cur["config"]) if not replace else {}
        if raw is not None:
            if not isinstance(raw, dict):
                raise BadRequest("Invalid config: expected a map of keys to values")
            new.update(raw)
        cfg = self._config({k: v for k, v in new.items() if v is not None}, name)
        for feat in _FEATURES:
            if cfg.get(feat, "false") != cur["config"].get(feat, "false") and _content(used_by):
                raise BadRequest("Features can only be changed on empty projects")
        if self.check_restrictions:
            changed = sorted(k for k in set(cfg) | set(cur["config"]) if cfg.get(k) != cur["config"].get(k))
            await self.check_restrictions(name, cfg, changed)
        had_profiles = config.value(config.PROJECT, cur["config"], "features.profiles")
        has_profiles = config.value(config.PROJECT, cfg, "features.profiles")
        async with self.db.transaction() as tx:
            await q.update(tx, name, description, cfg)
            from corral.db.queries import profiles as qp
            if has_profiles and not had_profiles and await qp.get(tx, name, "default") is None:
                await _create_default_profile(tx, name)
            elif had_profiles and not has_profiles:   # an empty project: only its default profile is left
                for n in await qp.names(tx, name):
                    await qp.delete(tx, name, n)

    async def rename(self, name: str, new: str, *, used_by: list[str]) -> str:
        if name == "default":
            raise Forbidden_default("renamed")
        new = check_name(new)
        if await self.get(name) is None:
            raise NotFound("Project not found")
        if _content(used_by):
            raise BadRequest("Only empty projects can be renamed")
        async with self.db.transaction() as tx:
            if await q.get(tx, new) is not None:
                raise Conflict(f'Project "{new}" already exists')
            await q.rename(tx, name, new)
        await self.load()
        return new

    async def delete(self, name: str, *, used_by: list[str]) -> None:
        if name == "default":
            raise Forbidden_default("deleted")
        if await self.get(name) is None:
            raise NotFound("Project not found")
        if _content(used_by):
            raise BadRequest("Only empty projects can be removed")
        async with self.db.transaction() as tx:
            await q.delete(tx, name)
        await self.load()



async def profiles_project(tx, project: str) -> str:
    """The project whose profiles `project` uses: its own, or the default project's when its
    features.profiles is off (as in LXD)."""
    if project == "default":
        return project
    p = await q.get(tx, project)
    if p is None or config.value(config.PROJECT, p["config"], "features.profiles"):
        return project
    return "default"


def _content(used_by: list[str]) -> bool:
    """Whether a project holds anything; its own default profile does not count, as in LXD."""
    return any(u.split("?", 1)[0] != "/1.0/profiles/default" for u in used_by)


async def _create_default_profile(tx, project: str) -> None:
    from corral.db.queries import profiles as qp
    await qp.create(tx, project, {"name": "default", "description": f"Default LXD profile for project {project}"})


def Forbidden_default(what: str):
    return Forbidden(f"The 'default' project cannot be {what}")
