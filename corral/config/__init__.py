"""Config keys are data: one declaration per key, with its validator, default and scope.

Every layer (API validation, the daemon, the CLI, docs) reads keys from here.
Values travel as strings, as in LXD; `value()` gives the parsed value with its default.
"""
from __future__ import annotations

from corral.config.keys import (  # noqa: F401
    INSTANCE, PROJECT, SERVER, ConfigError, Key, declared, lookup, validate, value,
)
from corral.config import server, instance, project, storage, devices  # noqa: F401  (register the declarations)
