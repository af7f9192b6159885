"""The HTTPS listener on core.https_address: started, moved or stopped at run time, no restart."""
from __future__ import annotations

import ipaddress
import logging
import socket

from aiohttp import web

from corral import netguard
from corral.pki import tls
from corral.errors import BadRequest

log = logging.getLogger(__name__)

DEFAULT_PORT = 8443


def split_address(address: str) -> tuple[str, int]:
    """LXD's listen address forms: "1.2.3.4", "1.2.3.4:8443", "[::1]:8443", ":8443", "[::]"."""
    address = address.strip()
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif address.count(":") == 1:
        host, port = address.split(":")
    elif address.count(":") > 1:  # a bare IPv6 address
        host, port = address, ""
    else:
        host, port = address, ""
    try:
        return host, int(port) if port else DEFAULT_PORT
    except ValueError:
        raise BadRequest(f'Invalid port in address "{address}"') from None


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen_addresses(address: str) -> list[str]:
    """What clients can dial (LXD's util.ListenAddresses): a wildcard expands to the host's addresses."""
    if not address:
        return []
    host, port = split_address(address)
    if host not in ("", "0.0.0.0", "::"):
        return [_join(host, port)]
    out = []
    for fam, _, _, _, sa in socket.getaddrinfo(socket.gethostname(), None, proto=socket.IPPROTO_TCP):
        ip = sa[0]
        if fam == socket.AF_INET6 and host == "0.0.0.0":
            continue
        addr = ipaddress.ip_address(ip.split("%")[0])
        if addr.is_loopback or addr.is_link_local:
            continue
        out.append(_join(ip, port))
    return sorted(set(out))


class HttpsListener:
    def __init__(self, runner: web.AppRunner, cert_file: str, key_file: str, label: str = "https"):
        self.runner = runner
        self.label = label   # "https" (the API) or "metrics" (core.metrics_address)
        self.cert_file = cert_file
        self.key_file = key_file
        self.address = ""
        self._site: netguard.GuardedSite | None = None
        self._ctx = None   # the live TLS context: reload() swaps the certificate in it

    async def apply(self, address: str) -> None:
        """Listen on `address` (stop listening when empty). Binds the new socket before closing the old."""
        if address == self.address and (self._site is not None or not address):
            return
        new = ctx = None
        if address:
            host, port = split_address(address)
            ctx = tls.server_context(self.cert_file, self.key_file)
            try:
                socks = netguard.tcp_sockets(host or None, port)
            except OSError as e:
                raise BadRequest(f'Failed to listen on {address}: {e.strerror or e}') from None
            guard = netguard.Guard(self.label, netguard.Limits.for_listener("https"), netguard.tcp_peer)
            new = netguard.GuardedSite(self.runner, socks, guard, f"https://{_join(host, port)}", ssl_context=ctx)
            await new.start()
            log.info("%s listening on %s", "HTTPS API" if self.label == "https" else "Metrics server", address)
        if self._site is not None:
            await self._site.stop()
        self._site, self.address = new, address
        self._ctx = ctx if new is not None else None

    def reload(self, cert_file: str, key_file: str) -> None:
        """Serve another certificate (the cluster's, or a rotated one). The pair is loaded into a
        scratch context first, so a bad one raises and leaves the listener as it was; then into the
        live context: new connections get it, open ones go on."""
        tls.server_context(cert_file, key_file)
        self.cert_file, self.key_file = cert_file, key_file
        if self._ctx is not None:
            self._ctx.load_cert_chain(cert_file, key_file)

    def addresses(self) -> list[str]:
        return listen_addresses(self.address)

    async def stop(self) -> None:
        if self._site is not None:
            await self._site.stop()
            self._site = None

