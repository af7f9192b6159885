"""Networks: config validation, subnet choice, dnsmasq arguments, nftables rendering, proxy
addresses, the driver registry and its fake (no host work here)."""
import asyncio
import ipaddress
import random

import pytest

from corral.config import network as netcfg
from corral.config.keys import ConfigError
from corral.errors import BadRequest, NotImplementedFeature
from corral.network import DRIVERS, driver_class
from corral.network import dnsmasq, nft
from corral.network.drivers.bridge import BridgeDriver, read_leases
from corral.network.drivers.fake import FakeDriver
from corral.network.drivers.base import NetworkError
from corral.network.proxy import ProxyAddressError, check_pair, parse_address
from corral.network.subnets import overlaps, pick_ipv4, pick_ipv6


def test_registry_and_unknown_types():
    assert set(DRIVERS) == {"bridge", "macvlan"}
    assert driver_class("bridge") is BridgeDriver
    with pytest.raises(NotImplementedFeature):
        driver_class("ovn")
    with pytest.raises(BadRequest, match='Unknown network type "nope"'):
        driver_class("nope")


@pytest.mark.parametrize("config, text", [
    ({"foo": "1"}, "Invalid network configuration key: foo"),
    ({"ipv4.address": "10.0.0.1"}, "missing prefix"),
    ({"ipv4.address": "10.0.0.0/24"}, "network or broadcast"),
    ({"ipv4.address": "300.0.0.1/24"}, "Invalid CIDR"),
    ({"ipv4.nat": "perhaps"}, "ipv4.nat"),
    ({"bridge.mtu": "20"}, "bridge.mtu"),
    ({"bridge.hwaddr": "zz:00"}, "bridge.hwaddr"),
    ({"tunnel.a.b.c": "x"}, "Invalid network configuration key"),
    ({"tunnel.t.bogus": "x"}, "Invalid network configuration key: tunnel.t.bogus"),
    ({"tunnel.t.id": "99999999"}, "tunnel.t.id"),
])
def test_bridge_config_refused(config, text):
    with pytest.raises(ConfigError, match=text):
        BridgeDriver.validate("br", config)


def test_bridge_config_rules():
    with pytest.raises(NetworkError, match="remote"):
        BridgeDriver.validate("br", {"tunnel.t.protocol": "vxlan", "tunnel.t.id": "1"})
    with pytest.raises(ConfigError, match="too long for tunnel"):
        BridgeDriver.validate("bridgename12", {"tunnel.tun.protocol": "vxlan"})
    with pytest.raises(NetworkError, match="outside"):
        BridgeDriver.validate("br", {"ipv4.address": "10.5.0.1/24", "ipv4.dhcp.ranges": "10.6.0.2-10.6.0.9"})
    with pytest.raises(NotImplementedFeature):
        BridgeDriver.validate("br", {"bridge.driver": "openvswitch"})
    ok = BridgeDriver.validate("br", {"ipv4.address": "10.5.0.1/24", "ipv4.nat": True, "user.x": "y",
                                      "tunnel.t.protocol": "vxlan", "tunnel.t.remote": "10.1.1.1"})
    assert ok["ipv4.nat"] == "true"
    assert netcfg.tunnels(ok) == {"t": {"protocol": "vxlan", "remote": "10.1.1.1"}}


def test_fill_picks_auto_subnets_around_used_ones():
    used = [ipaddress.ip_network("10.0.0.0/9")]
    cfg = BridgeDriver.fill("br", {}, used)
    v4 = ipaddress.ip_interface(cfg["ipv4.address"])
    assert v4.network.prefixlen == 24 and not v4.network.overlaps(used[0]) and v4.ip == v4.network.network_address + 1
    assert cfg["ipv4.nat"] == "true" and cfg["ipv6.address"] == "none"
    cfg6 = BridgeDriver.fill("br", {"ipv4.address": "none", "ipv6.address": "auto"}, [])
    assert ipaddress.ip_interface(cfg6["ipv6.address"]).network.prefixlen == 64 and "ipv4.nat" not in cfg6


def test_subnet_choice_is_never_an_overlap():
    rng = random.Random(1)
    used = [ipaddress.ip_network(f"10.{i}.0.0/16") for i in range(255)]
    got = pick_ipv4(used, rng)
    assert got.network.subnet_of(ipaddress.ip_network("10.255.0.0/16"))
    with pytest.raises(ValueError):
        pick_ipv4([ipaddress.ip_network("10.0.0.0/8")], rng, attempts=50)
    assert overlaps(ipaddress.ip_network("10.1.2.0/24"), [ipaddress.ip_network("0.0.0.0/0")]) is None
    assert pick_ipv6([], rng).network.network_address.exploded.startswith("fd42:")


def test_dnsmasq_arguments():
    args = dnsmasq.build_args(bridge="br0", netdir="/n", ipv4=ipaddress.IPv4Interface("10.9.8.1/24"), ipv6=None,
                              dhcp4=True, dhcp6=True, ranges=None, expiry="1h", domain="lxd", dns_mode="managed")
    assert "--keep-in-foreground" in args and "--interface=br0" in args and "--listen-address=10.9.8.1" in args
    assert args[args.index("--dhcp-range") + 1] == "10.9.8.2,10.9.8.254,1h"
    assert "--dhcp-hostsfile=/n/dnsmasq.hosts" in args and "-S" in args and "/lxd/" in args
    args = dnsmasq.build_args(bridge="br0", netdir="/n", ipv4=ipaddress.IPv4Interface("10.9.8.1/24"),
                              ipv6=ipaddress.IPv6Interface("fd42::1/64"), dhcp4=True, dhcp6=True,
                              ranges=[("10.9.8.10", "10.9.8.20")], expiry="2h", domain="x", dns_mode="none")
    assert "10.9.8.10,10.9.8.20,2h" in args and "--enable-ra" in args and "--port=0" in args and "-s" not in args


def test_nft_ruleset():
    text = nft.render("br0", ipv4=ipaddress.IPv4Interface("10.9.8.1/24"), ipv6=None, nat4=True, nat6=False)
    assert text.startswith("table inet corral-br0 {")
    assert "ip saddr 10.9.8.0/24 ip daddr != 10.9.8.0/24 masquerade" in text
    assert "chain fwd.br0" in text and 'iifname "br0" udp dport 67 accept' in text
    text = nft.render("br0", ipv4=ipaddress.IPv4Interface("10.9.8.1/24"), ipv6=None, nat4=False, nat6=False)
    assert "masquerade" not in text


def test_leases_file(tmp_path):
    f = tmp_path / "leases"
    f.write_text("1700000000 00:16:3e:aa:bb:cc 10.0.0.5 c1 01:00:16:3e:aa:bb:cc\n"
                 "duid 00:01:00:01\n1700000001 00:16:3E:00:00:01 10.0.0.6 * *\n")
    assert read_leases(str(f)) == [
        {"expiry": "1700000000", "hwaddr": "00:16:3e:aa:bb:cc", "address": "10.0.0.5", "hostname": "c1"},
        {"expiry": "1700000001", "hwaddr": "00:16:3e:00:00:01", "address": "10.0.0.6", "hostname": ""}]
    assert read_leases(str(tmp_path / "missing")) == []


def test_proxy_addresses():
    a = parse_address("tcp:0.0.0.0:8080-8082")
    assert (a.proto, a.host, a.ports) == ("tcp", "0.0.0.0", (8080, 8081, 8082))
    assert parse_address("udp:[::1]:53").host == "::1"
    assert parse_address("unix:/run/x.sock").path == "/run/x.sock"
    assert parse_address("unix:@abstract").path == "@abstract"
    for bad in ("tcp:1.2.3.4", "sctp:1.2.3.4:5", "tcp:nothost:80", "tcp:1.2.3.4:0", "unix:relative", "tcp:1.2.3.4:9-3"):
        with pytest.raises(ProxyAddressError):
            parse_address(bad)
    check_pair(parse_address("tcp:1.2.3.4:80-81"), parse_address("tcp:127.0.0.1:90"))
    with pytest.raises(ProxyAddressError):
        check_pair(parse_address("udp:1.2.3.4:80"), parse_address("tcp:127.0.0.1:90"))
    with pytest.raises(ProxyAddressError):
        check_pair(parse_address("tcp:1.2.3.4:80-82"), parse_address("tcp:127.0.0.1:90-91"))


def test_fake_driver_records_lifecycle(tmp_path):
    FakeDriver.calls = []
    cfg = FakeDriver.fill("f0", FakeDriver.validate("f0", {}), [ipaddress.ip_network("10.0.0.0/9")])
    drv = FakeDriver("f0", cfg, str(tmp_path))

    async def go():
        await drv.start()
        await drv.update({**cfg, "ipv4.nat": "true"})
        st = await drv.state()
        await drv.delete()
        return st
    st = asyncio.run(go())
    assert FakeDriver.calls == [("start", "f0"), ("update", "f0"), ("delete", "f0")]
    assert drv.config["ipv4.nat"] == "true" and set(st) >= {"addresses", "counters", "bridge"}
    assert drv.subnets() == [ipaddress.ip_interface(cfg["ipv4.address"]).network]
