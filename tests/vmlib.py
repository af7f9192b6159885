"""VM test helpers: the VM test image built once per session (corral/image/vmbuild.py, cached on
disk across sessions too), a QEMU guest started by hand under TCG with OVMF or a direct kernel boot
(serial console on a pipe with timestamps, QMP on a unix socket), and a private bridge with a
dnsmasq for guests' DHCP. Everything made here is removed on exit, also when a test fails.

    from vmlib import vm_image, vm_image_files, QemuGuest, GuestNetwork
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid

import pytest

OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"


@functools.lru_cache(maxsize=None)
def built_image():
    """The VMImage (corral.image.vmbuild), built at most once per session (and reused from the
    build cache when its inputs have not changed)."""
    from corral.image.vmbuild import build_vm_image
    return build_vm_image(log=lambda m: None)


def vm_image_files() -> tuple[str, str]:
    """(metadata tarball, rootfs.img) of the VM test image."""
    img = built_image()
    return img.metadata, img.rootfs


@pytest.fixture(scope="session")
def vm_image():
    if not shutil.which("qemu-system-x86_64") or not os.path.exists(OVMF_CODE):
        pytest.skip("qemu-system-x86 and ovmf are needed")
    return built_image()


class QemuGuest:
    """qemu-system-x86_64 (TCG, q35, 1 vCPU) on a throw-away overlay of `rootfs` (qcow2): UEFI
    through OVMF, or a direct boot when kernel/initrd are given. Serial console on the process's
    stdin/stdout, QMP on a unix socket. Use as a context manager: QEMU is killed on exit."""

    def __init__(self, rootfs: str, *, kernel: str | None = None, initrd: str | None = None,
                 append: str | None = None, memory: str = "256M", taps: tuple[tuple[str, str], ...] = (),
                 hotplug_ports: int = 2):
        self.dir = tempfile.mkdtemp(prefix="corral-vm-")
        self.qmp_path = os.path.join(self.dir, "qmp.sock")
        self.lines: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        overlay = os.path.join(self.dir, "disk.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", os.path.abspath(rootfs), "-F", "qcow2",
                        overlay], check=True)
        argv = ["qemu-system-x86_64", "-accel", "tcg", "-machine", "q35", "-m", memory, "-smp", "1",
                "-nodefaults", "-display", "none", "-no-user-config",
                "-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console",
                "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
                "-drive", f"file={overlay},if=none,id=root,format=qcow2",
                "-device", "virtio-blk-pci,drive=root,bootindex=1"]
        if kernel:
            argv += ["-kernel", kernel, "-initrd", initrd, "-append", append or ""]
        else:
            vars_copy = os.path.join(self.dir, "vars.fd")
            shutil.copyfile(OVMF_VARS, vars_copy)
            argv += ["-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                     "-drive", f"if=pflash,format=raw,file={vars_copy}"]
        self.port_path = os.path.join(self.dir, "port.sock")   # a named virtio-serial port, as the agent's
        argv += ["-device", "virtio-serial-pci,id=vser", "-chardev",
                 f"socket,id=port0,path={self.port_path},server=on,wait=off",
                 "-device", "virtserialport,bus=vser.0,chardev=port0,name=org.corral.test"]
        for i, (tap, mac) in enumerate(taps):
            argv += ["-netdev", f"tap,id=net{i},ifname={tap},script=no,downscript=no",
                     "-device", f"virtio-net-pci,netdev=net{i},mac={mac}"]
        for i in range(hotplug_ports):
            argv += ["-device", f"pcie-root-port,id=hp{i},chassis={i + 1},slot={i + 1}"]
        self.argv = argv
        self.proc: subprocess.Popen | None = None
        self.started = 0.0
        self._qmp: socket.socket | None = None
        self._qmp_buf = b""

    def __enter__(self) -> "QemuGuest":
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(os.path.join(self.dir, "qemu.err"), "wb"))
        threading.Thread(target=self._reader, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._qmp is not None:
            self._qmp.close()
            self._qmp = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def _reader(self) -> None:
        buf = b""
        assert self.proc is not None and self.proc.stdout is not None
        while chunk := os.read(self.proc.stdout.fileno(), 4096):
            buf += chunk
            *done, buf = buf.split(b"\n")
            now = time.monotonic() - self.started
            with self._cond:
                self.lines += [(now, line.decode(errors="replace").rstrip("\r")) for line in done]
                self._cond.notify_all()
        with self._cond:
            if buf:
                self.lines.append((time.monotonic() - self.started, buf.decode(errors="replace")))
            self._cond.notify_all()

    @property
    def log(self) -> str:
        with self._cond:
            return "\n".join(line for _, line in self.lines)

    def wait_for(self, pattern: str, timeout: float = 60, since: int = 0) -> tuple[re.Match, float, int]:
        """The first serial line (from index `since`) matching `pattern`: (match, seconds since QEMU
        started, index of the line)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            i = since
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i][1])
                    if m:
                        return m, self.lines[i][0], i
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc is not None and self.proc.poll() is not None and i >= len(self.lines)):
                    raise AssertionError(f"no serial line matching {pattern!r} in {timeout}s; log:\n"
                                         + "\n".join(x for _, x in self.lines[-60:]))
                self._cond.wait(min(left, 0.5))

    def type(self, text: str) -> int:
        """Send `text` to the serial console; the index of the next serial line."""
        with self._cond:
            n = len(self.lines)
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()
        return n

    def shell(self, command: str, timeout: float = 30) -> str:
        """Run `command` in the serial shell; its output (between two markers), without the lines
        the kernel and the guest's init print on the same console meanwhile."""
        tag = uuid.uuid4().hex[:8]
        since = self.type(f"echo {tag}''-begin; {command}; echo {tag}''-end\n")
        _, _, b = self.wait_for(rf"^{tag}-begin$", timeout, since)
        _, _, e = self.wait_for(rf"^{tag}-end$", timeout, b)
        noise = re.compile(r"^(corral-init: |\[\s*\d+\.\d+\] )")
        with self._cond:
            return "\n".join(line for _, line in self.lines[b + 1:e] if not noise.match(line))

    # ---- QMP ----

    def qmp(self, command: str, **arguments) -> dict:
        if self._qmp is None:
            deadline = time.monotonic() + 10
            while True:
                try:
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.connect(self.qmp_path)
                    break
                except OSError:
                    s.close()
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            s.settimeout(30)
            self._qmp = s
            self._qmp_read()   # greeting
            self._qmp_send({"execute": "qmp_capabilities"})
        self._qmp_send({"execute": command, **({"arguments": arguments} if arguments else {})})
        return self._last

    def _qmp_send(self, msg: dict) -> None:
        assert self._qmp is not None
        self._qmp.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._qmp_read()
            if "return" in reply or "error" in reply:
                if "error" in reply:
                    raise RuntimeError(f"QMP {msg['execute']}: {reply['error']}")
                self._last = reply["return"]
                return

    def _qmp_read(self) -> dict:
        assert self._qmp is not None
        while b"\n" not in self._qmp_buf:
            chunk = self._qmp.recv(65536)
            if not chunk:
                raise EOFError("QMP closed")
            self._qmp_buf += chunk
        line, self._qmp_buf = self._qmp_buf.split(b"\n", 1)
        return json.loads(line)

    def wait_exit(self, timeout: float) -> int | None:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None


def _free_subnet() -> str:
    """A 10.2xx.yy.0/24 no route or address of the host's covers (looked at, never probed)."""
    import ipaddress
    used = []
    out = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    out += subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    for word in re.findall(r"\b\d+\.\d+\.\d+\.\d+(?:/\d+)?\b", out):
        try:
            used.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            pass
    for _ in range(200):
        n = ipaddress.ip_network(f"10.{int.from_bytes(os.urandom(1), 'big') % 50 + 200}."
                                 f"{int.from_bytes(os.urandom(1), 'big')}.0/24")
        if not any(n.overlaps(u) for u in used if u.prefixlen >= 8 and not u.is_unspecified):
            return str(n)
    raise RuntimeError("no free 10.x subnet")


class GuestNetwork:
    """A bridge of our own with a dnsmasq serving DHCP on it (no DNS), and taps on it for guests.
    Context manager: bridge, taps and dnsmasq are removed on exit."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.bridge = f"cvbr{tag}"
        self.tag = tag
        self.subnet = _free_subnet()
        base = self.subnet.rsplit(".", 1)[0]
        self.gateway = f"{base}.1"
        self.range = (f"{base}.50", f"{base}.150")
        self.dir = tempfile.mkdtemp(prefix="corral-vmnet-")
        self.taps: list[str] = []
        self.dnsmasq: subprocess.Popen | None = None

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    def __enter__(self) -> "GuestNetwork":
        try:
            self._ip("link", "add", self.bridge, "type", "bridge")
            self._ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            self._ip("link", "set", self.bridge, "up")
            self.leases = os.path.join(self.dir, "leases")
            self.dnsmasq = subprocess.Popen(
                ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0", "--no-resolv",
                 "--bind-interfaces", f"--interface={self.bridge}", "--except-interface=lo",
                 f"--listen-address={self.gateway}", f"--dhcp-range={self.range[0]},{self.range[1]},1h",
                 f"--dhcp-leasefile={self.leases}", "--dhcp-authoritative", "--no-ping",
                 f"--pid-file={os.path.join(self.dir, 'pid')}", "--log-facility=" + os.path.join(self.dir, "log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except BaseException:
            self.close()
            raise
        return self

    def tap(self) -> tuple[str, str]:
        """A new tap on the bridge and a MAC for the guest's NIC."""
        name = f"cvt{self.tag}{len(self.taps)}"
        self._ip("tuntap", "add", "mode", "tap", "name", name)
        self.taps.append(name)
        self._ip("link", "set", name, "master", self.bridge, "up")
        mac = "52:54:00:" + ":".join(f"{b:02x}" for b in os.urandom(3))
        return name, mac

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.dnsmasq is not None and self.dnsmasq.poll() is None:
            self.dnsmasq.terminate()
            try:
                self.dnsmasq.wait(5)
            except subprocess.TimeoutExpired:
                self.dnsmasq.kill()
                self.dnsmasq.wait()
        for t in self.taps:
            subprocess.run(["ip", "link", "del", t], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
