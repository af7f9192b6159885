"""`corral remote`: remotes reached over HTTPS, like lxc's.

Configuration lives in $CORRAL_CONF (default ~/.config/corral): config.yml (remotes and the default),
client.crt / client.key (generated on first use), servercerts/<remote>.crt (the pinned server
certificate accepted at `remote add`). The `local` remote is the unix socket and always exists.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import http.client
import json
import os
import socket
import ssl
import sys
import urllib.parse

import click
import yaml

from corral.cli.client import Client, ClientError
from corral.cli.main import Ctx, fail, group, pass_ctx
from corral.cli.output import format_option, print_list

LOCAL = "local"


def conf_dir() -> str:
    return os.environ.get("CORRAL_CONF") or os.path.join(os.path.expanduser("~"), ".config", "corral")


def _path(*parts: str) -> str:
    return os.path.join(conf_dir(), *parts)


def load() -> dict:
    try:
        with open(_path("config.yml")) as f:
            cfg = yaml.safe_load(f) or {}
    except FileNotFoundError:
        cfg = {}
    cfg.setdefault("default-remote", LOCAL)
    cfg.setdefault("remotes", {})
    local = {"addr": "unix://", "protocol": "lxd", "public": False}
    if (cfg["remotes"].get(LOCAL) or {}).get("project"):
        local["project"] = cfg["remotes"][LOCAL]["project"]
    cfg["remotes"][LOCAL] = local
    cfg.setdefault("aliases", {})
    return cfg


def save(cfg: dict) -> None:
    os.makedirs(conf_dir(), mode=0o700, exist_ok=True)
    out = {"default-remote": cfg["default-remote"],
           "remotes": {k: v for k, v in cfg["remotes"].items() if k != LOCAL or v.get("project")},
           "aliases": cfg.get("aliases") or {}}
    tmp = _path("config.yml.tmp")
    with open(tmp, "w") as f:
        yaml.safe_dump(out, f, default_flow_style=False)
    os.replace(tmp, _path("config.yml"))


def names() -> set[str]:
    return set(load()["remotes"])


class HttpsTarget:
    """An HTTPS remote: its URL, our client certificate, and its pinned server certificate."""

    def __init__(self, url: str, cert: str, key: str, server_cert_pem: str | None):
        self.url = url.rstrip("/")
        parsed = urllib.parse.urlsplit(self.url)
        self.hostname, self.port = parsed.hostname or "", parsed.port or 8443
        self.host = parsed.netloc
        self.cert, self.key, self.server_cert_pem = cert, key, server_cert_pem

    def ssl_context(self) -> ssl.SSLContext:
        from corral.pki import tls
        return tls.client_context(self.cert, self.key, self.server_cert_pem)

    def connection(self, timeout: float | None) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.hostname, self.port, context=self.ssl_context(), timeout=timeout)


def client_cert() -> tuple[str, str]:
    crt, key = _path("client.crt"), _path("client.key")
    if not (os.path.exists(crt) and os.path.exists(key)):
        from corral.pki import certs
        os.makedirs(conf_dir(), mode=0o700, exist_ok=True)
        click.echo("Generating a client certificate. This may take a minute...", err=True)
        cert_pem, key_pem = certs.generate(f"{os.environ.get('USER', 'root')}@{socket.gethostname()}")
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem)
        with open(crt, "wb") as f:
            f.write(cert_pem)
    return crt, key


def client_for(name: str, project: str | None = None) -> Client:
    cfg = load()
    if name not in cfg["remotes"]:
        fail(f'The remote "{name}" doesn\'t exist')
    remote = cfg["remotes"][name]
    project = project or remote.get("project") or None
    if name == LOCAL:
        return Client(project=project)
    crt, key = client_cert()
    try:
        with open(_path("servercerts", f"{name}.crt")) as f:
            pinned = f.read()
    except FileNotFoundError:
        pinned = None
    return Client(project=project, https=HttpsTarget(remote["addr"], crt, key, pinned))


def split(arg: str) -> tuple[str | None, str]:
    """'REMOTE:NAME' -> (REMOTE, NAME) when REMOTE is a configured remote; else (None, arg)."""
    if ":" in arg:
        remote, rest = arg.split(":", 1)
        if remote in names():
            return remote, rest
    return None, arg


# ---- adding a remote --------------------------------------------------------------------------

def _normalise(addr: str) -> str:
    if "://" not in addr:
        addr = "https://" + addr
    parsed = urllib.parse.urlsplit(addr)
    if parsed.scheme != "https":
        fail(f"Invalid URL scheme \"{parsed.scheme}\" in \"{addr}\"")
    port = parsed.port or 8443
    host = parsed.hostname or ""
    return f"https://{('[' + host + ']') if ':' in host else host}:{port}"


def _server_cert(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    try:
        return ssl.get_server_certificate((parsed.hostname, parsed.port or 8443), timeout=30)
    except OSError as e:
        fail(f"Unable to connect to: {parsed.netloc} ({e})")


def _decode_token(value: str) -> dict | None:
    try:
        tok = json.loads(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return tok if isinstance(tok, dict) and tok.get("secret") and tok.get("fingerprint") else None


@group()
def remote() -> None:
    """Manage the list of remote servers."""


@remote.command("add")
@click.argument("name")
@click.argument("addr", required=False)
@click.option("--accept-certificate", is_flag=True, help="Accept certificate")
@click.option("--password", default=None, help="Remote admin password")
@click.option("--token", default=None, help="Remote trust token")
@click.option("--public", is_flag=True, help="Public image server")
@click.option("--protocol", default="lxd", show_default=True, help="Server protocol (lxd or simplestreams)")
@click.option("--auth-type", default="tls", show_default=True, help="Server authentication type (tls or candid)")
@click.option("--project", "remote_project", default="", help="Project to use for the remote")
@click.option("--domain", default="", help="Candid domain to use")
def add(name: str, addr: str | None, accept_certificate: bool, password: str | None, token: str | None,
        public: bool, protocol: str, auth_type: str, remote_project: str, domain: str) -> None:
    """Add new remote servers: corral remote add NAME (ADDRESS | TOKEN).

    URL for remote resources must be HTTPS (https://).

    Basic authentication can be used when combined with the "simplestreams" protocol:
    corral remote add some-name https://LOGIN:PASSWORD@example.com/some/path --protocol=simplestreams"""
    cfg = load()
    if name in cfg["remotes"]:
        fail(f"Remote {name} exists as <{cfg['remotes'][name]['addr']}>")
    if ":" in name or not name:
        fail("Remote names may not contain colons")
    if protocol not in ("lxd", "simplestreams"):
        fail(f"Invalid protocol: {protocol}")
    if auth_type == "candid" or domain:
        fail("Candid authentication is not supported by Corral (use tls)")
    if protocol == "simplestreams":
        # A public image server: nothing to trust, nothing to contact now (as lxc).
        if not addr:
            fail("An address is required")
        url = addr if "://" in addr else "https://" + addr
        cfg["remotes"][name] = {"addr": url.rstrip("/"), "protocol": "simplestreams", "public": True}
        save(cfg)
        return
    decoded = _decode_token(token or addr or "")
    if decoded is not None:
        addresses = decoded.get("addresses") or []
        if not addresses:
            fail("The token doesn't contain any address")
        last = None
        for a in addresses:
            url = _normalise(a)
            try:
                pem = _server_cert(url)
            except ClientError as e:
                last = e
                continue
            break
        else:
            raise last or ClientError("Unable to connect to any of the token's addresses")
        got = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()
        if got != decoded["fingerprint"]:
            fail(f"Certificate fingerprint mismatch between certificate token and server \"{url}\"")
        secret = token or addr
    else:
        if not addr:
            fail("An address or a token is required")
        url = _normalise(addr)
        pem = _server_cert(url)
        got = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()
        if not accept_certificate:
            if not sys.stdin.isatty():
                fail(f"Certificate fingerprint: {got}\nUse --accept-certificate to accept it")
            answer = click.prompt(f"Certificate fingerprint: {got}\nok (y/n/[fingerprint])?")
            if answer.strip().lower() not in ("y", "yes", got):
                fail("Server certificate NACKed by user")
        secret = password
    os.makedirs(_path("servercerts"), mode=0o700, exist_ok=True)
    crt, key = client_cert()
    c = Client(https=HttpsTarget(url, crt, key, pem))
    server = c.metadata("/1.0") or {}
    if server.get("auth") != "trusted" and not public:
        if secret is None:
            secret = click.prompt(f"Admin password (or token) for {name}", hide_input=True)
        c.post("/1.0/certificates", {"type": "client", "password": secret})
        server = c.metadata("/1.0") or {}
        if server.get("auth") != "trusted":
            fail("Server doesn't trust us after authentication")
        click.echo(f"Client certificate now trusted by server: {name}")
    with open(_path("servercerts", f"{name}.crt"), "w") as f:
        f.write(pem)
    cfg["remotes"][name] = {"addr": url, "protocol": "lxd", "public": bool(public)}
    if auth_type != "tls":
        cfg["remotes"][name]["auth_type"] = auth_type
    if remote_project:
        cfg["remotes"][name]["project"] = remote_project
    save(cfg)


@remote.command("list")
@format_option()
def list_(fmt: str) -> None:
    """List the available remotes."""
    cfg = load()
    rows = []
    for n in sorted(cfg["remotes"]):
        r = cfg["remotes"][n]
        label = f"{n} (current)" if n == cfg["default-remote"] else n
        auth = "file access" if n == LOCAL else (
            "none" if r.get("protocol") == "simplestreams" else r.get("auth_type") or "tls")
        rows.append([label, r["addr"], r.get("protocol", "lxd"), auth,
                     "YES" if r.get("public") else "NO", "YES" if n == LOCAL else "NO", "NO"])
    print_list(fmt, ["NAME", "URL", "PROTOCOL", "AUTH TYPE", "PUBLIC", "STATIC", "GLOBAL"], rows,
               {n: cfg["remotes"][n] for n in sorted(cfg["remotes"])})


@remote.command("remove")
@click.argument("name")
def remove(name: str) -> None:
    """Remove remotes."""
    cfg = load()
    if name not in cfg["remotes"]:
        fail(f"Remote {name} doesn't exist")
    if name == LOCAL:
        fail(f"Remote {name} is static and cannot be modified")
    if cfg["default-remote"] == name:
        fail("Can't remove the default remote")
    del cfg["remotes"][name]
    try:
        os.unlink(_path("servercerts", f"{name}.crt"))
    except FileNotFoundError:
        pass
    save(cfg)


@remote.command("rename")
@click.argument("old")
@click.argument("new")
def rename(old: str, new: str) -> None:
    """Rename remotes."""
    cfg = load()
    if old not in cfg["remotes"]:
        fail(f"Remote {old} doesn't exist")
    if old == LOCAL:
        fail(f"Remote {old} is static and cannot be modified")
    if new in cfg["remotes"]:
        fail(f"Remote {new} already exists")
    cfg["remotes"][new] = cfg["remotes"].pop(old)
    if cfg["default-remote"] == old:
        cfg["default-remote"] = new
    src = _path("servercerts", f"{old}.crt")
    if os.path.exists(src):
        os.replace(src, _path("servercerts", f"{new}.crt"))
    save(cfg)


@remote.command("switch")
@click.argument("name")
def switch(name: str) -> None:
    """Switch the default remote."""
    cfg = load()
    if name not in cfg["remotes"]:
        fail(f"Remote {name} doesn't exist")
    cfg["default-remote"] = name
    save(cfg)


@remote.command("get-default")
def get_default() -> None:
    """Show the default remote."""
    click.echo(load()["default-remote"])


@remote.command("set-url")
@click.argument("name")
@click.argument("url")
def set_url(name: str, url: str) -> None:
    """Set the URL for the remote."""
    cfg = load()
    if name not in cfg["remotes"] or name == LOCAL:
        fail(f"Remote {name} doesn't exist" if name not in cfg["remotes"] else
             f"Remote {name} is static and cannot be modified")
    cfg["remotes"][name]["addr"] = _normalise(url)
    save(cfg)


__all__ = ["remote", "client_for", "split", "names", "HttpsTarget", "Ctx", "pass_ctx"]
