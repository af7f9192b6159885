"""`corral cluster group` and `corral cluster role` (lxc's cluster_group.go and cluster_role.go)."""

from __future__ import annotations

import click

from corral.cli.base import client_of, format_opt, lxc_command, parse_remote, q
from corral.cli.edit import edit_loop, go_string
from corral.cli.main import CONTEXT_SETTINGS, Ctx, fail, group


@group("group", context_settings=CONTEXT_SETTINGS)
def cluster_group() -> None:
    """Manage cluster groups."""


def _cn(ctx: Ctx, arg: str):
    return client_of(ctx, arg), parse_remote(arg)[1]


def _require(client) -> None:
    from corral.cli.cluster import require_cluster
    require_cluster(client)


def ordered_group(g: dict) -> dict:
    out = {"description": g.get("description", ""), "members": g.get("members") or [], "name": g.get("name", "")}
    out.update({k: v for k, v in g.items() if k not in out})
    return out


@lxc_command(cluster_group, "list", "[<remote>:]", "List all the cluster groups.",
             "corral cluster group list\n    List the groups and how many members each has.", aliases=("ls",),
             max_args=1, options=(format_opt(),))
def group_list(ctx: Ctx, args: list[str], fmt: str) -> None:
    client = client_of(ctx, args[0]) if args else ctx.client
    _require(client)
    groups = [ordered_group(g) for g in client.metadata("/1.0/cluster/groups", params={"recursion": 1}) or []]
    rows = sorted([[g["name"], g["description"], str(len(g["members"]))] for g in groups])
    from corral.cli.output import print_list
    print_list(fmt, ["NAME", "DESCRIPTION", "MEMBERS"], rows, groups)


@lxc_command(cluster_group, "create", "[<remote>:]<group>", "Create a cluster group.",
             "corral cluster group create gpu\n    Create the group gpu.", min_args=1, max_args=1)
def group_create(ctx: Ctx, args: list[str]) -> None:
    client, name = _cn(ctx, args[0])
    client.post("/1.0/cluster/groups", {"name": name, "description": "", "members": []})
    if not ctx.quiet:
        click.echo(f"Cluster group {name} created")


@lxc_command(cluster_group, "delete", "[<remote>:]<group>", "Delete a cluster group.",
             "corral cluster group delete gpu\n    Delete the group gpu.", aliases=("rm",), min_args=1, max_args=1)
def group_delete(ctx: Ctx, args: list[str]) -> None:
    client, name = _cn(ctx, args[0])
    client.delete(f"/1.0/cluster/groups/{q(name)}")
    if not ctx.quiet:
        click.echo(f"Cluster group {name} deleted")


@lxc_command(cluster_group, "rename", "[<remote>:]<group> <new-name>", "Rename a cluster group.",
             "corral cluster group rename gpu accel\n    Rename the group gpu to accel.", aliases=("mv",),
             min_args=2, max_args=2)
def group_rename(ctx: Ctx, args: list[str]) -> None:
    client, name = _cn(ctx, args[0])
    client.post(f"/1.0/cluster/groups/{q(name)}", {"name": args[1]})
    if not ctx.quiet:
        click.echo(f"Cluster group {name} renamed to {args[1]}")


@lxc_command(cluster_group, "show", "[<remote>:]<group>", "Show cluster group configurations.",
             "corral cluster group show default\n    Show the default group.", min_args=1, max_args=1)
def group_show(ctx: Ctx, args: list[str]) -> None:
    from corral.cli.output import to_yaml
    client, name = _cn(ctx, args[0])
    click.echo(to_yaml(ordered_group(client.metadata(f"/1.0/cluster/groups/{q(name)}") or {})), nl=False)


@lxc_command(cluster_group, "edit", "[<remote>:]<group>", "Edit a cluster group.",
             "corral cluster group edit gpu < group.yaml\n    Update the group gpu from group.yaml.",
             min_args=1, max_args=1)
def group_edit(ctx: Ctx, args: list[str]) -> None:
    client, name = _cn(ctx, args[0])
    obj, etag = client.get_etag(f"/1.0/cluster/groups/{q(name)}")

    def apply(data: dict) -> None:
        members = data.get("members")
        client.put(f"/1.0/cluster/groups/{q(name)}", {
            "description": go_string(data.get("description")),
            "members": [go_string(m) for m in members] if isinstance(members, list) else []}, etag=etag)

    writable = {"description": (obj or {}).get("description", ""), "members": (obj or {}).get("members") or []}
    edit_loop(writable, apply, "### This is a yaml representation of the cluster group.\n"
              "### Any line starting with a '# will be ignored.", typed=False)


def _member(client, name: str) -> tuple[dict, str | None]:
    return client.get_etag(f"/1.0/cluster/members/{q(name)}")


def _put_member(client, name: str, member: dict, etag: str | None) -> None:
    from corral.cli.cluster import writable
    client.put(f"/1.0/cluster/members/{q(name)}", writable(member), etag=etag)


@lxc_command(cluster_group, "assign", "[<remote>:]<member> <group>", "Assign sets of groups to cluster members.",
             'corral cluster group assign foo default,bar\n    Set the groups for "foo" to "default" and "bar".\n\n'
             'corral cluster group assign foo default\n    Reset "foo" to only using the "default" cluster group.',
             aliases=("apply",), min_args=2, max_args=2)
def group_assign(ctx: Ctx, args: list[str]) -> None:
    client, name = _cn(ctx, args[0])
    member, etag = _member(client, name)
    member = dict(member or {})
    member["groups"] = args[1].split(",") if args[1] else []
    _put_member(client, name, member, etag)
    if not ctx.quiet:
        click.echo(f"Cluster member {name} added to cluster groups {args[1]}")


@lxc_command(cluster_group, "remove", "[<remote>:]<member> <group>", "Remove member from group.",
             "corral cluster group remove node1 gpu\n    Take node1 out of the group gpu.", min_args=2, max_args=2)
def group_remove(ctx: Ctx, args: list[str]) -> None:
    client, name = _cn(ctx, args[0])
    member, etag = _member(client, name)
    member = dict(member or {})
    groups = list(member.get("groups") or [])
    if args[1] not in groups:
        fail(f"Cluster group {args[1]} isn't currently applied to {name}")
    groups.remove(args[1])
    member["groups"] = groups
    _put_member(client, name, member, etag)
    if not ctx.quiet:
        click.echo(f"Cluster member {name} removed from group {args[1]}")


@group("role", context_settings=CONTEXT_SETTINGS)
def cluster_role() -> None:
    """Manage cluster roles."""


@lxc_command(cluster_role, "add", "[<remote>:]<member> <role[,role...]>", "Add roles to a cluster member.",
             "corral cluster role add node1 event-hub\n    Make node1 an event hub.", min_args=2, max_args=2)
def role_add(ctx: Ctx, args: list[str]) -> None:
    client, name = _cn(ctx, args[0])
    member, etag = _member(client, name)
    member = dict(member or {})
    roles = list(member.get("roles") or [])
    for role in args[1].split(","):
        if role in roles:
            fail(f'Member "{name}" already has role "{role}"')
        roles.append(role)
    member["roles"] = roles
    _put_member(client, name, member, etag)


@lxc_command(cluster_role, "remove", "[<remote>:]<member> <role[,role...]>", "Remove roles from a cluster member.",
             "corral cluster role remove node1 event-hub\n    node1 is no event hub any more.", min_args=2, max_args=2)
def role_remove(ctx: Ctx, args: list[str]) -> None:
    client, name = _cn(ctx, args[0])
    member, etag = _member(client, name)
    member = dict(member or {})
    roles = list(member.get("roles") or [])
    for role in args[1].split(","):
        if role not in roles:
            fail(f'Member "{name}" does not have role "{role}"')
        roles.remove(role)
    member["roles"] = roles
    _put_member(client, name, member, etag)
