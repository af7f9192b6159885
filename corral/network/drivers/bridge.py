"""`bridge` networks: a Linux bridge with its addresses, an nftables table (NAT, filtering),
VXLAN tunnels and one supervised dnsmasq (DHCP, RA, DNS)."""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import re
import shutil

from corral.config import network as netcfg
from corral.config.keys import is_true
from corral.network import dnsmasq as dm
from corral.network import host, nft
from corral.network.drivers.base import NetworkDriver, NetworkError
from corral.network.netns import netns_inode
from corral.network.subnets import pick_ipv4, pick_ipv6

log = logging.getLogger(__name__)

TUNNEL_MTU = 1400


_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_ENTRY_KEY = re.compile(r"[^/.\x00-\x1f\x7f][^/\x00-\x1f\x7f]{0,254}")   # a file name in dnsmasq.hosts/


class BridgeDriver(NetworkDriver):
    type = "bridge"

    def __init__(self, name: str, config: dict[str, str], netdir: str):
        super().__init__(name, config, netdir)
        self.dnsmasq = dm.Dnsmasq(netdir, name)

    # ---- config -------------------------------------------------------------------------------

    @classmethod
    def validate(cls, name: str, config: dict) -> dict[str, str]:
        if len(name) > 15:
            raise NetworkError(f'Network name "{name}" is too long for an interface name (15 characters at most)', 400)
        out = netcfg.validate_network("bridge", name, config)
        for t, keys in netcfg.tunnels(out).items():
            if keys.get("protocol", "") != "vxlan":
                raise NetworkError(f'Tunnel "{t}": "tunnel.{t}.protocol" must be "vxlan"', 400)
            if not keys.get("remote") and not keys.get("group"):
                raise NetworkError(f'Tunnel "{t}": "tunnel.{t}.remote" or "tunnel.{t}.group" is required', 400)
        v4 = out.get("ipv4.address", "")
        if out.get("ipv4.dhcp.ranges") and v4 not in ("", "auto", "none"):
            net = ipaddress.IPv4Interface(v4).network
            for a, b in netcfg.parse_ipv4_ranges(out["ipv4.dhcp.ranges"]):
                if a not in net or b not in net:
                    raise NetworkError(f'Invalid value for network "{name}" option "ipv4.dhcp.ranges": '
                                       f'range {a}-{b} is outside {net}', 400)
        return out

    @classmethod
    def fill(cls, name: str, config: dict[str, str], used: list) -> dict[str, str]:
        out = dict(config)
        if out.get("ipv4.address", "") in ("", "auto"):
            out["ipv4.address"] = str(pick_ipv4(used))
            out.setdefault("ipv4.nat", "true")
        if out.get("ipv6.address", "") == "auto":
            out["ipv6.address"] = str(pick_ipv6(used))
            out.setdefault("ipv6.nat", "true")
        out.setdefault("ipv6.address", "none")
        return out

    @property
    def ipv4(self) -> ipaddress.IPv4Interface | None:
        v = self.config.get("ipv4.address", "")
        return ipaddress.IPv4Interface(v) if v not in ("", "none", "auto") else None

    @property
    def ipv6(self) -> ipaddress.IPv6Interface | None:
        v = self.config.get("ipv6.address", "")
        return ipaddress.IPv6Interface(v) if v not in ("", "none", "auto") else None

    def subnets(self):
        return [i.network for i in (self.ipv4, self.ipv6) if i is not None]

    def tunnel_names(self) -> dict[str, dict[str, str]]:
        return {f"{self.name}-{t}": keys for t, keys in netcfg.tunnels(self.config).items()}

    def mtu(self) -> int | None:
        if self.config.get("bridge.mtu"):
            return int(self.config["bridge.mtu"])
        return TUNNEL_MTU if self.tunnel_names() else None

    def nic_mtu(self) -> int | None:
        return self.mtu()

    def gateway_addresses(self) -> list[str]:
        return [str(i.ip) for i in (self.ipv4, self.ipv6) if i is not None]

    # ---- host work ----------------------------------------------------------------------------

    def _state_file(self) -> str:
        return os.path.join(self.netdir, "host.json")

    def _recorded(self) -> dict:
        try:
            with open(self._state_file()) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def _setup_host(self) -> None:
        os.makedirs(self.netdir, mode=0o711, exist_ok=True)
        os.chmod(self.netdir, 0o711)
        hosts_dir = os.path.join(self.netdir, "dnsmasq.hosts")
        os.makedirs(hosts_dir, mode=0o755, exist_ok=True)
        old = self._recorded()
        record = {"bridge": self.name, "tunnels": sorted(self.tunnel_names()), "nft_table": nft.table_name(self.name),
                  "netns": netns_inode(), "created_bridge": old.get("created_bridge", False)}
        # Record before creating, so a crash half-way still leaves a trail for clean-up.
        self._write_record({**record, "tunnels": sorted(set(record["tunnels"]) | set(old.get("tunnels", [])))})
        try:
            created = host.ensure_bridge(self.name, self.mtu(), self.config.get("bridge.hwaddr") or None)
        except host.HostError as e:
            raise NetworkError(str(e), 400) from None
        record["created_bridge"] = record["created_bridge"] or created
        for ext in netcfg.parse_ifnames(self.config.get("bridge.external_interfaces", "")):
            if not host.exists(ext):
                raise NetworkError(f'External interface "{ext}" not found', 400)
            host.enslave(ext, self.name)
        host.sync_addresses(self.name, [i for i in (self.ipv4, self.ipv6) if i is not None])
        if self.ipv4 is not None and is_true(self.config.get("ipv4.routing"), True):
            host.sysctl_set("net/ipv4/ip_forward", "1")
        if self.ipv6 is not None:
            host.sysctl_set(f"net/ipv6/conf/{self.name}/autoconf", "0")
            host.sysctl_set(f"net/ipv6/conf/{self.name}/accept_dad", "0")
            if is_true(self.config.get("ipv6.routing"), True):
                host.sysctl_set("net/ipv6/conf/all/forwarding", "1")
        wanted = self.tunnel_names()
        for stale in set(old.get("tunnels", [])) - set(wanted):
            host.delete_link(stale)
        for ifname, t in wanted.items():
            try:
                host.ensure_vxlan(ifname, self.name, int(t.get("id", "0")), local=t.get("local") or None,
                                  remote=t.get("remote") or None, group=t.get("group") or None,
                                  port=int(t.get("port") or 4789), ttl=int(t.get("ttl") or 1),
                                  dev=t.get("interface") or None, mtu=self.mtu())
            except host.HostError as e:
                raise NetworkError(f"Tunnel {ifname}: {e}", 400) from None
        definition = nft.render(
            self.name, ipv4=self.ipv4, ipv6=self.ipv6,
            nat4=is_true(self.config.get("ipv4.nat")), nat6=is_true(self.config.get("ipv6.nat")),
            nat4_address=self.config.get("ipv4.nat.address") or None,
            nat6_address=self.config.get("ipv6.nat.address") or None,
            dhcp4=is_true(self.config.get("ipv4.dhcp"), True), dns=self.config.get("dns.mode", "managed") != "none",
            firewall4=is_true(self.config.get("ipv4.firewall"), True),
            firewall6=is_true(self.config.get("ipv6.firewall"), True))
        nft.apply(self.name, definition)
        raw = self.config.get("raw.dnsmasq", "")
        with open(os.path.join(self.netdir, "dnsmasq.raw"), "w") as f:
            f.write(raw + ("\n" if raw and not raw.endswith("\n") else ""))
        os.chmod(os.path.join(self.netdir, "dnsmasq.raw"), 0o644)
        self._write_record(record)

    def _write_record(self, record: dict) -> None:
        tmp = self._state_file() + ".tmp"
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.replace(tmp, self._state_file())

    def _dnsmasq_args(self) -> list[str] | None:
        if self.ipv4 is None and self.ipv6 is None:
            return None
        ranges = None
        if self.config.get("ipv4.dhcp.ranges"):
            ranges = [(str(a), str(b)) for a, b in netcfg.parse_ipv4_ranges(self.config["ipv4.dhcp.ranges"])]
        ranges6 = None
        if self.config.get("ipv6.dhcp.ranges"):
            ranges6 = [(str(a), str(b)) for a, b in netcfg.parse_ipv6_ranges(self.config["ipv6.dhcp.ranges"])]
        return dm.build_args(bridge=self.name, netdir=self.netdir, ipv4=self.ipv4, ipv6=self.ipv6,
                             dhcp4=is_true(self.config.get("ipv4.dhcp"), True),
                             dhcp6=is_true(self.config.get("ipv6.dhcp"), True), ranges=ranges,
                             expiry=self.config.get("ipv4.dhcp.expiry") or "1h",
                             domain=self.config.get("dns.domain") or "lxd",
                             dns_mode=self.config.get("dns.mode") or "managed",
                             gateway=self.config.get("ipv4.dhcp.gateway") or None,
                             search=self.config.get("dns.search") or None,
                             dhcp6_stateful=is_true(self.config.get("ipv6.dhcp.stateful")), ranges6=ranges6,
                             expiry6=self.config.get("ipv6.dhcp.expiry") or "1h")

    async def start(self) -> None:
        if shutil.which(dm.DNSMASQ) is None or shutil.which("nft") is None:
            raise NetworkError("bridge networks need dnsmasq and nft on the host", 500)
        try:
            await asyncio.to_thread(self._setup_host)
        except nft.NftError as e:
            raise NetworkError(f"Failed to set up the firewall for {self.name}: {e}", 500) from None
        except OSError as e:
            raise NetworkError(f"Failed to set up network {self.name}: {e}", 500) from None
        args = self._dnsmasq_args()
        if args is None:
            await self.dnsmasq.stop()
            return
        if self.dnsmasq.running:
            if self.dnsmasq.args == args:
                self.dnsmasq.reload()
                return
            await self.dnsmasq.stop()
        elif self.dnsmasq.adopt():
            if self.dnsmasq.args == args:
                self.dnsmasq.reload()
                return
            await self.dnsmasq.stop()
        self.dnsmasq.start(args)

    async def update(self, config: dict[str, str]) -> None:
        old_v4, old_v6 = self.ipv4, self.ipv6
        self.config = dict(config)
        await self.start()
        if (old_v4, old_v6) != (self.ipv4, self.ipv6):
            # a renumbered subnet makes old leases wrong
            await self.dnsmasq.stop()
            self._drop_leases()
            await self.start()

    def _drop_leases(self) -> None:
        try:
            os.unlink(os.path.join(self.netdir, "dnsmasq.leases"))
        except FileNotFoundError:
            pass

    async def delete(self) -> None:
        await self.dnsmasq.stop()
        await asyncio.to_thread(remove_host_objects, self.netdir, self.name)

    def detach(self) -> None:
        self.dnsmasq.detach()

    # ---- information --------------------------------------------------------------------------

    async def state(self) -> dict:
        st = await asyncio.to_thread(host.link_state, self.name)
        if st is None:
            raise NetworkError(f'Interface "{self.name}" not found', 404)
        st.update({"bond": None, "bridge": await asyncio.to_thread(host.bridge_info, self.name),
                   "vlan": None, "ovn": None})
        return st

    def leases(self) -> list[dict]:
        return read_leases(os.path.join(self.netdir, "dnsmasq.leases"))

    # ---- instance hooks -----------------------------------------------------------------------

    def check_static_addresses(self, ipv4: str | None, ipv6: str | None):
        """A NIC's ipv4.address / ipv6.address on this network: (IPv4Address|None, IPv6Address|None),
        or a NetworkError in LXD's words."""
        ip = ip6 = None
        if ipv4:
            ip = ipaddress.IPv4Address(ipv4)
            if self.ipv4 is None or ip not in self.ipv4.network:
                raise NetworkError(f'IP address "{ipv4}" is not within the network "{self.name}" subnet', 400)
            if ip == self.ipv4.ip:
                raise NetworkError(f'IP address "{ipv4}" is the network "{self.name}" gateway', 400)
        if ipv6:   # LXD: a static IPv6 address needs stateful DHCPv6 on the network
            if self.ipv6 is None or not is_true(self.config.get("ipv6.dhcp"), True) or \
                    not is_true(self.config.get("ipv6.dhcp.stateful")):
                raise NetworkError(f'Cannot specify "ipv6.address" when DHCP or "ipv6.dhcp.stateful" are disabled '
                                   f'on network "{self.name}"', 400)
            ip6 = ipaddress.IPv6Address(ipv6)
            if ip6 not in self.ipv6.network:
                raise NetworkError(f'IP address "{ipv6}" is not within the network "{self.name}" subnet', 400)
            if ip6 == self.ipv6.ip:
                raise NetworkError(f'IP address "{ipv6}" is the network "{self.name}" gateway', 400)
        return ip, ip6

    async def set_host_entry(self, key: str, hwaddr: str, ipv4: str | None, hostname: str,
                             ipv6: str | None = None) -> None:
        if self.ipv4 is None and self.ipv6 is None and not ipv4 and not ipv6:
            return
        ip, ip6 = self.check_static_addresses(ipv4, ipv6)
        # One dnsmasq --dhcp-hostsfile line "MAC[,IP],NAME": every field is checked here, whatever
        # validated it before (a stored record written some other way must not add lines or options).
        try:
            hwaddr = netcfg.parse_mac(hwaddr)
        except ValueError as e:
            raise NetworkError(str(e), 400) from None
        if not _HOSTNAME.fullmatch(hostname) or not _ENTRY_KEY.fullmatch(key):
            raise NetworkError(f'Invalid host name "{hostname!r}" for a DHCP host entry', 400)
        fields = [hwaddr] + ([str(ip)] if ipv4 else []) + ([f"[{ip6}]"] if ip6 else []) + [hostname]
        path = os.path.join(self.netdir, "dnsmasq.hosts", key)
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        with open(path, "w") as f:
            f.write(",".join(fields) + "\n")
        os.chmod(path, 0o644)
        self.dnsmasq.reload()

    async def remove_host_entry(self, key: str) -> None:
        try:
            os.unlink(os.path.join(self.netdir, "dnsmasq.hosts", key))
        except FileNotFoundError:
            return
        self.dnsmasq.reload()

    def static_entries(self) -> dict[str, list[str]]:
        d = os.path.join(self.netdir, "dnsmasq.hosts")
        out = {}
        for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            with open(os.path.join(d, f)) as fh:
                out[f] = fh.read().strip().split(",")
        return out


def read_leases(path: str) -> list[dict]:
    """dnsmasq's lease file: "<expiry> <mac> <ip> <hostname> <client-id>" (IPv4 lines)."""
    out = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.split()
        if len(parts) < 4 or parts[0] == "duid":
            continue
        out.append({"expiry": parts[0], "hwaddr": parts[1].lower(), "address": parts[2],
                    "hostname": "" if parts[3] == "*" else parts[3]})
    return out


def remove_host_objects(netdir: str, bridge: str) -> None:
    """Remove the bridge, its tunnels, its nftables table and the network's files (blocking).
    Host objects are removed only in the network namespace they were recorded in."""
    try:
        with open(os.path.join(netdir, "host.json")) as f:
            rec = json.load(f)
    except (OSError, ValueError):
        rec = {"bridge": bridge, "tunnels": [], "netns": netns_inode()}
    if rec.get("netns") == netns_inode():
        for t in rec.get("tunnels", []):
            host.delete_link(t)
        try:
            nft.delete(rec.get("bridge", bridge))
        except nft.NftError as e:
            log.warning("network %s: removing nftables table: %s", bridge, e)
        host.delete_link(rec.get("bridge", bridge))
    shutil.rmtree(netdir, ignore_errors=True)
