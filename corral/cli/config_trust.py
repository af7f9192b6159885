"""`corral config trust`: trusted client certificates and certificate add tokens (lxc's
config_trust.go). `--type metrics` is sent as is; the server must have the `metrics` extension."""

from __future__ import annotations

import base64
import json
import os
import ssl
import sys

import click

from corral.cli.base import client_of, default_remote, flag, format_opt, lxc_command, name_of, option, parse_remote, q
from corral.cli.edit import edit_loop, go_string
from corral.cli.main import CONTEXT_SETTINGS, Ctx, fail, group
from corral.cli.output import format_time_long, mark_times, print_list, to_yaml

FIELDS = ("name", "type", "restricted", "projects", "certificate", "fingerprint")

TRUST_HELP = """### This is a YAML representation of the certificate.
### Any line starting with a '# will be ignored.
###
### Note that the fingerprint is shown but cannot be changed"""

ADD_HELP = """Add new trusted client.

\b
The following certificate types are supported:
- client (default)
- metrics

If the certificate is omitted, a token will be generated and returned. A client
providing a valid token will have its client certificate added to the trusted list
and the consumed token will be invalidated. Similar to certificates, tokens can be
restricted to one or more projects."""


def ordered(cert: dict) -> dict:
    out = {k: cert.get(k) for k in FIELDS if k in cert}
    if out.get("projects") is None and "projects" in out:
        out["projects"] = []
    out.update({k: v for k, v in cert.items() if k not in out})
    return out


@group("trust", context_settings=CONTEXT_SETTINGS)
def trust() -> None:
    """Manage trusted clients."""


def _split_remote_args(args: list[str]) -> tuple[str | None, list[str]]:
    """`[<remote>:] rest...`: a first argument ending in ':' names the remote."""
    if args and args[0].endswith(":") and "/" not in args[0]:
        return args[0], args[1:]
    return None, args


@lxc_command(trust, "add", "[<remote>:] [<cert>]", ADD_HELP,
             "corral config trust add client.crt\n    Trust the certificate in client.crt.\n\n"
             "corral config trust add --name laptop\n    Make a token another client can use to become trusted.\n\n"
             "corral config trust add prometheus.crt --type metrics\n    Let a Prometheus server scrape /1.0/metrics.",
             max_args=2,
             options=(option("--name", default="", help="Alternative certificate name"),
                      option("--projects", default="", help="List of projects to restrict the certificate to"),
                      flag("--restricted", help="Restrict the certificate to one or more projects"),
                      option("--type", "cert_type", default="client", show_default=True, help="Type of certificate")))
def trust_add(ctx: Ctx, args: list[str], name: str, projects: str, restricted: bool, cert_type: str) -> None:
    remote, rest = _split_remote_args(args)
    if len(rest) > 1:
        fail("Invalid number of arguments")
    client = client_of(ctx, remote) if remote else ctx.client
    if cert_type not in ("client", "metrics"):
        fail(f'Unknown certificate type "{cert_type}"')
    if cert_type == "metrics" and not client.has_extension("metrics"):
        fail("The server doesn't implement metrics")
    body: dict = {"type": cert_type, "restricted": restricted,
                  "projects": [p for p in projects.split(",") if p] if projects else []}
    if not rest:
        if not name:
            if not sys.stdin.isatty():
                sys.stdout.write("Please provide client name: ")
                sys.stdout.flush()
                line = sys.stdin.readline()
                if not line:
                    fail("EOF")
                name = line.strip()
            else:
                name = click.prompt("Please provide client name", prompt_suffix=": ").strip()
        body.update({"name": name, "token": True})
        env = client.post("/1.0/certificates", body)
        op = env.get("metadata") or {}
        meta = op.get("metadata") or {}
        token = encode_token(name, meta)
        if not ctx.quiet:
            click.echo(f"Client {name} certificate add token:")
        click.echo(token)
        return
    path = rest[0]
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        fail(f"open {path}: {(exc.strerror or str(exc)).lower()}")
    try:
        der = ssl.PEM_cert_to_DER_cert(data.decode()) if b"-----BEGIN" in data else data
    except (ValueError, UnicodeDecodeError):
        fail("Invalid certificate")
    body.update({"certificate": base64.b64encode(der).decode(), "name": name or os.path.basename(path)})
    client.post("/1.0/certificates", body)


def encode_token(name: str, meta: dict) -> str:
    """The certificate add token lxc prints: base64 of api.CertificateAddToken's JSON."""
    tok = {"client_name": name, "fingerprint": meta.get("fingerprint", ""), "addresses": meta.get("addresses") or [],
           "secret": meta.get("secret", ""), "expires_at": meta.get("expiresAt") or "0001-01-01T00:00:00Z"}
    return base64.b64encode(json.dumps(tok, separators=(",", ":")).encode()).decode()


@lxc_command(trust, "list", "[<remote>:]", "List trusted clients.", "corral config trust list\n"
             "    List the trusted certificates.", aliases=("ls",), max_args=1, options=(format_opt(),))
def trust_list(ctx: Ctx, args: list[str], fmt: str) -> None:
    client = client_of(ctx, args[0]) if args else ctx.client
    certs = [ordered(c) for c in client.metadata("/1.0/certificates", params={"recursion": 1}) or []]
    rows = []
    for c in certs:
        cn, issued, expires = _cert_facts(c.get("certificate", ""))
        rows.append([c.get("type", ""), c.get("name", ""), cn, c.get("fingerprint", "")[:12], issued, expires])
    rows.sort(key=lambda r: r[3])
    print_list(fmt, ["TYPE", "NAME", "COMMON NAME", "FINGERPRINT", "ISSUE DATE", "EXPIRY DATE"], rows, certs)


def _cert_facts(pem: str) -> tuple[str, str, str]:
    """(common name, issue date, expiry date) of a PEM certificate."""
    try:
        from cryptography import x509
        from cryptography.x509.oid import NameOID
        cert = x509.load_pem_x509_certificate(pem.encode())
    except Exception:
        return "", "", ""
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = cns[0].value if cns else ""
    start = cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    end = cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(cn), format_time_long(start), format_time_long(end)


def _tokens(client) -> list[dict]:
    ops = client.metadata("/1.0/operations", params={"recursion": 1}) or {}
    out = []
    for op in ops.get("running") or []:
        meta = op.get("metadata") or {}
        if op.get("class") != "token" or not isinstance(meta.get("request"), dict):
            continue
        out.append({"op": op, "name": meta["request"].get("name", ""), "meta": meta})
    return out


@lxc_command(trust, "list-tokens", "[<remote>:]", "List all active certificate add tokens.",
             "corral config trust list-tokens\n    List the tokens not used yet.", max_args=1, options=(format_opt(),))
def trust_list_tokens(ctx: Ctx, args: list[str], fmt: str) -> None:
    client = client_of(ctx, args[0]) if args else ctx.client
    rows, raw = [], []
    for t in _tokens(client):
        token = encode_token(t["name"], t["meta"])
        expires = t["meta"].get("expiresAt") or ""
        shown = format_time_long(expires) if expires and not expires.startswith("0001") else ""
        rows.append([t["name"], token, shown])
        raw.append({"ClientName" if fmt == "json" else "clientname": t["name"],
                    "Token" if fmt == "json" else "token": token,
                    "ExpiresAt" if fmt == "json" else "expiresat": shown})
    print_list(fmt, ["NAME", "TOKEN", "EXPIRES AT"], rows, raw)


@lxc_command(trust, "revoke-token", "[<remote>:] <name>", "Revoke certificate add token.",
             "corral config trust revoke-token laptop\n    Revoke the token made for the client laptop.",
             min_args=1, max_args=2)
def trust_revoke_token(ctx: Ctx, args: list[str]) -> None:
    remote, rest = _split_remote_args(args)
    if len(rest) != 1:
        fail("Invalid number of arguments")
    client = client_of(ctx, remote) if remote else ctx.client
    for t in _tokens(client):
        if t["name"] == rest[0]:
            client.delete(f"/1.0/operations/{t['op']['id']}")
            if not ctx.quiet:
                click.echo(f"Certificate add token for {rest[0]} deleted")
            return
    remote_name = (parse_remote(remote)[0] if remote else None) or ctx.remote or default_remote()
    fail(f"No certificate add token for member {rest[0]} on remote: {remote_name}")


@lxc_command(trust, "show", "[<remote>:]<fingerprint>", "Show trust configurations.",
             "corral config trust show 0b92a3df1837\n    Show a trusted certificate.", min_args=1, max_args=1)
def trust_show(ctx: Ctx, args: list[str]) -> None:
    obj = client_of(ctx, args[0]).metadata(f"/1.0/certificates/{q(name_of(args[0]))}") or {}
    click.echo(to_yaml(mark_times(ordered(obj))), nl=False)


@lxc_command(trust, "edit", "[<remote>:]<fingerprint>", "Edit trust configurations as YAML.",
             "corral config trust edit <fingerprint> < cert.yaml\n    Update a certificate from cert.yaml.",
             min_args=1, max_args=1)
def trust_edit(ctx: Ctx, args: list[str]) -> None:
    client = client_of(ctx, args[0])
    path = f"/1.0/certificates/{q(name_of(args[0]))}"
    obj, etag = client.get_etag(path)

    def apply(data: dict) -> None:
        projects = data.get("projects")
        client.put(path, {"name": go_string(data.get("name")), "type": go_string(data.get("type")),
                          "restricted": bool(data.get("restricted", False)),
                          "projects": [go_string(p) for p in projects] if isinstance(projects, list) else [],
                          "certificate": go_string(data.get("certificate"))}, etag=etag)

    edit_loop(ordered(obj or {}), apply, TRUST_HELP)


@lxc_command(trust, "remove", "[<remote>:]<fingerprint>", "Remove trusted client.",
             "corral config trust remove 0b92a3df1837\n    Stop trusting a certificate.", aliases=("rm",),
             min_args=1, max_args=1)
def trust_remove(ctx: Ctx, args: list[str]) -> None:
    client_of(ctx, args[0]).delete(f"/1.0/certificates/{q(name_of(args[0]))}")


__all__ = ["trust", "encode_token"]
