"""`corral operation`: list, show and cancel background operations."""

from __future__ import annotations

import click

from corral.cli.base import remote_argument

from corral.cli.config import q
from corral.cli.main import Ctx, group, pass_ctx, strip_remote
from corral.cli.output import format_option, format_time_short, print_list, to_yaml, yes_no


@group()
def operation() -> None:
    """List, show and delete background operations."""


def all_operations(ctx: Ctx) -> list[dict]:
    data = ctx.client.metadata("/1.0/operations", params={"recursion": 1}) or {}
    ops: list[dict] = []
    if isinstance(data, dict):
        for items in data.values():
            ops.extend(items or [])
    elif isinstance(data, list):
        ops.extend(op for op in data if isinstance(op, dict))
    return ops


@operation.command("list")
@remote_argument()
@format_option()
@pass_ctx
def operation_list(ctx: Ctx, remote: str | None, fmt: str) -> None:
    """List background operations."""
    ops = sorted(all_operations(ctx), key=lambda op: op.get("id", ""))
    clustered = ctx.client.is_clustered() if fmt in ("table", "compact", "csv") else False
    headers = ["ID", "TYPE", "DESCRIPTION", "STATUS", "CANCELABLE", "CREATED"]
    if clustered:
        headers.append("LOCATION")
    rows = []
    for op in ops:
        row = [
            op.get("id", ""),
            str(op.get("class", "")).upper(),
            op.get("description", ""),
            str(op.get("status", "")).upper(),
            yes_no(op.get("may_cancel", False)),
            format_time_short(op.get("created_at")),
        ]
        if clustered:
            row.append(op.get("location", ""))
        rows.append(row)
    print_list(fmt, headers, rows, ops)


@operation.command("show")
@click.argument("op_id")
@pass_ctx
def operation_show(ctx: Ctx, op_id: str) -> None:
    """Show details on a background operation."""
    op = ctx.client.metadata(f"/1.0/operations/{q(strip_remote(op_id))}")
    click.echo(to_yaml(op, typed=True), nl=False)


@operation.command("delete")
@click.argument("op_id")
@pass_ctx
def operation_delete(ctx: Ctx, op_id: str) -> None:
    """Delete a background operation (will attempt to cancel)."""
    op_id = strip_remote(op_id)
    ctx.client.delete(f"/1.0/operations/{q(op_id)}")
    if not ctx.quiet:
        click.echo(f"Operation {op_id} deleted")
