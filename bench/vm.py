#!/usr/bin/env python3
"""Virtual machine benchmark (issue 14): corrald's VMs beside QEMU started by hand on the same image.

Three variants, each run `--runs` times (order rotating between runs), all under TCG with 1 vCPU and
512 MiB, on the VM test image (corral/image/vmbuild.py, the one `corral image build busybox --vm` makes):

- corrald: a real corrald (`corrald init --auto`: dir pool, managed bridge) driven by the real `lxc`
  client: `lxc launch IMAGE vm --vm -c security.secureboot=false -c limits.memory=512MiB -c limits.cpu=1`;
  agent-ready is the first `lxc exec vm -- true` that succeeds (polled every 100 ms after the launch
  returned); `lxc list` is polled every 100 ms from the launch for RUNNING and the first IPv4 lease;
  then `lxc exec vm -- true` (--execs times), QEMU's RSS/PSS, `lxc stop` (ACPI), `lxc start` to
  agent-ready again, `lxc stop --force`, `lxc delete`.
- ovmf: corrald's QEMU command line by hand, devices on the command line (bench/vmboot.py).
- floor: QEMU's direct kernel boot of the image's kernel, no UEFI (bench/vmboot.py).

Both by-hand variants reach agent-ready by connecting `AgentClient` to the agent's chardev socket
themselves and running `true` through it; their exec figure is that raw agent round trip, their
stops are QMP `system_powerdown` / `quit`. Every boot is split by its serial console (tailed with host
timestamps): console output, the kernel's clock 0, /init, our PID 1 (userspace), the agent.

The real LXD 5.0.2 is probed (a throw-away LXD in its own LXD_DIR: `lxc init --empty --vm`); when it
refuses VMs (here: no vhost_vsock), its answer is printed instead of figures. Everything made (VMs,
daemons, QEMU processes, temporary dirs) is removed at the end, also on failure and Ctrl-C.

    .venv/bin/python bench/vm.py [--runs 5] [--execs 20] [--variants corrald,ovmf,floor] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import traceback
import uuid

from common import interrupts, pss_kib, rss_kib, say, shielded  # also puts tests/ on sys.path
from vmboot import ConsoleTail, HandBoot, now, process_cpu, process_start

VARIANTS = ("corrald", "ovmf", "floor")
MEMORY_MIB = 512
IMAGE_ALIAS = "bench-vm"
POLL = 0.1


def pctl(xs: list[float], q: float) -> float | None:
    """The q-quantile (nearest rank) of xs."""
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def med(xs: list) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def qemu_count() -> int:
    n = 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                n += os.path.basename(os.readlink(f"/proc/{d}/exe")).startswith("qemu-system")
            except OSError:
                pass
    return n


# ---- the real LXD ---------------------------------------------------------------------------------

def probe_lxd() -> str:
    """What the real LXD says when asked for a VM (its error line), or that it accepts them."""
    import shutil
    if not shutil.which("lxd"):
        return "LXD: not installed (`make bench-vm` installs Debian's lxd)"
    from bench import LXD
    lxd = LXD()
    try:
        lxd.start()
        ver = lxd.lxc("version", check=False).stdout.strip().splitlines()
        r = lxd.lxc("init", "--empty", "--vm", "probe-vm", check=False)
        label = f"LXD {ver[-1].split(':', 1)[-1].strip() if ver else ''}".strip()
        if r.returncode != 0:
            err = (r.stderr.strip().splitlines() or ["(no message)"])[-1]
            return f"{label}: cannot run VMs on this host (`lxc init --empty --vm`): {err}"
        lxd.lxc("delete", "-f", "probe-vm", check=False)
        return (f"{label}: accepts VMs here, but not measured: its `lxc exec` needs lxd-agent over vsock, "
                "which the VM test image does not have")
    except Exception as e:  # noqa: BLE001 - reported, never faked
        return f"LXD: could not be probed: {e}"
    finally:
        lxd.cleanup()


# ---- corrald --------------------------------------------------------------------------------------

class CorraldVMs:
    def __init__(self, image, boot_timeout: float):
        from helpers import Corrald
        self.c = Corrald()
        self.image = image
        self.boot_timeout = boot_timeout

    def start(self) -> "CorraldVMs":
        self.c.start()
        self.c.run("corrald", "init", "--auto", check=True)
        self.c.lxc("image", "import", self.image.metadata, self.image.rootfs, "--alias", IMAGE_ALIAS, timeout=600)
        return self

    def lxc(self, *args, check=True, timeout=300):
        return self.c.lxc(*args, check=check, timeout=timeout)

    def log_dir(self, name: str) -> str:
        return os.path.join(self.c.dir, "logs", name)

    def qemu_pid(self, name: str) -> int:
        with open(os.path.join(self.log_dir(name), "qemu.pid")) as f:
            return int(f.read().strip())

    def wait_agent(self, name: str) -> tuple[float, int, str]:
        """Poll `lxc exec NAME -- true` until it succeeds: (when, attempts, the last failure)."""
        deadline = now() + self.boot_timeout
        tries, last = 0, ""
        while now() < deadline:
            tries += 1
            r = self.lxc("exec", name, "--", "true", check=False, timeout=60)
            if r.returncode == 0:
                return now(), tries, last
            last = (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
            time.sleep(POLL)
        raise RuntimeError(f"no agent within {self.boot_timeout:g}s ({tries} tries; last: {last})")

    def watch_list(self, name: str, t0: float, out: dict, stop: threading.Event) -> None:
        """Poll `lxc list` for RUNNING and the first IPv4 address (seconds from t0 into `out`)."""
        out["list_ms"] = []
        while not stop.is_set() and not ("running" in out and "lease" in out):
            t1 = now()
            r = self.lxc("list", name, "--format", "csv", "-c", "ns4", check=False, timeout=60)
            t = now() - t0
            out["list_ms"].append((round(t1 - t0, 3), round((now() - t1) * 1000, 1)))
            for row in r.stdout.splitlines():
                cols = row.split(",")
                if len(cols) >= 3 and cols[0] == name:
                    if cols[1] == "RUNNING":
                        out.setdefault("running", t)
                    if cols[2].strip():
                        out.setdefault("lease", t)
                        out.setdefault("address", cols[2].strip())
            stop.wait(POLL)

    def boot(self, name: str, argv: list[str]) -> dict:
        """`lxc launch`/`lxc start` to agent-ready, with the lxc list watcher and the console timeline."""
        tail = ConsoleTail(os.path.join(self.log_dir(name), "console.log"))
        listed: dict = {}
        stop = threading.Event()
        cpu0 = process_cpu(self.c.proc.pid)
        t0 = now()
        watcher = threading.Thread(target=self.watch_list, args=(name, t0, listed, stop), daemon=True)
        try:
            self.lxc(*argv, timeout=600)
            returned = now() - t0
            # Not before: a state read while corrald starts QEMU takes QEMU's only QMP connection from
            # the start, which then fails ("QMP: no answer from QEMU in time"; see docs/benchmarks.md).
            watcher.start()
            ready, tries, last = self.wait_agent(name)
            pid = self.qemu_pid(name)
            out = {"agent": ready - t0, "returned": returned, "exec_tries": tries, "before_ready": last,
                   "qemu_cpu": process_cpu(pid), "corrald_cpu": (process_cpu(self.c.proc.pid) or 0) - (cpu0 or 0)}
            if argv[0] == "launch":   # wait a little for the lease if it is still to come
                deadline = now() + 60
                while "lease" not in listed and now() < deadline and watcher.is_alive():
                    time.sleep(POLL)
            stop.set()
            watcher.join(70)
            out.update({k: listed.get(k) for k in ("running", "lease", "address", "list_ms")})
            qemu_at = process_start(pid)
            out["qemu"] = qemu_at - t0 if qemu_at is not None else None
            out["timeline"] = tail.milestones(t0)
            out["console"] = tail.dump(t0)
            out["tail"] = tail
            return out
        except BaseException:
            tail.close()
            raise
        finally:
            stop.set()

    def run(self, execs: int) -> dict:
        name = f"bvm-{uuid.uuid4().hex[:6]}"
        res: dict = {}
        tails = []
        try:
            b = self.boot(name, ["launch", IMAGE_ALIAS, name, "--vm", "-c", "security.secureboot=false",
                                 "-c", f"limits.memory={MEMORY_MIB}MiB", "-c", "limits.cpu=1"])
            tail = b.pop("tail")
            tails.append(tail)
            pid = self.qemu_pid(name)
            res["memory"] = {"rss_kib": rss_kib(pid), "pss_kib": pss_kib(pid)}
            res["boot"] = b
            lat = []
            for _ in range(execs):
                t = time.perf_counter()
                self.lxc("exec", name, "--", "true", timeout=60)
                lat.append((time.perf_counter() - t) * 1000)
            res["exec_ms"] = lat
            t = time.perf_counter()
            self.lxc("stop", name, timeout=600)
            took = time.perf_counter() - t
            time.sleep(0.1)
            res["stop"] = {"s": took, "clean": tail.first(r"reboot: Power down", 0) is not None}
            b2 = self.boot(name, ["start", name])
            tails.append(b2.pop("tail"))
            res["start"] = b2
            t = time.perf_counter()
            self.lxc("stop", name, "--force", timeout=600)
            res["stop_force"] = {"s": time.perf_counter() - t}
        except Exception as e:
            e.diagnostics = self.diagnostics(name)
            raise
        finally:
            for t in tails:
                t.close()
            self.lxc("delete", "-f", name, check=False, timeout=300)
        return res

    def diagnostics(self, name: str) -> dict:
        """The ends of corrald's log and of the VM's qemu.log, for the JSON of a failed run."""
        out = {}
        for key, path in (("corrald_log", os.path.join(self.c.dir, "test-corrald.log")),
                          ("qemu_log", os.path.join(self.log_dir(name), "qemu.log"))):
            try:
                with open(path, errors="replace") as f:
                    out[key] = f.read()[-6000:]
            except OSError as e:
                out[key] = str(e)
        return out

    def cleanup(self) -> None:
        self.c.cleanup()


# ---- QEMU by hand ---------------------------------------------------------------------------------

def run_hand(kind: str, image, execs: int, boot_timeout: float) -> dict:
    vm = HandBoot(kind, image, memory_mib=MEMORY_MIB)
    try:
        tl = vm.start(boot_timeout)
        res: dict = {"boot": {"agent": tl["agent"], "qemu": 0.0, "qemu_cpu": tl["qemu_cpu"], "timeline": tl,
                              "console": vm.last_console}}
        res["memory"] = vm.memory()
        res["exec_ms"] = vm.exec_latency(execs)
        res["stop"] = vm.stop(force=False)
        tl2 = vm.start(boot_timeout)
        res["start"] = {"agent": tl2["agent"], "qemu": 0.0, "timeline": tl2}
        res["stop_force"] = vm.stop(force=True)
        return res
    finally:
        vm.close()


def private_copy(image):
    """The image's files copied to a directory of ours: the build cache is shared, and a rebuild by
    someone else may replace them while the benchmark runs."""
    import dataclasses
    d = tempfile.mkdtemp(prefix="corral-vmbench-image-", dir="/var/tmp")
    try:
        paths = {}
        for key in ("metadata", "rootfs", "kernel", "initrd"):
            paths[key] = os.path.join(d, os.path.basename(getattr(image, key)))
            shutil.copyfile(getattr(image, key), paths[key])
        return dataclasses.replace(image, **paths)
    except BaseException:
        shutil.rmtree(d, ignore_errors=True)
        raise


# ---- the report -----------------------------------------------------------------------------------

def summarise(runs: dict[str, list[dict]]) -> dict:
    out: dict = {}
    for v, rs in runs.items():
        ok = [r for r in rs if "error" not in r]

        def col(*path):
            vals = []
            for r in ok:
                x = r
                for p in path:
                    x = x.get(p) if isinstance(x, dict) else None
                vals.append(x)
            return [x for x in vals if x is not None]
        lat = [ms for r in ok for ms in r["exec_ms"]]
        s = {"runs_ok": len(ok), "runs_failed": len(rs) - len(ok),
             "agent_ready_s": med(col("boot", "agent")),
             "launch_returned_s": med(col("boot", "returned")),
             "running_s": med(col("boot", "running")), "lease_s": med(col("boot", "lease")),
             "qemu_started_s": med(col("boot", "qemu")),
             "start_agent_ready_s": med(col("start", "agent")),
             "exec_median_ms": med(lat), "exec_p90_ms": pctl(lat, 0.9),
             "stop_s": med(col("stop", "s")), "stop_clean": col("stop", "clean"),
             "stop_force_s": med(col("stop_force", "s")),
             "list_booting_ms": med([ms for r in ok for at, ms in r["boot"].get("list_ms") or []
                                     if at < r["boot"]["agent"] - 1]),
             "qemu_cpu_s": med(col("boot", "qemu_cpu")), "corrald_cpu_s": med(col("boot", "corrald_cpu")),
             "rss_mib": mib(med(col("memory", "rss_kib"))), "pss_mib": mib(med(col("memory", "pss_kib"))),
             "timeline": {}}
        for k in ("console", "bds", "stub", "kernel", "init", "userspace"):   # since QEMU started
            s["timeline"][k] = med([r["boot"]["timeline"].get(k) - r["boot"]["qemu"] for r in ok
                                    if r["boot"]["timeline"].get(k) is not None and r["boot"]["qemu"] is not None])
        s["timeline"]["agent"] = med([r["boot"]["agent"] - r["boot"]["qemu"] for r in ok
                                      if r["boot"]["qemu"] is not None])
        out[v] = s
    return out


def mib(kib):
    return kib / 1024 if kib is not None else None


def fmt(x, unit: str = "", nd: int = 2) -> str:
    return "-" if x is None else f"{x:.{nd}f}{unit}"


def ratio(a, b) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "-"


def report(summary: dict, host: dict, lxd_line: str) -> str:
    cols = [v for v in VARIANTS if v in summary]
    names = {"corrald": "corrald", "ovmf": "OVMF by hand", "floor": "floor (direct)"}
    w = 16
    lines = [f"VM benchmark: {host['runs']} runs, QEMU {host['qemu']} ({host['accel']}), 1 vCPU, {MEMORY_MIB} MiB; "
             f"host {host['cores']} cores",
             f"load average (1/5/15 min): {'/'.join(f'{x:.2f}' for x in host['load_start'])} at the start, "
             f"{'/'.join(f'{x:.2f}' for x in host['load_end'])} at the end; other QEMU processes on the host at "
             f"the start: {host['other_qemu']}",
             lxd_line, ""]
    head = f"{'':<34}" + "".join(f"{names[c]:>{w}}" for c in cols)
    both = "corrald" in summary and "floor" in summary
    if both:
        head += f"{'corrald/floor':>{w}}"
    if "corrald" in summary and "ovmf" in summary:
        head += f"{'corrald/OVMF':>{w}}"
    lines.append(head)
    rows = [("launch -> agent-ready (s)", "agent_ready_s", 2, True),
            ("  launch command returned (s)", "launch_returned_s", 2, False),
            ("  QEMU process started (s)", "qemu_started_s", 2, False),
            ("  RUNNING in lxc list (s)", "running_s", 2, False),
            ("  IPv4 lease in lxc list (s)", "lease_s", 2, False),
            ("  one `lxc list` meanwhile (ms)", "list_booting_ms", 0, False),
            ("  QEMU CPU time by then (s)", "qemu_cpu_s", 2, True),
            ("  corrald CPU time meanwhile (s)", "corrald_cpu_s", 2, False),
            ("start -> agent-ready, 2nd boot (s)", "start_agent_ready_s", 2, True),
            ("exec `true` median (ms)", "exec_median_ms", 1, True),
            ("exec `true` p90 (ms)", "exec_p90_ms", 1, True),
            ("stop, ACPI (s)", "stop_s", 2, True),
            ("stop --force (s)", "stop_force_s", 2, True),
            ("QEMU RSS after agent-ready (MiB)", "rss_mib", 0, True),
            ("QEMU PSS after agent-ready (MiB)", "pss_mib", 0, True)]
    for label, key, nd, comparable in rows:
        line = f"{label:<34}" + "".join(f"{fmt(summary[c].get(key), '', nd):>{w}}" for c in cols)
        if comparable and both:
            line += f"{ratio(summary['corrald'][key], summary['floor'][key]):>{w}}"
        if comparable and "corrald" in summary and "ovmf" in summary:
            line += f"{ratio(summary['corrald'][key], summary['ovmf'][key]):>{w}}"
        lines.append(line)
    lines += ["", "Boot timeline, seconds since the QEMU process started (medians; from the serial console):",
              f"{'':<34}" + "".join(f"{names[c]:>{w}}" for c in cols)]
    for label, key in (("first console output", "console"), ("OVMF starts the boot loader", "bds"),
                       ("kernel EFI stub message", "stub"), ("kernel clock 0", "kernel"),
                       ("initramfs /init", "init"), ("userspace (our PID 1)", "userspace"), ("agent ready", "agent")):
        lines.append(f"{label:<34}" + "".join(f"{fmt(summary[c]['timeline'].get(key)):>{w}}" for c in cols))
    for c in cols:
        s = summary[c]
        if s["runs_failed"]:
            lines.append(f"{names[c]}: {s['runs_failed']} of {s['runs_failed'] + s['runs_ok']} runs failed (see --json)")
        if s["stop_clean"] and not all(s["stop_clean"]):
            lines.append(f"{names[c]}: the ACPI stop did not power the guest off cleanly in "
                         f"{s['stop_clean'].count(False)} runs")
    if both and summary["corrald"]["agent_ready_s"] and summary["floor"]["agent_ready_s"]:
        c, f = summary["corrald"]["agent_ready_s"], summary["floor"]["agent_ready_s"]
        lines += ["", f"Goal (issue 14): agent-ready within 2x the floor: corrald {c:.2f}s / floor {f:.2f}s = "
                      f"{c / f:.2f}x: {'met' if c <= 2 * f else 'NOT met'}"]
        o = summary.get("ovmf", {}).get("agent_ready_s")
        if o:
            lines.append(f"  of corrald's {c - f:+.2f}s over the floor: OVMF (firmware, UEFI boot path) {o - f:+.2f}s, "
                         f"corrald itself {c - o:+.2f}s")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--execs", type=int, default=20, help="`true` runs per VM for the exec latency")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--boot-timeout", type=float, default=300)
    ap.add_argument("--no-lxd", action="store_true", help="do not probe the real LXD")
    ap.add_argument("--json", help="also write every figure here")
    args = ap.parse_args()
    variants = [v for v in VARIANTS if v in args.variants.split(",")]
    from corral.image.vmbuild import build_vm_image
    from corral.instance.drivers import qemuhost
    from corral.instance.drivers.base import DriverError
    try:
        qemuhost.qemu_binary()
        qemuhost.firmware(False)
    except DriverError as e:
        sys.exit(f"bench/vm.py: {e.message}")
    host = {"runs": args.runs, "cores": os.cpu_count(), "load_start": list(os.getloadavg()),
            "other_qemu": qemu_count(), "qemu": qemuhost.qemu_version(), "accel": qemuhost.accelerator().name}
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    loads: list[float] = []
    corrald = image = None
    with interrupts():
        try:
            lxd_line = "LXD: not probed (--no-lxd)" if args.no_lxd else probe_lxd()
            say(lxd_line)
            image = private_copy(build_vm_image(log=say))
            if "corrald" in variants:
                say("starting corrald and importing the VM image ...")
                corrald = CorraldVMs(image, args.boot_timeout).start()
            for i in range(args.runs):
                order = variants[i % len(variants):] + variants[:i % len(variants)]
                for v in order:
                    say(f"run {i + 1}/{args.runs}: {v} (load {os.getloadavg()[0]:.2f}) ...")
                    loads.append(os.getloadavg()[0])
                    try:
                        r = corrald.run(args.execs) if v == "corrald" else run_hand(v, image, args.execs,
                                                                                      args.boot_timeout)
                        say(f"  agent-ready {r['boot']['agent']:.2f}s, 2nd boot {r['start']['agent']:.2f}s")
                    except Exception as e:  # noqa: BLE001 - one failed run is reported, the others go on
                        say(f"  failed: {e}")
                        r = {"error": str(e), "traceback": traceback.format_exc(),
                             **getattr(e, "diagnostics", {})}
                    r["load1"] = loads[-1]
                    runs[v].append(r)
        finally:
            shielded()
            if corrald is not None:
                say("cleaning up corrald ...")
                corrald.cleanup()
            if image is not None:
                shutil.rmtree(os.path.dirname(image.rootfs), ignore_errors=True)
    host["load_end"] = list(os.getloadavg())
    host["load_during"] = loads
    summary = summarise(runs)
    print(report(summary, host, lxd_line))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"host": host, "lxd": lxd_line, "summary": summary, "runs": runs}, f, indent=1, default=str)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        say("interrupted: everything made was removed")
        sys.exit(130)
