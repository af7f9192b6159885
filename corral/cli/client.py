"""The CLI's REST client lives in corral/client/ (corrald's lxd-style subcommands use it too)."""
from corral.client import Client, ClientError, _op_path, default_socket_path

__all__ = ["Client", "ClientError", "_op_path", "default_socket_path"]
