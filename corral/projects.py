"""Projects: LXD 5.0's create / update / rename / delete; `default` always exists."""
from __future__ import annotations

from typing import Protocol

from corral import config
from corral.apitypes import ProjectPut, ProjectsPost
from corral.config.keys import is_true
from corral.db import Database
from corral.db.queries import projects as q
from corral.errors import BadRequest, Conflict, Forbidden, NotFound, NotImplementedFeature
from corral.locks import LOCKS

# What a new project gets when its features are not given (LXD's defaults for new projects).
DEFAULT_FEATURES = {"features.images": "true", "features.profiles": "true", "features.storage.volumes": "true"}
_FEATURES = ("features.images", "features.profiles", "features.storage.volumes", "features.networks")


# Which project holds a kind of object for a project with the feature off: the default project's.
FEATURE_OF = {"images": "features.images", "profiles": "features.profiles",
              "storage.volumes": "features.storage.volumes", "networks": "features.networks"}


def check_name(name) -> str:
    """LXD 5.0's projectValidateName, plus what a URL query value can't carry here."""
    if not isinstance(name, str) or not name:
        raise BadRequest("No name provided")
    if "/" in name:
        raise BadRequest("Project names may not contain slashes")
    if " " in name:
        raise BadRequest("Project names may not contain spaces")
    if "_" in name:
        raise BadRequest("Project names may not contain underscores")
    if "'" in name or '"' in name:
        raise BadRequest("Project names may not contain quotes")
    if name == "*":
        raise BadRequest("Reserved project name")
    if name in (".", ".."):
        raise BadRequest(f'Invalid project name "{name}"')
    # Beyond LXD: names that would break a ?project= query, a path or a log line.
    if any(c.isspace() or ord(c) < 32 or c in "?&#%\\" for c in name) or len(name) > 63:
        raise BadRequest(f'Invalid project name "{name}"')
    return name


class ProjectHooks(Protocol):
    """What projects need from the layers above them (the daemon's State implements it)."""

    async def check_project_config(self, name: str, config: dict, changed: list[str]) -> None:
        """Project restrictions and limits against a project's new config (changed: the keys)."""


class Projects:
    def __init__(self, db: Database, hooks: ProjectHooks | None = None):
        self.db = db
        self.hooks = hooks
        self._names: set[str] = set()
        self._configs: dict[str, dict] = {}   # a cache of every project's config (one daemon writes)

    async def load(self) -> None:
        async with self.db.session() as tx:
            projects = await q.get_all(tx)
        self._configs = {p["name"]: p["config"] for p in projects}
        self._names = set(self._configs)

    def names(self) -> list[str]:
        return sorted(self._names)

    def known(self, name: str) -> bool:
        return name in self._names

    async def exists(self, name: str) -> bool:
        return name in self._names

    def config_of(self, name: str) -> dict:
        return self._configs.get(name, {})

    def holder(self, kind: str, project: str) -> str:
        """The project whose `kind` objects (images, profiles, storage.volumes, networks) `project`
        uses: its own with features.<kind>=true, else the default project's (LXD's ImageProject,
        ProfileProject, StorageVolumeProject, NetworkProject)."""
        if project == "default" or is_true(self.config_of(project).get(FEATURE_OF[kind])):
            return project
        return "default"

    def sharing(self, kind: str, project: str) -> list[str]:
        """The projects whose `kind` objects are `project`'s (itself first)."""
        return [project] + sorted(p for p in self._names if p != project and self.holder(kind, p) == project)

    async def get_all(self) -> list[dict]:
        async with self.db.session() as tx:
            return await q.get_all(tx)

    async def get(self, name: str) -> dict | None:
        async with self.db.session() as tx:
            return await q.get(tx, name)

    @staticmethod
    def _config(raw, name: str) -> dict[str, str]:
        cfg = config.validate(config.PROJECT, raw or {})
        # Restrictions are checked against the project's own profiles: a restricted project using the
        # default project's could be loosened through them (LXD refuses features.profiles=false only;
        # an unset feature, which also means the default project's profiles, is refused here too).
        if name != "default" and is_true(cfg.get("restricted")) and not is_true(cfg.get("features.profiles")):
            raise BadRequest("Projects without their own profiles cannot be restricted")
        if name != "default" and config.value(config.PROJECT, cfg, "features.networks"):
            # Networks are host-wide (the default project's) here; a project can't have its own.
            raise NotImplementedFeature("projects with their own networks (features.networks=true)")
        return cfg

    async def create(self, req: ProjectsPost) -> str:
        name = check_name(req.name)
        cfg = self._config({**DEFAULT_FEATURES, **req.config}, name)
        async with self.db.transaction() as tx:
            if await q.get(tx, name) is not None:
                raise Conflict(f'Project "{name}" already exists')
            await q.create(tx, name, req.description, cfg)
            if is_true(cfg.get("features.profiles")):
                await _create_default_profile(tx, name)
        await self.load()
        return name

    async def update(self, name: str, req: ProjectPut, *, replace: bool, used_by: list[str],
                     etag_check=None) -> None:
        """PUT/PATCH under the project's lock: If-Match, merge, validate and write as one step."""
        async with LOCKS.hold("project", name):
            await self._update(name, req, replace=replace, used_by=used_by, etag_check=etag_check)

    async def _update(self, name: str, req: ProjectPut, *, replace: bool, used_by: list[str],
                      etag_check=None) -> None:
        cur = await self.get(name)
        if cur is None:
            raise NotFound("Project not found")
        if etag_check:
            etag_check({"config": cur["config"], "description": cur["description"]})
        description = req.description if replace or req.given("description") else cur["description"]
        new = dict(cur["config"]) if not replace else {}
        new.update(req.config)
        new = config.validate(config.PROJECT, {k: v for k, v in new.items() if v is not None})
        changed = sorted(k for k in set(new) | set(cur["config"]) if new.get(k) != cur["config"].get(k))
        features_changed = any(k in _FEATURES for k in changed)
        if name == "default" and features_changed:
            raise BadRequest("You can't change the features of the default project")
        if features_changed and _content(used_by):
            raise BadRequest("Features can only be changed on empty projects")
        cfg = self._config(new, name)
        if self.hooks is not None:
            await self.hooks.check_project_config(name, cfg, changed)
        from corral.db.queries import profiles as qp
        async with self.db.transaction() as tx:
            await q.update(tx, name, description, cfg)
            if "features.profiles" in changed:   # the project's own default profile comes and goes
                if is_true(cfg.get("features.profiles")):
                    if await qp.get(tx, name, "default") is None:
                        await _create_default_profile(tx, name)
                else:
                    await qp.delete(tx, name, "default")
        await self.load()

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
    # As Projects.holder: the project's own profiles only with features.profiles set true.
    if p is None or is_true(p["config"].get("features.profiles")):
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
