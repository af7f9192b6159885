"""Shell completion: `corral completion bash|zsh` prints the script (click's completion machinery,
`_CORRAL_COMPLETE`), and the positional arguments complete instance, image, profile, pool, volume,
network, project, member and remote names asked from the server (a REMOTE: prefix asks that remote)."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any, Callable

import click
from click.shell_completion import CompletionItem, get_completion_class

from corral.cli.main import CONTEXT_SETTINGS

KINDS = ("instance", "image", "profile", "pool", "volume", "network", "project", "remote", "member", "group",
         "warning-uuid", "fingerprint", "alias")


def _client(remote: str | None):
    from corral.cli import base
    from corral.cli.client import Client
    if remote and remote != "local" and remote in base.remote_names():
        from corral.cli import remote as remote_mod
        client = remote_mod.client_for(remote)
        client.timeout = 3
        return client
    project = base.remote_project(base.default_remote() if remote is None else remote)
    return Client(project=project, timeout=3)


def _names(client, path: str) -> list[str]:
    urls = client.metadata(path) or []
    return [urllib.parse.unquote(u.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]) for u in urls]


def server_names(kind: str, remote: str | None, previous: list[str]) -> list[str]:
    if kind in ("remote", "remote-name"):
        from corral.cli import base
        return sorted(r + (":" if kind == "remote" else "") for r in base.remote_names())
    if kind == "alias":
        from corral.cli import remote as remote_mod
        return sorted(remote_mod.load().get("aliases") or {})
    client = _client(remote)
    if kind == "instance":
        return _names(client, "/1.0/instances")
    if kind == "image":
        images = client.metadata("/1.0/images", params={"recursion": 1}) or []
        out = [a["name"] for img in images for a in img.get("aliases") or []]
        return out + [img["fingerprint"][:12] for img in images]
    if kind == "volume":
        pool = next((p.split(":", 1)[-1] for p in reversed(previous) if not p.startswith("-")), "")
        if not pool:
            return []
        return _names(client, f"/1.0/storage-pools/{urllib.parse.quote(pool, safe='')}/volumes/custom")
    paths = {"profile": "/1.0/profiles", "pool": "/1.0/storage-pools", "network": "/1.0/networks",
             "project": "/1.0/projects", "member": "/1.0/cluster/members", "group": "/1.0/cluster/groups",
             "warning-uuid": "/1.0/warnings", "fingerprint": "/1.0/certificates"}
    return _names(client, paths[kind]) if kind in paths else []


def complete_kind(kind: str, incomplete: str, previous: list[str] | None = None) -> list[CompletionItem]:
    """Names of ``kind`` starting with ``incomplete`` (which may carry a REMOTE: prefix)."""
    remote, prefix, word = None, "", incomplete
    if ":" in incomplete and kind not in ("remote", "remote-name"):
        remote, word = incomplete.split(":", 1)
        prefix = remote + ":"
    try:
        names = server_names(kind, remote, previous or [])
    except Exception:  # no server, no completion (never a traceback in the shell)
        names = []
    out = [CompletionItem(prefix + n) for n in sorted(set(names)) if n.startswith(word)]
    if kind not in ("remote", "remote-name", "alias") and remote is None and ":" not in incomplete:
        try:
            out += [CompletionItem(r) for r in server_names("remote", None, []) if r.startswith(incomplete)
                    and r != "local:" and incomplete]
        except Exception:
            pass
    return out


def usage_kinds(usage: str) -> list[str | None]:
    """The name kind of each positional in an lxc usage line: '[<remote>:]<pool> <volume>' -> pool, volume."""
    kinds: list[str | None] = []
    for word in usage.split():
        if word.startswith("--"):
            continue
        found = re.findall(r"<([^>]+)>", word)
        if not found:
            if word.startswith("["):
                kinds.append(None)
            continue
        last = found[-1].replace("remote:", "remote")
        for k in (last, last.split()[-1]):
            if k in KINDS:
                kinds.append(k)
                break
        else:
            kinds.append({"cluster member": "member", "old alias": "alias", "new alias": None}.get(last))
    return kinds


def for_usage(usage: str) -> Callable[[click.Context, click.Parameter, str], list[CompletionItem]]:
    kinds = usage_kinds(usage)

    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        previous = list(ctx.params.get(param.name) or [])
        index = len(previous)
        kind = kinds[index] if index < len(kinds) else None
        return complete_kind(kind, incomplete, previous) if kind else []

    return complete


# Arguments of the click-declared commands (not lxc_command's): (command path prefix, argument) -> kind.
ARGUMENT_KINDS = {
    ("profile", "name"): "profile", ("profile", "source"): "profile", ("profile", "profile"): "profile",
    ("profile", "names"): "instance", ("profile", "instance"): "instance",
    ("network", "name"): "network", ("network", "network"): "network", ("network", "instance"): "instance",
    ("storage", "pool"): "pool", ("storage", "vol"): "volume", ("storage", "instance"): "instance",
    ("image", "name"): "image", ("image", "names"): "image", ("image", "image"): "image",
    ("image", "alias"): "image", ("remote", "name"): "remote-name", ("remote", "old"): "remote-name",
    ("config", "name"): "instance", ("config", "instance"): "instance",
}


def attach(cmd: click.Command, path: tuple[str, ...]) -> None:
    """Give every positional argument under ``cmd`` a server-backed completer (once)."""
    if getattr(cmd, "_corral_completion", False):
        return
    cmd._corral_completion = True  # type: ignore[attr-defined]
    for param in cmd.params:
        if not isinstance(param, click.Argument) or getattr(param, "_custom_shell_complete", None):
            continue
        kind = None
        if getattr(cmd, "lxc_usage", ""):
            param._custom_shell_complete = for_usage(cmd.lxc_usage)  # type: ignore[attr-defined]
            continue
        group = path[0] if path else ""
        kind = ARGUMENT_KINDS.get((group, param.name or ""))
        if kind is None and group not in ("profile", "network", "storage", "image", "remote", "alias", "query",
                                          "operation", "monitor", "completion", "project", "cluster", "warning"):
            if param.name in ("name", "names", "source", "target", "instance", "args") and group != "import":
                kind = "instance"
        if kind:
            param._custom_shell_complete = _fixed(kind)  # type: ignore[attr-defined]
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            attach(sub, path + (name,))


def _fixed(kind: str) -> Callable[[click.Context, click.Parameter, str], list[CompletionItem]]:
    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        previous = [str(v) for v in ctx.params.values() if isinstance(v, str)]
        return complete_kind(kind, incomplete, previous)
    return complete


@click.command("completion", context_settings=CONTEXT_SETTINGS,
               epilog="\b\nExamples:\n  corral completion bash > /etc/bash_completion.d/corral\n"
                      "      Install bash completion for all users.\n\n"
                      "  source <(corral completion zsh)\n      Enable completion in the current zsh.")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Generate the shell completion script for bash, zsh (or fish).

    The script asks corral itself (with _CORRAL_COMPLETE set) for the candidates, which come from the
    server: instance, image, profile, pool, volume, network, project and remote names."""
    from corral.cli.main import cli
    cls: Any = get_completion_class(shell)
    click.echo(cls(cli, {}, "corral", "_CORRAL_COMPLETE").source())
