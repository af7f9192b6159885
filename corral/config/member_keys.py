"""The config keys each cluster member has its own value of (LXD 5.0's db.NodeSpecificStorageConfig
and db.NodeSpecificNetworkConfig): given with `--target MEMBER`, stored with that member's node_id,
never sent to another member and left out of a clustered GET without `?target=`."""
from __future__ import annotations

from corral.errors import BadRequest

POOL = frozenset({"size", "source", "volatile.initial_source", "zfs.pool_name", "lvm.thinpool_name",
                  "lvm.vg_name"})
NETWORK = frozenset({"bgp.ipv4.nexthop", "bgp.ipv6.nexthop", "bridge.external_interfaces", "parent"})


def split(config: dict, keys: frozenset[str]) -> tuple[dict, dict]:
    """(cluster-wide keys, member-specific keys) of a config."""
    return ({k: v for k, v in config.items() if k not in keys}, {k: v for k, v in config.items() if k in keys})


def refuse_member_keys(config: dict, keys: frozenset[str]) -> None:
    """A cluster-wide change (no `--target`) may not carry member-specific keys (LXD's text)."""
    for k in config:
        if k in keys:
            raise BadRequest(f'Config key "{k}" is cluster member specific')


def refuse_cluster_keys(config: dict, current: dict, keys: frozenset[str]) -> None:
    """A member's change (`--target`) may carry only member-specific keys, or cluster-wide ones
    left as they are (LXD's text)."""
    for k, v in config.items():
        if k not in keys and current.get(k) != v:
            raise BadRequest(f'Config key "{k}" may not be used as cluster member specific key')


def only_member_keys(config: dict, keys: frozenset[str]) -> None:
    """Defining an object on one member (`--target`, Pending) takes only member-specific keys."""
    for k in config:
        if k not in keys:
            raise BadRequest(f'Config key "{k}" may not be used as member-specific key')
