"""The reaper, run inside a fresh child process so only zombies made by the test are in play."""
import os
import time

from corral.reaper import Reaper


def _in_child(fn) -> int:
    """Run fn() in a forked child; its return value (0 = ok) becomes the exit code."""
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(fn())
        except BaseException:
            os._exit(99)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_reaper_takes_only_zombies_older_than_the_grace():
    def scenario() -> int:
        z = os.fork()
        if z == 0:
            os._exit(0)
        time.sleep(0.2)
        r = Reaper(grace=0.5)
        if r.sweep() != 0 or not os.path.exists(f"/proc/{z}"):   # first seen: an owner may still wait
            return 1
        time.sleep(0.6)
        if r.sweep() != 1 or os.path.exists(f"/proc/{z}"):
            return 2
        return 0
    assert _in_child(scenario) == 0


def test_owner_waits_first():
    def scenario() -> int:
        z = os.fork()
        if z == 0:
            os._exit(3)
        r = Reaper(grace=0.1)
        r.sweep()
        _, status = os.waitpid(z, 0)      # the owner reaps within the grace
        if os.waitstatus_to_exitcode(status) != 3:
            return 1
        time.sleep(0.2)
        return 0 if r.sweep() == 0 else 2
    assert _in_child(scenario) == 0
