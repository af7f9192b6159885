"""Copying an image from another LXD-compatible server (POST /1.0/images, source type "image", pull mode).

The target connects to the source over HTTPS as a client, presenting its own server certificate and
pinning the source's certificate from the request; private images are fetched with the image secret
the client obtained from the source (POST /1.0/images/<fp>/secret there).
"""
from __future__ import annotations

import os
import urllib.parse

import aiohttp

from corral import tls
from corral.errors import BadRequest, CorralError, NotImplementedFeature
from corral.image import store
from corral.image.images import check_aliases, check_bool, url
from corral.netproxy import proxy_for


def _check_source(source: dict) -> tuple[str, str, str, str, str]:
    server = source.get("server")
    if not isinstance(server, str) or not server.startswith("https://"):
        raise BadRequest("Image source server must be an https:// URL")
    if (source.get("protocol") or "lxd") != "lxd":
        raise NotImplementedFeature(f'image protocol "{source.get("protocol")}"')
    fp = source.get("fingerprint") or ""
    alias = source.get("alias") or ""
    if not fp and not alias:
        raise BadRequest("Image source needs a fingerprint or an alias")
    for name, v in (("certificate", source.get("certificate")), ("secret", source.get("secret")),
                    ("fingerprint", fp), ("alias", alias), ("project", source.get("project"))):
        if v is not None and not isinstance(v, str):
            raise BadRequest(f'Invalid value for field "{name}": expected string')
    return server.rstrip("/"), fp, alias, source.get("certificate") or "", source.get("secret") or ""


def start_pull(d, project: str, body: dict, requestor: dict | None):
    source = body["source"]
    server, fp, alias, cert_pem, secret = _check_source(source)
    public = check_bool(body, "public", False)
    if check_bool(body, "auto_update", False):
        # Corral keeps no record of an image's source server: there is nothing to refresh from
        # (images.auto_update_interval then has no image to act on, as on LXD for uploaded images).
        raise NotImplementedFeature("auto-updating images copied from another server (auto_update=true)")
    aliases = check_aliases(body.get("aliases") or [])
    src_project = source.get("project") or ""
    crt, key = os.path.join(d.paths.root, "server.crt"), os.path.join(d.paths.root, "server.key")

    async def run(op):
        try:
            ctx = tls.client_context(crt, key, cert_pem or None)
        except Exception as e:
            raise BadRequest(f"Invalid source certificate: {e}") from None
        if not cert_pem:
            ctx = None  # no pinned certificate: the system's CAs, as LXD
        params = {}
        if secret:
            params["secret"] = secret
        if src_project:
            params["project"] = src_project
        qs = ("?" + urllib.parse.urlencode(params)) if params else ""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
        proxy = proxy_for(d.config, server)   # core.proxy_https / core.proxy_ignore_hosts
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx if ctx else True),
                                         timeout=timeout) as s:
            target = fp
            if not target:
                async with s.get(f"{server}/1.0/images/aliases/{urllib.parse.quote(alias)}{qs}", proxy=proxy) as r:
                    env = await r.json(content_type=None)
                    if r.status != 200:
                        raise CorralError(env.get("error") or f"HTTP {r.status}", 400)
                    target = env["metadata"]["target"]
            async with s.get(f"{server}/1.0/images/{urllib.parse.quote(target)}{qs}", proxy=proxy) as r:
                env = await r.json(content_type=None)
                if r.status != 200:
                    raise CorralError(f"Failed to get image information from the source: "
                                      f"{env.get('error') or r.status}", 400)
                info = env["metadata"]
            upload = await d.images.new_upload()
            try:
                async with s.get(f"{server}/1.0/images/{urllib.parse.quote(info['fingerprint'])}/export{qs}",
                                 proxy=proxy) as r:
                    if r.status != 200:
                        raise CorralError(f"Failed to download the image from the source (HTTP {r.status})", 400)
                    if r.content_type == "multipart/form-data":
                        reader = aiohttp.MultipartReader.from_response(r)
                        names = []
                        while (part := await reader.next()) is not None:
                            names.append(part.name)

                            async def chunks(p=part):
                                while c := await p.read_chunk(store.CHUNK):
                                    yield c
                            await upload.receive(part.name or f"part{len(names)}", chunks())
                        if names != ["metadata", "rootfs"]:
                            raise BadRequest("Unsupported image from the source (not a container image)")
                        split = True
                    else:
                        await upload.receive("image", r.content.iter_chunked(store.CHUNK))
                        split = False
                if upload.fingerprint != info["fingerprint"]:
                    raise BadRequest(f"Image fingerprint doesn't match. Got {upload.fingerprint} expected "
                                     f"{info['fingerprint']}")
                op.update_metadata({"fingerprint": upload.fingerprint, "size": str(upload.size)})
                props = info.get("properties") or {}
                await d.images._import(project, upload, split=split, filename=info.get("filename") or "",
                                       public=public, properties=props, aliases=aliases)
            finally:
                upload.cleanup()
        d.events.lifecycle("image-created", url(info["fingerprint"], project), project=project,
                           context={"type": "container"}, requestor=requestor)
        return {"fingerprint": info["fingerprint"], "size": str(info.get("size", ""))}

    return d.operations.create(project=project, description="Downloading image", run=run)
