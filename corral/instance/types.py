"""Instance types by name: the class the manager makes for an instance of each type (LXD's
instance drivers: lxd/instance/drivers). `container` runs on liblxc, `fake` on an in-memory driver
with no host effects (tests, the daemon's mock mode); `virtual-machine` on QEMU over QMP."""
from __future__ import annotations

from corral.errors import BadRequest, NotImplementedFeature
from corral.instance.instance import Instance

_TYPES: dict[str, type[Instance]] = {}
NOT_BUILT: dict[str, str] = {}


def register(cls: type[Instance]) -> type[Instance]:
    _TYPES[cls.type_name] = cls
    return cls


def names() -> list[str]:
    _load()
    return sorted(_TYPES)


def instance_class(name: str) -> type[Instance]:
    """The class registered as `name`; LXD's error for a type it does not know."""
    _load()
    if name in _TYPES:
        return _TYPES[name]
    if name in NOT_BUILT:
        raise NotImplementedFeature(NOT_BUILT[name])
    raise BadRequest("Invalid instance type")


def _load() -> None:
    if "virtual-machine" not in _TYPES:   # imported here: the classes import this module's register()
        from corral.instance import container, fake, vm  # noqa: F401
