"""`corral network`: manage networks and attach instances to them (like `lxc network`)."""

from __future__ import annotations

import click

from corral.cli.base import remote_argument

from corral.cli.config import InstanceTarget, ProfileTarget, q
from corral.cli.edit import edit_loop, go_string, string_map
from corral.cli.main import Ctx, fail, group, parse_key_values, pass_ctx, strip_remote
from corral.cli.output import format_bytes_iec, format_option, iter_sorted, print_list, to_yaml

NETWORK_HELP = """### This is a YAML representation of the network.
### Any line starting with a '# will be ignored.
###
### A network consists of a set of configuration items.
###
### An example would look like:
### name: corralbr0
### config:
###   ipv4.address: 10.62.42.1/24
###   ipv4.nat: true
###   ipv6.address: none
### description: ""
### managed: true
### type: bridge
###
### Note that only the configuration can be changed."""


def _path(name: str) -> str:
    return f"/1.0/networks/{q(strip_remote(name))}"


def _get(ctx: Ctx, name: str) -> tuple[dict, str | None]:
    obj, etag = ctx.client.get_etag(_path(name))
    return obj or {}, etag


def _put(ctx: Ctx, name: str, obj: dict, etag: str | None) -> None:
    ctx.client.put(_path(name), {"config": obj.get("config") or {}, "description": obj.get("description") or ""},
                   etag=etag)


@group()
def network() -> None:
    """Manage and attach instances to networks."""


@network.command("list")
@remote_argument()
@format_option()
@pass_ctx
def network_list(ctx: Ctx, remote: str | None, fmt: str) -> None:
    """List available networks."""
    nets = ctx.client.metadata("/1.0/networks", params={"recursion": 1}) or []
    rows = []
    for n in iter_sorted(nets):
        cfg = n.get("config") or {}
        rows.append([n.get("name", ""), n.get("type", ""), "YES" if n.get("managed") else "NO",
                     cfg.get("ipv4.address", ""), cfg.get("ipv6.address", ""), n.get("description", ""),
                     str(len(n.get("used_by") or [])), n.get("status", "").upper()])
    print_list(fmt, ["NAME", "TYPE", "MANAGED", "IPV4", "IPV6", "DESCRIPTION", "USED BY", "STATE"], rows, nets)


@network.command("show")
@click.argument("name")
@pass_ctx
def network_show(ctx: Ctx, name: str) -> None:
    """Show network configurations."""
    obj, _ = _get(ctx, name)
    click.echo(to_yaml(obj, typed=True), nl=False)


@network.command("create")
@click.argument("name")
@click.argument("config", nargs=-1)
@click.option("-t", "--type", "ntype", default="", help="Network type")
@click.option("--description", default=None, help="Network description")
@pass_ctx
def network_create(ctx: Ctx, name: str, config: tuple[str, ...], ntype: str, description: str | None) -> None:
    """Create new networks: NAME [key=value...]."""
    name = strip_remote(name)
    body: dict = {"name": name, "type": ntype, "config": parse_key_values(config, stdin_dash=False) if config else {}}
    if description is not None:
        body["description"] = description
    ctx.client.post("/1.0/networks", body)
    if not ctx.quiet:
        click.echo(f"Network {name} created")


@network.command("delete")
@click.argument("name")
@pass_ctx
def network_delete(ctx: Ctx, name: str) -> None:
    """Delete networks."""
    ctx.client.delete(_path(name))
    if not ctx.quiet:
        click.echo(f"Network {strip_remote(name)} deleted")


@network.command("rename")
@click.argument("name")
@click.argument("new_name")
@pass_ctx
def network_rename(ctx: Ctx, name: str, new_name: str) -> None:
    """Rename networks."""
    ctx.client.post(_path(name), {"name": strip_remote(new_name)})
    if not ctx.quiet:
        click.echo(f"Network {strip_remote(name)} renamed to {strip_remote(new_name)}")


@network.command("edit")
@click.argument("name")
@pass_ctx
def network_edit(ctx: Ctx, name: str) -> None:
    """Edit network configurations as YAML (read from stdin when it is not a terminal)."""
    obj, etag = _get(ctx, name)

    def apply(data: dict) -> None:
        _put(ctx, name, {"config": string_map(data.get("config"), "config"),
                         "description": go_string(data.get("description"))}, etag)

    edit_loop(obj, apply, NETWORK_HELP)


@network.command("get")
@click.argument("name")
@click.argument("key")
@pass_ctx
def network_get(ctx: Ctx, name: str, key: str) -> None:
    """Get values for network configuration keys."""
    obj, _ = _get(ctx, name)
    click.echo((obj.get("config") or {}).get(key, ""))


@network.command("set")
@click.argument("name")
@click.argument("args", nargs=-1, required=True)
@pass_ctx
def network_set(ctx: Ctx, name: str, args: tuple[str, ...]) -> None:
    """Set network configuration keys: NAME KEY=VALUE... (or NAME KEY VALUE)."""
    obj, etag = _get(ctx, name)
    if not obj.get("managed", True):
        fail("Only managed networks can be modified")
    obj["config"] = {**(obj.get("config") or {}), **parse_key_values(args)}
    _put(ctx, name, obj, etag)


@network.command("unset")
@click.argument("name")
@click.argument("key")
@pass_ctx
def network_unset(ctx: Ctx, name: str, key: str) -> None:
    """Unset network configuration keys."""
    obj, etag = _get(ctx, name)
    cfg = dict(obj.get("config") or {})
    if key not in cfg:
        fail(f"The key {key} does not exist on network {strip_remote(name)}")
    cfg.pop(key)
    obj["config"] = cfg
    _put(ctx, name, obj, etag)


@network.command("info")
@click.argument("name")
@pass_ctx
def network_info(ctx: Ctx, name: str) -> None:
    """Get runtime information on networks."""
    st = ctx.client.metadata(f"{_path(name)}/state")
    lines = [f"Name: {strip_remote(name)}", f"MAC address: {st.get('hwaddr', '')}", f"MTU: {st.get('mtu', 0)}",
             f"State: {st.get('state', '')}", f"Type: {st.get('type', '')}", ""]
    addrs = st.get("addresses") or []
    if addrs:
        lines.append("IP addresses:")
        lines += [f"  {a['family']}\t{a['address']}/{a['netmask']} ({a['scope']})" for a in addrs]
        lines.append("")
    c = st.get("counters") or {}
    lines += ["Network usage:", f"  Bytes received: {format_bytes_iec(c.get('bytes_received', 0))}",
              f"  Bytes sent: {format_bytes_iec(c.get('bytes_sent', 0))}",
              f"  Packets received: {c.get('packets_received', 0)}", f"  Packets sent: {c.get('packets_sent', 0)}"]
    br = st.get("bridge")
    if br:
        lines += ["", "Bridge:", f"  ID: {br.get('id', '')}", f"  STP: {str(br.get('stp', False)).lower()}",
                  f"  Forward delay: {br.get('forward_delay', 0)}", f"  Default VLAN ID: {br.get('vlan_default', 0)}",
                  f"  VLAN filtering: {str(br.get('vlan_filtering', False)).lower()}",
                  f"  Upper devices: {', '.join(br.get('upper_devices') or [])}"]
    click.echo("\n".join(lines))


@network.command("list-leases")
@click.argument("name")
@format_option()
@pass_ctx
def network_list_leases(ctx: Ctx, name: str, fmt: str) -> None:
    """List DHCP leases."""
    leases = ctx.client.metadata(f"{_path(name)}/leases") or []
    rows = [[x.get("hostname", ""), x.get("hwaddr", ""), x.get("address", ""), x.get("type", "").upper()]
            for x in leases]
    print_list(fmt, ["HOSTNAME", "MAC ADDRESS", "IP ADDRESS", "TYPE"], rows, leases)


def _nic_for(ctx: Ctx, name: str) -> dict:
    net, _ = _get(ctx, name)
    if net.get("managed"):
        return {"type": "nic", "network": net["name"]}
    return {"type": "nic", "nictype": "bridged" if net.get("type") == "bridge" else "macvlan", "parent": net["name"]}


def _attach(ctx: Ctx, target, network_name: str, device: str | None, ifname: str | None) -> None:
    target.fetch()
    dev = _nic_for(ctx, network_name)
    dev_name = device or strip_remote(network_name)
    if ifname:
        dev["name"] = ifname
    devices = dict(target.obj.get("devices") or {})
    if dev_name in devices:
        fail("The device already exists")
    devices[dev_name] = dev
    writable = target.writable()
    writable["devices"] = devices
    target.update(writable)


def _detach(ctx: Ctx, target, network_name: str, device: str | None) -> None:
    target.fetch()
    net = strip_remote(network_name)
    devices = dict(target.obj.get("devices") or {})
    matches = [n for n, d in devices.items() if d.get("type") == "nic"
               and (d.get("network") == net or d.get("parent") == net) and (device is None or n == device)]
    if not matches:
        fail("No device found for this network")
    if len(matches) > 1:
        fail("More than one device matches, specify the device name")
    del devices[matches[0]]
    writable = target.writable()
    writable["devices"] = devices
    target.update(writable)


@network.command("attach")
@click.argument("network_name")
@click.argument("instance")
@click.argument("device", required=False)
@click.argument("ifname", required=False)
@pass_ctx
def network_attach(ctx: Ctx, network_name: str, instance: str, device: str | None, ifname: str | None) -> None:
    """Attach network interfaces to instances: NETWORK INSTANCE [DEVICE [INTERFACE]]."""
    _attach(ctx, InstanceTarget(ctx, instance), network_name, device, ifname)


@network.command("detach")
@click.argument("network_name")
@click.argument("instance")
@click.argument("device", required=False)
@pass_ctx
def network_detach(ctx: Ctx, network_name: str, instance: str, device: str | None) -> None:
    """Detach network interfaces from instances."""
    _detach(ctx, InstanceTarget(ctx, instance), network_name, device)


@network.command("attach-profile")
@click.argument("network_name")
@click.argument("profile")
@click.argument("device", required=False)
@click.argument("ifname", required=False)
@pass_ctx
def network_attach_profile(ctx: Ctx, network_name: str, profile: str, device: str | None, ifname: str | None) -> None:
    """Attach network interfaces to profiles."""
    _attach(ctx, ProfileTarget(ctx, profile), network_name, device, ifname)


@network.command("detach-profile")
@click.argument("network_name")
@click.argument("profile")
@click.argument("device", required=False)
@pass_ctx
def network_detach_profile(ctx: Ctx, network_name: str, profile: str, device: str | None) -> None:
    """Detach network interfaces from profiles."""
    _detach(ctx, ProfileTarget(ctx, profile), network_name, device)
