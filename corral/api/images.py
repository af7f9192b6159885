"""/1.0/images and /1.0/images/aliases"""
from __future__ import annotations

import asyncio
import hmac
import os
import re
import secrets
from urllib.parse import parse_qs

from aiohttp import BodyPartReader, web

from corral.api import decode, filtering, response
from corral.api.forward import forwarded, proxy
from corral.api.request import (JSON_BODY, STREAMED, MAX_JSON_BODY, check_etag, daemon, project, read_object,
                                recursion, requestor)
from corral.api.auth import trusted
from corral.apitypes import ImageAliasesEntryPost, ImageAliasesEntryPut, ImageAliasesPost, ImagePut, ImagesPost
from corral.errors import BadRequest, Forbidden, NotFound, NotImplementedFeature
from corral.operations import TOKEN, Work
from corral.image import store
from corral.image.images import (PUBLISH_TYPES, alias_url, check_aliases, check_properties, is_true,
                                 parse_json_body, url)

routes = web.RouteTableDef()
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")


# ---- /1.0/images ---------------------------------------------------------------------------------

@routes.get("/1.0/images")
async def list_images(request: web.Request):
    d, proj = daemon(request), await project(request)
    if not trusted(request):  # untrusted clients see public images only
        imgs = [i for i in await d.images.get_all(proj) if i["public"]]
        if request.query.get("filter"):
            imgs = [i for i in imgs if filtering.matches(i, filtering.parse(request.query["filter"]))]
        if recursion(request):
            return response.sync(imgs)
        return response.sync([url(i["fingerprint"], proj) for i in imgs])
    if request.query.get("filter"):   # api_filtering covers images too
        clauses = filtering.parse(request.query["filter"])
        imgs = [i for i in await d.images.get_all(proj) if filtering.matches(i, clauses)]
        return response.sync(imgs if recursion(request) else [url(i["fingerprint"], proj) for i in imgs])
    if recursion(request):
        return response.sync(await d.images.get_all(proj))
    return response.sync(await d.images.urls(proj))


IMAGE_TOKEN = "Image download token"


def _secret_op(request: web.Request, fingerprint: str):
    """The running image token operation matching ?secret= for this image, or None."""
    secret = request.query.get("secret", "")
    if not secret:
        return None
    for op in daemon(request).operations.all():
        if (op.cls == TOKEN and op.status == "Running" and op.description == IMAGE_TOKEN
                and (op.metadata or {}).get("fingerprint") == fingerprint
                and hmac.compare_digest(str((op.metadata or {}).get("secret", "")), secret)):
            return op
    return None


async def _visible_image(request: web.Request, proj: str, fingerprint: str):
    """The image, if this client may see it (trusted, public, or holding a valid image secret)."""
    d = daemon(request)
    try:
        img = await d.images.get(proj, fingerprint)
    except NotFound:
        img = None
    if trusted(request):
        if img is None:
            raise NotFound("Image not found")
        return img, None
    if img is None:
        raise NotFound("not found")
    if img["public"]:
        return img, None
    op = _secret_op(request, img["fingerprint"])
    if op is None:
        raise NotFound("not found")
    return img, op


async def _chunks(part: BodyPartReader):
    while chunk := await part.read_chunk(store.CHUNK):
        yield chunk


def _header_properties(request: web.Request) -> dict[str, str]:
    props: dict[str, str] = {}
    for raw in request.headers.getall("X-LXD-properties", []):
        try:
            parsed = parse_qs(raw, keep_blank_values=True, errors="strict")
        except UnicodeDecodeError:
            raise BadRequest("Invalid X-LXD-properties header: not valid UTF-8") from None
        for k, v in parsed.items():
            props[k] = v[0]
    return check_properties(props, "X-LXD-properties")


def _header_aliases(request: web.Request) -> list[dict]:
    raw = request.headers.get("X-LXD-aliases", "")
    names = [n.strip() for n in raw.split(",") if n.strip()]
    return check_aliases([{"name": n} for n in names])


async def _json_post(request: web.Request, proj: str, req: ImagesPost, req_proj: str):
    d = daemon(request)
    if req.source is None:
        raise BadRequest("Invalid images JSON")
    stype = req.source.type
    if req.source.mode == "push":
        raise NotImplementedFeature("pushing images between servers")
    if stype == "image":
        from corral.image.remote import start_pull
        return response.operation(request, start_pull(d, proj, req, requestor(request)))
    if stype == "url":
        raise NotImplementedFeature("importing images from URLs")
    if stype not in PUBLISH_TYPES:
        raise BadRequest("Invalid images JSON")
    member = await _instance_member(request, req_proj, req.source.name or "")
    if member:   # published where the instance is (LXD's forwardedResponseIfInstanceIsRemote)
        return await proxy(request, member)
    return response.operation(request, d.images.start_publish(proj, req, requestor(request),
                                                              source_project=req_proj))


async def _instance_member(request: web.Request, proj: str, name: str) -> str | None:
    """The address of the member holding the instance (or snapshot) `name` when not this one."""
    d = daemon(request)
    if not d.cluster.clustered or forwarded(request) or not name:
        return None
    try:
        loaded = await d.instances.load(proj, name.split("/", 1)[0])
    except NotFound:
        return None   # the publish answers it
    node = loaded.rec.get("node") or ""
    if node in ("", "none", d.cluster.server_name):
        return None
    return await d.cluster.member_address(node)


@routes.post("/1.0/images")
async def create_image(request: web.Request):
    d, req_proj = daemon(request), await project(request)
    proj = await d.images.effective_project(req_proj)
    ctype = request.content_type
    if ctype == "application/json":
        return await _json_post(request, proj, await decode.read(request, ImagesPost), req_proj)
    public = is_true(request.headers.get("X-LXD-public"))
    properties = _header_properties(request)
    aliases = _header_aliases(request)
    upload = await d.images.new_upload()
    try:
        if ctype == "multipart/form-data":
            reader = await request.multipart()
            part = await reader.next()
            if not isinstance(part, BodyPartReader) or part.name != "metadata":
                raise BadRequest("Invalid multipart image")
            await upload.receive("metadata", _chunks(part))
            part = await reader.next()
            if not isinstance(part, BodyPartReader) or part.name not in ("rootfs", "rootfs.img"):
                raise BadRequest("Invalid multipart image")
            filename = part.filename or ""
            await upload.receive(part.name, _chunks(part))   # "rootfs.img": a virtual-machine image
            split = True
        else:
            request[STREAMED] = True   # not replayable: never run again (api/server.py)
            await upload.receive("image", request.content.iter_chunked(store.CHUNK))
            filename = request.headers.get("X-LXD-filename", "")
            split = False
            if upload.size <= MAX_JSON_BODY and (await asyncio.to_thread(upload.head, 64)).lstrip()[:1] == b"{":
                raw = await asyncio.to_thread(upload.read_first)
                body = parse_json_body(raw)
                if body is not None:
                    await asyncio.to_thread(upload.cleanup)
                    request[JSON_BODY] = raw   # what a forward to another member sends on
                    return await _json_post(request, proj, decode.decode(ImagesPost, body), req_proj)
        if upload.size == 0:
            raise BadRequest("No image data received")
        expected = request.headers.get("X-LXD-fingerprint", "")
        if expected and expected != upload.fingerprint:
            raise BadRequest(f"fingerprints don't match, got {upload.fingerprint} expected {expected}")
        work = d.images.start_import(proj, upload, split=split, filename=os.path.basename(filename),
                                     public=public, properties=properties, aliases=aliases,
                                     requestor=requestor(request))
        return response.operation(request, work)
    except BaseException:
        await asyncio.to_thread(upload.cleanup)
        raise


# ---- /1.0/images/aliases (before /1.0/images/{fingerprint}) --------------------------------------

@routes.get("/1.0/images/aliases")
async def list_aliases(request: web.Request):
    d, proj = daemon(request), await project(request)
    if not trusted(request):
        public = {i["fingerprint"] for i in await d.images.get_all(proj) if i["public"]}
        aliases = [a for a in await d.images.aliases(proj) if a["target"] in public]
        if recursion(request):
            return response.sync(aliases)
        return response.sync([f"/1.0/images/aliases/{a['name']}" for a in aliases])
    if recursion(request):
        return response.sync(await d.images.aliases(proj))
    return response.sync([f"/1.0/images/aliases/{n}" for n in await d.images.alias_names(proj)])


@routes.post("/1.0/images/aliases")
async def create_alias(request: web.Request):
    d, proj = daemon(request), await project(request)
    name = await d.images.alias_create(proj, await decode.read(request, ImageAliasesPost), requestor(request))
    return response.created(alias_url(name, proj))


@routes.get("/1.0/images/aliases/{name:.+}")
async def get_alias(request: web.Request):
    d, proj = daemon(request), await project(request)
    a = await d.images.alias_get(proj, request.match_info["name"])
    if not trusted(request):
        await _visible_image(request, proj, a["target"])
    return response.sync(a, etag=a)


async def _update_alias(request: web.Request, replace: bool):
    d, proj = daemon(request), await project(request)
    req = await decode.read(request, ImageAliasesEntryPut)
    await d.images.alias_update(proj, request.match_info["name"], req, replace=replace,
                                etag_check=lambda cur: check_etag(request, cur), requestor=requestor(request))
    return response.empty()


@routes.put("/1.0/images/aliases/{name:.+}")
async def put_alias(request: web.Request):
    return await _update_alias(request, True)


@routes.patch("/1.0/images/aliases/{name:.+}")
async def patch_alias(request: web.Request):
    return await _update_alias(request, False)


@routes.post("/1.0/images/aliases/{name:.+}")
async def rename_alias(request: web.Request):
    d, proj = daemon(request), await project(request)
    req = await decode.read(request, ImageAliasesEntryPost)
    new = await d.images.alias_rename(proj, request.match_info["name"], req.name, requestor(request))
    return response.created(alias_url(new, proj))


@routes.delete("/1.0/images/aliases/{name:.+}")
async def delete_alias(request: web.Request):
    d, proj = daemon(request), await project(request)
    await d.images.alias_delete(proj, request.match_info["name"], requestor(request))
    return response.empty()


# ---- /1.0/images/{fingerprint} -------------------------------------------------------------------

@routes.get("/1.0/images/{fingerprint}")
async def get_image(request: web.Request):
    d, proj = daemon(request), await project(request)
    img, _ = await _visible_image(request, proj, request.match_info["fingerprint"])
    return response.sync(img, etag=d.images.etag_fields(img))


async def _update_image(request: web.Request, replace: bool):
    d, proj = daemon(request), await project(request)
    req = await decode.read(request, ImagePut)
    await d.images.update(proj, request.match_info["fingerprint"], req, replace=replace,
                          etag_check=lambda cur: check_etag(request, cur), requestor=requestor(request))
    return response.empty()


@routes.put("/1.0/images/{fingerprint}")
async def put_image(request: web.Request):
    return await _update_image(request, True)


@routes.patch("/1.0/images/{fingerprint}")
async def patch_image(request: web.Request):
    return await _update_image(request, False)


@routes.delete("/1.0/images/{fingerprint}")
async def delete_image(request: web.Request):
    d, proj = daemon(request), await project(request)
    return response.operation(request, await d.images.start_delete(proj, request.match_info["fingerprint"],
                                                                   requestor(request)))


@routes.get("/1.0/images/{fingerprint}/export")
async def export_image(request: web.Request):
    d, proj = daemon(request), await project(request)
    img, op = await _visible_image(request, proj, request.match_info["fingerprint"])
    if op is not None:
        op.finish("Cancelled", "Token used")  # an image secret is good for one download
    if d.images.clustered() and not forwarded(request):
        holder = await d.images.locate(img["fingerprint"])
        if holder is not None:   # the files are on another member: it answers
            return await proxy(request, holder)
    return await export_response(request, d, proj, img["fingerprint"])


async def export_response(request: web.Request, d, proj: str, fingerprint: str) -> web.StreamResponse:
    """The image file(s) of `fingerprint` in `proj` (also the /dev/lxd guest API's image export)."""
    img, files = await d.images.export_files(proj, fingerprint)
    if len(files) == 1:
        _, path, filename = files[0]
        eff = await d.images.effective_project(proj)
        d.events.lifecycle("image-retrieved", url(img["fingerprint"], eff), project=eff,
                           requestor=requestor(request))
        return web.FileResponse(path, headers={"Content-Type": "application/octet-stream",
                                               "Content-Disposition": f"inline;filename={filename}"})
    # Split image: multipart/form-data with "metadata" and "rootfs" parts, as LXD's FileResponse.
    boundary = secrets.token_hex(30)
    heads, total = [], 0
    for ident, path, filename in files:
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{ident}\"; filename=\"{filename}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode()
        heads.append(head)
        total += len(head) + os.path.getsize(path) + 2
    tail = f"--{boundary}--\r\n".encode()
    total += len(tail)
    resp = web.StreamResponse(headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    resp.content_length = total
    await resp.prepare(request)
    for head, (_, path, _) in zip(heads, files):
        await resp.write(head)
        f = await asyncio.to_thread(open, path, "rb")
        try:
            while chunk := await asyncio.to_thread(f.read, store.CHUNK):
                await resp.write(chunk)
        finally:
            f.close()
        await resp.write(b"\r\n")
    await resp.write(tail)
    await resp.write_eof()
    return resp


@routes.post("/1.0/images/{fingerprint}/export")
async def push_image(request: web.Request):
    raise NotImplementedFeature("pushing images to remote servers")


@routes.post("/1.0/images/{fingerprint}/secret")
async def image_secret(request: web.Request):
    d, proj = daemon(request), await project(request)
    img = await d.images.get(proj, request.match_info["fingerprint"])
    fp = img["fingerprint"]
    return response.operation(request, Work(project=proj, cls=TOKEN, description=IMAGE_TOKEN,
                                            resources={"images": [url(fp, proj)]},
                                            metadata={"secret": secrets.token_hex(32), "fingerprint": fp}))


@routes.post("/1.0/images/{fingerprint}/refresh")
async def refresh_image(request: web.Request):
    d, proj = daemon(request), await project(request)
    return response.operation(request, await d.image_tasks.start_refresh(proj, request.match_info["fingerprint"],
                                                                         requestor(request)))


# ---- between members (image/replication.py) -------------------------------------------------------

def _peer_only(request: web.Request) -> str:
    if not request.get("cluster_peer"):
        raise Forbidden("not authorized: only cluster members may call this")
    fp = request.match_info["fingerprint"]
    if not _FINGERPRINT.fullmatch(fp):
        raise BadRequest("Invalid fingerprint")
    return fp


@routes.post("/internal/images/{fingerprint}")
async def hold_image(request: web.Request):
    """Hold a copy of the image (fetched from `holder`, else from any member that has it)."""
    fp = _peer_only(request)
    body = await read_object(request)
    project, holder = body.get("project") or "default", body.get("holder") or ""
    if not isinstance(project, str) or not isinstance(holder, str):
        raise BadRequest('Invalid value for field "project" or "holder": expected string')
    await daemon(request).images.ensure_local(project, fp, holder)
    return response.empty()


@routes.delete("/internal/images/{fingerprint}")
async def drop_image(request: web.Request):
    """Drop this member's copy of an image being deleted."""
    await daemon(request).images.drop_local(_peer_only(request))
    return response.empty()
