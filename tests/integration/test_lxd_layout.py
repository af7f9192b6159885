"""Issue 10: the database and the disk look like LXD's. `lxd sql`-style recipes against LXD 5.0.2's
table names (reads, and UPDATEs that take effect after a restart), the data directory layout with a
running container, a snapshot, an image and a network, its emptiness after everything is deleted,
and the move of an older Corral layout (liblxc's config in containers/<name>/config) with the
container running through it."""
import os
import shutil

from helpers import unique, wait_for


def sql(d, query: str) -> list[list[str]]:
    """Rows of `corrald sql global` (its table output, as `lxd sql` prints it), header dropped."""
    out = d.run("corrald", "sql", "global", query, check=True).stdout
    if out.startswith("Rows affected:"):
        return [[out.split(":", 1)[1].strip()]]
    rows = [[c.strip() for c in ln.strip()[1:-1].split(" | ")] for ln in out.splitlines() if ln.startswith("| ")]
    return rows[1:]


def lxc_names(d) -> list[str]:
    return sorted(d.lxc("list", "-c", "n", "-f", "csv").stdout.split())


def test_sql_recipes_on_lxd_tables(fresh_host):
    d = fresh_host
    c, c2, prof = unique("sq"), unique("sq"), unique("pr")
    d.lxc("launch", "busybox", c, "-c", "user.x=1", "-c", "limits.memory=128MiB")
    d.lxc("init", "busybox", c2)
    d.lxc("profile", "create", prof)
    d.lxc("profile", "set", prof, "limits.cpu", "1")
    d.lxc("config", "set", "images.auto_update_interval", "12")

    # 1. SELECT * FROM instances shows what lxc list shows; types as LXD codes them (0 = container)
    rows = sql(d, "SELECT * FROM instances ORDER BY name")
    assert sorted(r[2] for r in rows) == lxc_names(d) == sorted([c, c2])
    assert {r[4] for r in rows} == {"0"}
    # ... and with their config, through LXD's instances_config
    rows = sql(d, "SELECT i.name, c.key, c.value FROM instances i JOIN instances_config c ON c.instance_id = i.id "
                  f"WHERE i.name = '{c}' AND c.key IN ('user.x', 'limits.memory') ORDER BY c.key")
    assert rows == [[c, "limits.memory", "128MiB"], [c, "user.x", "1"]]
    rows = sql(d, "SELECT p.name FROM instances_profiles ip JOIN instances i ON i.id = ip.instance_id "
                  f"JOIN profiles p ON p.id = ip.profile_id WHERE i.name = '{c}' ORDER BY ip.apply_order")
    assert rows == [["default"]]

    # 2. images: count, properties, alias
    images = d.get("/1.0/images").metadata
    assert sql(d, "SELECT COUNT(*) FROM images") == [[str(len(images))]]
    fp = d.get("/1.0/images/aliases/busybox").metadata["target"]
    assert sql(d, "SELECT i.fingerprint FROM images_aliases a JOIN images i ON i.id = a.image_id "
                  "WHERE a.name = 'busybox'") == [[fp]]

    # 3. a profile's config and the default profile's devices (type 2 = disk, 1 = nic)
    assert sql(d, "SELECT c.key, c.value FROM profiles_config c JOIN profiles p ON p.id = c.profile_id "
                  f"WHERE p.name = '{prof}'") == [["limits.cpu", "1"]]
    rows = sql(d, "SELECT d.name, d.type, c.key, c.value FROM profiles_devices d JOIN profiles p "
                  "ON p.id = d.profile_id JOIN profiles_devices_config c ON c.profile_device_id = d.id "
                  "WHERE p.name = 'default' AND c.key IN ('pool', 'network') ORDER BY d.name")
    net = d.get("/1.0/profiles/default").metadata["devices"]["eth0"]["network"]
    assert rows == [["eth0", "1", "network", net], ["root", "2", "pool", "default"]]

    # 4. UPDATE instances_config, then a restart: lxc sees the new values
    assert sql(d, "UPDATE instances_config SET value = '256MiB' WHERE key = 'limits.memory' AND instance_id = "
                  f"(SELECT id FROM instances WHERE name = '{c}')") == [["1"]]
    assert sql(d, "UPDATE instances_config SET value = '2' WHERE key = 'user.x' AND instance_id = "
                  f"(SELECT id FROM instances WHERE name = '{c}')") == [["1"]]
    # 5. UPDATE / DELETE rows of the global config table
    assert sql(d, "UPDATE config SET value = '24' WHERE key = 'images.auto_update_interval'") == [["1"]]
    d.stop()
    d.start()
    assert d.lxc("config", "get", c, "limits.memory").stdout.strip() == "256MiB"
    assert d.lxc("config", "get", c, "user.x").stdout.strip() == "2"
    assert d.lxc("config", "get", "images.auto_update_interval").stdout.strip() == "24"
    assert d.get(f"/1.0/instances/{c}").metadata["status"] == "Running"   # it ran through the restart
    assert sql(d, "DELETE FROM config WHERE key = 'images.auto_update_interval'") == [["1"]]
    d.stop()
    d.start()
    assert d.lxc("config", "get", "images.auto_update_interval").stdout.strip() == ""

    # the local database: LXD's config, patches and raft_nodes
    for table in ("config", "patches", "raft_nodes"):
        assert d.run("corrald", "sql", "local", f"SELECT * FROM {table}").returncode == 0, table
    assert "corral_lxd_data_dir_layout" in d.run("corrald", "sql", "local", "SELECT name FROM patches").stdout
    d.lxc("delete", "-f", c, c2)
    assert sql(d, "SELECT COUNT(*) FROM instances_config") == [["0"]]   # ON DELETE CASCADE


def _layout_entries(d, sub: str) -> list[str]:
    return sorted(os.listdir(os.path.join(d.dir, sub)))


def test_data_dir_layout_and_empty_after_delete(fresh_host):
    d = fresh_host
    c = unique("ly")
    d.lxc("launch", "busybox", c)
    d.lxc("snapshot", c, "s0")
    fp = d.get("/1.0/images/aliases/busybox").metadata["target"]
    net = d.get("/1.0/profiles/default").metadata["devices"]["eth0"]["network"]
    pool = os.path.join(d.dir, "storage-pools", "default")

    link = os.path.join(d.dir, "containers", c)
    assert os.path.islink(link) and os.readlink(link) == os.path.join(pool, "containers", c)
    for entry in ("rootfs", "metadata.yaml", "templates", "backup.yaml"):
        assert os.path.exists(os.path.join(link, entry)), entry
    assert os.stat(os.path.join(pool, "containers")).st_mode & 0o777 == 0o700
    assert os.stat(link).st_mode & 0o777 == 0o100          # the volume behind the link: root only
    snaps = os.path.join(d.dir, "snapshots", c)
    assert os.path.islink(snaps) and os.readlink(snaps) == os.path.join(pool, "containers-snapshots", c)
    assert os.path.isdir(os.path.join(snaps, "s0", "rootfs"))
    assert os.path.isfile(os.path.join(d.dir, "images", fp))
    assert os.path.exists(os.path.join(d.dir, "devlxd", "sock"))
    assert any(e.startswith("dnsmasq.") for e in os.listdir(os.path.join(d.dir, "networks", net)))
    logs = os.path.join(d.dir, "logs", c)
    assert os.path.isfile(os.path.join(logs, "lxc.conf")) and os.path.isfile(os.path.join(logs, "lxc.log"))
    assert "lxc.rootfs.path" in open(os.path.join(logs, "lxc.conf")).read()

    d.lxc("delete", "-f", c)
    d.lxc("image", "delete", fp)
    for sub in ("containers", "snapshots", "images", "devices"):
        assert _layout_entries(d, sub) == [], sub
    assert not os.path.exists(logs)


def test_old_layout_moves_over_with_the_container_running(fresh_host):
    """An older Corral kept liblxc's config in a real containers/<name>/ directory. Put a running
    container's files back that way, restart: the layout is LXD's and the container still runs and
    answers (liblxc's lxcpath did not change, so its command socket did not either)."""
    d = fresh_host
    c, stopped = unique("ol"), unique("ol")
    d.lxc("launch", "busybox", c)
    d.lxc("init", "busybox", stopped)
    d.kill9()
    for name in (c, stopped):
        link = os.path.join(d.dir, "containers", name)
        conf = os.path.join(d.dir, "logs", name, "lxc.conf")
        os.unlink(link)
        os.makedirs(link, mode=0o711)
        shutil.move(conf, os.path.join(link, "config"))
    d.start()
    for name in (c, stopped):
        link = os.path.join(d.dir, "containers", name)
        assert os.path.islink(link), name
        assert not os.path.exists(os.path.join(link, "config"))
        assert os.path.isfile(os.path.join(d.dir, "logs", name, "lxc.conf"))
    assert d.get(f"/1.0/instances/{c}").metadata["status"] == "Running"
    assert d.lxc("exec", c, "--", "echo", "hi").stdout.strip() == "hi"
    d.lxc("stop", "-f", c)
    d.lxc("start", c)
    d.lxc("start", stopped)
    wait_for(lambda: d.get(f"/1.0/instances/{stopped}").metadata["status"] == "Running", timeout=20)
    d.lxc("delete", "-f", c, stopped)
    assert _layout_entries(d, "containers") == []
