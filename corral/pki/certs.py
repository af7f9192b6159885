"""TLS certificates: the server's own (made at first start) and fingerprints, as LXD does them."""
from __future__ import annotations

import datetime
import hashlib
import os
import socket

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def fingerprint(cert_pem: bytes | str) -> str:
    if isinstance(cert_pem, str):
        cert_pem = cert_pem.encode()
    cert = x509.load_pem_x509_certificate(cert_pem)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def generate(common_name: str, *, days: int = 3650) -> tuple[bytes, bytes]:
    """An ECDSA P-384 certificate like LXD's (O=linuxcontainers.org, CN=user@host)."""
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "linuxcontainers.org"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    alt = [x509.DNSName(socket.gethostname())]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, content_commitment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
                                                  x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .sign(key, hashes.SHA384()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def ensure_server_cert(directory: str) -> tuple[str, str]:
    """Paths of server.crt/server.key in `directory`, generated on first use (key mode 0600)."""
    crt, key = os.path.join(directory, "server.crt"), os.path.join(directory, "server.key")
    if not (os.path.exists(crt) and os.path.exists(key)):
        cert_pem, key_pem = generate(f"root@{socket.gethostname()}")
        write_pair(crt, key, cert_pem, key_pem)
    return crt, key


def write_pair(crt: str, key: str, cert_pem: bytes | str, key_pem: bytes | str) -> None:
    """Write a certificate and its key (key 0600, certificate 0644), each staged, synced, then both
    put in place (the key first)."""
    staged = []
    for path, data, mode in ((key, key_pem, 0o600), (crt, cert_pem, 0o644)):
        tmp = path + ".new"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        staged.append((tmp, path))
    for tmp, path in staged:
        os.replace(tmp, path)
