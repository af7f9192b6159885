"""`corrald init`: LXD 5.0.2's `lxd init` flags (--auto with its options, --minimal, --preseed, --dump).
The interactive mode (no flag) is not implemented: it says so."""
from __future__ import annotations

import sys

import click
import yaml

from corral.lxdcmd.cli import CONTEXT, client, fail, global_options, setup_client_logging


@click.command(context_settings=CONTEXT, short_help="Configure the LXD daemon",
               epilog="Examples:\n  init --minimal\n  init --auto [--network-address=IP] [--network-port=8443] "
                      "[--storage-backend=dir]\n              [--storage-create-device=DEVICE] "
                      "[--storage-create-loop=SIZE]\n              [--storage-pool=POOL] [--trust-password=PASSWORD]\n"
                      "  init --preseed\n  init --dump")
@click.option("--auto", is_flag=True, help="Automatic (non-interactive) mode")
@click.option("--dump", is_flag=True, help="Dump YAML config to stdout")
@click.option("--minimal", is_flag=True, help="Minimal configuration (non-interactive)")
@click.option("--network-address", default="", help="Address to bind LXD to (default: none)")
@click.option("--network-port", default=-1, type=int, help="Port to bind LXD to (default: 8443)")
@click.option("--preseed", is_flag=True, help="Pre-seed mode, expects YAML config from stdin")
@click.option("--storage-backend", default="", help="Storage backend to use (btrfs, dir, lvm or zfs, default: dir)")
@click.option("--storage-create-device", default="", help="Setup device based storage using DEVICE")
@click.option("--storage-create-loop", default=-1, type=int, help="Setup loop based storage with SIZE in GB")
@click.option("--storage-pool", default="", help="Storage pool to use or create (its source)")
@click.option("--trust-password", default="", help="Password required to add new clients")
@global_options
def init(auto, dump, minimal, network_address, network_port, preseed, storage_backend, storage_create_device,
         storage_create_loop, storage_pool, trust_password) -> None:
    """Description:
    Configure the LXD daemon"""
    from corral import client as rest
    from corral.preseed import apply_preseed, auto_preseed, cluster_request, parse_preseed, remote_certificate
    setup_client_logging()
    auto_flags = bool(network_address or network_port != -1 or storage_backend or storage_create_device
                      or storage_create_loop != -1 or storage_pool or trust_password)
    if auto and preseed:
        fail("Can't use --auto and --preseed together")
    if minimal and preseed:
        fail("Can't use --minimal and --preseed together")
    if minimal and auto:
        fail("Can't use --minimal and --auto together")
    if auto_flags and not auto:
        fail("Configuration flags require --auto")
    if dump and (auto or preseed or minimal):
        fail("Can't use --dump with other flags")
    if not (auto or preseed or minimal or dump):
        fail("not implemented: interactive `init` (use --auto, --minimal, --preseed or --dump)")
    if auto:
        backend = storage_backend or "dir"
        if backend not in ("btrfs", "dir", "lvm", "zfs"):
            fail(f"The requested backend '{backend}' isn't supported by lxd init")
        if backend not in ("btrfs", "dir"):
            fail(f"The requested backend '{backend}' isn't available on your system (missing tools)")
        if backend == "dir" and (storage_pool or storage_create_device or storage_create_loop != -1):
            fail("None of --storage-pool, --storage-create-device or --storage-create-loop may be used with "
                 "the 'dir' backend")
        if storage_create_device and storage_create_loop != -1:
            fail("Only one of --storage-create-device or --storage-create-loop can be specified")
        if not network_address and network_port != -1:
            fail("--network-port can't be used without --network-address")
        if not network_address and trust_password:
            fail("--trust-password can't be used without --network-address")
    try:
        c = client()
        if dump:
            click.echo(yaml.safe_dump(_dump(c), default_flow_style=False, sort_keys=False))   # + a blank line
            return
        join = None
        if preseed:
            doc = parse_preseed(sys.stdin.read())
            join = cluster_request(doc, get_certificate=remote_certificate)
        else:
            doc = auto_preseed(c)
            _auto_options(c, doc, network_address, network_port, storage_backend, storage_create_device,
                          storage_create_loop, storage_pool, trust_password)
        # As `lxd init`: a join is the cluster request alone (the cluster has the rest); a bootstrap
        # applies the rest of the preseed first, then enables clustering.
        if join is None or not join["cluster_address"]:
            apply_preseed(c, doc)
        if join is not None:
            c.run("PUT", "/1.0/cluster", join)
    except (rest.ClientError, OSError, ValueError, yaml.YAMLError) as e:
        fail(str(e))


def _auto_options(c, doc, address, port, backend, device, loop, pool, password) -> None:
    cfg = doc.setdefault("config", {})
    if address:
        host = f"[{address}]" if ":" in address and not address.startswith("[") else address
        cfg["core.https_address"] = f"{host}:{port if port != -1 else 8443}"
    if password:
        cfg["core.trust_password"] = password
    p = doc["storage_pools"][0]
    if backend:
        p["driver"] = backend
    # LXD's --auto: the pool is "default"; a device, a loop size or an existing source for it
    if device:
        p["config"]["source"] = device
    elif loop != -1:
        p["config"]["size"] = f"{loop}GiB"
    elif pool:
        p["config"]["source"] = pool


def _dump(c) -> dict:
    """The server's configuration as a preseed document (LXD's `init --dump`)."""
    server = c.metadata("/1.0")
    nets = [n for n in c.metadata("/1.0/networks", params={"recursion": "1"}) or [] if n.get("managed")]
    pools = c.metadata("/1.0/storage-pools", params={"recursion": "1"}) or []
    profiles = c.metadata("/1.0/profiles", params={"recursion": "1"}) or []
    projects = c.metadata("/1.0/projects", params={"recursion": "1"}) or []
    return {
        "config": server.get("config") or {},
        "networks": [{"config": n.get("config") or {}, "description": n.get("description") or "",
                      "name": n["name"], "type": n.get("type") or "", "project": "default"} for n in nets],
        "storage_pools": [{"config": p.get("config") or {}, "description": p.get("description") or "",
                           "name": p["name"], "driver": p.get("driver") or ""} for p in pools],
        "profiles": [{"config": p.get("config") or {}, "description": p.get("description") or "",
                      "devices": p.get("devices") or {}, "name": p["name"]} for p in profiles],
        "projects": [{"config": p.get("config") or {}, "description": p.get("description") or "",
                      "name": p["name"]} for p in projects],
    }
