"""The harness itself: standalone corralds in their own network namespaces on one bridge, each on
its IP:8443, reachable from the others over HTTPS, and nothing left behind afterwards."""
import os

import pytest

from clusterlib import Cluster, leftovers, netns_pids, sh


def test_three_members_reach_each_other_over_https_and_leave_nothing_behind():
    c = Cluster()
    try:
        ms = c.add_members(3)
        assert len({m.ip for m in ms}) == 3 and len({m.ns for m in ms}) == 3
        assert len({m.dir for m in ms}) == 3
        for m in ms:
            assert m.running(), m.log_tail()
            assert oct(os.stat(m.dir).st_mode & 0o777) == "0o711"
            assert os.path.exists(m.socket)
            # the daemon runs inside its namespace: it is one of the namespace's processes
            assert m.pid in netns_pids(m.ns)
            # it listens on its own address, seen through the unix socket from the host
            root = m.request("GET", "/1.0").metadata
            assert root["config"]["core.https_address"] == m.address
            assert m.address in root["environment"]["addresses"]
            # the namespace has only its own interfaces (the host's eth0 is not there)
            addrs = sh("ip", "-n", m.ns, "-br", "addr").stdout
            assert m.ip in addrs and "192.0.2." not in addrs
        for src in ms:
            for dst in ms:
                if src is dst:
                    continue
                status, body = src.https_get(dst, "/1.0")
                assert status == 200, (src, dst, status, body)
                assert body["metadata"]["auth"] == "untrusted"
                assert body["metadata"]["api_version"] == "1.0"
        # a restart with the same dir keeps the member's state (its address)
        ms[1].kill9()
        assert not ms[1].running()
        status, _ = ms[0].https_get(ms[1], "/1.0", timeout=2)
        assert status != 200
        ms[1].start()
        assert ms[1].request("GET", "/1.0").metadata["config"]["core.https_address"] == ms[1].address
        assert ms[0].https_get(ms[1], "/1.0")[0] == 200
        res = ms[2].shutdown()
        assert res.returncode == 0, res.stderr
        assert ms[2].proc.returncode == 0
    finally:
        made = c.made()
        c.cleanup()
    assert made["netns"] and made["pids"] and made["dirs"]
    assert leftovers(made) == []
    assert made["bridge"] not in sh("ip", "-br", "link").stdout


def test_cleanup_after_a_half_made_cluster():
    """A member whose daemon cannot start (its dir is not writable) fails add_member(); cleanup still
    removes its namespace and veth, and the member made before it."""
    c = Cluster()
    try:
        c.add_member()
        m = c.new_member()
        m.env.update(CORRAL_DIR="/proc/corral-no-such-dir", LXD_DIR="/proc/corral-no-such-dir")
        with pytest.raises(AssertionError, match="exited|waitready failed"):
            m.start(timeout=10)
    finally:
        made = c.made()
        c.cleanup()
    assert len(made["netns"]) == 2
    assert leftovers(made) == []
