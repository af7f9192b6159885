"""Global migration 6: LXD 5.0.2's tables and columns (/work/shared/lxd-5.0.2/db-schema.tsv).

The old JSON-column tables are renamed to `old_*`, LXD's tables are created, the rows are copied
over (ids kept, JSON maps exploded into key/value rows with sqlite's json_each), and the old
tables are dropped. What Corral keeps that LXD has no column for lives in `corral_*` tables.

Codes, as LXD stores them: instances.type / images.type 0 container, 1 virtual-machine;
storage_volumes.type 0 container, 1 image, 2 custom, 3 virtual-machine; content_type 0 filesystem,
1 block; architecture the osarch ids (2 x86_64, 4 aarch64, ...); *_devices.type 0 none, 1 nic,
2 disk, ...; certificates.type 1 client, 2 server, 3 metrics; warnings.status 1 new,
2 acknowledged, 4 resolved; state 0 pending, 1 created, 2 errored, 3 unknown.
No semicolons inside literals (the script is split on them).
"""
from corral.db import schema_lxd_core, schema_lxd_infra

_ARCH = ("CASE {c} WHEN 'i686' THEN 1 WHEN 'x86_64' THEN 2 WHEN 'armv7l' THEN 3 WHEN 'aarch64' THEN 4 "
         "WHEN 'ppc' THEN 5 WHEN 'ppc64' THEN 6 WHEN 'ppc64le' THEN 7 WHEN 's390x' THEN 8 WHEN 'mips' THEN 9 "
         "WHEN 'mips64' THEN 10 WHEN 'riscv32' THEN 11 WHEN 'riscv64' THEN 12 ELSE 0 END")
_DEVTYPE = ("CASE json_extract({c}, '$.type') WHEN 'none' THEN 0 WHEN 'nic' THEN 1 WHEN 'disk' THEN 2 "
            "WHEN 'unix-char' THEN 3 WHEN 'unix-block' THEN 4 WHEN 'usb' THEN 5 WHEN 'gpu' THEN 6 "
            "WHEN 'infiniband' THEN 7 WHEN 'proxy' THEN 8 WHEN 'unix-hotplug' THEN 9 WHEN 'tpm' THEN 10 "
            "WHEN 'pci' THEN 11 ELSE 0 END")
_STATE = "CASE {c} WHEN 'Pending' THEN 0 WHEN 'Created' THEN 1 WHEN 'Errored' THEN 2 ELSE 3 END"
_ITYPE = "CASE {c} WHEN 'virtual-machine' THEN 1 ELSE 0 END"
_VTYPE = "CASE {c} WHEN 'container' THEN 0 WHEN 'image' THEN 1 WHEN 'custom' THEN 2 ELSE 3 END"


def _kv(table: str, fk: str, src: str, id_col: str, json_col: str) -> str:
    """Copy the string entries of a JSON map column into a key/value table."""
    return (f"INSERT INTO {table} ({fk}, key, value) SELECT o.{id_col}, j.key, j.value FROM {src} o, "
            f"json_each(CASE WHEN json_valid(o.{json_col}) AND json_type(o.{json_col}) = 'object' "
            f"THEN o.{json_col} ELSE '{{}}' END) j WHERE j.type = 'text';\n")


def _devices(src: str, id_col: str, dev_table: str, dev_fk: str, cfg_table: str, cfg_fk: str) -> str:
    """Copy a JSON device map into LXD's <x>_devices + <x>_devices_config (the type key is the column)."""
    valid = (f"CASE WHEN json_valid(o.devices) AND json_type(o.devices) = 'object' THEN o.devices "
             f"ELSE '{{}}' END")
    return (f"INSERT INTO {dev_table} ({dev_fk}, name, type) SELECT o.{id_col}, j.key, "
            f"{_DEVTYPE.format(c='j.value')} FROM {src} o, json_each({valid}) j WHERE j.type = 'object';\n"
            f"INSERT INTO {cfg_table} ({cfg_fk}, key, value) SELECT d.id, k.key, k.value FROM {src} o, "
            f"json_each({valid}) j, {dev_table} d, json_each(j.value) k WHERE j.type = 'object' "
            f"AND d.{dev_fk} = o.{id_col} AND d.name = j.key AND k.type = 'text' "
            f"AND NOT (k.key = 'type' AND d.type != 0);\n")


TABLES = schema_lxd_core.DDL + schema_lxd_infra.DDL

# Old tables renamed aside first (sqlite rewrites the old foreign keys to follow them).
_RENAMED = ("instances_snapshots", "instances", "images_aliases", "images", "storage_volumes_snapshots",
            "storage_volumes", "storage_pools", "profiles", "networks", "certificates", "warnings",
            "projects", "nodes", "config")

COPY = (
    "INSERT INTO nodes (id, name, description, address, schema, api_extensions, heartbeat, state, arch) "
    "VALUES (1, 'none', '', '0.0.0.0', 6, 0, CURRENT_TIMESTAMP, 0, 2);\n"
    "INSERT INTO cluster_groups (id, name, description) VALUES (1, 'default', 'Default cluster group');\n"
    "INSERT INTO nodes_cluster_groups (node_id, group_id) VALUES (1, 1);\n"
    "INSERT INTO config (id, key, value) SELECT rowid, key, value FROM old_config;\n"
    "INSERT INTO projects (id, name, description) SELECT id, name, description FROM old_projects;\n"
    + _kv("projects_config", "project_id", "old_projects", "id", "config") +
    "INSERT INTO profiles (id, name, description, project_id) SELECT o.id, o.name, o.description, p.id "
    "FROM old_profiles o JOIN projects p ON p.name = o.project;\n"
    + _kv("profiles_config", "profile_id", "old_profiles", "id", "config")
    + _devices("old_profiles", "id", "profiles_devices", "profile_id", "profiles_devices_config",
               "profile_device_id") +
    "INSERT INTO certificates (id, fingerprint, type, name, certificate, restricted) SELECT id, fingerprint, "
    "CASE type WHEN 'server' THEN 2 WHEN 'metrics' THEN 3 ELSE 1 END, name, certificate, restricted "
    "FROM old_certificates;\n"
    "INSERT INTO certificates_projects (certificate_id, project_id) SELECT DISTINCT o.id, p.id "
    "FROM old_certificates o, json_each(CASE WHEN json_valid(o.projects) AND json_type(o.projects) = 'array' "
    "THEN o.projects ELSE '[]' END) j JOIN projects p ON p.name = j.value;\n"
    "INSERT INTO storage_pools (id, name, driver, description, state) SELECT id, name, driver, description, "
    + _STATE.format(c="status") + " FROM old_storage_pools;\n"
    + _kv("storage_pools_config", "storage_pool_id", "old_storage_pools", "id", "config") +
    "INSERT INTO storage_pools_nodes (storage_pool_id, node_id, state) SELECT id, 1, 1 FROM old_storage_pools;\n"
    "INSERT INTO storage_volumes (id, name, storage_pool_id, node_id, type, description, project_id, "
    "content_type) SELECT o.id, o.name, sp.id, 1, " + _VTYPE.format(c="o.type") + ", o.description, p.id, 0 "
    "FROM old_storage_volumes o JOIN storage_pools sp ON sp.name = o.pool JOIN projects p ON p.name = o.project;\n"
    + _kv("storage_volumes_config", "storage_volume_id", "old_storage_volumes", "id", "config") +
    "INSERT INTO corral_storage_volumes_dates (storage_volume_id, creation_date) SELECT v.id, o.created_at "
    "FROM old_storage_volumes o JOIN storage_volumes v ON v.id = o.id;\n"
    "INSERT INTO storage_volumes_snapshots (id, storage_volume_id, name, description, expiry_date) "
    "SELECT o.id, o.volume_id, o.name, o.description, o.expires_at FROM old_storage_volumes_snapshots o "
    "JOIN storage_volumes v ON v.id = o.volume_id;\n"
    + _kv("storage_volumes_snapshots_config", "storage_volume_snapshot_id", "old_storage_volumes_snapshots",
          "id", "config").replace("FROM old_storage_volumes_snapshots o,",
                                  "FROM old_storage_volumes_snapshots o JOIN storage_volumes_snapshots s "
                                  "ON s.id = o.id,") +
    "INSERT INTO corral_storage_volumes_snapshots_dates (storage_volume_snapshot_id, creation_date) "
    "SELECT s.id, o.created_at FROM old_storage_volumes_snapshots o JOIN storage_volumes_snapshots s "
    "ON s.id = o.id;\n"
    "INSERT INTO images (id, fingerprint, filename, size, public, architecture, creation_date, expiry_date, "
    "upload_date, cached, last_use_date, auto_update, project_id, type) SELECT o.id, o.fingerprint, o.filename, "
    "o.size, o.public, " + _ARCH.format(c="o.architecture") + ", o.created_at, o.expires_at, o.uploaded_at, "
    "o.cached, o.last_used_at, o.auto_update, p.id, " + _ITYPE.format(c="o.type") + " FROM old_images o "
    "JOIN projects p ON p.name = o.project;\n"
    "INSERT INTO images_nodes (image_id, node_id) SELECT id, 1 FROM images;\n"
    "INSERT INTO images_properties (image_id, type, key, value) SELECT o.id, 0, j.key, j.value "
    "FROM old_images o, json_each(CASE WHEN json_valid(o.properties) AND json_type(o.properties) = 'object' "
    "THEN o.properties ELSE '{}' END) j WHERE j.type = 'text';\n"
    "INSERT OR IGNORE INTO images_profiles (image_id, profile_id) SELECT o.id, pr.id FROM old_images o, "
    "json_each(CASE WHEN json_valid(o.profiles) AND json_type(o.profiles) = 'array' THEN o.profiles "
    "ELSE '[]' END) j JOIN images i ON i.id = o.id JOIN profiles pr ON pr.project_id = i.project_id "
    "AND pr.name = j.value ORDER BY o.id, j.key;\n"
    "INSERT INTO images_aliases (id, name, image_id, description, project_id) SELECT a.id, a.name, i.id, "
    "a.description, p.id FROM old_images_aliases a JOIN projects p ON p.name = a.project "
    "JOIN images i ON i.project_id = p.id AND i.fingerprint = a.fingerprint;\n"
    "INSERT INTO instances (id, node_id, name, architecture, type, ephemeral, creation_date, stateful, "
    "last_use_date, description, project_id) SELECT o.id, 1, o.name, " + _ARCH.format(c="o.architecture")
    + ", " + _ITYPE.format(c="o.type") + ", o.ephemeral, o.created_at, o.stateful, o.last_used_at, "
    "o.description, p.id FROM old_instances o JOIN projects p ON p.name = o.project;\n"
    + _kv("instances_config", "instance_id", "old_instances", "id", "config")
    + _devices("old_instances", "id", "instances_devices", "instance_id", "instances_devices_config",
               "instance_device_id") +
    "INSERT OR IGNORE INTO instances_profiles (instance_id, profile_id, apply_order) SELECT o.id, pr.id, "
    "CAST(j.key AS INTEGER) FROM old_instances o, json_each(CASE WHEN json_valid(o.profiles) AND "
    "json_type(o.profiles) = 'array' THEN o.profiles ELSE '[]' END) j JOIN instances i ON i.id = o.id "
    "JOIN profiles pr ON pr.project_id = i.project_id AND pr.name = j.value;\n"
    "INSERT INTO instances_snapshots (id, instance_id, name, creation_date, stateful, description, expiry_date) "
    "SELECT s.id, s.instance_id, s.name, s.created_at, s.stateful, s.description, s.expires_at "
    "FROM old_instances_snapshots s JOIN instances i ON i.id = s.instance_id;\n"
    + _kv("instances_snapshots_config", "instance_snapshot_id", "old_instances_snapshots", "id", "config")
    .replace("FROM old_instances_snapshots o,", "FROM old_instances_snapshots o JOIN instances_snapshots s "
             "ON s.id = o.id,")
    + _devices("old_instances_snapshots", "id", "instances_snapshots_devices", "instance_snapshot_id",
               "instances_snapshots_devices_config", "instance_snapshot_device_id")
    .replace("FROM old_instances_snapshots o, json_each(", "FROM old_instances_snapshots o JOIN instances_snapshots "
             "s0 ON s0.id = o.id, json_each(", 1) +
    "INSERT INTO corral_instances_snapshots_profiles (instance_snapshot_id, name, apply_order) "
    "SELECT s.id, j.value, CAST(j.key AS INTEGER) FROM old_instances_snapshots s JOIN instances_snapshots n "
    "ON n.id = s.id, json_each(CASE WHEN json_valid(s.profiles) AND json_type(s.profiles) = 'array' "
    "THEN s.profiles ELSE '[]' END) j WHERE j.type = 'text';\n"
    "INSERT INTO networks (id, project_id, name, description, state, type) SELECT o.id, p.id, o.name, "
    "o.description, " + _STATE.format(c="o.status") + ", CASE o.type WHEN 'bridge' THEN 0 WHEN 'macvlan' "
    "THEN 1 WHEN 'sriov' THEN 2 WHEN 'ovn' THEN 3 WHEN 'physical' THEN 4 ELSE 0 END FROM old_networks o "
    "JOIN projects p ON p.name = o.project;\n"
    + _kv("networks_config", "network_id", "old_networks", "id", "config") +
    "INSERT INTO networks_nodes (network_id, node_id, state) SELECT id, 1, 1 FROM networks;\n"
    "INSERT INTO warnings (id, node_id, project_id, entity_type_code, entity_id, uuid, type_code, status, "
    "first_seen_date, last_seen_date, updated_date, last_message, count) SELECT o.rowid, 1, p.id, NULL, NULL, "
    "o.uuid, 0, CASE o.status WHEN 'acknowledged' THEN 2 WHEN 'resolved' THEN 4 ELSE 1 END, o.first_seen_at, "
    "o.last_seen_at, o.last_seen_at, o.last_message, o.count FROM old_warnings o "
    "LEFT JOIN projects p ON p.name = o.project;\n"
    "INSERT INTO corral_warnings (warning_id, type, severity, entity_url) SELECT w.id, o.type, o.severity, "
    "o.entity_url FROM old_warnings o JOIN warnings w ON w.uuid = o.uuid;\n"
)

MIGRATION = ("".join(f"ALTER TABLE {t} RENAME TO old_{t};\n" for t in _RENAMED) + TABLES + COPY
             + "".join(f"DROP TABLE old_{t};\n" for t in _RENAMED))
