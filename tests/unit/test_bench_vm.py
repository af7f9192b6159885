"""The VM benchmark's own logic (bench/vm.py, bench/vmboot.py), without QEMU: how a serial console log
is split into boot milestones, how the console logfile is followed across a VM's restarts, the
quantiles, and the report's ratios and goal line."""
from __future__ import annotations

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))

import vm  # noqa: E402
from vmboot import ConsoleTail, now  # noqa: E402


@pytest.fixture
def tail(tmp_path):
    t = ConsoleTail(str(tmp_path / "never-written.log"))
    yield t
    t.close()


def test_milestones_from_console_lines(tail):
    t0 = 100.0
    tail.lines = [
        (104.0, "BdsDxe: starting Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)/Pci(0x2,0x2)/Pci(0x0,0x0)"),
        (108.0, "EFI stub: Loaded initrd from LINUX_EFI_INITRD_MEDIA_GUID device path"),
        # printed when the console came up, long after the kernel's clock started: not its start
        (109.5, "[    0.000000] Linux version 6.1.0"),
        (109.5, "[    0.004000] buffered early line"),
        (109.6, "[    0.600000] Freeing SMP alternatives memory: 36K"),   # clock 0 at 109.0
        (110.0, "[    0.900000] another line"),                          # 109.1: later, ignored by min()
        (111.0, "[    2.000000] Run /init as init process"),
        (111.2, "corral-init: initramfs 2.2"),
        (112.5, "corral-init: userspace 3.5"),
        (130.0, "[   21.000000] reboot: Power down"),
    ]
    m = tail.milestones(t0)
    assert m["console"] == pytest.approx(4.0)
    assert m["bds"] == pytest.approx(4.0) and m["stub"] == pytest.approx(8.0)
    assert m["kernel"] == pytest.approx(9.0)
    assert m["init"] == pytest.approx(11.0) and m["userspace"] == pytest.approx(12.5)
    assert m["power_down"] == pytest.approx(30.0)
    assert tail.first(r"no such line", t0) is None


def test_milestones_of_an_empty_console(tail):
    assert tail.milestones(now()) == {"console": None, "bds": None, "stub": None, "kernel": None, "init": None,
                                      "userspace": None, "power_down": None}


def wait_until(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_tail_skips_the_old_log_and_follows_the_new_one(tmp_path):
    path = tmp_path / "console.log"
    path.write_text("old boot line\n")
    t = ConsoleTail(str(path))
    try:
        time.sleep(0.1)
        assert t.lines == []                       # the log of an earlier boot is not this boot's
        path.unlink()                              # what corrald does before QEMU starts again
        with open(path, "w") as f:
            f.write("first ")
            f.flush()
            time.sleep(0.1)
            f.write("line\r\nsecond line\n")       # a line split over two writes, CRLF from the guest
        wait_until(lambda: len(t.lines) == 2)
        assert [ln for _, ln in t.lines] == ["first line", "second line"]
        assert t.lines[0][0] <= t.lines[1][0] <= now()
    finally:
        t.close()


def test_quantiles():
    xs = [float(i) for i in range(1, 11)]
    assert vm.pctl(xs, 0.9) == 9.0 and vm.pctl(xs, 0.5) == 5.0 and vm.pctl(xs, 1.0) == 10.0
    assert vm.pctl([], 0.9) is None
    assert vm.med([3.0, None, 1.0, 2.0, 10.0]) == 2.5 and vm.med([None]) is None


def summary(agent: float, **kw) -> dict:
    s = {k: None for k in ("launch_returned_s", "running_s", "lease_s", "qemu_started_s", "start_agent_ready_s",
                           "exec_median_ms", "exec_p90_ms", "stop_s", "stop_force_s", "rss_mib", "pss_mib", "qemu_cpu_s",
                           "corrald_cpu_s", "list_booting_ms")}
    s.update(runs_ok=3, runs_failed=0, agent_ready_s=agent, stop_clean=[True, True, True],
             timeline={"console": None, "bds": None, "stub": None, "kernel": None, "init": None, "userspace": None,
                       "agent": None}, **kw)
    return s


HOST = {"runs": 3, "qemu": "7.2.22", "accel": "tcg", "cores": 2, "load_start": [4.0, 3.0, 2.0],
        "load_end": [5.0, 4.0, 3.0], "other_qemu": 2}


def test_report_ratios_goal_and_split():
    out = vm.report({"corrald": summary(15.0, exec_median_ms=40.0), "ovmf": summary(12.0),
                     "floor": summary(8.0, exec_median_ms=20.0)}, HOST, "LXD 5.0.2: cannot run VMs on this host: X")
    assert "LXD 5.0.2: cannot run VMs on this host: X" in out
    assert "4.00/3.00/2.00 at the start" in out and "other QEMU processes on the host at the start: 2" in out
    row = next(ln for ln in out.splitlines() if ln.startswith("launch -> agent-ready"))
    assert row.split()[-4:] == ["12.00", "8.00", "1.88x", "1.25x"]
    row = next(ln for ln in out.splitlines() if ln.startswith("exec `true` median"))
    assert row.split()[-4:] == ["-", "20.0", "2.00x", "-"]
    assert "corrald 15.00s / floor 8.00s = 1.88x: met" in out
    assert "OVMF (firmware, UEFI boot path) +4.00s, corrald itself +3.00s" in out


def test_report_goal_missed_and_failures():
    s = summary(20.0)
    s["runs_failed"], s["stop_clean"] = 1, [True, False]
    out = vm.report({"corrald": s, "floor": summary(8.0)}, HOST, "LXD: not probed (--no-lxd)")
    assert "= 2.50x: NOT met" in out
    assert "corrald: 1 of 4 runs failed" in out
    assert "did not power the guest off cleanly in 1 runs" in out
