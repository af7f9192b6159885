"""The `corrald` command: run the daemon, or talk to a running one like `lxd <subcommand>`.

It takes the place of LXD 5.0's `lxd` command: the same daemon flags (`--debug`, `--verbose`,
`--group`, `--logfile`, `--syslog`, `--trace`, `--version`) and subcommands (corral/lxdcmd/).
"""
from __future__ import annotations

import asyncio
import logging
import logging.handlers
import os
import sys

import click

from corral import LXD_VERSION
from corral.lxdcmd import activate, admin, init, recover, sql
from corral.lxdcmd.cli import CONTEXT, LXDGroup, flags, global_options
from corral.logsetup import setup_logging as _setup_logging
from corral.paths import Paths

def _print_version(ctx: click.Context, _param, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(LXD_VERSION)
        ctx.exit(0)


@click.group(cls=LXDGroup, invoke_without_command=True, context_settings=CONTEXT,
             help="Description:\n  The Corral daemon: LXD 5.0's API and `lxd` command line.\n\n"
                  "  Without a subcommand it runs the daemon in the foreground (as `lxd` does).")
@global_options
@click.option("--group", default=None, help="The group of users that will be allowed to talk to LXD")
@click.option("--mock", is_flag=True, default=False,
              help="Run on fake instance, storage and network drivers, as any user (also: CORRAL_MOCK=1)")
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Print version number")
@click.pass_context
def main(ctx: click.Context, group: str | None, mock: bool) -> None:
    if ctx.invoked_subcommand is not None:
        return
    from corral import mock as mockmode
    mock = mockmode.requested(mock)
    if os.geteuid() != 0 and not mock:
        raise click.ClickException("This must be run as root (or in mock mode: --mock)")
    if mock:
        mockmode.install()
    paths = Paths.from_env()
    f = flags(ctx)
    _setup_logging(f["debug"], f["logfile"] or paths.join("logs", "corrald.log"), verbose=f["verbose"],
                  syslog=f["syslog"], trace=f["trace"])
    from corral.daemon import Daemon
    from corral.netguard import raise_nofile

    nofile = raise_nofile()
    logging.getLogger("corrald").info("file descriptor limit: %d", nofile)

    try:
        asyncio.run(Daemon(paths, group=group, mock=mock).run())
    except RuntimeError as e:
        logging.getLogger("corrald").error("%s", e)
        sys.exit(1)


for _cmd in (*admin.COMMANDS, init.init, sql.sql, activate.activateifneeded, recover.recover):
    main.add_command(_cmd)


if __name__ == "__main__":
    main()
