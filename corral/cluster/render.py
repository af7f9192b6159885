"""Cluster members as LXD 5.0 shows them (api.ClusterMember, LXD's NodeInfo.ToAPI): pure functions
over a `nodes` row (corral/db/queries/nodes.py), the member's raft role, the leader's address, the
offline threshold and the cluster's highest version. No I/O here.
"""
from __future__ import annotations

from datetime import datetime, timezone

from corral import timeutil

# Roles LXD derives from raft and never stores (refused or ignored when a client sends them).
DATABASE, DATABASE_LEADER, DATABASE_STANDBY = "database", "database-leader", "database-standby"
AUTOMATIC_ROLES = (DATABASE, DATABASE_LEADER, DATABASE_STANDBY)


def heartbeat_time(value) -> datetime | None:
    """A `nodes.heartbeat` value (an RFC 3339 text, SQLite's "YYYY-MM-DD HH:MM:SS", or a datetime)
    as an aware UTC datetime; None when it cannot be read."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if not value:
        return None
    try:
        return timeutil.parse(str(value))
    except ValueError:
        return None


def online(last_heartbeat, threshold_seconds: float, now: datetime) -> bool:
    """LXD's rule: a member is offline once its last heartbeat is `threshold_seconds` old or older."""
    beat = heartbeat_time(last_heartbeat)
    if beat is None:
        return False
    return (now - beat).total_seconds() < threshold_seconds


def go_duration(seconds: float) -> str:
    """A duration as Go's time.Duration prints it ("1m3.25s", "2h0m0s", "450ms")."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size or unit == "ns":
                return sign + _trim(ns, size) + unit
    hours, rest = divmod(ns, 3600 * 1_000_000_000)
    minutes, rest = divmod(rest, 60 * 1_000_000_000)
    out = f"{hours}h{minutes}m" if hours else (f"{minutes}m" if minutes else "")
    return sign + out + _trim(rest, 1_000_000_000) + "s"


def _trim(value: int, size: int) -> str:
    whole, frac = divmod(value, size)
    if not frac:
        return str(whole)
    digits = len(str(size)) - 1
    return f"{whole}." + f"{frac:0{digits}d}".rstrip("0")


def go_time(when: datetime) -> str:
    """A time as Go's time.Time prints it in UTC ("2026-12-02 04:42:07.5 +0000 UTC")."""
    when = when.astimezone(timezone.utc)
    frac = f".{when.microsecond:06d}".rstrip("0") if when.microsecond else ""
    return when.strftime("%Y-%m-%d %H:%M:%S") + frac.rstrip(".") + " +0000 UTC"


def member(row: dict, *, raft_role: str | None, leader_address: str, threshold_seconds: float,
           max_version: tuple[int, int], now: datetime, local: bool = False) -> dict:
    """One api.ClusterMember, its fields in LXD 5.0.2's order (the writable ones first).

    `raft_role` is the member's role in the raft configuration ("voter", "stand-by", "spare" or
    None when it is not part of it). `database` is true for the leader, a voter or a stand-by, as
    LXD 5.0 sets it. `local`: the member answering (online by definition: it is running)."""
    roles = list(row.get("roles") or [])
    database = False
    if leader_address and row["address"] == leader_address:
        roles.append(DATABASE_LEADER)
        database = True
    if raft_role == "voter":
        roles.append(DATABASE)
        database = True
    elif raft_role == "stand-by":
        roles.append(DATABASE_STANDBY)
        database = True
    status, message = "Online", "Fully operational"
    beat = heartbeat_time(row.get("heartbeat"))
    if row.get("state") == 2:   # nodes.EVACUATED
        status, message = "Evacuated", "Unavailable due to maintenance"
    elif not local and not online(beat, threshold_seconds, now):
        status = "Offline"
        message = (f"No heartbeat for {go_duration((now - beat).total_seconds())} ({go_time(beat)})"
                   if beat is not None else "No heartbeat")
    elif _older(max_version, (row.get("schema") or 0, row.get("api_extensions") or 0)):
        status, message = "Blocked", "Needs updating to newer version"
    return {"roles": roles, "failure_domain": row.get("failure_domain") or "default",
            "description": row.get("description") or "", "config": dict(row.get("config") or {}),
            "groups": list(row.get("groups") or []), "server_name": row["name"],
            "url": f"https://{row['address']}", "database": database, "status": status,
            "message": message, "architecture": row.get("arch") or "unknown"}


def _older(highest: tuple[int, int], version: tuple[int, int]) -> bool:
    """LXD's CompareVersions(highest, version) == 1: the cluster runs a newer version than the member."""
    return highest != version and highest[0] >= version[0] and highest[1] >= version[1]


def writable(m: dict) -> dict:
    """The api.ClusterMemberPut part of a rendered member (what its ETag covers)."""
    return {k: m[k] for k in ("roles", "failure_domain", "description", "config", "groups")}
