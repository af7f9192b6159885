"""`corral image copy|refresh|get-property|set-property|unset-property` (lxc's image.go); list, show,
info, edit, import and export are image.py, aliases image_alias.py."""

from __future__ import annotations

import os
import tempfile

import click

from corral.cli.base import client_of, flag, lxc_command, option, parse_remote, q
from corral.cli.client import ClientError
from corral.cli.image import image
from corral.cli.main import Ctx, fail
from corral.cli.progress import LxcProgress, UploadFile, download


def fingerprint_of(client, name: str) -> str:
    """lxc's dereferenceAlias: an alias's target, else the name as a (partial) fingerprint."""
    try:
        alias = client.metadata(f"/1.0/images/aliases/{q(name)}")
        if alias and alias.get("target"):
            return alias["target"]
    except ClientError:
        pass
    return name


def _image(client, name: str) -> tuple[dict, str | None]:
    return client.get_etag(f"/1.0/images/{q(fingerprint_of(client, name))}")


def _put(client, img: dict, etag: str | None) -> None:
    body = {k: img.get(k) for k in ("auto_update", "properties", "public", "expires_at", "profiles")}
    body["properties"] = body.get("properties") or {}
    body["profiles"] = body.get("profiles") or []
    client.put(f"/1.0/images/{q(img['fingerprint'])}", body, etag=etag)


@lxc_command(image, "get-property", "[<remote>:]<image> <key>", "Get image properties.",
             "corral image get-property busybox os\n    Print the os property of the image busybox.",
             min_args=2, max_args=2)
def image_get_property(ctx: Ctx, args: list[str]) -> None:
    remote, name = parse_remote(args[0])
    img, _ = _image(client_of(ctx, args[0]), name)
    props = img.get("properties") or {}
    if args[1] not in props:
        fail("Property not found")
    click.echo(props[args[1]])


@lxc_command(image, "set-property", "[<remote>:]<image> <key> <value>", "Set image properties.",
             "corral image set-property busybox description 'BusyBox for tests'\n    Describe the image.",
             min_args=3, max_args=3)
def image_set_property(ctx: Ctx, args: list[str]) -> None:
    client = client_of(ctx, args[0])
    img, etag = _image(client, parse_remote(args[0])[1])
    img["properties"] = {**(img.get("properties") or {}), args[1]: args[2]}
    _put(client, img, etag)


@lxc_command(image, "unset-property", "[<remote>:]<image> <key>", "Unset image properties.",
             "corral image unset-property busybox description\n    Remove the description property.",
             min_args=2, max_args=2)
def image_unset_property(ctx: Ctx, args: list[str]) -> None:
    client = client_of(ctx, args[0])
    img, etag = _image(client, parse_remote(args[0])[1])
    # lxc 5.0 unsets a property by emptying it
    img["properties"] = {**(img.get("properties") or {}), args[1]: ""}
    _put(client, img, etag)


@lxc_command(image, "refresh", "[<remote>:]<image> [[<remote>:]<image>...]", "Refresh images.",
             "corral image refresh ubuntu-22.04\n    Fetch a newer build of an image copied with --auto-update.",
             min_args=1)
def image_refresh(ctx: Ctx, args: list[str]) -> None:
    for arg in args:
        client = client_of(ctx, arg)
        fp = fingerprint_of(client, parse_remote(arg)[1])
        progress = LxcProgress("Refreshing the image: %s", quiet=ctx.quiet)
        env = client.post(f"/1.0/images/{q(fp)}/refresh")
        try:
            op = client.wait_operation(env.get("operation") or (env.get("metadata") or {}).get("id"),
                                       progress=progress.update_op)
        except ClientError:
            progress.done("")
            raise
        refreshed = bool((op.get("metadata") or {}).get("refreshed"))
        progress.done("Image refreshed successfully!" if refreshed else "Image already up to date.")


COPY_HELP = """Copy images between servers.

The auto-update flag instructs the server to keep this image up to date.
It requires the source to be an alias and for it to be public."""


@lxc_command(image, "copy", "[<remote>:]<image> <remote>:", COPY_HELP,
             "corral image copy busybox other:\n    Copy the image busybox to the remote other.\n\n"
             "corral image copy other:busybox local: --copy-aliases\n    Copy it back with its aliases.",
             aliases=("cp",), min_args=2, max_args=2,
             options=(option("--alias", "aliases", multiple=True, help="New aliases to add to the image"),
                      flag("--auto-update", help="Keep the image up to date after initial copy"),
                      flag("--copy-aliases", help="Copy aliases from source"),
                      option("--mode", default="pull", show_default=True,
                             help="Transfer mode. One of pull (default), push or relay"),
                      flag("--public", help="Make image public"),
                      option("--target-project", default="", help="Copy to a project different from the source"),
                      flag("--vm", help="Copy virtual machine images")))
def image_copy(ctx: Ctx, args: list[str], aliases: tuple[str, ...], auto_update: bool, copy_aliases: bool,
               mode: str, public: bool, target_project: str, vm: bool) -> None:
    from corral.cli.base import default_remote
    src_remote, name = parse_remote(args[0])
    dst_remote, _ = parse_remote(args[1])
    src_remote = src_remote or default_remote()
    dst_remote = dst_remote or default_remote()
    if mode not in ("pull", "push", "relay"):
        fail(f"Invalid transfer mode: {mode}")
    if src_remote == dst_remote:
        fail("The source and target servers must be different")
    src = client_of(ctx, f"{src_remote}:")
    dst = client_of(ctx, f"{dst_remote}:", project=target_project or None)
    fp = fingerprint_of(src, name)
    img = src.metadata(f"/1.0/images/{q(fp)}") or {}
    names = list(aliases) + ([a["name"] for a in img.get("aliases") or []] if copy_aliases else [])
    progress = LxcProgress("Copying the image: %s", quiet=ctx.quiet)
    try:
        if src.https is not None and mode == "pull":
            new_fp = _copy_pull(src, dst, img, name, public, auto_update, progress)
        else:   # the local unix socket is no address the target can pull from: relay through us
            new_fp = _copy_relay(src, dst, img, public, progress)
    except ClientError:
        progress.done("")
        raise
    for alias in names:
        try:
            dst.delete(f"/1.0/images/aliases/{q(alias)}")
        except ClientError:
            pass
        dst.post("/1.0/images/aliases", {"name": alias, "description": "", "target": new_fp})
    progress.done("Image copied successfully!")


def _copy_pull(src, dst, img: dict, name: str, public: bool, auto_update: bool, progress: LxcProgress) -> str:
    source = {"type": "image", "mode": "pull", "server": src.https.url, "protocol": "lxd",
              "certificate": src.https.server_cert_pem or "", "fingerprint": img["fingerprint"]}
    if not img["fingerprint"].startswith(name) and img.get("public"):
        source["alias"] = name   # a public image by alias (what --auto-update follows)
    if not img.get("public"):   # a private one by fingerprint with a one-time secret
        secret_op = src.post(f"/1.0/images/{q(img['fingerprint'])}/secret")
        source["secret"] = ((secret_op.get("metadata") or {}).get("metadata") or {}).get("secret", "")
    env = dst.post("/1.0/images", {"source": source, "public": public, "auto_update": auto_update})
    op = dst.wait_operation(env.get("operation") or (env.get("metadata") or {}).get("id"), progress=progress.update_op)
    return (op.get("metadata") or {}).get("fingerprint") or img["fingerprint"]


def _copy_relay(src, dst, img: dict, public: bool, progress: LxcProgress) -> str:
    """Download the image from the source and upload it to the target (split images as multipart)."""
    with tempfile.TemporaryDirectory(prefix="corral-image-copy-") as tmp:
        path = os.path.join(tmp, "image")
        with src.raw("GET", f"/1.0/images/{q(img['fingerprint'])}/export") as resp:
            if resp.status != 200:
                src.parse_envelope(resp.status, resp.read())
            ctype = resp.headers.get("Content-Type") or "application/octet-stream"
            with open(path, "wb") as f:
                download(resp, f, progress)
        body = UploadFile(path, progress)
        headers = {"Content-Type": ctype, "Content-Length": str(body.total)}
        if public:
            headers["X-LXD-public"] = "true"
        env = dst.request("POST", "/1.0/images", headers=headers, body=body)  # type: ignore[arg-type]
        op = dst.wait_operation(env.get("operation") or (env.get("metadata") or {}).get("id"),
                                progress=progress.update_op)
    return (op.get("metadata") or {}).get("fingerprint") or img["fingerprint"]


__all__ = ["image_copy", "image_refresh"]
