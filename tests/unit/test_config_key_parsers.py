"""raw.lxc checks (old names, liblxc), snapshot schedules and names, raw.idmap, dnsmasq's IPv6 args."""
import ipaddress
from datetime import datetime

import pytest

from corral.config.rawlxc import OLD_NAMES, parse_raw_lxc, renamed
from corral.config.schedule import due, next_snapshot_name, parse_schedule, parse_snapshot_pattern, render_pattern
from corral.idmap import IdmapEntry
from corral import rawidmap
from corral.network import dnsmasq


@pytest.mark.parametrize("old", sorted(OLD_NAMES))
def test_every_old_liblxc_name_is_refused_with_the_new_one(old):
    with pytest.raises(ValueError) as e:
        parse_raw_lxc(f"{old} = 1")
    assert "before LXC 2.1" in str(e.value) and (OLD_NAMES[old] or "removed") in str(e.value)


def test_old_network_and_limit_names():
    assert renamed("lxc.network.0.link") == "lxc.net.0.link"
    assert renamed("lxc.network.1.ipv4") == "lxc.net.1.ipv4.address"
    assert renamed("lxc.network.type") == "lxc.net.[i].type"
    assert renamed("lxc.limit.nofile") == "lxc.prlimit.nofile"
    assert renamed("lxc.uts.name") is None


def test_liblxc_decides_the_rest():
    assert parse_raw_lxc("lxc.uts.name = x\n# comment\n\nlxc.cgroup2.memory.max = 1G")
    for bad in ("lxc.nosuch = 1", "lxc.tty.max = lots", "lxc.idmap = u 0 bad"):
        with pytest.raises(ValueError, match="liblxc refuses"):
            parse_raw_lxc(bad)
    with pytest.raises(ValueError, match="interface-specific"):
        parse_raw_lxc("lxc.net.0.type = veth")
    assert parse_raw_lxc("lxc.net.0.ipv4.address = 10.0.0.2/24")


def test_schedules():
    assert parse_schedule("@daily, */5 * * * *")
    for bad in ("* * *", "61 * * * *", "@sometimes"):
        with pytest.raises(ValueError):
            parse_schedule(bad)
    assert due("*/5 * * * *", datetime(2026, 1, 1, 10, 15, 30)) and not due("*/5 * * * *", datetime(2026, 1, 1, 10, 16))
    assert due("@hourly", datetime(2026, 1, 1, 10, 0)) and not due("@hourly", datetime(2026, 1, 1, 10, 1))
    assert due("@weekly", datetime(2026, 1, 4, 0, 0))   # a Sunday


def test_snapshot_names_as_lxd():
    when = datetime(2026, 3, 4, 5, 6, 7)
    assert render_pattern("s-{{ creation_date|date:'2006-01-02_15-04-05' }}", when) == "s-2026-03-04_05-06-07"
    assert render_pattern('{{creation_date|date:"Jan 02 06"}}', when) == "Mar 04 26"
    assert next_snapshot_name("snap%d", set()) == "snap0"
    assert next_snapshot_name("snap%d", {"snap0", "snap4"}) == "snap5"     # highest + 1, as LXD
    assert next_snapshot_name("daily", {"daily"}) == "daily-0"
    assert next_snapshot_name("daily", {"daily", "daily-0"}) == "daily-1"
    for bad in ("a%db%d", "{{ other }}", "has space"):
        with pytest.raises(ValueError):
            parse_snapshot_pattern(bad)


def test_raw_idmap_cuts_the_map(tmp_path):
    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    for p in (subuid, subgid):
        p.write_text("root:100000:65536\nroot:1000:1\n")
    base = [IdmapEntry(True, False, 100000, 0, 65536), IdmapEntry(False, True, 100000, 0, 65536)]
    out = rawidmap.apply(base, "uid 1000 1000", str(subuid), str(subgid))
    uids = [(e.nsid, e.hostid, e.maprange) for e in out if e.isuid]
    assert uids == [(0, 100000, 1000), (1000, 1000, 1), (1001, 101001, 64535)]
    assert [(e.nsid, e.hostid, e.maprange) for e in out if e.isgid] == [(0, 100000, 65536)]
    with pytest.raises(Exception, match="root:2000:1"):
        rawidmap.apply(base, "both 2000 0", str(subuid), str(subgid))
    with pytest.raises(ValueError, match="line 2"):
        rawidmap.parse("uid 1 1\nuid 1-3 1-2")


def test_dnsmasq_ipv6_ranges():
    v6 = ipaddress.IPv6Interface("fd00:1::1/64")
    common = dict(bridge="br0", netdir="/x", ipv4=None, ipv6=v6, dhcp4=True, dhcp6=True, ranges=None,
                  expiry="1h", domain="lxd", dns_mode="managed")
    args = dnsmasq.build_args(**common)
    assert "--enable-ra" in args and "::,constructor:br0,ra-stateless,ra-names" in args
    args = dnsmasq.build_args(**common, dhcp6_stateful=True, expiry6="3h")
    assert "fd00:1::2,fd00:1::ffff:ffff:ffff:ffff,64,3h" in args and "--dhcp-leasefile=/x/dnsmasq.leases" in args
    args = dnsmasq.build_args(**common, dhcp6_stateful=True, ranges6=[("fd00:1::10", "fd00:1::20")])
    assert "fd00:1::10,fd00:1::20,64,1h" in args
    assert "::,constructor:br0,ra-only" in dnsmasq.build_args(**{**common, "dhcp6": False})
