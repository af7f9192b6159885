"""Issue 9, finding 8: what a crashed daemon (kill -9) leaves behind is reconciled at start.

- kill -9 while a snapshot of a running container is being copied (the container is frozen for a
  consistent copy): after the restart the container runs again (thawed), the half-made snapshot is
  gone, and /1.0/warnings says what was done.
- a deletion interrupted after the record was removed leaves the instance's files (its volume,
  snapshots, `logs/<name>/`, `backups/instances/<name>/`): they are removed and reported.
- a container the user paused stays paused across a kill -9 (only what the daemon froze is thawed).
"""
import os
import shutil
import time

import lxc

from helpers import unique, wait_for

MANY_FILES = "mkdir -p /many && cd /many && seq 1 30000 | xargs touch"


def status(d, c: str) -> str:
    return d.get(f"/1.0/instances/{c}").metadata["status"]


def liblxc_state(d, c: str) -> str:
    return lxc.Container(c, config_path=os.path.join(d.dir, "containers")).state


def warnings(d) -> list[dict]:
    return d.get("/1.0/warnings?recursion=1").metadata


def orphans_gone(pgid: int) -> bool:
    """No process is left in the killed daemon's process group (e.g. the `cp` of the snapshot,
    which goes on writing after its parent died and would race the restarted daemon's cleanup)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return False
    return True


def kill_while_frozen(d, c: str, attempts: int = 5) -> str:
    """Start a snapshot of running container c and kill -9 the daemon while c is frozen for it.
    The state is checked again after the kill (nothing can thaw c then): an attempt whose copy
    finished before the kill is retried with a new snapshot. Returns the snapshot's name."""
    for n in range(attempts):
        snap = f"crash{n}"
        pgid = d.proc.pid
        r = d.request("POST", f"/1.0/instances/{c}/snapshots", {"name": snap})
        assert r.status == 202, r.body
        deadline = time.monotonic() + 60
        while liblxc_state(d, c) != "FROZEN" and time.monotonic() < deadline:
            time.sleep(0.005)
        d.kill9()
        wait_for(lambda: orphans_gone(pgid), timeout=60)
        if liblxc_state(d, c) == "FROZEN":
            return snap
        d.stop()
        d.start()
    raise AssertionError(f"the snapshot copy never outlasted the poll in {attempts} attempts")


def test_kill9_during_snapshot_thaws_the_container(fresh_host):
    d = fresh_host
    c = unique("c")
    d.lxc("launch", "busybox", c)
    d.lxc("exec", c, "--", "sh", "-c", MANY_FILES)
    snap = kill_while_frozen(d, c)
    d.stop()
    assert liblxc_state(d, c) == "FROZEN"   # as the crash left it
    d.start()
    assert status(d, c) == "Running"
    assert liblxc_state(d, c) == "RUNNING"
    assert d.lxc("exec", c, "--", "echo", "alive").stdout == "alive\n"
    thawed = [w for w in warnings(d) if w["type"] == "Instance unfrozen after a crash"]
    assert len(thawed) == 1 and f'"{c}"' in thawed[0]["last_message"], warnings(d)
    assert thawed[0]["entity_url"] == f"/1.0/instances/{c}"
    # the half-made snapshot is not recorded and not on disk (storage reconciliation)
    assert d.get(f"/1.0/instances/{c}/snapshots").metadata == []
    sdir = os.path.join(d.dir, "storage-pools", "default", "containers-snapshots", c)
    assert not [e for e in (os.listdir(sdir) if os.path.isdir(sdir) else []) if e.startswith(snap)]
    assert not os.listdir(os.path.join(d.dir, "markers"))
    # a second restart finds nothing more to do: no new warning
    d.kill9()
    d.start()
    assert [w["count"] for w in warnings(d) if w["type"] == "Instance unfrozen after a crash"] == [1]
    # and snapshots of the thawed container work
    d.lxc("snapshot", c, "after")
    assert status(d, c) == "Running"


def test_a_paused_container_stays_paused_across_a_crash(fresh_host):
    d = fresh_host
    c = unique("c")
    d.lxc("launch", "busybox", c)
    d.lxc("pause", c)
    d.kill9()
    d.start()
    assert status(d, c) == "Frozen"
    assert not [w for w in warnings(d) if w["type"] == "Instance unfrozen after a crash"]
    d.lxc("start", c)   # lxc start resumes a paused container
    wait_for(lambda: status(d, c) == "Running")


def test_interrupted_delete_leftovers_are_removed_and_reported(fresh_host, tmp_path):
    """The state `lxc delete` leaves when killed after removing the record (the order is: liblxc's
    definition, the record, then the volume, snapshots, logs, backups): replayed exactly by saving
    those files before a real delete and putting them back, then killing the daemon."""
    d = fresh_host
    c, keep = unique("c"), unique("c")
    d.lxc("launch", "busybox", c)
    d.lxc("launch", "busybox", keep)
    d.lxc("snapshot", c, "s0")
    r = d.request("POST", f"/1.0/instances/{c}/backups", {"name": "b0"})
    assert d.wait_op(r)["status"] == "Success"
    d.lxc("stop", "-f", c)
    pool = os.path.join(d.dir, "storage-pools", "default")
    left = {"volume": os.path.join(pool, "containers", c),
            "snapshots": os.path.join(pool, "containers-snapshots", c),
            "logs": os.path.join(d.dir, "logs", c),
            "backups": os.path.join(d.dir, "backups", "instances", c)}
    for k, p in left.items():
        assert os.path.isdir(p), k
        shutil.copytree(p, tmp_path / k, symlinks=True)
    # the delete removes the volume's backup.yaml before the record (what recover would read)
    os.unlink(tmp_path / "volume" / "backup.yaml")
    d.lxc("delete", c)
    for k, p in left.items():
        assert not os.path.exists(p), k
        shutil.copytree(tmp_path / k, p, symlinks=True)
    d.kill9()
    d.start()
    for k, p in left.items():
        assert not os.path.exists(p), k
    msgs = [w["last_message"] for w in warnings(d)]
    assert any(f'logs/{c}"' in m for m in msgs), msgs
    assert any(f'backups/instances/{c}"' in m for m in msgs), msgs
    assert any(f'unrecorded container volume "{c}"' in m for m in msgs), msgs
    assert any(f'unrecorded snapshot "{c}/s0"' in m for m in msgs), msgs
    # the instance that still exists keeps everything and keeps running
    assert status(d, keep) == "Running"
    assert os.path.isdir(os.path.join(d.dir, "logs", keep))
    assert not [m for m in msgs if keep in m]
    # and the name can be used again
    d.lxc("launch", "busybox", c)
    assert status(d, c) == "Running"


def test_kill9_during_delete(fresh_host):
    """A real kill -9 during `lxc delete`, once the record is gone and the volume is being removed
    (30000 files take a while): the rest (volume, logs/<name>/) is removed at the next start."""
    d = fresh_host
    c = unique("c")
    d.lxc("launch", "busybox", c)
    d.lxc("exec", c, "--", "sh", "-c", MANY_FILES)
    d.lxc("stop", "-f", c)
    vol = os.path.join(d.dir, "storage-pools", "default", "containers", c)
    logs = os.path.join(d.dir, "logs", c)
    for n in range(5):
        r = d.request("DELETE", f"/1.0/instances/{c}")
        assert r.status == 202, r.body
        deadline = time.monotonic() + 60
        while d.get(f"/1.0/instances/{c}").status != 404 and time.monotonic() < deadline:
            time.sleep(0.005)
        d.kill9()
        if os.path.isdir(logs):   # killed before the delete got to the logs (checked after the kill)
            break
        d.start()   # the delete finished before the kill: again with a new instance
        d.lxc("launch", "busybox", c)
        d.lxc("exec", c, "--", "sh", "-c", MANY_FILES)
        d.lxc("stop", "-f", c)
    else:
        raise AssertionError("the delete never outlasted the poll in 5 attempts")
    d.stop()
    d.start()
    assert not os.path.exists(logs) and not os.path.exists(vol)
    assert d.get(f"/1.0/instances/{c}").status == 404
    msgs = [w["last_message"] for w in warnings(d)]
    assert any(f'logs/{c}"' in m for m in msgs), msgs


def test_leftover_liblxc_definition_is_removed(fresh_host):
    """A liblxc definition (containers/<name>/config) with no instance record is removed."""
    d = fresh_host
    c, ghost = unique("c"), unique("c")
    d.lxc("init", "busybox", c)
    d.kill9()
    lxcdir = os.path.join(d.dir, "containers")
    shutil.copytree(os.path.join(lxcdir, c), os.path.join(lxcdir, ghost))
    d.start()
    assert not os.path.exists(os.path.join(lxcdir, ghost))
    assert os.path.isdir(os.path.join(lxcdir, c))
    assert any(f'"{ghost}"' in w["last_message"] for w in warnings(d))
