"""Virtual machines with the real `lxc` client (issue 14 acceptance 1-5, 7): QEMU under TCG with OVMF,
the VM test image built locally (corral/image/vmbuild.py), our agent over virtio-serial, NICs on the
managed bridge. One daemon per module; each VM is deleted by the test that made it (and by the
daemon's clean-up, QEMU included, when a test fails)."""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time

import pytest

from helpers import initialised_corrald, unique, wait_for
from vmlib import vm_image_files

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None or not os.path.isdir("/usr/share/OVMF"),
                                reason="needs qemu-system-x86 and ovmf")
BOOT = 180          # seconds a TCG boot to a running agent may take on a loaded 2-core CI host
VM = ("--vm", "-c", "security.secureboot=false", "-c", "limits.memory=512MiB")


@pytest.fixture(scope="module")
def vmhost():
    meta, rootfs = vm_image_files()
    with initialised_corrald() as d:
        d.lxc("image", "import", meta, rootfs, "--alias", "vmtest")
        yield d


def agent_up(d, name: str, timeout: float = BOOT) -> None:
    wait_for(lambda: d.lxc("exec", name, "--", "true", check=False, timeout=30).returncode == 0,
             timeout=timeout, interval=1)


def qemu_pid(d, name: str, project: str = "default") -> int:
    with open(os.path.join(d.dir, "logs", f"{project}_{name}" if project != "default" else name, "qemu.pid")) as f:
        return int(f.read())


def state(d, name: str) -> dict:
    return d.get(f"/1.0/instances/{name}/state").metadata


def ipv4(d, name: str, dev: str) -> list[str]:
    net = (state(d, name).get("network") or {}).get(dev) or {}
    return [a["address"] for a in net.get("addresses", []) if a["family"] == "inet"]


def bridge_subnet(d) -> str:
    net = d.lxc("profile", "device", "get", "default", "eth0", "network").stdout.strip()
    return d.lxc("network", "get", net, "ipv4.address").stdout.strip()


def in_subnet(ip: str, cidr: str) -> bool:
    import ipaddress
    return ipaddress.ip_address(ip) in ipaddress.ip_interface(cidr).network


def console_session(d, name: str, keys: bytes) -> str:
    """`lxc console NAME` on a pty: type `keys` after a return, detach (ctrl+a q); what it printed."""
    import pty
    import select
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe("lxc", ["lxc", "console", name], d.env)
    out = b""

    def pump(seconds: float) -> None:
        nonlocal out
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    out += os.read(fd, 4096)
                except OSError:
                    return
    try:
        pump(2)
        os.write(fd, b"\r")
        pump(1)
        os.write(fd, keys)
        pump(3)
        os.write(fd, b"\x01q")
        pump(1)
    finally:
        os.close(fd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    return out.decode(errors="replace")


def test_launch_exec_files_info(vmhost, tmp_path):
    d, name = vmhost, unique("vm")
    import threading
    done = threading.Event()

    def poll():   # state reads while it starts must not disturb the start (QEMU serves one QMP client)
        while not done.is_set():
            d.lxc("list", "--format", "csv", check=False, timeout=60)
    poller = threading.Thread(target=poll)
    poller.start()
    try:
        d.lxc("launch", "vmtest", name, *VM, timeout=300)
    finally:
        done.set()
        poller.join()
    try:
        agent_up(d, name)
        wait_for(lambda: ipv4(d, name, "eth0"), timeout=60, interval=1)
        row = d.lxc("list", name, "--format", "csv", "-c", "ns4t").stdout.strip()
        assert row.startswith(f"{name},RUNNING,") and "VIRTUAL-MACHINE" in row
        ip = ipv4(d, name, "eth0")[0]
        assert in_subnet(ip, bridge_subnet(d)) and ip in row
        r = d.lxc("exec", name, "--", "uname", "-a")
        assert r.stdout.startswith("Linux ") and name in r.stdout   # the agent set the hostname
        assert d.lxc("exec", name, "--", "sh", "-c", "echo out; echo err >&2; exit 7", check=False).returncode == 7
        r = d.lxc("exec", name, "--", "sh", "-c", "echo out; echo err >&2", check=False)
        assert r.stdout == "out\n" and r.stderr == "err\n"
        r = d.lxc("exec", name, "--", "sh", "-c", "read x; echo got:$x", input="hello\n")
        assert r.stdout == "got:hello\n"
        r = d.lxc("exec", name, "--force-interactive", "--", "sh", "-c", "tty; exit 3", check=False)
        assert r.returncode == 3 and "/dev/pts/" in r.stdout
        # files both ways (1 MiB of random data, mode and owner)
        src = tmp_path / "blob"
        src.write_bytes(os.urandom(1 << 20))
        d.lxc("file", "push", str(src), f"{name}/root/blob", "--mode", "0640", "--uid", "12", "--gid", "34")
        assert d.lxc("exec", name, "--", "stat", "-c", "%a %u %g %s", "/root/blob").stdout.split() == \
            ["640", "12", "34", str(1 << 20)]
        d.lxc("file", "pull", f"{name}/root/blob", str(tmp_path / "back"))
        assert (tmp_path / "back").read_bytes() == src.read_bytes()
        assert d.lxc("file", "pull", f"{name}/no/such", str(tmp_path / "x"), check=False).returncode != 0
        d.lxc("file", "delete", f"{name}/root/blob")
        assert d.lxc("exec", name, "--", "test", "-e", "/root/blob", check=False).returncode == 1
        # /dev/lxd inside the VM, through the agent's tunnel to corrald
        d.lxc("config", "set", name, "user.greeting", "hi-from-host")
        dev = json.loads(d.lxc("exec", name, "--", "corral-agent", "--query", "/1.0").stdout)
        assert dev["instance_type"] == "virtual-machine" and dev["api_version"] == "1.0"
        assert d.lxc("exec", name, "--", "corral-agent", "--query", "/1.0/config/user.greeting").stdout == \
            "hi-from-host"
        assert "eth0" in json.loads(d.lxc("exec", name, "--", "corral-agent", "--query", "/1.0/devices").stdout)
        assert "instance-id:" in d.lxc("exec", name, "--", "corral-agent", "--query", "/1.0/meta-data").stdout
        info = d.lxc("info", name).stdout
        procs = int(re.search(r"Processes: (-?\d+)", info).group(1))
        assert procs > 3 and "Memory usage:" in info and ip in info
    finally:
        d.lxc("delete", "-f", name, check=False)


def test_nics_at_boot_and_hotplugged(vmhost):
    d, name = vmhost, unique("vm")
    net = d.lxc("profile", "device", "get", "default", "eth0", "network").stdout.strip()
    d.lxc("init", "vmtest", name, *VM)
    try:
        d.lxc("config", "device", "add", name, "eth1", "nic", f"network={net}")   # given at boot
        d.lxc("config", "device", "override", name, "root", "size=12GiB")
        d.lxc("start", name)
        agent_up(d, name)
        sectors = lambda: int(d.lxc("exec", name, "--", "cat", "/sys/block/vda/size").stdout)  # noqa: E731
        assert sectors() * 512 == 12 << 30
        assert "eth1" in d.lxc("exec", name, "--", "ls", "/sys/class/net").stdout.split()
        wait_for(lambda: ipv4(d, name, "eth1"), timeout=60, interval=1)
        # hot-plugged into the running VM: appears in the guest and gets a lease from the bridge
        d.lxc("config", "device", "add", name, "eth2", "nic", f"network={net}")
        mac = d.lxc("config", "get", name, "volatile.eth2.hwaddr").stdout.strip()
        wait_for(lambda: mac in d.lxc("exec", name, "--", "cat", "/sys/class/net/eth2/address",
                                      check=False).stdout, timeout=60, interval=1)
        wait_for(lambda: ipv4(d, name, "eth2"), timeout=90, interval=1)
        assert in_subnet(ipv4(d, name, "eth2")[0], bridge_subnet(d))
        # the root disk grown while it runs (QEMU told: the guest sees it); a shrink refused, nothing changed
        d.lxc("config", "device", "set", name, "root", "size=13GiB")
        wait_for(lambda: sectors() * 512 == 13 << 30, timeout=30, interval=0.5)
        r = d.lxc("config", "device", "set", name, "root", "size=5GiB", check=False)
        assert r.returncode != 0 and "shrunk" in r.stderr
        assert d.lxc("config", "device", "get", name, "root", "size").stdout.strip() == "13GiB"
        # and unplugged again
        d.lxc("config", "device", "remove", name, "eth2")
        wait_for(lambda: "eth2" not in d.lxc("exec", name, "--", "ls", "/sys/class/net").stdout.split(),
                 timeout=60, interval=1)
    finally:
        d.lxc("delete", "-f", name, check=False)


def test_console_stop_snapshot_restore_copy(vmhost):
    d, name, copy = vmhost, unique("vm"), unique("vmc")
    d.lxc("launch", "vmtest", name, *VM)
    try:
        agent_up(d, name)
        log = d.lxc("console", name, "--show-log").stdout
        assert "Linux version" in log
        assert "PTY-42" in console_session(d, name, b"echo PTY-$((6*7))\r")   # the serial shell, interactive
        assert "qemu-system-x86_64" in d.lxc("info", name, "--show-log").stdout   # qemu.log: its command line
        d.lxc("exec", name, "--", "sh", "-c", "echo before > /root/mark; sync")
        t = time.monotonic()
        d.lxc("stop", name, "--timeout", "60")   # ACPI power button: the guest powers off by itself
        assert time.monotonic() - t < 60
        assert "reboot: Power down" in d.lxc("console", name, "--show-log").stdout
        d.lxc("snapshot", name, "s1")
        d.lxc("start", name)
        agent_up(d, name)
        d.lxc("exec", name, "--", "sh", "-c", "echo after > /root/mark; sync")
        pid = qemu_pid(d, name)
        t = time.monotonic()
        d.lxc("stop", name, "--force")
        assert time.monotonic() - t < 15 and not os.path.exists(f"/proc/{pid}/exe")
        d.lxc("restore", name, "s1")
        d.lxc("copy", name, copy)
        for vm in (name, copy):
            d.lxc("start", vm)
        for vm in (name, copy):
            agent_up(d, vm)
            assert d.lxc("exec", vm, "--", "cat", "/root/mark").stdout == "before\n"
        assert d.lxc("config", "get", copy, "volatile.eth0.hwaddr").stdout != \
            d.lxc("config", "get", name, "volatile.eth0.hwaddr").stdout
    finally:
        d.lxc("delete", "-f", name, copy, check=False)


def test_daemon_killed_vm_keeps_running(vmhost):
    d, name = vmhost, unique("vm")
    d.lxc("launch", "vmtest", name, *VM)
    try:
        agent_up(d, name)
        pid = qemu_pid(d, name)
        d.kill9()
        time.sleep(1)
        assert os.path.exists(f"/proc/{pid}/exe")   # QEMU outlives the daemon
        d.start()
        assert d.lxc("list", name, "--format", "csv", "-c", "ns").stdout.strip() == f"{name},RUNNING"
        agent_up(d, name, timeout=60)
        assert d.lxc("exec", name, "--", "echo", "again").stdout == "again\n"
        assert qemu_pid(d, name) == pid
    finally:
        d.lxc("delete", "-f", name, check=False)


def test_bad_input_changes_nothing(vmhost):
    d = vmhost
    before = d.lxc("list", "--format", "csv", "-c", "n").stdout
    # a container image for a VM (the API; lxc itself refuses before asking)
    r = d.request("POST", "/1.0/instances", {"name": unique("vb"), "type": "virtual-machine",
                                             "source": {"type": "image", "alias": "busybox"}})
    assert r.status == 400 and r.json["error"] == \
        'Requested image\'s type "container" doesn\'t match instance type "virtual-machine"'
    r = d.lxc("init", "busybox", unique("vb"), *VM[:1], check=False)
    assert r.returncode != 0 and "type container" in r.stderr
    r = d.lxc("init", "vmtest", unique("vb"), "--vm", "-c", "raw.lxc=lxc.environment=A=1", check=False)
    assert r.returncode != 0 and "Unknown configuration key: raw.lxc" in r.stderr
    r = d.lxc("init", "vmtest", unique("vb"), "--vm", "-c", "limits.memory=100TiB", check=False)
    assert r.returncode != 0 and "more than the host's memory" in r.stderr
    r = d.lxc("init", "busybox", unique("vb"), "-c", "security.secureboot=false", check=False)
    assert r.returncode != 0 and "Unknown configuration key: security.secureboot" in r.stderr
    assert d.lxc("list", "--format", "csv", "-c", "n").stdout == before
    # on an existing VM: refused, the record unchanged
    name = unique("vm")
    d.lxc("init", "vmtest", name, *VM)
    try:
        cfg = d.lxc("config", "show", name).stdout
        assert d.lxc("config", "set", name, "raw.lxc", "lxc.environment=A=1", check=False).returncode != 0
        assert d.lxc("config", "set", name, "limits.memory", "100TiB", check=False).returncode != 0
        assert d.lxc("config", "show", name).stdout == cfg
        # secure boot on an image that cannot do it: LXD's refusal at start
        d.lxc("config", "unset", name, "security.secureboot")
        r = d.lxc("start", name, check=False)
        assert r.returncode != 0 and "incompatible with secureboot" in r.stderr
        assert d.lxc("list", name, "--format", "csv", "-c", "s").stdout.strip() == "STOPPED"
    finally:
        d.lxc("delete", "-f", name, check=False)


def test_ovmf_given_as_a_symlink(tmp_path):
    """CORRAL_OVMF_PATH pointing at symlinks: the VM boots and QEMU is given the real files."""
    fw = tmp_path / "fw"
    fw.mkdir()
    for f in ("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"):
        os.symlink(os.path.realpath(f"/usr/share/OVMF/{f}"), fw / f)
    link_dir = tmp_path / "fwlink"
    os.symlink(fw, link_dir)
    meta, rootfs = vm_image_files()
    with initialised_corrald(env={"CORRAL_OVMF_PATH": str(link_dir)}) as d:
        d.lxc("image", "import", meta, rootfs, "--alias", "vmtest")
        name = unique("vm")
        d.lxc("launch", "vmtest", name, *VM)
        try:
            with open(f"/proc/{qemu_pid(d, name)}/cmdline", "rb") as f:
                args = f.read().decode().split("\0")
            flash = [a for a in args if a.startswith("if=pflash")]
            assert any(f"file={os.path.realpath('/usr/share/OVMF/OVMF_CODE_4M.fd')}" in a for a in flash), flash
            assert not any(str(link_dir) in a or str(fw) in a for a in args)
            agent_up(d, name)
        finally:
            d.lxc("delete", "-f", name, check=False)



def test_pause_restart_rename_publish_export_import(vmhost, tmp_path):
    d, name, renamed, from_image, imported = vmhost, unique("vm"), unique("vmr"), unique("vmp"), unique("vmi")
    alias = unique("pub")
    d.lxc("launch", "vmtest", name, *VM)
    try:
        agent_up(d, name)
        d.lxc("exec", name, "--", "sh", "-c", "echo kept > /root/mark; sync")
        d.lxc("pause", name)
        assert d.lxc("list", name, "--format", "csv", "-c", "s").stdout.strip() == "FROZEN"
        d.lxc("start", name)   # lxc resumes a frozen instance this way
        assert d.lxc("exec", name, "--", "echo", "back").stdout == "back\n"
        pid = qemu_pid(d, name)
        d.lxc("restart", name, "--timeout", "60")
        agent_up(d, name)
        assert qemu_pid(d, name) != pid
        d.lxc("stop", name, "--timeout", "60")
        d.lxc("rename", name, renamed)
        name = renamed
        d.lxc("publish", name, "--alias", alias)
        img = d.get(f"/1.0/images/aliases/{alias}").metadata["target"]
        assert d.get(f"/1.0/images/{img}").metadata["type"] == "virtual-machine"
        d.lxc("export", name, str(tmp_path / "vm.tar.gz"))
        d.lxc("import", str(tmp_path / "vm.tar.gz"), imported)
        d.lxc("launch", alias, from_image, *VM)
        d.lxc("start", imported)
        for vm in (from_image, imported):
            agent_up(d, vm)
            assert d.lxc("exec", vm, "--", "cat", "/root/mark").stdout == "kept\n"
    finally:
        d.lxc("delete", "-f", name, from_image, imported, check=False)
        d.lxc("image", "delete", alias, check=False)
