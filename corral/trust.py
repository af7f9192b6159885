"""Trust: the certificate store, the trust password (hashed like LXD) and certificate add tokens.

Clients on the HTTPS API are identified by the SHA-256 fingerprint of their TLS client certificate on
every request; `Trust.lookup()` answers from an in-memory cache that every write refreshes, so a
removed certificate is refused from the next request on.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from corral import tokenops
from corral.apitypes import CertificatePut
from corral.config.values import parse_expiry
from corral.db import Database
from corral.db.queries import certificates as q
from corral.errors import BadRequest, NotFound

CERT_TYPES = ("client", "metrics")
CERT_TOKEN = "Certificate add token"   # the description of a certificate add token operation
_FP_RE = re.compile(r"^[0-9a-f]{1,64}$")


# ---- the trust password (LXD: hex(salt) + hex(scrypt(password, salt, 1<<14, 8, 1, 64))) --------------

def hash_password(password: str) -> str:
    salt = secrets.token_bytes(32)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=1 << 14, r=8, p=1, dklen=64, maxmem=64 << 20)
    return (salt + digest).hex()


def check_password(stored: str, password: str) -> bool:
    if not stored or not password:
        return False
    try:
        raw = bytes.fromhex(stored)
    except ValueError:
        return False
    if len(raw) != 96:
        return False
    salt, digest = raw[:32], raw[32:]
    got = hashlib.scrypt(password.encode(), salt=salt, n=1 << 14, r=8, p=1, dklen=64, maxmem=64 << 20)
    return hmac.compare_digest(got, digest)


def looks_hashed(value: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-f]{192}", value or ""))


# ---- certificate material -------------------------------------------------------------------------

def der_fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def parse_certificate(b64: str) -> tuple[str, str, str]:
    """A base64 DER certificate from a request -> (fingerprint, PEM, common name); a 400 on garbage."""
    if not isinstance(b64, str):
        raise BadRequest('Invalid value for field "certificate": expected string')
    try:
        # Go's base64 decoder (LXD) skips newlines: pylxd sends the PEM body lines as they are.
        der = base64.b64decode(b64.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError) as e:
        raise BadRequest(f"illegal base64 data: {e}") from None
    try:
        cert = x509.load_der_x509_certificate(der)
        cn = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
        name = str(cn[0].value) if cn else ""
        pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    except Exception as e:  # cryptography raises ValueError and friends on malformed input
        raise BadRequest(f"invalid certificate material: {e}") from None
    return der_fingerprint(der), pem, name


def der_to_pem(der: bytes) -> tuple[str, str]:
    """A TLS peer certificate (DER) -> (PEM, common name)."""
    cert = x509.load_der_x509_certificate(der)
    cn = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    return cert.public_bytes(serialization.Encoding.PEM).decode(), (str(cn[0].value) if cn else "")


# ---- tokens (corral/tokenops.py: LXD's token operations) ------------------------------------------

encode_token = tokenops.encode   # LXD's CertificateAddToken string


def decode_token(value: str) -> dict | None:
    raw = tokenops.decode(value)
    if raw is None or not isinstance(raw.get("secret"), str) or not raw.get("secret"):
        return None
    return raw


class Trust:
    def __init__(self, db: Database, operations):
        self.db = db
        self.operations = operations
        self._by_fp: dict[str, dict] = {}

    async def load(self) -> None:
        async with self.db.session() as tx:
            certs = await q.get_all(tx)
        self._by_fp = {c["fingerprint"]: c for c in certs}

    def lookup(self, fingerprint: str) -> dict | None:
        return self._by_fp.get(fingerprint)

    @staticmethod
    def api(c: dict) -> dict:
        return {"name": c["name"], "type": c["type"], "restricted": c["restricted"],
                "projects": list(c["projects"]), "certificate": c["certificate"],
                "fingerprint": c["fingerprint"]}

    @staticmethod
    def writable(c: dict) -> dict:
        return {"name": c["name"], "type": c["type"], "restricted": c["restricted"],
                "projects": list(c["projects"]), "certificate": c["certificate"]}

    async def get_all(self) -> list[dict]:
        async with self.db.session() as tx:
            return [self.api(c) for c in await q.get_all(tx)]

    async def get(self, fingerprint: str) -> dict:
        """By full fingerprint or a unique prefix, as LXD."""
        fingerprint = fingerprint.lower()
        if not _FP_RE.match(fingerprint):
            raise NotFound("Certificate not found")
        async with self.db.session() as tx:
            c = await q.get(tx, fingerprint)
            if c is None:
                matches = [x for x in await q.get_all(tx) if x["fingerprint"].startswith(fingerprint)]
                if len(matches) > 1:
                    raise BadRequest("More than one certificate matches")
                c = matches[0] if matches else None
        if c is None:
            raise NotFound("Certificate not found")
        return self.api(c)

    @staticmethod
    def check_fields(req: CertificatePut, projects_exist) -> tuple[str, str, bool, list[str]]:
        name, ctype, restricted, projects = req.name, req.type or "client", req.restricted, req.projects
        if "/" in name or "\n" in name or len(name) > 255:
            raise BadRequest("Invalid certificate name")
        if ctype not in CERT_TYPES:
            if ctype == "server":
                raise BadRequest(f'Certificate type "{ctype}" is not supported')
            raise BadRequest(f'Unknown certificate type "{ctype}"')
        for p in projects:
            if not projects_exist(p):
                raise NotFound(f'Project "{p}" not found')
        return name, ctype, restricted, sorted(set(projects))

    async def add(self, fingerprint: str, pem: str, *, name: str, ctype: str = "client",
                  restricted: bool = False, projects: list[str] | None = None) -> None:
        cert = {"fingerprint": fingerprint, "type": ctype, "name": name, "certificate": pem,
                "restricted": restricted, "projects": projects or []}
        async with self.db.transaction() as tx:
            if await q.get(tx, fingerprint) is not None:
                raise BadRequest("Certificate already in trust store")
            await q.create(tx, cert)
        await self.load()

    async def update(self, fingerprint: str, new: dict) -> None:
        async with self.db.transaction() as tx:
            await q.update(tx, fingerprint, new)
        await self.load()

    async def delete(self, fingerprint: str) -> None:
        async with self.db.transaction() as tx:
            await q.delete(tx, fingerprint)
        await self.load()

    async def rename_project(self, old: str, new: str) -> None:
        async with self.db.transaction() as tx:
            await q.rename_project(tx, old, new)
        await self.load()

    # ---- tokens ---------------------------------------------------------------------------

    def create_token(self, request: dict, *, fingerprint: str, addresses: list[str], expiry: str):
        meta = {"secret": tokenops.new_secret(), "fingerprint": fingerprint, "addresses": addresses,
                "request": request}
        if expiry:
            meta["expiresAt"] = tokenops.expires_at(parse_expiry(expiry))
        return tokenops.work(CERT_TOKEN, meta)

    def redeem_token(self, secret: str) -> dict | None:
        """The request a token was made for, consuming it (tokens are single use), or None.

        An expired token is consumed too and then refused."""
        op = tokenops.redeem(self.operations, lambda o: o.description == CERT_TOKEN
                             and tokenops.same_secret(o.metadata, secret))
        return None if op is None else (op.metadata or {}).get("request") or {}
