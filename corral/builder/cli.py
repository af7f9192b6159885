"""`corral-builder`: distrobuilder's commands on distrobuilder's YAML definitions.

    corral-builder build-dir DEF DIR [--with-post-files]
    corral-builder build-lxd DEF [OUT] [--type split|unified] [--compression xz] [--vm]
    corral-builder pack-lxd DEF DIR [OUT] [--type ...] [--compression ...] [--vm]
    corral-builder validate DEF
    global: -o KEY=VALUE (repeatable), --cache-dir DIR, --debug

DEF is a file or `-` (standard input)."""
from __future__ import annotations

import os
import sys

import click

from corral.builder import definition as defn
from corral.builder import pipeline
from corral.builder.chroot import ChrootError
from corral.builder.generators import GeneratorError
from corral.builder.publish_cmd import publish
from corral.builder.lxdimage import SQUASHFS_COMPRESSION, TAR_COMPRESSION, PackError
from corral.builder.sources import SourceError
from corral.errors import NotImplementedFeature

ERRORS = (defn.DefinitionError, SourceError, ChrootError, GeneratorError, PackError, NotImplementedFeature, OSError)


def _load(ctx: click.Context, path: str, vm: bool = False) -> dict:
    opts = ctx.obj
    try:
        if path == "-":
            return defn.load(sys.stdin.read(), opts["overrides"], base_dir=os.getcwd(), vm=vm)
        return defn.load_file(path, opts["overrides"], vm=vm)
    except defn.DefinitionError as e:
        raise click.ClickException(str(e)) from None


def _builder(ctx: click.Context, d: dict) -> pipeline.Builder:
    return pipeline.Builder(d, cache=ctx.obj["cache"], verbose=ctx.obj["debug"])


def _guard(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except ERRORS as e:
        raise click.ClickException(str(e)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-o", "--options", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a definition value (image.release=bookworm); repeatable")
@click.option("--cache-dir", default=None, help=f"Cache directory (default {pipeline.DEFAULT_CACHE})")
@click.option("--debug", is_flag=True, help="Show the output of every command run in the chroot")
@click.pass_context
def cli(ctx: click.Context, overrides: tuple[str, ...], cache_dir: str | None, debug: bool) -> None:
    """System container image builder for LXD (distrobuilder's definitions)."""
    ctx.obj = {"overrides": list(overrides), "cache": cache_dir or pipeline.cache_dir(), "debug": debug}


def _need_root() -> None:
    if os.geteuid() != 0:
        raise click.ClickException("You must be root to run this tool")


@cli.command("validate")
@click.argument("definition")
@click.pass_context
def validate(ctx: click.Context, definition: str) -> None:
    """Check a definition (every key and value)."""
    _load(ctx, definition)


@cli.command("build-dir")
@click.argument("definition")
@click.argument("target")
@click.option("--with-post-files", is_flag=True, help="Run the post-files actions")
@click.pass_context
def build_dir(ctx: click.Context, definition: str, target: str, with_post_files: bool) -> None:
    """Build a plain root filesystem into TARGET."""
    _need_root()
    d = _load(ctx, definition)
    _guard(_builder(ctx, d).build_dir, target, with_post_files=with_post_files)


type_opt = click.option("--type", "kind", default="split", show_default=True,
                        type=click.Choice(["split", "unified"]), help="Type of tarball to create")
comp_opt = click.option("--compression", default="xz", show_default=True,
                        type=click.Choice(sorted(set(TAR_COMPRESSION) | set(SQUASHFS_COMPRESSION))),
                        help="Type of compression to use")
vm_opt = click.option("--vm", is_flag=True, help="Create a qcow2 image for VMs (not implemented)")


@cli.command("build-lxd")
@click.argument("definition")
@click.argument("target", required=False, default=".")
@type_opt
@comp_opt
@vm_opt
@click.pass_context
def build_lxd(ctx: click.Context, definition: str, target: str, kind: str, compression: str, vm: bool) -> None:
    """Build an LXD image from scratch into TARGET (default: the current directory)."""
    _need_root()
    d = _load(ctx, definition, vm=vm)
    for path in _guard(_builder(ctx, d).build_lxd, target, kind=kind, compression=compression):
        click.echo(path)


@cli.command("pack-lxd")
@click.argument("definition")
@click.argument("source")
@click.argument("target", required=False, default=".")
@type_opt
@comp_opt
@vm_opt
@click.pass_context
def pack_lxd(ctx: click.Context, definition: str, source: str, target: str, kind: str, compression: str,
             vm: bool) -> None:
    """Create an LXD image from an existing root filesystem SOURCE."""
    _need_root()
    d = _load(ctx, definition, vm=vm)
    if not os.path.isdir(source):
        raise click.ClickException(f"{source}: not a directory")
    for path in _guard(_builder(ctx, d).pack_lxd, source, target, kind=kind, compression=compression):
        click.echo(path)


cli.add_command(publish)   # the static simplestreams tree writer (corral/image/simplestreams)


def main() -> None:
    cli(prog_name="corral-builder")


if __name__ == "__main__":
    main()
