"""corral/instance/drivers/fake.py: the in-memory instance driver of mock mode."""
import os

import pytest

from corral.instance.drivers import DRIVERS, get_driver
from corral.instance.drivers.base import DriverError, InstanceSpec
from corral.instance.drivers.fake import FakeDriver


@pytest.fixture
def drv(tmp_path):
    return FakeDriver(str(tmp_path / "containers"), logpath=str(tmp_path / "logs"))


def spec(tmp_path, name="c1") -> InstanceSpec:
    vol = tmp_path / "pool" / "containers" / name
    (vol / "rootfs").mkdir(parents=True, exist_ok=True)
    logs = tmp_path / "logs" / name
    return InstanceSpec(name=name, rootfs=str(vol / "rootfs"), log_file=str(logs / "lxc.log"),
                        console_log_file=str(logs / "console.log"))


def test_registered_by_name():
    assert get_driver("fake") is FakeDriver and DRIVERS["fake"] is FakeDriver


def test_power_cycle_and_layout_link(drv, tmp_path):
    s = spec(tmp_path)
    assert drv.status("c1") == "Stopped"
    drv.start(s)
    assert drv.status("c1") == "Running" and drv.list_running() == ["c1"]
    assert os.readlink(os.path.join(drv.lxcpath, "c1")) == os.path.dirname(s.rootfs)
    with pytest.raises(DriverError, match="already running"):
        drv.start(s)
    with pytest.raises(DriverError, match="is running"):
        drv.delete("c1")
    drv.freeze("c1")
    assert drv.state("c1")["status_code"] == 110
    with pytest.raises(DriverError, match="not running"):
        drv.freeze("c1")
    drv.unfreeze("c1")
    drv.stop("c1")
    assert drv.status("c1") == "Stopped" and drv.state("c1")["pid"] == 0
    with pytest.raises(DriverError, match="not running"):
        drv.stop("c1")
    assert drv.list_defined() == ["c1"]
    drv.delete("c1")
    assert drv.list_defined() == [] and not os.path.lexists(os.path.join(drv.lxcpath, "c1"))


def test_start_needs_the_rootfs(drv, tmp_path):
    s = spec(tmp_path)
    os.rmdir(s.rootfs)
    with pytest.raises(DriverError, match="rootfs"):
        drv.start(s)
    assert drv.status("c1") == "Stopped"


def test_exec_runs_nothing_and_exits_cleanly(drv, tmp_path):
    with pytest.raises(DriverError, match="not running"):
        drv.exec("c1", ["true"], {})
    drv.start(spec(tmp_path))
    p = drv.exec("c1", ["sh", "-c", "echo hi; exit 3"], {})
    os.write(p.stdin, b"ignored")
    assert os.read(p.stdout, 10) == b"" and os.read(p.stderr, 10) == b""
    assert p.wait() == 0
    for fd in (p.stdin, p.stdout, p.stderr):
        os.close(fd)
    p = drv.exec("c1", ["sleep", "1"], {})
    p.kill(9)
    assert p.wait() == 137
    for fd in (p.stdin, p.stdout, p.stderr):
        os.close(fd)
    p = drv.exec("c1", ["sh"], {}, interactive=True, width=100, height=30)
    assert p.pty is not None and p.size == (100, 30) and p.wait() == 0
    os.close(p.pty)
    with pytest.raises(DriverError, match="Empty command"):
        drv.exec("c1", [], {})


def test_console_and_limits(drv, tmp_path):
    s = spec(tmp_path)
    drv.start(s)
    fd = drv.console("c1")
    os.write(fd, b"x")
    os.close(fd)
    drv.apply_limits("c1", {"limits.memory": "64MiB", "user.x": "1"})
    assert drv.limits("c1") == {"limits.memory": "64MiB"}
    assert drv.console_log("c1") == b""
    with open(s.console_log_file, "wb") as f:
        f.write(b"boot\n")
    assert drv.console_log("c1") == b"boot\n"
    drv.stop("c1")
    with pytest.raises(DriverError):
        drv.console("c1")
