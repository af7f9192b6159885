"""`copy`, `move`, `rename` (lxc's copy.go, move.go, rename.go)."""

from __future__ import annotations

from typing import Any

import click

from corral.cli.config import q, split_snapshot
from corral.cli.main import Ctx, fail, pass_ctx, strip_remote
from corral.cli.output import OpProgress
from corral.cli.instance import cmd, wait_op



@cmd("copy")
@click.argument("source")
@click.argument("destination", required=False)
@click.option("-c", "--config", "config", multiple=True, help="Config key/value to apply to the new instance")
@click.option("-d", "--device", "device", multiple=True, help="New key/value to apply to a specific device")
@click.option("-p", "--profile", "profiles", multiple=True, help="Profile to apply to the new instance")
@click.option("--no-profiles", is_flag=True, help="Create the instance with no profiles applied")
@click.option("-e", "--ephemeral", is_flag=True, help="Ephemeral instance")
@click.option("--instance-only", is_flag=True, help="Copy the instance without its snapshots")
@click.option("--stateless", is_flag=True, help="Copy a stateful instance stateless")
@click.option("-s", "--storage", default=None, help="Storage pool name")
@click.option("--refresh", is_flag=True, help="Perform an incremental copy")
@click.option("--mode", default="pull", help="Transfer mode (only local copies are supported)")
@click.option("--target", default=None, help="Cluster member name")
@click.option("--target-project", default=None, help="Copy to a project different from the source")
@click.option("--allow-inconsistent", is_flag=True, help="Ignore copy errors for volatile files")
@pass_ctx
def copy(ctx: Ctx, source: str, destination: str | None, config: tuple[str, ...], device: tuple[str, ...],
         profiles: tuple[str, ...], no_profiles: bool, ephemeral: bool, instance_only: bool, stateless: bool,
         storage: str | None, refresh: bool, mode: str, target: str | None, target_project: str | None,
         allow_inconsistent: bool) -> None:
    """Copy instances within the server: corral copy SOURCE[/SNAPSHOT] [DESTINATION]."""
    copy_instance(ctx, source, destination, dict(config=config, device=device, profiles=profiles,
                  no_profiles=no_profiles, ephemeral=ephemeral, instance_only=instance_only,
                  stateless=stateless, storage=storage, refresh=refresh, target_project=target_project,
                  allow_inconsistent=allow_inconsistent), keep_volatile=False)


def copy_instance(ctx: Ctx, source: str, destination: str | None, opts: dict, keep_volatile: bool) -> None:
    client = ctx.client
    src, snap = split_snapshot(source)
    if snap is not None:
        obj = client.metadata(f"/1.0/instances/{q(src)}/snapshots/{q(snap)}") or {}
        base = client.metadata(f"/1.0/instances/{q(src)}") or {}
        itype = base.get("type") or "container"
    else:
        obj = client.metadata(f"/1.0/instances/{q(src)}") or {}
        itype = obj.get("type") or "container"
    cfg = dict(obj.get("config") or {})
    if not keep_volatile:
        cfg = {k: v for k, v in cfg.items() if not k.startswith("volatile.")}
    for item in opts.get("config") or ():
        if "=" not in item:
            fail(f"Bad key=value pair: {item}")
        k, v = item.split("=", 1)
        cfg[k] = v
    devices = dict(obj.get("devices") or {})
    profiles = list(obj.get("profiles") or [])
    if opts.get("no_profiles"):
        profiles = []
    elif opts.get("profiles"):
        profiles = list(opts["profiles"])
    if opts.get("storage"):
        devices["root"] = {"type": "disk", "path": "/", "pool": opts["storage"]}
    if opts.get("device"):
        expanded = obj.get("expanded_devices") or {}
        for entry in opts["device"]:
            devname, _, rest = entry.partition(",")
            dev = dict(devices.get(devname) or expanded.get(devname) or {})
            if not dev:
                fail(f"Cannot override config for device {devname!r}: Device not found")
            for kv in rest.split(","):
                if "=" in kv:
                    k, v = kv.split("=", 1)
                    dev[k] = v
            devices[devname] = dev
    req: dict[str, Any] = {
        "architecture": obj.get("architecture", ""),
        "config": cfg,
        "devices": devices,
        "ephemeral": bool(obj.get("ephemeral")),
        "profiles": profiles,
        "stateful": bool(obj.get("stateful")) and not opts.get("stateless"),
        "description": obj.get("description", ""),
        "type": itype,
        "source": {
            "type": "copy",
            "source": f"{src}/{snap}" if snap is not None else src,
            "base-image": cfg.get("volatile.base_image", (obj.get("config") or {}).get("volatile.base_image", "")),
            "instance_only": bool(opts.get("instance_only")),
            "refresh": bool(opts.get("refresh")),
            "allow_inconsistent": bool(opts.get("allow_inconsistent")),
        },
    }
    if opts.get("ephemeral"):
        req["ephemeral"] = True
    if destination:
        req["name"] = strip_remote(destination)
    dest_client = client
    if opts.get("target_project"):
        from corral.cli.client import Client

        dest_client = Client(client.socket_path, project=opts["target_project"])
        req["source"]["project"] = client.project or "default"
    env = dest_client.post("/1.0/instances", req)
    if env.get("type") == "async":
        with OpProgress("Transferring instance", quiet=ctx.quiet) as progress:
            dest_client.wait_operation(env.get("operation"), progress=progress.update)


@cmd("move", epilog="""\b
Examples:
  corral move [<remote>:]<source instance> [<remote>:][<destination instance>] [--instance-only]
      Move an instance between two hosts, renaming it if destination name differs.

  corral move <old name> <new name> [--instance-only]
      Rename a local instance.

  corral move <instance>/<old snapshot name> <instance>/<new snapshot name>
      Rename a snapshot.""")
@click.argument("source")
@click.argument("destination", required=False)
@click.option("--allow-inconsistent", is_flag=True, help="Ignore copy errors for volatile files")
@click.option("-c", "--config", "config", multiple=True, help="Config key/value to apply to the target instance")
@click.option("-d", "--device", "device", multiple=True, help="New key/value to apply to a specific device")
@click.option("--instance-only", is_flag=True, help="Move the instance without its snapshots")
@click.option("--mode", default="pull", help="Transfer mode. One of pull, push or relay.")
@click.option("--no-profiles", is_flag=True, help="Unset all profiles on the target instance")
@click.option("-p", "--profile", "profiles", multiple=True, help="Profile to apply to the target instance")
@click.option("--stateless", is_flag=True, help="Copy a stateful instance stateless")
@click.option("-s", "--storage", default=None, help="Storage pool name")
@click.option("--target", default=None, help="Cluster member name")
@click.option("--target-project", default=None, help="Copy to a project different from the source")
@pass_ctx
def move(ctx: Ctx, source: str, destination: str | None, allow_inconsistent: bool, config: tuple[str, ...],
         device: tuple[str, ...], instance_only: bool, mode: str, no_profiles: bool, profiles: tuple[str, ...],
         stateless: bool, storage: str | None, target: str | None, target_project: str | None) -> None:
    """Move instances within or in between servers.

    \b
    Transfer modes (--mode):
     - pull: Target server pulls the data from the source server (source must listen on network)
     - push: Source server pushes the data to the target server (target must listen on network)
     - relay: The CLI connects to both source and server and proxies the data (both source and target must listen on network)

    The pull transfer mode is the default as it is compatible with all LXD versions."""
    if destination is None:
        click.echo(click.get_current_context().get_help())
        fail("Invalid number of arguments")
    overrides = bool(config or device or profiles or no_profiles)
    if overrides and not (storage or target_project or target):
        fail("Can't override configuration or profiles in local rename")
    rename_or_move(ctx, source, destination, storage=storage, target_project=target_project,
                   instance_only=instance_only,
                   overrides=dict(config=config, device=device, profiles=profiles, no_profiles=no_profiles,
                                  stateless=stateless, allow_inconsistent=allow_inconsistent))


def rename_or_move(ctx: Ctx, source: str, destination: str, storage: str | None = None,
                   target_project: str | None = None, instance_only: bool = False,
                   overrides: dict | None = None) -> None:
    client = ctx.client
    src, src_snap = split_snapshot(source)
    dst, dst_snap = split_snapshot(destination)
    if src_snap is not None:
        if dst_snap is None or (dst and dst != src):
            fail("Invalid snapshot name")
        wait_op(ctx, client.post(f"/1.0/instances/{q(src)}/snapshots/{q(src_snap)}", {"name": dst_snap}))
        return
    if dst_snap is not None:
        fail("Invalid instance name")
    if storage or target_project:
        # Not a rename: copy then delete the source.
        copy_instance(ctx, src, dst, dict(storage=storage, target_project=target_project,
                                          instance_only=instance_only, **(overrides or {})), keep_volatile=True)
        wait_op(ctx, client.delete(f"/1.0/instances/{q(src)}"))
        return
    wait_op(ctx, client.post(f"/1.0/instances/{q(src)}", {"name": dst}))


@cmd("rename")
@click.argument("source")
@click.argument("destination")
@pass_ctx
def rename(ctx: Ctx, source: str, destination: str) -> None:
    """Rename instances and snapshots."""
    rename_or_move(ctx, source, destination)
