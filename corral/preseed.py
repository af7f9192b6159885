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
    if doc.get("projects"):
        raise ValueError("Invalid preseed: not implemented: projects")
    if doc.get("cluster"):
        raise ValueError("Invalid preseed: not implemented: cluster")
    if not isinstance(doc.get("config") or {}, dict):
        raise ValueError("Invalid preseed: `config` must be a mapping")
    for section in ("profiles", "storage_pools", "networks"):
        if not isinstance(doc.get(section) or [], list):
            raise ValueError(f"Invalid preseed: `{section}` must be a list")
    return doc


def auto_network(client) -> str | None:
    """The bridge `init --auto` adds (LXD's lxdbr0): the first free corralbrN, when this host can
    run managed bridges and no managed network exists yet; None otherwise."""
    import shutil
    if shutil.which("dnsmasq") is None or shutil.which("nft") is None:
        return None
    nets = client.metadata("/1.0/networks", params={"recursion": 1}) or []
    if any(n.get("managed") for n in nets):
        return None
    taken = {n.get("name") for n in nets}
    idx = 0
    while f"corralbr{idx}" in taken:
        idx += 1
    return f"corralbr{idx}"


def auto_preseed(client=None) -> dict:
    """What `init --auto` sets up: a `dir` pool named default, used by the default profile's root disk,
    and (given a client, on a host that can run it) a managed bridge with eth0 on it in that profile."""
    doc = {"config": {},
           "storage_pools": [{"name": "default", "driver": "dir", "config": {}, "description": ""}],
           "profiles": [{"name": "default",
                         "devices": {"root": {"type": "disk", "path": "/", "pool": "default"}}}]}
    if client is not None:
        profile = client.metadata("/1.0/profiles/default")
        has_nic = any(d.get("type") == "nic" for d in (profile.get("devices") or {}).values())
        bridge = None if has_nic else auto_network(client)
        if bridge:
            doc["networks"] = [{"name": bridge, "type": "bridge", "description": "", "auto": True,
                                "config": {"ipv4.address": "auto", "ipv6.address": "none"}}]
            doc["profiles"][0]["devices"]["eth0"] = {"type": "nic", "name": "eth0", "network": bridge}
    return doc


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
    existing_nets = {n["name"]: n for n in client.metadata("/1.0/networks", params={"recursion": 1}) or []}
    for net in doc.get("networks") or []:
        if not isinstance(net, dict) or not net.get("name"):
            raise ValueError("Invalid preseed: every network needs a name")
        cur = existing_nets.get(net["name"])
        if cur is not None and cur.get("managed"):
            client.patch(f"/1.0/networks/{net['name']}", {"config": net.get("config") or {},
                                                          **({"description": net["description"]}
                                                             if "description" in net else {})})
        elif net.get("auto"):
            _create_auto_network(client, doc, net)
        else:
            client.post("/1.0/networks", {k: net.get(k) for k in ("name", "type", "config", "description")
                                          if net.get(k) is not None})
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


def _create_auto_network(client, doc: dict, net: dict) -> None:
    """`init --auto`'s bridge: another daemon may take corralbrN between our look and our create,
    so on "already exists" move on to the next free name (and point the profile's eth0 at it)."""
    from corral import client as rest
    name = net["name"]
    for _ in range(20):
        try:
            client.post("/1.0/networks", {"name": name, "type": net.get("type") or "bridge",
                                          "config": net.get("config") or {}, "description": net.get("description") or ""})
            break
        except rest.ClientError as e:
            if "already exists" not in str(e) or not name.startswith("corralbr"):
                raise
            name = f"corralbr{int(name[len('corralbr'):]) + 1}"
    else:
        raise ValueError("Could not find a free name for the default bridge")
    for profile in doc.get("profiles") or []:
        for dev in (profile.get("devices") or {}).values():
            if dev.get("type") == "nic" and dev.get("network") == net["name"]:
                dev["network"] = name
    net["name"] = name
