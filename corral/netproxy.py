"""Outbound proxies from the server's core.proxy_http / core.proxy_https / core.proxy_ignore_hosts,
as LXD's ProxyFromConfig (golang.org/x/net/http/httpproxy's rules for the ignore list): "*" matches
every host; an entry matches the host itself and, as a domain, its subdomains ("example.com" and
".example.com" both match "a.example.com"); an IP or CIDR entry matches addresses in it."""
from __future__ import annotations

import ipaddress
import urllib.parse


def _ignored(host: str, ignore: str) -> bool:
    host = host.lower().strip("[]")
    for entry in (e.strip().lower() for e in ignore.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        try:
            if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                return True
            continue
        except ValueError:
            pass
        name = entry.split(":")[0].lstrip(".")
        if host == name or host.endswith("." + name):
            return True
    return False


def proxy_for(cfg, url: str) -> str | None:
    """The proxy URL to reach `url` through, or None for a direct connection."""
    parts = urllib.parse.urlsplit(url)
    proxy = cfg.get("core.proxy_https") if parts.scheme == "https" else cfg.get("core.proxy_http")
    if not proxy or _ignored(parts.hostname or "", cfg.get("core.proxy_ignore_hosts") or ""):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"
