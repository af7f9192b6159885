"""Where `launch`/`init` create the instance and where its image comes from (lxc's create.go):
`[<remote>:]<image> [<remote>:][<name>]`. The instance goes to the name's remote (the default one
without it); an image on another remote is pulled by that server from the image's remote (LXD
protocol with its pinned certificate and, for a private image, a secret; or simplestreams)."""

from __future__ import annotations

from corral.cli.base import client_of, default_remote, parse_remote, q
from corral.cli.client import ClientError
from corral.cli.main import Ctx, fail


def destination(ctx: Ctx, name: str | None):
    """The client for the remote the instance is created on."""
    remote = (parse_remote(name)[0] if name else None) or default_remote()
    return client_of(ctx, f"{remote}:")


def remote_image_source(ctx: Ctx, image: str, dest_remote: str) -> dict | None:
    """The POST /1.0/instances source for an image on another remote (None: it is on the destination)."""
    remote, name = parse_remote(image)
    remote = remote or default_remote()
    if remote == dest_remote:
        return None
    from corral.cli import remote as remote_mod
    entry = remote_mod.load()["remotes"][remote]
    if entry.get("protocol") == "simplestreams":
        return {"type": "image", "mode": "pull", "server": entry["addr"], "protocol": "simplestreams",
                "alias": name}
    src = remote_mod.client_for(remote, ctx.project)
    if src.https is None:
        fail(f'The remote "{remote}" is the local socket, which the server cannot pull from: '
             "use `corral image copy` first")
    source = {"type": "image", "mode": "pull", "server": src.https.url, "protocol": "lxd",
              "certificate": src.https.server_cert_pem or ""}
    fingerprint = None
    try:
        alias = src.metadata(f"/1.0/images/aliases/{q(name)}") or {}
        fingerprint = alias.get("target")
        source["alias"] = name
    except ClientError:
        pass
    img = src.metadata(f"/1.0/images/{q(fingerprint or name)}") or {}
    if "alias" not in source:
        source["fingerprint"] = img.get("fingerprint", name)
    if not img.get("public"):   # a private image: by fingerprint with a one-time secret (as lxc)
        op = src.post(f"/1.0/images/{q(img.get('fingerprint', name))}/secret")
        source["secret"] = ((op.get("metadata") or {}).get("metadata") or {}).get("secret", "")
        source.pop("alias", None)
        source["fingerprint"] = img.get("fingerprint", name)
    return source
