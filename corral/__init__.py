"""Corral: LXD rebuilt in Python."""

__version__ = "0.1.0"
# The LXD API level we mirror (clients compare against it).
LXD_VERSION = "5.0.2"
