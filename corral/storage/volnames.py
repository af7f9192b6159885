"""Names and small helpers of storage volumes shared by the volume modules."""
from __future__ import annotations

from corral import timeutil
from corral.config.keys import parse_expiry
from corral.config.schedule import next_snapshot_name
from corral.errors import BadRequest


def expiry_from(spec: str | None) -> str:
    return timeutil.after(parse_expiry(spec)) if spec else timeutil.ZERO


def vol_url(pool: str, type_: str, name: str, project: str = "default") -> str:
    return f"/1.0/storage-pools/{pool}/volumes/{type_}/{name}" + ("" if project == "default" else f"?project={project}")


def snapshot_name(pattern: str, taken: set[str]) -> str:
    try:
        return next_snapshot_name(pattern, taken)
    except ValueError as e:
        raise BadRequest(f'Invalid value for "snapshots.pattern": {e}') from None
