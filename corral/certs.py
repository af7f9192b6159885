"""Certificates live in corral/client/certs.py (the `corral` CLI makes its client certificate with
them too); server modules may keep importing them from here."""
from corral.client.certs import ensure_server_cert, fingerprint, generate  # noqa: F401

__all__ = ["ensure_server_cert", "fingerprint", "generate"]
