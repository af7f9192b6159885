"""Storage pool and volume configuration keys, per driver (LXD 5.0's dir and btrfs, and the fake
driver the tests and the mock mode run on), as LXD 5.0.2 validates them.

Each driver has a pool scope ("pool-dir") and a volume scope per content type: "volume-dir" for
filesystem volumes, "volume-dir-block" for block ones (LXD refuses security.shifted/unmapped and
the idmap keys on a block volume). A pool's volume.* keys are the defaults of its new filesystem
volumes. LXD 5.0.2 has no block.filesystem, block.mount_options or zfs.* keys on dir or btrfs:
they are unknown options here too. `check_pool` and `check_volume` give LXD's error texts.
"""
from __future__ import annotations

import re

from corral.config.keys import ConfigError, Key, check_key_name, check_value, declare, declared, lookup, not_implemented, \
    refused
from corral.config.values import is_true, parse_bool, parse_expiry, parse_size, parse_volume_schedule
from corral.config.schedule import parse_snapshot_pattern

DRIVERS = ("dir", "btrfs", "fake")
CONTENT_TYPES = ("filesystem", "block")


def pool_scope(driver: str) -> str:
    return f"pool-{driver}"


def volume_scope(driver: str, content_type: str = "filesystem") -> str:
    return f"volume-{driver}" if content_type == "filesystem" else f"volume-{driver}-{content_type}"


def parse_bwlimit(v: str) -> str:
    """rsync.bwlimit: what rsync's --bwlimit takes: a rate in KiB/s, or with a K/M/G/T/P suffix
    (optionally "B"/"iB"); 0 means no limit."""
    if not re.fullmatch(r"\d+(\.\d+)?([KMGTPkmgtp](i?[Bb])?|[Bb])?", v):
        raise ValueError(f'Invalid rsync bandwidth limit "{v}" (e.g. "0", "500", "10MiB")')
    return v


def parse_mount_options(v: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_=.,:/-]*", v):
        raise ValueError(f'Invalid mount options "{v}"')
    return v


def _volume_keys(scope: str, content_type: str, prefix: str = "") -> list[Key]:
    """LXD's commonVolumeRules: size and snapshots.* for every volume, security.* and the idmap
    volatile keys for filesystem ones only."""
    keys = [
        Key(prefix + "size", scope, parse_size),
        Key(prefix + "snapshots.expiry", scope, parse_expiry),
        Key(prefix + "snapshots.pattern", scope, parse_snapshot_pattern, default="snap%d"),
        Key(prefix + "snapshots.schedule", scope, parse_volume_schedule),
    ]
    if content_type == "filesystem":
        keys += [Key(prefix + "security.shifted", scope, parse_bool, default="false"),
                 Key(prefix + "security.unmapped", scope, parse_bool, default="false")]
        if not prefix:
            keys += [Key("volatile.idmap.last", scope), Key("volatile.idmap.next", scope)]
    if not prefix:
        keys.append(Key("user.*", scope))
    return keys


# Every driver: LXD's common pool rules (source, rsync.*, volatile.initial_source, user.*) and
# the volume.* defaults.
for _d in DRIVERS:
    _p = pool_scope(_d)
    declare(
        Key("source", _p, local=True),
        Key("volatile.initial_source", _p, local=True),
        Key("user.*", _p),
        Key("rsync.bwlimit", _p, parse_bwlimit, default="0",
            description="Upper limit on the socket I/O whenever rsync is used to copy volumes"),
        # LXD compresses rsync transfers only when migrating between hosts; local copies never are.
        Key("rsync.compression", _p, parse_bool, default="true",
            description="Whether to use compression while migrating storage pools"),
        *_volume_keys(_p, "filesystem", "volume."),
    )
    for _ct in CONTENT_TYPES:
        declare(*_volume_keys(volume_scope(_d, _ct), _ct))

# Driver-specific pool keys.
declare(
    Key("size", pool_scope("btrfs"), parse_size, local=True,
        description="Size of the loop file backing the pool (loop-backed pools only)"),
    Key("btrfs.mount_options", pool_scope("btrfs"), parse_mount_options, default="user_subvol_rm_allowed",
        description="Mount options for block devices"),
)


# An instance's volume (type "container"), whatever the driver: user.* and the idmap keys, as LXD;
# its size is the root disk device's, its snapshots the instance's.
INSTANCE_VOLUME = "volume-instance"
declare(
    Key("user.*", INSTANCE_VOLUME),
    Key("volatile.idmap.last", INSTANCE_VOLUME),
    Key("volatile.idmap.next", INSTANCE_VOLUME),
    refused("size", INSTANCE_VOLUME,
            'Instance volume quota must be set via the instance\'s root disk device "size" property'),
    *(not_implemented(f"snapshots.{k}", INSTANCE_VOLUME, "an instance volume's snapshots follow the instance's "
                      "own snapshots.* keys") for k in ("expiry", "pattern", "schedule")),
)


def member_keys(driver: str) -> list[str]:
    """The pool keys each cluster member has its own value of (LXD's StoragePoolNodeConfigKeys,
    `local=True` here), volatile ones left out: what a joining member is asked for."""
    return sorted(k.name for k in declared(pool_scope(driver)).values()
                  if k.local and not k.name.startswith("volatile."))


def _strings(config) -> dict[str, str]:
    if not isinstance(config, dict) or any(not isinstance(v, str) for v in config.values()):
        raise ConfigError("Invalid config: expected a map of strings")
    for k in config:
        check_key_name(k)
    return dict(config)


def check_pool(driver: str, config) -> dict[str, str]:
    """A pool's config against its driver's keys; LXD's errors (`Invalid option "k"`,
    `Invalid value for option "k": ...`)."""
    config = _strings(config)
    scope = pool_scope(driver)
    for k, v in config.items():
        key = lookup(scope, k)
        if key is None:
            raise ConfigError(f'Invalid option "{k}"')
        check_value(key, k, v, "option")
    return config


def check_volume(driver: str, config, content_type: str = "filesystem", volume: str = "") -> dict[str, str]:
    """A volume's config against its driver's keys for the content type; LXD's errors name the
    volume as it is on disk ("<project>_<name>"): `Invalid option for volume "v" option "k"`,
    `Invalid value for volume "v" option "k": ...`."""
    if content_type not in CONTENT_TYPES:
        raise ConfigError(f'Invalid content type "{content_type}"')
    config = _strings(config)
    scope = volume_scope(driver, content_type)
    for k, v in config.items():
        key = lookup(scope, k)
        if key is None:
            raise ConfigError(f'Invalid option for volume "{volume}" option "{k}"')
        check_value(key, k, v, f'volume "{volume}" option')
    if is_true(config.get("security.shifted")) and is_true(config.get("security.unmapped")):
        raise ConfigError('"security.shifted" and "security.unmapped" cannot both be set')
    return config


def check_instance_volume(config, volume: str = "") -> dict[str, str]:
    """An instance volume's config (`lxc storage volume set POOL container/c1 ...`); LXD's texts."""
    config = _strings(config)
    for k, v in config.items():
        key = lookup(INSTANCE_VOLUME, k)
        if key is None:
            raise ConfigError(f'Invalid option for volume "{volume}" option "{k}"')
        check_value(key, k, v, f'volume "{volume}" option')
    return config
