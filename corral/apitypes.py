"""LXD's request structs (shared/api in LXD) as dataclasses: what the API decodes a JSON body into
(corral/api/decode.py) and what the domain modules take. No HTTP and no parsing here; the field
names are the JSON names, the class names LXD's (they appear in its decoding errors).

`given(field)` tells PATCH handlers which fields the client sent; a JSON null is not sent (Go's
decoder leaves such a field as it was, so a PATCH keeps its current value).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NewType

# A config value: LXD's map[string]string, where corral also takes a JSON number or boolean and
# stores it as its string (config.as_string); arrays and objects are refused as Go refuses them.
ConfigValue = NewType("ConfigValue", str)
Config = dict[str, ConfigValue]
Devices = dict[str, dict[str, str]]


class Request:
    _present: frozenset = frozenset()

    def given(self, name: str) -> bool:
        return name in self._present


def _map():
    return field(default_factory=dict)


def _list():
    return field(default_factory=list)


# ---- profiles -----------------------------------------------------------------------------------

@dataclass
class ProfilePut(Request):
    description: str = ""
    config: Config = _map()
    devices: Devices = _map()


@dataclass
class ProfilesPost(ProfilePut):
    name: str = ""


@dataclass
class ProfilePost(Request):
    name: str = ""


# ---- projects -----------------------------------------------------------------------------------

@dataclass
class ProjectPut(Request):
    description: str = ""
    config: Config = _map()


@dataclass
class ProjectsPost(ProjectPut):
    name: str = ""


@dataclass
class ProjectPost(Request):
    name: str = ""


# ---- networks -----------------------------------------------------------------------------------

@dataclass
class NetworkPut(Request):
    description: str = ""
    config: Config = _map()


@dataclass
class NetworksPost(NetworkPut):
    name: str = ""
    type: str = ""


@dataclass
class NetworkPost(Request):
    name: str = ""


# ---- server, warnings, cluster ------------------------------------------------------------------

@dataclass
class ServerPut(Request):
    config: dict[str, Any] = _map()


@dataclass
class WarningPut(Request):
    status: str = ""


@dataclass
class ClusterMemberConfigKey(Request):
    entity: str = ""
    name: str = ""
    key: str = ""
    value: str = ""
    description: str = ""


@dataclass
class ClusterPut(Request):
    server_name: str = ""
    enabled: bool = False
    member_config: list[ClusterMemberConfigKey] = _list()
    cluster_address: str = ""
    cluster_certificate: str = ""
    server_address: str = ""
    # LXD 5.0's join secret: the trust password, or a join token (the whole base64 token string, as
    # `lxd init` sends it; LXD 5.0 has no separate cluster_token field in this struct).
    cluster_password: str = ""


@dataclass
class ClusterMembersPost(Request):
    """A join token request (`lxc cluster add NAME`)."""
    server_name: str = ""


@dataclass
class ClusterMemberPost(Request):
    """A member rename (`lxc cluster rename`)."""
    server_name: str = ""


@dataclass
class ClusterMemberPut(Request):
    roles: list[str] = _list()
    failure_domain: str = ""
    description: str = ""
    config: Config = _map()
    groups: list[str] = _list()


@dataclass
class ClusterGroupPut(Request):
    description: str = ""
    members: list[str] = _list()


@dataclass
class ClusterGroupsPost(ClusterGroupPut):
    name: str = ""


@dataclass
class ClusterGroupPost(Request):
    """A cluster group rename."""
    name: str = ""


@dataclass
class ClusterCertificatePut(Request):
    cluster_certificate: str = ""
    cluster_certificate_key: str = ""


@dataclass
class ClusterMemberStatePost(Request):
    """Evacuate or restore a member (LXD 5.0.2's struct has the action only)."""
    action: str = ""


# ---- certificates -------------------------------------------------------------------------------

@dataclass
class CertificatePut(Request):
    name: str = ""
    type: str = ""
    restricted: bool = False
    projects: list[str] = _list()
    certificate: str = ""


@dataclass
class CertificatesPost(CertificatePut):
    password: str = ""
    token: bool = False


# ---- images and aliases -------------------------------------------------------------------------

@dataclass
class ImageAlias(Request):
    name: str = ""
    description: str = ""

    def as_dict(self) -> dict:
        return {"name": self.name, "description": self.description}


@dataclass
class ImageAliasesEntryPut(Request):
    description: str = ""
    target: str = ""


@dataclass
class ImageAliasesPost(ImageAliasesEntryPut):
    name: str = ""
    type: str = ""


@dataclass
class ImageAliasesEntryPost(Request):
    name: str = ""


@dataclass
class ImagePut(Request):
    auto_update: bool = False
    properties: Config = _map()
    public: bool = False
    expires_at: str = field(default="", metadata={"go": "time.Time"})
    profiles: list[str] | None = None


@dataclass
class ImagesPostSource(Request):
    # api.ImageSource
    alias: str = ""
    certificate: str = ""
    protocol: str = ""
    server: str = ""
    image_type: str = ""
    # api.ImagesPostSource
    type: str = ""
    mode: str = ""
    url: str = ""
    name: str = ""
    fingerprint: str = ""
    secret: str = ""
    project: str = ""


@dataclass
class ImagesPost(ImagePut):
    filename: str = ""
    source: ImagesPostSource | None = None
    compression_algorithm: str = ""
    aliases: list[ImageAlias] = _list()


# ---- internal endpoints -------------------------------------------------------------------------

@dataclass
class SQLQuery(Request):
    GO_NAME = "internalSQLQuery"
    database: str = ""
    query: str = ""


@dataclass
class ImageTaskPost(Request):
    """corral's /internal/testing/image-tasks (no LXD struct)."""
    task: str = ""
    hour: int = 0


# ---- instances: exec and console (the rest of the instance structs are in the instance layer) ----

@dataclass
class InstanceExecPost(Request):
    command: list[str] = _list()
    wait_for_websocket: bool = field(default=False, metadata={"json": "wait-for-websocket"})
    interactive: bool = False
    environment: Config = _map()
    width: int = field(default=0, metadata={"go": "int"})
    height: int = field(default=0, metadata={"go": "int"})
    record_output: bool = field(default=False, metadata={"json": "record-output"})
    user: int = field(default=0, metadata={"go": "uint32"})
    group: int = field(default=0, metadata={"go": "uint32"})
    cwd: str = ""


@dataclass
class InstanceConsolePost(Request):
    width: int = field(default=0, metadata={"go": "int"})
    height: int = field(default=0, metadata={"go": "int"})
    type: str = ""
