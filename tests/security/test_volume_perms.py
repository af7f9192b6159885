"""Issue 9, finding 1: no local user may reach a container's files on the host.

Root filesystems are mounted idmapped, so what a container's root owns is stored as host uid 0: a
setuid binary made inside a container (`cp /bin/busybox /tmp/x; chown 0:0 /tmp/x; chmod 4755 /tmp/x`)
is setuid root on the host, and so are the ones in its snapshots, in images published from it and
in idmapped (security.shifted) custom volumes. Every test here makes such a file on one kind of
volume, checks as root that it really is setuid root on the host, and then, as the unprivileged
host user `nobody`, tries to reach and run it: it must be refused (EACCES on the path).

The setuid file is the host's /usr/bin/env pushed into the container and made setuid root from
inside (busybox drops setuid privileges for its applets, env does not: `env /usr/bin/id -u` run
as nobody prints 0 when the file is reachable, as the upgrade test shows against the old modes).
"""
import json
import os
import stat
import subprocess

import pytest

from helpers import unique, wait_for

SETUID = "cp {src} {p}; chown 0:0 {p}; chmod 4755 {p}"


def make_setuid(d, c: str, path: str, src: str = "/tmp/env.src") -> None:
    """From inside container c: a setuid root copy of `src` at `path` (the host's env by default)."""
    if src == "/tmp/env.src":
        d.lxc("file", "push", "/usr/bin/env", f"{c}/tmp/env.src")
    d.lxc("exec", c, "--", "sh", "-c", SETUID.format(src=src, p=path))


def as_nobody(*cmd: str) -> subprocess.CompletedProcess:
    """Run cmd as the host user nobody, the program looked up by a shell running as nobody
    (`setpriv ... PROG` resolves PROG while still root, so it would not show the path's modes)."""
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--",
                           "/bin/sh", "-c", 'exec "$0" "$@"', *cmd], capture_output=True, text=True, timeout=30)


def assert_setuid_root(path: str) -> None:
    """The file is on the host as setuid root: only the directory modes stand in nobody's way."""
    st = os.stat(path)
    assert st.st_uid == 0 and st.st_mode & stat.S_ISUID, f"{path}: {oct(st.st_mode)} uid {st.st_uid}"


def assert_unreachable(path: str) -> None:
    run = as_nobody(path, "/usr/bin/id", "-u")
    assert run.returncode != 0 and "Permission denied" in run.stderr, (path, run.stdout, run.stderr)
    assert "0" != run.stdout.strip()
    look = as_nobody("stat", "--", path)
    assert look.returncode != 0 and "Permission denied" in look.stderr, (path, look.stdout, look.stderr)
    read = as_nobody("cat", "--", path)
    assert read.returncode != 0 and "Permission denied" in read.stderr, (path, read.stderr)


def pool_path(d, pool: str) -> str:
    return d.get(f"/1.0/storage-pools/{pool}").metadata["config"]["source"] if \
        d.get(f"/1.0/storage-pools/{pool}").metadata["driver"] == "dir" else \
        os.path.join(d.dir, "storage-pools", pool)


def exec_ok(d, c: str, script: str) -> str:
    return d.lxc("exec", c, "--", "sh", "-c", script).stdout


def test_nobody_can_reach_the_state_dir_but_no_data(host):
    """The control: nobody does traverse $CORRAL_DIR (containers' roots must), so the refusals
    below come from the volume directories, not from an unreachable state dir."""
    assert as_nobody("id", "-u").stdout.strip() == "65534"
    assert as_nobody("stat", "--", host.dir).returncode == 0
    r = as_nobody("ls", "--", os.path.join(host.dir, "storage-pools", "default", "containers"))
    assert r.returncode != 0 and "Permission denied" in r.stderr


@pytest.mark.parametrize("driver", ["dir", "btrfs"])
def test_setuid_in_instances_snapshots_images_volumes_and_backups(host, driver):
    d = host
    pool = "default" if driver == "dir" else unique("bt")
    c, c2, v, alias = unique("c"), unique("c"), unique("v"), unique("img")
    made_pool = False
    try:
        if driver == "btrfs":
            d.lxc("storage", "create", pool, "btrfs", "size=1GiB")
            made_pool = True
        root = pool_path(d, pool)
        assert d.get(f"/1.0/storage-pools/{pool}").metadata["driver"] == driver
        d.lxc("launch", "busybox", c, "-s", pool)

        # an instance: the finding's exploit, a setuid root binary made inside the container
        make_setuid(d, c, "/tmp/x")
        make_setuid(d, c, "/tmp/bb", src="/bin/busybox")
        for f in ("x", "bb"):
            inst = os.path.join(root, "containers", c, "rootfs", "tmp", f)
            assert_setuid_root(inst)
            assert_unreachable(inst)

        # a snapshot of it
        d.lxc("snapshot", c, "s0")
        snap = os.path.join(root, "containers-snapshots", c, "s0", "rootfs", "tmp", "x")
        assert_setuid_root(snap)
        assert_unreachable(snap)

        # an idmapped (security.shifted) custom volume: stored as host uid 0 as well
        d.lxc("storage", "volume", "create", pool, v, "security.shifted=true")
        d.lxc("storage", "volume", "attach", pool, v, c, "/mnt/v")
        make_setuid(d, c, "/mnt/v/x")
        vol = os.path.join(root, "custom", f"default_{v}", "x")
        assert_setuid_root(vol)
        assert_unreachable(vol)
        d.lxc("storage", "volume", "snapshot", pool, v, "vs0")
        vsnap = os.path.join(root, "custom-snapshots", f"default_{v}", "vs0", "x")
        assert_setuid_root(vsnap)
        assert_unreachable(vsnap)

        # an image published from it (the tarball and, once used, its unpacked volume)
        d.lxc("publish", c, "--alias", alias, "--force")
        fp = d.get(f"/1.0/images/aliases/{alias}").metadata["target"]
        assert_unreachable(os.path.join(d.dir, "images", fp))
        d.lxc("launch", alias, c2, "-s", pool)
        assert exec_ok(d, c2, "stat -c '%u %a' /tmp/x").split() == ["0", "4755"]
        unpacked = os.path.join(root, "images", fp, "rootfs", "tmp", "x")
        assert_setuid_root(unpacked)
        assert_unreachable(unpacked)

        # a backup of it (a tarball of the root filesystem: nobody may not even read it)
        r = d.request("POST", f"/1.0/instances/{c}/backups", {"name": "b0"})
        assert d.wait_op(r)["status"] == "Success"
        backups = os.path.join(d.dir, "backups", "instances", c)
        tarballs = [f for f in os.listdir(backups) if f.startswith("b0.")]
        assert tarballs
        for f in tarballs:
            assert_unreachable(os.path.join(backups, f))
    finally:
        d.lxc("delete", "-f", c, c2, check=False)
        d.lxc("storage", "volume", "delete", pool, v, check=False)
        d.lxc("image", "delete", alias, check=False)
        if made_pool:
            d.lxc("storage", "delete", pool, check=False)


def test_start_up_tightens_modes_left_by_an_older_release(fresh_host):
    """An upgraded install: volume directories made world-traversable (the old 0711) are made
    root-only again when the daemon starts, without stopping the running container."""
    d = fresh_host
    c = unique("c")
    d.lxc("launch", "busybox", c)
    make_setuid(d, c, "/tmp/x")
    d.lxc("snapshot", c, "s0")
    root = os.path.join(d.dir, "storage-pools", "default")
    fp = json.loads(d.lxc("image", "list", "busybox", "--format", "json").stdout)[0]["fingerprint"]
    d.stop()
    old = [os.path.join(root, k) for k in ("images", "containers", "containers-snapshots", "custom",
                                            "custom-snapshots")]
    old += [os.path.join(root, "containers", c), os.path.join(root, "containers-snapshots", c),
            os.path.join(root, "containers-snapshots", c, "s0"), os.path.join(root, "images", fp),
            os.path.join(d.dir, "images"), os.path.join(d.dir, "backups"), os.path.join(d.dir, "logs")]
    for p in old:
        os.chmod(p, 0o711)
    target = os.path.join(root, "containers", c, "rootfs", "tmp", "x")
    # the exploit of the finding works against the old modes (the test can fail) ...
    assert as_nobody(target, "/usr/bin/id", "-u").stdout.strip() == "0"
    d.start()
    # ... and is closed once the daemon has started
    assert_unreachable(target)
    assert_unreachable(os.path.join(root, "containers-snapshots", c, "s0", "rootfs", "tmp", "x"))
    for p in old:
        assert stat.S_IMODE(os.stat(p).st_mode) in (0o700, 0o100), p
    assert d.get(f"/1.0/instances/{c}").metadata["status"] == "Running"
    assert exec_ok(d, c, "echo ok") == "ok\n"
    d.lxc("restart", c, "-f")
    wait_for(lambda: d.get(f"/1.0/instances/{c}").metadata["status"] == "Running", timeout=30)
    assert exec_ok(d, c, "echo ok") == "ok\n"

