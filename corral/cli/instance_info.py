"""`info`: an instance's state, resources and snapshots, or the server's (lxc's info.go)."""

from __future__ import annotations


import click

from corral.cli.config import q
from corral.cli.main import Ctx, pass_ctx, strip_remote
from corral.cli.output import format_bytes, format_bytes_iec, format_time_short, render_list, to_yaml, yes_no
from corral.cli.instance import cmd



def server_info_yaml(server: dict) -> str:
    from corral.cli.output import sorted_keys

    data = dict(server)
    if isinstance(data.get("config"), dict):
        data["config"] = sorted_keys(data["config"])
    env = data.get("environment")
    if isinstance(env, dict):
        env = dict(env)
        for key in ("kernel_features", "lxc_features"):
            if isinstance(env.get(key), dict):
                env[key] = sorted_keys(env[key])
        # ServerStorageDriverInfo has no json tags (Name, Version, Remote)
        # but lowercase yaml ones.
        drivers = env.get("storage_supported_drivers")
        if isinstance(drivers, list):
            env["storage_supported_drivers"] = [
                {str(k).lower(): v for k, v in d.items()} if isinstance(d, dict) else d for d in drivers
            ]
        data["environment"] = env
    return to_yaml(data)


def _resources_text(res: dict) -> str:
    lines: list[str] = []
    cpu = res.get("cpu") or {}
    sockets = cpu.get("sockets") or []
    if sockets:
        lines.append(f"CPU{'s' if len(sockets) > 1 else ''} ({cpu.get('architecture', '')}):")
        for sock in sockets:
            prefix = "  "
            if len(sockets) > 1:
                lines.append(f"  Socket {sock.get('socket', 0)}:")
                prefix = "    "
            if sock.get("vendor"):
                lines.append(f"{prefix}Vendor: {sock['vendor']}")
            if sock.get("name"):
                lines.append(f"{prefix}Name: {sock['name']}")
            cores = sock.get("cores") or []
            lines.append(f"{prefix}Cores:")
            for core in cores:
                lines.append(f"{prefix}  - Core {core.get('core', 0)}")
                lines.append(f"{prefix}    Frequency: {core.get('frequency', 0)}Mhz")
                lines.append(f"{prefix}    Threads:")
                for th in core.get("threads") or []:
                    online = "true" if th.get("online") else "false"
                    lines.append(
                        f"{prefix}      - {th.get('thread', 0)} (id: {th.get('id', 0)}, online: {online}, "
                        f"NUMA node: {th.get('numa_node', 0)})"
                    )
    mem = res.get("memory") or {}
    lines.append("")
    lines.append("Memory:")
    total, used = mem.get("total") or 0, mem.get("used") or 0
    lines.append(f"  Free: {format_bytes_iec(total - used)}")
    lines.append(f"  Used: {format_bytes_iec(used)}")
    lines.append(f"  Total: {format_bytes_iec(total)}")
    return "\n".join(lines) + "\n"


def instance_info_text(ctx: Ctx, inst: dict) -> str:
    out: list[str] = []
    state = inst.get("state") or {}
    out.append(f"Name: {inst.get('name', '')}")
    if inst.get("description"):
        out.append(f"Description: {inst['description']}")
    out.append(f"Status: {str(inst.get('status', '')).upper()}")
    itype = inst.get("type") or "container"
    out.append(f"Type: {itype} (ephemeral)" if inst.get("ephemeral") else f"Type: {itype}")
    out.append(f"Architecture: {inst.get('architecture', '')}")
    if inst.get("location") and inst.get("location") != "none" and ctx.client.is_clustered():
        out.append(f"Location: {inst['location']}")
    pid = state.get("pid") or 0
    if pid:
        out.append(f"PID: {pid}")
    if format_time_short(inst.get("created_at")):
        out.append(f"Created: {format_time_short(inst.get('created_at'))}")
    if format_time_short(inst.get("last_used_at")):
        out.append(f"Last Used: {format_time_short(inst.get('last_used_at'))}")

    if pid:
        out.append("")
        out.append("Resources:")
        out.append(f"  Processes: {state.get('processes', 0)}")
        disks = [(k, v.get("usage") or 0) for k, v in sorted((state.get("disk") or {}).items())]
        disks = [(k, u) for k, u in disks if u]
        if disks:
            out.append("  Disk usage:")
            out += [f"    {k}: {format_bytes_iec(u)}" for k, u in disks]
        cpu_usage = (state.get("cpu") or {}).get("usage") or 0
        if cpu_usage:
            out.append("  CPU usage:")
            out.append(f"    CPU usage (in seconds): {cpu_usage // 1000000000}")
        mem = state.get("memory") or {}
        mem_lines = []
        for key, label in (("usage", "Memory (current)"), ("usage_peak", "Memory (peak)"),
                           ("swap_usage", "Swap (current)"), ("swap_usage_peak", "Swap (peak)")):
            if mem.get(key):
                mem_lines.append(f"    {label}: {format_bytes_iec(mem[key])}")
        if mem_lines:
            out.append("  Memory usage:")
            out += mem_lines
        nets = state.get("network") or {}
        if nets:
            out.append("  Network usage:")
            for ifname, net in sorted(nets.items()):
                counters = net.get("counters") or {}
                out.append(f"    {ifname}:")
                out.append(f"      Type: {net.get('type', '')}")
                out.append(f"      State: {str(net.get('state', '')).upper()}")
                if net.get("host_name"):
                    out.append(f"      Host interface: {net['host_name']}")
                if net.get("hwaddr"):
                    out.append(f"      MAC address: {net['hwaddr']}")
                if net.get("mtu"):
                    out.append(f"      MTU: {net['mtu']}")
                out.append(f"      Bytes received: {format_bytes(counters.get('bytes_received') or 0)}")
                out.append(f"      Bytes sent: {format_bytes(counters.get('bytes_sent') or 0)}")
                out.append(f"      Packets received: {counters.get('packets_received') or 0}")
                out.append(f"      Packets sent: {counters.get('packets_sent') or 0}")
                out.append("      IP addresses:")
                for addr in net.get("addresses") or []:
                    fam = addr.get("family", "")
                    sep = ":  " if fam == "inet" else ": "
                    out.append(
                        f"        {fam}{sep}{addr.get('address', '')}/{addr.get('netmask', '')} ({addr.get('scope', '')})"
                    )
    text = "\n".join(out) + "\n"

    snaps = inst.get("snapshots") or []
    if snaps:
        rows = []
        for snap in snaps:
            rows.append([
                str(snap.get("name", "")).split("/")[-1],
                format_time_short(snap.get("created_at")) or " ",
                format_time_short(snap.get("expires_at")) or " ",
                yes_no(snap.get("stateful", False)),
            ])
        rows.sort(key=lambda r: r[0])
        text += "\nSnapshots:\n" + render_list("table", ["NAME", "TAKEN AT", "EXPIRES AT", "STATEFUL"], rows, snaps)
    return text


@cmd("info")
@click.argument("name", required=False)
@click.option("--show-log", is_flag=True, help="Show the instance's last 100 log lines?")
@click.option("--resources", is_flag=True, help="Show the resources available to the server")
@click.option("--target", default=None, help="Cluster member name")
@pass_ctx
def info(ctx: Ctx, name: str | None, show_log: bool, resources: bool, target: str | None) -> None:
    """Show instance or server information.

    corral info [<instance>] [--show-log]   instance information
    corral info [--resources]                server information"""
    client = ctx.client
    name = strip_remote(name) if name else name
    if not name:
        if resources:
            click.echo(_resources_text(client.metadata("/1.0/resources") or {}), nl=False)
            return
        click.echo(server_info_yaml(client.server(refresh=True)), nl=False)
        return
    inst = client.metadata(f"/1.0/instances/{q(name)}", params={"recursion": 1}) or {}
    if "state" not in inst or "snapshots" not in inst:
        # Servers without instance recursion: fetch the pieces.
        inst.setdefault("state", client.metadata(f"/1.0/instances/{q(name)}/state") or {})
        if "snapshots" not in inst or inst["snapshots"] is None:
            inst["snapshots"] = client.metadata(f"/1.0/instances/{q(name)}/snapshots",
                                                params={"recursion": 1}) or []
    click.echo(instance_info_text(ctx, inst), nl=False)
    if show_log:
        logname = "qemu.log" if inst.get("type") == "virtual-machine" else "lxc.log"
        with client.raw("GET", f"/1.0/instances/{q(name)}/logs/{logname}") as resp:
            body = resp.read()
            if resp.status != 200:
                client.parse_envelope(resp.status, body)
        click.echo(f"\nLog:\n\n{body.decode('utf-8', 'replace')}")
