"""Storage pool and volume configuration keys (LXD 5.0's dir and btrfs drivers).

Each driver has a pool scope ("pool-dir", "pool-btrfs") and a volume scope ("volume-dir",
"volume-btrfs"). The pool's volume.* keys are the defaults of its new volumes.
"""
from __future__ import annotations

import re

from corral.config.keys import Key, declare, parse_bool, parse_expiry, parse_size
from corral.config.schedule import parse_snapshot_pattern, parse_volume_schedule

DRIVERS = ("dir", "btrfs")


def pool_scope(driver: str) -> str:
    return f"pool-{driver}"


def volume_scope(driver: str) -> str:
    return f"volume-{driver}"


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


def _volume_keys(scope: str, prefix: str = "") -> list[Key]:
    return [
        Key(prefix + "size", scope, parse_size),
        Key(prefix + "security.shifted", scope, parse_bool, default="false"),
        Key(prefix + "security.unmapped", scope, parse_bool, default="false"),
        Key(prefix + "snapshots.expiry", scope, parse_expiry),
        Key(prefix + "snapshots.pattern", scope, parse_snapshot_pattern, default="snap%d"),
        Key(prefix + "snapshots.schedule", scope, parse_volume_schedule),
    ]


for _d in DRIVERS:
    declare(Key("source", pool_scope(_d)), Key("user.*", pool_scope(_d)), Key("volatile.*", pool_scope(_d)),
            *_volume_keys(pool_scope(_d), "volume."),
            *_volume_keys(volume_scope(_d)), Key("user.*", volume_scope(_d)), Key("volatile.*", volume_scope(_d)))

declare(
    Key("rsync.bwlimit", pool_scope("dir"), parse_bwlimit, default="0",
        description="Upper limit on the socket I/O whenever rsync is used to copy volumes"),
    # LXD compresses rsync transfers only when migrating between hosts; local copies never are.
    Key("rsync.compression", pool_scope("dir"), parse_bool, default="true",
        description="Whether to use compression while migrating storage pools"),
    Key("size", pool_scope("btrfs"), parse_size),
    Key("btrfs.mount_options", pool_scope("btrfs"), parse_mount_options, default="user_subvol_rm_allowed"),
)
