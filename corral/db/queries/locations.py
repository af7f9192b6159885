"""Where things live in a cluster: the member holding an instance (instances.node_id) and the member
running an operation (LXD's `operations` table: uuid, node_id, type, project_id)."""
from __future__ import annotations

from corral.db import Tx
from corral.db.queries import lxd

_MEMBER = "n.id AS id, n.name AS name, n.address AS address, n.heartbeat AS heartbeat"


async def instance_member(tx: Tx, project: str, name: str) -> dict | None:
    """The member (id, name, address, heartbeat) holding instance `name` of `project`; None when
    there is no such instance."""
    return await tx.fetchone(f"SELECT {_MEMBER} FROM instances i JOIN projects p ON p.id = i.project_id "
                             "JOIN nodes n ON n.id = i.node_id WHERE p.name = ? AND i.name = ?", [project, name])


async def record_operation(tx: Tx, uuid: str, type_code: int, project: str | None) -> None:
    """An operation of this member (LXD's registerDBOperation)."""
    await tx.execute(f"INSERT OR REPLACE INTO operations (uuid, node_id, type, project_id) "
                     f"VALUES (?, {lxd.LOCAL_NODE_ID}, ?, (SELECT id FROM projects WHERE name = ?))",
                     [uuid, type_code, project])


async def forget_operation(tx: Tx, uuid: str) -> None:
    await tx.execute("DELETE FROM operations WHERE uuid = ?", [uuid])


async def forget_local_operations(tx: Tx) -> None:
    """This member's operation rows (left by an earlier run of the daemon: none of them runs now)."""
    await tx.execute(f"DELETE FROM operations WHERE node_id = {lxd.LOCAL_NODE_ID}")


async def operation_member(tx: Tx, uuid: str) -> dict | None:
    """The member running operation `uuid` and the operation's project (None when unknown)."""
    return await tx.fetchone(f"SELECT {_MEMBER}, p.name AS project FROM operations o "
                             "JOIN nodes n ON n.id = o.node_id LEFT JOIN projects p ON p.id = o.project_id "
                             "WHERE o.uuid = ?", [uuid])


async def members_with_operations(tx: Tx) -> list[dict]:
    """The other members that have operations recorded (LXD's GetNodesWithOperations)."""
    return await tx.fetch(f"SELECT DISTINCT {_MEMBER} FROM operations o JOIN nodes n ON n.id = o.node_id "
                          f"WHERE o.node_id != {lxd.LOCAL_NODE_ID} ORDER BY n.id")
