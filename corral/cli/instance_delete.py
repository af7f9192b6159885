"""`delete`: instances and snapshots (lxc's delete.go)."""

from __future__ import annotations


import click

from corral.cli.config import q, split_snapshot
from corral.cli.main import Ctx, fail, pass_ctx
from corral.cli.instance import batch, change_state, cmd, wait_op



@cmd("delete")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force the removal of running instances")
@click.option("-i", "--interactive", is_flag=True, help="Require user confirmation")
@pass_ctx
def delete(ctx: Ctx, names: tuple[str, ...], force: bool, interactive: bool) -> None:
    """Delete instances and snapshots."""
    client = ctx.client

    def one(full: str) -> None:
        if interactive:
            answer = click.prompt(f"Remove {full} (yes/no)", default="", show_default=False)
            if answer.strip().lower() not in ("y", "yes"):
                fail("User aborted delete operation")
        inst, snap = split_snapshot(full)
        if snap is not None:
            wait_op(ctx, client.delete(f"/1.0/instances/{q(inst)}/snapshots/{q(snap)}"))
            return
        state = client.metadata(f"/1.0/instances/{q(inst)}/state") or {}
        if str(state.get("status", "")).lower() not in ("stopped", ""):
            if not force:
                fail("The instance is currently running, stop it first or pass --force")
            change_state(ctx, inst, "stop", force=True)
        wait_op(ctx, client.delete(f"/1.0/instances/{q(inst)}"))

    batch(list(names), one, "delete")
