"""`corral image build definition DEF`: build an image with corral-builder (distrobuilder's YAML) and
import it. DEF is a definition file or the name of one shipped in images/ (`debian-bookworm`,
`busybox`). The builder runs as its own program (`python -m corral.builder.cli`, the CLI imports no
builder module); its progress goes to stderr. `corral image build busybox` (the built-in busybox image)
stays as it was."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import click

from corral.cli.image import import_image
from corral.cli.image_alias import build
from corral.cli.main import Ctx, fail, pass_ctx

IMAGES_DIR = os.environ.get("CORRAL_IMAGES_DIR") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "images")


def shipped() -> list[str]:
    try:
        return sorted(f[:-5] for f in os.listdir(IMAGES_DIR) if f.endswith(".yaml"))
    except OSError:
        return []


def resolve_definition(name: str) -> str:
    if os.path.isfile(name):
        return name
    path = os.path.join(IMAGES_DIR, name if name.endswith(".yaml") else f"{name}.yaml")
    if os.path.isfile(path):
        return path
    fail(f'No definition "{name}" (a file, or one of: {", ".join(shipped()) or "none shipped"})')


@build.command("definition")
@click.argument("definition")
@click.option("--alias", "aliases", multiple=True, help="Alias to give the image (repeatable)")
@click.option("--public", is_flag=True, help="Make image public")
@click.option("-o", "--options", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a definition value (image.variant=cloud); repeatable")
@click.option("--type", "kind", default="split", show_default=True, type=click.Choice(["split", "unified"]),
              help="Image layout")
@click.option("--compression", default="xz", show_default=True, help="Compression (xz, gzip, zstd, none, ...)")
@click.option("--vm", is_flag=True, help="Build a virtual-machine image (not implemented by corral-builder)")
@click.option("--cache-dir", default=None, help="corral-builder's cache directory")
@pass_ctx
def build_definition(ctx: Ctx, definition: str, aliases: tuple[str, ...], public: bool, overrides: tuple[str, ...],
                     kind: str, compression: str, vm: bool, cache_dir: str | None) -> None:
    """Build an image from a distrobuilder definition (a file or a shipped name) and import it."""
    path = resolve_definition(definition)
    argv = [sys.executable, "-m", "corral.builder.cli"]
    for item in overrides:
        argv += ["-o", item]
    if cache_dir:
        argv += ["--cache-dir", cache_dir]
    with tempfile.TemporaryDirectory(prefix="corral-image-build-") as out:
        argv += ["build-lxd", path, out, "--type", kind, "--compression", compression] + (["--vm"] if vm else [])
        proc = subprocess.run(argv, stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            fail("Failed building the image (corral-builder's error is above)")
        files = proc.stdout.split()
        if not files:
            fail("Failed building the image: corral-builder wrote no file")
        meta, rootfs = files[0], (files[1] if len(files) > 1 else None)
        fp = import_image(ctx, meta, rootfs, list(aliases), public)
    click.echo(f"Image imported with fingerprint: {fp}")
