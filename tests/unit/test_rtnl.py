"""The minimal rtnetlink reader of instance network state (corral/instance/drivers/rtnl.py) reads
what pyroute2 reads, here in this process's own network namespace (root: setns)."""
import os
import subprocess

import pytest
from pyroute2 import IPRoute

from corral.instance.drivers import netstate, rtnl

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="setns needs root")


def test_links_and_addresses_match_pyroute2():
    sock = rtnl.NetnsSocket(os.getpid())
    try:
        with IPRoute() as ipr:
            for _ in range(3):   # other processes may add or remove links in between: retry
                mine = {link.index: link for link in sock.links()}
                theirs = {link["index"]: link for link in ipr.get_links()}
                if mine.keys() == theirs.keys():
                    break
            assert mine.keys() == theirs.keys()
            for index, t in theirs.items():
                m = mine[index]
                info = t.get_attr("IFLA_LINKINFO")
                assert (m.name, m.mtu, m.address, m.operstate, m.flags, m.link) == (
                    t.get_attr("IFLA_IFNAME"), t.get_attr("IFLA_MTU"), t.get_attr("IFLA_ADDRESS") or "",
                    t.get_attr("IFLA_OPERSTATE"), t["flags"], t.get_attr("IFLA_LINK") or 0)
                assert m.kind == (info.get_attr("IFLA_INFO_KIND") if info is not None else None)
                assert set(m.stats) == set(rtnl.STATS64)
            addrs = sorted((a.index, a.family, a.prefixlen, a.address) for a in sock.addrs())
            expected = sorted((a["index"], a["family"], a["prefixlen"], a.get_attr("IFA_LOCAL") or a.get_attr("IFA_ADDRESS"))
                              for a in ipr.get_addr())
            assert addrs == expected
    finally:
        sock.close()


def test_another_netns_in_the_state_shape_and_the_thread_stays_in_its_own():
    before = os.readlink("/proc/thread-self/ns/net")
    proc = subprocess.Popen(["unshare", "-n", "sh", "-c", "ip link set lo up && echo up && exec sleep 30"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "up\n"
        assert os.readlink(f"/proc/{proc.pid}/ns/net") != before
        sock = rtnl.NetnsSocket(proc.pid)
        try:
            interfaces, peers = netstate._interfaces(sock)
        finally:
            sock.close()
    finally:
        proc.kill()
        proc.wait()
    assert os.readlink("/proc/thread-self/ns/net") == before
    assert list(interfaces) == ["lo"] and peers == {}   # a new netns has only its loopback
    lo = interfaces["lo"]
    assert lo["type"] == "loopback" and lo["hwaddr"] == "" and lo["mtu"] == 65536 and lo["state"] == "up"
    assert {"family": "inet", "address": "127.0.0.1", "netmask": "8", "scope": "local"} in lo["addresses"]
    assert set(lo["counters"]) == {"bytes_received", "bytes_sent", "packets_received", "packets_sent",
                                   "errors_received", "errors_sent", "packets_dropped_outbound",
                                   "packets_dropped_inbound"}


def test_a_gone_process_is_an_error():
    with pytest.raises(OSError):
        rtnl.NetnsSocket(2 ** 22 + 12345)
