"""exec and console (websockets)."""

import click


@click.command("exec")
def exec_() -> None:
    """Execute commands in instances."""


@click.command("console")
def console() -> None:
    """Attach to instance consoles."""
