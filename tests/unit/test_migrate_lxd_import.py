"""corral migrate-from-lxd, the parts without a host: LXD 5.0.2's database dump (a real one, recorded from
the test host of tests/lxdhost.py) -> Corral's patch.global.sql, and the checks' blockers."""
import os
import sqlite3

from corral.db.local import _split
from corral.db.queries import lxd_import as q
from corral.migrate import checks

DUMP = os.path.join(os.path.dirname(__file__), "..", "integration", "data", "lxd-5.0.2-global-dump.sql")
OLD = "/var/tmp/corral-mig-5rpzsduu/lxd"
NEW = "/var/lib/corral"


def _lxd() -> sqlite3.Connection:
    with open(DUMP) as f:
        return q.load_dump(f.read())


def _rewrite(v: str) -> str:
    return NEW + v[len(OLD):] if v.startswith(OLD + "/") else v


def _applied() -> sqlite3.Connection:
    """Corral's fresh schema with the patch applied the way corrald applies it (split on ";")."""
    stmts, _ = q.patch(_lxd(), _rewrite)
    db = q.corral_schema()
    db.execute("PRAGMA foreign_keys = ON")
    for s in _split(";\n".join(stmts)):
        db.execute(s)
    return db


def test_same_tables_and_columns_as_lxd_but_schema():
    lt, ct = q.tables(_lxd()), q.tables(q.corral_schema())
    assert set(lt) - set(ct) == set()
    assert {t for t in lt if lt[t] != ct[t]} == {"schema"}
    assert q.schema_version(_lxd()) == 60


def test_patch_keeps_ids_volatile_keys_and_rewrites_paths():
    lxd, db = _lxd(), _applied()
    for table in ("instances", "profiles", "projects", "storage_pools", "storage_volumes", "networks", "images",
                  "images_aliases", "instances_snapshots"):
        assert sorted(r[0] for r in db.execute(f"SELECT id FROM {table}")) == \
            sorted(r[0] for r in lxd.execute(f"SELECT id FROM {table}")), table
    sel = ("SELECT c.key, c.value FROM instances_config c JOIN instances i ON i.id = c.instance_id "
           "WHERE i.name = 'crun' AND c.key LIKE 'volatile.%'")
    assert dict(db.execute(sel).fetchall()) == dict(lxd.execute(sel).fetchall())
    src = dict(db.execute("SELECT p.name, c.value FROM storage_pools_config c JOIN storage_pools p "
                          "ON p.id = c.storage_pool_id WHERE c.key = 'source'").fetchall())
    assert src == {"default": NEW + "/storage-pools/default", "bt": NEW + "/disks/bt.img"}
    # dates as Corral (and LXD's API) write them, RFC 3339
    created = [r[0] for r in db.execute("SELECT creation_date FROM instances")]
    assert created and all("T" in c and c.endswith("Z") for c in created), created
    # Corral's default rows are replaced, its member row kept; warnings are LXD's own: not copied
    assert db.execute("SELECT COUNT(*) FROM profiles WHERE name = 'default'").fetchone()[0] == 2
    assert db.execute("SELECT id, name FROM nodes").fetchall() == [(1, "none")]
    assert db.execute("SELECT COUNT(*) FROM warnings").fetchone()[0] == 0
    # a snapshot's profiles: its instance's
    assert db.execute("SELECT name FROM corral_instances_snapshots_profiles").fetchall() == [("default",)]


def test_literals_survive_the_semicolon_split():
    lxd = _lxd()
    lxd.execute("UPDATE profiles SET description = 'a;b''c' WHERE name = 'extra'")
    stmts, _ = q.patch(lxd, _rewrite)
    db = q.corral_schema()
    for s in _split(";\n".join(stmts)):
        db.execute(s)
    assert db.execute("SELECT description FROM profiles WHERE name = 'extra'").fetchone()[0] == "a;b'c"


def test_rfc3339():
    assert q.rfc3339("2026-12-02 16:30:01.803441053+00:00") == "2026-12-02T16:30:01.803441053Z"
    assert q.rfc3339("0001-01-01 00:00:00+00:00") == "0001-01-01T00:00:00Z"
    assert q.rfc3339("not a date") == "not a date"


def _check(lxd, tmp_path, states=None):
    server = {"environment": {"server": "lxd", "server_version": "5.0.2", "server_clustered": False}}
    lxd_dir = tmp_path / "lxd"
    lxd_dir.mkdir(exist_ok=True)
    return checks.check(server, lxd, str(lxd_dir), str(tmp_path / "corral"), states or {})


def test_checks_pass_on_the_test_host(tmp_path):
    plan = _check(_lxd(), tmp_path, {("default", "crun"): "Running", ("default", "cstop"): "Stopped"})
    assert plan.blockers == []
    assert plan.running == [("default", "crun")]
    assert len(plan.instances) == 3


def test_checks_name_every_blocker(tmp_path):
    lxd = _lxd()
    lxd.execute("INSERT INTO storage_pools (name, driver, description, state) VALUES ('lv', 'lvm', '', 1)")
    lxd.execute("INSERT INTO networks (project_id, name, description, state, type) VALUES (1, 'o1', '', 1, 3)")
    lxd.execute("UPDATE instances SET type = 1 WHERE name = 'cstop'")
    cid = lxd.execute("SELECT id FROM instances WHERE name = 'cvol'").fetchone()[0]
    lxd.execute(f"INSERT INTO instances_devices (instance_id, name, type) VALUES ({cid}, 'g', 6)")
    lxd.execute(f"INSERT INTO instances_config (instance_id, key, value) VALUES ({cid}, 'no.such.key', 'x')")
    lxd.execute("INSERT INTO nodes (name, description, address, schema, api_extensions, arch) "
                "VALUES ('m2', '', '10.0.0.2', 60, 1, 2)")
    lxd.execute("INSERT INTO config (key, value) VALUES ('candid.api.url', 'https://candid.example')")
    plan = _check(lxd, tmp_path, {("default", "crun"): "Frozen"})
    text = "\n".join(plan.blockers)
    assert "server configuration: config key candid.api.url='https://candid.example': not implemented" in text
    assert "storage pool 'lv' uses the lvm driver" in text
    assert "network 'o1' is of type ovn" in text
    assert "instance 'cstop' (project 'default') is a virtual machine" in text
    assert "device 'g' is a gpu device" in text
    assert "no.such.key" in text
    assert "instance 'crun' (project 'default') is frozen" in text
    assert "LXD is clustered" in text


def test_checks_refuse_other_versions_and_a_used_target(tmp_path):
    server = {"environment": {"server": "lxd", "server_version": "5.21.1", "server_clustered": False}}
    (tmp_path / "lxd").mkdir()
    (tmp_path / "corral").mkdir()
    (tmp_path / "corral" / "x").write_text("")
    plan = checks.check(server, _lxd(), str(tmp_path / "lxd"), str(tmp_path / "corral"), {})
    text = "\n".join(plan.blockers)
    assert "LXD version 5.21.1" in text
    assert "exists and is not empty" in text
    plan = checks.check(server, _lxd(), str(tmp_path / "lxd"), str(tmp_path / "lxd"), {})
    assert any("must differ" in b for b in plan.blockers)
