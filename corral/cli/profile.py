"""`corral profile`: manage profiles."""

from __future__ import annotations

import click

from corral.cli.base import remote_argument

from corral.cli.client import Client
from corral.cli.config import InstanceTarget, ProfileTarget, q
from corral.cli.config_device import make_device_group
from corral.cli.edit import devices_map, edit_loop, go_string, string_map
from corral.cli.main import Ctx, fail, group, parse_key_values, pass_ctx, strip_remote
from corral.cli.output import format_option, iter_sorted, print_list, to_yaml

PROFILE_HELP = """### This is a YAML representation of the profile.
### Any line starting with a '# will be ignored.
###
### A profile consists of a set of configuration items followed by a set of
### devices.
###
### An example would look like:
### name: onenic
### config:
###   raw.lxc: lxc.aa_profile=unconfined
### devices:
###   eth0:
###     nictype: bridged
###     parent: lxdbr0
###     type: nic
###
### Note that the name is shown but cannot be changed"""


def profile_put_from_yaml(data: dict) -> dict:
    return {
        "config": string_map(data.get("config"), "config"),
        "description": go_string(data.get("description")),
        "devices": devices_map(data.get("devices")),
    }


@group()
def profile() -> None:
    """Manage profiles."""


profile.add_command(make_device_group(ProfileTarget))


@profile.command("list")
@remote_argument()
@format_option()
@pass_ctx
def profile_list(ctx: Ctx, remote: str | None, fmt: str) -> None:
    """List profiles."""
    profiles = ctx.client.metadata("/1.0/profiles", params={"recursion": 1}) or []
    profiles = iter_sorted(profiles)
    rows = [[p.get("name", ""), p.get("description", ""), str(len(p.get("used_by") or []))] for p in profiles]
    print_list(fmt, ["NAME", "DESCRIPTION", "USED BY"], rows, profiles)


@profile.command("show")
@click.argument("name")
@pass_ctx
def profile_show(ctx: Ctx, name: str) -> None:
    """Show profile configurations."""
    obj = ctx.client.metadata(f"/1.0/profiles/{q(strip_remote(name))}")
    click.echo(to_yaml(obj, typed=True), nl=False)


@profile.command("create")
@click.argument("name")
@click.option("--description", default=None, help="Profile description")
@pass_ctx
def profile_create(ctx: Ctx, name: str, description: str | None) -> None:
    """Create profiles."""
    name = strip_remote(name)
    body: dict = {"name": name}
    if description is not None:
        body["description"] = description
    ctx.client.post("/1.0/profiles", body)
    if not ctx.quiet:
        click.echo(f"Profile {name} created")


@profile.command("delete")
@click.argument("name")
@pass_ctx
def profile_delete(ctx: Ctx, name: str) -> None:
    """Delete profiles."""
    name = strip_remote(name)
    ctx.client.delete(f"/1.0/profiles/{q(name)}")
    if not ctx.quiet:
        click.echo(f"Profile {name} deleted")


@profile.command("copy")
@click.argument("source")
@click.argument("dest")
@click.option("--target-project", default=None, help="Copy to a project different from the source")
@pass_ctx
def profile_copy(ctx: Ctx, source: str, dest: str, target_project: str | None) -> None:
    """Copy profiles."""
    target = ProfileTarget(ctx, source)
    target.fetch()
    body = {"name": strip_remote(dest), **target.writable()}
    client = ctx.client
    if target_project:
        client = Client(client.socket_path, project=target_project)
    client.post("/1.0/profiles", body)


@profile.command("rename")
@click.argument("name")
@click.argument("new_name")
@pass_ctx
def profile_rename(ctx: Ctx, name: str, new_name: str) -> None:
    """Rename profiles."""
    name, new_name = strip_remote(name), strip_remote(new_name)
    ctx.client.post(f"/1.0/profiles/{q(name)}", {"name": new_name})
    if not ctx.quiet:
        click.echo(f"Profile {name} renamed to {new_name}")


@profile.command("edit")
@click.argument("name")
@pass_ctx
def profile_edit(ctx: Ctx, name: str) -> None:
    """Edit profile configurations as YAML.

    With stdin not a terminal the profile is read from it:
    corral profile edit <profile> < profile.yaml"""
    target = ProfileTarget(ctx, name)
    target.fetch()

    def apply(data: dict) -> None:
        target.update(profile_put_from_yaml(data))

    edit_loop(target.obj, apply, PROFILE_HELP)


@profile.command("get")
@click.argument("name")
@click.argument("key")
@pass_ctx
def profile_get(ctx: Ctx, name: str, key: str) -> None:
    """Get values for profile configuration keys."""
    target = ProfileTarget(ctx, name)
    target.fetch()
    click.echo((target.obj.get("config") or {}).get(key, ""))


@profile.command("set")
@click.argument("name")
@click.argument("args", nargs=-1, required=True)
@pass_ctx
def profile_set(ctx: Ctx, name: str, args: tuple[str, ...]) -> None:
    """Set profile configuration keys: NAME KEY=VALUE... (or NAME KEY VALUE)."""
    keys = parse_key_values(args)
    target = ProfileTarget(ctx, name)
    target.fetch()
    writable = target.writable()
    writable["config"] = {**(writable.get("config") or {}), **keys}
    target.update(writable)


@profile.command("unset")
@click.argument("name")
@click.argument("key")
@pass_ctx
def profile_unset(ctx: Ctx, name: str, key: str) -> None:
    """Unset profile configuration keys."""
    target = ProfileTarget(ctx, name)
    target.fetch()
    writable = target.writable()
    cfg = dict(writable.get("config") or {})
    cfg.pop(key, None)
    writable["config"] = cfg
    target.update(writable)


# --------------------------------------------------------------------------
# Profiles of instances
# --------------------------------------------------------------------------


def _update_profiles(ctx: Ctx, instance: str, change) -> InstanceTarget:
    target = InstanceTarget(ctx, instance)
    target.fetch()
    writable = target.writable()
    writable["profiles"] = change(list(writable.get("profiles") or []))
    target.update(writable)
    return target


@profile.command("add")
@click.argument("instance")
@click.argument("name")
@pass_ctx
def profile_add(ctx: Ctx, instance: str, name: str) -> None:
    """Add profiles to instances."""

    def change(profiles: list[str]) -> list[str]:
        return [*profiles, name]  # the server rejects duplicates

    target = _update_profiles(ctx, instance, change)
    if not ctx.quiet:
        click.echo(f"Profile {name} added to {target.name}")


@profile.command("remove")
@click.argument("instance")
@click.argument("name")
@pass_ctx
def profile_remove(ctx: Ctx, instance: str, name: str) -> None:
    """Remove profiles from instances."""

    def change(profiles: list[str]) -> list[str]:
        if name not in profiles:
            fail(f"Profile {name} isn't currently applied to {instance}")
        return [p for p in profiles if p != name]

    target = _update_profiles(ctx, instance, change)
    if not ctx.quiet:
        click.echo(f"Profile {name} removed from {target.name}")


@profile.command("assign")
@click.argument("instance")
@click.argument("names")
@pass_ctx
def profile_assign(ctx: Ctx, instance: str, names: str) -> None:
    """Assign sets of profiles to instances (comma separated, '' for none)."""
    profiles = [p for p in names.split(",") if p] if names else []
    target = _update_profiles(ctx, instance, lambda _old: profiles)
    if not ctx.quiet:
        if profiles:
            click.echo(f"Profiles {names} applied to {target.name}")
        else:
            click.echo(f"Profiles removed from {target.name}")
