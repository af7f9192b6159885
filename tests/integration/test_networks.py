"""Networks (issue 5) against real corralds: managed bridges with dnsmasq and nftables, nic devices,
leases, VXLAN between two "hosts" (network namespaces), proxy devices, kill -9 adoption.

Every interface, namespace, table and process a test makes is removed in a finally/fixture, also
on failure. Traffic only ever goes to addresses on this machine or inside the tests' namespaces."""
import ipaddress
import json
import os
import socket
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from corral.network.host import host_routes_and_addresses
from corral.network.subnets import pick_ipv4
from helpers import Corrald, busybox_tarball, free_port, unique, wait_for

pytestmark = pytest.mark.integration


def short(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:6]


def free_subnet() -> ipaddress.IPv4Interface:
    return pick_ipv4(host_routes_and_addresses())


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(list(args), capture_output=True, text=True)
    if check and res.returncode != 0:
        raise AssertionError(f"{args}: {res.stderr}")
    return res


def link_exists(name: str, netns: str | None = None) -> bool:
    cmd = ["ip"] + (["-n", netns] if netns else []) + ["link", "show", name]
    return sh(*cmd, check=False).returncode == 0


def nft_tables() -> str:
    return sh("nft", "list", "tables").stdout


def dnsmasq_pids(bridge: str) -> list[int]:
    """Live (non-zombie) dnsmasq processes serving `bridge`."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if args and args[0].endswith(b"dnsmasq") and f"--interface={bridge}".encode() in args and state != "Z":
            out.append(int(pid))
    return out


def ipv4_of(d, name: str, dev: str = "eth0", timeout: float = 30) -> str:
    def get():
        net = d.get(f"/1.0/instances/{name}/state").metadata.get("network") or {}
        for a in (net.get(dev) or {}).get("addresses", []):
            if a["family"] == "inet":
                return a["address"]
        return None
    return wait_for(get, timeout=timeout, interval=0.1)


def exec_ok(d, name: str, *cmd: str) -> str:
    return d.lxc("exec", name, "--", *cmd).stdout


def ping(d, name: str, addr: str) -> None:
    def once():
        return d.lxc("exec", name, "--", "ping", "-c", "1", "-W", "1", addr, check=False).returncode == 0
    wait_for(once, timeout=15, interval=0.2)


@pytest.fixture
def net(host):
    """A fresh managed bridge made with the real lxc client; deleted afterwards."""
    name = short("t")
    cidr = free_subnet()
    host.lxc("network", "create", name, f"ipv4.address={cidr}", "ipv4.nat=true")
    made = []
    yield host, name, cidr, made
    for c in made:
        host.lxc("delete", "-f", c, check=False)
    host.lxc("network", "delete", name, check=False)


# ---- 1. DHCP leases, ping, DNS, list-leases, info, static address -------------------------------

def test_bridge_dhcp_ping_dns_leases_static(net):
    d, name, cidr, made = net
    c1, c2 = unique("na"), unique("nb")
    made += [c1, c2]
    static = str(cidr.network.network_address + 50)
    t0 = time.monotonic()
    d.lxc("launch", "busybox", c1, "--network", name)
    d.lxc("init", "busybox", c2, "--network", name)
    d.lxc("config", "device", "set", c2, "eth0", "ipv4.address", static)
    d.lxc("start", c2)
    a1, a2 = ipv4_of(d, c1), ipv4_of(d, c2)
    print(f"two containers launched with leases in {time.monotonic() - t0:.2f}s")
    assert ipaddress.ip_address(a1) in cidr.network and a2 == static
    gw = str(cidr.ip)
    ping(d, c1, a2)
    ping(d, c2, a1)
    ping(d, c1, gw)
    out = exec_ok(d, c1, "nslookup", f"{c2}.lxd", gw)
    assert a2 in out
    out = exec_ok(d, c2, "nslookup", f"{c1}.lxd", gw)
    assert a1 in out
    leases = d.lxc("network", "list-leases", name, "--format", "json").stdout
    by_host = {x["hostname"]: x for x in json.loads(leases)}
    assert by_host[c1]["address"] == a1 and by_host[c1]["type"] == "dynamic"
    assert by_host[c2]["address"] == static and by_host[c2]["type"] == "static"
    assert by_host[f"{name}.gw"]["type"] == "gateway"
    info = d.lxc("network", "info", name).stdout
    assert "Bytes received" in info and "Packets sent" in info
    st = d.get(f"/1.0/networks/{name}/state").metadata
    assert st["counters"]["packets_received"] > 0 and st["counters"]["bytes_sent"] > 0
    # instance state shows the container's addresses and the host end of its veth
    eth0 = d.get(f"/1.0/instances/{c1}/state").metadata["network"]["eth0"]
    cfg = d.get(f"/1.0/instances/{c1}").metadata["config"]
    assert eth0["hwaddr"] == cfg["volatile.eth0.hwaddr"] and eth0["host_name"] == cfg["volatile.eth0.host_name"]
    used = d.get(f"/1.0/networks/{name}").metadata["used_by"]
    assert f"/1.0/instances/{c1}" in used and f"/1.0/instances/{c2}" in used
    # the shapes of LXD's samples
    from helpers import sample
    assert set(d.get(f"/1.0/networks/{name}").metadata) == set(sample("networks-lxdbr0.json")["metadata"])
    assert set(st) == set(sample("networks-lxdbr0-state.json")["metadata"])
    assert set(st["bridge"]) == set(sample("networks-lxdbr0-state.json")["metadata"]["bridge"])


# ---- bad input: refused with a 4xx, nothing changed -----------------------------------------------

def test_bad_network_input_is_refused(host):
    def managed():   # host interfaces come and go with other work on the machine: compare managed ones
        return [n for n in host.get("/1.0/networks?recursion=1").metadata if n["managed"]]
    before = managed()
    existing = next(n for n in host.get("/1.0/networks?recursion=1").metadata if n["managed"])
    used = ipaddress.ip_interface(existing["config"]["ipv4.address"])
    name = short("bad")
    cases = [
        ({"name": name, "config": {"ipv4.address": str(used.network.network_address + 7) + "/24"}}, "overlaps"),
        ({"name": name, "config": {"ipv4.address": "10.300.0.1/24"}}, "ipv4.address"),
        ({"name": name, "config": {"ipv4.address": "10.1.2.1"}}, "ipv4.address"),
        ({"name": name, "config": {"foo": "bar"}}, "Invalid network configuration key: foo"),
        ({"name": name, "config": {"tunnel.x.protocol": "vxlan"}}, "remote"),
        ({"name": "a-name-far-too-long", "config": {}}, "name"),
        ({"name": name, "type": "nope"}, "nope"),
        ({"name": existing["name"], "config": {}}, "already exists"),
    ]
    for body, text in cases:
        r = host.request("POST", "/1.0/networks", body)
        assert 400 <= r.status < 500, (body, r.body)
        assert text in r.json["error"], (body, r.json["error"])
    assert managed() == before
    assert not link_exists(name) and f"corral-{name}" not in nft_tables()
    # an instance's NIC on an unknown network, or with a bad key, is refused too
    r = host.request("POST", "/1.0/instances", {"name": unique("x"), "source": {"type": "image", "alias": "busybox"},
                                                "devices": {"eth1": {"type": "nic", "network": "nosuchnet"}}},
                     headers={"Content-Type": "application/json"})
    assert r.status == 400 and "nosuchnet" in r.json["error"]
    r = host.request("PATCH", f"/1.0/networks/{existing['name']}", {"config": {"ipv4.nat": "maybe"}})
    assert r.status == 400 and host.get(f"/1.0/networks/{existing['name']}").metadata["config"] == existing["config"]


# ---- 4. delete removes bridge, dnsmasq, nft table and leases files; in-use delete refused ---------

def test_delete_removes_everything(host):
    name = short("t")
    cidr = free_subnet()
    host.lxc("network", "create", name, f"ipv4.address={cidr}", "ipv4.nat=true")
    c = unique("nd")
    try:
        host.lxc("launch", "busybox", c, "--network", name)
        ipv4_of(host, c)
        netdir = os.path.join(host.dir, "networks", name)
        assert os.path.exists(os.path.join(netdir, "dnsmasq.leases"))
        pids = dnsmasq_pids(name)
        assert len(pids) == 1 and link_exists(name) and f"corral-{name}" in nft_tables()
        r = host.lxc("network", "delete", name, check=False)
        assert r.returncode != 0 and "The network is currently in use" in r.stderr
        assert link_exists(name) and dnsmasq_pids(name) == pids
    finally:
        host.lxc("delete", "-f", c, check=False)
    host.lxc("network", "delete", name)
    assert not link_exists(name)
    assert f"corral-{name}" not in nft_tables()
    assert dnsmasq_pids(name) == []
    assert not os.path.exists(os.path.join(host.dir, "networks", name))
    assert f"/1.0/networks/{name}" not in host.get("/1.0/networks").metadata


def test_update_rename_and_cli(host):
    name, new = short("t"), short("r")
    cidr, cidr2 = free_subnet(), None
    host.lxc("network", "create", name, f"ipv4.address={cidr}")
    try:
        assert host.lxc("network", "get", name, "ipv4.address").stdout.strip() == str(cidr)
        host.lxc("network", "set", name, "ipv4.nat", "true")
        assert host.get(f"/1.0/networks/{name}").metadata["config"]["ipv4.nat"] == "true"
        assert "masquerade" in sh("nft", "list", "table", "inet", f"corral-{name}").stdout
        host.lxc("network", "unset", name, "ipv4.nat")
        assert "masquerade" not in sh("nft", "list", "table", "inet", f"corral-{name}").stdout
        cidr2 = free_subnet()
        host.lxc("network", "edit", name, input=f"config:\n  ipv4.address: {cidr2}\ndescription: edited\n")
        got = host.get(f"/1.0/networks/{name}").metadata
        assert got["config"]["ipv4.address"] == str(cidr2) and got["description"] == "edited"
        addrs = sh("ip", "-4", "-o", "addr", "show", name).stdout
        assert str(cidr2) in addrs and str(cidr) not in addrs
        assert any(f"--listen-address={cidr2.ip}" in open(f"/proc/{p}/cmdline").read().replace("\0", " ")
                   for p in dnsmasq_pids(name))
        listing = json.loads(host.lxc("network", "list", "--format", "json").stdout)
        assert any(n["name"] == name and n["managed"] for n in listing)
        assert any(n["name"] == "lo" and not n["managed"] for n in listing)
        host.lxc("network", "rename", name, new)
        assert link_exists(new) and not link_exists(name) and len(dnsmasq_pids(new)) == 1
        assert dnsmasq_pids(name) == [] and f"corral-{name}" not in nft_tables()
        name = new
    finally:
        host.lxc("network", "delete", name, check=False)
    assert not link_exists(name)


# ---- nic devices: hot-plug / unplug, p2p, macvlan, limits -----------------------------------------

def test_nic_hotplug_p2p_macvlan_limits(net):
    d, name, cidr, made = net
    c = unique("nh")
    made.append(c)
    d.lxc("launch", "busybox", c, "--network", name)
    ipv4_of(d, c)
    # hot-plug a second NIC on the managed network with the real client, then unplug it
    d.lxc("network", "attach", name, c, "eth1", "eth1")
    cfg = d.get(f"/1.0/instances/{c}").metadata["config"]
    host_name = cfg["volatile.eth1.host_name"]
    assert cfg["volatile.eth1.hwaddr"].startswith("00:16:3e:") and link_exists(host_name)
    out = exec_ok(d, c, "ip", "link", "show", "eth1")
    assert cfg["volatile.eth1.hwaddr"] in out
    assert host_name in sh("ip", "link", "show", "master", name).stdout
    d.lxc("network", "detach", name, c, "eth1")
    assert d.lxc("exec", c, "--", "ip", "link", "show", "eth1", check=False).returncode != 0
    assert not link_exists(host_name)
    # p2p with a chosen host name and a rate limit (htb on the host end)
    p2p = short("p2p")
    d.lxc("config", "device", "add", c, "eth2", "nic", "nictype=p2p", f"host_name={p2p}", "limits.ingress=10Mbit")
    assert link_exists(p2p) and "htb" in sh("tc", "qdisc", "show", "dev", p2p).stdout
    exec_ok(d, c, "ip", "link", "show", "eth2")
    # macvlan on the bridge (as parent), MTU honoured
    d.lxc("config", "device", "add", c, "eth3", "nic", "nictype=macvlan", f"parent={name}", "mtu=1400")
    out = exec_ok(d, c, "ip", "link", "show", "eth3")
    assert "mtu 1400" in out
    d.lxc("config", "device", "remove", c, "eth2")
    d.lxc("config", "device", "remove", c, "eth3")
    assert not link_exists(p2p)
    # the NICs survive a restart with the same MAC (volatile.*)
    mac = d.get(f"/1.0/instances/{c}").metadata["config"]["volatile.eth0.hwaddr"]
    d.lxc("restart", c, "--force")
    ipv4_of(d, c)
    assert mac in exec_ok(d, c, "ip", "link", "show", "eth0")
    # a bad NIC is refused and nothing changes
    r = d.request("PATCH", f"/1.0/instances/{c}", {"devices": {"eth9": {"type": "nic", "nictype": "bridged",
                                                                        "parent": name, "hwaddr": "zz"}}})
    assert r.status == 400 and "eth9" not in d.get(f"/1.0/instances/{c}").metadata["devices"]


# ---- 3. proxy devices ------------------------------------------------------------------------------

def _children(pid: int) -> set[int]:
    out = set()
    for path in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{path}/children") as f:
            out.update(int(p) for p in f.read().split())
    return out


def test_proxy_tcp_to_busybox_httpd_and_back(host):
    c = unique("px")
    try:
        host.lxc("launch", "busybox", c)
        exec_ok(host, c, "sh", "-c", "mkdir -p /srv && echo proxied-page > /srv/i.txt && httpd -p 127.0.0.1:80 -h /srv")
        daemon_pid = host.get("/1.0").metadata["environment"]["server_pid"]
        before = _children(daemon_pid)
        port = free_port()
        host.lxc("config", "device", "add", c, "web", "proxy", f"listen=tcp:127.0.0.1:{port}",
                 "connect=tcp:127.0.0.1:80")

        def fetch():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(b"GET /i.txt HTTP/1.0\r\n\r\n")
                    data = b""
                    while chunk := s.recv(4096):
                        data += chunk
                    return data
            except OSError:
                return None
        assert b"proxied-page" in wait_for(fetch, timeout=10)
        # many connections at once, all through the daemon's event loop: no process per device
        results = []
        threads = [threading.Thread(target=lambda: results.append(fetch())) for _ in range(20)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert all(r and b"proxied-page" in r for r in results)
        # (dnsmasq, or the dir pool refilling its ready image copy in .spares, may run meanwhile)
        extra = {p: open(f"/proc/{p}/cmdline", "rb").read() for p in _children(daemon_pid) - before}
        assert all(b"dnsmasq" in v or b"/.spares/" in v for v in extra.values()), extra

        # bind=instance: listen inside the container, connect to a server on the host
        class H(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"from-the-host")

            def log_message(self, *a):
                pass
        srv = HTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        try:
            host.lxc("config", "device", "add", c, "back", "proxy", "bind=instance", "listen=tcp:127.0.0.1:9090",
                     f"connect=tcp:127.0.0.1:{srv.server_address[1]}")
            out = exec_ok(host, c, "wget", "-q", "-O", "-", "http://127.0.0.1:9090/")
            assert "from-the-host" in out
        finally:
            srv.shutdown()
        host.lxc("config", "device", "remove", c, "web")
        assert fetch() is None
    finally:
        host.lxc("delete", "-f", c, check=False)


# ---- 2. VXLAN between two "hosts" (two network namespaces joined by a veth pair) ------------------

class NetnsCorrald(Corrald):
    """A corrald running inside a network namespace (nsenter: `ip netns exec` would remount /sys and
    hide the cgroup hierarchies liblxc needs)."""

    def __init__(self, netns: str):
        super().__init__()
        self.netns = netns

    def start(self, timeout: float = 30):
        from helpers import VENV_BIN
        self.log = open(os.path.join(self.dir, "test-corrald.log"), "ab")
        self.proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{self.netns}", os.path.join(VENV_BIN, "corrald")],
                                     env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.run("corrald", "waitready", "--timeout", str(int(timeout)), check=True)
        return self


PRESEED = """storage_pools:
- name: default
  driver: dir
networks:
- name: vx
  type: bridge
  config:
    ipv4.address: {addr}
    ipv6.address: none
    tunnel.t.protocol: vxlan
    tunnel.t.id: "4242"
    tunnel.t.local: {local}
    tunnel.t.remote: {remote}
    tunnel.t.ttl: "2"
profiles:
- name: default
  devices:
    root: {{type: disk, path: /, pool: default}}
    eth0: {{type: nic, name: eth0, network: vx}}
"""


def test_vxlan_tunnel_between_two_hosts():
    ns_a, ns_b = short("cva"), short("cvb")
    ca, cb = short("ca"), short("cb")      # unique: liblxc's payload cgroups are named after them
    under = free_subnet().network          # the "physical" link between the two hosts
    a_ip, b_ip = str(under.network_address + 1), str(under.network_address + 2)
    overlay = free_subnet()
    daemons = []
    try:
        sh("ip", "netns", "add", ns_a)
        sh("ip", "netns", "add", ns_b)
        sh("ip", "link", "add", "vxua", "netns", ns_a, "type", "veth", "peer", "name", "vxub", "netns", ns_b)
        for ns, dev, ip in ((ns_a, "vxua", a_ip), (ns_b, "vxub", b_ip)):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        a, b = NetnsCorrald(ns_a), NetnsCorrald(ns_b)
        daemons += [a, b]
        a.start()
        b.start()
        # host A serves DHCP for the overlay; host B's bridge has no address: its container gets its
        # lease from A's dnsmasq, across the tunnel
        a.run("corrald", "init", "--preseed", check=True,
              input=PRESEED.format(addr=str(overlay), local=a_ip, remote=b_ip))
        b.run("corrald", "init", "--preseed", check=True, input=PRESEED.format(addr="none", local=b_ip, remote=a_ip))
        assert link_exists("vx-t", ns_a) and link_exists("vx-t", ns_b)
        for d in (a, b):
            d.lxc("image", "import", busybox_tarball(), "--alias", "busybox")
        a.lxc("launch", "busybox", ca)
        b.lxc("launch", "busybox", cb)
        ip_a, ip_b = ipv4_of(a, ca), ipv4_of(b, cb, timeout=40)
        assert ipaddress.ip_address(ip_b) in overlay.network
        ping(a, ca, ip_b)
        ping(b, cb, ip_a)
        ping(b, cb, str(overlay.ip))      # host A's bridge address, over the tunnel
        leases = {x["hostname"] for x in a.get("/1.0/networks/vx/leases").metadata}
        assert ca in leases
    finally:
        for d in daemons:
            d.cleanup()
        for ns in (ns_a, ns_b):
            sh("ip", "netns", "del", ns, check=False)
    assert not any(ns in sh("ip", "netns", "list").stdout for ns in (ns_a, ns_b))


# ---- 5. kill -9: dnsmasq and the bridge keep serving; the restarted daemon adopts them --------------

def test_kill9_restart_adopts_dnsmasq_and_bridge():
    k1, k2 = unique("k1"), unique("k2")   # unique: payload cgroups are named after containers
    d = Corrald()
    name = short("k")
    cidr = free_subnet()
    try:
        d.start()
        d.run("corrald", "init", "--preseed", check=True, input=(
            "storage_pools:\n- {name: default, driver: dir}\n"
            f"networks:\n- name: {name}\n  config: {{ipv4.address: {cidr}, ipv6.address: none}}\n"
            "profiles:\n- name: default\n  devices:\n    root: {type: disk, path: /, pool: default}\n"
            f"    eth0: {{type: nic, name: eth0, network: {name}}}\n"))
        d.lxc("image", "import", busybox_tarball(), "--alias", "busybox")
        d.lxc("launch", "busybox", k1)
        ip1 = ipv4_of(d, k1)
        pids = dnsmasq_pids(name)
        assert len(pids) == 1
        d.kill9()
        # with the daemon dead, the bridge and dnsmasq keep serving the running container
        assert dnsmasq_pids(name) == pids and link_exists(name)
        import lxc
        ct1 = lxc.Container(k1, config_path=os.path.join(d.dir, "containers"))
        assert ct1.running
        d.start()
        assert dnsmasq_pids(name) == pids          # adopted, not duplicated
        assert ipv4_of(d, k1) == ip1
        ping(d, k1, str(cidr.ip))
        assert f"corral-{name}" in nft_tables()
        # a new container gets a lease from the adopted dnsmasq
        d.lxc("launch", "busybox", k2)
        ip2 = ipv4_of(d, k2)
        ping(d, k2, ip1)
        assert {k1, k2} <= {x["hostname"] for x in d.get(f"/1.0/networks/{name}/leases").metadata}
        # supervision: the adopted dnsmasq is killed; the daemon starts a new one
        os.kill(pids[0], 9)
        new = wait_for(lambda: [p for p in dnsmasq_pids(name) if p != pids[0]], timeout=10)
        assert len(new) == 1 and len(dnsmasq_pids(name)) == 1
        assert exec_ok(d, k2, "nslookup", f"{k1}.lxd", str(cidr.ip)).count(ip1) >= 1
        assert ip2
    finally:
        d.cleanup()
    assert not link_exists(name) and dnsmasq_pids(name) == [] and f"corral-{name}" not in nft_tables()


def test_corral_cli_network_commands(host):
    name = short("cl")
    cidr = free_subnet()
    c = unique("cc")
    try:
        host.run("corral", "network", "create", name, f"ipv4.address={cidr}", check=True)
        assert f"ipv4.address: {cidr}" in host.run("corral", "network", "show", name, check=True).stdout
        assert name in host.run("corral", "network", "list", "--format", "csv", check=True).stdout
        host.lxc("launch", "busybox", c)
        host.run("corral", "config", "device", "add", c, "eth1", "nic", f"network={name}", check=True)
        assert d_has_link(host, c, "eth1")
        host.run("corral", "network", "detach", name, c, "eth1", check=True)
        assert not d_has_link(host, c, "eth1")
        host.run("corral", "network", "attach", name, c, "eth2", "eth2", check=True)
        assert d_has_link(host, c, "eth2")
        info = host.run("corral", "network", "info", name, check=True).stdout
        assert "Bytes received" in info and str(cidr.ip) in info
        assert "GATEWAY" in host.run("corral", "network", "list-leases", name, check=True).stdout
        r = host.run("corral", "network", "delete", name)
        assert r.returncode == 1 and "The network is currently in use" in r.stderr
    finally:
        host.lxc("delete", "-f", c, check=False)
        host.run("corral", "network", "delete", name)
    assert not link_exists(name)


def d_has_link(d, c: str, ifname: str) -> bool:
    return d.lxc("exec", c, "--", "ip", "link", "show", ifname, check=False).returncode == 0
