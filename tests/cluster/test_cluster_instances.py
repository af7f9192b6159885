"""ISSUE13 acceptance 1 (the cluster acting as one server for its instances) and 5 (kill -9 of a
member): three members in network namespaces, busybox containers, the real `lxc` client and pylxd.

Any member answers for every instance: requests about an instance on another member are forwarded
there (exec and console websockets included), `lxc list` on every member lists every instance with
its location, operations are found on whichever member is asked, and `/dev/lxd` says which member
a container runs on. A member killed with -9 does not hold up a listing: its instances are listed as
Error on it, and come back when it does.

One cluster for the module (made once, removed at the end whatever happened)."""
from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import shutil
import struct
import subprocess
import termios
import tempfile
import time

import pytest
import yaml

from clusterlib import DAEMON, OFFLINE_THRESHOLD, Cluster, form, leftovers, set_server_config, wait_all_online, wait_status
from events_lib import wait_links
from helpers import busybox_tarball, unique

HERE = os.path.dirname(os.path.abspath(__file__))
DEVLXD_CLIENT = os.path.join(HERE, "..", "integration", "data", "devlxd_client.c")


@pytest.fixture(scope="module")
def members():
    c = Cluster()
    made = None
    try:
        ms = form(c, 3)
        set_server_config(ms[0], {"cluster.offline_threshold": str(OFFLINE_THRESHOLD)})
        m1 = ms[0]
        for m in ms:   # a dir pool on every member, the LXD way, and the root disk on it
            m1.lxc("storage", "create", "default", "dir", "--target", m.name)
        m1.lxc("storage", "create", "default", "dir")
        m1.lxc("profile", "device", "add", "default", "root", "disk", "path=/", "pool=default")
        m1.lxc("image", "import", busybox_tarball(), "--alias", "busybox")   # copied to the others on demand
        yield ms
    finally:
        made = c.made()
        c.cleanup()
    assert leftovers(made) == []


@pytest.fixture(scope="module")
def placed(members):
    """One container launched on each member with --target and three more without a target:
    {name: member name}."""
    m1, m2, m3 = members
    out = {}
    for m in members:
        name = unique(f"on{m.name}")
        m2.lxc("launch", "busybox", name, "--target", m.name)
        out[name] = m.name
    for _ in range(3):
        name = unique("any")
        m3.lxc("launch", "busybox", name)
        out[name] = None   # wherever placement put it (read back below)
    listed = {i["name"]: i["location"] for i in listing(m1)}
    for name in out:
        out[name] = listed[name]
    return out


def listing(m, *args: str) -> list[dict]:
    return yaml.safe_load(m.lxc("list", "--format", "yaml", *args, timeout=60).stdout) or []


def on(placed: dict, member: str) -> str:
    return next(n for n, loc in sorted(placed.items()) if loc == member and n.startswith("on"))


def interactive(m, args: list[str], typed: bytes, timeout: float = 60) -> tuple[int, str]:
    """`lxc ARGS` run on a pseudo-terminal (80x24) as a user would, `typed` written to it once it
    started; (exit code, everything it showed)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    try:
        p = subprocess.Popen(["lxc", *args], env=m.env, stdin=slave, stdout=slave, stderr=slave,
                             start_new_session=True)
    finally:
        os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        time.sleep(1)
        os.write(master, typed)
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:   # EIO: the terminal's other side is closed
                    break
                if not chunk:
                    break
                out += chunk
            elif p.poll() is not None:
                break
        return p.wait(timeout=max(1, deadline - time.monotonic())), out.decode(errors="replace")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)


# ---- every member lists every instance ----------------------------------------------------------------

def test_lxc_list_on_every_member_shows_all_with_their_locations(members, placed):
    assert sorted(placed.values()) == ["m1", "m1", "m2", "m2", "m3", "m3"]   # three, then one more each
    want = sorted((n, "RUNNING", loc) for n, loc in placed.items())
    for m in members:
        rows = [line.split(",") for line in m.lxc("list", "--format", "csv", "-c", "nsL").stdout.splitlines()]
        assert sorted(tuple(r) for r in rows if r[0] in placed) == want, m.name
        # the full listing (recursion=2): each member's own states, read there
        full = {i["name"]: i for i in listing(m)}
        for name, loc in placed.items():
            assert full[name]["location"] == loc and full[name]["status"] == "Running"
            assert full[name]["state"]["pid"] > 0
    # filters apply to every member's instances
    r = members[1].request("GET", "/1.0/instances?recursion=1&filter=location%20eq%20m3")
    assert sorted(i["name"] for i in r.metadata) == sorted(n for n, loc in placed.items() if loc == "m3")
    # GET of one instance (and its state) through any member
    name = on(placed, "m2")
    for m in members:
        assert m.request("GET", f"/1.0/instances/{name}").metadata["location"] == "m2"
        assert m.request("GET", f"/1.0/instances/{name}/state").metadata["status"] == "Running"


# ---- driving an instance through a member that does not hold it -----------------------------------------

def test_exec_through_another_member(members, placed):
    m1, m2, m3 = members
    name = on(placed, "m3")
    r = m1.lxc("exec", name, "--", "sh", "-c", "echo out; echo err >&2; hostname", timeout=60)
    assert r.stdout == f"out\n{name}\n" and r.stderr == "err\n"
    assert m2.lxc("exec", name, "--", "sh", "-c", "exit 7", check=False, timeout=60).returncode == 7
    # stdin reaches the command (non-interactive: its own stream), and its end ends the command
    r = m1.lxc("exec", name, "--", "sh", "-c", "cat; echo done", input="line one\nline two\n", timeout=60)
    assert r.stdout == "line one\nline two\ndone\n"
    # interactive: lxc on a terminal of its own, a line typed in, the window size sent on the
    # control websocket
    rc, out = interactive(m2, ["exec", name, "--", "sh", "-c", "read x; echo got:$x; stty size"], b"hello\n")
    assert rc == 0 and "got:hello" in out and "24 80" in out, (rc, out)
    # the operations live on m3: m1 finds them, and lists them with their location
    ops = yaml.safe_load(m1.lxc("operation", "list", "--format", "yaml").stdout) or []
    execs = [o for o in ops if o["description"] == "Executing command"]
    assert execs and {o["location"] for o in execs} == {"m3"}
    op = m2.request("GET", f"/1.0/operations/{execs[0]['id']}")
    assert op.status == 200 and op.metadata["location"] == "m3"


def test_files_console_snapshots_and_state_through_another_member(members, placed):
    m1, m2, m3 = members
    name = on(placed, "m2")
    d = tempfile.mkdtemp(prefix="corral-fwd-files-")
    try:
        src, back = os.path.join(d, "src"), os.path.join(d, "back")
        payload = os.urandom(300_000)   # more than one chunk each way
        with open(src, "wb") as f:
            f.write(payload)
        m1.lxc("file", "push", src, f"{name}/root/payload", "--mode", "0640")
        m3.lxc("file", "pull", f"{name}/root/payload", back)
        with open(back, "rb") as f:
            assert f.read() == payload
        assert m2.lxc("exec", name, "--", "stat", "-c", "%a %s", "/root/payload").stdout.split() == \
            ["640", str(len(payload))]
        m3.lxc("file", "delete", f"{name}/root/payload")
        assert m2.lxc("exec", name, "--", "test", "-e", "/root/payload", check=False).returncode == 1
    finally:
        shutil.rmtree(d)

    # the console log: what its member shows
    here = m2.lxc("console", name, "--show-log", check=DAEMON == "corrald")
    there = m1.lxc("console", name, "--show-log", check=False)
    assert (there.returncode, there.stdout, there.stderr) == (here.returncode, here.stdout, here.stderr)

    # snapshots and info
    m3.lxc("snapshot", name, "s1")
    info = m1.lxc("info", name).stdout
    assert "Location: m2" in info and "s1" in info
    assert [s["name"] for s in m2.request("GET", f"/1.0/instances/{name}/snapshots?recursion=1").metadata] == ["s1"]
    m1.lxc("delete", f"{name}/s1")
    assert m2.request("GET", f"/1.0/instances/{name}/snapshots").metadata == []

    # stop and start through another member
    m1.lxc("stop", name, "--force")
    assert m3.request("GET", f"/1.0/instances/{name}").metadata["status"] == "Stopped"
    m3.lxc("start", name)
    assert m1.request("GET", f"/1.0/instances/{name}/state").metadata["status"] == "Running"


def test_pylxd_on_one_member_drives_an_instance_on_another(members, placed):
    import pylxd
    m1 = members[0]
    name = on(placed, "m3")
    client = pylxd.Client(endpoint=m1.socket)
    inst = client.instances.get(name)
    assert inst.location == "m3" and inst.status == "Running"
    res = inst.execute(["sh", "-c", "echo from $(hostname); exit 3"])
    assert (res.exit_code, res.stdout) == (3, f"from {name}\n")
    inst.files.put("/root/by-pylxd", b"pylxd was here\n")
    assert inst.files.get("/root/by-pylxd") == b"pylxd was here\n"
    snap = inst.snapshots.create("p1", wait=True)
    assert [s.name for s in inst.snapshots.all()] == ["p1"]
    snap.delete(wait=True)
    assert inst.state().status == "Running"
    assert {i.name: i.location for i in client.instances.all()} == placed


def test_dev_lxd_location_is_the_containers_member(members, placed, tmp_path):
    if shutil.which("gcc") is None:
        pytest.fail("gcc is needed to build the static /dev/lxd test client")
    binary = str(tmp_path / "devlxd_client")
    subprocess.run(["gcc", "-static", "-O2", "-o", binary, DEVLXD_CLIENT], check=True)
    m1 = members[0]
    for member in ("m2", "m3"):
        name = on(placed, member)
        m1.lxc("file", "push", binary, f"{name}/bin/devlxd_client", "--mode", "0755")
        res = subprocess.run(["lxc", "exec", name, "--", "devlxd_client", "/1.0"], env=m1.env,
                             capture_output=True, timeout=60)
        assert res.returncode == 0, res.stderr
        head, _, body = res.stdout.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0] + b" "
        assert json.loads(body)["location"] == member


def test_bulk_state_change_reaches_every_member(members, placed):
    m1, m2, _ = members
    r = m1.request("PUT", "/1.0/instances", {"state": {"action": "stop", "force": True, "timeout": -1}})
    assert r.status == 202, r.body
    done = m2.request("GET", f"{r.json['operation']}/wait?timeout=60").metadata   # found on another member
    assert done["status"] == "Success", done
    assert {i["name"]: i["status"] for i in listing(m2) if i["name"] in placed} == {n: "Stopped" for n in placed}
    r = m2.request("PUT", "/1.0/instances", {"state": {"action": "start", "timeout": -1}})
    assert m1.request("GET", f"{r.json['operation']}/wait?timeout=60").metadata["status"] == "Success"
    assert {i["name"]: i["status"] for i in listing(m1) if i["name"] in placed} == {n: "Running" for n in placed}


# ---- acceptance 5: a member killed ---------------------------------------------------------------------

def test_kill9_listing_still_answers_and_recovers(members, placed):
    m1, m2, m3 = members
    gone = sorted(n for n, loc in placed.items() if loc == "m3")
    m3.kill9()
    try:
        # at once (m3 still counts as online: refused connections) and once it is Offline
        for phase in ("just killed", "offline"):
            for m in (m1, m2):
                t = time.monotonic()
                rows = [line.split(",") for line in m.lxc("list", "--format", "csv", "-c", "nsL",
                                                          timeout=30).stdout.splitlines()]
                took = time.monotonic() - t
                assert took < 3, (phase, m.name, took)
                seen = {r[0]: (r[1], r[2]) for r in rows if r[0] in placed}
                assert {n: seen[n] for n in gone} == {n: ("ERROR", "m3") for n in gone}, (phase, seen)
                assert all(seen[n] == ("RUNNING", loc) for n, loc in placed.items() if loc != "m3"), seen
            if phase == "just killed":
                wait_status(m1, "m3", "Offline", timeout=OFFLINE_THRESHOLD * 4)
        # the operations listing answers too, without m3's
        assert m1.lxc("operation", "list", timeout=30).returncode == 0
    finally:
        m3.start()
    wait_all_online(members, 3)
    deadline = time.monotonic() + 30
    while True:
        seen = {i["name"]: i["status"] for i in listing(m1) if i["name"] in gone}
        if all(s != "Error" for s in seen.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert seen == {n: "Running" for n in gone}   # still running (or started again at start-up)
    # `lxc exec` waits for its operation's end on the events of the member it asks: m1 carries m3's
    # again once its event-mesh link to m3 is back
    if DAEMON == "corrald":
        wait_links(m1, {"m2", "m3"})
    else:
        time.sleep(5)
    name = gone[0]
    assert m1.lxc("exec", name, "--", "hostname", timeout=60).stdout.strip() == name
