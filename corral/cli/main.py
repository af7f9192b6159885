"""`corral`: a command line client mirroring LXD's `lxc`."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from corral.cli.client import Client, ClientError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 120}

# command name -> (module, attribute); loaded lazily so `corral query` does not
# import the instance or image machinery.
COMMANDS: dict[str, tuple[str, str]] = {
    "config": ("corral.cli.config", "config"),
    "profile": ("corral.cli.profile", "profile"),
    "network": ("corral.cli.network", "network"),
    "operation": ("corral.cli.operation", "operation"),
    "monitor": ("corral.cli.monitor", "monitor"),
    "query": ("corral.cli.query", "query"),
    "image": ("corral.cli.image", "image"),
    "info": ("corral.cli.instance_info", "info"),
    "launch": ("corral.cli.instance_create", "launch"),
    "init": ("corral.cli.instance_create", "init"),
    "start": ("corral.cli.instance_action", "start"),
    "stop": ("corral.cli.instance_action", "stop"),
    "restart": ("corral.cli.instance_action", "restart"),
    "pause": ("corral.cli.instance_action", "pause"),
    "delete": ("corral.cli.instance_delete", "delete"),
    "list": ("corral.cli.instance_list", "list_"),
    "exec": ("corral.cli.instance_exec", "exec_"),
    "console": ("corral.cli.instance_console", "console"),
    "file": ("corral.cli.instance_file", "file"),
    "snapshot": ("corral.cli.instance_snapshot", "snapshot"),
    "restore": ("corral.cli.instance_snapshot", "restore"),
    "copy": ("corral.cli.instance_copy", "copy"),
    "move": ("corral.cli.instance_copy", "move"),
    "rename": ("corral.cli.instance_copy", "rename"),
    "publish": ("corral.cli.instance_publish", "publish"),
    "remote": ("corral.cli.remote", "remote"),
    "storage": ("corral.cli.storage", "storage"),
    "project": ("corral.cli.project", "project"),
    "warning": ("corral.cli.warning", "warning"),
    "cluster": ("corral.cli.cluster", "cluster"),
    "alias": ("corral.cli.alias", "alias"),
    "export": ("corral.cli.backup", "export"),
    "import": ("corral.cli.backup", "import_"),
    "version": ("corral.cli.version", "version"),
    "completion": ("corral.cli.completion", "completion"),
    "migrate-from-lxd": ("corral.cli.migrate_from_lxd", "migrate_from_lxd"),
}

ALIASES = {"ls": "list", "rm": "delete", "cp": "copy", "mv": "move", "create": "init"}


# lxc's sub-command aliases, resolved to whichever target a group has.
SUB_ALIASES = {
    "ls": ("list",),
    "rm": ("remove", "delete"),
    "cp": ("copy",),
    "mv": ("rename", "move"),
    "cancel": ("delete",),
    "create": ("init",),
}


def suggestions(typed: str, names: list[str]) -> list[str]:
    """cobra's 'Did you mean this?': names within Levenshtein distance 2, or starting with the typo."""
    def distance(a: str, b: str) -> int:
        prev = list(range(len(b) + 1))
        for i, ca in enumerate(a, 1):
            cur = [i]
            for j, cb in enumerate(b, 1):
                cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
            prev = cur
        return prev[-1]
    return [n for n in names if distance(typed.lower(), n.lower()) <= 2 or n.startswith(typed.lower())]


def unknown_command(group: click.Group, ctx: click.Context, name: str) -> ClientError:
    path = " ".join(["corral", *ctx.command_path.split()[1:]])
    message = f'unknown command "{name}" for "{path}"'
    names = []
    for n in sorted(group.list_commands(ctx)):
        cmd = group.commands.get(n)
        if cmd is None or cmd.name == n:   # not an alias registered under a second name
            names.append(n)
    near = suggestions(name, names)
    if near:
        message += "\n\nDid you mean this?\n" + "".join(f"\t{n}\n" for n in near)
    return ClientError(message)


class SuggestingGroup(click.Group):
    """A group whose unknown sub-command is lxc's error, with cobra's suggestions."""

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name = click.utils.make_str(args[0])
        if self.get_command(ctx, name) is None and not name.startswith("-"):
            raise unknown_command(self, ctx, name)
        return super().resolve_command(ctx, args)


class AliasGroup(SuggestingGroup):
    """click.Group that understands lxc's short aliases (ls, rm, cp, mv)."""

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        cmd = super().get_command(ctx, name)
        if cmd is not None:
            return cmd
        for target in SUB_ALIASES.get(name, ()):
            cmd = super().get_command(ctx, target)
            if cmd is not None:
                return cmd
        return None


def group(name: str | None = None, **kw: Any):
    """Decorator for a command group with aliases and -h."""
    kw.setdefault("cls", AliasGroup)
    kw.setdefault("context_settings", CONTEXT_SETTINGS)
    return click.group(name, **kw)


class Ctx:
    """Global options and a lazily created API client."""

    def __init__(self, project: str | None = None, quiet: bool = False, debug: bool = False,
                 remote: str | None = None):
        self.project = project
        self.quiet = quiet
        self.debug = debug
        # The remote of the command's REMOTE:NAME argument (else the default remote); see remote.py.
        self.remote = remote
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            if self.remote is None and not os.path.exists(_remote_config()):
                self._client = Client(project=self.project)
            else:
                from corral.cli import remote
                self._client = remote.client_for(self.remote or remote.load()["default-remote"], self.project)
        return self._client


def _remote_config() -> str:
    base = os.environ.get("CORRAL_CONF") or os.path.join(os.path.expanduser("~"), ".config", "corral")
    return os.path.join(base, "config.yml")


def command_remote(args: list[str]) -> str | None:
    """The remote named by the first REMOTE:NAME argument (before `--`), if it is a configured remote."""
    if not args or args[0] == "remote" or not os.path.exists(_remote_config()):
        return None
    from corral.cli import remote
    for arg in args:
        if arg == "--":
            break
        if ":" in arg and not arg.startswith("-"):
            name, _ = remote.split(arg)
            if name is not None:
                return name
    return None


pass_ctx = click.make_pass_decorator(Ctx, ensure=True)


def fail(message: str) -> None:
    """Abort the command with lxc's 'Error: ...' (exit status 1)."""
    raise ClientError(message)


def strip_remote(name: str) -> str:
    """Accept lxc's 'local:NAME' form; other remotes do not exist here."""
    if ":" in name:
        remote, rest = name.split(":", 1)
        if remote in ("local", ""):
            return rest
        if os.path.exists(_remote_config()):
            from corral.cli.remote import names
            if remote in names():
                return rest
        if "/" not in remote:
            fail(f"The remote \"{remote}\" doesn't exist")
    return name


def parse_key_values(args: tuple[str, ...] | list[str], stdin_dash: bool = True) -> dict[str, str]:
    """lxc's getConfig(): either 'KEY VALUE' or 'KEY=VALUE...'.

    A value of '-' is read from stdin when stdin is not a terminal."""
    args = list(args)

    def value_of(v: str) -> str:
        if stdin_dash and v == "-" and not sys.stdin.isatty():
            return sys.stdin.read()
        return v

    if len(args) == 2 and "=" not in args[0]:
        return {args[0]: value_of(args[1])}
    values: dict[str, str] = {}
    for arg in args:
        if "=" not in arg:
            fail(f"Invalid key=value configuration: {arg}")
        key, value = arg.split("=", 1)
        values[key] = value_of(value)
    return values


GLOBAL_FLAGS = {"-q", "--quiet", "--debug", "-v", "--verbose", "--force-local"}


def hoist_global_flags(args: list[str]) -> list[str]:
    """lxc's global flags may follow the sub-command (`corral launch -q ...`):
    move them in front so the top-level group sees them."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg in GLOBAL_FLAGS:
            front.append(arg)
        elif arg == "--project" and i + 1 < len(args):
            front += [arg, args[i + 1]]
            i += 1
        elif arg.startswith("--project="):
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


class CorralGroup(SuggestingGroup):
    """Group with lazily loaded sub-commands, lxc's aliases and error style."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        name = ALIASES.get(name, name)
        if name in self.commands:
            return self.commands[name]
        target = COMMANDS.get(name)
        if target is None:
            return None
        try:
            module = importlib.import_module(target[0])
        except ImportError:  # a command group not written yet
            return None
        cmd = getattr(module, target[1], None)
        if cmd is not None:
            from corral.cli.examples import add_examples
            add_examples(cmd, name)
        if cmd is not None and "_CORRAL_COMPLETE" in os.environ:
            from corral.cli.completion import attach
            attach(cmd, (name,))
        return cmd

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if ctx.parent is None:
            args = hoist_global_flags(args)
            ctx.meta["corral.remote"] = command_remote([a for a in args if not a.startswith("--project")])
        return super().parse_args(ctx, args)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        standalone = kwargs.get("standalone_mode", True)
        if not args and "args" not in kwargs and "_CORRAL_COMPLETE" not in os.environ:
            from corral.cli.alias import expand_argv
            kwargs["args"] = expand_argv(sys.argv[1:], set(COMMANDS) | set(ALIASES))
        try:
            rv = super().main(*args, **{**kwargs, "standalone_mode": False})
            if standalone and isinstance(rv, int) and not isinstance(rv, bool) and rv != 0:
                sys.exit(rv)  # ctx.exit(code), e.g. exec's exit code
            return rv
        except ClientError as exc:
            _print_error(with_hint(str(exc)))
            if standalone:
                sys.exit(1)
            raise
        except click.exceptions.Exit as exc:
            if standalone:
                sys.exit(exc.exit_code)
            raise
        except click.ClickException as exc:
            if not standalone:
                raise
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            if not standalone:
                raise
            sys.exit(130)
        except KeyboardInterrupt:
            if not standalone:
                raise
            sys.exit(130)
        except BrokenPipeError:
            sys.exit(1)


SOCKET_HINT = ("Is corrald running? Set CORRAL_DIR to its directory (or CORRAL_SOCKET to its socket); "
               "the default is /var/lib/corral/unix.socket")


def with_hint(message: str) -> str:
    """A missing or refused unix socket gets a hint after lxc's error text."""
    if "dial unix" in message and ("no such file or directory" in message or "connection refused" in message):
        return f"{message}\n{SOCKET_HINT}"
    return message


def _print_error(message: str) -> None:
    try:
        sys.stdout.flush()
    except Exception:
        pass
    sys.stderr.write(f"Error: {message}\n")
    sys.stderr.flush()


def _version(ctx: click.Context, _param: Any, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from corral.cli.version import version_lines
    click.echo(version_lines(ctx.find_object(Ctx) or Ctx()))
    ctx.exit()


@click.group(cls=CorralGroup, context_settings=CONTEXT_SETTINGS, invoke_without_command=True)
@click.option("--project", default=None, help="Override the source project")
@click.option("-q", "--quiet", is_flag=True, help="Don't show progress information")
@click.option("--debug", is_flag=True, help="Show all debug messages")
@click.option("-v", "--verbose", is_flag=True, help="Show all information messages")
@click.option("--force-local", is_flag=True, help="Force using the local unix socket")
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_version,
              help="Print version number")
@click.pass_context
def cli(ctx: click.Context, project: str | None, quiet: bool, debug: bool, verbose: bool,
        force_local: bool) -> None:
    """Command line client for Corral (LXD-compatible).

    All of Corral's features can be driven through the various commands below.
    For help with any of those, simply call them with --help."""
    ctx.obj = Ctx(project=project, quiet=quiet, debug=debug, remote=ctx.meta.get("corral.remote"))
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


def main() -> None:  # pragma: no cover - console entry point helper
    cli()


if __name__ == "__main__":
    cli()


@cli.command("help", context_settings=CONTEXT_SETTINGS,
             epilog="\b\nExamples:\n\n\b\n  corral help storage volume\n      Help on the storage volume commands.")
@click.argument("path", nargs=-1)
@click.pass_context
def help_(ctx: click.Context, path: tuple[str, ...]) -> None:
    """Help about any command."""
    cmd: click.Command = cli
    sub_ctx = click.Context(cli, info_name="corral")
    for name in path:
        if not isinstance(cmd, click.Group):
            break
        nxt = cmd.get_command(sub_ctx, name)
        if nxt is None:
            raise unknown_command(cmd, sub_ctx, name)
        cmd = nxt
        sub_ctx = click.Context(cmd, info_name=name, parent=sub_ctx)
    click.echo(sub_ctx.get_help())
