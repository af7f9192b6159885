"""`corral version` (and `--version`): the client's version (the lxc release it matches, and Corral's
own) and the server's."""

from __future__ import annotations

import click
from corral.cli.base import client_of, lxc_command
from corral.cli.main import Ctx

LXC_VERSION = "5.0.2"


def corral_version() -> str:
    """The installed package's version (corral/__init__.py is server code the CLI must not import)."""
    from importlib import metadata
    try:
        return metadata.version("corral")
    except metadata.PackageNotFoundError:
        return "unknown"


def version_lines(ctx: Ctx, remote_arg: str | None = None) -> str:
    try:
        client = client_of(ctx, remote_arg) if remote_arg else ctx.client
        server = client.server().get("environment", {}).get("server_version") or "unreachable"
    except Exception:  # lxc prints "unreachable" whatever the reason
        server = "unreachable"
    return f"Client version: {LXC_VERSION} (Corral {corral_version()})\nServer version: {server}"


@lxc_command(None, "version", "[<remote>:]", "Show local and remote versions.",
             "corral version\n    Show Corral's and the local server's versions.\n\n"
             "corral version myremote:\n    Show the version of the server behind a remote.", max_args=1)
def version(ctx: Ctx, args: list[str]) -> None:
    click.echo(version_lines(ctx, args[0] if args else None))
