"""Server (daemon) configuration keys, as in LXD 5.0."""
from corral.config.keys import (
    SERVER, Key, declare, one_of, parse_address, parse_bool, parse_int, parse_size_or_percent, parse_uint,
)


def _expiry(v: str) -> int:
    from corral.trust import parse_expiry
    return parse_expiry(v)


def _positive_size(v: str) -> int | str:
    n = parse_size_or_percent(v)
    if n == 0:
        raise ValueError("Size must be more than 0 bytes")
    return n


_COMPRESSION = one_of("none", "gzip", "xz", "zstd", "bzip2", "lzma", "lz4", "squashfs")

declare(
    Key("core.https_address", SERVER, parse_address, local=True,
        description="Address to bind for the remote API (HTTPS)"),
    Key("core.shutdown_timeout", SERVER, parse_uint, default="5",
        description="Minutes to wait for running operations on shutdown"),
    Key("core.trust_password", SERVER, str, hidden=True,
        description="Password to be provided by clients to set up a trust"),
    Key("core.remote_token_expiry", SERVER, lambda v: _expiry(v),
        description="Time after which a remote add token expires (defaults to no expiry)"),
    Key("core.https_allowed_origin", SERVER),
    Key("core.https_allowed_methods", SERVER),
    Key("core.https_allowed_headers", SERVER),
    Key("core.https_allowed_credentials", SERVER, parse_bool),
    Key("core.https_trusted_proxy", SERVER),
    Key("core.proxy_http", SERVER),
    Key("core.proxy_https", SERVER),
    Key("core.proxy_ignore_hosts", SERVER),
    Key("core.trust_ca_certificates", SERVER, parse_bool),
    Key("core.debug_address", SERVER, parse_address, local=True),
    Key("core.metrics_address", SERVER, parse_address, local=True),
    Key("images.auto_update_cached", SERVER, parse_bool, default="true"),
    Key("images.auto_update_interval", SERVER, parse_uint, default="6"),
    Key("images.compression_algorithm", SERVER, _COMPRESSION, default="gzip"),
    Key("images.default_architecture", SERVER),
    Key("images.remote_cache_expiry", SERVER, parse_uint, default="10"),
    # Corral's own (not in LXD): the most an image may unpack to, a size ("10GiB") or a share of
    # the filesystem holding $CORRAL_DIR ("25%", computed when an image arrives).
    Key("images.max_unpacked_size", SERVER, _positive_size, default="25%",
        description="Largest unpacked size of an image (a size, or a percentage of the disk holding CORRAL_DIR)"),
    Key("backups.compression_algorithm", SERVER, _COMPRESSION, default="gzip"),
    Key("cluster.https_address", SERVER, parse_address, local=True),
    Key("cluster.offline_threshold", SERVER, parse_int, default="20"),
    Key("cluster.images_minimal_replica", SERVER, parse_int, default="3"),
    Key("cluster.max_voters", SERVER, parse_int, default="3"),
    Key("cluster.max_standby", SERVER, parse_int, default="2"),
    Key("storage.backups_volume", SERVER, local=True),
    Key("storage.images_volume", SERVER, local=True),
    Key("user.*", SERVER),
)
