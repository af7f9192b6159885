"""Validation of entity names (profiles, instances, snapshots, ...), with LXD-like messages."""
from __future__ import annotations

import re

from corral.errors import BadRequest

_HOSTNAME_LABEL = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$")


def check_entity_name(kind: str, name) -> str:
    """Profiles, projects, aliases: printable, no slash, not '.' / '..', at most 255 bytes."""
    if not isinstance(name, str) or name == "":
        raise BadRequest(f"No {kind} name provided" if not name else f"Invalid {kind} name")
    if name in (".", ".."):
        raise BadRequest(f'Invalid {kind} name "{name}"')
    if "/" in name:
        raise BadRequest(f"{kind.capitalize()} names may not contain slashes")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in name):
        raise BadRequest(f"{kind.capitalize()} names may not contain spaces or control characters")
    if len(name.encode()) > 255:
        raise BadRequest(f"{kind.capitalize()} name is too long (255 bytes at most)")
    return name


def check_instance_name(name) -> str:
    """Instance names are hostnames: letters, digits and dashes, not starting with a digit or dash."""
    if not isinstance(name, str) or not name:
        raise BadRequest("No instance name provided")
    if len(name) > 63 or not _HOSTNAME_LABEL.match(name) or name[0].isdigit():
        raise BadRequest(f'Invalid instance name "{name}": names may only contain letters, digits '
                         "and dashes, must not start with a digit or a dash, and are at most 63 characters")
    return name
