"""`corral image alias ...` and `corral image build ...` (registered on the image group)."""
from __future__ import annotations

import click

from corral.cli.client import ClientError
from corral.cli.config import q
from corral.cli.main import Ctx, fail, group, pass_ctx, strip_remote
from corral.cli.output import FORMATS, print_list
from corral.cli.image import image, import_image


# --------------------------------------------------------------------------
# aliases
# --------------------------------------------------------------------------


@group("alias")
def alias() -> None:
    """Manage image aliases."""


image.add_command(alias)


@alias.command("create")
@click.argument("name")
@click.argument("target")
@click.option("--description", default="", help="Alias description")
@pass_ctx
def alias_create(ctx: Ctx, name: str, target: str, description: str) -> None:
    """Create aliases for existing images: ALIAS FINGERPRINT."""
    try:
        img = ctx.client.metadata(f"/1.0/images/{q(strip_remote(target))}") or {}
    except ClientError:
        fail("Image not found")
    ctx.client.post("/1.0/images/aliases", {"name": strip_remote(name), "description": description,
                                            "target": img.get("fingerprint", target)})


@alias.command("delete")
@click.argument("name")
@pass_ctx
def alias_delete(ctx: Ctx, name: str) -> None:
    """Delete image aliases."""
    ctx.client.delete(f"/1.0/images/aliases/{q(strip_remote(name))}")


@alias.command("rename")
@click.argument("name")
@click.argument("new_name")
@pass_ctx
def alias_rename(ctx: Ctx, name: str, new_name: str) -> None:
    """Rename aliases."""
    ctx.client.post(f"/1.0/images/aliases/{q(strip_remote(name))}", {"name": new_name})


@alias.command("list")
@click.argument("filters", nargs=-1)
@click.option("-f", "--format", "fmt", default="table", type=click.Choice(FORMATS), show_default=True,
              help="Format (csv|json|table|yaml|compact)")
@pass_ctx
def alias_list(ctx: Ctx, filters: tuple[str, ...], fmt: str) -> None:
    """List image aliases."""
    from corral.cli.base import strip_first_remote
    filters = strip_first_remote(filters)
    aliases = ctx.client.metadata("/1.0/images/aliases", params={"recursion": 1}) or []
    aliases = [a for a in aliases if not filters or any(a.get("name", "").startswith(f) for f in filters)]
    rows = [[a.get("name", ""), a.get("target", "")[:12], str(a.get("type") or "container").upper(),
             a.get("description", "")] for a in aliases]
    rows.sort()
    print_list(fmt, ["ALIAS", "FINGERPRINT", "TYPE", "DESCRIPTION"], rows, aliases)


# --------------------------------------------------------------------------
# build (Corral-specific)
# --------------------------------------------------------------------------


@group("build")
def build() -> None:
    """Build images locally and import them."""


image.add_command(build)


@build.command("busybox")
@click.option("--alias", "aliases", multiple=True, help="Alias to give the image (default: busybox, busybox-vm with --vm)")
@click.option("--public", is_flag=True, help="Make image public")
@click.option("--vm", is_flag=True, help="Build a virtual-machine image (Debian kernel, busybox, UEFI boot)")
@pass_ctx
def build_busybox(ctx: Ctx, aliases: tuple[str, ...], public: bool, vm: bool) -> None:
    """Build a busybox image from the host's busybox and import it."""
    import tempfile

    if vm:
        img = _build_vm_image()
        fp = import_image(ctx, img["metadata"], img["rootfs"], list(aliases) or ["busybox-vm"], public)
        click.echo(f"Image imported with fingerprint: {fp}")
        return

    from corral.cli.busybox import build_busybox_image

    with tempfile.TemporaryDirectory(prefix="corral-busybox-") as tmp:
        tarball = build_busybox_image(tmp)
        fp = import_image(ctx, str(tarball), None, list(aliases) or ["busybox"], public)
    click.echo(f"Image imported with fingerprint: {fp}")


def _build_vm_image() -> dict:
    """Run the VM image builder (corral/image/vmbuild.py, a program of its own: the CLI imports no
    server module); its progress goes to stderr; {"metadata", "rootfs", ...} from its JSON."""
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "corral.image.vmbuild"], stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        fail("Failed building the VM image")
    try:
        return json.loads(proc.stdout)
    except ValueError:
        fail("Failed building the VM image: the builder gave no result")

# copy, refresh and the *-property commands (their own module; importing it registers them).
from corral.cli import image_more  # noqa: E402,F401
