"""ISSUE13 acceptance 4 and 7 (moving a running container, evacuating the last online member), and
`lxc move c --target M` / `lxc copy` across members: three members in network namespaces, the real
`lxc` client, busybox containers on a dir pool made per member then globally (LXD's way).

One cluster for the module (made by the first test that needs it, removed at the end, whatever
failed). Each member imports its own busybox image (`bb-<member>`, a fingerprint of its own) and
containers are made through the member that is to hold them, with `--target` naming it. Instance
state is read from the member an instance lives on."""
from __future__ import annotations

import os
import tempfile

import pytest

from clusterlib import (Cluster, OFFLINE_THRESHOLD, form, leftovers, members_csv, parse_sql_table,
                        set_server_config, wait_all_online, wait_status)
from helpers import unique

pytestmark = pytest.mark.timeout(600)


class Env:
    def __init__(self):
        self.cluster = Cluster()
        self.ms: list = []

    def member(self, name: str):
        return next(m for m in self.ms if m.name == name)


@pytest.fixture(scope="module")
def env():
    e = Env()
    try:
        e.ms = form(e.cluster, 3)
        m1 = e.ms[0]
        set_server_config(m1, {"cluster.offline_threshold": str(OFFLINE_THRESHOLD)})
        for m in e.ms:
            m1.lxc("storage", "create", "default", "dir", "--target", m.name)
        m1.lxc("storage", "create", "default", "dir")
        m1.lxc("profile", "device", "add", "default", "root", "disk", "path=/", "pool=default")
        from corral.cli.busybox import build_busybox_image
        for m in e.ms:
            tar = build_busybox_image(os.path.join(m.dir, "image-build"), description=f"busybox of {m.name}")
            m.lxc("image", "import", tar, "--alias", f"bb-{m.name}")
        yield e
    finally:
        made = e.cluster.made()
        e.cluster.cleanup()
        assert leftovers(made) == []


def node_of(m, name: str) -> str | None:
    rows = parse_sql_table(m.sql("global", "SELECT n.name FROM instances i JOIN nodes n ON n.id = i.node_id "
                                           f"WHERE i.name = '{name}'").stdout)
    return rows[0][0] if rows else None


def config_of(m, name: str) -> dict:
    import yaml
    return yaml.safe_load(m.lxc("config", "show", name).stdout)["config"]


def state_on(m, name: str) -> str:
    """The status the member holding `name` reports."""
    return m.request("GET", f"/1.0/instances/{name}").metadata["status"]


def volume_dir(m, name: str) -> str:
    return os.path.join(m.dir, "storage-pools", "default", "containers", name)


def push(m, name: str, path: str, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir="/var/tmp", prefix="corral-evac-") as f:
        f.write(text)
        f.flush()
        m.lxc("file", "push", f.name, f"{name}{path}")


def launch(m, name: str, *, start: bool, snapshot: str = "") -> None:
    """A container on member `m` (made through m, from m's own image), with /hello naming it."""
    m.lxc("init", f"bb-{m.name}", name, "--target", m.name)
    push(m, name, "/hello", f"I am {name}\n")
    if snapshot:
        m.lxc("snapshot", name, snapshot)
    if start:
        m.lxc("start", name)
    assert node_of(m, name) == m.name


def hello(m, name: str) -> str:
    return m.lxc("file", "pull", f"{name}/hello", "-").stdout


def lxc_error(m, *args) -> str:
    r = m.lxc(*args, check=False)
    assert r.returncode != 0, (args, r.stdout)
    return r.stderr.strip().splitlines()[-1]


# ---- lxc move --target, lxc copy across members -------------------------------------------------------

def test_a_stopped_container_with_a_snapshot_moves_between_members(env):
    m1, m2, m3 = env.ms
    name = unique("mv")
    launch(m2, name, start=False, snapshot="s0")
    push(m2, name, "/after-snapshot", "later\n")
    # asked of a third member: it orchestrates, m2 sends, m3 pulls over the cluster TLS
    m1.lxc("move", name, "--target", "m3")
    assert node_of(m1, name) == "m3"
    for m in env.ms:   # every member lists it where it is now
        assert m.lxc("list", name, "-c", "nsL", "--format", "csv").stdout.strip() == f"{name},STOPPED,m3"
    assert not os.path.exists(volume_dir(m2, name))                     # the source's copy is gone
    assert os.path.isdir(volume_dir(m3, name))
    assert hello(m3, name) == f"I am {name}\n"
    assert m3.lxc("file", "pull", f"{name}/after-snapshot", "-").stdout == "later\n"
    info = m3.lxc("info", name).stdout
    assert "s0" in info, info
    m3.lxc("restore", name, "s0")                                      # the snapshot's data came along
    assert m3.lxc("file", "pull", f"{name}/after-snapshot", "-", check=False).returncode != 0
    m3.lxc("start", name)
    assert state_on(m3, name) == "Running"
    assert m3.lxc("exec", name, "--", "cat", "/hello").stdout == f"I am {name}\n"
    m3.lxc("stop", name, "--force")
    # and back, with a new name, asked of the member that holds it
    m3.lxc("move", name, f"{name}b", "--target", "m2")
    assert node_of(m1, f"{name}b") == "m2" and node_of(m1, name) is None
    assert hello(m2, f"{name}b") == f"I am {name}\n"
    m2.lxc("delete", f"{name}b")


def test_moves_refused_change_nothing(env):
    m1, m2, m3 = env.ms
    name, running = unique("mvf"), unique("mvr")
    launch(m2, name, start=False)
    launch(m2, running, start=True)
    assert lxc_error(m1, "move", name, "--target", "nosuch") == \
        "Error: Migration API failure: Failed to get target node: Cluster member not found"
    assert lxc_error(m1, "move", name, "--target", "m2") == \
        "Error: Target must be different than instance's current location"
    # acceptance 7: a running container (lxc asks a live move; without CRIU LXD 5.0.2 refuses it too)
    assert lxc_error(m1, "move", running, "--target", "m3") == \
        f'Error: Failed stopping instance "{running}": Unable to perform container live migration. ' \
        "CRIU isn't installed"
    assert node_of(m1, running) == "m2" and state_on(m2, running) == "Running"
    assert not os.path.exists(volume_dir(m3, running))
    # the target cannot take the volume (a directory of that name is in its pool): nothing moves
    os.makedirs(volume_dir(m3, name))
    try:
        err = lxc_error(m1, "move", name, "--target", "m3")
        assert f'Failed to copy instance "{name}" to cluster member "m3"' in err, err
    finally:
        os.rmdir(volume_dir(m3, name))
    assert node_of(m1, name) == "m2" and hello(m2, name) == f"I am {name}\n"
    # `--stateless`: stopped, moved and started again (as LXD 5.0.2 does)
    m1.lxc("move", running, "--target", "m3", "--stateless")
    assert node_of(m1, running) == "m3" and state_on(m3, running) == "Running"
    m3.lxc("delete", running, "--force")
    m2.lxc("delete", name)


def test_a_copy_of_another_members_container(env):
    m1, m2, m3 = env.ms
    src, dst = unique("cps"), unique("cpd")
    launch(m2, src, start=True, snapshot="s0")
    m3.lxc("copy", src, dst, "--target", "m3")
    assert node_of(m1, dst) == "m3" and node_of(m1, src) == "m2"
    assert hello(m3, dst) == f"I am {src}\n"
    assert "s0" in m3.lxc("info", dst).stdout
    m3.lxc("start", dst)
    assert m3.lxc("exec", dst, "--", "hostname").stdout.strip() == dst
    m3.lxc("delete", dst, "--force")
    m2.lxc("delete", src, "--force")


# ---- evacuation ---------------------------------------------------------------------------------------

def test_evacuate_and_restore_a_member(env):
    """Acceptance 4: a running and a stopped container on m1; evacuated, both are on other members
    (the running one running there), m1 shows Evacuated; restored, both are back, as they were."""
    m1, m2, m3 = env.ms
    run, stop = unique("evr"), unique("evs")
    launch(m1, run, start=True)
    launch(m1, stop, start=False)
    m2.lxc("cluster", "evacuate", "m1", "--force")
    rows = {r["name"]: r for r in members_csv(m3)}
    assert (rows["m1"]["state"], rows["m1"]["message"]) == ("EVACUATED", "Unavailable due to maintenance")
    assert rows["m2"]["state"] == rows["m3"]["state"] == "ONLINE"
    where = {n: node_of(m1, n) for n in (run, stop)}
    assert set(where.values()) <= {"m2", "m3"}, where
    holder = env.member(where[run])
    assert state_on(holder, run) == "Running"
    assert state_on(env.member(where[stop]), stop) == "Stopped"
    assert hello(holder, run) == f"I am {run}\n"
    assert config_of(m2, run)["volatile.evacuate.origin"] == "m1"
    assert not os.path.exists(volume_dir(m1, run)) and not os.path.exists(volume_dir(m1, stop))
    assert lxc_error(m3, "cluster", "evacuate", "m1", "--force") == "Error: Cluster member is already evacuated"
    # new instances avoid it: placed elsewhere, refused when it is named
    extra = unique("evn")
    m1.lxc("launch", "bb-m2", extra)
    assert node_of(m1, extra) in ("m2", "m3")
    m1.lxc("delete", extra, "--force")
    assert lxc_error(m2, "launch", "bb-m2", unique("evt"), "--target", "m1") == "Error: Cluster member is evacuated"

    m3.lxc("cluster", "restore", "m1", "--force")
    assert {r["name"]: r["state"] for r in members_csv(m1)}["m1"] == "ONLINE"
    assert node_of(m1, run) == node_of(m1, stop) == "m1"
    assert state_on(m1, run) == "Running" and state_on(m1, stop) == "Stopped"
    assert hello(m1, run) == f"I am {run}\n" and hello(m1, stop) == f"I am {stop}\n"
    assert "volatile.evacuate.origin" not in config_of(m1, run)
    assert lxc_error(m1, "cluster", "restore", "m1", "--force") == "Error: Cluster member is already restored"
    m1.lxc("delete", run, stop, "--force")


def test_evacuating_the_last_online_member_is_refused(env):
    """Acceptance 7: with m3 offline and m1 evacuated, m2 is the last member instances could go to:
    refused, nothing changed. An offline member can neither be evacuated nor be moved to."""
    m1, m2, m3 = env.ms
    a, b = unique("evl"), unique("evm")
    launch(m1, a, start=True)
    launch(m2, b, start=True)
    m3.kill9()
    try:
        wait_status(m1, "m3", "Offline", OFFLINE_THRESHOLD + 10)
        assert lxc_error(m1, "move", a, "--target", "m3", "--stateless") == \
            "Error: Migration API failure: Target node is offline"
        assert lxc_error(m1, "cluster", "evacuate", "m3", "--force") == 'Error: Cluster member "m3" is offline'
        m2.lxc("cluster", "evacuate", "m1", "--force")
        assert node_of(m1, a) == "m2" and state_on(m2, a) == "Running"
        before = m1.sql("global", "SELECT id, name, node_id FROM instances ORDER BY id").stdout
        assert lxc_error(m1, "cluster", "evacuate", "m2", "--force") == \
            'Error: Cluster member "m2" is the last online member that is not evacuated: ' \
            "its instances would have nowhere to go"
        assert m1.sql("global", "SELECT id, name, node_id FROM instances ORDER BY id").stdout == before
        assert {r["name"]: r["state"] for r in members_csv(m1)}["m2"] == "ONLINE"
        assert state_on(m2, a) == "Running" and state_on(m2, b) == "Running"
        m2.lxc("cluster", "restore", "m1", "--force")
        assert node_of(m1, a) == "m1" and state_on(m1, a) == "Running"
    finally:
        if not m3.running():
            m3.start()
    wait_all_online(env.ms, 3, timeout=60)
    m1.lxc("delete", a, "--force")
    m2.lxc("delete", b, "--force")
