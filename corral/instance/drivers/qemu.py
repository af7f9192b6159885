"""The QEMU instance driver: virtual machines run by `qemu-system-x86_64`, driven only through QMP.

QEMU starts with the fewest options it needs to create the machine (firmware flash, memory, CPUs, the
QMP monitor, the ISA serial console and the PCIe root ports: none of those can be added later) and
waits (`-S`); everything else (the agent's virtio-serial channel, disks, NICs, RNG) is added over QMP
(corral/instance/drivers/qemudevices.py), then the machine is reset once (boot order) and continued.
No QEMU config file is written: QEMU soft-deprecated `-readconfig`, and LXD is moving off it too.

Files: the VM's log dir (LXD's `logs/<project_name>/`) has qemu.log, qemu.pid, console.log; the unix
sockets (qmp, console, agent) live in a short runtime dir (/run/corral-vm/<hash>: sun_path is 108
bytes), named after the log dir, so a restarted daemon finds a running VM's sockets again. QEMU runs in
its own session (`-daemonize`): a daemon killed or restarted leaves VMs running; `attach()` re-opens
their QMP connections.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from corral.instance.drivers import qemuhost
from corral.instance.drivers.base import DriverError
from corral.instance.drivers.qemudevices import (ROOT_PORTS, Ports, VMDisk, VMNic, add_agent_channel, add_disk,
                                                 add_nic, add_rng, remove_nic)
from corral.instance.drivers.qmp import Monitor

log = logging.getLogger(__name__)
RUN_ROOT = "/run/corral-vm"


@dataclass
class VMSpec:
    name: str                       # driver name (project_instance)
    uuid: str
    cpus: int
    memory: int                     # bytes
    secureboot: bool
    nvram: str                      # the VM's own UEFI variables file (in its volume)
    disks: list[VMDisk] = field(default_factory=list)
    nics: list[VMNic] = field(default_factory=list)
    log_dir: str = ""
    extra_args: list[str] = field(default_factory=list)   # raw.qemu


class VM:
    """A running QEMU process this daemon knows."""

    def __init__(self, name: str, pid: int, rundir: str, log_dir: str):
        self.name = name
        self.pid = pid
        self.rundir = rundir
        self.log_dir = log_dir
        self.monitor: Monitor | None = None
        self.paused = False
        self.gone = threading.Event()
        self.starting = False     # QEMU started, devices being added (start() holds the connection)
        self.deleted: dict[str, threading.Event] = {}

    @property
    def ports(self) -> Ports:
        return Ports.load(os.path.join(self.rundir, "ports.json"))


def rundir_for(log_dir: str) -> str:
    return os.path.join(RUN_ROOT, hashlib.sha256(os.path.realpath(log_dir).encode()).hexdigest()[:16])


def _alive(pid: int) -> bool:
    """A process that has not exited (a zombie has)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state in ("Z", "X"):
        try:   # ours (reparented to this subreaper): reap it now
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return False
    return True


def _is_qemu(pid: int) -> bool:
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe")).startswith("qemu-system")
    except OSError:
        return False


class QemuDriver:
    """Blocking methods (call them from worker threads), like the other instance drivers."""

    reset_before_cont = True   # False only to test QEMU's own boot order (tests/integration/test_vm_bootindex.py)

    def __init__(self, logpath: str, on_stopped: Callable[[str], None] | None = None):
        self.logpath = logpath
        self.on_stopped = on_stopped
        self._vms: dict[str, VM] = {}
        self._lock = threading.Lock()
        self.stopping: set[str] = set()
        self._starting: set[str] = set()

    # ---- paths -----------------------------------------------------------------------------

    def log_dir(self, name: str) -> str:
        return os.path.join(self.logpath, name)

    def rundir(self, name: str) -> str:
        return rundir_for(self.log_dir(name))

    def socket(self, name: str, which: str) -> str:
        return os.path.join(self.rundir(name), f"{which}.sock")

    def pidfile(self, name: str) -> str:
        return os.path.join(self.log_dir(name), "qemu.pid")

    # ---- finding running VMs ---------------------------------------------------------------

    def _read_pid(self, name: str) -> int:
        try:
            with open(self.pidfile(name)) as f:
                pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0
        return pid if pid and _alive(pid) and _is_qemu(pid) else 0

    def _vm(self, name: str) -> VM | None:
        """The running VM `name`, re-attached to when this daemon did not start it."""
        with self._lock:
            vm = self._vms.get(name)
        if vm is not None and not vm.gone.is_set() and _alive(vm.pid):
            return vm
        if name in self._starting:   # this daemon is starting it: never re-attach (one QMP client)
            return vm if vm is not None and not vm.gone.is_set() else None
        pid = self._read_pid(name)
        if not pid:
            with self._lock:
                self._vms.pop(name, None)
            return None
        vm = VM(name, pid, self.rundir(name), self.log_dir(name))
        try:
            self._connect(vm, timeout=2.0)
            st = vm.monitor.execute("query-status", timeout=5)
            vm.paused = st.get("status") == "paused"
        except DriverError as e:
            log.warning("vm %s: QEMU %d runs but its QMP does not answer: %s", name, pid, e.message)
            if vm.monitor is not None:
                vm.monitor.close()
            vm.monitor = None
        with self._lock:
            self._vms[name] = vm
        return vm

    def _connect(self, vm: VM, timeout: float) -> None:
        def on_event(ev: str, data: dict) -> None:
            if ev == "STOP":
                vm.paused = True
            elif ev == "RESUME":
                vm.paused = False
            elif ev == "DEVICE_DELETED":
                e = vm.deleted.get(data.get("data", {}).get("device", ""))
                if e is not None:
                    e.set()
            elif ev == "DISCONNECTED":
                threading.Thread(target=self._exited, args=(vm,), daemon=True).start()
        mon = Monitor(vm.name, os.path.join(vm.rundir, "qmp.sock"), on_event)
        mon.connect(timeout)
        vm.monitor = mon

    def _exited(self, vm: VM) -> None:
        """QEMU closed its monitor: wait for the process to end, then report the stop."""
        deadline = time.monotonic() + 10
        while _alive(vm.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        vm.gone.set()
        with self._lock:
            if self._vms.get(vm.name) is vm:
                del self._vms[vm.name]
        if vm.name not in self.stopping and self.on_stopped is not None:
            self.on_stopped(vm.name)

    def attach(self, names: list[str]) -> list[str]:
        """At daemon start: re-open the QMP connection of each running VM of `names`."""
        return [n for n in names if self._vm(n) is not None]

    # ---- reading ---------------------------------------------------------------------------

    def status(self, name: str) -> str:
        vm = self._vm(name)
        if vm is None:
            return "Stopped"
        if vm.starting:
            return "Running"
        if vm.monitor is None:
            return "Error"
        return "Frozen" if vm.paused else "Running"

    def statuses(self, names: list[str]) -> dict[str, str]:
        return {n: self.status(n) for n in names}

    def init_pid(self, name: str) -> int:
        vm = self._vm(name)
        return vm.pid if vm is not None else 0

    def list_running(self) -> list[str]:
        try:
            entries = os.listdir(self.logpath)
        except OSError:
            return []
        return [e for e in entries if os.path.exists(self.pidfile(e)) and self._read_pid(e)]

    def monitor(self, name: str) -> Monitor:
        vm = self._vm(name)
        if vm is None or vm.monitor is None:
            raise DriverError("The instance isn't running")
        return vm.monitor

    def qmp_state(self, name: str) -> dict:
        """What QEMU itself tells of a running VM (when its agent does not answer)."""
        mon = self.monitor(name)
        out: dict = {"status": mon.execute("query-status").get("status", "")}
        try:
            out["memory"] = mon.execute("query-memory-size-summary").get("base-memory", 0)
        except DriverError:
            out["memory"] = 0
        return out

    def create(self, spec) -> None:
        """Nothing to record ahead: QEMU is given everything when the VM starts."""

    def phys_links(self, name: str) -> list[str]:
        return []

    def apply_limits(self, name: str, config: dict[str, str]) -> None:
        raise DriverError("Limits of a running virtual machine cannot change: restart it")

    # ---- start -----------------------------------------------------------------------------

    def start(self, spec: VMSpec) -> None:
        if self._vm(spec.name) is not None:
            raise DriverError("The instance is already running")
        self._starting.add(spec.name)
        try:
            self._start(spec)
        finally:
            self._starting.discard(spec.name)

    def _start(self, spec: VMSpec) -> None:
        log_dir = spec.log_dir or self.log_dir(spec.name)
        os.makedirs(log_dir, mode=0o700, exist_ok=True)
        rundir = rundir_for(log_dir)
        shutil.rmtree(rundir, ignore_errors=True)
        os.makedirs(rundir, mode=0o700)
        fw = qemuhost.firmware(spec.secureboot)
        self._prepare_nvram(spec, fw)
        accel = qemuhost.accelerator()
        pidfile = os.path.join(log_dir, "qemu.pid")
        qemu_log = os.path.join(log_dir, "qemu.log")
        for stale in (pidfile, os.path.join(log_dir, "console.log")):
            if os.path.exists(stale):
                os.unlink(stale)
        machine = f"q35,accel={accel.name}" + (",smm=on" if spec.secureboot else ",smm=off")
        cmd = [qemuhost.qemu_binary(), "-S", "-name", f"{spec.name},debug-threads=on", "-uuid", spec.uuid,
               "-machine", machine, "-cpu", "host" if accel.name == "kvm" else "max",
               "-smp", str(spec.cpus), "-m", f"{max(spec.memory // (1024 * 1024), 64)}M",
               "-nodefaults", "-no-user-config", "-display", "none", "-daemonize", "-pidfile", pidfile,
               "-chardev", f"socket,id=qmp,path={rundir}/qmp.sock,server=on,wait=off",
               "-mon", "chardev=qmp,mode=control",
               "-chardev", f"socket,id=console,path={rundir}/console.sock,server=on,wait=off,"
                           f"logfile={log_dir}/console.log,logappend=on",
               "-serial", "chardev:console",
               "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={fw.code}",
               "-drive", f"if=pflash,format=raw,unit=1,file={spec.nvram}"]
        if spec.secureboot:
            cmd += ["-global", "driver=cfi.pflash01,property=secure,value=on"]
        for i in range(ROOT_PORTS):
            cmd += ["-device", f"pcie-root-port,id=rp{i},bus=pcie.0,chassis={i + 1},port={i + 1}"
                               + (",multifunction=on" if i % 8 == 0 else "") + f",addr={2 + i // 8}.{i % 8}"]
        cmd += spec.extra_args
        with open(qemu_log, "wb") as logf:   # LXD's qemu.log of this start: the command line, QEMU's messages
            logf.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(cmd)}\n".encode())
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, start_new_session=True)
        with open(qemu_log, "a") as logf:
            logf.write(r.stderr)
        if r.returncode != 0:
            raise DriverError(f"Failed to start QEMU: {(r.stderr or r.stdout).strip() or f'exit {r.returncode}'}")
        pid = self._read_pid(spec.name) if log_dir == self.log_dir(spec.name) else _pid_in(pidfile)
        if not pid:
            raise DriverError(f"QEMU exited at once: see {qemu_log}")
        vm = VM(spec.name, pid, rundir, log_dir)
        vm.starting = True
        with self._lock:   # known at once: a state read meanwhile must not take QEMU's one QMP connection
            self._vms[spec.name] = vm
        try:
            self._connect(vm, timeout=10.0)
            ports = Ports(os.path.join(rundir, "ports.json"))
            add_agent_channel(vm.monitor, ports, os.path.join(rundir, "agent.sock"))
            add_rng(vm.monitor, ports)
            for disk in spec.disks:
                add_disk(vm.monitor, ports, disk)
            for nic in spec.nics:
                add_nic(vm.monitor, ports, nic)
            if self.reset_before_cont:   # the boot order of the devices just added (see qemudevices)
                vm.monitor.execute("system_reset")
            vm.monitor.execute("cont")
        except BaseException:
            self.stopping.add(spec.name)
            try:
                self._kill(vm)
            finally:
                self.stopping.discard(spec.name)
            raise
        finally:
            vm.starting = False

    def _prepare_nvram(self, spec: VMSpec, fw: qemuhost.Firmware) -> None:
        """The VM's own copy of the firmware variables, new when secure boot changed (as LXD)."""
        marker = spec.nvram + ".template"
        try:
            with open(marker) as f:
                current = f.read().strip()
        except OSError:
            current = ""
        if os.path.exists(spec.nvram) and current == fw.vars:
            return
        os.makedirs(os.path.dirname(spec.nvram), exist_ok=True)
        shutil.copyfile(fw.vars, spec.nvram + ".tmp")
        os.replace(spec.nvram + ".tmp", spec.nvram)
        with open(marker, "w") as f:
            f.write(fw.vars + "\n")

    # ---- stop, freeze ----------------------------------------------------------------------

    def stop(self, name: str, force: bool = False, timeout: int = 30) -> None:
        vm = self._vm(name)
        if vm is None:
            return
        self.stopping.add(name)
        try:
            if not force and vm.monitor is not None:
                if vm.paused:
                    vm.monitor.execute("cont")
                vm.monitor.execute("system_powerdown")   # ACPI power button
                if self._wait_exit(vm, timeout):
                    return
            self._kill(vm)
        finally:
            self.stopping.discard(name)

    def _kill(self, vm: VM) -> None:
        if vm.monitor is not None:
            try:
                vm.monitor.execute("quit", timeout=5)
            except DriverError:
                pass
        if not self._wait_exit(vm, 5):
            try:
                os.kill(vm.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._wait_exit(vm, 10)
        if vm.monitor is not None:
            vm.monitor.close()
        with self._lock:
            if self._vms.get(vm.name) is vm:
                del self._vms[vm.name]

    @staticmethod
    def _wait_exit(vm: VM, timeout: float) -> bool:
        deadline = time.monotonic() + (timeout if timeout >= 0 else 10 ** 9)
        while _alive(vm.pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def freeze(self, name: str) -> None:
        self.monitor(name).execute("stop")
        vm = self._vm(name)
        if vm is not None:
            vm.paused = True

    def unfreeze(self, name: str) -> None:
        self.monitor(name).execute("cont")
        vm = self._vm(name)
        if vm is not None:
            vm.paused = False

    def delete(self, name: str) -> None:
        """Forget a stopped VM's runtime files (not its volume)."""
        if self._vm(name) is not None:
            raise DriverError("The instance is running")
        shutil.rmtree(self.rundir(name), ignore_errors=True)
        try:
            os.unlink(self.pidfile(name))
        except FileNotFoundError:
            pass

    # ---- hot-plug --------------------------------------------------------------------------

    def add_nic(self, name: str, nic: VMNic) -> None:
        vm = self._vm(name)
        if vm is None or vm.monitor is None:
            raise DriverError("The instance isn't running")
        add_nic(vm.monitor, vm.ports, nic)

    def remove_nic(self, name: str, dev: str, timeout: float = 10.0) -> None:
        vm = self._vm(name)
        if vm is None or vm.monitor is None:
            raise DriverError("The instance isn't running")
        dev_id = f"dev-nic-{dev}"
        ev = vm.deleted[dev_id] = threading.Event()

        def wait(_id: str) -> None:
            if not ev.wait(timeout):
                raise DriverError(f"The guest did not release NIC {dev} within {timeout:g}s")
        try:
            remove_nic(vm.monitor, vm.ports, dev, wait)
        finally:
            vm.deleted.pop(dev_id, None)

    # ---- console ---------------------------------------------------------------------------

    def console(self, name: str) -> int:
        """A connected socket on the serial console (one client at a time, as QEMU serves it)."""
        import socket
        if self._vm(name) is None:
            raise DriverError("The instance isn't running")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            s.connect(self.socket(name, "console"))
        except OSError as e:
            s.close()
            raise DriverError(f"Console: {e}") from None
        return s.detach()

    def console_log(self, name: str) -> bytes:
        try:
            with open(os.path.join(self.log_dir(name), "console.log"), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""


def _pid_in(path: str) -> int:
    try:
        with open(path) as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0
    return pid if pid and _alive(pid) else 0
