"""The instance requests the API decodes (LXD's api.InstancesPost, InstancePut, InstanceStatePut,
InstancePost, InstanceSnapshotsPost, InstanceSnapshotPut, InstanceSnapshotPost). The API builds
them from request bodies (corral/api/instance_requests.py, with LXD's error texts for fields of the
wrong type); the instance layer takes them and never sees a raw body."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class InstanceSource:
    type: str = "none"                 # image, copy, none (migration, conversion: not built)
    source: str = ""                   # copy: "instance" or "instance/snapshot"
    project: str = ""                  # copy: the source instance's project (container_copy_project)
    instance_only: bool = False        # copy: without the source's snapshots
    server: str = ""                   # image: a remote image server
    mode: str = ""                     # image: "pull" for a remote image
    image: dict = field(default_factory=dict)   # image: the source object as sent, for the image layer

    @property
    def remote_image(self) -> bool:
        return self.type == "image" and bool(self.server or self.mode == "pull")


@dataclass
class InstanceCreate:
    """POST /1.0/instances."""
    name: str = ""
    type: str = ""                     # "" is a container, as in LXD
    description: str = ""
    config: dict = field(default_factory=dict)
    devices: dict | None = None
    profiles: list[str] | None = None  # None: the image's profiles, else ["default"]
    ephemeral: bool = False
    start: bool = False
    source: InstanceSource = field(default_factory=InstanceSource)


@dataclass
class InstanceUpdate:
    """PUT (replace) or PATCH of /1.0/instances/NAME; `sent` names the fields the body had."""
    sent: frozenset[str] = frozenset()
    architecture: str = ""
    description: str = ""
    config: dict = field(default_factory=dict)
    devices: dict | None = None
    profiles: list[str] | None = None
    ephemeral: bool = False
    restore: str = ""


@dataclass
class InstanceStateChange:
    """PUT /1.0/instances/NAME/state."""
    action: str = ""
    timeout: float = -1
    force: bool = False
    stateful: bool = False


@dataclass
class InstanceMove:
    """POST /1.0/instances/NAME: a rename, a move to another pool or project."""
    name: str = ""
    migration: bool = False
    live: bool = False
    pool: str = ""
    project: str = ""
    target: str = ""
    instance_only: bool = False


@dataclass
class SnapshotCreate:
    """POST /1.0/instances/NAME/snapshots."""
    name: str = ""
    stateful: bool = False
    expires_at: str = ""
    description: str = ""


@dataclass
class SnapshotUpdate:
    """PUT/PATCH /1.0/instances/NAME/snapshots/SNAP (None: keep what is stored)."""
    expires_at: str | None = None
    description: str | None = None


@dataclass
class SnapshotRename:
    """POST /1.0/instances/NAME/snapshots/SNAP."""
    name: str = ""
    migration: bool = False
