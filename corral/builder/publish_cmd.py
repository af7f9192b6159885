"""`corral-builder publish DIR [IMAGE...]`: add built images to a static simplestreams tree
(corral/image/simplestreams/tree.py) that any web server can serve as an LXD image remote.

The lead wires this command into the corral-builder group (corral/builder/cli.py):
`cli.add_command(publish)`.
"""
from __future__ import annotations

import os

import click

from corral.errors import CorralError
from corral.image.simplestreams import tree


@click.command("publish")
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False))
@click.argument("images", metavar="[IMAGE...]", nargs=-1)
@click.option("--alias", "aliases", multiple=True, metavar="NAME",
              help="An extra alias for the images (repeatable)")
@click.option("--no-default-alias", is_flag=True,
              help='Do not add the "<os>/<release>/<variant>" (and "<os>/<release>") aliases')
def publish(directory: str, images: tuple[str, ...], aliases: tuple[str, ...], no_default_alias: bool) -> None:
    """Write (or extend) a static simplestreams tree in DIR from image files.

    IMAGE is a unified tarball, "META,ROOT" for a split image (metadata tarball and a squashfs,
    tarball or VM disk rootfs), or a directory with lxd.tar.xz and rootfs.squashfs (distrobuilder's
    split output). Without IMAGE the index is rewritten from DIR's images.json.

    Serve DIR over HTTPS (lxc accepts only https:// for simplestreams remotes) and add it with
    `lxc remote add NAME https://HOST[:PORT][/PATH] --protocol simplestreams`.
    """
    try:
        os.makedirs(directory, exist_ok=True)
        done = tree.publish(directory, list(images), aliases=list(aliases), default_alias=not no_default_alias,
                            log=click.echo)
    except (CorralError, OSError, ValueError) as e:
        raise click.ClickException(str(getattr(e, "message", None) or e)) from None
    click.echo(f"Published {len(done)} image(s) to {os.path.abspath(directory)}")
