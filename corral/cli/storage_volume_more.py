"""`corral storage volume list` (with -c, filters, --all-projects), `export`, `import`, `attach-profile`
and `detach-profile` (lxc's storage_volume.go); the other volume commands are storage_volume.py."""

from __future__ import annotations

from corral.cli.backup import expiry, export_backup, upload_backup
from corral.cli.base import client_of, flag, format_opt, lxc_command, name_of, option, q
from corral.cli.client import ClientError
from corral.cli.main import Ctx, fail
from corral.cli.output import format_bytes_iec, print_list
from corral.cli.storage_volume import volume

LIST_HELP = """List storage volumes.

\b
The -c option takes a (optionally comma-separated) list of arguments
that control which image attributes to output when displaying in table
or csv format.

\b
Column shorthand chars:
    c - Content type (filesystem or block)
    d - Description
    e - Project name
    L - Location of the instance (e.g. its cluster member)
    n - Name
    t - Type of volume (custom, image, container or virtual-machine)
    u - Number of references (used by)
    U - Current disk usage"""

DEFAULT_COLUMNS = "etndcuL"


def _usage(client, pool: str, v: dict) -> str:
    try:
        state = client.metadata(f"/1.0/storage-pools/{q(pool)}/volumes/{v['type']}/{q(v['name'])}/state",
                                params={"project": v.get("project")} if v.get("project") else None) or {}
    except ClientError:
        return ""
    used = (state.get("usage") or {}).get("used")
    return format_bytes_iec(used) if used is not None else ""


def _matches(v: dict, filters: list[str]) -> bool:
    for f in filters:
        if "=" not in f:
            continue   # lxc 5.0 only filters on key=value
        key, value = f.split("=", 1)
        if key in v and not isinstance(v[key], (dict, list)):
            if str(v[key]) != value:
                return False
        elif (v.get("config") or {}).get(key) != value:
            return False
    return True


@lxc_command(volume, "list", "[<remote>:]<pool> [<filter>...]", LIST_HELP,
             "corral storage volume list default\n    List the volumes of the pool default.\n\n"
             "corral storage volume list default type=custom -c nU\n    Names and usage of its custom volumes.",
             aliases=("ls",), min_args=1,
             options=(flag("--all-projects", help="All projects"),
                      option("-c", "--columns", default=DEFAULT_COLUMNS, show_default=True, help="Columns"),
                      format_opt()))
def volume_list(ctx: Ctx, args: list[str], all_projects: bool, columns: str, fmt: str) -> None:
    client = client_of(ctx, args[0])
    pool = name_of(args[0])
    clustered = client.is_clustered()
    cols: list[tuple[str, object]] = []
    table = {
        "c": ("CONTENT-TYPE", lambda v: v.get("content_type") or "filesystem"),
        "d": ("DESCRIPTION", lambda v: v.get("description", "")),
        "e": ("PROJECT", lambda v: v.get("project", "")),
        "L": ("LOCATION", lambda v: v.get("location", "")),
        "n": ("NAME", lambda v: v.get("name", "")),
        "t": ("TYPE", lambda v: v.get("type", "")),
        "u": ("USED BY", lambda v: str(len(v.get("used_by") or []))),
        "U": ("USAGE", lambda v: _usage(client, pool, v)),
    }
    for char in columns.replace(",", ""):
        if char not in table:
            fail(f"Unknown column shorthand char '{char}' in '{columns}'")
        if columns == DEFAULT_COLUMNS and ((char == "e" and not all_projects) or (char == "L" and not clustered)):
            continue
        if char == "L" and not clustered:
            fail("Can't specify column L when not clustered")
        cols.append(table[char])
    params = {"recursion": 1}
    if all_projects:
        params["all-projects"] = "true"
    vols = client.metadata(f"/1.0/storage-pools/{q(pool)}/volumes", params=params) or []
    vols = [v for v in vols if _matches(v, args[1:])]
    vols.sort(key=lambda v: (v.get("project", ""), v.get("type", ""), v.get("name", "")) if all_projects
              else (v.get("type", ""), v.get("name", "")))
    rows = [[fn(v) for _, fn in cols] for v in vols]  # type: ignore[operator]
    print_list(fmt, [h for h, _ in cols], rows, vols)


@lxc_command(volume, "export", "[<remote>:]<pool> <volume> [<path>]", "Export custom storage volume.",
             "corral storage volume export default data data.tar.gz\n    Download a backup of the volume data.",
             min_args=2, max_args=3,
             options=(option("--compression", default="", help="Define a compression algorithm: for backup or none"),
                      flag("--optimized-storage",
                           help="Use storage driver optimized format (can only be restored on a similar pool)"),
                      option("--target", default="", help="Cluster member name"),
                      flag("--volume-only", help="Export the volume without its snapshots")))
def volume_export(ctx: Ctx, args: list[str], compression: str, optimized_storage: bool, target: str,
                  volume_only: bool) -> None:
    client = client_of(ctx, args[0])
    pool = name_of(args[0])
    base = f"/1.0/storage-pools/{q(pool)}/volumes/custom/{q(args[1])}"
    body = {"name": "", "expires_at": expiry(), "volume_only": volume_only, "optimized_storage": optimized_storage,
            "compression_algorithm": compression}
    try:
        export_backup(ctx, client, base, body, args[2] if len(args) > 2 else "backup.tar.gz", "storage volume",
                      params={"target": target} if target else None)
    except ClientError as exc:
        raise ClientError(str(exc).replace("Create storage volume backup:",
                                           "Failed to create storage volume backup:")) from None


@lxc_command(volume, "import", "[<remote>:]<pool> <backup file> [<volume name>]",
             "Import backups of custom volumes including their snapshots.",
             "corral storage volume import default backup0.tar.gz\n"
             "    Create a new custom volume using backup0.tar.gz as the source.", min_args=2, max_args=3,
             options=(option("--target", default="", help="Cluster member name"),))
def volume_import(ctx: Ctx, args: list[str], target: str) -> None:
    client = client_of(ctx, args[0])
    pool = name_of(args[0])
    headers = {"X-LXD-name": args[2]} if len(args) > 2 else {}
    url = f"/1.0/storage-pools/{q(pool)}/volumes/custom" + (f"?target={q(target)}" if target else "")
    upload_backup(ctx, client, args[1], url, headers, "Importing custom volume", done_on_error=False)


def _profile(ctx: Ctx, name: str):
    from corral.cli.config import ProfileTarget
    target = ProfileTarget(ctx, name)
    target.fetch()
    return target


@lxc_command(volume, "attach-profile", "[<remote:>]<pool> <volume> <profile> [<device name>] [<path>]",
             "Attach new storage volumes to profiles.",
             "corral storage volume attach-profile default data default data /mnt/data\n"
             "    Mount the volume data at /mnt/data in every instance using the default profile.",
             min_args=3, max_args=5)
def volume_attach_profile(ctx: Ctx, args: list[str]) -> None:
    pool, vol, profile = name_of(args[0]), args[1], args[2]
    if len(args) == 3:
        dev_name, path = vol, ""
    elif len(args) == 4:
        dev_name, path = vol, args[3]
    else:
        dev_name, path = args[3], args[4]
    target = _profile(ctx, profile)
    w = target.writable()
    devices = dict(w.get("devices") or {})
    if dev_name in devices:
        fail("The device already exists")
    device = {"type": "disk", "pool": pool, "source": vol}
    if path:
        device["path"] = path
    devices[dev_name] = device
    w["devices"] = devices
    target.update(w)


@lxc_command(volume, "detach-profile", "[<remote:>]<pool> <volume> <profile> [<device name>]",
             "Detach storage volumes from profiles.",
             "corral storage volume detach-profile default data default\n"
             "    Remove the volume data from the default profile.", min_args=3, max_args=4)
def volume_detach_profile(ctx: Ctx, args: list[str]) -> None:
    pool, vol, profile = name_of(args[0]), args[1], args[2]
    target = _profile(ctx, profile)
    w = target.writable()
    devices = dict(w.get("devices") or {})
    if len(args) == 4:
        if args[3] not in devices:
            fail("The specified device doesn't exist")
        name = args[3]
    else:
        names = [n for n, d in devices.items() if d.get("type") == "disk" and d.get("pool") == pool
                 and d.get("source") == vol]
        if not names:
            fail("No device found for this storage volume")
        if len(names) > 1:
            fail("More than one device matches, specify the device name")
        name = names[0]
    del devices[name]
    w["devices"] = devices
    target.update(w)


__all__ = ["volume_list"]
