"""`corrald init`: LXD preseed documents applied through the API, as `lxd init` does."""
from __future__ import annotations

import yaml

SECTIONS = ("config", "profiles", "storage_pools", "networks", "projects", "cluster")


def parse_preseed(text: str) -> dict:
    doc = yaml.safe_load(text) or {}
    if not isinstance(doc, dict):
        raise ValueError("Invalid preseed: expected a YAML mapping")
    unknown = [k for k in doc if k not in SECTIONS]
    if unknown:
        raise ValueError(f"Invalid preseed: unknown section(s): {', '.join(unknown)}")
    for section in ("networks", "projects"):
        if doc.get(section):
            raise ValueError(f"Invalid preseed: not implemented: {section}")
    if doc.get("cluster"):
        raise ValueError("Invalid preseed: not implemented: cluster")
    if not isinstance(doc.get("config") or {}, dict):
        raise ValueError("Invalid preseed: `config` must be a mapping")
    for section in ("profiles", "storage_pools"):
        if not isinstance(doc.get(section) or [], list):
            raise ValueError(f"Invalid preseed: `{section}` must be a list")
    return doc


def auto_preseed() -> dict:
    """What `init --auto` sets up: a `dir` pool named default, used by the default profile's root disk."""
    return {"config": {},
            "storage_pools": [{"name": "default", "driver": "dir", "config": {}, "description": ""}],
            "profiles": [{"name": "default",
                          "devices": {"root": {"type": "disk", "path": "/", "pool": "default"}}}]}


def apply_preseed(client, doc: dict) -> None:
    config = doc.get("config") or {}
    if config:
        client.patch("/1.0", {"config": config})
    existing_pools = client.metadata("/1.0/storage-pools")
    for pool in doc.get("storage_pools") or []:
        if not isinstance(pool, dict) or not pool.get("name"):
            raise ValueError("Invalid preseed: every storage pool needs a name")
        if f"/1.0/storage-pools/{pool['name']}" not in existing_pools:
            client.post("/1.0/storage-pools", {k: pool.get(k) for k in ("name", "driver", "config", "description")})
    for profile in doc.get("profiles") or []:
        if not isinstance(profile, dict) or not profile.get("name"):
            raise ValueError("Invalid preseed: every profile needs a name")
        name = profile["name"]
        body = {k: profile.get(k) for k in ("description", "config", "devices") if k in profile}
        existing = client.metadata("/1.0/profiles")
        if f"/1.0/profiles/{name}" in existing:
            client.patch(f"/1.0/profiles/{name}", body)  # merge, so `init --auto` twice is harmless
        else:
            client.post("/1.0/profiles", {"name": name, **body})
