"""What the instance commands share: the command decorator, waiting on operations, batches.

The commands themselves are one module per `lxc` command group: instance_create (launch/init),
instance_action (start/stop/restart/pause), instance_delete, instance_list, instance_info,
instance_snapshot (snapshot/restore), instance_copy (copy/move/rename), instance_publish,
instance_exec, instance_console and instance_file (file). `config` is config.py and config_device.py."""

from __future__ import annotations

import os
import stat
import sys
from typing import Any, Callable

import click

from corral.cli.client import ClientError
from corral.cli.config import q
from corral.cli.main import CONTEXT_SETTINGS, Ctx, fail, strip_remote
from corral.cli.output import OpProgress


def cmd(name: str, **kw: Any):
    kw.setdefault("context_settings", CONTEXT_SETTINGS)
    return click.command(name, **kw)


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def wait_op(ctx: Ctx, env: dict, label: str = "", quiet: bool | None = None) -> dict:
    """Wait for the operation of an async response (with progress)."""
    if env.get("type") != "async":
        return env.get("metadata") or {}
    op = env.get("operation") or (env.get("metadata") or {}).get("id")
    quiet = ctx.quiet if quiet is None else quiet
    if label:
        with OpProgress(label, quiet=quiet) as progress:
            return ctx.client.wait_operation(op, progress=progress.update)
    return ctx.client.wait_operation(op)


def stdin_is_data() -> bool:
    """True when stdin is a pipe or a file that may hold YAML (like lxc's
    `lxc launch IMAGE NAME < config.yaml`)."""
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):
        return False
    if os.isatty(fd):
        return False
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISREG(mode)


def instance_names(ctx: Ctx) -> list[str]:
    urls = ctx.client.metadata("/1.0/instances") or []
    return [u.rstrip("/").rsplit("/", 1)[-1] for u in urls]


def resolve_image(ctx: Ctx, image: str) -> dict:
    """An image source for POST /1.0/instances from an alias or fingerprint."""
    image = strip_remote(image)
    try:
        alias = ctx.client.metadata(f"/1.0/images/aliases/{q(image)}")
        if alias and alias.get("target"):
            return {"type": "image", "alias": image}
    except ClientError:
        pass
    try:
        img = ctx.client.metadata(f"/1.0/images/{q(image)}")
    except ClientError:
        fail("Image not found")
    return {"type": "image", "fingerprint": img.get("fingerprint", image)}


def batch(names: list[str], action: Callable[[str], None], verb: str) -> None:
    """Run ``action`` per name; report failures like lxc's runBatch."""
    if len(names) == 1:
        action(names[0])
        return
    failed = False
    for name in names:
        try:
            action(name)
        except ClientError as exc:
            failed = True
            for line in f"error: {exc}".split("\n"):
                sys.stderr.write(f"{name}: {line}\n")
    if failed:
        sys.stderr.write("\n")
        fail(f"Some instances failed to {verb}")


def change_state(ctx: Ctx, name: str, action: str, force: bool = False, timeout: int = -1,
                 stateful: bool = False, hint: bool = False) -> None:
    """PUT .../state and wait.  With ``hint``, a failed operation suggests
    looking at the log (like lxc start)."""
    body = {"action": action, "timeout": timeout, "force": force, "stateful": stateful}
    env = ctx.client.put(f"/1.0/instances/{q(name)}/state", body)
    try:
        wait_op(ctx, env)
    except ClientError as exc:
        if hint:
            raise ClientError(f"{exc}\nTry `corral info --show-log {name}` for more info") from None
        raise
