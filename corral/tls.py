"""The TLS contexts live in corral/client/tls.py (the `corral` CLI's HTTPS remotes use them too);
server modules may keep importing them from here."""
from corral.client.tls import client_context, peer_der, server_context  # noqa: F401

__all__ = ["client_context", "peer_der", "server_context"]
