"""Config keys are data: one declaration per key, with its validator, default and scope.

One registry (keys.py) for every scope: server, instance, project, network-<type> (network.py),
pool-<driver> and volume-<driver>[-block] (storage.py), device-<type> and device-nic-<nictype>
(devices.py). One parser per value kind (values.py). Every layer reads keys from here.
Values travel as strings, as in LXD; `value()` gives the parsed value with its default.
"""
from __future__ import annotations

from corral.config.keys import (  # noqa: F401
    INSTANCE, PROJECT, SERVER, ConfigError, Key, declared, lookup, validate, value,
)
from corral.config import server, instance, project, storage, devices  # noqa: F401  (register the declarations)
from corral.config import cluster_member  # noqa: F401,E402  (cluster member keys: scheduler.instance, user.*)
