"""`corral storage volume`: custom and instance volumes and their snapshots (lxc's storage_volume.go)."""

from __future__ import annotations

import click

from corral.cli.config import InstanceTarget
from corral.cli.edit import edit_loop
from corral.cli.main import Ctx, fail, parse_key_values, pass_ctx, strip_remote
from corral.cli.output import format_option, print_list, to_yaml
from corral.cli.storage import from_yaml, human, pool_url, storage, volume_url, writable


@storage.group("volume", cls=type(storage))
def volume() -> None:
    """Manage storage volumes."""


@volume.command("show")
@click.argument("pool")
@click.argument("vol")
@pass_ctx
def volume_show(ctx: Ctx, pool: str, vol: str) -> None:
    """Show storage volume configurations."""
    click.echo(to_yaml(ctx.client.metadata(volume_url(pool, vol)), typed=True), nl=False)


@volume.command("create")
@click.argument("pool")
@click.argument("vol")
@click.argument("config", nargs=-1)
@click.option("--description", default=None)
@pass_ctx
def volume_create(ctx: Ctx, pool: str, vol: str, config: tuple[str, ...], description: str | None) -> None:
    """Create new custom storage volumes: POOL VOLUME [KEY=VALUE...]."""
    body = {"name": vol, "type": "custom", "config": parse_key_values(config, stdin_dash=False) if config else {}}
    if description is not None:
        body["description"] = description
    ctx.client.run("POST", f"{pool_url(pool)}/volumes/custom", body)
    if not ctx.quiet:
        click.echo(f"Storage volume {vol} created")


@volume.command("delete")
@click.argument("pool")
@click.argument("vol")
@pass_ctx
def volume_delete(ctx: Ctx, pool: str, vol: str) -> None:
    """Delete storage volumes."""
    ctx.client.run("DELETE", volume_url(pool, vol))
    if not ctx.quiet:
        click.echo(f"Storage volume {vol} deleted")


def _pool_vol(arg: str) -> tuple[str, str]:
    pool, _, vol = strip_remote(arg).partition("/")
    if not pool or not vol:
        fail(f'Invalid volume "{arg}": expected POOL/VOLUME')
    return pool, vol


@volume.command("copy")
@click.argument("source")
@click.argument("target")
@click.option("--volume-only", is_flag=True, help="Copy the volume without its snapshots")
@pass_ctx
def volume_copy(ctx: Ctx, source: str, target: str, volume_only: bool) -> None:
    """Copy storage volumes: POOL/VOLUME POOL/VOLUME."""
    (sp, sv), (tp, tv) = _pool_vol(source), _pool_vol(target)
    src = ctx.client.metadata(volume_url(sp, sv))
    ctx.client.run("POST", f"{pool_url(tp)}/volumes/custom", {
        "name": tv, "type": "custom", "config": src.get("config") or {}, "description": src.get("description", ""),
        "source": {"type": "copy", "pool": sp, "name": sv, "volume_only": volume_only}})
    if not ctx.quiet:
        click.echo("Storage volume copied successfully!")


@volume.command("move")
@click.argument("source")
@click.argument("target")
@pass_ctx
def volume_move(ctx: Ctx, source: str, target: str) -> None:
    """Move storage volumes between pools: POOL/VOLUME POOL/VOLUME."""
    (sp, sv), (tp, tv) = _pool_vol(source), _pool_vol(target)
    ctx.client.run("POST", volume_url(sp, sv), {"name": tv, "pool": tp})
    if not ctx.quiet:
        click.echo("Storage volume moved successfully!")


@volume.command("rename")
@click.argument("pool")
@click.argument("old")
@click.argument("new")
@pass_ctx
def volume_rename(ctx: Ctx, pool: str, old: str, new: str) -> None:
    """Rename storage volumes."""
    ctx.client.run("POST", volume_url(pool, old), {"name": new})
    if not ctx.quiet:
        click.echo(f'Renamed storage volume from "{old}" to "{new}"')


@volume.command("attach")
@click.argument("pool")
@click.argument("vol")
@click.argument("instance")
@click.argument("rest", nargs=-1, required=True)
@pass_ctx
def volume_attach(ctx: Ctx, pool: str, vol: str, instance: str, rest: tuple[str, ...]) -> None:
    """Attach a custom volume to an instance: POOL VOLUME INSTANCE [DEVICE] PATH."""
    if len(rest) > 2:
        fail("Too many arguments")
    device, path = (rest[0], rest[1]) if len(rest) == 2 else (vol, rest[0])
    target = InstanceTarget(ctx, instance)
    target.fetch()
    w = target.writable()
    devices = dict(w.get("devices") or {})
    if device in devices:
        fail("The device already exists")
    devices[device] = {"type": "disk", "pool": strip_remote(pool), "source": vol, "path": path}
    w["devices"] = devices
    target.update(w)


@volume.command("detach")
@click.argument("pool")
@click.argument("vol")
@click.argument("instance")
@click.argument("device", required=False)
@pass_ctx
def volume_detach(ctx: Ctx, pool: str, vol: str, instance: str, device: str | None) -> None:
    """Detach a custom volume from an instance."""
    target = InstanceTarget(ctx, instance)
    target.fetch()
    w = target.writable()
    devices = dict(w.get("devices") or {})
    names = [n for n, d in devices.items() if d.get("type") == "disk" and d.get("pool") == strip_remote(pool)
             and d.get("source") == vol and (device is None or n == device)]
    if not names:
        fail("No device found for this storage volume")
    if len(names) > 1:
        fail("More than one device matches, specify the device name")
    del devices[names[0]]
    w["devices"] = devices
    target.update(w)


@volume.command("snapshot")
@click.argument("pool")
@click.argument("vol")
@click.argument("snapshot", required=False)
@pass_ctx
def volume_snapshot(ctx: Ctx, pool: str, vol: str, snapshot: str | None) -> None:
    """Snapshot storage volumes."""
    ctx.client.run("POST", volume_url(pool, vol) + "/snapshots", {"name": snapshot or ""})


@volume.command("restore")
@click.argument("pool")
@click.argument("vol")
@click.argument("snapshot")
@pass_ctx
def volume_restore(ctx: Ctx, pool: str, vol: str, snapshot: str) -> None:
    """Restore storage volume snapshots."""
    obj, etag = ctx.client.get_etag(volume_url(pool, vol))
    ctx.client.put(volume_url(pool, vol), {**writable(obj), "restore": snapshot}, etag=etag)


@volume.command("get")
@click.argument("pool")
@click.argument("vol")
@click.argument("key")
@pass_ctx
def volume_get(ctx: Ctx, pool: str, vol: str, key: str) -> None:
    """Get values for storage volume configuration keys."""
    click.echo((ctx.client.metadata(volume_url(pool, vol)).get("config") or {}).get(key, ""))


@volume.command("set")
@click.argument("pool")
@click.argument("vol")
@click.argument("args", nargs=-1, required=True)
@pass_ctx
def volume_set(ctx: Ctx, pool: str, vol: str, args: tuple[str, ...]) -> None:
    """Set storage volume configuration keys."""
    ctx.client.patch(volume_url(pool, vol), {"config": parse_key_values(args)})


@volume.command("unset")
@click.argument("pool")
@click.argument("vol")
@click.argument("key")
@pass_ctx
def volume_unset(ctx: Ctx, pool: str, vol: str, key: str) -> None:
    """Unset storage volume configuration keys."""
    obj, etag = ctx.client.get_etag(volume_url(pool, vol))
    w = writable(obj)
    w["config"].pop(key, None)
    ctx.client.put(volume_url(pool, vol), w, etag=etag)


@volume.command("edit")
@click.argument("pool")
@click.argument("vol")
@pass_ctx
def volume_edit(ctx: Ctx, pool: str, vol: str) -> None:
    """Edit storage volume configurations as YAML."""
    obj, etag = ctx.client.get_etag(volume_url(pool, vol))
    edit_loop(obj, lambda data: ctx.client.put(volume_url(pool, vol), from_yaml(data), etag=etag))


@volume.command("info")
@click.argument("pool")
@click.argument("vol")
@pass_ctx
def volume_info(ctx: Ctx, pool: str, vol: str) -> None:
    """Show storage volume state information."""
    v = ctx.client.metadata(volume_url(pool, vol))
    state = ctx.client.metadata(volume_url(pool, vol) + "/state")
    click.echo(f"Name: {v['name']}")
    click.echo(f"Type: {v['type']}")
    click.echo(f"Content type: {v.get('content_type', 'filesystem')}")
    click.echo(f"Usage: {human(state['usage']['used'])}")
    if v.get("created_at", "").startswith("0001") is False and v.get("created_at"):
        click.echo(f"Created: {v['created_at']}")
    if v["type"] == "custom":
        snaps = ctx.client.metadata(volume_url(pool, vol) + "/snapshots", params={"recursion": 1}) or []
        if snaps:
            click.echo("\nSnapshots:")
            rows = [[s["name"], s.get("description", ""), s.get("created_at", "")] for s in snaps]
            print_list("table", ["NAME", "DESCRIPTION", "TAKEN AT"], rows, snaps)


# list (with -c), export, import, attach-profile, detach-profile: storage_volume_more.py.
from corral.cli import storage_volume_more  # noqa: E402,F401
