"""`corral migrate-from-lxd`: the entry of corral/migrate/ (docs/migrate-from-lxd.md). The CLI imports no
server code, so it runs the migration as `python -m corral.migrate` in the same environment."""
from __future__ import annotations

import os
import sys

import click


@click.command("migrate-from-lxd", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--lxd-dir", default="/var/lib/lxd", show_default=True, help="LXD's data directory")
@click.option("--corral-dir", default=None, help="Corral's data directory (default $CORRAL_DIR or /var/lib/corral)")
@click.option("--dry-run", is_flag=True, help="Print the plan and every blocker; change nothing")
@click.option("--back", is_flag=True, help="Undo a migration that succeeded and start LXD again")
def migrate_from_lxd(lxd_dir: str, corral_dir: str | None, dry_run: bool, back: bool) -> None:
    """Convert an LXD 5.0 host to Corral, as lxd-to-incus does for Incus.

    Checks first (nothing changes when one fails), then stops LXD, moves its data directory over,
    writes Corral's database from LXD's, starts corrald and the instances that were running. Any
    failure after the first change rolls back to a working LXD.

    Examples: corral migrate-from-lxd --dry-run; corral migrate-from-lxd --back"""
    args = [sys.executable, "-m", "corral.migrate", "--lxd-dir", lxd_dir]
    if corral_dir:
        args += ["--corral-dir", corral_dir]
    if dry_run:
        args.append("--dry-run")
    if back:
        args.append("--back")
    os.execv(sys.executable, args)
