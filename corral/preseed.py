"""`corrald init`: LXD preseed documents applied through the API, as `lxd init` does."""
from __future__ import annotations

import ipaddress
import os

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
    if not isinstance(doc.get("config") or {}, dict):
        raise ValueError("Invalid preseed: `config` must be a mapping")
    for section in ("profiles", "storage_pools", "networks"):
        if not isinstance(doc.get(section) or [], list):
            raise ValueError(f"Invalid preseed: `{section}` must be a list")
    if doc.get("cluster") is not None:
        doc["cluster"] = parse_cluster(doc["cluster"])
        _cluster_address_fallback(doc)
    return doc


# ---- the cluster section (LXD 5.0's api.InitClusterPreseed) -----------------------------------------

CLUSTER_KEYS = {"server_name": str, "enabled": bool, "member_config": list, "cluster_address": str,
                "cluster_certificate": str, "server_address": str, "cluster_password": str,
                "cluster_certificate_path": str, "cluster_token": str}
MEMBER_CONFIG_KEYS = ("entity", "name", "key", "value", "description")
DEFAULT_PORT = 8443


def _text(value, where: str) -> str:
    """A YAML scalar as the string LXD's YAML decoder makes of it; a list or mapping is refused."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise ValueError(f"Invalid preseed: `{where}` must be a string")


def parse_cluster(section) -> dict:
    """The `cluster:` section checked: LXD's keys only, each of its type (a clear error naming the
    key otherwise); member_config entries are {entity, name, key, value, description}."""
    if not isinstance(section, dict):
        raise ValueError("Invalid preseed: `cluster` must be a mapping")
    unknown = [str(k) for k in section if k not in CLUSTER_KEYS]
    if unknown:
        raise ValueError(f"Invalid preseed: unknown key(s) in cluster: {', '.join(unknown)} "
                         f"(known: {', '.join(CLUSTER_KEYS)})")
    out: dict = {}
    for key, kind in CLUSTER_KEYS.items():
        value = section.get(key)
        if value is None:
            continue
        if kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"Invalid preseed: `cluster.{key}` must be true or false")
            out[key] = value
        elif kind is list:
            out[key] = _member_config(value)
        else:
            out[key] = _text(value, f"cluster.{key}")
    return out


def _member_config(entries) -> list[dict]:
    if not isinstance(entries, list):
        raise ValueError("Invalid preseed: `cluster.member_config` must be a list")
    out = []
    for i, entry in enumerate(entries):
        where = f"cluster.member_config[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(f"Invalid preseed: `{where}` must be a mapping")
        unknown = [str(k) for k in entry if k not in MEMBER_CONFIG_KEYS]
        if unknown:
            raise ValueError(f"Invalid preseed: unknown key(s) in {where}: {', '.join(unknown)} "
                             f"(known: {', '.join(MEMBER_CONFIG_KEYS)})")
        out.append({k: "" if entry.get(k) is None else _text(entry[k], f"{where}.{k}") for k in MEMBER_CONFIG_KEYS})
    return out


def _joining(cluster: dict) -> bool:
    return any(cluster.get(k) for k in ("cluster_address", "cluster_certificate", "cluster_certificate_path",
                                        "cluster_password", "cluster_token"))


def _cluster_address_fallback(doc: dict) -> None:
    """As `lxd init`: with a cluster section and no cluster.https_address, core.https_address is it
    (what bootstrapping listens on; a join sends the cluster request only, see cluster_request)."""
    config = doc.get("config") or {}
    if "core.https_address" in config and "cluster.https_address" not in config and not _joining(doc["cluster"]):
        doc["config"] = {**config, "cluster.https_address": config["core.https_address"]}


def canonical_address(address: str) -> str:
    """LXD's CanonicalNetworkAddress: host:port with the default port added, IPv6 in brackets."""
    from corral.https import split_address
    host, port = split_address(address)
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        pass
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _read_certificate(path: str) -> str:
    """cluster_certificate_path's file, with LXD's texts when it cannot be read."""
    if not os.path.exists(path):
        raise ValueError(f"Path {path} doesn't exist")
    try:
        with open(path) as f:
            return f.read()
    except IsADirectoryError:
        raise ValueError(f"read {path}: is a directory") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"open {path}: {(getattr(e, 'strerror', None) or str(e)).lower()}") from None


def remote_certificate(address: str, timeout: float = 10) -> str:
    """The PEM certificate the server at "host:port" presents (lxd init's GetRemoteCertificate):
    what cluster_request's get_certificate can be for a cluster_token."""
    import ssl
    host, _, port = canonical_address(address).rpartition(":")
    return ssl.get_server_certificate((host.strip("[]"), int(port)), timeout=timeout)


def cluster_request(doc: dict, get_certificate=None) -> dict | None:
    """The PUT /1.0/cluster body (LXD 5.0's api.ClusterPut) a preseed's cluster section asks for,
    or None when it asks for nothing. A bootstrap is {server_name, enabled: true} (apply the rest of
    the preseed first); a join (cluster_address and server_address given) is sent on its own, as
    `lxd init` does, with the addresses in canonical form.

    cluster_certificate_path is read; a cluster_token is decoded as `lxd init` decodes it: its
    server name is taken, and the first member of its addresses that `get_certificate(address)`
    (-> PEM) reaches must present the certificate whose fingerprint the token carries; the raw
    token goes as cluster_password. ValueError, with LXD's texts where it has them, otherwise."""
    c = dict(doc.get("cluster") or {})
    if not c:
        return None
    if c.get("cluster_certificate_path"):
        c["cluster_certificate"] = _read_certificate(c["cluster_certificate_path"])
    if c.get("cluster_token"):
        _resolve_token(c, get_certificate)
    joining = _joining(c)
    if not c.get("enabled"):
        if joining:
            raise ValueError("Invalid preseed: joining a cluster needs `enabled: true` in the cluster section")
        if c.get("server_name"):
            raise ValueError("ServerName must be empty when disabling clustering")
        return None
    if not c.get("server_name"):
        raise ValueError("ServerName is required when enabling clustering")
    body = {"server_name": c["server_name"], "enabled": True, "member_config": c.get("member_config") or [],
            "cluster_address": "", "cluster_certificate": "", "server_address": "", "cluster_password": ""}
    if not joining:
        return body
    if not c.get("cluster_address"):
        raise ValueError("Invalid preseed: joining a cluster needs `cluster_address` (the address of one of "
                         "its members), or a `cluster_token`")
    if not c.get("server_address"):
        raise ValueError("No server address provided for this member")
    if not c.get("cluster_certificate"):
        raise ValueError("No target cluster member certificate provided")
    body.update(cluster_address=canonical_address(c["cluster_address"]),
                server_address=canonical_address(c["server_address"]),
                cluster_certificate=c["cluster_certificate"], cluster_password=c.get("cluster_password") or "")
    return body


def _resolve_token(c: dict, get_certificate) -> None:
    from corral.cluster.tokens import decode
    from corral.pki.certs import fingerprint
    try:
        token = decode(c["cluster_token"])
    except ValueError as e:
        raise ValueError(f"Invalid cluster join token: {e}") from None
    if get_certificate is None:
        raise ValueError("Invalid preseed: a cluster_token needs the cluster's certificate, "
                         "and nothing here can fetch it")
    c["server_name"] = token["server_name"]
    failures = []
    for address in token["addresses"]:
        address = canonical_address(str(address))
        try:
            pem = get_certificate(address)
        except Exception as e:  # noqa: BLE001 - unreachable members are skipped, as lxd init does
            failures.append(f'Error connecting to existing cluster member "{address}": {e}')
            continue
        if fingerprint(pem) != token["fingerprint"]:
            raise ValueError(f'Certificate fingerprint mismatch between join token and cluster member "{address}"')
        c["cluster_address"], c["cluster_certificate"] = address, pem
        break
    else:
        raise ValueError("Unable to connect to any of the cluster members specified in join token" +
                         "".join(f"\n{f}" for f in failures))
    c["cluster_password"] = c["cluster_token"]   # the raw token, so the cluster can check it (LXD 5.0)


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
