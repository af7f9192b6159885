"""The config keys each cluster member has its own value of (LXD 5.0's db.NodeSpecificStorageConfig
and db.NodeSpecificNetworkConfig): given with `--target MEMBER`, stored with that member's node_id,
never sent to another member and left out of a clustered GET without `?target=`."""
from __future__ import annotations

POOL = frozenset({"size", "source", "volatile.initial_source", "zfs.pool_name", "lvm.thinpool_name",
                  "lvm.vg_name"})
NETWORK = frozenset({"bgp.ipv4.nexthop", "bgp.ipv6.nexthop", "bridge.external_interfaces", "parent"})


def split(config: dict, keys: frozenset[str]) -> tuple[dict, dict]:
    """(cluster-wide keys, member-specific keys) of a config."""
    return ({k: v for k, v in config.items() if k not in keys}, {k: v for k, v in config.items() if k in keys})
