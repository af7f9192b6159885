"""`snapshot` and `restore` (lxc's snapshot.go, restore.go)."""

from __future__ import annotations

from typing import Any

import click

from corral.cli.client import ClientError
from corral.cli.config import q
from corral.cli.main import Ctx, fail, pass_ctx, strip_remote
from corral.cli.instance import cmd, wait_op



@cmd("snapshot")
@click.argument("name")
@click.argument("snapshot_name", required=False)
@click.option("--stateful", is_flag=True, help="Whether or not to snapshot the instance's running state")
@click.option("--reuse", is_flag=True, help="If the snapshot name already exists, delete and create a new one")
@click.option("--no-expiry", is_flag=True, help="Ignore any configured auto-expiry for the instance")
@pass_ctx
def snapshot(ctx: Ctx, name: str, snapshot_name: str | None, stateful: bool, reuse: bool, no_expiry: bool) -> None:
    """Create instance snapshots: corral snapshot INSTANCE [SNAPSHOT]."""
    client = ctx.client
    name = strip_remote(name)
    if snapshot_name and "/" in snapshot_name:
        fail("Snapshot names can't contain '/'")
    req: dict[str, Any] = {"stateful": stateful}
    if snapshot_name:
        req["name"] = snapshot_name
    if no_expiry:
        req["expires_at"] = "0001-01-01T00:00:00Z"
    if reuse and snapshot_name:
        try:
            client.metadata(f"/1.0/instances/{q(name)}/snapshots/{q(snapshot_name)}")
        except ClientError:
            pass
        else:
            wait_op(ctx, client.delete(f"/1.0/instances/{q(name)}/snapshots/{q(snapshot_name)}"))
    wait_op(ctx, client.post(f"/1.0/instances/{q(name)}/snapshots", req))


@cmd("restore")
@click.argument("name")
@click.argument("snapshot_name")
@click.option("--stateful", is_flag=True, help="Whether or not to restore the instance's running state from snapshot")
@pass_ctx
def restore(ctx: Ctx, name: str, snapshot_name: str, stateful: bool) -> None:
    """Restore instances from snapshots: corral restore INSTANCE SNAPSHOT."""
    name = strip_remote(name)
    if "/" in snapshot_name:
        snapshot_name = snapshot_name.split("/", 1)[1]
    env = ctx.client.put(f"/1.0/instances/{q(name)}", {"restore": snapshot_name, "stateful": stateful})
    wait_op(ctx, env)
