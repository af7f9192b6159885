"""`corral image`: import/export/list/show/info/delete/edit, aliases, and
`image build busybox`."""

from __future__ import annotations

import os
import re
import secrets
import urllib.parse
from typing import Any, Iterator

import click

from corral.cli.client import ClientError
from corral.cli.config import q
from corral.cli.edit import edit_loop, go_string, string_map
from corral.cli.main import Ctx, fail, group, pass_ctx, strip_remote
from corral.cli.output import (
    FORMATS,
    OpProgress,
    format_time_long,
    format_time_short,
    print_list,
    to_yaml,
)

IMAGE_HELP = """### This is a YAML representation of the image properties.
### Any line starting with a '# will be ignored.
###
### Each property is represented by a single line:
### An example would be:
###  description: My custom image"""


@group()
def image() -> None:
    """Manage images."""


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def resolve_fingerprint(ctx: Ctx, name: str) -> str:
    """Alias or (partial) fingerprint -> full fingerprint."""
    name = strip_remote(name)
    client = ctx.client
    try:
        alias = client.metadata(f"/1.0/images/aliases/{q(name)}")
        if alias and alias.get("target"):
            return alias["target"]
    except ClientError:
        pass
    try:
        img = client.metadata(f"/1.0/images/{q(name)}") or {}
    except ClientError:
        fail("Image not found")
    return img.get("fingerprint") or name


def get_image(ctx: Ctx, name: str) -> dict:
    fp = resolve_fingerprint(ctx, name)
    return ctx.client.metadata(f"/1.0/images/{q(fp)}") or {}


def ensure_aliases(ctx: Ctx, fingerprint: str, aliases: list[str]) -> None:
    """Point each alias at ``fingerprint`` (replacing existing ones)."""
    client = ctx.client
    for alias in aliases:
        try:
            client.metadata(f"/1.0/images/aliases/{q(alias)}")
        except ClientError:
            pass
        else:
            client.delete(f"/1.0/images/aliases/{q(alias)}")
        client.post("/1.0/images/aliases", {"name": alias, "description": "", "target": fingerprint})


def _image_type(img: dict) -> str:
    return str(img.get("type") or "container").upper()


def _shortest_alias(img: dict) -> str:
    names = [a.get("name", "") for a in img.get("aliases") or []]
    if not names:
        return ""
    best = min(names, key=len)
    if len(names) > 1:
        return f"{best} ({len(names) - 1} more)"
    return best


def _size_mb(size: int | float) -> str:
    return f"{(size or 0) / 1024 / 1024:.2f}MB"


IMAGE_COLUMNS: dict[str, tuple[str, Any]] = {
    "l": ("ALIAS", _shortest_alias),
    "L": ("ALIASES", lambda i: "\n".join(a.get("name", "") for a in i.get("aliases") or [])),
    "f": ("FINGERPRINT", lambda i: i.get("fingerprint", "")[:12]),
    "F": ("FINGERPRINT", lambda i: i.get("fingerprint", "")),
    "p": ("PUBLIC", lambda i: "yes" if i.get("public") else "no"),
    "d": ("DESCRIPTION", lambda i: (i.get("properties") or {}).get("description", "")),
    "a": ("ARCHITECTURE", lambda i: i.get("architecture", "")),
    "t": ("TYPE", _image_type),
    "s": ("SIZE", lambda i: _size_mb(i.get("size") or 0)),
    "u": ("UPLOAD DATE", lambda i: format_time_long(i.get("uploaded_at"))),
}


def _image_matches(img: dict, filters: tuple[str, ...]) -> bool:
    for flt in filters:
        if "=" in flt:
            key, value = flt.split("=", 1)
            if (img.get("properties") or {}).get(key) != value:
                return False
            continue
        names = [a.get("name", "") for a in img.get("aliases") or []]
        if not (img.get("fingerprint", "").startswith(flt) or any(n.startswith(flt) for n in names)):
            return False
    return True


# --------------------------------------------------------------------------
# list / show / info / delete / edit
# --------------------------------------------------------------------------


@image.command("list")
@click.argument("filters", nargs=-1)
@click.option("-c", "--columns", default="lfpdatsu", show_default=True, help="Columns")
@click.option("-f", "--format", "fmt", default="table", type=click.Choice(FORMATS), show_default=True,
              help="Format (csv|json|table|yaml|compact)")
@pass_ctx
def image_list(ctx: Ctx, filters: tuple[str, ...], columns: str, fmt: str) -> None:
    """List images."""
    from corral.cli.base import strip_first_remote
    filters = strip_first_remote(filters)
    images = ctx.client.metadata("/1.0/images", params={"recursion": 1}) or []
    images = [i for i in images if _image_matches(i, filters)]
    cols = []
    for letter in columns:
        if letter not in IMAGE_COLUMNS:
            fail(f"Unknown column shorthand char '{letter}' in '{columns}'")
        cols.append(IMAGE_COLUMNS[letter])
    rows = [[getter(img) for _, getter in cols] for img in images]
    rows.sort()
    if fmt == "yaml":
        click.echo(to_yaml(images, typed=True), nl=False)
        return
    print_list(fmt, [c[0] for c in cols], rows, images)


@image.command("show")
@click.argument("name")
@pass_ctx
def image_show(ctx: Ctx, name: str) -> None:
    """Show image properties."""
    img = get_image(ctx, name)
    data = {k: img.get(k) for k in ("auto_update", "properties", "public", "expires_at", "profiles")}
    click.echo(to_yaml(data, typed=True), nl=False)


@image.command("info")
@click.argument("name")
@click.option("--vm", is_flag=True, help="Query virtual machine images")
@pass_ctx
def image_info(ctx: Ctx, name: str, vm: bool) -> None:
    """Show useful information about images."""
    img = get_image(ctx, name)
    lines = [
        f"Fingerprint: {img.get('fingerprint', '')}",
        f"Size: {_size_mb(img.get('size') or 0)}",
        f"Architecture: {img.get('architecture', '')}",
        f"Type: {img.get('type') or 'container'}",
        f"Public: {'yes' if img.get('public') else 'no'}",
        "Timestamps:",
    ]
    if format_time_short(img.get("created_at")):
        lines.append(f"    Created: {format_time_short(img.get('created_at'))}")
    lines.append(f"    Uploaded: {format_time_short(img.get('uploaded_at'))}")
    expires = img.get("expires_at")
    lines.append(f"    Expires: {format_time_short(expires) if format_time_short(expires) and not str(expires).startswith('1970') else 'never'}")
    lines.append(f"    Last used: {format_time_short(img.get('last_used_at')) or 'never'}")
    lines.append("Properties:")
    for k, v in sorted((img.get("properties") or {}).items()):
        lines.append(f"    {k}: {v}")
    lines.append("Aliases:")
    for alias in img.get("aliases") or []:
        if alias.get("description"):
            lines.append(f"    - {alias.get('name')} ({alias.get('description')})")
        else:
            lines.append(f"    - {alias.get('name')}")
    lines.append(f"Cached: {'yes' if img.get('cached') else 'no'}")
    lines.append(f"Auto update: {'enabled' if img.get('auto_update') else 'disabled'}")
    source = img.get("update_source")
    if source:
        lines.append("Source:")
        lines.append(f"    Server: {source.get('server', '')}")
        lines.append(f"    Protocol: {source.get('protocol', '')}")
        lines.append(f"    Alias: {source.get('alias', '')}")
    lines.append("Profiles:")
    profiles = img.get("profiles") or []
    if profiles:
        lines += [f"    - {p}" for p in profiles]
    else:
        lines.append("    (none)")
    click.echo("\n".join(lines))


@image.command("delete")
@click.argument("names", nargs=-1, required=True)
@pass_ctx
def image_delete(ctx: Ctx, names: tuple[str, ...]) -> None:
    """Delete images."""
    from corral.cli.instance import wait_op

    for name in names:
        fp = resolve_fingerprint(ctx, name)
        wait_op(ctx, ctx.client.delete(f"/1.0/images/{q(fp)}"))


@image.command("edit")
@click.argument("name")
@pass_ctx
def image_edit(ctx: Ctx, name: str) -> None:
    """Edit image properties as YAML (or from stdin)."""
    fp = resolve_fingerprint(ctx, name)
    img, etag = ctx.client.get_etag(f"/1.0/images/{q(fp)}")
    img = img or {}
    current = {k: img.get(k) for k in ("auto_update", "properties", "public", "expires_at", "profiles")}

    def apply(data: dict) -> None:
        body = {
            "auto_update": bool(data.get("auto_update", False)),
            "properties": string_map(data.get("properties"), "properties"),
            "public": bool(data.get("public", False)),
            "profiles": [go_string(p) for p in data.get("profiles") or []],
        }
        if data.get("expires_at"):
            body["expires_at"] = go_string(data["expires_at"])
        ctx.client.put(f"/1.0/images/{q(fp)}", body, etag=etag)

    edit_loop(current, apply, IMAGE_HELP)


# --------------------------------------------------------------------------
# import / export
# --------------------------------------------------------------------------


class _Upload:
    """An upload body that reports progress as it is read."""

    def __init__(self, parts: list[bytes | str], progress: OpProgress):
        self.parts = parts
        self.progress = progress
        self.total = sum(len(p) if isinstance(p, bytes) else os.path.getsize(p) for p in parts)
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for part in self.parts:
            if isinstance(part, bytes):
                yield from self._count(part)
                continue
            with open(part, "rb") as f:
                while True:
                    chunk = f.read(1 << 20)
                    if not chunk:
                        break
                    yield from self._count(chunk)

    def _count(self, chunk: bytes) -> Iterator[bytes]:
        self.sent += len(chunk)
        if self.total:
            pct = self.sent * 100 / self.total
            self.progress.set(pct, f"{pct:.0f}%")
        yield chunk


def import_image(ctx: Ctx, meta: str, rootfs: str | None = None, aliases: list[str] | None = None,
                 public: bool = False, properties: dict[str, str] | None = None) -> str:
    """Upload an image (unified tarball, or metadata + rootfs as multipart);
    returns its fingerprint."""
    for path in (meta, rootfs):
        if path and not os.path.isfile(path):
            fail(f"open {path}: no such file or directory")
    headers: dict[str, str] = {}
    progress = OpProgress("Transferring image", quiet=ctx.quiet)
    if rootfs is None:
        parts: list[bytes | str] = [meta]
        headers["Content-Type"] = "application/octet-stream"
        headers["X-LXD-filename"] = os.path.basename(meta)
    else:
        boundary = secrets.token_hex(16)
        rootfs_field = "rootfs.img" if rootfs.endswith((".img", ".qcow2")) else "rootfs"

        def part_header(field: str, filename: str) -> bytes:
            return (
                f"--{boundary}\r\n"
                f'Content-Disposition: form-data; name="{field}"; filename="{os.path.basename(filename)}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()

        parts = [part_header("metadata", meta), meta, b"\r\n", part_header(rootfs_field, rootfs), rootfs,
                 f"\r\n--{boundary}--\r\n".encode()]
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    if public:
        headers["X-LXD-public"] = "true"
    if properties:
        headers["X-LXD-properties"] = urllib.parse.urlencode(properties)
    body = _Upload(parts, progress)
    headers["Content-Length"] = str(body.total)
    try:
        env = ctx.client.request("POST", "/1.0/images", headers=headers, body=body)  # type: ignore[arg-type]
    finally:
        progress.done()
    from corral.cli.instance import wait_op

    op = wait_op(ctx, env, "Unpacking image")
    fingerprint = (op.get("metadata") or {}).get("fingerprint", "")
    ensure_aliases(ctx, fingerprint, list(aliases or []))
    return fingerprint


@image.command("import")
@click.argument("tarball")
@click.argument("args", nargs=-1)
@click.option("--alias", "aliases", multiple=True, help="New aliases to add to the image")
@click.option("--public", is_flag=True, help="Make image public")
@pass_ctx
def image_import(ctx: Ctx, tarball: str, args: tuple[str, ...], aliases: tuple[str, ...], public: bool) -> None:
    """Import images: corral image import TARBALL [ROOTFS] [key=value...]."""
    rootfs = None
    props: dict[str, str] = {}
    for arg in args:
        if arg in ("local:", ":"):
            continue
        if "=" in arg and not os.path.exists(arg):
            k, v = arg.split("=", 1)
            props[k] = v
        elif rootfs is None:
            rootfs = arg
        else:
            fail("Invalid number of arguments")
    if os.path.isdir(tarball):
        fail("Importing an image from a directory is not supported")
    if re.match(r"^https?://", tarball):
        fail("Importing an image from a URL is not supported")
    fp = import_image(ctx, tarball, rootfs, list(aliases), public, props)
    click.echo(f"Image imported with fingerprint: {fp}")


def _content_filename(headers: Any) -> str:
    disp = headers.get("Content-Disposition") or ""
    m = re.search(r'filename="?([^";]+)"?', disp)
    return m.group(1) if m else ""


@image.command("export")
@click.argument("name")
@click.argument("target", required=False, default=".")
@click.option("--vm", is_flag=True, help="Query virtual machine images")
@pass_ctx
def image_export(ctx: Ctx, name: str, target: str, vm: bool) -> None:
    """Export and download images: corral image export IMAGE [TARGET]."""
    fp = resolve_fingerprint(ctx, name)
    client = ctx.client
    base = os.path.join(target, fp) if os.path.isdir(target) else target
    with client.raw("GET", f"/1.0/images/{q(fp)}/export") as resp:
        if resp.status != 200:
            client.parse_envelope(resp.status, resp.read())
        ctype = resp.headers.get("Content-Type") or ""
        total = int(resp.headers.get("Content-Length") or 0)
        with OpProgress("Exporting the image", quiet=ctx.quiet) as progress:
            if ctype.startswith("multipart/"):
                written = _save_multipart(resp, ctype, base, progress, total)
            else:
                filename = _content_filename(resp.headers)
                ext = filename.split(".", 1)[1] if "." in filename else ""
                path = f"{base}.{ext}" if ext else base
                done = 0
                with open(path, "wb") as f:
                    for chunk in resp.iter_chunks():
                        f.write(chunk)
                        done += len(chunk)
                        if total:
                            progress.set(done * 100 / total, f"{done * 100 // total}%")
                written = [path]
    if not written:
        fail("Failed to save the image")
    if not ctx.quiet:
        click.echo("Image exported successfully!")


def _save_multipart(resp: Any, ctype: str, base: str, progress: OpProgress, total: int) -> list[str]:
    """Split image: metadata -> BASE.<ext>, rootfs -> BASE.root.<ext> (like lxc)."""
    import email.parser
    import email.policy

    data = resp.read()
    progress.set(100, "100%")
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {ctype}\r\n\r\n".encode() + data)
    written = []
    for part in msg.iter_parts():
        field = part.get_param("name", header="content-disposition") or ""
        filename = part.get_filename() or ""
        ext = filename.split(".", 1)[1] if "." in filename else ""
        if field == "metadata":
            path = f"{base}.{ext}" if ext else base
        else:
            path = f"{base}.root" + (f".{ext}" if ext else "")
            if field == "rootfs.img":
                path = f"{base}.root" if not ext else f"{base}.{ext}"
        with open(path, "wb") as f:
            f.write(part.get_payload(decode=True) or b"")
        written.append(path)
    return written


# `image alias` and `image build` live in their own module; importing it registers them.
from corral.cli import image_alias  # noqa: E402,F401  pylint: disable=unused-import
from corral.cli import image_build  # noqa: E402,F401  pylint: disable=unused-import

__all__ = ["image", "image_alias", "image_build"]
