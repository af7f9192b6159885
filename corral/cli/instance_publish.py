"""`publish`: an image from an instance or snapshot (lxc's publish.go)."""

from __future__ import annotations

from typing import Any

import click

from corral.cli.config import q, split_snapshot
from corral.cli.main import Ctx, fail, parse_key_values, pass_ctx
from corral.cli.instance import change_state, cmd, wait_op



@cmd("publish")
@click.argument("name")
@click.argument("properties", nargs=-1)
@click.option("--alias", "aliases", multiple=True, help="New alias to define at target")
@click.option("--compression", default=None, help="Compression algorithm to use (none for uncompressed)")
@click.option("--expire", default=None, help="Image expiration date (format: rfc3339)")
@click.option("-f", "--force", is_flag=True, help="Stop the instance if currently running")
@click.option("--public", is_flag=True, help="Make the image public")
@pass_ctx
def publish(ctx: Ctx, name: str, properties: tuple[str, ...], aliases: tuple[str, ...], compression: str | None,
            expire: str | None, force: bool, public: bool) -> None:
    """Publish instances as images: corral publish INSTANCE[/SNAPSHOT] [key=value...]."""
    client = ctx.client
    props = list(properties)
    if props and props[0] in ("local:", ":"):
        props = props[1:]
    inst, snap = split_snapshot(name)
    restart_after = False
    if snap is None:
        state = client.metadata(f"/1.0/instances/{q(inst)}/state") or {}
        if str(state.get("status", "")).lower() == "running":
            if not force:
                fail("The instance is currently running. Use --force to have it stopped and restarted")
            change_state(ctx, inst, "stop", force=True)
            restart_after = True
    req: dict[str, Any] = {
        "source": {"type": "snapshot" if snap is not None else "instance",
                   "name": f"{inst}/{snap}" if snap is not None else inst},
        "public": public,
        "properties": parse_key_values(props, stdin_dash=False) if props else {},
    }
    if compression:
        req["compression_algorithm"] = compression
    if expire:
        req["expires_at"] = expire
    try:
        env = client.post("/1.0/images", req)
        op = wait_op(ctx, env, "Publishing instance")
    finally:
        if restart_after:
            change_state(ctx, inst, "start")
    fingerprint = (op.get("metadata") or {}).get("fingerprint", "")
    from corral.cli.image import ensure_aliases

    ensure_aliases(ctx, fingerprint, list(aliases))
    click.echo(f"Instance published with fingerprint: {fingerprint}")
