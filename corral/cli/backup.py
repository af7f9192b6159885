"""`corral export` / `corral import`: instance backups as tarballs (lxc's export.go and import.go), and
the transfer steps `storage volume export|import` share with them."""

from __future__ import annotations

import datetime as dt
import os

from corral.cli.base import client_of, flag, lxc_command, name_of, option, parse_remote, q
from corral.cli.client import ClientError
from corral.cli.main import Ctx, fail
from corral.cli.progress import LxcProgress, UploadFile, download


def backup_name(op: dict) -> str:
    for urls in (op.get("resources") or {}).values():
        for url in urls or []:
            path = url.split("?", 1)[0]
            if "/backups/" in path:
                return path.rstrip("/").rsplit("/", 1)[-1]
    return ""


def export_backup(ctx: Ctx, client, base: str, body: dict, target: str, kind: str,
                  params: dict | None = None) -> None:
    """Create a backup at ``base``/backups, download it to ``target``, delete it (lxc's flow)."""
    try:
        env = client.post(f"{base}/backups", body, params=params)
    except ClientError as exc:
        fail(f"Create {kind} backup: {exc}")
    progress = LxcProgress(f"Backing up {kind}: %s", quiet=ctx.quiet)
    op_id = env.get("operation") or (env.get("metadata") or {}).get("id")
    try:
        op = client.wait_operation(op_id, progress=progress.update_op)
    except ClientError:
        progress.done("")
        raise
    name = backup_name(op)
    if not name:   # a server not naming the backup in the operation: the newest one
        backups = client.metadata(f"{base}/backups", params={"recursion": 1, **(params or {})}) or []
        backups.sort(key=lambda b: b.get("created_at", ""))
        name = backups[-1]["name"] if backups else ""
    if not name:
        progress.done("")
        fail("The server did not report the backup it made")
    progress.done("")
    progress = LxcProgress("Exporting the backup: %s", quiet=ctx.quiet)
    try:
        with client.raw("GET", f"{base}/backups/{q(name)}/export", params=params) as resp:
            if resp.status != 200:
                client.parse_envelope(resp.status, resp.read())
            tmp = target + ".partial"
            try:
                with open(tmp, "wb") as f:
                    download(resp, f, progress)
                os.replace(tmp, target)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
    except ClientError as exc:
        progress.done("")
        fail(f"Fetch {kind} backup file: {exc}")
    finally:
        try:
            client.run("DELETE", f"{base}/backups/{q(name)}", params=params)
        except ClientError:
            pass
    progress.done("Backup exported successfully!")


def expiry(hours: int = 24) -> str:
    when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=hours)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@lxc_command(None, "export", "[<remote>:]<instance> [target] [--instance-only] [--optimized-storage]",
             "Export instances as backup tarballs.",
             "corral export u1 backup0.tar.gz\n    Download a backup tarball of the u1 instance.",
             min_args=1, max_args=2,
             options=(option("--compression", default="", help="Compression algorithm to use (none for uncompressed)"),
                      flag("--instance-only", help="Whether or not to only backup the instance (without snapshots)"),
                      flag("--optimized-storage",
                           help="Use storage driver optimized format (can only be restored on a similar pool)")))
def export(ctx: Ctx, args: list[str], compression: str, instance_only: bool, optimized_storage: bool) -> None:
    client = client_of(ctx, args[0])
    name = name_of(args[0])
    target = args[1] if len(args) > 1 else "backup.tar.gz"
    body = {"name": "", "expires_at": expiry(), "instance_only": instance_only,
            "container_only": instance_only, "optimized_storage": optimized_storage,
            "compression_algorithm": compression}
    export_backup(ctx, client, f"/1.0/instances/{q(name)}", body, target, "instance")


def upload_backup(ctx: Ctx, client, path: str, url: str, headers: dict, label: str,
                  done_on_error: bool = True) -> dict:
    """POST a backup file with progress; wait for the operation it starts."""
    if not os.path.isfile(path):
        fail(f"open {path}: no such file or directory")
    progress = LxcProgress(f"{label}: %s", quiet=ctx.quiet)
    body = UploadFile(path, progress)
    hdrs = {"Content-Type": "application/octet-stream", "Content-Length": str(body.total), **headers}
    try:
        env = client.request("POST", url, headers=hdrs, body=body)  # type: ignore[arg-type]
        op_id = env.get("operation") or (env.get("metadata") or {}).get("id")
        op = client.wait_operation(op_id, progress=progress.update_op) if op_id else {}
    except ClientError:
        if done_on_error:
            progress.done("")
        raise
    progress.done("")
    return op


@lxc_command(None, "import", "[<remote>:] <backup file> [<instance name>]",
             "Import backups of instances including their snapshots.",
             "corral import backup0.tar.gz\n    Create a new instance using backup0.tar.gz as the source.",
             min_args=1, max_args=3, options=(option("-s", "--storage", default="", help="Storage pool name"),))
def import_(ctx: Ctx, args: list[str], storage: str) -> None:
    remote = None
    if args[0].endswith(":") and len(args) > 1:
        remote, args = args[0], args[1:]
        parse_remote(remote)
    if len(args) > 2:
        fail("Invalid number of arguments")
    client = client_of(ctx, remote) if remote else ctx.client
    headers = {}
    if storage:
        headers["X-LXD-pool"] = storage
    if len(args) > 1:
        headers["X-LXD-name"] = args[1]
    upload_backup(ctx, client, args[0], "/1.0/instances", headers, "Importing instance", done_on_error=False)


__all__ = ["export", "import_", "export_backup", "upload_backup"]
