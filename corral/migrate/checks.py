"""The checks made before anything changes (LXD's version, clustering, pools, networks, instance
features Corral lacks, the target directory, free space), as lxd-to-incus validates a source. Each
failed check is a blocker naming what is in the way; a migration with any blocker changes nothing."""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field

from corral.config import keys as cfgkeys
from corral.config.devices import UNIMPLEMENTED_NICTYPES, UNIMPLEMENTED_TYPES
from corral.config.storage import check_pool
from corral.db.queries import lxd_import as q
from corral.errors import CorralError

SUPPORTED_POOLS = ("dir", "btrfs")
POOL_TOOLS = {"btrfs": "btrfs"}
# networks.type codes (LXD 5.0's db): only these run on Corral here
NETWORK_TYPES = {0: "bridge", 1: "macvlan", 2: "sriov", 3: "ovn", 4: "physical"}
SUPPORTED_NETWORKS = ("bridge", "macvlan")
DEVICE_TYPES = {0: "none", 1: "nic", 2: "disk", 3: "unix-char", 4: "unix-block", 5: "usb", 6: "gpu",
                7: "infiniband", 8: "proxy", 9: "unix-hotplug", 10: "tpm", 11: "pci"}
MIN_FREE = 256 * 2**20   # the moves are renames; Corral's new database and logs need little room


@dataclass
class Plan:
    blockers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    running: list[tuple[str, str]] = field(default_factory=list)   # (project, name) running now
    instances: list[tuple[str, str]] = field(default_factory=list)


def _config_problems(scope: str, cfg: dict[str, str], what: str) -> list[str]:
    out = []
    for k, v in sorted(cfg.items()):
        if k.startswith("volatile."):
            continue
        try:
            cfgkeys.validate(scope, {k: v})
        except CorralError as e:
            out.append(f"{what}: config key {k}={v!r}: {e.message}")
    return out


def _device_problems(name: str, typ: int, cfg: dict, what: str) -> list[str]:
    tname = DEVICE_TYPES.get(typ, f"type code {typ}")
    if tname in UNIMPLEMENTED_TYPES or tname not in DEVICE_TYPES.values():
        return [f"{what}: device {name!r} is a {tname} device, which Corral does not run"]
    if tname == "nic" and cfg.get("nictype") in UNIMPLEMENTED_NICTYPES:
        return [f"{what}: device {name!r}: {UNIMPLEMENTED_NICTYPES[cfg['nictype']]} are not run by Corral"]
    return []


def check(server: dict, dump, lxd_dir: str, corral_dir: str, instances_state: dict) -> Plan:
    """`server`: LXD's GET /1.0; `dump`: its global database (sqlite3, from the dump);
    `instances_state`: {(project, name): status} as LXD reports them."""
    plan = Plan()
    env = server.get("environment") or {}
    version = env.get("server_version", "")
    if env.get("server") not in (None, "lxd") or not version.startswith("5.0."):
        plan.blockers.append(f"LXD version {version or 'unknown'} ({env.get('server')}): only LXD 5.0.x is "
                             "migrated")
    if env.get("server_clustered") or q.member_count(dump) > 1:
        plan.blockers.append("LXD is clustered: migrating a cluster (every member in turn) is not implemented; "
                             "only a standalone LXD server is migrated")
    plan.blockers += _config_problems(cfgkeys.SERVER, {k: v for k, v in q.config_rows(dump, "config")
                                                       if v is not None}, "server configuration")
    schema = q.schema_version(dump)
    plan.notes.append(f"LXD global database schema {schema}, {sum(q.count(dump, t) for t in q.tables(dump))} rows")

    for name, driver in q.pools(dump):
        if driver not in SUPPORTED_POOLS:
            plan.blockers.append(f"storage pool {name!r} uses the {driver} driver: Corral migrates only "
                                 f"{', '.join(SUPPORTED_POOLS)} pools here")
            continue
        tool = POOL_TOOLS.get(driver)
        if tool and not shutil.which(tool):
            plan.blockers.append(f"storage pool {name!r}: the {tool!r} command is missing")
        cfg = dict(q.rows(dump, "SELECT key, value FROM storage_pools_config c JOIN storage_pools p "
                                "ON p.id = c.storage_pool_id WHERE p.name = ?", (name,)))
        try:
            check_pool(driver, cfg)
        except CorralError as e:
            plan.blockers.append(f"storage pool {name!r}: {e.message}")
    for name, typ in q.networks(dump):
        tname = NETWORK_TYPES.get(typ, f"type code {typ}")
        if tname not in SUPPORTED_NETWORKS:
            plan.blockers.append(f"network {name!r} is of type {tname}: Corral runs {', '.join(SUPPORTED_NETWORKS)}"
                                 " networks")

    for inst_id, project, name, itype in q.instances(dump):
        what = f"instance {name!r} (project {project!r})"
        plan.instances.append((project, name))
        status = instances_state.get((project, name), "")
        if status == "Running":
            plan.running.append((project, name))
        if itype != 0:
            plan.blockers.append(f"{what} is a virtual machine: migrating LXD virtual machines is not implemented")
            continue
        if status == "Frozen":
            plan.blockers.append(f"{what} is frozen: unfreeze or stop it first")
        plan.blockers += _config_problems(cfgkeys.INSTANCE, q.instance_config(dump, inst_id), what)
        for dev, typ, cfg in q.instance_devices(dump, inst_id):
            plan.blockers += _device_problems(dev, typ, cfg, what)
    for project, prof, dev, typ, cfg in q.profile_devices(dump):
        plan.blockers += _device_problems(dev, typ, cfg, f"profile {prof!r} (project {project!r})")
    for pid, proj, prof in q.rows(dump, "SELECT p.id, pj.name, p.name FROM profiles p JOIN projects pj "
                                        "ON pj.id = p.project_id"):
        cfg = dict(q.rows(dump, "SELECT key, value FROM profiles_config WHERE profile_id = ?", (pid,)))
        plan.blockers += _config_problems(cfgkeys.INSTANCE, cfg, f"profile {prof!r} (project {proj!r})")

    plan.blockers += _check_dirs(lxd_dir, corral_dir)
    return plan


def _check_dirs(lxd_dir: str, corral_dir: str) -> list[str]:
    out = []
    if os.path.islink(lxd_dir):
        out.append(f"{lxd_dir} is a symlink: use the directory it points to, or a bind mount")
    if os.path.realpath(lxd_dir) == os.path.realpath(corral_dir):
        out.append("--corral-dir must differ from --lxd-dir (the data is renamed from one to the other)")
        return out
    if os.path.exists(corral_dir):
        if not os.path.isdir(corral_dir) or os.listdir(corral_dir):
            out.append(f"the target {corral_dir} exists and is not empty: Corral must start from nothing")
        elif os.path.ismount(corral_dir):
            out.append(f"the target {corral_dir} is a mount point: not supported (it is created by the migration)")
    parent = corral_dir if os.path.isdir(corral_dir) else os.path.dirname(os.path.abspath(corral_dir))
    if not os.path.isdir(parent):
        out.append(f"the target's parent directory {parent} does not exist")
        return out
    if os.stat(parent).st_dev != os.stat(lxd_dir).st_dev:
        out.append(f"{corral_dir} is not on the same filesystem as {lxd_dir}: the data is moved by renames, "
                   "never copied")
    free = shutil.disk_usage(parent).free
    if free < MIN_FREE:
        out.append(f"only {free // 2**20} MiB free on {parent}: at least {MIN_FREE // 2**20} MiB needed")
    return out


def describe(plan: Plan, lxd_dir: str, corral_dir: str) -> str:
    lines = ["Plan:",
             f"  1. stop LXD ({lxd_dir}): its instances stop ({len(plan.running)} running: "
             f"{', '.join(n for _, n in plan.running) or 'none'})",
             f"  2. move its data to {corral_dir} by renames (containers, snapshots, storage-pools, disks, "
             "images, networks, logs, backups, devices); its database stays in place for a way back",
             "  3. write Corral's database from LXD's (ids, volatile keys, MACs, idmaps kept) and rewrite paths",
             "  4. start corrald on it; it starts the instances that were running",
             "  on any failure after step 1: move everything back and start LXD again"]
    lines += [f"  note: {n}" for n in plan.notes]
    if plan.blockers:
        lines.append("Blockers:")
        lines += [f"  - {b}" for b in plan.blockers]
    else:
        lines.append("No blockers.")
    return "\n".join(lines)


def dumps(plan: Plan) -> str:
    return json.dumps({"blockers": plan.blockers, "notes": plan.notes, "running": plan.running})
