"""corrald pulling from a simplestreams server (LXD's ConnectSimpleStreams as the daemon uses it):
streams/v1/index.json, its image-downloads products files, then the image's files, each checked
against its sha256 and size, and the whole against the fingerprint.

The same interface as corral/image/remote.py's RemoteServer (image_info, download), so the cache
(corral/image/cache.py) and the refresh (autoupdate.py) treat both protocols alike. The index is read
fresh on every connection (no on-disk cache): a refresh sees what the server says now.
"""
from __future__ import annotations

import hashlib
import json
import urllib.parse

import aiohttp

from corral.errors import BadRequest, CorralError
from corral.image import store
from corral.image.remote import INTERRUPTED, RemoteSource, Meter, open_session
from corral.image.simplestreams import products

MAX_INDEX = 64 << 20   # the largest index or products file read


class SimpleStreamsServer:
    """One simplestreams server (async context manager)."""

    def __init__(self, src: RemoteSource, proxy: str | None = None):
        self.src = src
        self.proxy = proxy
        self._session: aiohttp.ClientSession | None = None
        self._images: list[products.StreamImage] | None = None

    async def __aenter__(self) -> "SimpleStreamsServer":
        self._session = open_session(self.src)
        return self

    async def __aexit__(self, *exc) -> None:
        if self._session is not None:
            await self._session.close()

    def _url(self, path: str) -> str:
        return f"{self.src.server}/{urllib.parse.quote(path.lstrip('/'), safe='/:')}"

    def _connect_error(self, e: Exception) -> CorralError:
        if isinstance(e, INTERRUPTED):
            return BadRequest(f'Failed to download the image from "{self.src.server}": the transfer was '
                              f'interrupted ({e or type(e).__name__}); nothing was kept')
        if isinstance(e, (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError)):
            why = ("its certificate is not the one given" if self.src.certificate
                   else "its certificate is not trusted")
            return BadRequest(f'Failed to connect to simplestreams server "{self.src.server}": {why}')
        return BadRequest(f'Failed to connect to simplestreams server "{self.src.server}": {e}')

    async def _json(self, path: str) -> dict:
        assert self._session is not None
        url = self._url(path)
        try:
            async with self._session.get(url, proxy=self.proxy) as r:
                if r.status != 200:
                    raise BadRequest(f"Unable to fetch {url}: HTTP {r.status}")
                raw = bytearray()
                async for c in r.content.iter_chunked(1 << 16):   # to the end (read(n) may stop short)
                    raw += c
                    if len(raw) > MAX_INDEX:
                        raise BadRequest(f"Unable to fetch {url}: larger than {MAX_INDEX} bytes")
        except (aiohttp.ClientError, OSError) as e:
            raise self._connect_error(e) from None
        try:
            doc = json.loads(raw)
        except ValueError as e:
            raise BadRequest(f"Invalid simplestreams document {url}: {e}") from None
        if not isinstance(doc, dict):
            raise BadRequest(f"Invalid simplestreams document {url}: not an object")
        return doc

    async def images(self) -> list[products.StreamImage]:
        if self._images is None:
            index = await self._json("streams/v1/index.json")
            out: list[products.StreamImage] = []
            entries = index.get("index") if isinstance(index.get("index"), dict) else {}
            for entry in entries.values():
                if not isinstance(entry, dict) or entry.get("datatype") != "image-downloads":
                    continue
                if not entry.get("products") or not isinstance(entry.get("path"), str):
                    continue
                out += products.images(await self._json(entry["path"]))
            out.sort(key=lambda i: i.serial, reverse=True)
            self._images = out
        return self._images

    async def image_info(self, name: str) -> dict:
        try:
            img = products.resolve(await self.images(), name, self.src.image_type)
        except BadRequest as e:
            raise BadRequest(f'Failed getting remote image info: image "{self.src.name}" not found on '
                             f'"{self.src.server}" ({e.message})') from None
        return img.info()

    async def download(self, info: dict, upload, progress=None) -> bool:
        """Download the image's files into `upload` (each checked against its sha256 and size);
        True for a split image."""
        assert self._session is not None
        img = next((i for i in await self.images() if i.fingerprint == info["fingerprint"]), None)
        if img is None:
            raise BadRequest(f"Image {info['fingerprint']} is gone from the server")
        meter = Meter(img.size, progress)
        split = len(img.files) == 2
        for f in img.files:
            if not split:
                part = "image"
            elif f.kind == "meta":
                part = "metadata"
            else:
                part = "rootfs.img" if img.type == "virtual-machine" else "rootfs"
            await self._fetch(f, part, upload, meter)
        if upload.fingerprint != img.fingerprint:
            raise BadRequest(f"Image fingerprint doesn't match. Got {upload.fingerprint} expected "
                             f"{img.fingerprint}")
        return split

    async def _fetch(self, f: products.RemoteFile, part: str, upload, meter: Meter) -> None:
        assert self._session is not None
        url = self._url(f.path)
        sha = hashlib.sha256()
        got = 0
        try:
            async with self._session.get(url, proxy=self.proxy) as r:
                if r.status != 200:
                    raise BadRequest(f"Unable to fetch {url}: HTTP {r.status}")

                async def chunks():
                    nonlocal got
                    async for c in r.content.iter_chunked(store.CHUNK):
                        got += len(c)
                        if got > f.size:
                            raise BadRequest(f"Size mismatch for {f.path}: more than the announced {f.size} bytes")
                        sha.update(c)
                        meter.add(len(c))
                        yield c
                await upload.receive(part, chunks())
        except (aiohttp.ClientError, OSError) as e:
            raise self._connect_error(e) from None
        if got != f.size:
            raise BadRequest(f"Size mismatch for {f.path}: got {got} bytes, expected {f.size} "
                             f"(the transfer was cut short)")
        if sha.hexdigest() != f.sha256:
            raise BadRequest(f"Hash mismatch for {f.path}: {sha.hexdigest()} != {f.sha256}")
