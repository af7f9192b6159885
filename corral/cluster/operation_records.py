"""Where the cluster's operations run, as LXD keeps it: every operation a member makes is a row of
the `operations` table (uuid, node_id, type, project_id) from its creation until it is no longer
listed, so any member asked about an operation finds the member that runs it (and forwards the
request there) and a listing asks only the members that have some.

Recorded only when clustered (a standalone server has nobody to tell). The row is written before the
request that made the operation answers (`OperationManager.recorded`, awaited by the API), so a
client that asks another member about it right away finds it."""
from __future__ import annotations

import asyncio
import logging

from corral.db.queries import locations as ql

log = logging.getLogger(__name__)

# LXD's operation type codes (lxd/db/operationtype), by the description LXD gives each type.
TYPE_CODES = {
    "Creating bootstrap node": 1, "Joining cluster": 2, "Backing up instance": 3, "Renaming instance backup": 4,
    "Restoring backup": 5, "Removing instance backup": 6, "Showing console": 7, "Creating instance": 8,
    "Updating instance": 9, "Renaming instance": 10, "Migrating instance": 11, "Live-migrating instance": 12,
    "Freezing instance": 13, "Unfreezing instance": 14, "Deleting instance": 15, "Starting instance": 16,
    "Stopping instance": 17, "Restarting instance": 18, "Executing command": 20, "Snapshotting instance": 21,
    "Renaming snapshot": 22, "Restoring snapshot": 23, "Transferring snapshot": 24, "Updating snapshot": 25,
    "Deleting snapshot": 26, "Copying snapshot": 27, "Downloading image": 28, "Deleting image": 29,
    "Image download token": 30, "Refreshing image": 31, "Copying storage volume": 32,
    "Creating storage volume": 33, "Migrating storage volume": 34, "Moving storage volume": 35,
    "Copying storage volume snapshot": 36, "Creating storage volume snapshot": 37,
    "Deleting storage volume snapshot": 38, "Updating storage volume snapshot": 39, "Renaming project": 40,
    "Cluster join token": 55, "Renaming storage volume snapshot": 56, "Evacuating cluster member": 57,
    "Restoring cluster member": 58, "Certificate add token": 59,
}


def type_code(description: str) -> int:
    return TYPE_CODES.get(description, 0)


class OperationRecords:
    """The `registry` of the daemon's OperationManager (corral/operations.py)."""

    def __init__(self, state):
        self.state = state

    def location(self) -> str:
        return self.state.cluster.server_name

    def record(self, op) -> asyncio.Task | None:
        if not self.state.cluster.clustered:
            return None
        return asyncio.get_running_loop().create_task(self._write(op, True))

    def forget(self, op) -> None:
        if self.state.cluster.clustered:
            asyncio.get_running_loop().create_task(self._write(op, False))

    async def _write(self, op, present: bool) -> None:
        try:
            async with self.state.db.transaction() as tx:
                if present:
                    await ql.record_operation(tx, op.id, type_code(op.description), op.project)
                else:
                    await ql.forget_operation(tx, op.id)
        except Exception as e:  # noqa: BLE001 - the operation itself goes on; others may not find it
            log.warning("operation %s not %s in the database: %s", op.id, "recorded" if present else "removed", e)

    async def start(self) -> None:
        """At start-up: rows of this member's earlier run are stale (none of those runs any more)."""
        if not self.state.cluster.clustered:
            return
        try:
            async with self.state.db.transaction() as tx:
                await ql.forget_local_operations(tx)
        except Exception as e:  # noqa: BLE001
            log.warning("stale operation records not removed: %s", e)

    async def owner(self, op_id: str) -> dict | None:
        """The member running operation `op_id` (id, name, address, heartbeat, project), if another."""
        if not self.state.cluster.clustered:
            return None
        async with self.state.db.session() as tx:
            row = await ql.operation_member(tx, op_id)
        return row if row is not None and row["id"] != self.state.cluster.member_id else None

    async def members_with_operations(self) -> list[dict]:
        if not self.state.cluster.clustered:
            return []
        async with self.state.db.session() as tx:
            return await ql.members_with_operations(tx)
