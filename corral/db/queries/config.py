"""Global server config (cluster-wide keys): LXD's `config` table (id, key, value)."""
from corral.db import Tx


async def get(tx: Tx) -> dict[str, str]:
    return {r["key"]: r["value"] for r in await tx.fetch("SELECT key, value FROM config ORDER BY id")
            if r["value"] is not None}


async def update(tx: Tx, changes: dict[str, str | None]) -> None:
    for k, v in changes.items():
        if v in (None, ""):
            await tx.execute("DELETE FROM config WHERE key = ?", [k])
        else:
            await tx.execute("INSERT INTO config (key, value) VALUES (?, ?) "
                             "ON CONFLICT (key) DO UPDATE SET value = excluded.value", [k, v])
