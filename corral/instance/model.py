"""What every instance module shares: an instance's record with its expanded config and devices
(`Loaded`), profile expansion, the root disk's pool, and the URLs an instance is known by."""
from __future__ import annotations

from dataclasses import dataclass

from corral import config
from corral.db.queries import lxd
from corral.errors import BadRequest

STATUS_CODES = {"Running": 103, "Stopped": 102, "Frozen": 110, "Error": 112}
FOREVER = 10**9


def url(name: str, project: str = "default") -> str:
    return f"/1.0/instances/{name}" + ("" if project == "default" else f"?project={project}")


def resources(name: str, project: str = "default") -> dict:
    return {"containers": [f"/1.0/containers/{name}"], "instances": [url(name, project)]}


def volume_name(project: str, name: str) -> str:
    """The instance's volume (and liblxc container) name: project-prefixed outside the default project."""
    return name if project == "default" else f"{project}_{name}"


def expand(profiles: list[dict], cfg: dict, devices: dict) -> tuple[dict, dict]:
    """Profiles applied in order, then the instance's own config and devices."""
    ecfg: dict = {}
    edev: dict = {}
    for p in profiles:
        ecfg.update(p["config"])
        edev.update(p["devices"])
    ecfg.update(cfg)
    edev.update(devices)
    return ecfg, edev


def root_pool(devices: dict) -> str | None:
    for dev in devices.values():
        if dev.get("type") == "disk" and dev.get("path") == "/" and not dev.get("source"):
            return dev.get("pool") or None
    return None


@dataclass
class Loaded:
    """One instance record with its expanded config and devices."""
    rec: dict
    config: dict
    devices: dict

    @property
    def name(self) -> str:
        return self.rec["name"]

    @property
    def project(self) -> str:
        return self.rec["project"]

    @property
    def type(self) -> str:
        return self.rec.get("type") or "container"

    @property
    def location(self) -> str:
        """The name of the cluster member holding the instance ("none" standalone)."""
        return self.rec.get("node") or "none"

    @property
    def local(self) -> bool:
        """Whether the instance is this member's (instances.node_id): only its member touches its host
        side (driver, volume, files, start-up and housekeeping)."""
        node_id = self.rec.get("node_id")
        return node_id is None or int(node_id) == lxd.LOCAL_NODE_ID

    @property
    def pool(self) -> str:
        pool = root_pool(self.devices)
        if not pool:
            raise BadRequest("Failed to get root disk device: No root device could be found")
        return pool


def autostart_order(inst) -> tuple[int, str]:
    return (-(config.value(config.INSTANCE, inst.config, "boot.autostart.priority") or 0), inst.name)


def render_record(inst: Loaded, status: str) -> dict:
    """LXD's api.Instance of `inst` (without state, snapshots and backups)."""
    r = inst.rec
    return {
        "architecture": r["architecture"], "config": r["config"], "devices": r["devices"],
        "ephemeral": r["ephemeral"], "profiles": r["profiles"], "stateful": r["stateful"],
        "description": r["description"], "created_at": r["created_at"],
        "expanded_config": inst.config, "expanded_devices": inst.devices, "name": r["name"],
        "status": status, "status_code": STATUS_CODES.get(status, 112),
        "last_used_at": r["last_used_at"], "location": r.get("node") or "none", "type": r["type"], "project": r["project"],
    }


def etag_fields(inst: Loaded) -> dict:
    r = inst.rec
    return {"architecture": r["architecture"], "config": r["config"], "devices": r["devices"],
            "ephemeral": r["ephemeral"], "profiles": r["profiles"], "description": r["description"]}
