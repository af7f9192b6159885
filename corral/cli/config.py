"""`corral config`: server and instance configuration (lxc's config.go), and the targets
(instance, profile) the config and device commands work on. `config device` is config_device.py."""

from __future__ import annotations

import abc
import urllib.parse
from typing import Any

import click

from corral.cli.edit import devices_map, edit_loop, go_string, string_map
from corral.cli.main import Ctx, fail, group, parse_key_values, pass_ctx, strip_remote
from corral.cli.output import sorted_keys, to_yaml

INSTANCE_HELP = """### This is a YAML representation of the configuration.
### Any line starting with a '# will be ignored.
###
### A sample configuration looks like:
### name: instance1
### profiles:
### - default
### config:
###   volatile.eth0.hwaddr: 00:16:3e:e9:f8:7f
### devices:
###   homedir:
###     path: /extra
###     source: /home/user
###     type: disk
### ephemeral: false
###
### Note that the name is shown but cannot be changed"""

INSTANCE_WRITABLE = ("architecture", "config", "devices", "ephemeral", "profiles", "stateful", "description")


def q(name: str) -> str:
    """Quote a name for use in a URL path."""
    return urllib.parse.quote(name, safe="")


# --------------------------------------------------------------------------
# Things with config and devices: instances and profiles
# --------------------------------------------------------------------------


class Target(abc.ABC):
    """An API object with ``config`` and ``devices`` that is updated by PUT."""

    kind = ""
    writable_keys: tuple[str, ...] = ()

    def __init__(self, ctx: Ctx, name: str):
        self.ctx = ctx
        self.name = strip_remote(name)
        self.obj: dict = {}
        self.etag: str | None = None

    @property
    @abc.abstractmethod
    def path(self) -> str:
        """The API path of the object."""

    def fetch(self) -> dict:
        self.obj, self.etag = self.ctx.client.get_etag(self.path)
        self.obj = self.obj or {}
        self.obj.setdefault("config", {})
        self.obj.setdefault("devices", {})
        if self.obj["config"] is None:
            self.obj["config"] = {}
        if self.obj["devices"] is None:
            self.obj["devices"] = {}
        return self.obj

    def writable(self) -> dict:
        return {k: self.obj.get(k) for k in self.writable_keys if k in self.obj}

    @abc.abstractmethod
    def update(self, writable: dict) -> None:
        """Write the writable fields back."""

    def expanded_devices(self) -> dict:
        return self.obj.get("devices") or {}


class InstanceTarget(Target):
    kind = "instance"
    writable_keys = INSTANCE_WRITABLE

    @property
    def path(self) -> str:
        return f"/1.0/instances/{q(self.name)}"

    def update(self, writable: dict) -> None:
        self.ctx.client.run("PUT", self.path, writable, etag=self.etag)

    def expanded_devices(self) -> dict:
        return self.obj.get("expanded_devices") or {}


class ProfileTarget(Target):
    kind = "profile"
    writable_keys = ("config", "description", "devices")

    @property
    def path(self) -> str:
        return f"/1.0/profiles/{q(self.name)}"

    def update(self, writable: dict) -> None:
        self.ctx.client.run("PUT", self.path, writable, etag=self.etag)


def instance_put_from_yaml(data: dict) -> dict:
    """api.InstancePut from edited YAML."""
    out: dict[str, Any] = {}
    # A missing or null map/list is Go's nil, sent as JSON null (an empty document clears the
    # config as with lxc, and the server keeps the volatile keys and the profiles).
    out["architecture"] = go_string(data.get("architecture"))
    out["config"] = string_map(data.get("config"), "config") if data.get("config") is not None else None
    out["devices"] = devices_map(data.get("devices")) if data.get("devices") is not None else None
    out["ephemeral"] = bool(data.get("ephemeral", False))
    profiles = data.get("profiles")
    out["profiles"] = [go_string(p) for p in profiles] if isinstance(profiles, list) else None
    out["stateful"] = bool(data.get("stateful", False))
    out["description"] = go_string(data.get("description"))
    return out


def server_put_from_yaml(data: dict) -> dict:
    cfg = data.get("config")
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, dict):
        raise ValueError("yaml: cannot unmarshal config into map[string]interface{}")
    return {"config": cfg}


def server_value(value: Any) -> str:
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def split_snapshot(name: str) -> tuple[str, str | None]:
    name = strip_remote(name)
    if "/" in name:
        inst, snap = name.split("/", 1)
        return inst, snap
    return name, None


# --------------------------------------------------------------------------
# corral config
# --------------------------------------------------------------------------


@group()
def config() -> None:
    """Manage instance and server configuration options."""


@config.command("show")
@click.argument("name", required=False)
@click.option("-e", "--expanded", is_flag=True, help="Show the expanded configuration")
@click.option("--target", default=None, help="Cluster member name")
@pass_ctx
def config_show(ctx: Ctx, name: str | None, expanded: bool, target: str | None) -> None:
    """Show instance or server configurations."""
    client = ctx.client
    if not name:
        if expanded:
            fail("--expanded cannot be used with a server")
        server = client.server(refresh=True)
        click.echo(to_yaml({"config": sorted_keys(server.get("config") or {})}), nl=False)
        return
    inst, snap = split_snapshot(name)
    if snap is not None:
        obj = client.metadata(f"/1.0/instances/{q(inst)}/snapshots/{q(snap)}") or {}
        if expanded:
            obj["config"] = obj.get("expanded_config") or {}
            obj["devices"] = obj.get("expanded_devices") or {}
        data = {"expires_at": obj.get("expires_at")}
        data.update({k: v for k, v in obj.items() if k != "expires_at"})
    else:
        obj = client.metadata(f"/1.0/instances/{q(inst)}") or {}
        data = {k: obj.get(k) for k in INSTANCE_WRITABLE}
        if expanded:
            data["config"] = obj.get("expanded_config") or {}
            data["devices"] = obj.get("expanded_devices") or {}
    click.echo(to_yaml(data, typed=True), nl=False)


@config.command("get")
@click.argument("args", nargs=-1, required=True)
@click.option("-e", "--expanded", is_flag=True, help="Access the expanded configuration")
@click.option("--target", default=None, help="Cluster member name")
@pass_ctx
def config_get(ctx: Ctx, args: tuple[str, ...], expanded: bool, target: str | None) -> None:
    """Get values for instance or server configuration keys.

    Usage: corral config get [<instance>] <key>"""
    if len(args) > 2:
        fail("Invalid number of arguments")
    key = args[-1]
    if len(args) == 2:
        obj = InstanceTarget(ctx, args[0])
        inst = obj.fetch()
        cfg = inst.get("expanded_config") if expanded else inst.get("config")
        click.echo((cfg or {}).get(key, ""))
        return
    if expanded:
        fail("--expanded cannot be used with a server")
    server = ctx.client.server(refresh=True)
    click.echo(server_value((server.get("config") or {}).get(key)))


def _set_or_unset(ctx: Ctx, args: list[str], unset: bool) -> None:
    if not args:
        fail("Invalid number of arguments")
    only_kv = all("=" in a for a in args)
    has_kv = any("=" in a for a in args)
    first_key = args[0].split(":", 1)[-1]
    if only_kv or "." in first_key or (len(args) == 2 and not has_kv):
        instance = None
        keys = parse_key_values(args)
    else:
        instance = args[0]
        keys = parse_key_values(args[1:])

    if instance is not None:
        target = InstanceTarget(ctx, instance)
        target.fetch()
        writable = target.writable()
        cfg = dict(writable.get("config") or {})
        for key, value in keys.items():
            if unset:
                if key not in cfg:
                    fail(f"Can't unset key '{key}', it's not currently set")
                del cfg[key]
            else:
                cfg[key] = value
        writable["config"] = cfg
        target.update(writable)
        return

    client = ctx.client
    server, etag = client.get_etag("/1.0")
    cfg = dict((server or {}).get("config") or {})
    cfg.update(keys)  # an empty value unsets a server key
    client.put("/1.0", {"config": cfg}, etag=etag)


@config.command("set")
@click.argument("args", nargs=-1, required=True)
@click.option("--target", default=None, help="Cluster member name")
@pass_ctx
def config_set(ctx: Ctx, args: tuple[str, ...], target: str | None) -> None:
    """Set instance or server configuration keys.

    Usage: corral config set [<instance>] <key>=<value>...

    For backward compatibility, a single configuration key may still be set
    with: corral config set [<instance>] <key> <value>"""
    _set_or_unset(ctx, list(args), unset=False)


@config.command("unset")
@click.argument("args", nargs=-1, required=True)
@click.option("--target", default=None, help="Cluster member name")
@pass_ctx
def config_unset(ctx: Ctx, args: tuple[str, ...], target: str | None) -> None:
    """Unset instance or server configuration keys.

    Usage: corral config unset [<instance>] <key>"""
    if len(args) > 2:
        fail("Invalid number of arguments")
    _set_or_unset(ctx, [*args, ""], unset=True)


@config.command("edit")
@click.argument("name", required=False)
@click.option("--target", default=None, help="Cluster member name")
@pass_ctx
def config_edit(ctx: Ctx, name: str | None, target: str | None) -> None:
    """Edit instance or server configurations as YAML.

    With stdin not a terminal, the new configuration is read from it:
    corral config edit <instance> < instance.yaml"""
    client = ctx.client
    if not name:
        server, etag = client.get_etag("/1.0")

        def apply_server(data: dict) -> None:
            client.put("/1.0", server_put_from_yaml(data), etag=etag)

        edit_loop({"config": (server or {}).get("config") or {}}, apply_server)
        return

    inst, snap = split_snapshot(name)
    if snap is not None:
        path = f"/1.0/instances/{q(inst)}/snapshots/{q(snap)}"
        obj, etag = client.get_etag(path)

        def apply_snap(data: dict) -> None:
            client.run("PUT", path, {"expires_at": go_string(data.get("expires_at")) or None}, etag=etag)

        edit_loop({"expires_at": (obj or {}).get("expires_at")}, apply_snap, INSTANCE_HELP)
        return

    target_obj = InstanceTarget(ctx, inst)
    target_obj.fetch()

    def apply_instance(data: dict) -> None:
        target_obj.update(instance_put_from_yaml(data))

    edit_loop(target_obj.writable(), apply_instance, INSTANCE_HELP)


# `config device` (make_device_group is config_device.py's, shared with `profile device`).
from corral.cli.config_device import make_device_group  # noqa: E402

config.add_command(make_device_group(InstanceTarget))

# `config trust`, `config template`, `config metadata` (their own modules).
from corral.cli.config_trust import trust  # noqa: E402
from corral.cli.config_template import metadata, template  # noqa: E402

config.add_command(trust)
config.add_command(template)
config.add_command(metadata)
