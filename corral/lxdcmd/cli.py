"""The `corrald` command group as LXD's cobra command behaves: `Error: <message>` on stderr and exit
code 1 for every error (unknown command or flag included), `-h/--help`, and LXD's persistent global
flags (`-d/--debug`, `-v/--verbose`, `--logfile`, `--syslog`, `--trace`) accepted after a subcommand too.
"""
from __future__ import annotations

import os
import sys

import click

CONTEXT = {"help_option_names": ["-h", "--help"]}


def _store(ctx: click.Context, param: click.Parameter, value):
    if value not in (None, False, ()):
        ctx.meta["lxd." + param.name] = value
    return value


def _trace(ctx: click.Context, param: click.Parameter, value):
    targets = [t.strip() for v in value or () for t in v.split(",") if t.strip()]
    if targets:
        ctx.meta["lxd.trace"] = ctx.meta.get("lxd.trace", []) + targets
    return targets


GLOBAL_OPTIONS = [
    click.option("-d", "--debug", is_flag=True, expose_value=False, callback=_store, help="Show all debug messages"),
    click.option("--logfile", default=None, expose_value=False, callback=_store, help="Path to the log file"),
    click.option("--syslog", is_flag=True, expose_value=False, callback=_store, help="Log to syslog"),
    click.option("--trace", multiple=True, expose_value=False, callback=_trace,
                 help="Log tracing targets (comma-separated subsystems logged at debug level)"),
    click.option("-v", "--verbose", is_flag=True, expose_value=False, callback=_store,
                 help="Show all information messages"),
]


def global_options(f):
    for opt in reversed(GLOBAL_OPTIONS):
        f = opt(f)
    return f


def flags(ctx: click.Context | None = None) -> dict:
    """The global flags given anywhere on the command line."""
    meta = (ctx or click.get_current_context()).meta
    return {"debug": bool(meta.get("lxd.debug")), "verbose": bool(meta.get("lxd.verbose")),
            "logfile": meta.get("lxd.logfile"), "syslog": bool(meta.get("lxd.syslog")),
            "trace": list(meta.get("lxd.trace") or [])}


def setup_client_logging() -> None:
    """Logging for a subcommand (LXD logs them like the daemon: stderr, plus --logfile/--syslog)."""
    from corral.logsetup import setup_logging as _setup_logging
    f = flags()
    _setup_logging(f["debug"], f["logfile"], verbose=f["verbose"], syslog=f["syslog"], trace=f["trace"],
                  default_level="WARNING")


def client(timeout: float | None = None):
    from corral import client as rest
    from corral.paths import Paths
    return rest.Client(socket_path=Paths.from_env().socket, timeout=timeout)


def fail(message: str) -> None:
    raise click.ClickException(message)


class LXDGroup(click.Group):
    """Click group with cobra's error texts and exit codes."""

    def resolve_command(self, ctx, args):
        name = args[0] if args else ""
        if name and self.get_command(ctx, name) is None and not name.startswith("-"):
            raise click.UsageError(f'unknown command "{name}" for "{ctx.command_path}"', ctx)
        return super().resolve_command(ctx, args)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        prog = prog_name or os.path.basename(sys.argv[0]) or "corrald"
        try:
            rv = super().main(args=args, prog_name=prog, complete_var=complete_var, standalone_mode=False,
                              **extra)
        except click.exceptions.NoSuchOption as e:
            _die(f"unknown flag: {e.option_name}")
        except click.exceptions.UsageError as e:
            _die(e.format_message())
        except click.ClickException as e:
            _die(e.format_message())
        except click.exceptions.Abort:
            _die("interrupted")
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except EOFError:
            _die("EOF")
        # ctx.exit(n) (e.g. after --help) comes back as the return value without standalone mode
        sys.exit(rv if isinstance(rv, int) else 0)


def _die(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)
