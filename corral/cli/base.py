"""What the lxc-style command groups written after the first ones share: a command decorator that
takes lxc's positional arguments as a list (checked like lxc's CheckArgs: too few prints the help
and exits 0 when there are none, else 'Invalid number of arguments'), an Examples section, and
the `[<remote>:]NAME` parsing in which an unknown remote is an error."""

from __future__ import annotations

import os
import urllib.parse
from typing import Any, Callable

import click

from corral.cli.main import CONTEXT_SETTINGS, Ctx, fail

LOCAL = "local"


def q(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def lxc_command(parent: click.Group | None, name: str, usage: str, help_: str, examples: str = "",
                aliases: tuple[str, ...] = (), min_args: int = 0, max_args: int | None = None,
                options: tuple[Any, ...] = ()) -> Callable:
    """Register ``fn(ctx, args, **options)`` as ``parent``'s sub-command ``name``.

    ``usage`` is lxc's usage line without the program and command names."""

    def deco(fn: Callable) -> click.Command:
        def callback(args: tuple[str, ...], **kw: Any) -> Any:
            cctx = click.get_current_context()
            check_args(cctx, list(args), min_args, max_args)
            return fn(cctx.find_object(Ctx) or cctx.ensure_object(Ctx), list(args), **kw)

        params = [click.Argument(["args"], nargs=-1, type=click.UNPROCESSED), *options]
        epilog = examples_text(examples)
        cmd = LxcCommand(name, callback=callback, params=params, help=help_, epilog=epilog,
                         context_settings=CONTEXT_SETTINGS, options_metavar="[flags]")
        cmd.lxc_usage = usage
        if parent is not None:
            parent.add_command(cmd)
            for alias in aliases:
                parent.add_command(cmd, alias)
        return cmd

    return deco


class LxcCommand(click.Command):
    """A command whose usage line is lxc's (`corral project get [<remote>:]<project> <key> [flags]`)."""

    lxc_usage = ""

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if not self.lxc_usage:
            return super().format_usage(ctx, formatter)
        formatter.write_usage(ctx.command_path, f"{self.lxc_usage} [flags]".strip())


def examples_text(examples: str) -> str:
    if not examples:
        return ""
    # click re-wraps paragraphs unless they start with \b: mark each one.
    paragraphs = examples.strip("\n").split("\n\n")
    body = "\n\n".join("\b\n" + "\n".join("  " + line for line in para.splitlines()) for para in paragraphs)
    return "\b\nExamples:\n\n" + body


def check_args(cctx: click.Context, args: list[str], min_args: int, max_args: int | None) -> None:
    if len(args) < min_args or (max_args is not None and len(args) > max_args):
        click.echo(cctx.get_help())
        if not args:
            cctx.exit(0)
        fail("Invalid number of arguments")


def option(*decls: str, **kw: Any) -> click.Option:
    return click.Option(list(decls), **kw)


def flag(*decls: str, help: str) -> click.Option:  # noqa: A002 - click's name
    return click.Option(list(decls), is_flag=True, help=help)


def format_opt(default: str = "table") -> click.Option:
    from corral.cli.output import FORMATS
    return click.Option(["-f", "--format", "fmt"], default=default, show_default=True, type=click.Choice(FORMATS),
                        help="Format (csv|json|table|yaml|compact)")


# --------------------------------------------------------------------------
# [<remote>:]NAME
# --------------------------------------------------------------------------


def config_exists() -> bool:
    from corral.cli.main import _remote_config
    return os.path.exists(_remote_config())


def remote_names() -> set[str]:
    if not config_exists():
        return {LOCAL}
    from corral.cli import remote
    return remote.names()


def parse_remote(arg: str) -> tuple[str | None, str]:
    """lxc's ParseRemote: 'REMOTE:NAME' -> (REMOTE, NAME); no colon -> (None, NAME) (the default
    remote); an unknown remote is an error."""
    if ":" not in arg:
        return None, arg
    remote, rest = arg.split(":", 1)
    if remote == "":
        return None, rest
    if remote not in remote_names():
        fail(f'The remote "{remote}" doesn\'t exist')
    return remote, rest


def name_of(arg: str) -> str:
    return parse_remote(arg)[1]


def client_of(ctx: Ctx, arg: str | None = None, project: str | None = None):
    """The client for the remote of ``arg`` (the command's default client if it names none)."""
    remote = parse_remote(arg)[0] if arg else None
    if remote is None or remote == ctx.remote or (remote == LOCAL and ctx.remote is None and project is None):
        if project is None:
            return ctx.client
    if remote is None:
        remote = ctx.remote or default_remote()
    if remote == LOCAL and not config_exists():
        from corral.cli.client import Client
        return Client(project=project or ctx.project)
    from corral.cli import remote as remote_mod
    return remote_mod.client_for(remote, project or ctx.project)


def default_remote() -> str:
    if not config_exists():
        return LOCAL
    from corral.cli import remote
    return remote.load()["default-remote"]


def project_of(ctx: Ctx, remote: str | None = None) -> str:
    """The project commands act in: --project, else the remote's current project, else default."""
    if ctx.project:
        return ctx.project
    return remote_project(remote or ctx.remote or default_remote()) or "default"


def remote_project(remote: str) -> str | None:
    if not config_exists():
        return None
    from corral.cli import remote as remote_mod
    return (remote_mod.load()["remotes"].get(remote) or {}).get("project") or None


__all__ = ["lxc_command", "check_args", "parse_remote", "name_of", "client_of", "project_of", "q", "option", "flag",
           "format_opt", "examples_text", "remote_argument", "strip_first_remote"]


def _check_remote(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not ctx.resilient_parsing:
        parse_remote(value if ":" in value else value + ":")
    return value


def remote_argument() -> Callable:
    """The optional `[<remote>:]` argument of a list command (an unknown remote is lxc's error)."""
    return click.argument("remote", required=False, callback=_check_remote)


def strip_first_remote(filters: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """`list [<remote>:][<filter>] [<filter>...]`: check and drop the remote of the first argument."""
    items = list(filters)
    if items and ":" in items[0] and "=" not in items[0].split(":", 1)[0]:
        _, rest = parse_remote(items[0])
        items = ([rest] if rest else []) + items[1:]
    return tuple(items)
