"""file push/pull/delete."""

import click


@click.group("file")
def file() -> None:
    """Manage files in instances."""
