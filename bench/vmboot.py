"""QEMU started by hand, beside corrald's VMs (bench/vm.py): the same qemu-system-x86_64 under TCG, the
same VM test image (corral/image/vmbuild.py), measured to the same milestone, our guest agent answering
(`corral.instance.agent.AgentClient` over QEMU's virtio-serial chardev socket, then `true` run through it).

- `floor`: no UEFI firmware: `-kernel/-initrd/-append` of the image's kernel (QEMU's SeaBIOS only runs
  its linuxboot option ROM), the image's disk as virtio-blk, a virtio-serial port for the agent.
- `ovmf`: corrald's own command line (corral/instance/drivers/qemu.py `start`: q35, smm=off, OVMF's
  code and a copy of its variables as pflash, 12 PCIe root ports, the serial console on a socket
  chardev with a logfile) with the devices corrald adds over QMP given on the command line instead:
  the agent's virtio-serial, virtio-rng, the disk (raw, bootindex 0) and a virtio-net NIC without
  option ROM (`-netdev user,restrict=on`: DHCP inside QEMU, nothing leaves it). Booted through the
  image's UKI on its ESP, as corrald boots it.

Both write the serial console to a logfile, read back by `ConsoleTail` with host timestamps, so the
boot is split in the same milestones as corrald's (its console.log is tailed the same way). Every
process and file is removed by `close()`, also when a measurement failed.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid

from corral.instance.agent import AgentClient, AgentNotRunning
from corral.instance.drivers import qemuhost
from corral.instance.drivers.qmp import Monitor

ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
ROOT_PORTS = 12   # as corral/instance/drivers/qemudevices.py


def now() -> float:
    """The clock of every figure: CLOCK_BOOTTIME, the one /proc/PID/stat's start times count in."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def process_start(pid: int) -> float | None:
    """When process `pid` started, on now()'s clock (10 ms resolution)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds process `pid` (all its threads) has used."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class ConsoleTail:
    """Lines of a serial console logfile as they appear (polled every 20 ms), with the host time
    each was first seen; `milestones(t0)` splits a boot by them. A file already there when the tail
    starts is skipped (corrald removes a VM's old console.log before QEMU writes a new one)."""

    PRINTK = re.compile(r"^\[\s*(\d+\.\d+)\]")

    def __init__(self, path: str):
        self.path = path
        self.lines: list[tuple[float, str]] = []
        st = self._stat()
        self._old = (st.st_ino, st.st_size) if st else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _stat(self) -> os.stat_result | None:
        try:
            return os.stat(self.path)
        except OSError:
            return None

    def _is_old(self, st: os.stat_result) -> bool:
        """The file that was there at the start (an inode number may be reused by its successor, but
        that one starts smaller: QEMU writes a new log from nothing)."""
        return self._old is not None and st.st_ino == self._old[0] and st.st_size >= self._old[1]

    def _run(self) -> None:
        f, ino, buf = None, None, b""
        while not self._stop.is_set():
            if f is None:
                st = self._stat()
                if st is None or self._is_old(st):
                    time.sleep(0.02)
                    continue
                try:
                    f, ino = open(self.path, "rb"), st.st_ino
                except FileNotFoundError:
                    continue
            chunk = f.read()
            if chunk:
                t = now()
                buf += chunk
                *done, buf = buf.split(b"\n")
                self.lines += [(t, ln.decode(errors="replace").strip("\r")) for ln in done]
                continue
            st = self._stat()
            if st is not None and (st.st_ino != ino or st.st_size < f.tell()):
                break   # replaced: the next boot's log is not this boot's
            time.sleep(0.02)
        if f is not None:
            f.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def first(self, pattern: str, t0: float) -> float | None:
        rx = re.compile(pattern)
        return next((t - t0 for t, ln in list(self.lines) if rx.search(ln)), None)

    def dump(self, t0: float) -> list[tuple[float, str]]:
        return [(round(t - t0, 3), ln) for t, ln in list(self.lines)]

    def milestones(self, t0: float) -> dict[str, float | None]:
        """Seconds from t0: first console byte, OVMF starting the boot loader and the kernel's EFI
        stub (UEFI boots only), the kernel's clock 0 (the earliest host time minus
        printk time over the kernel's timestamped lines: lines buffered before the console existed
        come out late and do not count), /init of the initramfs, our PID 1 (userspace), power-off."""
        lines = list(self.lines)
        starts = [t - float(m.group(1)) for t, ln in lines if (m := self.PRINTK.match(ln)) and float(m.group(1)) > 0]
        return {"console": lines[0][0] - t0 if lines else None,
                "bds": self.first(r"BdsDxe: starting Boot", t0),          # OVMF hands over to the loader
                "stub": self.first(r"EFI stub: ", t0),                    # the kernel's EFI stub runs
                "kernel": min(starts) - t0 if starts else None,
                "init": self.first(r"Run /init as init process", t0),
                "userspace": self.first(r"^corral-init: userspace", t0),
                "power_down": self.first(r"reboot: Power down", t0)}


def wait_agent(socket_path: str, hostname: str, timeout: float, alive=lambda: True) -> tuple[float, AgentClient]:
    """Connect to the agent (retrying until it answers) and run `true` through it: the time the exit
    code came back, and the connected client."""
    client = AgentClient(socket_path, hostname=hostname)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                client.connect(timeout=1.0)
                break
            except AgentNotRunning:
                if time.monotonic() >= deadline or not alive():
                    raise RuntimeError(f"the agent did not answer within {timeout:g}s") from None
        code = run_true(client)
        if code != 0:
            raise RuntimeError(f"`true` in the guest exited {code}")
        return now(), client
    except BaseException:
        client.close()
        raise


def run_true(client: AgentClient) -> int:
    proc = client.exec(["true"], ENV)
    for fd in proc.caller_fds():
        os.close(fd)
    return proc.wait()


class HandBoot:
    """One VM of QEMU started by hand (`kind` floor or ovmf) in a temporary directory; `start()` may
    be called again after a stop (same disk and UEFI variables: a second boot)."""

    def __init__(self, kind: str, image, memory_mib: int = 512, cpus: int = 1):
        assert kind in ("floor", "ovmf")
        self.kind, self.image, self.memory_mib, self.cpus = kind, image, memory_mib, cpus
        self.dir = tempfile.mkdtemp(prefix=f"corral-vmbench-{kind}-", dir="/var/tmp")
        self.name = f"bench-{kind}-{uuid.uuid4().hex[:6]}"
        self.disk = os.path.join(self.dir, "root.img")
        self.vars = os.path.join(self.dir, "qemu.nvram")
        self.proc: subprocess.Popen | None = None
        self.client: AgentClient | None = None
        self.monitor: Monitor | None = None
        self.console: ConsoleTail | None = None
        self.t0 = 0.0
        try:
            r = subprocess.run(["qemu-img", "convert", "-O", "raw", image.rootfs, self.disk], capture_output=True,
                               text=True)
            if r.returncode != 0:
                raise RuntimeError(f"qemu-img convert {image.rootfs}: {r.stderr.strip()}")
            if kind == "ovmf":
                self.fw = qemuhost.firmware(False)
                shutil.copyfile(self.fw.vars, self.vars)
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def sock(self, which: str) -> str:
        return os.path.join(self.dir, f"{which}.sock")

    def argv(self, log: str) -> list[str]:
        common = ["-name", f"{self.name},debug-threads=on", "-cpu", "max", "-smp", str(self.cpus),
                  "-m", f"{self.memory_mib}M", "-nodefaults", "-no-user-config", "-display", "none",
                  "-chardev", f"socket,id=qmp,path={self.sock('qmp')},server=on,wait=off",
                  "-mon", "chardev=qmp,mode=control",
                  "-chardev", f"socket,id=console,path={self.sock('console')},server=on,wait=off,"
                              f"logfile={log},logappend=on",
                  "-serial", "chardev:console",
                  "-chardev", f"socket,id=agent,path={self.sock('agent')},server=on,wait=off"]
        if self.kind == "floor":
            return [qemuhost.qemu_binary(), "-machine", "q35,accel=tcg,smm=off", *common,
                    "-kernel", self.image.kernel, "-initrd", self.image.initrd, "-append", self.image.cmdline,
                    "-drive", f"file={self.disk},if=none,id=root,format=raw", "-device", "virtio-blk-pci,drive=root",
                    "-device", "virtio-serial-pci",
                    "-device", "virtserialport,chardev=agent,name=org.corral.agent"]
        argv = [qemuhost.qemu_binary(), "-uuid", str(uuid.uuid4()), "-machine", "q35,accel=tcg,smm=off", *common,
                "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={self.fw.code}",
                "-drive", f"if=pflash,format=raw,unit=1,file={self.vars}"]
        for i in range(ROOT_PORTS):
            argv += ["-device", f"pcie-root-port,id=rp{i},bus=pcie.0,chassis={i + 1},port={i + 1}"
                                + (",multifunction=on" if i % 8 == 0 else "") + f",addr={2 + i // 8}.{i % 8}"]
        blockdev = {"driver": "raw", "node-name": "drive-root", "read-only": False, "discard": "unmap",
                    "file": {"driver": "file", "filename": self.disk, "aio": "threads",
                             "cache": {"direct": False, "no-flush": False}}}
        mac = "52:54:00:" + ":".join(f"{b:02x}" for b in os.urandom(3))
        argv += ["-device", "virtio-serial-pci,id=dev-serial,bus=rp0",
                 "-device", "virtserialport,id=dev-agent,chardev=agent,name=org.corral.agent,bus=dev-serial.0",
                 "-object", "rng-random,id=rng0,filename=/dev/urandom",
                 "-device", "virtio-rng-pci,id=dev-rng,rng=rng0,bus=rp1",
                 "-blockdev", json.dumps(blockdev),
                 "-device", "virtio-blk-pci,id=dev-disk-root,drive=drive-root,bus=rp2,serial=root,bootindex=0",
                 "-netdev", "user,id=net-eth0,restrict=on",
                 "-device", f"virtio-net-pci,id=dev-nic-eth0,netdev=net-eth0,mac={mac},bus=rp3,romfile="]
        return argv

    def start(self, timeout: float) -> dict:
        """Boot to the agent answering: the milestones in seconds from QEMU's start."""
        self._reset()
        log = os.path.join(self.dir, f"console-{time.monotonic_ns()}.log")
        argv = self.argv(log)
        self.console = ConsoleTail(log)
        self.t0 = now()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, "qemu.err"), "ab"), start_new_session=True)
        ready, self.client = wait_agent(self.sock("agent"), self.name, timeout,
                                        alive=lambda: self.proc is not None and self.proc.poll() is None)
        out = {"agent": ready - self.t0, "qemu_cpu": process_cpu(self.proc.pid), **self.console.milestones(self.t0)}
        out.pop("power_down")
        self.last_console = self.console.dump(self.t0)
        return out

    def exec_latency(self, n: int) -> list[float]:
        """ms of `true` run through the agent, n times."""
        out = []
        for _ in range(n):
            t = time.perf_counter()
            code = run_true(self.client)
            out.append((time.perf_counter() - t) * 1000)
            if code != 0:
                raise RuntimeError(f"`true` in the guest exited {code}")
        return out

    def stop(self, force: bool, timeout: float = 60) -> dict:
        """ACPI power button (system_powerdown) or QMP quit, to QEMU's exit: seconds, and whether the
        guest powered itself off."""
        assert self.proc is not None
        self.monitor = Monitor(self.name, self.sock("qmp"))
        self.monitor.connect(10)
        t = time.perf_counter()
        self.monitor.execute("quit" if force else "system_powerdown")
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"QEMU ({self.kind}) still ran {timeout:g}s after "
                               f"{'quit' if force else 'system_powerdown'}") from None
        took = time.perf_counter() - t
        time.sleep(0.1)   # the tail's last poll
        clean = self.console.first(r"reboot: Power down", self.t0) is not None
        self._reset()
        return {"s": took, "clean": clean}

    def memory(self) -> dict:
        from common import pss_kib, rss_kib
        assert self.proc is not None
        return {"rss_kib": rss_kib(self.proc.pid), "pss_kib": pss_kib(self.proc.pid)}

    def _reset(self) -> None:
        for obj in (self.client, self.monitor, self.console):
            if obj is not None:
                try:
                    obj.close()
                except Exception:  # noqa: BLE001 - clean-up goes on
                    pass
        self.client = self.monitor = self.console = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
            self.proc = None

    def close(self) -> None:
        self._reset()
        shutil.rmtree(self.dir, ignore_errors=True)
