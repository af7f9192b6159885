"""Image sources, distrobuilder's "downloaders": each fills an empty root filesystem directory.

A source gets the definition after validation, overrides (`-o`), defaults and mappings, as plain dicts
(`definition["image"]`, `definition["source"]`; `image["architecture_mapped"]` is the architecture in
the source's own naming), and a cache directory it may keep downloads in between builds. The registry maps
distrobuilder's downloader names to classes, imported when first asked for.
"""
from __future__ import annotations

import abc
import importlib


class SourceError(Exception):
    """A source could not produce the root filesystem; the text says why (shown to the user as is)."""


class Source(abc.ABC):
    def __init__(self, definition: dict, cache_dir: str):
        self.definition = definition
        self.image = definition.get("image") or {}
        self.source = definition.get("source") or {}
        self.cache_dir = cache_dir

    @abc.abstractmethod
    def run(self, rootfs_dir: str) -> None:
        """Fill rootfs_dir (existing, empty) with the distribution's root filesystem, or raise SourceError."""


SOURCES = {
    "debootstrap": "corral.builder.sources.debootstrap:Debootstrap",
    "busybox": "corral.builder.sources.busybox:Busybox",
    "almalinux-http": "corral.builder.sources.almalinux_http:AlmaLinuxHTTP",
    "rootfs-http": "corral.builder.sources.rootfs_http:RootfsHTTP",
}


def names() -> list[str]:
    return sorted(SOURCES)


def get(name: str) -> type[Source]:
    """The class of downloader `name`; SourceError for a name this builder does not know."""
    path = SOURCES.get(name)
    if path is None:
        raise SourceError(f'Unsupported source downloader "{name}" (supported: {", ".join(names())})')
    module, _, cls = path.partition(":")
    return getattr(importlib.import_module(module), cls)
