"""`launch` and `init` (alias `create`): a new instance from an image (lxc's launch.go, init.go)."""

from __future__ import annotations

import sys
from typing import Any, Callable

import click

from corral.cli.config import q
from corral.cli.edit import devices_map, go_string, parse_yaml, string_map
from corral.cli.main import Ctx, fail, pass_ctx
from corral.cli.instance import change_state, cmd, resolve_image, stdin_is_data, wait_op



def create_options(f: Callable) -> Callable:
    for opt in reversed(
        [
            click.option("-c", "--config", "config", multiple=True, help="Config key/value to apply to the new instance"),
            click.option("-d", "--device", "device", multiple=True, help="New key/value to apply to a specific device"),
            click.option("-p", "--profile", "profiles", multiple=True, help="Profile to apply to the new instance"),
            click.option("--no-profiles", is_flag=True, help="Create the instance with no profiles applied"),
            click.option("-e", "--ephemeral", is_flag=True, help="Ephemeral instance"),
            click.option("-n", "--network", default=None, help="Network name"),
            click.option("-s", "--storage", default=None, help="Storage pool name"),
            click.option("-t", "--type", "instance_type", default=None, help="Instance type"),
            click.option("--target", default=None, help="Cluster member name"),
            click.option("--vm", is_flag=True, help="Create a virtual machine"),
            click.option("--empty", is_flag=True, help="Create an empty instance"),
        ]
    ):
        f = opt(f)
    return f


def _device_overrides(ctx: Ctx, overrides: tuple[str, ...], profiles: list[str] | None) -> dict[str, dict]:
    """-d DEVICE,key=value: override a device inherited from the profiles."""
    if not overrides:
        return {}
    parsed: dict[str, dict[str, str]] = {}
    for entry in overrides:
        if "," not in entry:
            fail(f"Invalid device override syntax: {entry}")
        devname, rest = entry.split(",", 1)
        for kv in rest.split(","):
            if "=" not in kv:
                fail(f"Invalid device override syntax: {entry}")
            k, v = kv.split("=", 1)
            parsed.setdefault(devname, {})[k] = v
    profile_devices: dict[str, dict] = {}
    for pname in profiles if profiles is not None else ["default"]:
        prof = ctx.client.metadata(f"/1.0/profiles/{q(pname)}") or {}
        profile_devices.update(prof.get("devices") or {})
    out = {}
    for devname, keys in parsed.items():
        if devname not in profile_devices:
            fail(f"Cannot override config for device {devname!r}: Device not found in profile devices")
        out[devname] = {**profile_devices[devname], **keys}
    return out


def create_instance(ctx: Ctx, image: str | None, name: str | None, opts: dict) -> str:
    """POST /1.0/instances; returns the new instance's name."""
    from corral.cli.base import default_remote, parse_remote
    from corral.cli.instance_source import destination, remote_image_source
    client = destination(ctx, name)
    ctx._client = client   # the rest of the command (profiles, waiting) talks to the destination
    req: dict[str, Any] = {}
    if name:
        req["name"] = parse_remote(name)[1]
    if opts.get("empty") or not image:
        req["source"] = {"type": "none"}
    else:
        dest_remote = (parse_remote(name)[0] if name else None) or default_remote()
        req["source"] = remote_image_source(ctx, image, dest_remote) or resolve_image(ctx, image)

    config: dict[str, str] = {}
    devices: dict[str, dict] = {}
    profiles: list[str] | None = None

    if stdin_is_data():
        try:
            data = parse_yaml(sys.stdin.read())
        except ValueError as exc:
            fail(str(exc))
        if data:
            config.update(string_map(data.get("config"), "config"))
            devices.update(devices_map(data.get("devices")))
            if isinstance(data.get("profiles"), list):
                profiles = [go_string(p) for p in data["profiles"]]
            if "ephemeral" in data:
                req["ephemeral"] = bool(data["ephemeral"])
            if data.get("description"):
                req["description"] = go_string(data["description"])

    for item in opts.get("config") or ():
        if "=" not in item:
            fail(f"Bad key=value pair: {item}")
        k, v = item.split("=", 1)
        config[k] = v
    if opts.get("no_profiles"):
        profiles = []
    elif opts.get("profiles"):
        profiles = list(opts["profiles"])
    devices.update(_device_overrides(ctx, opts.get("device") or (), profiles))
    if opts.get("network"):
        devices["eth0"] = {"type": "nic", "network": opts["network"], "name": "eth0"}
    if opts.get("storage"):
        devices["root"] = {"type": "disk", "path": "/", "pool": opts["storage"]}

    req["config"] = config
    req["devices"] = devices
    if profiles is not None:
        req["profiles"] = profiles
    if opts.get("ephemeral"):
        req["ephemeral"] = True
    req["type"] = "virtual-machine" if opts.get("vm") else "container"
    if opts.get("instance_type"):
        req["instance_type"] = opts["instance_type"]

    if not ctx.quiet:
        click.echo(f"Creating {req['name']}" if name else "Creating the instance")
    env = client.post("/1.0/instances", req)
    op = wait_op(ctx, env, "Retrieving image")
    created = name and parse_remote(name)[1]
    if not created:
        for url in (op.get("resources") or {}).get("instances") or []:
            created = url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
            break
        if not created:
            fail("Failed to get the new instance name")
        if not ctx.quiet:
            click.echo(f"Instance name is: {created}")
    return created


@cmd("init")
@click.argument("image", required=False)
@click.argument("name", required=False)
@create_options
@pass_ctx
def init(ctx: Ctx, image: str | None, name: str | None, **opts: Any) -> None:
    """Create instances from images: corral init IMAGE [NAME]."""
    if not image and not opts.get("empty"):
        fail("Invalid number of arguments")
    if opts.get("empty") and image and not name:
        image, name = None, image
    create_instance(ctx, image, name, opts)


@cmd("launch")
@click.argument("image", required=False)
@click.argument("name", required=False)
@create_options
@click.option("--console", "console_", is_flag=True, help="Immediately attach to the console")
@pass_ctx
def launch(ctx: Ctx, image: str | None, name: str | None, console_: bool, **opts: Any) -> None:
    """Create and start instances from images: corral launch IMAGE [NAME]."""
    if not image and not opts.get("empty"):
        fail("Invalid number of arguments")
    if opts.get("empty") and image and not name:
        image, name = None, image
    created = create_instance(ctx, image, name, opts)
    if not ctx.quiet:
        click.echo(f"Starting {created}")
    change_state(ctx, created, "start", hint=True)
    if console_:
        from corral.cli.instance_console import attach_console

        attach_console(ctx, created)
