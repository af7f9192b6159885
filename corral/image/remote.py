"""Talking to another LXD-compatible server about its images (the "lxd" protocol, LXD's
ConnectPublicLXD): resolving an alias, reading an image's record, downloading its files.

The connection presents no client certificate, as LXD's: the remote shows what it shows the public
(public images, or a private one with the single-use secret the client got from the remote with
POST /1.0/images/<fp>/secret). The remote's certificate is pinned to the one given in the request;
without one the system's CAs verify it. POST /1.0/images with source type "image" (pull mode) is
start_pull here; the download itself is corral/image/cache.py's.
"""
from __future__ import annotations

import dataclasses
import json
import ssl
import time
import urllib.parse

import aiohttp

from corral.pki import tls
from corral.apitypes import ImagesPost
from corral.errors import BadRequest, CorralError
from corral.image import store
from corral.image.images import check_aliases
from corral.operations import Work

CONNECT_TIMEOUT = 30
MAX_JSON = 4 << 20   # the largest API answer read from a remote
# The source went away in the middle of an answer (killed, connection reset).
INTERRUPTED = (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, ConnectionResetError)


@dataclasses.dataclass(frozen=True)
class RemoteSource:
    server: str          # https://host:port, no trailing slash
    protocol: str        # "lxd" or "simplestreams" (corral/image/simplestreams/client.py)
    alias: str           # the alias or fingerprint asked for
    fingerprint: str
    certificate: str     # PEM, or "" for the system's CAs
    secret: str = ""
    project: str = ""    # the project on the remote
    image_type: str = ""  # container | virtual-machine: the instance's type (simplestreams aliases by type)

    @property
    def name(self) -> str:
        return self.alias or self.fingerprint


def check_source(source: dict, image_type: str = "") -> RemoteSource:
    """Validate an image source naming another server (instance or image creation): 400 on bad input.
    `image_type` (an instance's type) picks between a simplestreams alias's container and VM images."""
    server = source.get("server")
    if not isinstance(server, str) or not server:
        raise BadRequest("Image source server must be an https:// URL")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in server):
        raise BadRequest("Invalid image source server: no whitespace or control characters allowed")
    protocol = source.get("protocol") or "lxd"
    if protocol not in ("lxd", "simplestreams"):
        raise BadRequest(f'Invalid image source protocol "{protocol}"')
    parsed = urllib.parse.urlsplit(server)
    # A simplestreams tree may live under a path (https://host/some/dir) and, as LXD's daemon
    # allows, on plain http (every file is checked against the index's sha256); an LXD server may not.
    schemes = ("https", "http") if protocol == "simplestreams" else ("https",)
    if parsed.scheme not in schemes or not parsed.hostname or parsed.query or parsed.fragment \
            or (protocol == "lxd" and parsed.path.strip("/")):
        where = "http[s]://host[:port][/path]" if protocol == "simplestreams" else "https://host[:port]"
        raise BadRequest(f'Invalid image source server "{server}": expected {where}')
    try:
        parsed.port
    except ValueError:
        raise BadRequest(f'Invalid image source server "{server}": bad port') from None
    for name in ("certificate", "secret", "fingerprint", "alias", "project"):
        v = source.get(name)
        if v is not None and not isinstance(v, str):
            raise BadRequest(f'Invalid value for field "{name}": expected string')
    fp, alias = source.get("fingerprint") or "", source.get("alias") or ""
    if not fp and not alias:
        raise BadRequest("Image source needs a fingerprint or an alias")
    cert = source.get("certificate") or ""
    if cert:
        try:
            tls.client_context(None, None, cert)
        except (ssl.SSLError, ValueError) as e:
            raise BadRequest(f"Invalid source certificate: {e}") from None
    return RemoteSource(server=server.rstrip("/"), protocol=protocol, alias=alias, fingerprint=fp,
                        certificate=cert, secret=source.get("secret") or "", project=source.get("project") or "",
                        image_type=image_type if image_type in ("container", "virtual-machine") else "")


def open_session(src: RemoteSource) -> aiohttp.ClientSession:
    """An HTTP session to an image server: its certificate pinned when the request gave one (https),
    the system's CAs otherwise; a connect timeout, no total one (downloads are long)."""
    ssl_ctx: ssl.SSLContext | bool = tls.client_context(None, None, src.certificate) \
        if src.certificate and src.server.startswith("https:") else True
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=ssl_ctx),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT, sock_read=300))


class RemoteServer:
    """An HTTPS session with one remote server (async context manager)."""

    def __init__(self, src: RemoteSource, proxy: str | None = None):
        self.src = src
        self.proxy = proxy   # core.proxy_https, unless core.proxy_ignore_hosts names the server
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "RemoteServer":
        self._session = open_session(self.src)
        return self

    async def __aexit__(self, *exc) -> None:
        if self._session is not None:
            await self._session.close()

    def _url(self, path: str, secret: bool = False) -> str:
        params = {}
        if secret and self.src.secret:
            params["secret"] = self.src.secret
        if self.src.project:
            params["project"] = self.src.project
        return f"{self.src.server}{path}" + (("?" + urllib.parse.urlencode(params)) if params else "")

    def _connect_error(self, e: Exception) -> CorralError:
        if isinstance(e, INTERRUPTED):
            return BadRequest(f'Failed to download the image from "{self.src.server}": the transfer was '
                              f'interrupted ({e or type(e).__name__}); nothing was kept')
        if isinstance(e, aiohttp.ClientConnectorCertificateError) or isinstance(e, aiohttp.ClientSSLError):
            why = ("its certificate is not the one given" if self.src.certificate
                   else "its certificate is not trusted")
            return BadRequest(f'Failed to connect to LXD server "{self.src.server}": {why}')
        return BadRequest(f'Failed to connect to LXD server "{self.src.server}": {e}')

    async def _get_json(self, path: str, secret: bool = False) -> tuple[int, dict]:
        assert self._session is not None
        try:
            async with self._session.get(self._url(path, secret), allow_redirects=False, proxy=self.proxy) as r:
                raw = await r.content.read(MAX_JSON + 1)
                if len(raw) > MAX_JSON:
                    raise BadRequest(f'Answer of LXD server "{self.src.server}" too large')
                try:
                    env = json.loads(raw)
                except ValueError:
                    env = {}
                return r.status, env if isinstance(env, dict) else {}
        except (aiohttp.ClientError, OSError) as e:
            raise self._connect_error(e) from None

    async def image_info(self, name: str) -> dict:
        """The remote image named by `name` (alias, fingerprint or prefix), as LXD's ImageDownload:
        with a secret the fingerprint is used as given; without one an alias is tried first."""
        q = urllib.parse.quote
        if not self.src.secret:
            status, env = await self._get_json(f"/1.0/images/aliases/{q(name, safe='')}")
            if status == 200 and isinstance(env.get("metadata"), dict) and env["metadata"].get("target"):
                name = env["metadata"]["target"]
        status, env = await self._get_json(f"/1.0/images/{q(name, safe='')}", secret=True)
        if status != 200 or not isinstance(env.get("metadata"), dict):
            if status == 404:
                raise BadRequest(f'Failed getting remote image info: image "{self.src.name}" not found on '
                                 f'"{self.src.server}"')
            raise BadRequest(f"Failed getting remote image info: {env.get('error') or f'HTTP {status}'}")
        info = env["metadata"]
        if not isinstance(info.get("fingerprint"), str) or len(info["fingerprint"]) != 64:
            raise BadRequest("Failed getting remote image info: the remote sent no fingerprint")
        if (info.get("type") or "container") not in ("container", "virtual-machine"):
            raise BadRequest(f"Unsupported image type {info.get('type')!r} on the source")
        return info

    async def download(self, info: dict, upload, progress=None) -> bool:
        """Receive the image files of `info` into `upload`; True for a split image. The fingerprint
        of what arrived must be the one announced. progress(text) gets LXD's "45% (1.20MB/s)"."""
        assert self._session is not None
        fp = info["fingerprint"]
        meter = Meter(info.get("size"), progress)
        try:
            async with self._session.get(self._url(f"/1.0/images/{fp}/export", secret=True),
                                         allow_redirects=False, proxy=self.proxy) as r:
                if r.status != 200:
                    raise BadRequest(f"Failed to download the image from the source (HTTP {r.status})")
                if r.content_type == "multipart/form-data":
                    reader = aiohttp.MultipartReader.from_response(r)
                    names = []
                    root = "rootfs.img" if info.get("type") == "virtual-machine" else "rootfs"
                    while (part := await reader.next()) is not None:
                        names.append(part.name)
                        if names != ["metadata", root][:len(names)]:
                            raise BadRequest(f"Unsupported image from the source (unexpected part {part.name!r})")

                        async def chunks(p=part):
                            while c := await p.read_chunk(store.CHUNK):
                                meter.add(len(c))
                                yield c
                        await upload.receive(part.name, chunks())
                    if names != ["metadata", root]:
                        raise BadRequest("Unsupported image from the source (a split image needs two parts)")
                    split = True
                else:
                    async def body():
                        async for c in r.content.iter_chunked(store.CHUNK):
                            meter.add(len(c))
                            yield c
                    await upload.receive("image", body())
                    split = False
        except (aiohttp.ClientError, OSError) as e:
            raise self._connect_error(e) from None
        if upload.fingerprint != fp:
            raise BadRequest(f"Image fingerprint doesn't match. Got {upload.fingerprint} expected {fp}")
        return split


class Meter:
    """Download progress for an operation's metadata, at most twice a second."""

    def __init__(self, total, report):
        self.total = total if isinstance(total, int) and total > 0 else 0
        self.report = report
        self.done = 0
        self.start = self.last = time.monotonic()

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.report is None or (now - self.last < 0.5 and self.done < self.total):
            return
        self.last = now
        speed = self.done / max(now - self.start, 1e-3)
        pct = f"{min(100, self.done * 100 // self.total)}%" if self.total else _size(self.done)
        self.report(f"{pct} ({_size(speed)}/s)")


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.2f}{unit}"
        n /= 1000
    return f"{n:.2f}GB"


def start_pull(d, project: str, req: ImagesPost, requestor: dict | None):
    """POST /1.0/images from another server (`lxc image copy remote:x local:`): the work."""
    src = check_source(dataclasses.asdict(req.source))
    public, auto_update = req.public, req.auto_update
    aliases = check_aliases([a.as_dict() for a in req.aliases])

    async def run(op):
        img = await d.image_cache.download(project, src, op=op, public=public, auto_update=auto_update,
                                           aliases=aliases, user_requested=True, requestor=requestor)
        await d.images.replicate(project, img["fingerprint"])   # cluster.images_minimal_replica
        return {"fingerprint": img["fingerprint"], "size": str(img.get("size", ""))}

    return Work(project=project, description="Downloading image", run=run)
