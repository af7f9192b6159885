"""Instance commands: launch/init, start/stop/restart/pause, delete, list,
info, snapshot/restore, copy/move/rename, publish.  exec/console live in
instance_exec.py and `file` in instance_file.py (re-exported here)."""

from __future__ import annotations

import os
import re
import stat
import sys
from typing import Any, Callable

import click

from corral.cli.client import ClientError
from corral.cli.config import q, split_snapshot
from corral.cli.edit import devices_map, go_string, parse_yaml, string_map
from corral.cli.main import CONTEXT_SETTINGS, Ctx, fail, parse_key_values, pass_ctx, strip_remote
from corral.cli.output import (
    FORMATS,
    OpProgress,
    format_bytes,
    format_bytes_iec,
    format_time_short,
    print_list,
    render_list,
    to_yaml,
    yes_no,
)

command = click.command


def cmd(name: str, **kw: Any):
    kw.setdefault("context_settings", CONTEXT_SETTINGS)
    return click.command(name, **kw)


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def wait_op(ctx: Ctx, env: dict, label: str = "", quiet: bool | None = None) -> dict:
    """Wait for the operation of an async response (with progress)."""
    if env.get("type") != "async":
        return env.get("metadata") or {}
    op = env.get("operation") or (env.get("metadata") or {}).get("id")
    quiet = ctx.quiet if quiet is None else quiet
    if label:
        with OpProgress(label, quiet=quiet) as progress:
            return ctx.client.wait_operation(op, progress=progress.update)
    return ctx.client.wait_operation(op)


def stdin_is_data() -> bool:
    """True when stdin is a pipe or a file that may hold YAML (like lxc's
    `lxc launch IMAGE NAME < config.yaml`)."""
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):
        return False
    if os.isatty(fd):
        return False
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISREG(mode)


def instance_names(ctx: Ctx) -> list[str]:
    urls = ctx.client.metadata("/1.0/instances") or []
    return [u.rstrip("/").rsplit("/", 1)[-1] for u in urls]


def resolve_image(ctx: Ctx, image: str) -> dict:
    """An image source for POST /1.0/instances from an alias or fingerprint."""
    image = strip_remote(image)
    try:
        alias = ctx.client.metadata(f"/1.0/images/aliases/{q(image)}")
        if alias and alias.get("target"):
            return {"type": "image", "alias": image}
    except ClientError:
        pass
    try:
        img = ctx.client.metadata(f"/1.0/images/{q(image)}")
    except ClientError:
        fail("Image not found")
    return {"type": "image", "fingerprint": img.get("fingerprint", image)}


def batch(names: list[str], action: Callable[[str], None], verb: str) -> None:
    """Run ``action`` per name; report failures like lxc's runBatch."""
    if len(names) == 1:
        action(names[0])
        return
    failed = False
    for name in names:
        try:
            action(name)
        except ClientError as exc:
            failed = True
            for line in f"error: {exc}".split("\n"):
                sys.stderr.write(f"{name}: {line}\n")
    if failed:
        sys.stderr.write("\n")
        fail(f"Some instances failed to {verb}")


# --------------------------------------------------------------------------
# launch / init
# --------------------------------------------------------------------------


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
    client = ctx.client
    req: dict[str, Any] = {}
    if name:
        req["name"] = strip_remote(name)
    if opts.get("empty") or not image:
        if image and opts.get("empty"):
            pass
        req["source"] = {"type": "none"}
    else:
        req["source"] = resolve_image(ctx, image)

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
    created = name and strip_remote(name)
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
        from corral.cli.instance_exec import attach_console

        attach_console(ctx, created)


# --------------------------------------------------------------------------
# start / stop / restart / pause
# --------------------------------------------------------------------------


def change_state(ctx: Ctx, name: str, action: str, force: bool = False, timeout: int = -1,
                 stateful: bool = False, hint: bool = False) -> None:
    """PUT .../state and wait.  With ``hint``, a failed operation suggests
    looking at the log (like lxc start)."""
    body = {"action": action, "timeout": timeout, "force": force, "stateful": stateful}
    env = ctx.client.put(f"/1.0/instances/{q(name)}/state", body)
    try:
        wait_op(ctx, env)
    except ClientError as exc:
        if hint:
            raise ClientError(f"{exc}\nTry `corral info --show-log {name}` for more info") from None
        raise


def state_command(cmd_name: str, action: str, verb: str, doc: str, with_stop_flags: bool = False):
    def run(ctx: Ctx, names: tuple[str, ...], all_: bool, force: bool = False, timeout: int = -1,
            stateful: bool = False, stateless: bool = False) -> None:
        targets = [strip_remote(n) for n in names]
        if all_:
            if targets:
                fail("Both --all and instance name given")
            targets = instance_names(ctx)
            if not targets:
                return
        if not targets:
            fail("Invalid number of arguments")

        def one(name: str) -> None:
            act = action
            if action == "start":
                state = ctx.client.metadata(f"/1.0/instances/{q(name)}/state") or {}
                if state.get("status") == "Frozen" or state.get("status_code") == 110:
                    act = "unfreeze"
            change_state(ctx, name, act, force=force, timeout=timeout, stateful=stateful,
                         hint=action == "start")

        batch(targets, one, verb)

    params = [
        click.Argument(["names"], nargs=-1),
        click.Option(["--all", "all_"], is_flag=True, help="Run against all instances"),
    ]
    if with_stop_flags:
        params += [
            click.Option(["-f", "--force"], is_flag=True, help="Force the instance to stop"),
            click.Option(["--timeout"], type=int, default=-1, show_default=True,
                         help="Time to wait for the instance to shutdown cleanly"),
            click.Option(["--stateful"], is_flag=True, help="Store the instance state"),
        ]
    if action == "start":
        params.append(click.Option(["--stateless"], is_flag=True, help="Ignore the instance state"))
    return click.Command(cmd_name, callback=click.pass_obj(run), params=params, help=doc,
                         context_settings=CONTEXT_SETTINGS)


start = state_command("start", "start", "start", "Start instances.")
stop = state_command("stop", "stop", "stop", "Stop instances.", with_stop_flags=True)
restart = state_command("restart", "restart", "restart", "Restart instances.", with_stop_flags=True)
pause = state_command("pause", "freeze", "pause", "Pause instances.")


# --------------------------------------------------------------------------
# delete
# --------------------------------------------------------------------------


@cmd("delete")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force the removal of running instances")
@click.option("-i", "--interactive", is_flag=True, help="Require user confirmation")
@pass_ctx
def delete(ctx: Ctx, names: tuple[str, ...], force: bool, interactive: bool) -> None:
    """Delete instances and snapshots."""
    client = ctx.client

    def one(full: str) -> None:
        if interactive:
            answer = click.prompt(f"Remove {full} (yes/no)", default="", show_default=False)
            if answer.strip().lower() not in ("y", "yes"):
                fail("User aborted delete operation")
        inst, snap = split_snapshot(full)
        if snap is not None:
            wait_op(ctx, client.delete(f"/1.0/instances/{q(inst)}/snapshots/{q(snap)}"))
            return
        state = client.metadata(f"/1.0/instances/{q(inst)}/state") or {}
        if str(state.get("status", "")).lower() not in ("stopped", ""):
            if not force:
                fail("The instance is currently running, stop it first or pass --force")
            change_state(ctx, inst, "stop", force=True)
        wait_op(ctx, client.delete(f"/1.0/instances/{q(inst)}"))

    batch(list(names), one, "delete")


# --------------------------------------------------------------------------
# list
# --------------------------------------------------------------------------


def _active(inst: dict) -> bool:
    state = inst.get("state") or {}
    return bool(state) and str(inst.get("status", "")).lower() not in ("stopped", "error", "")


def _ips(inst: dict, family: str) -> str:
    if not _active(inst):
        return ""
    out = []
    for ifname, net in sorted(((inst.get("state") or {}).get("network") or {}).items()):
        if net.get("type") == "loopback":
            continue
        for addr in net.get("addresses") or []:
            if addr.get("scope") in ("link", "local"):
                continue
            if addr.get("family") == family:
                out.append(f"{addr.get('address')} ({ifname})")
    out.sort(reverse=True)
    return "\n".join(out)


def _type(inst: dict) -> str:
    text = str(inst.get("type") or "container").upper()
    if inst.get("ephemeral"):
        text += " (EPHEMERAL)"
    return text


def _root_pool(inst: dict) -> str:
    for dev in (inst.get("expanded_devices") or {}).values():
        if dev.get("type") == "disk" and dev.get("path") == "/":
            return dev.get("pool", "")
    return ""


def _state(inst: dict) -> dict:
    return inst.get("state") or {}


def _mem(inst: dict) -> str:
    usage = (_state(inst).get("memory") or {}).get("usage") or 0
    return format_bytes_iec(usage) if _active(inst) and usage else ""


def _mem_pct(inst: dict) -> str:
    mem = _state(inst).get("memory") or {}
    usage, total = mem.get("usage") or 0, mem.get("total") or 0
    return f"{usage / total * 100:.2f}%" if _active(inst) and total else ""


def _disk(inst: dict) -> str:
    root = (_state(inst).get("disk") or {}).get("root") or {}
    return format_bytes_iec(root["usage"]) if root.get("usage") else ""


def _cpu(inst: dict) -> str:
    usage = (_state(inst).get("cpu") or {}).get("usage") or 0
    return f"{usage // 1000000000}s" if _active(inst) and usage else ""


COLUMNS: dict[str, tuple[str, Callable[[dict], str]]] = {
    "4": ("IPV4", lambda i: _ips(i, "inet")),
    "6": ("IPV6", lambda i: _ips(i, "inet6")),
    "a": ("ARCHITECTURE", lambda i: i.get("architecture", "")),
    "b": ("STORAGE POOL", _root_pool),
    "c": ("CREATED AT", lambda i: format_time_short(i.get("created_at"))),
    "d": ("DESCRIPTION", lambda i: i.get("description", "")),
    "D": ("DISK USAGE", _disk),
    "e": ("PROJECT", lambda i: i.get("project", "")),
    "f": ("BASE IMAGE", lambda i: (i.get("config") or {}).get("volatile.base_image", "")[:12]),
    "F": ("BASE IMAGE", lambda i: (i.get("config") or {}).get("volatile.base_image", "")),
    "l": ("LAST USED AT", lambda i: format_time_short(i.get("last_used_at"))),
    "L": ("LOCATION", lambda i: i.get("location", "")),
    "m": ("MEMORY USAGE", _mem),
    "M": ("MEMORY USAGE%", _mem_pct),
    "n": ("NAME", lambda i: i.get("name", "")),
    "N": ("PROCESSES", lambda i: str(_state(i).get("processes", "")) if _active(i) else ""),
    "p": ("PID", lambda i: str(_state(i).get("pid", "")) if _active(i) else ""),
    "P": ("PROFILES", lambda i: "\n".join(i.get("profiles") or [])),
    "s": ("STATE", lambda i: str(i.get("status", "")).upper()),
    "S": ("SNAPSHOTS", lambda i: str(len(i.get("snapshots") or []))),
    "t": ("TYPE", _type),
    "u": ("CPU USAGE", _cpu),
}

DEFAULT_COLUMNS = "ns46tSL"
FAST_COLUMNS = "nsacPt"


def parse_columns(spec: str, clustered: bool, default: bool) -> list[tuple[str, Callable[[dict], str]]]:
    """lxc's -c: shorthand letters, and comma separated entries; an entry with
    a '.' is a custom column [config:|devices:]KEY[:NAME[:MAXWIDTH]]."""
    if default and not clustered:
        spec = spec.replace("L", "")
    cols: list[tuple[str, Callable[[dict], str]]] = []
    for entry in spec.split(","):
        if not entry:
            fail(f"Empty column entry (redundant, leading or trailing command) in '{spec}'")
        if "." in entry:
            cols.append(_custom_column(entry))
            continue
        for letter in entry:
            if letter not in COLUMNS:
                fail(f"Unknown column shorthand char '{letter}' in '{entry}'")
            cols.append(COLUMNS[letter])
    return cols


def _custom_column(entry: str) -> tuple[str, Callable[[dict], str]]:
    kind = "config"
    body = entry
    for prefix in ("config:", "devices:"):
        if entry.startswith(prefix):
            kind, body = prefix[:-1], entry[len(prefix):]
    parts = body.split(":")
    if len(parts) > 3:
        fail(f"Invalid config key column format (too many fields): '{entry}'")
    key = parts[0]
    if not key:
        fail(f"Invalid config key column format: '{entry}'")
    name = parts[1] if len(parts) > 1 and parts[1] else key.upper().replace(".", " ")
    width = 0
    if len(parts) == 3 and parts[2]:
        try:
            width = int(parts[2])
        except ValueError:
            fail(f"Invalid max width (must be an integer) '{parts[2]}' in '{entry}'")

    def getter(inst: dict) -> str:
        if kind == "devices":
            dev, _, dkey = key.partition(".")
            value = ((inst.get("expanded_devices") or {}).get(dev) or {}).get(dkey, "")
        else:
            value = (inst.get("expanded_config") or {}).get(key, (inst.get("config") or {}).get(key, ""))
        return value[:width] if width > 0 else value

    return name, getter


def _filter_match(inst: dict, filters: tuple[str, ...]) -> bool:
    for flt in filters:
        if "=" in flt:
            key, value = flt.split("=", 1)
            if key in ("status", "state"):
                if str(inst.get("status", "")).lower() != value.lower():
                    return False
                continue
            if key == "type":
                if str(inst.get("type", "")).lower() != value.lower():
                    return False
                continue
            cfg = inst.get("expanded_config") or inst.get("config") or {}
            if cfg.get(key) != value:
                return False
        else:
            name = inst.get("name", "")
            try:
                if re.match(flt, name) is None and not name.startswith(flt):
                    return False
            except re.error:
                if not name.startswith(flt):
                    return False
    return True


@cmd("list")
@click.argument("filters", nargs=-1)
@click.option("-c", "--columns", default=DEFAULT_COLUMNS, show_default=True, help="Columns")
@click.option("--fast", is_flag=True, help="Fast mode (same as --columns=nsacPt)")
@click.option("-f", "--format", "fmt", default="table", type=click.Choice(FORMATS), show_default=True,
              help="Format (csv|json|table|yaml|compact)")
@click.option("--all-projects", is_flag=True, help="Display instances from all projects")
@pass_ctx
def list_(ctx: Ctx, filters: tuple[str, ...], columns: str, fast: bool, fmt: str, all_projects: bool) -> None:
    """List instances.

    Default columns: ns46tSL (name, state, IPv4, IPv6, type, snapshots,
    location when clustered).  Column letters: 4 6 a b c d D e f F l L m M n
    N p P s S t u, or custom KEY[:NAME[:MAXWIDTH]] entries."""
    client = ctx.client
    params: dict[str, Any] = {"recursion": 2}
    if all_projects:
        params["all-projects"] = "true"
    instances = client.metadata("/1.0/instances", params=params) or []
    instances = [i for i in instances if _filter_match(i, filters)]
    instances.sort(key=lambda i: i.get("name", ""))
    if fast:
        columns = FAST_COLUMNS
    default = columns == DEFAULT_COLUMNS
    clustered = client.is_clustered() if "L" in columns and fmt in ("table", "compact", "csv") else False
    cols = parse_columns(columns, clustered, default)
    if all_projects and default:
        cols.insert(0, COLUMNS["e"])
    headers = [c[0] for c in cols]
    rows = [[getter(inst) for _, getter in cols] for inst in instances]
    if fmt in ("json", "yaml"):
        click.echo(render_list(fmt, headers, rows, instances) if fmt == "json" else to_yaml(instances, typed=True),
                   nl=False)
        return
    print_list(fmt, headers, rows, instances)


# --------------------------------------------------------------------------
# info
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# snapshot / restore
# --------------------------------------------------------------------------


@cmd("snapshot")
@click.argument("name")
@click.argument("snapshot_name", required=False)
@click.option("--stateful", is_flag=True, help="Whether or not to snapshot the instance's running state")
@click.option("--reuse", is_flag=True, help="If the snapshot name already exists, delete and create a new one")
@click.option("--no-expiry", is_flag=True, help="Ignore any configured auto-expiry for the instance")
@pass_ctx
def snapshot(ctx: Ctx, name: str, snapshot_name: str | None, stateful: bool, reuse: bool, no_expiry: bool) -> None:
    """Create instance snapshots: corral snapshot INSTANCE [SNAPSHOT]."""
    client = ctx.client
    name = strip_remote(name)
    if snapshot_name and "/" in snapshot_name:
        fail("Snapshot names can't contain '/'")
    req: dict[str, Any] = {"stateful": stateful}
    if snapshot_name:
        req["name"] = snapshot_name
    if no_expiry:
        req["expires_at"] = "0001-01-01T00:00:00Z"
    if reuse and snapshot_name:
        try:
            client.metadata(f"/1.0/instances/{q(name)}/snapshots/{q(snapshot_name)}")
        except ClientError:
            pass
        else:
            wait_op(ctx, client.delete(f"/1.0/instances/{q(name)}/snapshots/{q(snapshot_name)}"))
    wait_op(ctx, client.post(f"/1.0/instances/{q(name)}/snapshots", req))


@cmd("restore")
@click.argument("name")
@click.argument("snapshot_name")
@click.option("--stateful", is_flag=True, help="Whether or not to restore the instance's running state from snapshot")
@pass_ctx
def restore(ctx: Ctx, name: str, snapshot_name: str, stateful: bool) -> None:
    """Restore instances from snapshots: corral restore INSTANCE SNAPSHOT."""
    name = strip_remote(name)
    if "/" in snapshot_name:
        snapshot_name = snapshot_name.split("/", 1)[1]
    env = ctx.client.put(f"/1.0/instances/{q(name)}", {"restore": snapshot_name, "stateful": stateful})
    wait_op(ctx, env)


# --------------------------------------------------------------------------
# copy / move / rename
# --------------------------------------------------------------------------


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


@cmd("move")
@click.argument("source")
@click.argument("destination")
@click.option("--instance-only", is_flag=True, help="Move the instance without its snapshots")
@click.option("-s", "--storage", default=None, help="Storage pool name")
@click.option("--stateless", is_flag=True, help="Copy a stateful instance stateless")
@click.option("--target-project", default=None, help="Copy to a project different from the source")
@click.option("--mode", default="pull", help="Transfer mode (only local moves are supported)")
@click.option("--target", default=None, help="Cluster member name")
@pass_ctx
def move(ctx: Ctx, source: str, destination: str, instance_only: bool, storage: str | None, stateless: bool,
         target_project: str | None, mode: str, target: str | None) -> None:
    """Move or rename instances and snapshots within the server."""
    rename_or_move(ctx, source, destination, storage=storage, target_project=target_project,
                   instance_only=instance_only)


def rename_or_move(ctx: Ctx, source: str, destination: str, storage: str | None = None,
                   target_project: str | None = None, instance_only: bool = False) -> None:
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
                                          instance_only=instance_only), keep_volatile=True)
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


# --------------------------------------------------------------------------
# publish
# --------------------------------------------------------------------------


@cmd("publish")
@click.argument("name")
@click.argument("properties", nargs=-1)
@click.option("--alias", "aliases", multiple=True, help="New alias to define at target")
@click.option("--compression", default=None, help="Compression algorithm to use (none for uncompressed)")
@click.option("--expire", default=None, help="Image expiration date (format: rfc3339)")
@click.option("-f", "--force", is_flag=True, help="Stop the instance if currently running")
@click.option("--public", is_flag=True, help="Make the image public")
@pass_ctx
def publish(ctx: Ctx, name: str, properties: tuple[str, ...], aliases: tuple[str, ...], compression: str | None,
            expire: str | None, force: bool, public: bool) -> None:
    """Publish instances as images: corral publish INSTANCE[/SNAPSHOT] [key=value...]."""
    client = ctx.client
    props = list(properties)
    if props and props[0] in ("local:", ":"):
        props = props[1:]
    inst, snap = split_snapshot(name)
    restart_after = False
    if snap is None:
        state = client.metadata(f"/1.0/instances/{q(inst)}/state") or {}
        if str(state.get("status", "")).lower() == "running":
            if not force:
                fail("The instance is currently running. Use --force to have it stopped and restarted")
            change_state(ctx, inst, "stop", force=True)
            restart_after = True
    req: dict[str, Any] = {
        "source": {"type": "snapshot" if snap is not None else "instance",
                   "name": f"{inst}/{snap}" if snap is not None else inst},
        "public": public,
        "properties": parse_key_values(props, stdin_dash=False) if props else {},
    }
    if compression:
        req["compression_algorithm"] = compression
    if expire:
        req["expires_at"] = expire
    try:
        env = client.post("/1.0/images", req)
        op = wait_op(ctx, env, "Publishing instance")
    finally:
        if restart_after:
            change_state(ctx, inst, "start")
    fingerprint = (op.get("metadata") or {}).get("fingerprint", "")
    from corral.cli.image import ensure_aliases

    ensure_aliases(ctx, fingerprint, list(aliases))
    click.echo(f"Instance published with fingerprint: {fingerprint}")


# exec / console / file are implemented in their own modules.
from corral.cli.instance_exec import console, exec_  # noqa: E402
from corral.cli.instance_file import file  # noqa: E402

__all__ = [
    "copy", "console", "delete", "exec_", "file", "info", "init", "launch", "list_", "move", "pause",
    "publish", "rename", "restart", "restore", "snapshot", "start", "stop",
]
