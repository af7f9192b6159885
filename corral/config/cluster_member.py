"""Cluster member configuration keys (LXD 5.0's `nodes_config`: `lxc cluster set|get|unset|edit`),
checked by corral/cluster/members.py with LXD's clusterValidateConfig texts."""
from __future__ import annotations

from corral.config.keys import Key, declare, one_of

MEMBER = "member"

declare(
    Key("scheduler.instance", MEMBER, one_of("all", "manual", "group"), default="all",
        description="Controls how instances are scheduled to run on this member: all (the default: "
                    "any placement), manual (only with an explicit --target of the member) or group "
                    "(only with --target of one of its cluster groups)"),
    Key("user.*", MEMBER, str, description="Free form user key/value storage"),
)
