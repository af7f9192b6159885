"""`config device` and `profile device`: add, get, set, unset, list, show, remove, override
(lxc's config_device.go)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from corral.cli.main import Ctx, fail, group, parse_key_values, pass_ctx
from corral.cli.output import sorted_keys, to_yaml

if TYPE_CHECKING:   # config.py imports this module to add `config device`
    from corral.cli.config import Target


def make_device_group(target_cls: type[Target]) -> click.Group:
    kind = target_cls.kind
    noun = "<profile>" if kind == "profile" else "<instance>"

    @group("device")
    def device() -> None:
        """Manage devices."""

    def load(ctx: Ctx, name: str) -> Target:
        target = target_cls(ctx, name)
        target.fetch()
        return target

    @device.command("add")
    @click.argument("name")
    @click.argument("devname")
    @click.argument("devtype")
    @click.argument("props", nargs=-1)
    @pass_ctx
    def add(ctx: Ctx, name: str, devname: str, devtype: str, props: tuple[str, ...]) -> None:
        """Add devices: NAME DEVICE TYPE [key=value...]"""
        dev = {"type": devtype}
        for prop in props:
            if "=" not in prop:
                fail(f'No value found in "{prop}"')
            k, v = prop.split("=", 1)
            dev[k] = v
        target = load(ctx, name)
        writable = target.writable()
        devices = dict(writable.get("devices") or {})
        if devname in devices:
            fail("The device already exists")
        devices[devname] = dev
        writable["devices"] = devices
        target.update(writable)
        if not ctx.quiet:
            click.echo(f"Device {devname} added to {target.name}")

    @device.command("remove")
    @click.argument("name")
    @click.argument("devnames", nargs=-1, required=True)
    @pass_ctx
    def remove(ctx: Ctx, name: str, devnames: tuple[str, ...]) -> None:
        """Remove devices: NAME DEVICE..."""
        target = load(ctx, name)
        writable = target.writable()
        devices = dict(writable.get("devices") or {})
        for devname in devnames:
            if devname not in devices:
                if kind == "instance" and devname in target.expanded_devices():
                    fail(
                        "Device from profile(s) cannot be removed from individual instance. "
                        "Override device or modify profile instead"
                    )
                fail("Device doesn't exist")
            del devices[devname]
        writable["devices"] = devices
        target.update(writable)
        if not ctx.quiet:
            click.echo(f"Device {', '.join(devnames)} removed from {target.name}")

    @device.command("list")
    @click.argument("name")
    @pass_ctx
    def list_(ctx: Ctx, name: str) -> None:
        """List devices."""
        target = load(ctx, name)
        click.echo("\n".join(sorted(target.obj.get("devices") or {})))

    @device.command("show")
    @click.argument("name")
    @pass_ctx
    def show(ctx: Ctx, name: str) -> None:
        """Show full device configuration."""
        target = load(ctx, name)
        click.echo(to_yaml(sorted_keys(target.obj.get("devices") or {})), nl=False)

    @device.command("get")
    @click.argument("name")
    @click.argument("devname")
    @click.argument("key")
    @pass_ctx
    def get(ctx: Ctx, name: str, devname: str, key: str) -> None:
        """Get values for device configuration keys."""
        target = load(ctx, name)
        devices = target.obj.get("devices") or {}
        if devname not in devices:
            if kind == "instance" and devname in target.expanded_devices():
                fail("Device from profile(s) cannot be retrieved for individual instance")
            fail("Device doesn't exist")
        click.echo(devices[devname].get(key, ""))

    def set_keys(ctx: Ctx, name: str, devname: str, keys: dict[str, str], unset: bool) -> None:
        target = load(ctx, name)
        writable = target.writable()
        devices = {k: dict(v) for k, v in (writable.get("devices") or {}).items()}
        if devname not in devices:
            if kind == "instance" and devname in target.expanded_devices():
                fail(
                    "Device from profile(s) cannot be modified for individual instance. "
                    "Override device or modify profile instead"
                )
            fail("Device doesn't exist")
        for k, v in keys.items():
            if unset:
                devices[devname].pop(k, None)
            else:
                devices[devname][k] = v
        writable["devices"] = devices
        target.update(writable)

    @device.command("set")
    @click.argument("name")
    @click.argument("devname")
    @click.argument("props", nargs=-1, required=True)
    @pass_ctx
    def set_(ctx: Ctx, name: str, devname: str, props: tuple[str, ...]) -> None:
        """Set device configuration keys: NAME DEVICE key=value..."""
        set_keys(ctx, name, devname, parse_key_values(props), unset=False)

    @device.command("unset")
    @click.argument("name")
    @click.argument("devname")
    @click.argument("key")
    @pass_ctx
    def unset(ctx: Ctx, name: str, devname: str, key: str) -> None:
        """Unset device configuration keys."""
        set_keys(ctx, name, devname, {key: ""}, unset=True)

    if kind == "instance":

        @device.command("override")
        @click.argument("name")
        @click.argument("devname")
        @click.argument("props", nargs=-1)
        @pass_ctx
        def override(ctx: Ctx, name: str, devname: str, props: tuple[str, ...]) -> None:
            """Copy profile inherited devices and override configuration keys."""
            target = load(ctx, name)
            writable = target.writable()
            devices = dict(writable.get("devices") or {})
            if devname in devices:
                fail("The device already exists")
            expanded = target.expanded_devices()
            if devname not in expanded:
                fail("The profile device doesn't exist")
            dev = dict(expanded[devname])
            for prop in props:
                if "=" not in prop:
                    fail(f'No value found in "{prop}"')
                k, v = prop.split("=", 1)
                dev[k] = v
            devices[devname] = dev
            writable["devices"] = devices
            target.update(writable)
            if not ctx.quiet:
                click.echo(f"Device {devname} overridden for {target.name}")

    device.help = f"Manage devices of {kind}s ({noun})."
    return device
