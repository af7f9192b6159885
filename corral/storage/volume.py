"""Storage volumes as the drivers see them (LXD's drivers.Volume): a pool, a name, a volume type, a
content type and the volume's config. A snapshot is a volume named `<parent>/<snapshot>`.

Only the driver knows where (or whether) a volume lives on the host: code above the drivers asks
the pool layer (corral/storage/pool.py) for what it needs and never builds a pool path itself.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from corral.errors import BadRequest

CONTAINER = "container"
VM = "virtual-machine"
IMAGE = "image"
CUSTOM = "custom"
TYPES = (CUSTOM, CONTAINER, IMAGE, VM)

FILESYSTEM = "filesystem"
BLOCK = "block"
CONTENT_TYPES = (FILESYSTEM, BLOCK)

# LXD's default size of a block volume when neither the volume nor the pool's volume.size gives one
DEFAULT_BLOCK_SIZE = "10GiB"


@dataclass(frozen=True)
class Volume:
    pool: str
    name: str
    type: str = CUSTOM
    content_type: str = FILESYSTEM
    config: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise BadRequest(f'Invalid storage volume type "{self.type}"')
        if self.content_type not in CONTENT_TYPES:
            raise BadRequest(f'Invalid content type "{self.content_type}"')

    @property
    def is_snapshot(self) -> bool:
        return "/" in self.name

    @property
    def parent_name(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def snapshot_name(self) -> str:
        return self.name.split("/", 1)[1] if self.is_snapshot else ""

    def snapshot(self, snap: str) -> "Volume":
        """The volume of snapshot `snap` of this volume."""
        return dataclasses.replace(self, name=f"{self.parent_name}/{snap}")

    def parent(self) -> "Volume":
        return dataclasses.replace(self, name=self.parent_name)

    def renamed(self, name: str) -> "Volume":
        return dataclasses.replace(self, name=name)

    def in_pool(self, pool: str) -> "Volume":
        return dataclasses.replace(self, pool=pool)

    def with_config(self, config: dict) -> "Volume":
        return dataclasses.replace(self, config=dict(config))


def instance_volume_name(project: str, name: str) -> str:
    """An instance volume's name in its pool (LXD's project prefix, none in the default project)."""
    return name if project == "default" else f"{project}_{name}"


def custom_volume_name(project: str, name: str) -> str:
    """A custom volume's name in its pool (always prefixed with its project, as LXD names them)."""
    return f"{project}_{name}"


@dataclass(frozen=True)
class Info:
    """What a driver can do (LXD's drivers.Info)."""
    name: str
    version: str = "1"
    optimized_images: bool = False      # image volumes kept unpacked in the pool, instances made from them
    cheap_snapshots: bool = False       # a snapshot costs O(1), whatever the volume's size
    block: bool = True                  # block custom volumes
    remote: bool = False                # volumes reachable from other cluster members
    quotas: bool = True                 # volume "size" (filesystem volumes)
