"""`corral project`: manage projects (lxc's project.go)."""

from __future__ import annotations

import click

from corral.cli.base import client_of, format_opt, lxc_command, name_of, option, parse_remote, project_of, q
from corral.cli.edit import edit_loop, go_string, string_map
from corral.cli.main import Ctx, fail, group, parse_key_values
from corral.cli.output import format_bytes_iec, print_list, to_yaml

PROJECT_HELP = """### This is a YAML representation of the project.
### Any line starting with a '# will be ignored.
###
### A project consists of a set of features and a description.
###
### An example would look like:
### name: my-project
### features:
###   images: True
###   profiles: True
### description: My own project
###
### Note that the name is shown but cannot be changed"""


def _ordered(p: dict) -> dict:
    """api.Project as lxc renders it: config, description, name, used_by."""
    return {k: p[k] for k in sorted(p)}


@group()
def project() -> None:
    """Manage projects."""


def _client(ctx: Ctx, arg: str):
    return client_of(ctx, arg)


@lxc_command(project, "create", "[<remote>:]<project>", "Create projects.",
             "corral project create p1\n    Create a project named p1.\n\n"
             "corral project create p1 -c features.images=false\n    Create a project sharing the default project's images.",
             min_args=1, max_args=1,
             options=(option("-c", "--config", "config", multiple=True,
                             help="Config key/value to apply to the new project"),))
def project_create(ctx: Ctx, args: list[str], config: tuple[str, ...]) -> None:
    name = name_of(args[0])
    cfg = {}
    for item in config:
        if "=" not in item:
            fail(f"Bad key=value pair: {item}")
        k, v = item.split("=", 1)
        cfg[k] = v
    _client(ctx, args[0]).post("/1.0/projects", {"name": name, "config": cfg, "description": ""})
    if not ctx.quiet:
        click.echo(f"Project {name} created")


@lxc_command(project, "delete", "[<remote>:]<project>", "Delete projects.",
             "corral project delete p1\n    Delete the project p1.", aliases=("rm",), min_args=1, max_args=1)
def project_delete(ctx: Ctx, args: list[str]) -> None:
    remote, name = parse_remote(args[0])
    _client(ctx, args[0]).delete(f"/1.0/projects/{q(name)}")
    if not ctx.quiet:
        click.echo(f"Project {name} deleted")
    _reset_current(remote, name)


def _reset_current(remote: str | None, name: str, new: str | None = None) -> None:
    """Deleting (renaming) the current project points the remote at default (the new name)."""
    from corral.cli import base
    if not base.config_exists():
        return
    from corral.cli import remote as remote_mod
    cfg = remote_mod.load()
    r = remote or cfg["default-remote"]
    entry = cfg["remotes"].get(r) or {}
    if entry.get("project") == name:
        if new is None or new == "default":
            entry.pop("project", None)
        else:
            entry["project"] = new
        remote_mod.save(cfg)


@lxc_command(project, "edit", "[<remote>:]<project>", "Edit project configurations as YAML.",
             "corral project edit <project> < project.yaml\n    Update a project using the content of project.yaml",
             min_args=1, max_args=1)
def project_edit(ctx: Ctx, args: list[str]) -> None:
    name = name_of(args[0])
    client = _client(ctx, args[0])
    obj, etag = client.get_etag(f"/1.0/projects/{q(name)}")
    obj = obj or {}

    def apply(data: dict) -> None:
        client.put(f"/1.0/projects/{q(name)}", {"config": string_map(data.get("config"), "config"),
                                                "description": go_string(data.get("description"))}, etag=etag)

    edit_loop(_ordered(obj), apply, PROJECT_HELP)


@lxc_command(project, "get", "[<remote>:]<project> <key>", "Get values for project configuration keys.",
             "corral project get default features.images\n    Show whether the default project has its own images.",
             min_args=2, max_args=2)
def project_get(ctx: Ctx, args: list[str]) -> None:
    name = name_of(args[0])
    obj = _client(ctx, args[0]).metadata(f"/1.0/projects/{q(name)}") or {}
    click.echo((obj.get("config") or {}).get(args[1], ""))


@lxc_command(project, "list", "[<remote>:]", "List projects.", "corral project list\n    List the projects.\n\n"
             "corral project list -f yaml\n    List them as YAML.", aliases=("ls",), max_args=1,
             options=(format_opt(),))
def project_list(ctx: Ctx, args: list[str], fmt: str) -> None:
    remote = parse_remote(args[0])[0] if args else None
    client = client_of(ctx, args[0]) if args else ctx.client
    projects = sorted(client.metadata("/1.0/projects", params={"recursion": 1}) or [], key=lambda p: p["name"])
    projects = [_ordered(p) for p in projects]
    current = project_of(Ctx(remote=remote or ctx.remote), remote)

    def yes(p: dict, key: str) -> str:
        return "YES" if (p.get("config") or {}).get(key) == "true" else "NO"

    rows = []
    for p in projects:
        label = f"{p['name']} (current)" if p["name"] == current else p["name"]
        rows.append([label, yes(p, "features.images"), yes(p, "features.profiles"),
                     yes(p, "features.storage.volumes"), yes(p, "features.networks"), p.get("description", ""),
                     str(len(p.get("used_by") or []))])
    print_list(fmt, ["NAME", "IMAGES", "PROFILES", "STORAGE VOLUMES", "NETWORKS", "DESCRIPTION", "USED BY"],
               rows, projects)


@lxc_command(project, "rename", "[<remote>:]<project> <new-name>", "Rename projects.",
             "corral project rename p1 p2\n    Rename the project p1 to p2.", aliases=("mv",), min_args=2, max_args=2)
def project_rename(ctx: Ctx, args: list[str]) -> None:
    remote, name = parse_remote(args[0])
    _client(ctx, args[0]).run("POST", f"/1.0/projects/{q(name)}", {"name": args[1]})
    _reset_current(remote, name, args[1])


def _set(ctx: Ctx, args: list[str], unset: bool) -> None:
    name = name_of(args[0])
    client = _client(ctx, args[0])
    obj, etag = client.get_etag(f"/1.0/projects/{q(name)}")
    obj = obj or {}
    cfg = dict(obj.get("config") or {})
    if unset:  # lxc 5.0 unsets by setting the key empty
        cfg[args[1]] = ""
    else:
        cfg.update(parse_key_values(args[1:]))
    client.put(f"/1.0/projects/{q(name)}", {"config": cfg, "description": obj.get("description", "")}, etag=etag)


@lxc_command(project, "set", "[<remote>:]<project> <key>=<value>...", "Set project configuration keys.\n\n"
             "For backward compatibility, a single configuration key may still be set with:\n\n"
             "    corral project set [<remote>:]<project> <key> <value>",
             "corral project set p1 limits.instances=5\n    Allow at most five instances in p1.", min_args=2)
def project_set(ctx: Ctx, args: list[str]) -> None:
    _set(ctx, args, unset=False)


@lxc_command(project, "unset", "[<remote>:]<project> <key>", "Unset project configuration keys.",
             "corral project unset p1 limits.instances\n    Lift p1's instance limit.", min_args=2, max_args=2)
def project_unset(ctx: Ctx, args: list[str]) -> None:
    _set(ctx, args, unset=True)


@lxc_command(project, "show", "[<remote>:]<project>", "Show project options.",
             "corral project show default\n    Show the default project.", min_args=1, max_args=1)
def project_show(ctx: Ctx, args: list[str]) -> None:
    name = name_of(args[0])
    obj = _client(ctx, args[0]).metadata(f"/1.0/projects/{q(name)}") or {}
    click.echo(to_yaml(_ordered(obj), typed=True), nl=False)


@lxc_command(project, "switch", "[<remote>:]<project>", "Switch the current project.",
             "corral project switch p1\n    Make p1 the project later commands act in.", min_args=1, max_args=1)
def project_switch(ctx: Ctx, args: list[str]) -> None:
    remote, name = parse_remote(args[0])
    _client(ctx, args[0]).metadata(f"/1.0/projects/{q(name)}")  # it must exist
    from corral.cli import remote as remote_mod
    cfg = remote_mod.load()
    r = remote or ctx.remote or cfg["default-remote"]
    if name == "default":
        cfg["remotes"][r].pop("project", None)
    else:
        cfg["remotes"][r]["project"] = name
    remote_mod.save(cfg)


@lxc_command(project, "info", "[<remote>:]<project>", "Get a summary of resource allocations.",
             "corral project info default\n    Show the limits and usage of the default project.",
             min_args=1, max_args=1, options=(format_opt(),))
def project_info(ctx: Ctx, args: list[str], fmt: str) -> None:
    name = name_of(args[0])
    state = _client(ctx, args[0]).metadata(f"/1.0/projects/{q(name)}/state") or {}
    resources = state.get("resources") or {}
    rows = []
    for key in sorted(resources):
        res = resources[key] or {}
        limit, usage = res.get("limit", -1), res.get("usage", 0)
        if key in ("disk", "memory"):
            shown_limit = "UNLIMITED" if limit == -1 else format_bytes_iec(limit)
            shown_usage = format_bytes_iec(usage)
        else:
            shown_limit = "UNLIMITED" if limit == -1 else str(limit)
            shown_usage = str(usage)
        rows.append([key.upper(), shown_limit, shown_usage])
    # lxc marshals api.ProjectState: its resource fields have no json tags (Limit, Usage).
    if fmt == "json":
        raw = {"resources": {k: {"Limit": (v or {}).get("limit"), "Usage": (v or {}).get("usage")}
                             for k, v in sorted(resources.items())}}
    else:
        raw = {"resources": {k: {"limit": (v or {}).get("limit"), "usage": (v or {}).get("usage")}
                             for k, v in sorted(resources.items())}}
    print_list(fmt, ["RESOURCE", "LIMIT", "USAGE"], rows, raw)


__all__ = ["project"]
