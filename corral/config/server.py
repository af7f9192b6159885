"""Server (daemon) configuration keys, as in LXD 5.0."""
import dataclasses
import re

from corral.config.keys import (
    SERVER, Key, declare, not_implemented, not_on_host, one_of, parse_address, parse_bool, parse_expiry, parse_int,
    parse_size_or_percent, parse_uint,
)

_BGP = "BGP peering"

# Corral allows offline thresholds down to this (LXD requires more than 10 s); tests use 2-4 s.
MIN_OFFLINE_THRESHOLD = 2


_ATOI = re.compile(r"[+-]?[0-9]+")


def _atoi(value: str) -> int:
    if not isinstance(value, str) or not _ATOI.fullmatch(value):
        raise ValueError("Value is not a number")
    return int(value)


def validate_max_voters(value: str) -> int:
    n = _atoi(value)
    if n < 3 or n % 2 != 1:
        raise ValueError("Value must be an odd number equal to or higher than 3")
    return n


def validate_max_standby(value: str) -> int:
    n = _atoi(value)
    if n < 0 or n > 5:
        raise ValueError("Value must be between 0 and 5")
    return n


def validate_images_minimal_replica(value: str) -> int:
    """cluster.images_minimal_replica: a count of members, or -1 for all (LXD 5.0's texts)."""
    if not isinstance(value, str) or not _ATOI.fullmatch(value):
        raise ValueError("Minimal image replica count is not a number")
    n = int(value)
    if n < 1 and n != -1:
        raise ValueError("Invalid value for image replica count")
    return n


def validate_offline_threshold(value: str) -> int:
    """cluster.offline_threshold: an integer of seconds, at least MIN_OFFLINE_THRESHOLD (LXD 5.0's
    offlineThresholdValidator texts, with Corral's lower bound)."""
    if not isinstance(value, str) or not re.fullmatch(r"[+-]?[0-9]+", value):
        raise ValueError("Offline threshold is not a number")
    n = int(value)
    if n < MIN_OFFLINE_THRESHOLD:
        raise ValueError(f"Value must be greater than '{MIN_OFFLINE_THRESHOLD - 1}'")
    return n



def _local(key: Key) -> Key:
    """A member-local key (stored in the local database, as LXD's "local" scope)."""
    return dataclasses.replace(key, local=True)

_AUTH = "Candid and RBAC external authentication (Corral trusts TLS client certificates)"
_MAAS = "no MAAS server is configured"
_OVN = "OVN needs openvswitch and geneve, which this kind of host's kernel lacks"


def _positive_size(v: str) -> int | str:
    n = parse_size_or_percent(v)
    if n == 0:
        raise ValueError("Size must be more than 0 bytes")
    return n


COMPRESSION = one_of("none", "gzip", "xz", "zstd", "bzip2", "lzma", "lz4", "squashfs")
_COMPRESSION = COMPRESSION
# LXD's architecture names (shared/osarch).
ARCHITECTURE = one_of("i686", "x86_64", "armv6l", "armv7l", "armv8l", "aarch64", "ppc", "ppc64", "ppc64le",
                      "s390x", "mips", "mips64", "riscv32", "riscv64", "loongarch64")

declare(
    Key("core.https_address", SERVER, parse_address, local=True,
        description="Address to bind for the remote API (HTTPS)"),
    Key("core.shutdown_timeout", SERVER, parse_uint, default="5",
        description="Minutes to wait for running operations on shutdown"),
    Key("core.trust_password", SERVER, str, hidden=True,
        description="Password to be provided by clients to set up a trust"),
    Key("core.remote_token_expiry", SERVER, parse_expiry,
        description="Time after which a remote add token expires (defaults to no expiry)"),
    Key("core.https_allowed_origin", SERVER),
    Key("core.https_allowed_methods", SERVER),
    Key("core.https_allowed_headers", SERVER),
    Key("core.https_allowed_credentials", SERVER, parse_bool),
    not_implemented("core.https_trusted_proxy", SERVER, "PROXY-protocol headers from trusted proxies"),
    Key("core.proxy_http", SERVER),
    Key("core.proxy_https", SERVER),
    Key("core.proxy_ignore_hosts", SERVER),
    not_implemented("core.trust_ca_certificates", SERVER, "PKI mode (a CA's certificates trusted)", parse_bool,
                    "false"),
    _local(not_implemented("core.debug_address", SERVER, "the debug (pprof) listener", parse_address)),
    Key("core.metrics_address", SERVER, parse_address, local=True,
        description="Address to bind the metrics server to (HTTPS)"),
    Key("images.auto_update_cached", SERVER, parse_bool, default="true"),
    Key("images.auto_update_interval", SERVER, parse_uint, default="6"),
    Key("images.compression_algorithm", SERVER, _COMPRESSION, default="gzip"),
    Key("images.default_architecture", SERVER, ARCHITECTURE),
    Key("images.remote_cache_expiry", SERVER, parse_uint, default="10"),
    # Corral's own (not in LXD): the most an image may unpack to, a size ("10GiB") or a share of
    # the filesystem holding $CORRAL_DIR ("25%", computed when an image arrives).
    Key("images.max_unpacked_size", SERVER, _positive_size, default="25%",
        description="Largest unpacked size of an image (a size, or a percentage of the disk holding CORRAL_DIR)"),
    Key("backups.compression_algorithm", SERVER, _COMPRESSION, default="gzip"),
    Key("cluster.https_address", SERVER, parse_address, local=True),
    Key("cluster.offline_threshold", SERVER, validate_offline_threshold, default="20"),
    Key("cluster.images_minimal_replica", SERVER, validate_images_minimal_replica, default="3"),
    Key("cluster.max_voters", SERVER, validate_max_voters, default="3"),
    Key("cluster.max_standby", SERVER, validate_max_standby, default="2"),
    Key("cluster.join_token_expiry", SERVER, parse_expiry, default="3H",
        description="Time after which a cluster join token expires"),
    _local(not_implemented("storage.backups_volume", SERVER, "backups kept on a custom volume")),
    _local(not_implemented("storage.images_volume", SERVER, "images kept on a custom volume")),
    Key("user.*", SERVER),
    not_implemented("core.bgp_address", SERVER, _BGP, parse_address),
    not_implemented("core.bgp_asn", SERVER, _BGP, parse_uint),
    not_implemented("core.bgp_routerid", SERVER, _BGP),
    not_implemented("core.dns_address", SERVER, "the authoritative DNS server for network zones", parse_address),
    Key("core.metrics_authentication", SERVER, parse_bool, default="true",
        description="Whether to enforce authentication on the metrics endpoint"),
    *(not_implemented(k, SERVER, _AUTH) for k in (
        "candid.api.key", "candid.api.url", "candid.domains", "rbac.agent.private_key", "rbac.agent.public_key",
        "rbac.agent.url", "rbac.agent.username", "rbac.api.key", "rbac.api.url")),
    not_implemented("candid.expiry", SERVER, _AUTH, parse_uint, "3600"),
    not_implemented("rbac.api.expiry", SERVER, _AUTH, parse_uint),
    not_on_host("maas.api.key", SERVER, _MAAS),
    not_on_host("maas.api.url", SERVER, _MAAS),
    not_on_host("maas.machine", SERVER, _MAAS),
    not_on_host("network.ovn.integration_bridge", SERVER, _OVN, default="br-int"),
    not_on_host("network.ovn.northbound_connection", SERVER, _OVN, default="unix:/var/run/ovn/ovnnb_db.sock"),
)
