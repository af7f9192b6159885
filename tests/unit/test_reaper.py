import os
import time

from corral.reaper import Reaper


def test_reaper_takes_only_zombies_older_than_the_grace():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    time.sleep(0.2)
    r = Reaper(grace=0.5)
    assert r.sweep() == 0                 # first seen now: an owner may still wait for it
    assert os.path.exists(f"/proc/{pid}")
    time.sleep(0.6)
    assert r.sweep() == 1
    assert not os.path.exists(f"/proc/{pid}")


def test_owner_waits_first():
    pid = os.fork()
    if pid == 0:
        os._exit(3)
    r = Reaper(grace=0.1)
    r.sweep()
    _, status = os.waitpid(pid, 0)        # the owner reaps within the grace
    assert os.waitstatus_to_exitcode(status) == 3
    time.sleep(0.2)
    assert r.sweep() == 0
