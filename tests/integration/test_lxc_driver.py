"""The liblxc driver against real containers built from the busybox image (root only)."""
from __future__ import annotations

import glob
import json
import os
import secrets
import select
import shutil
import signal
import tarfile
import tempfile
import time

import pytest
import yaml

from corral.cli.busybox import build_busybox_image
from corral.instance.drivers import cgroups, get_driver, lxcconf
from corral.instance.drivers.base import DriverError, InstanceSpec
from corral.idmap import default_idmap, ensure_subids

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="liblxc containers need root"),
]

SAMPLES = "/work/shared/lxd-api-samples"
MiB = 1024 * 1024


def _sample(name: str) -> dict:
    with open(os.path.join(SAMPLES, name)) as f:
        return json.load(f)["metadata"]


def _same_shape(actual, expected, path="state") -> None:
    """Every key of the LXD sample is present with a value of the same JSON type."""
    if isinstance(expected, dict) and expected:
        assert isinstance(actual, dict), path
        assert set(expected) <= set(actual), f"{path}: missing {set(expected) - set(actual)}"
        for key, value in expected.items():
            _same_shape(actual[key], value, f"{path}.{key}")
    elif isinstance(expected, list) and expected:
        assert isinstance(actual, list) and actual, path
        _same_shape(actual[0], expected[0], f"{path}[0]")
    elif expected is not None:
        assert type(actual) is type(expected), f"{path}: {actual!r} vs {expected!r}"


@pytest.fixture(scope="module")
def workdir():
    ensure_subids()
    base = tempfile.mkdtemp(prefix="corral-test-", dir="/var/lib")
    os.chmod(base, 0o711)  # container roots must traverse every parent
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def image(workdir):
    return build_busybox_image(os.path.join(workdir, "images"))


@pytest.fixture(scope="module")
def driver(workdir):
    return get_driver("lxc")(os.path.join(workdir, "lxc"))


@pytest.fixture(scope="module")
def make_spec(workdir, image, driver):
    """Unpack a fresh rootfs and return an InstanceSpec; every container is destroyed afterwards."""
    names = []

    def make(privileged: bool = False, **kwargs) -> InstanceSpec:
        name = f"ctest-{secrets.token_hex(4)}"
        names.append(name)
        cdir = os.path.join(workdir, "containers", name)
        rootfs = os.path.join(cdir, "rootfs")
        os.makedirs(rootfs)
        os.chmod(os.path.dirname(cdir), 0o711)
        os.chmod(cdir, 0o711)

        def only_rootfs(member, dest):
            if not member.name.startswith("rootfs/"):
                return None
            return tarfile.fully_trusted_filter(member.replace(name=member.name[len("rootfs/"):]), dest)

        with tarfile.open(image) as tar:
            tar.extractall(rootfs, filter=only_rootfs, numeric_owner=True)
        os.chmod(rootfs, 0o755)
        return InstanceSpec(name=name, rootfs=rootfs, idmap=None if privileged else default_idmap(),
                            log_file=os.path.join(cdir, "lxc.log"),
                            console_log_file=os.path.join(cdir, "console.log"), **kwargs)

    try:
        yield make
    finally:
        for name in names:
            try:
                driver.stop(name, force=True)
            finally:
                driver.delete(name)


def run(driver, name, command, **kwargs):
    """Exec without a pty: (exit code, stdout, stderr)."""
    proc = driver.exec(name, command, {}, "/", 0, 0, False, 80, 24, **kwargs)
    os.close(proc.stdin)
    code = proc.wait()
    out, err = _drain(proc.stdout), _drain(proc.stderr)
    return code, out, err


def _drain(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode()


def read_until(fd: int, marker: bytes, timeout: float = 5) -> bytes:
    data, deadline = b"", time.monotonic() + timeout
    while marker not in data:
        left = deadline - time.monotonic()
        assert left > 0, f"timed out waiting for {marker!r}, got {data!r}"
        if select.select([fd], [], [], left)[0]:
            data += os.read(fd, 4096)
    return data


def test_busybox_image(image):
    with tarfile.open(image) as tar:
        names = set(tar.getnames())
        meta = yaml.safe_load(tar.extractfile("metadata.yaml"))
        init = tar.getmember("rootfs/sbin/init")
        tmp = tar.getmember("rootfs/tmp")
        assert all(m.uid == 0 and m.gid == 0 for m in tar.getmembers())
    assert meta["architecture"] == "x86_64" and isinstance(meta["creation_date"], int)
    assert meta["properties"]["os"] == "busybox"
    assert {"description", "name", "release", "variant"} <= set(meta["properties"])
    assert meta["templates"]["/etc/hostname"] == {"when": ["create", "copy"], "template": "hostname.tpl",
                                                  "create_only": False, "properties": {}}
    assert {"templates/hostname.tpl", "rootfs/bin/busybox", "rootfs/bin/sh", "rootfs/sbin/udhcpc",
            "rootfs/etc/passwd", "rootfs/etc/init.d/rcS", "rootfs/etc/udhcpc/default.script"} <= names
    assert init.isreg() and init.mode & 0o111
    assert tmp.mode == 0o1777


@pytest.fixture(scope="module")
def shared_dir(workdir):
    path = os.path.join(workdir, "shared")
    os.makedirs(path)
    with open(os.path.join(path, "hello"), "w") as f:
        f.write("from the host\n")
    return path


@pytest.fixture(scope="module")
def ct(driver, make_spec, shared_dir):
    """One unprivileged container, started once for the tests below (the last one stops it)."""
    veth = f"vct{secrets.token_hex(4)}"
    spec = make_spec(
        config={
            "limits.memory": "256MiB",
            "limits.processes": "100",
            "environment.FOO": "bar baz",
            "raw.lxc": f"lxc.net.0.type = veth\nlxc.net.0.name = eth0\nlxc.net.0.flags = up\n"
                       f"lxc.net.0.veth.pair = {veth}\n",
        },
        devices={"root": {"type": "disk", "path": "/", "pool": "default"},
                 "eth1": {"type": "nic", "network": "lxdbr0"}},
    )
    # What a disk device hands the driver (see corral/instance/devices/disk.py).
    spec.mounts.append((shared_dir, "/mnt/shared", "bind,create=dir,ro"))
    driver.create(spec)
    t = time.monotonic()
    driver.start(spec)
    spec.start_seconds = time.monotonic() - t
    spec.veth = veth
    return spec


def test_start_running(driver, ct):
    print(f"start took {ct.start_seconds * 1000:.1f} ms")
    assert ct.start_seconds < 2
    assert driver.status(ct.name) == "Running"
    assert ct.name in driver.list_running()


def test_exec_streams_and_exit_code(driver, ct):
    t = time.monotonic()
    code, out, err = run(driver, ct.name, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    print(f"exec took {(time.monotonic() - t) * 1000:.1f} ms")
    assert (code, out, err) == (3, "out\n", "err\n")


def test_exec_env_cwd_stdin_and_errors(driver, ct):
    proc = driver.exec(ct.name, ["sh", "-c", "pwd; echo $A; cat"], {"A": "1"}, "/etc", 0, 0, False, 80, 24)
    os.write(proc.stdin, b"piped\n")
    os.close(proc.stdin)
    assert proc.wait() == 0
    assert _drain(proc.stdout) == "/etc\n1\npiped\n"
    _drain(proc.stderr)
    code, _, err = run(driver, ct.name, ["/no/such/binary"])
    assert code == 127 and "No such file" in err


def test_exec_kill(driver, ct):
    proc = driver.exec(ct.name, ["sleep", "30"], {}, "/", 0, 0, False, 80, 24)
    proc.kill(signal.SIGKILL)
    assert proc.wait() == 128 + signal.SIGKILL
    for fd in (proc.stdin, proc.stdout, proc.stderr):
        os.close(fd)


def test_exec_as_user(driver, ct):
    assert run(driver, ct.name, ["id", "-u"])[1] == "0\n"
    proc = driver.exec(ct.name, ["id"], {}, "/", 65534, 65534, False, 80, 24)
    os.close(proc.stdin)
    assert proc.wait() == 0
    assert "uid=65534" in _drain(proc.stdout)
    _drain(proc.stderr)


def test_interactive_exec_pty(driver, ct):
    proc = driver.exec(ct.name, ["sh"], {"TERM": "xterm"}, "/", 0, 0, True, 100, 30)
    try:
        assert proc.stdin is None and proc.pty is not None
        os.write(proc.pty, b"tty; stty size; echo DONE$((1))\n")  # the echo of the input must not match
        out = read_until(proc.pty, b"DONE1\r\n", 5).decode()
        assert "/dev/pts/" in out and "30 100" in out
        proc.resize(120, 40)
        os.write(proc.pty, b"stty size; echo DONE$((2))\n")
        assert "40 120" in read_until(proc.pty, b"DONE2\r\n", 5).decode()
        os.write(proc.pty, b"exit 5\n")
        assert proc.wait() == 5
    finally:
        os.close(proc.pty)


def test_runs_as_mapped_uid_without_chown(driver, ct):
    base = default_idmap()[0].hostid
    pid = driver.state(ct.name)["pid"]
    with open(f"/proc/{pid}/status") as f:
        uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
    assert uids == [str(base)] * 4
    assert run(driver, ct.name, ["touch", "/root/made-inside"])[0] == 0
    assert os.stat(os.path.join(ct.rootfs, "root", "made-inside")).st_uid == 0
    assert os.stat(os.path.join(ct.rootfs, "etc", "passwd")).st_uid == 0
    assert os.stat(os.path.join(ct.rootfs, "bin", "busybox")).st_uid == 0


def test_environment_and_hostname(driver, ct):
    pid = driver.state(ct.name)["pid"]
    with open(f"/proc/{pid}/environ", "rb") as f:
        assert b"FOO=bar baz" in f.read().split(b"\0")
    assert run(driver, ct.name, ["hostname"])[1] == f"{ct.name}\n"


def test_bind_mount_readonly(driver, ct):
    assert run(driver, ct.name, ["cat", "/mnt/shared/hello"])[1] == "from the host\n"
    code, _, err = run(driver, ct.name, ["touch", "/mnt/shared/nope"])
    assert code != 0 and "Read-only" in err


def test_limits_applied(driver, ct):
    code, out, _ = run(driver, ct.name, ["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                         "/sys/fs/cgroup/pids/pids.max"])
    assert code == 0 and out.split() == [str(256 * MiB), "100"]
    if os.path.isdir(lxcconf.LXCFS_PROC):  # lxcfs was up at start: /proc/meminfo is virtualised
        meminfo = run(driver, ct.name, ["cat", "/proc/meminfo"])[1]
        assert f"MemTotal:         {256 * 1024} kB" in meminfo


def test_apply_limits_live(driver, ct):
    def read():
        return run(driver, ct.name, ["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                     "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes",
                                     "/sys/fs/cgroup/pids/pids.max"])[1].split()

    swap = cgroups.has_swap_accounting()
    driver.apply_limits(ct.name, {"limits.memory": "512MiB", "limits.memory.swap": "false",
                                  "limits.processes": "50"})  # raise: memsw must go first
    got = read()
    assert got[0] == str(512 * MiB) and got[2] == "50"
    if swap:
        assert got[1] == str(512 * MiB)
    driver.apply_limits(ct.name, {"limits.memory": "128MiB", "limits.memory.swap": "false"})  # lower
    got = read()
    assert got[0] == str(128 * MiB) and got[2] == "max"
    driver.apply_limits(ct.name, {"limits.memory": "256MiB", "limits.processes": "100"})
    got = read()
    assert got[0] == str(256 * MiB) and got[2] == "100"
    if swap:
        assert int(got[1]) > 2**60  # unlimited again
    with pytest.raises(DriverError):
        driver.apply_limits(ct.name, {"limits.memory": "lots"})


def test_state_shape(driver, ct):
    state = driver.state(ct.name)
    sample = _sample("instance-state.json")
    assert set(state) == set(sample)
    _same_shape(state, {k: v for k, v in sample.items() if k != "network"})
    assert state["status"] == "Running" and state["status_code"] == 103
    assert state["memory"]["usage"] > 0 and state["cpu"]["usage"] > 0
    assert state["processes"] >= 2 and state["pid"] > 1
    _same_shape(state["network"]["lo"], sample["network"]["lo"])
    _same_shape(state["network"]["eth0"], sample["network"]["eth0"])
    assert state["network"]["lo"]["type"] == "loopback" and state["network"]["lo"]["state"] == "up"
    assert {"family": "inet", "address": "127.0.0.1", "netmask": "8", "scope": "local"} \
        in state["network"]["lo"]["addresses"]
    eth0 = state["network"]["eth0"]
    assert eth0["host_name"] == ct.veth and eth0["type"] == "broadcast" and eth0["mtu"] == 1500
    assert len(eth0["hwaddr"].split(":")) == 6


def test_freeze_unfreeze(driver, ct):
    driver.freeze(ct.name)
    try:
        assert driver.status(ct.name) == "Frozen"
        assert driver.state(ct.name)["status_code"] == 110
    finally:
        driver.unfreeze(ct.name)
    assert driver.status(ct.name) == "Running"


def test_console_and_its_log(driver, ct):
    fd = driver.console(ct.name)
    try:
        assert run(driver, ct.name, ["sh", "-c", "echo hello-console > /dev/console"])[0] == 0
        assert b"hello-console" in read_until(fd, b"hello-console")
    finally:
        os.close(fd)
    deadline = time.monotonic() + 3
    while b"hello-console" not in driver.console_log(ct.name):
        assert time.monotonic() < deadline, driver.console_log(ct.name)
        time.sleep(0.05)


def test_clean_stop_is_fast_and_tidy(driver, ct):
    t = time.monotonic()
    driver.stop(ct.name, timeout=10)
    took = time.monotonic() - t
    print(f"clean stop took {took * 1000:.1f} ms")
    assert took < 1
    assert driver.status(ct.name) == "Stopped"
    assert ct.name not in driver.list_running()
    state = driver.state(ct.name)
    assert state == _sample("instance-stopped-state.json")
    assert glob.glob(f"{cgroups.ROOT}/*/lxc.*.{ct.name}*") == []  # monitor and payload cgroups
    assert not os.path.exists(f"/sys/class/net/{ct.veth}")


def test_stop_right_after_start(driver, make_spec):
    spec = make_spec()
    driver.start(spec)
    t = time.monotonic()
    driver.stop(spec.name, timeout=10)
    assert time.monotonic() - t < 2
    assert driver.status(spec.name) == "Stopped"


def test_privileged(driver, make_spec):
    spec = make_spec(privileged=True)
    driver.start(spec)
    pid = driver.state(spec.name)["pid"]
    with open(f"/proc/{pid}/status") as f:
        assert next(line for line in f if line.startswith("Uid:")).split()[1] == "0"
    assert run(driver, spec.name, ["id", "-u"])[1] == "0\n"
    proc = driver.exec(spec.name, ["tty"], {}, "/", 0, 0, True, 80, 24)
    assert b"/dev/pts/" in read_until(proc.pty, b"\n")
    assert proc.wait() == 0
    os.close(proc.pty)
    driver.restart(spec, timeout=10)
    assert driver.status(spec.name) == "Running"
    driver.stop(spec.name, force=True)
    assert driver.status(spec.name) == "Stopped"


def test_start_failure_carries_log(driver, make_spec):
    spec = make_spec()
    os.rename(os.path.join(spec.rootfs, "sbin", "init"), os.path.join(spec.rootfs, "sbin", "init.off"))
    with pytest.raises(DriverError) as err:
        driver.start(spec)
    assert "init" in str(err.value) or "ERROR" in str(err.value)
    assert driver.status(spec.name) == "Stopped"


def _zombie_monitors() -> list[int]:
    out = []
    for path in glob.glob(f"/proc/{os.getpid()}/task/*/children"):
        with open(path) as f:
            for pid in f.read().split():
                try:
                    with open(f"/proc/{pid}/stat") as st:
                        text = st.read()
                except OSError:
                    continue
                if "(lxc-start) Z" in text:
                    out.append(int(pid))
    return out


def test_failed_start_leaves_no_zombie_monitor(driver, make_spec):
    spec = make_spec()
    os.unlink(os.path.join(spec.rootfs, "sbin", "init"))
    with pytest.raises(DriverError, match="Failed to exec"):
        driver.start(spec)
    assert _zombie_monitors() == []


def test_monitor_is_a_fresh_lxc_start(driver, make_spec):
    """The [lxc monitor] is lxc-start's daemonized child, not a fork of this (large) process."""
    spec = make_spec()
    driver.start(spec)
    with open(f"/proc/{driver.init_pid(spec.name)}/stat") as f:
        mon = int(f.read().rsplit(")", 1)[1].split()[1])
    assert os.path.realpath(f"/proc/{mon}/exe") == os.path.realpath(shutil.which("lxc-start"))
    with open(f"/proc/{mon}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[0] == f"[lxc monitor] {driver.lxcpath} {spec.name}".encode()
    with open(f"/proc/{mon}/stat") as f:
        assert int(f.read().rsplit(")", 1)[1].split()[1]) == os.getpid()   # orphaned to us, the subreaper
    with open(f"/proc/{mon}/smaps_rollup") as f:
        pss_kib = next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
    print(f"monitor PSS {pss_kib} KiB")
    assert pss_kib < 8 * 1024
    driver.stop(spec.name, force=True)
    assert _zombie_monitors() == []


def test_a_new_driver_sees_adopted_containers_stop(driver, make_spec):
    """A container an earlier daemon started stops from inside: the new daemon's driver is told."""
    spec = make_spec(config={"raw.lxc": "lxc.signal.halt = SIGUSR2"})   # busybox init powers off on USR2
    driver.start(spec)
    stopped = []
    later = get_driver("lxc")(driver.lxcpath, on_stopped=stopped.append)
    time.sleep(0.5)   # busybox init sets its handlers
    later.stop(spec.name, timeout=10)   # through the halt signal, not liblxc's kill
    deadline = time.monotonic() + 10
    while spec.name not in stopped and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stopped == [spec.name]
    assert driver.status(spec.name) == "Stopped"


def test_raw_lxc_hooks_run(driver, make_spec, workdir):
    """liblxc hooks from raw.lxc run from the monitor lxc-start made, with liblxc's environment."""
    out = os.path.join(workdir, f"hook-{secrets.token_hex(4)}")
    spec = make_spec(config={"raw.lxc": f"lxc.hook.pre-start = /bin/sh -c 'echo $LXC_NAME > {out}'"})
    driver.start(spec)
    with open(out) as f:
        assert f.read() == f"{spec.name}\n"
    driver.stop(spec.name, force=True)


def test_delete_keeps_rootfs(driver, make_spec):
    spec = make_spec()
    driver.create(spec)
    assert os.path.exists(driver.config_path(spec.name))
    link = os.path.join(driver.lxcpath, spec.name)   # LXD's layout: lxcpath/<name> -> the volume
    assert os.readlink(link) == os.path.dirname(spec.rootfs)
    driver.delete(spec.name)
    assert not os.path.exists(driver.config_path(spec.name)) and not os.path.lexists(link)
    assert os.path.exists(os.path.join(spec.rootfs, "bin", "busybox"))


def test_unknown_driver():
    with pytest.raises(ValueError, match='Unknown instance driver "qemu"'):
        get_driver("qemu")
