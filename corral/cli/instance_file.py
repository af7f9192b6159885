"""`corral file push/pull/delete/edit`: /1.0/instances/NAME/files?path=...

Uploads are POSTs with X-LXD-uid/gid/mode/type/write headers; downloads
are GETs answered with the raw file (X-LXD-type: file or symlink) or a JSON
list of entries (X-LXD-type: directory)."""

from __future__ import annotations

import os
import posixpath
import stat
import sys
from typing import Any

import click

from corral.cli.client import Client
from corral.cli.config import q
from corral.cli.main import CONTEXT_SETTINGS, Ctx, fail, group, pass_ctx, strip_remote


def split_target(spec: str) -> tuple[str, str]:
    """'INSTANCE/path' -> (INSTANCE, '/path')."""
    spec = strip_remote(spec)
    if "/" not in spec:
        fail(f"Invalid target {spec}")
    name, path = spec.split("/", 1)
    if not name:
        fail(f"Invalid target {spec}")
    return name, "/" + path


def files_path(name: str) -> str:
    return f"/1.0/instances/{q(name)}/files"


class Files:
    """File operations on one instance."""

    def __init__(self, client: Client, name: str):
        self.client = client
        self.name = name
        self.path = files_path(name)

    def push(self, path: str, body: Any, ftype: str = "file", uid: int = 0, gid: int = 0,
             mode: int = 0o644, append: bool = False) -> None:
        headers = {
            "Content-Type": "application/octet-stream",
            "X-LXD-type": ftype,
            "X-LXD-uid": str(uid),
            "X-LXD-gid": str(gid),
            "X-LXD-mode": f"{mode:04o}",
            "X-LXD-write": "append" if append else "overwrite",
        }
        if isinstance(body, (bytes, bytearray)):
            headers["Content-Length"] = str(len(body))
        elif hasattr(body, "fileno"):
            try:
                headers["Content-Length"] = str(os.fstat(body.fileno()).st_size - body.tell())
            except (OSError, ValueError):
                body = body.read()
        self.client.request("POST", self.path, headers=headers, body=body, params={"path": path})

    def stat(self, path: str) -> str | None:
        """The remote type of ``path`` ('file', 'directory', 'symlink') or None."""
        with self.client.raw("GET", self.path, params={"path": path}) as resp:
            if resp.status == 404:
                return None
            resp.read()
            if resp.status != 200:
                return None
            return (resp.headers.get("X-LXD-type") or "file").lower()

    def mkdir_p(self, path: str, uid: int = 0, gid: int = 0, mode: int = 0o755) -> None:
        parts = [p for p in path.split("/") if p]
        current = ""
        for part in parts:
            current += "/" + part
            kind = self.stat(current)
            if kind is None:
                self.push(current, b"", ftype="directory", uid=uid, gid=gid, mode=mode)
            elif kind != "directory" and current != "/" + "/".join(parts):
                fail(f"{current} exists but is not a directory")

    def delete(self, path: str) -> None:
        self.client.delete(self.path, params={"path": path})


# --------------------------------------------------------------------------


@group("file")
def file() -> None:
    """Manage files in instances."""


def _owner_mode(st: os.stat_result, uid: int, gid: int, mode: str | None) -> tuple[int, int, int]:
    m = int(mode, 8) if mode else stat.S_IMODE(st.st_mode)
    return (st.st_uid if uid == -1 else uid), (st.st_gid if gid == -1 else gid), m


def _push_tree(files: Files, local: str, remote: str, uid: int, gid: int, mode: str | None) -> None:
    """Recursively push ``local`` (a directory) to ``remote``."""
    st = os.lstat(local)
    u, g, m = _owner_mode(st, uid, gid, mode if not stat.S_ISDIR(st.st_mode) else None)
    files.push(remote, b"", ftype="directory", uid=u, gid=g, mode=m)
    for entry in sorted(os.listdir(local)):
        src = os.path.join(local, entry)
        dst = posixpath.join(remote, entry)
        est = os.lstat(src)
        if stat.S_ISLNK(est.st_mode):
            files.push(dst, os.readlink(src).encode(), ftype="symlink", uid=est.st_uid if uid == -1 else uid,
                       gid=est.st_gid if gid == -1 else gid, mode=0o777)
        elif stat.S_ISDIR(est.st_mode):
            _push_tree(files, src, dst, uid, gid, mode)
        elif stat.S_ISREG(est.st_mode):
            u, g, m = _owner_mode(est, uid, gid, mode)
            with open(src, "rb") as f:
                files.push(dst, f, uid=u, gid=g, mode=m)


@file.command("push", context_settings=CONTEXT_SETTINGS)
@click.argument("args", nargs=-1, required=True)
@click.option("-p", "--create-dirs", is_flag=True, help="Create any directories necessary")
@click.option("-r", "--recursive", is_flag=True, help="Recursively transfer files")
@click.option("--uid", type=int, default=-1, show_default=True, help="Set the file's uid on push")
@click.option("--gid", type=int, default=-1, show_default=True, help="Set the file's gid on push")
@click.option("--mode", default=None, help="Set the file's perms on push (octal)")
@pass_ctx
def file_push(ctx: Ctx, args: tuple[str, ...], create_dirs: bool, recursive: bool, uid: int, gid: int,
              mode: str | None) -> None:
    """Push files into instances: corral file push SOURCE... INSTANCE/PATH."""
    if len(args) < 2:
        fail("Invalid number of arguments")
    sources, target = list(args[:-1]), args[-1]
    name, target_path = split_target(target)
    files = Files(ctx.client, name)
    if mode:
        try:
            int(mode, 8)
        except ValueError:
            fail(f"Invalid mode {mode!r}")

    if recursive:
        if create_dirs:
            files.mkdir_p(target_path, uid=max(uid, 0), gid=max(gid, 0))
        for src in sources:
            src = src.rstrip("/") or "/"
            if not os.path.exists(src):
                fail(f"Invalid source {src}")
            dst = posixpath.join(target_path, os.path.basename(src))
            if os.path.isdir(src) and not os.path.islink(src):
                _push_tree(files, src, dst, uid, gid, mode)
            else:
                st = os.stat(src)
                u, g, m = _owner_mode(st, uid, gid, mode)
                with open(src, "rb") as f:
                    files.push(dst, f, uid=u, gid=g, mode=m)
        return

    to_dir = target_path.endswith("/") or len(sources) > 1
    for src in sources:
        if src != "-" and os.path.isdir(src):
            fail(f"{src} is a directory, use --recursive")
        dst = posixpath.join(target_path, os.path.basename(src)) if to_dir else target_path
        if src == "-":
            if to_dir:
                fail("Pushing stdin needs a target file name")
            data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
            u = 0 if uid == -1 else uid
            g = 0 if gid == -1 else gid
            m = int(mode, 8) if mode else 0o644
            if create_dirs:
                files.mkdir_p(posixpath.dirname(dst), uid=u, gid=g)
            files.push(dst, data, uid=u, gid=g, mode=m)
            continue
        try:
            f = open(src, "rb")
        except OSError as exc:
            fail(f"open {src}: {exc.strerror.lower() if exc.strerror else exc}")
        with f:
            u, g, m = _owner_mode(os.fstat(f.fileno()), uid, gid, mode)
            if create_dirs:
                files.mkdir_p(posixpath.dirname(dst), uid=max(uid, 0), gid=max(gid, 0))
            files.push(dst, f, uid=u, gid=g, mode=m)


def _pull_one(files: Files, remote: str, local: str, recursive: bool, to_stdout: bool = False) -> None:
    client = files.client
    with client.raw("GET", files.path, params={"path": remote}) as resp:
        if resp.status != 200:
            client.parse_envelope(resp.status, resp.read())
        kind = (resp.headers.get("X-LXD-type") or "file").lower()
        mode = int(resp.headers.get("X-LXD-mode") or "644", 8)
        if kind == "directory":
            entries = client.parse_envelope(resp.status, resp.read()).get("metadata") or []
            if not recursive:
                fail("Can't pull a directory without --recursive")
            if to_stdout:
                fail("Can't pull a directory to stdout")
            os.makedirs(local, exist_ok=True)
            os.chmod(local, mode)
        elif kind == "symlink":
            target = resp.read().decode().strip()
            if to_stdout:
                sys.stdout.write(target + "\n")
                return
            if os.path.lexists(local):
                os.unlink(local)
            os.symlink(target, local)
            return
        else:
            if to_stdout:
                out = getattr(sys.stdout, "buffer", None)
                for chunk in resp.iter_chunks():
                    if out is not None:
                        out.write(chunk)
                    else:
                        sys.stdout.write(chunk.decode("utf-8", "replace"))
                sys.stdout.flush()
                return
            tmp = local
            with open(tmp, "wb") as f:
                for chunk in resp.iter_chunks():
                    f.write(chunk)
            os.chmod(local, mode)
            return
    for entry in entries:
        _pull_one(files, posixpath.join(remote, entry), os.path.join(local, entry), recursive)


@file.command("pull", context_settings=CONTEXT_SETTINGS)
@click.argument("args", nargs=-1, required=True)
@click.option("-p", "--create-dirs", is_flag=True, help="Create any directories necessary")
@click.option("-r", "--recursive", is_flag=True, help="Recursively transfer files")
@pass_ctx
def file_pull(ctx: Ctx, args: tuple[str, ...], create_dirs: bool, recursive: bool) -> None:
    """Pull files from instances: corral file pull INSTANCE/PATH... TARGET ('-' for stdout)."""
    if len(args) < 2:
        fail("Invalid number of arguments")
    sources, target = list(args[:-1]), args[-1]
    if target == "-":
        for src in sources:
            name, path = split_target(src)
            _pull_one(Files(ctx.client, name), path, "", recursive, to_stdout=True)
        return
    target_is_dir = os.path.isdir(target)
    if len(sources) > 1 and not target_is_dir:
        if create_dirs:
            os.makedirs(target, exist_ok=True)
            target_is_dir = True
        else:
            fail("More than one file to download, but target is not a directory")
    for src in sources:
        name, path = split_target(src)
        local = os.path.join(target, posixpath.basename(path.rstrip("/")) or name) if target_is_dir else target
        if create_dirs:
            parent = os.path.dirname(local)
            if parent:
                os.makedirs(parent, exist_ok=True)
        _pull_one(Files(ctx.client, name), path, local, recursive)


@file.command("delete", context_settings=CONTEXT_SETTINGS)
@click.argument("targets", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force deleting files, directories, and subdirectories")
@pass_ctx
def file_delete(ctx: Ctx, targets: tuple[str, ...], force: bool) -> None:
    """Delete files in instances: corral file delete INSTANCE/PATH..."""
    for spec in targets:
        name, path = split_target(spec)
        Files(ctx.client, name).delete(path)


@file.command("edit", context_settings=CONTEXT_SETTINGS)
@click.argument("target")
@pass_ctx
def file_edit(ctx: Ctx, target: str) -> None:
    """Edit files in instances (with $EDITOR, or from stdin)."""
    from corral.cli.edit import run_editor, stdin_is_tty

    name, path = split_target(target)
    files = Files(ctx.client, name)
    client = ctx.client
    if not stdin_is_tty():
        data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
        files.push(path, data)
        return
    with client.raw("GET", files.path, params={"path": path}) as resp:
        body = resp.read()
        if resp.status != 200:
            client.parse_envelope(resp.status, body)
        uid = int(resp.headers.get("X-LXD-uid") or 0)
        gid = int(resp.headers.get("X-LXD-gid") or 0)
        mode = int(resp.headers.get("X-LXD-mode") or "644", 8)
        if (resp.headers.get("X-LXD-type") or "file") != "file":
            fail(f"{path} is not a regular file")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        fail(f"{path} is not a text file")
    new = run_editor(text)
    files.push(path, new.encode(), uid=uid, gid=gid, mode=mode)




@file.command("mount", context_settings=CONTEXT_SETTINGS)
@click.argument("args", nargs=-1)
@click.option("--auth-user", default="", help="Set authentication user when using SSH SFTP listener")
@click.option("--listen", default="", help="Setup SSH SFTP listener on address:port instead of mounting")
@click.option("--no-auth", is_flag=True, help="Disable authentication when using SSH SFTP listener")
def file_mount(args: tuple[str, ...], auth_user: str, listen: str, no_auth: bool) -> None:
    """Mount files from instances.

    Not available in Corral: lxc 5.0 mounts through the server's SFTP endpoint
    (/1.0/instances/NAME/sftp) with sshfs, or serves it on a local SSH SFTP listener; corrald has no
    SFTP endpoint and Corral ships no SSH server. Use `corral file pull -r` / `corral file push -r`."""
    fail("file mount is not supported by Corral: corrald has no SFTP endpoint (/1.0/instances/<name>/sftp) "
         "for sshfs or an SSH SFTP listener to use; copy files with `corral file pull -r` and "
         "`corral file push -r` instead")
