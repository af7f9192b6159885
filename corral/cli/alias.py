"""`corral alias`: client-side command aliases kept in config.yml's `aliases` (lxc's alias.go and
main_aliases.go: an alias's words replace the command's first words; @ARGS@ takes the remaining
arguments, @ARG1@.. single ones; without either the remaining arguments are appended)."""

from __future__ import annotations

from corral.cli.base import format_opt, lxc_command
from corral.cli.main import Ctx, fail, group
from corral.cli.output import print_list

# lxc's built-in alias (not listed by `alias list`, not removable).
DEFAULT_ALIASES = {"shell": "exec @ARGS@ -- su -l"}


def _load() -> dict:
    from corral.cli import remote
    return remote.load()


def _save(cfg: dict) -> None:
    from corral.cli import remote
    remote.save(cfg)


@group()
def alias() -> None:
    """Manage command aliases."""


@lxc_command(alias, "add", "<alias> <target>", "Add new aliases.",
             'corral alias add list "list -c ns46S"\n    Overwrite the "list" command to pass -c ns46S.',
             min_args=2, max_args=2)
def alias_add(ctx: Ctx, args: list[str]) -> None:
    cfg = _load()
    if args[0] in cfg["aliases"]:
        fail(f"Alias {args[0]} already exists")
    cfg["aliases"][args[0]] = args[1]
    _save(cfg)


@lxc_command(alias, "list", "", "List aliases.", "corral alias list\n    List the aliases.", aliases=("ls",),
             max_args=0, options=(format_opt(),))
def alias_list(ctx: Ctx, args: list[str], fmt: str) -> None:
    aliases = _load()["aliases"]
    rows = [[k, aliases[k]] for k in sorted(aliases)]
    print_list(fmt, ["ALIAS", "TARGET"], rows, {k: aliases[k] for k in sorted(aliases)})


@lxc_command(alias, "rename", "<old alias> <new alias>", "Rename aliases.",
             'corral alias rename list my-list\n    Rename existing alias "list" to "my-list".',
             aliases=("mv",), min_args=2, max_args=2)
def alias_rename(ctx: Ctx, args: list[str]) -> None:
    cfg = _load()
    old, new = args
    if old not in cfg["aliases"]:
        fail(f"Alias {old} doesn't exist")
    if new in cfg["aliases"]:
        fail(f"Alias {new} already exists")
    cfg["aliases"][new] = cfg["aliases"].pop(old)
    _save(cfg)


@lxc_command(alias, "remove", "<alias>", "Remove aliases.",
             'corral alias remove my-list\n    Remove the "my-list" alias.', aliases=("rm",), min_args=1, max_args=1)
def alias_remove(ctx: Ctx, args: list[str]) -> None:
    cfg = _load()
    if args[0] not in cfg["aliases"]:
        fail(f"Alias {args[0]} doesn't exist")
    del cfg["aliases"][args[0]]
    _save(cfg)


def expand(args: list[str], aliases: dict[str, str]) -> list[str] | None:
    """The command line with its alias expanded (None: no alias matches). Longest alias first."""
    merged = {**DEFAULT_ALIASES, **aliases}
    for key in sorted(merged, key=lambda k: -len(k.split())):
        words = key.split()
        if args[:len(words)] != words:
            continue
        rest = args[len(words):]
        out: list[str] = []
        used_all = False
        used = set()
        for word in merged[key].split():
            if word == "@ARGS@":
                out += rest
                used_all = True
            elif word.startswith("@ARG") and word.endswith("@") and word[4:-1].isdigit():
                n = int(word[4:-1])
                if 1 <= n <= len(rest):
                    out.append(rest[n - 1])
                    used.add(n - 1)
            else:
                out.append(word)
        if not used_all:
            out += [a for i, a in enumerate(rest) if i not in used]
        return out
    return None


def expand_argv(args: list[str], known: set[str]) -> list[str]:
    """Expand a configured alias once (a built-in command wins over the default aliases only)."""
    if not args:
        return args
    try:
        aliases = _load().get("aliases") or {}
    except Exception:  # an unreadable config: no aliases
        aliases = {}
    if args[0] in known and args[0] not in aliases:
        return args
    out = expand(args, aliases)
    return out if out is not None else args


__all__ = ["alias", "expand", "expand_argv"]
