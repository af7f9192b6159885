"""`corral storage`: manage storage pools (lxc's storage.go); `storage volume` is storage_volume.py."""

from __future__ import annotations

import click

from corral.cli.base import remote_argument

from corral.cli.config import q
from corral.cli.edit import edit_loop, go_string, string_map
from corral.cli.main import Ctx, group, parse_key_values, pass_ctx, strip_remote
from corral.cli.output import format_option, iter_sorted, print_list, to_yaml

VOLUME_TYPES = ("custom", "container", "virtual-machine", "image")


def human(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.2f}{unit}" if unit != "B" else f"{int(value)}B"
        value /= 1024
    return f"{n}B"


def pool_url(pool: str) -> str:
    return f"/1.0/storage-pools/{q(strip_remote(pool))}"


def split_volume(vol: str) -> tuple[str, str]:
    """lxc's "[type/]name" (type custom by default)."""
    kind, _, rest = vol.partition("/")
    if rest and kind in VOLUME_TYPES:
        return kind, rest
    return "custom", vol


def volume_url(pool: str, vol: str) -> str:
    kind, name = split_volume(vol)
    return f"{pool_url(pool)}/volumes/{kind}/{q(name)}"


def writable(obj: dict) -> dict:
    return {"config": obj.get("config") or {}, "description": obj.get("description") or ""}


def from_yaml(data: dict) -> dict:
    return {"config": string_map(data.get("config"), "config"), "description": go_string(data.get("description"))}


@group()
def storage() -> None:
    """Manage storage pools and volumes."""


@storage.command("list")
@remote_argument()
@format_option()
@pass_ctx
def storage_list(ctx: Ctx, remote: str | None, fmt: str) -> None:
    """List available storage pools."""
    pools = iter_sorted(ctx.client.metadata("/1.0/storage-pools", params={"recursion": 1}) or [])
    rows = [[p["name"], p["driver"], (p.get("config") or {}).get("source", ""), p.get("description", ""),
             str(len(p.get("used_by") or [])), p.get("status", "").upper()] for p in pools]
    print_list(fmt, ["NAME", "DRIVER", "SOURCE", "DESCRIPTION", "USED BY", "STATE"], rows, pools)


@storage.command("show")
@click.argument("pool")
@pass_ctx
def storage_show(ctx: Ctx, pool: str) -> None:
    """Show storage pool configurations and resources."""
    click.echo(to_yaml(ctx.client.metadata(pool_url(pool)), typed=True), nl=False)


@storage.command("create")
@click.argument("pool")
@click.argument("driver")
@click.argument("config", nargs=-1)
@click.option("--description", default=None, help="Storage pool description")
@pass_ctx
def storage_create(ctx: Ctx, pool: str, driver: str, config: tuple[str, ...], description: str | None) -> None:
    """Create storage pools: POOL DRIVER [KEY=VALUE...]."""
    body = {"name": strip_remote(pool), "driver": driver, "config": parse_key_values(config, stdin_dash=False)
            if config else {}}
    if description is not None:
        body["description"] = description
    ctx.client.post("/1.0/storage-pools", body)
    if not ctx.quiet:
        click.echo(f"Storage pool {strip_remote(pool)} created")


@storage.command("delete")
@click.argument("pool")
@pass_ctx
def storage_delete(ctx: Ctx, pool: str) -> None:
    """Delete storage pools."""
    ctx.client.delete(pool_url(pool))
    if not ctx.quiet:
        click.echo(f"Storage pool {strip_remote(pool)} deleted")


@storage.command("edit")
@click.argument("pool")
@pass_ctx
def storage_edit(ctx: Ctx, pool: str) -> None:
    """Edit storage pool configurations as YAML (read from stdin when it is not a terminal)."""
    obj, etag = ctx.client.get_etag(pool_url(pool))
    edit_loop(obj, lambda data: ctx.client.put(pool_url(pool), from_yaml(data), etag=etag))


@storage.command("get")
@click.argument("pool")
@click.argument("key")
@pass_ctx
def storage_get(ctx: Ctx, pool: str, key: str) -> None:
    """Get values for storage pool configuration keys."""
    click.echo((ctx.client.metadata(pool_url(pool)).get("config") or {}).get(key, ""))


@storage.command("set")
@click.argument("pool")
@click.argument("args", nargs=-1, required=True)
@pass_ctx
def storage_set(ctx: Ctx, pool: str, args: tuple[str, ...]) -> None:
    """Set storage pool configuration keys: POOL KEY=VALUE... (or POOL KEY VALUE)."""
    ctx.client.patch(pool_url(pool), {"config": parse_key_values(args)})


@storage.command("unset")
@click.argument("pool")
@click.argument("key")
@pass_ctx
def storage_unset(ctx: Ctx, pool: str, key: str) -> None:
    """Unset storage pool configuration keys."""
    obj, etag = ctx.client.get_etag(pool_url(pool))
    w = writable(obj)
    w["config"].pop(key, None)
    ctx.client.put(pool_url(pool), w, etag=etag)


@storage.command("info")
@click.argument("pool")
@click.option("--bytes", "raw_bytes", is_flag=True, help="Show the used and free space in bytes")
@pass_ctx
def storage_info(ctx: Ctx, pool: str, raw_bytes: bool) -> None:
    """Show useful information about storage pools."""
    p = ctx.client.metadata(pool_url(pool))
    res = ctx.client.metadata(pool_url(pool) + "/resources")
    size = (lambda n: str(n)) if raw_bytes else human
    out = {"info": {"description": p.get("description", ""), "driver": p["driver"], "name": p["name"],
                    "space used": size(res["space"]["used"]), "total space": size(res["space"]["total"])},
           "used by": {}}
    for u in p.get("used_by") or []:
        parts = u.split("?")[0].split("/")
        kind = {"instances": "instances", "profiles": "profiles", "images": "images"}.get(parts[2], "volumes")
        out["used by"].setdefault(kind, []).append(parts[-1])
    click.echo(to_yaml(out), nl=False)


# `storage volume` is storage_volume.py's (lxc's storage_volume.go).
from corral.cli import storage_volume  # noqa: E402,F401  pylint: disable=unused-import
