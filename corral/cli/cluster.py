"""`corral cluster`: cluster members, join tokens, evacuation (lxc's cluster.go); `cluster group` and
`cluster role` are cluster_group.py."""

from __future__ import annotations

import base64
import json
import os
import sys

import click

from corral.cli.base import client_of, default_remote, flag, format_opt, lxc_command, option, parse_remote, q
from corral.cli.edit import edit_loop, go_string, string_map
from corral.cli.main import Ctx, fail, group, parse_key_values
from corral.cli.output import OpProgress, format_time_short, print_list, to_yaml

NOT_CLUSTERED = "LXD server isn't part of a cluster"

# api.ClusterMember's field order (ClusterMemberPut first).
MEMBER_FIELDS = ("roles", "failure_domain", "description", "config", "groups", "server_name", "url", "database",
                 "status", "message", "architecture")

REMOVE_PROMPT = """Forcefully removing a server from the cluster should only be done as a last
resort.

The removed server will not be functional after this action and will require a
full reset of LXD, losing any remaining instance, image or storage volume
that the server may have held.

When possible, a graceful removal should be preferred, this will require you to
move any affected instance, image or storage volume to another server prior to
the server being cleanly removed from the cluster.

The --force flag should only be used if the server has died, been reinstalled
or is otherwise never expected to come back up.

Are you really sure you want to force removing {name}? (yes/no): """


@group()
def cluster() -> None:
    """Manage cluster members."""


def ordered_member(m: dict) -> dict:
    out = {}
    for k in MEMBER_FIELDS:
        if k in m:
            v = m[k]
            if k in ("config",) and v is None:
                v = {}
            if k in ("groups", "roles") and v is None:
                v = []
            out[k] = {kk: v[kk] for kk in sorted(v)} if k == "config" and isinstance(v, dict) else v
    out.update({k: v for k, v in m.items() if k not in out})
    return out


def require_cluster(client) -> None:
    if not (client.metadata("/1.0/cluster") or {}).get("enabled"):
        fail(NOT_CLUSTERED)


def _remote_first(args: list[str], n: int) -> tuple[str | None, list[str]]:
    """lxc's `[<remote>:] a b`: with n+1 arguments the first is the remote."""
    if len(args) == n + 1:
        return args[0], args[1:]
    return None, args


def _client_name(ctx: Ctx, arg: str):
    remote, name = parse_remote(arg)
    return client_of(ctx, arg), name, remote or ctx.remote or default_remote()


@lxc_command(cluster, "list", "[<remote>:]", "List all the cluster members.",
             "corral cluster list\n    List the members and their state.", aliases=("ls",), max_args=1,
             options=(format_opt(),))
def cluster_list(ctx: Ctx, args: list[str], fmt: str) -> None:
    client = client_of(ctx, args[0]) if args else ctx.client
    require_cluster(client)
    members = [ordered_member(m) for m in client.metadata("/1.0/cluster/members", params={"recursion": 1}) or []]
    sep = "," if fmt == "csv" else "\n"
    rows = [[m.get("server_name", ""), m.get("url", ""), sep.join(m.get("roles") or []), m.get("architecture", ""),
             m.get("failure_domain", ""), m.get("description", ""), str(m.get("status", "")).upper(),
             m.get("message", "")] for m in members]
    rows.sort(key=lambda r: r[0])
    print_list(fmt, ["NAME", "URL", "ROLES", "ARCHITECTURE", "FAILURE DOMAIN", "DESCRIPTION", "STATE", "MESSAGE"],
               rows, members)


@lxc_command(cluster, "show", "[<remote>:]<member>", "Show details of a cluster member.",
             "corral cluster show node1\n    Show the member node1.", min_args=1, max_args=1)
def cluster_show(ctx: Ctx, args: list[str]) -> None:
    client, name, _ = _client_name(ctx, args[0])
    member = client.metadata(f"/1.0/cluster/members/{q(name)}") or {}
    click.echo(to_yaml(ordered_member(member)), nl=False)


@lxc_command(cluster, "get", "[<remote>:]<member> <key>", "Get values for cluster member configuration keys.",
             "corral cluster get node1 scheduler.instance\n    Show how node1 takes new instances.",
             min_args=2, max_args=2)
def cluster_get(ctx: Ctx, args: list[str]) -> None:
    client, name, _ = _client_name(ctx, args[0])
    member = client.metadata(f"/1.0/cluster/members/{q(name)}") or {}
    cfg = member.get("config") or {}
    if args[1] not in cfg:
        fail(f'The key "{args[1]}" does not exist on cluster member "{name}"')
    click.echo(cfg[args[1]])


def writable(member: dict) -> dict:
    return {"roles": list(member.get("roles") or []), "failure_domain": member.get("failure_domain", ""),
            "description": member.get("description", ""), "config": dict(member.get("config") or {}),
            "groups": list(member.get("groups") or [])}


def _set(ctx: Ctx, args: list[str]) -> None:
    client, name, _ = _client_name(ctx, args[0])
    member = client.metadata(f"/1.0/cluster/members/{q(name)}") or {}
    w = writable(member)
    w["config"].update(parse_key_values(args[1:]))
    client.put(f"/1.0/cluster/members/{q(name)}", w)


@lxc_command(cluster, "set", "[<remote>:]<member> <key>=<value>...", "Set a cluster member's configuration keys.",
             "corral cluster set node1 scheduler.instance=manual\n    Place instances on node1 only when asked.",
             min_args=2)
def cluster_set(ctx: Ctx, args: list[str]) -> None:
    _set(ctx, args)


@lxc_command(cluster, "unset", "[<remote>:]<member> <key>", "Unset a cluster member's configuration keys.",
             "corral cluster unset node1 scheduler.instance\n    Back to the default placement.",
             min_args=2, max_args=2)
def cluster_unset(ctx: Ctx, args: list[str]) -> None:
    _set(ctx, [*args, ""])


@lxc_command(cluster, "rename", "[<remote>:]<member> <new-name>", "Rename a cluster member.",
             "corral cluster rename node1 node9\n    Rename the member node1 to node9.", aliases=("mv",),
             min_args=2, max_args=2)
def cluster_rename(ctx: Ctx, args: list[str]) -> None:
    client, name, _ = _client_name(ctx, args[0])
    client.post(f"/1.0/cluster/members/{q(name)}", {"server_name": args[1]})
    if not ctx.quiet:
        click.echo(f"Member {name} renamed to {args[1]}")


@lxc_command(cluster, "remove", "[<remote>:]<member>", "Remove a member from the cluster.",
             "corral cluster remove node3\n    Remove node3 gracefully.\n\ncorral cluster remove node3 --force --yes\n"
             "    Remove a member that is gone for good.", aliases=("rm",), min_args=1, max_args=1,
             options=(flag("-f", "--force", help="Force removing a member, even if degraded"),
                      flag("--yes", help="Don't require user confirmation for using --force")))
def cluster_remove(ctx: Ctx, args: list[str], force: bool, yes: bool) -> None:
    client, name, _ = _client_name(ctx, args[0])
    if force and not yes:
        sys.stdout.write(REMOVE_PROMPT.format(name=name))
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() != "yes":
            fail("User aborted delete operation")
    client.run("DELETE", f"/1.0/cluster/members/{q(name)}", params={"force": 1} if force else None)
    if not ctx.quiet:
        click.echo(f"Member {name} removed")


@lxc_command(cluster, "enable", "[<remote>:] <name>",
             "Enable clustering on a single non-clustered LXD server.\n\n"
             "This command turns a non-clustered server into the first member of a new cluster, which will "
             "have the given name.\n\nIt's required that the server is already available on the network. You "
             "can check that by running 'corral config get core.https_address', and possibly set a value for "
             "the address if not yet set.",
             "corral config set core.https_address 10.0.0.1:8443\ncorral cluster enable node1\n"
             "    Make this server the first member, node1, of a new cluster.", min_args=1, max_args=2)
def cluster_enable(ctx: Ctx, args: list[str]) -> None:
    remote, rest = _remote_first(args, 1)
    client = client_of(ctx, remote) if remote else ctx.client
    current, etag = client.get_etag("/1.0/cluster")
    if (current or {}).get("enabled"):
        fail("This LXD server is already clustered")
    try:
        client.run("PUT", "/1.0/cluster", {"server_name": rest[0], "enabled": True}, etag=etag)
    except Exception as exc:
        fail(f"Failed to configure cluster: {exc}")
    click.echo("Clustering enabled")


@lxc_command(cluster, "edit", "[<remote>:]<cluster member>", "Edit cluster member configurations as YAML.",
             "corral cluster edit <cluster member> < member.yaml\n"
             "    Update a cluster member using the content of member.yaml", min_args=1, max_args=1)
def cluster_edit(ctx: Ctx, args: list[str]) -> None:
    client, name, _ = _client_name(ctx, args[0])
    if not name:
        fail("Missing cluster member name")
    member, etag = client.get_etag(f"/1.0/cluster/members/{q(name)}")

    def apply(data: dict) -> None:
        groups, roles = data.get("groups"), data.get("roles")
        client.put(f"/1.0/cluster/members/{q(name)}", {
            "config": string_map(data.get("config"), "config"), "description": go_string(data.get("description")),
            "failure_domain": go_string(data.get("failure_domain")),
            "groups": [go_string(g) for g in groups] if isinstance(groups, list) else [],
            "roles": [go_string(r) for r in roles] if isinstance(roles, list) else []}, etag=etag)

    edit_loop(writable(member or {}), apply, "### This is a yaml representation of the cluster member.\n"
              "### Any line starting with a '# will be ignored.", typed=False)


def join_token(meta: dict) -> str:
    tok = {"server_name": meta.get("serverName", ""), "fingerprint": meta.get("fingerprint", ""),
           "addresses": meta.get("addresses") or [], "secret": meta.get("secret", ""),
           "expires_at": meta.get("expiresAt") or "0001-01-01T00:00:00Z"}
    return base64.b64encode(json.dumps(tok, separators=(",", ":")).encode()).decode()


@lxc_command(cluster, "add", "[[<remote>:]<name>]", "Request a join token for adding a cluster member.",
             "corral cluster add node2\n    Print a token with which the server node2 joins the cluster.",
             max_args=1, options=(option("--name", default="", help="Cluster member name"),))
def cluster_add(ctx: Ctx, args: list[str], name: str) -> None:
    client, arg_name, _ = _client_name(ctx, args[0]) if args else (ctx.client, "", None)
    if arg_name and name and arg_name != name:
        fail("Cluster member name was provided as both a flag and as an argument")
    name = arg_name or name
    if not name:
        sys.stdout.write("Please provide cluster member name: ")
        sys.stdout.flush()
        line = sys.stdin.readline()
        if not line:
            fail("EOF")
        name = line.strip()
    env = client.post("/1.0/cluster/members", {"server_name": name})
    meta = (env.get("metadata") or {}).get("metadata") or {}
    if not ctx.quiet:
        click.echo(f"Member {name} join token:")
    click.echo(join_token(meta))


def _join_tokens(client) -> list[dict]:
    from corral.cli.client import Client
    default = Client(client.socket_path, project="default", https=client.https)
    ops = default.metadata("/1.0/operations", params={"recursion": 1}) or {}
    return [op for op in ops.get("running") or []
            if op.get("class") == "token" and "serverName" in (op.get("metadata") or {})]


@lxc_command(cluster, "list-tokens", "[<remote>:]", "List all active cluster member join tokens.",
             "corral cluster list-tokens\n    List the join tokens not used yet.", max_args=1, options=(format_opt(),))
def cluster_list_tokens(ctx: Ctx, args: list[str], fmt: str) -> None:
    client = client_of(ctx, args[0]) if args else ctx.client
    require_cluster(client)
    rows, raw = [], []
    for op in _join_tokens(client):
        meta = op["metadata"]
        expires = format_time_short(meta.get("expiresAt")) or "0001/01/01 00:00 UTC"
        rows.append([meta["serverName"], join_token(meta), expires])
    rows.sort(key=lambda r: r[0])
    for r in rows:
        keys = ("ServerName", "Token", "ExpiresAt") if fmt == "json" else ("servername", "token", "expiresat")
        raw.append(dict(zip(keys, r)))
    print_list(fmt, ["NAME", "TOKEN", "EXPIRES AT"], rows, raw)


@lxc_command(cluster, "revoke-token", "[<remote>:]<member>", "Revoke cluster member join token.",
             "corral cluster revoke-token node2\n    Revoke the join token made for node2.", min_args=1, max_args=1)
def cluster_revoke_token(ctx: Ctx, args: list[str]) -> None:
    client, name, remote = _client_name(ctx, args[0])
    require_cluster(client)
    for op in _join_tokens(client):
        if op["metadata"]["serverName"] == name:
            client.delete(f"/1.0/operations/{op['id']}")
            if not ctx.quiet:
                click.echo(f"Cluster join token for {remote}:{name} deleted")
            return
    fail(f"No cluster join token for member {name} on remote: {remote}")


@lxc_command(cluster, "update-certificate", "[<remote>:] <cert.crt> <cert.key>",
             "Update cluster certificate with PEM certificate and key read from input files.",
             "corral cluster update-certificate cluster.crt cluster.key\n    Replace the cluster's certificate.",
             aliases=("update-cert",), min_args=2, max_args=3)
def cluster_update_certificate(ctx: Ctx, args: list[str]) -> None:
    remote, (cert_file, key_file) = _remote_first(args, 2)
    client = client_of(ctx, remote) if remote else ctx.client
    remote_name = (parse_remote(remote)[0] if remote else None) or ctx.remote or default_remote()
    require_cluster(client)
    if not os.path.exists(cert_file):
        fail(f"Could not find certificate file path: {cert_file}")
    if not os.path.exists(key_file):
        fail(f"Could not find certificate key file path: {key_file}")
    with open(cert_file) as f:
        cert = f.read()
    with open(key_file) as f:
        key = f.read()
    client.put("/1.0/cluster/certificate", {"cluster_certificate": cert, "cluster_certificate_key": key})
    from corral.cli import remote as remote_mod
    pinned = os.path.join(remote_mod.conf_dir(), "servercerts", f"{remote_name}.crt")
    if os.path.exists(pinned):
        with open(pinned, "w") as f:
            f.write(cert)
    if not ctx.quiet:
        click.echo(f"Successfully updated cluster certificates for remote {remote_name}")


def _evacuate_or_restore(ctx: Ctx, args: list[str], action: str, force: bool) -> None:
    client, name, _ = _client_name(ctx, args[0])
    if not name:
        fail("Missing cluster member name")
    if not force:
        sys.stdout.write(f'Are you sure you want to {action} cluster member "{name}"? (yes/no) [default=no]: ')
        sys.stdout.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("yes", "y"):
            return
    try:
        env = client.post(f"/1.0/cluster/members/{q(name)}/state", {"action": action})
    except Exception as exc:
        fail(f"Failed to update cluster member state: {exc}")
    label = ("Restoring" if action == "restore" else "Evacuating") + f" cluster member: {name}"
    with OpProgress(label, quiet=ctx.quiet) as progress:
        client.wait_operation(env.get("operation") or (env.get("metadata") or {}).get("id"), progress=progress.update)


@lxc_command(cluster, "evacuate", "[<remote>:]<member>", "Evacuate cluster member.",
             "corral cluster evacuate node1 --force\n    Move node1's instances away (or stop them).",
             aliases=("evac",), min_args=1, max_args=1,
             options=(flag("--force", help="Force evacuation without user confirmation"),))
def cluster_evacuate(ctx: Ctx, args: list[str], force: bool) -> None:
    _evacuate_or_restore(ctx, args, "evacuate", force)


@lxc_command(cluster, "restore", "[<remote>:]<member>", "Restore cluster member.",
             "corral cluster restore node1 --force\n    Bring node1's instances back.", min_args=1, max_args=1,
             options=(flag("--force", help="Force evacuation without user confirmation"),))
def cluster_restore(ctx: Ctx, args: list[str], force: bool) -> None:
    _evacuate_or_restore(ctx, args, "restore", force)


from corral.cli.cluster_group import cluster_group, cluster_role  # noqa: E402

cluster.add_command(cluster_group)
cluster.add_command(cluster_role)
