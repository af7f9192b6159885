"""Member-to-member HTTPS: both sides present the cluster certificate and pin it (mutual TLS)."""
from __future__ import annotations

import asyncio
import json
import logging

import aiohttp

log = logging.getLogger(__name__)

NOTIFIER = "lxd-cluster-notifier"   # LXD's user agent for notifications between members


class PeerError(Exception):
    pass


class PeerClient:
    def __init__(self, context):
        self.context = context        # () -> ssl.SSLContext (rebuilt when the certificate rotates)
        self._session: aiohttp.ClientSession | None = None
        self._ctx = None

    def _client(self) -> aiohttp.ClientSession:
        ctx = self.context()
        if self._session is None or ctx is not self._ctx or self._session.closed:
            if self._session is not None and not self._session.closed:
                asyncio.ensure_future(self._session.close())
            self._ctx = ctx
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=0))
        return self._session

    def session(self) -> aiohttp.ClientSession:
        """The shared session with the cluster certificate (for streamed forwarding)."""
        return self._client()

    async def request(self, address: str, method: str, path: str, body=None, timeout: float = 2.0,
                      notify: bool = False) -> tuple[int, dict]:
        """(status, LXD envelope) of one call to the member at `address`; PeerError when unreachable."""
        headers = {"User-Agent": NOTIFIER} if notify else {}
        data = None if body is None else json.dumps(body)
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with self._client().request(method, f"https://{address}{path}", data=data, headers=headers,
                                              timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                text = await resp.text()
                try:
                    doc = json.loads(text) if text else {}
                except ValueError:
                    doc = {"error": text}
                return resp.status, doc
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as e:
            raise PeerError(f"{address}: {e or type(e).__name__}") from None

    async def call(self, address: str, method: str, path: str, body=None, timeout: float = 10.0):
        """The metadata of a successful call; PeerError with the member's error text otherwise."""
        status, doc = await self.request(address, method, path, body, timeout)
        if status >= 400 or doc.get("type") == "error":
            raise PeerError(doc.get("error") or f"{address}: HTTP {status}")
        return doc.get("metadata")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
