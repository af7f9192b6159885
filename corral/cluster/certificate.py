"""The cluster certificate (`cluster.crt`/`cluster.key` in the daemon's directory, the same on every
member): checking a new pair and installing it (PUT /1.0/cluster/certificate rotates it everywhere).

LXD 5.0.2 writes the files first and only then finds out whether they load, which leaves a member
with an unusable pair; here a pair is checked completely before anything is written or sent on.
"""
from __future__ import annotations


from cryptography import x509
from cryptography.hazmat.primitives import serialization

from corral.errors import BadRequest
from corral.pki import certs

CRT, KEY = "cluster.crt", "cluster.key"


def files(paths) -> tuple[str, str]:
    return paths.join(CRT), paths.join(KEY)


def check_pair(cert_pem: str, key_pem: str) -> None:
    """A PEM certificate and the PEM private key of the same public key, or a 400 with LXD's texts."""
    if "-----BEGIN " not in (cert_pem or "") or "-----END " not in cert_pem:
        raise BadRequest("Certificate must be base64 encoded PEM certificate")
    if "-----BEGIN " not in (key_pem or "") or "-----END " not in key_pem:
        raise BadRequest("Private key must be base64 encoded PEM key")
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError:
        raise BadRequest("failed to load cluster TLS certificate: x509: malformed certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        raise BadRequest("failed to load cluster TLS certificate: tls: failed to parse private key") from None
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(*raw) != key.public_key().public_bytes(*raw):
        raise BadRequest("failed to load cluster TLS certificate: tls: private key does not match public key")


def install(paths, cert_pem: str, key_pem: str) -> tuple[str, str]:
    """Write the pair (key 0600, certificate 0644), each file replaced atomically; their paths."""
    crt, key = files(paths)
    certs.write_pair(crt, key, cert_pem, key_pem)
    return crt, key
