"""Migration 6 moves a Corral database (JSON columns, migrations 1-5) to LXD 5.0.2's tables and
columns, keeping every row; the query functions read the same shapes back. A real dqlite node."""
import asyncio
import os

import pytest

import corral.db as cdb
from corral.cluster.gateway import Gateway
from corral.db import Database
from corral.db.queries import certificates as qc, images as qim, instances as qi, networks as qn
from corral.db.queries import profiles as qp, projects as qpr, storage as qs, warnings as qw
from corral.db.schema import GLOBAL

LXD_TSV = "/work/shared/lxd-5.0.2/db-schema.tsv"
T = "2026-01-02T03:04:05Z"

OLD_ROWS = [
    "INSERT INTO config (key, value) VALUES ('core.trust_password', 'x')",
    "INSERT INTO projects (name, description, config) VALUES ('p2', 'second', '{\"features.images\":\"false\"}')",
    "INSERT INTO profiles (project, name, description, config, devices) VALUES ('default', 'web', 'w', "
    "'{\"limits.memory\":\"64MiB\"}', '{\"eth0\":{\"type\":\"nic\",\"network\":\"br0\",\"name\":\"eth0\"}}')",
    "UPDATE profiles SET devices = '{\"root\":{\"type\":\"disk\",\"path\":\"/\",\"pool\":\"default\"}}' "
    "WHERE name = 'default' AND project = 'default'",
    "INSERT INTO storage_pools (name, driver, description, config) VALUES ('default', 'dir', '', "
    "'{\"source\":\"/x\"}')",
    f"INSERT INTO storage_volumes (pool, project, type, name, description, config, created_at) VALUES "
    f"('default', 'default', 'custom', 'vol1', 'v', '{{\"size\":\"1GiB\"}}', '{T}')",
    f"INSERT INTO storage_volumes_snapshots (volume_id, name, description, config, created_at, expires_at) "
    f"VALUES (1, 'snap0', '', '{{}}', '{T}', '0001-01-01T00:00:00Z')",
    f"INSERT INTO images (project, fingerprint, filename, size, public, auto_update, cached, architecture, type, "
    f"created_at, uploaded_at, expires_at, last_used_at, properties, profiles) VALUES ('default', 'abc123', "
    f"'f.tar.xz', 42, 1, 0, 0, 'x86_64', 'container', '{T}', '{T}', '0001-01-01T00:00:00Z', '{T}', "
    f"'{{\"os\":\"busybox\",\"release\":\"1\"}}', '[\"default\",\"web\"]')",
    "INSERT INTO images_aliases (project, name, fingerprint, description) VALUES ('default', 'bb', 'abc123', 'd')",
    f"INSERT INTO instances (project, name, node, type, architecture, ephemeral, stateful, description, created_at, "
    f"last_used_at, config, devices, profiles) VALUES ('default', 'c1', 'none', 'container', 'x86_64', 0, 0, 'hi', "
    f"'{T}', '{T}', '{{\"limits.cpu\":\"1\",\"volatile.eth0.hwaddr\":\"00:16:3e:00:00:01\"}}', "
    f"'{{\"data\":{{\"type\":\"disk\",\"source\":\"/tmp\",\"path\":\"/mnt\"}}}}', '[\"web\",\"default\"]')",
    f"INSERT INTO instances_snapshots (instance_id, name, created_at, expires_at, stateful, description, "
    f"architecture, config, devices, profiles) VALUES (1, 'snap0', '{T}', '0001-01-01T00:00:00Z', 0, 's', "
    f"'x86_64', '{{\"limits.cpu\":\"2\"}}', '{{}}', '[\"default\"]')",
    "INSERT INTO certificates (fingerprint, type, name, certificate, restricted, projects) VALUES "
    "('ff00', 'client', 'me', 'PEM', 1, '[\"p2\"]')",
    "INSERT INTO networks (project, name, type, description, config, status) VALUES ('default', 'br0', 'bridge', "
    "'', '{\"ipv4.address\":\"10.9.0.1/24\"}', 'Created')",
    f"INSERT INTO warnings (uuid, node, project, entity_url, type, last_message, severity, status, count, "
    f"first_seen_at, last_seen_at) VALUES ('u-1', 'none', '', '/1.0/x', 'Some type', 'msg', 'moderate', "
    f"'acknowledged', 3, '{T}', '{T}')",
]


def _run(coro):
    return asyncio.new_event_loop().run_until_complete(coro)


@pytest.fixture
def dbdir(tmp_path):
    os.makedirs(tmp_path / "global")
    return tmp_path


async def _open(d) -> Database:
    db = Database(str(d / "global"), str(d / "local.db"), Gateway(str(d / "global")))
    await db.start()
    return db


def test_fresh_database_has_lxd_tables_and_columns(dbdir):
    async def go():
        db = await _open(dbdir)
        try:
            want = {}
            for line in open(LXD_TSV):
                scope, table, cols = line.rstrip("\n").split("\t")
                want.setdefault(scope, {})[table] = cols.split(",")
            for scope, tables in want.items():
                for table, cols in tables.items():
                    if scope == "global":
                        got, _ = await db.query(f"SELECT * FROM {table} LIMIT 0")
                    else:
                        got, _ = db.local.query(f"SELECT * FROM {table} LIMIT 0")
                    assert got == cols, (scope, table)
            _, rows = await db.query("SELECT id, name, address FROM nodes")
            assert rows == [[1, "none", "0.0.0.0"]]
            _, rows = await db.query("SELECT id, name FROM projects")
            assert rows == [[1, "default"]]
            # No table left that LXD does not have, except corral_* and the schema version table.
            _, rows = await db.query("SELECT name FROM sqlite_master WHERE type = 'table'")
            extra = {r[0] for r in rows} - set(want["global"]) - {"schema", "sqlite_sequence"}
            assert all(t.startswith("corral_") for t in extra), extra
        finally:
            await db.stop()
    _run(go())


def test_migration_moves_corral_rows_to_lxd_tables(dbdir, monkeypatch):
    async def go():
        monkeypatch.setattr(cdb, "GLOBAL", GLOBAL[:5])
        db = await _open(dbdir)
        for sql in OLD_ROWS:
            await db.query(sql)
        await db.stop()
        monkeypatch.setattr(cdb, "GLOBAL", GLOBAL)
        db = await _open(dbdir)
        try:
            async with db.session() as tx:
                inst = await qi.get(tx, "default", "c1")
                assert inst["config"] == {"limits.cpu": "1", "volatile.eth0.hwaddr": "00:16:3e:00:00:01"}
                assert inst["devices"] == {"data": {"type": "disk", "source": "/tmp", "path": "/mnt"}}
                assert inst["profiles"] == ["web", "default"]
                assert (inst["architecture"], inst["type"], inst["description"], inst["created_at"]) == \
                    ("x86_64", "container", "hi", T)
                assert "load_error" not in inst
                snaps = await qi.snapshots(tx, inst["id"])
                assert [(s["name"], s["config"], s["profiles"]) for s in snaps] == \
                    [("snap0", {"limits.cpu": "2"}, ["default"])]
                web = await qp.get(tx, "default", "web")
                assert web["config"] == {"limits.memory": "64MiB"}
                assert web["devices"] == {"eth0": {"type": "nic", "network": "br0", "name": "eth0"}}
                p2 = await qpr.get(tx, "p2")
                assert p2 == {"name": "p2", "description": "second", "config": {"features.images": "false"}}
                img = await qim.get(tx, "default", "abc123")
                assert img["properties"] == {"os": "busybox", "release": "1"} and img["public"]
                assert img["profiles"] == ["default", "web"] and img["size"] == 42
                assert await qim.alias(tx, "default", "bb") == {"name": "bb", "target": "abc123", "description": "d",
                                                                "type": "container"}
                vol = await qs.volume(tx, "default", "default", "custom", "vol1")
                assert vol["config"] == {"size": "1GiB"} and vol["created_at"] == T
                assert [s["name"] for s in await qs.volume_snapshots(tx, vol["id"])] == ["snap0"]
                assert (await qs.pool(tx, "default"))["config"] == {"source": "/x"}
                cert = await qc.get(tx, "ff00")
                assert cert["projects"] == ["p2"] and cert["restricted"] and cert["type"] == "client"
                net = await qn.get(tx, "br0")
                assert net["config"] == {"ipv4.address": "10.9.0.1/24"} and net["status"] == "Created"
                w = await qw.get(tx, "u-1")
                assert (w["status"], w["count"], w["type"], w["severity"], w["entity_url"]) == \
                    ("acknowledged", 3, "Some type", "moderate", "/1.0/x")
            # The rows as LXD's recipes see them.
            _, rows = await db.query("SELECT i.name, c.key, c.value FROM instances i JOIN instances_config c "
                                     "ON c.instance_id = i.id WHERE c.key = 'limits.cpu'")
            assert rows == [["c1", "limits.cpu", "1"]]
            _, rows = await db.query("SELECT d.name, d.type, c.key, c.value FROM instances_devices d "
                                     "JOIN instances_devices_config c ON c.instance_device_id = d.id ORDER BY c.key")
            assert rows == [["data", 2, "path", "/mnt"], ["data", 2, "source", "/tmp"]]
            _, rows = await db.query("SELECT p.name FROM instances_profiles ip JOIN profiles p "
                                     "ON p.id = ip.profile_id ORDER BY ip.apply_order")
            assert rows == [["web"], ["default"]]
            _, rows = await db.query("SELECT name FROM sqlite_master WHERE name LIKE 'old_%'")
            assert rows == []
        finally:
            await db.stop()
    _run(go())


def test_cascades_and_hand_written_rows(dbdir):
    async def go():
        db = await _open(dbdir)
        try:
            async with db.transaction() as tx:
                iid = await qi.create(tx, {"project": "default", "name": "x", "architecture": "x86_64",
                                           "created_at": T, "last_used_at": T, "config": {"user.a": "1"},
                                           "devices": {"d": {"type": "none"}}, "profiles": ["default"]})
                await qi.create_snapshot(tx, iid, {"name": "s", "created_at": T, "expires_at": T,
                                                   "architecture": "x86_64", "config": {}, "devices": {},
                                                   "profiles": ["default"]})
            assert [r["name"] for r in await _tx_get(db)] == ["x"]
            await db.query(f"UPDATE instances_config SET value = NULL WHERE instance_id = {iid}")
            await db.query(f"UPDATE instances_devices SET type = 99 WHERE instance_id = {iid}")
            async with db.session() as tx:
                rec = await qi.get(tx, "default", "x")
            assert "config has entries that are not strings" in rec["load_error"]
            assert rec["devices"] == {"d": {"type": "99"}}
            async with db.transaction() as tx:
                await qi.delete(tx, "default", "x")
            for t in ("instances_config", "instances_devices", "instances_profiles", "instances_snapshots",
                      "corral_instances_snapshots_profiles"):
                _, rows = await db.query(f"SELECT COUNT(*) FROM {t}")
                assert rows == [[0]], t
        finally:
            await db.stop()
    _run(go())


async def _tx_get(db):
    async with db.session() as tx:
        return await qi.get_all(tx)


def test_updates_write_only_changed_rows_and_refuse_missing_profiles(dbdir):
    from corral.errors import BadRequest

    async def go():
        db = await _open(dbdir)
        try:
            rec = {"project": "default", "name": "u", "architecture": "x86_64", "created_at": T, "last_used_at": T,
                   "config": {"b": "2", "a": "1"}, "devices": {"d": {"type": "disk", "path": "/m", "source": "/s"}},
                   "profiles": ["default"]}
            async with db.transaction() as tx:
                await qi.create(tx, rec)
            _, before = await db.query("SELECT id, key FROM instances_config ORDER BY key")
            _, dev_before = await db.query("SELECT id FROM instances_devices")
            async with db.transaction() as tx:
                await qi.update(tx, "default", "u", {**rec, "ephemeral": False, "description": "",
                                                     "config": {"a": "1", "b": "3", "c": "4"}})
                assert (await qi.get(tx, "default", "u"))["config"] == {"a": "1", "b": "3", "c": "4"}
            _, after = await db.query("SELECT id, key FROM instances_config ORDER BY key")
            assert after[:2] == before and after[2][1] == "c"       # a and b kept their rows
            assert (await db.query("SELECT id FROM instances_devices"))[1] == dev_before
            with pytest.raises(BadRequest, match='profile "gone" doesn'):
                async with db.transaction() as tx:
                    await qi.update(tx, "default", "u", {**rec, "ephemeral": False, "description": "",
                                                         "profiles": ["default", "gone"]})
            async with db.session() as tx:
                assert (await qi.get(tx, "default", "u"))["profiles"] == ["default"]   # rolled back
        finally:
            await db.stop()
    _run(go())


def test_reads_of_more_instances_than_dqlite_takes_parameters(dbdir):
    """dqlite refuses a statement with more than 255 parameters: the instances of a project (ids in
    an IN list) are read in chunks; with 300 of them every one keeps its config, devices, profiles
    and snapshots (a host with a few hundred containers could not list them, nor start up)."""
    async def go():
        db = await _open(dbdir)
        try:
            async with db.transaction() as tx:
                for i in range(300):
                    await qi.create(tx, {"project": "default", "name": f"m{i:03d}", "architecture": "x86_64",
                                         "created_at": T, "last_used_at": T, "config": {"user.n": str(i)},
                                         "devices": {"d": {"type": "disk", "path": "/m", "source": f"/s{i}"}},
                                         "profiles": ["default"]})
            async with db.transaction() as tx:
                for i in range(300):
                    iid = (await qi.get(tx, "default", f"m{i:03d}"))["id"]
                    await qi.create_snapshot(tx, iid, {"name": "s0", "created_at": T, "expires_at": T,
                                                       "config": {"user.s": str(i)}, "devices": {},
                                                       "profiles": ["default"]})
            async with db.session() as tx:
                rows = await qi.get_all(tx, "default")
                snaps = await qi.snapshots_of_all(tx)
            assert len(rows) == 300
            for i, r in enumerate(rows):
                assert r["config"] == {"user.n": str(i)} and r["profiles"] == ["default"]
                assert r["devices"]["d"]["source"] == f"/s{i}"
                assert [(s["name"], s["config"]) for s in snaps[r["id"]]] == [("s0", {"user.s": str(i)})]
        finally:
            await db.stop()
    _run(go())


def test_config_of_more_keys_than_dqlite_takes_parameters(dbdir):
    """Config rows are inserted several per statement: an instance with 300 keys (900 values) is
    written in statements under dqlite's 255-parameter limit, and rewriting it keeps every key."""
    async def go():
        db = await _open(dbdir)
        try:
            cfg = {f"user.k{i:03d}": str(i) for i in range(300)}
            rec = {"project": "default", "name": "many", "architecture": "x86_64", "created_at": T,
                   "last_used_at": T, "config": cfg, "devices": {}, "profiles": ["default"]}
            async with db.transaction() as tx:
                await qi.create(tx, rec)
            async with db.transaction() as tx:
                await qi.update(tx, "default", "many", {**rec, "ephemeral": False, "description": "",
                                                        "config": {**cfg, **{f"user.n{i}": "x" for i in range(120)}}})
            async with db.session() as tx:
                got = (await qi.get(tx, "default", "many"))["config"]
            assert len(got) == 420 and got["user.k299"] == "299" and got["user.n119"] == "x"
        finally:
            await db.stop()
    _run(go())
