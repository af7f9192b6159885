"""Issue 10, config keys: what the named keys do on a real corrald with real containers.

raw.lxc checked by liblxc when set (old key names refused with the new one); security.devlxd,
security.nesting and every other instance key LXD marks "live update: yes" applied to a running
container; a relative disk path; instance volumes editable; rsync.bwlimit on dir pools; IPv6 DHCP
(stateful) on bridges; scheduled snapshots (one test, waits for one minute boundary).
"""
from __future__ import annotations

import csv
import ipaddress
import os
import random
import shutil
import subprocess
import tempfile
import time
from datetime import datetime, timezone

import pytest

import corral.config  # noqa: F401
from corral.config.keys import INSTANCE, lookup
from corral.idmap import SUBUID, read_subids
from helpers import ROOT, unique, wait_for

pytestmark = pytest.mark.integration

TSV = os.path.join(os.path.dirname(ROOT), "shared", "lxd-5.0.2", "config-keys.tsv")


def sh_in(d, c, cmd, check=True):
    return d.lxc("exec", c, "--", "sh", "-c", cmd, check=check)


def state_pid(d, c) -> int:
    return d.get(f"/1.0/instances/{c}/state").metadata["pid"]


def set_fails(d, c, key, value) -> str:
    r = d.lxc("config", "set", c, key, value, check=False)
    assert r.returncode != 0, f"{key}={value!r} was accepted"
    return r.stderr


@pytest.fixture(scope="module")
def running(host):
    c = unique("ck")
    host.lxc("launch", "busybox", c)
    yield c
    host.lxc("config", "unset", c, "security.protection.delete", check=False)
    host.lxc("delete", "-f", c, check=False)


# ---- raw.lxc ------------------------------------------------------------------------------------

def test_raw_lxc_checked_by_liblxc_when_set(host, running):
    for line, expect in (("lxc.utsname = x", '"lxc.uts.name"'), ("lxc.network.0.link = br0", '"lxc.net.0.link"'),
                         ("lxc.id_map = u 0 100000 65536", '"lxc.idmap"'), ("lxc.rootfs = /srv", '"lxc.rootfs.path"'),
                         ("lxc.aa_profile = unconfined", '"lxc.apparmor.profile"'),
                         ("lxc.nosuchkey = 1", "liblxc refuses"), ("lxc.tty.max = many", "liblxc refuses"),
                         ("lxc.prlimit.nofile = 10", "limits.kernel")):
        err = set_fails(host, running, "raw.lxc", line)
        assert expect in err, (line, err)
    assert "raw.lxc" not in host.get(f"/1.0/instances/{running}").metadata["config"]
    host.lxc("config", "set", running, "raw.lxc", "lxc.uts.name = ckname\nlxc.cap.drop = sys_nice")
    host.lxc("config", "unset", running, "raw.lxc")


def test_raw_idmap_maps_host_ids_into_the_container(host):
    c, src = unique("ri"), tempfile.mkdtemp(prefix="corral-idmap-", dir="/var/tmp")
    os.chmod(src, 0o755)
    try:
        with open(os.path.join(src, "mine"), "w") as f:
            f.write("x")
        # A host id delegated to root (/etc/subuid, /etc/subgid) outside the containers' default map.
        hostid = next(s + 500 for s, n in read_subids(SUBUID)[1:] if n > 1000)
        os.chown(os.path.join(src, "mine"), hostid, hostid)
        err = host.lxc("init", "busybox", c, "-c", "raw.idmap=uid 1000-1001 5", check=False).stderr
        assert "Invalid raw.idmap line 1" in err, err
        err = host.lxc("init", "busybox", c, "-c", "raw.idmap=uid 1000 1000", check=False).stderr
        assert "not among root's subordinate ids" in err and "root:1000:1" in err, err
        host.lxc("init", "busybox", c, "-c", f"raw.idmap=both {hostid} 1000")
        host.lxc("config", "device", "add", c, "h", "disk", f"source={src}", "path=/mnt/h")
        host.lxc("start", c)
        uid_map = sh_in(host, c, "cat /proc/self/uid_map").stdout.split("\n")
        assert any(line.split() == ["1000", str(hostid), "1"] for line in uid_map), uid_map
        assert sh_in(host, c, "stat -c %u:%g /mnt/h/mine").stdout.strip() == "1000:1000"
        assert sh_in(host, c, "stat -c %u /").stdout.strip() == "0"   # the rest of the map is unchanged
    finally:
        host.lxc("delete", "-f", c, check=False)
        shutil.rmtree(src, ignore_errors=True)


# ---- live keys ----------------------------------------------------------------------------------

def test_devlxd_switched_on_a_running_container(host, running):
    pid = state_pid(host, running)
    assert sh_in(host, running, "test -S /dev/lxd/sock && echo present").stdout.strip() == "present"
    host.lxc("config", "set", running, "security.devlxd", "false")
    assert sh_in(host, running, "test -e /dev/lxd/sock || echo gone").stdout.strip() == "gone"
    host.lxc("config", "set", running, "security.devlxd", "true")
    assert sh_in(host, running, "test -S /dev/lxd/sock && echo present").stdout.strip() == "present"
    assert state_pid(host, running) == pid   # no restart


def test_disk_device_relative_path(host, running):
    src = tempfile.mkdtemp(prefix="corral-rel-", dir="/var/tmp")
    os.chmod(src, 0o755)
    try:
        with open(os.path.join(src, "marker"), "w") as f:
            f.write("relative\n")
        os.chmod(os.path.join(src, "marker"), 0o644)
        host.lxc("config", "device", "add", running, "rel", "disk", f"source={src}", "path=mnt/rel")
        assert sh_in(host, running, "cat /mnt/rel/marker").stdout == "relative\n"
        host.lxc("config", "device", "remove", running, "rel")
        assert "/mnt/rel" not in sh_in(host, running, "cat /proc/mounts").stdout
    finally:
        shutil.rmtree(src, ignore_errors=True)


def _cgroup_file(pid: int, controller: str, name: str) -> str:
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if controller in ctrls.split(",") or (ctrls == "" and os.path.exists("/sys/fs/cgroup/cgroup.controllers")):
                base = f"/sys/fs/cgroup/{controller}" if ctrls else "/sys/fs/cgroup"
                with open(f"{base}{path}/{name}") as g:
                    return g.read().strip()
    raise AssertionError(f"no {controller} cgroup for {pid}")


def _v2() -> bool:
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def _loaded_module() -> str:
    """A module the kernel has (built in or loaded): nothing is loaded on the host by the test."""
    return sorted(os.listdir("/sys/module"))[0]


def test_every_live_instance_key_applies_to_a_running_container(host, running):
    with open(TSV, newline="") as f:
        live = {r["key"] for r in csv.DictReader(f, delimiter="\t")
                if r["doc"] == "reference/instance_options.md" and r["live_update"].startswith("yes")}
    refused = {k for k in live if lookup(INSTANCE, k.replace("*", "x")).refused}
    pid = state_pid(host, running)
    mem = 96 * 1024 * 1024

    def memory():
        assert int(_cgroup_file(pid, "memory", "memory.max" if _v2() else "memory.limit_in_bytes")) == mem

    def enforce():
        assert int(_cgroup_file(pid, "memory", "memory.high" if _v2() else "memory.soft_limit_in_bytes")) == mem

    def swap():
        name = "memory.swap.max" if _v2() else "memory.memsw.limit_in_bytes"
        try:
            _cgroup_file(pid, "memory", name)
        except FileNotFoundError:
            return   # no swap accounting on this kernel: nothing to write
        assert int(_cgroup_file(pid, "memory", name)) in (0, mem)

    def swap_priority():   # LXD: swappiness 60 - 10 + priority (0 while swap is off)
        assert _cgroup_file(pid, "memory", "memory.swappiness") == "0"
        host.lxc("config", "set", running, "limits.memory.swap", "true")
        assert _cgroup_file(pid, "memory", "memory.swappiness") == "53"

    def cpu():
        assert _cgroup_file(pid, "cpuset", "cpuset.cpus") == "0"

    def allowance():
        if _v2():
            assert _cgroup_file(pid, "cpu", "cpu.max") == "50000 100000"
        else:
            assert _cgroup_file(pid, "cpu", "cpu.cfs_quota_us") == "50000"

    def priority():   # LXD: 1024 (the 50ms/100ms slice) less 10 - priority
        if _v2():
            assert _cgroup_file(pid, "cpu", "cpu.weight") == str(max(1, min(10000, 1019 * 100 // 1024)))
        else:
            assert _cgroup_file(pid, "cpu", "cpu.shares") == "1019"

    def processes():
        assert _cgroup_file(pid, "pids", "pids.max") == "77"

    def environment():
        assert "CK_LIVE=yes" in sh_in(host, running, "env").stdout

    def nesting():
        assert " /sys/kernel/security " in sh_in(host, running, "cat /proc/mounts").stdout

    def modules():
        err = set_fails(host, running, "linux.kernel_modules", "corral_no_such_module")
        assert "Failed to load kernel module 'corral_no_such_module'" in err, err
        assert host.get(f"/1.0/instances/{running}").metadata["config"]["linux.kernel_modules"] == _loaded_module()

    def protection():
        r = host.request("DELETE", f"/1.0/instances/{running}")
        assert r.status == 400, r.body   # refused (running, and protected)

    checks = {
        "limits.memory": ([("limits.memory", "96MiB")], memory),
        "limits.memory.enforce": ([("limits.memory.enforce", "soft")], enforce),
        "limits.memory.swap": ([("limits.memory.enforce", "hard"), ("limits.memory.swap", "false")], swap),
        "limits.memory.swap.priority": ([("limits.memory.swap.priority", "3")], swap_priority),
        "limits.cpu": ([("limits.cpu", "1")], cpu),
        "limits.cpu.allowance": ([("limits.cpu.allowance", "50ms/100ms")], allowance),
        "limits.cpu.priority": ([("limits.cpu.priority", "5")], priority),
        "limits.processes": ([("limits.processes", "77")], processes),
        "environment.*": ([("environment.CK_LIVE", "yes")], environment),
        "linux.kernel_modules": ([("linux.kernel_modules", _loaded_module())], modules),
        "security.nesting": ([("security.nesting", "true")], nesting),
        "security.protection.delete": ([("security.protection.delete", "true")], protection),
    }
    assert set(checks) == live - refused, f"live keys without a check: {sorted(live - refused - set(checks))}"
    for key, (sets, check) in checks.items():
        for k, v in sets:
            host.lxc("config", "set", running, k, v)
        check()
    for k in refused:
        name = k.replace("*", "x")
        value = "1" if lookup(INSTANCE, name).parse is not str else "x"
        r = host.lxc("config", "set", running, name, value if value != lookup(INSTANCE, name).default else "2",
                     check=False)
        assert r.returncode != 0 and ("not implemented" in r.stderr or "not supported" in r.stderr
                                      or "Invalid value" in r.stderr), (k, r.stderr)
    assert state_pid(host, running) == pid   # all applied without a restart
    host.lxc("config", "set", running, "security.nesting", "false")
    assert " /sys/kernel/security " not in sh_in(host, running, "cat /proc/mounts").stdout
    host.lxc("config", "unset", running, "security.protection.delete")
    print(f"\nlive instance keys: {len(checks)} applied to a running container, {len(refused)} refused: "
          f"{', '.join(sorted(refused))}")


# ---- instance volumes ---------------------------------------------------------------------------

def test_instance_volume_is_editable(host):
    c = unique("iv")
    host.lxc("init", "busybox", c)
    try:
        host.lxc("storage", "volume", "set", "default", f"container/{c}", "user.k", "v")
        out = host.lxc("storage", "volume", "show", "default", f"container/{c}").stdout
        assert "user.k: v" in out
        assert host.lxc("storage", "volume", "get", "default", f"container/{c}", "user.k").stdout.strip() == "v"
        edited = out.replace("description: \"\"", "description: root of c").replace("user.k: v", "user.k: w")
        host.lxc("storage", "volume", "edit", "default", f"container/{c}", input=edited)
        meta = host.get(f"/1.0/storage-pools/default/volumes/container/{c}").metadata
        assert meta["config"] == {"user.k": "w"} and meta["description"] == "root of c"
        r = host.lxc("storage", "volume", "set", "default", f"container/{c}", "size", "1GiB", check=False)
        assert r.returncode != 0 and "root disk device" in r.stderr
        host.lxc("delete", c)
        host.lxc("init", "busybox", c)   # a new instance of the same name: a fresh volume
        assert host.get(f"/1.0/storage-pools/default/volumes/container/{c}").metadata["config"] == {}
    finally:
        host.lxc("delete", "-f", c, check=False)


# ---- rsync.bwlimit ------------------------------------------------------------------------------

def test_rsync_bwlimit_limits_copies_on_a_dir_pool(host):
    p, base = unique("rp"), tempfile.mkdtemp(prefix="corral-rsync-", dir="/var/tmp")
    source = os.path.join(base, "pool")
    try:
        r = host.lxc("storage", "create", p, "dir", f"source={source}", "rsync.bwlimit=lots", check=False)
        assert r.returncode != 0 and "rsync.bwlimit" in r.stderr
        host.lxc("storage", "create", p, "dir", f"source={source}", "rsync.bwlimit=1024")   # KiB/s
        host.lxc("storage", "volume", "create", p, "v1")
        blob = os.urandom(3 * 1024 * 1024)
        with open(os.path.join(source, "custom", "default_v1", "blob"), "wb") as f:
            f.write(blob)
        t = time.monotonic()
        host.lxc("storage", "volume", "copy", f"{p}/v1", f"{p}/v2")
        limited = time.monotonic() - t
        with open(os.path.join(source, "custom", "default_v2", "blob"), "rb") as f:
            assert f.read() == blob
        host.lxc("storage", "set", p, "rsync.bwlimit", "0")
        t = time.monotonic()
        host.lxc("storage", "volume", "copy", f"{p}/v1", f"{p}/v3")
        free = time.monotonic() - t
        print(f"\n3 MiB copy: {limited:.2f} s at rsync.bwlimit=1024 (KiB/s), {free:.2f} s without")
        assert limited >= 2.0 and free < limited - 1.0
    finally:
        for v in ("v1", "v2", "v3"):
            host.lxc("storage", "volume", "delete", p, v, check=False)
        host.lxc("storage", "delete", p, check=False)
        shutil.rmtree(base, ignore_errors=True)


# ---- IPv6 on bridges ----------------------------------------------------------------------------

def _dnsmasq_cmdline(bridge: str) -> list[str]:
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = [a.decode() for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if args and os.path.basename(args[0]) == "dnsmasq" and f"--interface={bridge}" in args:
            return args
    return []


def test_bridge_ipv6_stateful_dhcp_nat_address(host):
    name, c = "c6" + os.urandom(3).hex(), unique("c6")
    net = ipaddress.IPv6Network(((0xfd << 120) | (random.getrandbits(56) << 64), 64))   # a random ULA /64
    gw, lo, hi = net.network_address + 1, net.network_address + 0x10, net.network_address + 0x20
    try:
        r = host.lxc("network", "create", name, "ipv4.address=none", f"ipv6.address={gw}/64",
                     "ipv6.dhcp.ranges=nonsense", check=False)
        assert r.returncode != 0 and "ipv6.dhcp.ranges" in r.stderr
        host.lxc("network", "create", name, "ipv4.address=none", f"ipv6.address={gw}/64", "ipv6.dhcp.stateful=true",
                 f"ipv6.dhcp.ranges={lo}-{hi}", "ipv6.dhcp.expiry=2h", "ipv6.nat=true", f"ipv6.nat.address={gw}")
        addrs = subprocess.run(["ip", "-6", "addr", "show", "dev", name], capture_output=True, text=True).stdout
        assert f"{gw}/64" in addrs
        args = wait_for(lambda: _dnsmasq_cmdline(name), timeout=10)
        assert "--enable-ra" in args and f"{lo},{hi},64,2h" in args, args
        table = subprocess.run(["nft", "list", "table", "inet", f"corral-{name}"], capture_output=True,
                               text=True).stdout
        assert f"snat ip6 to {gw}" in table, table
        # A static address: a DHCPv6 host entry for the NIC's MAC.
        host.lxc("init", "busybox", c)
        r = host.lxc("config", "device", "add", c, "eth0", "nic", f"network={name}", f"ipv6.address={gw}", check=False)
        assert r.returncode != 0 and "gateway" in r.stderr
        host.lxc("config", "device", "add", c, "eth0", "nic", f"network={name}", f"ipv6.address={lo + 5}")
        host.lxc("start", c)
        hwaddr = host.get(f"/1.0/instances/{c}").metadata["config"]["volatile.eth0.hwaddr"]
        hosts_dir = os.path.join(host.dir, "networks", name, "dnsmasq.hosts")
        entries = [open(os.path.join(hosts_dir, f)).read() for f in os.listdir(hosts_dir)]
        assert f"{hwaddr},[{lo + 5}],{c}\n" in entries, entries
        host.lxc("stop", "-f", c)
        host.lxc("config", "device", "remove", c, "eth0")
        host.lxc("network", "set", name, "ipv6.dhcp.stateful", "false")
        args = wait_for(lambda: [a for a in _dnsmasq_cmdline(name) if "ra-stateless" in a], timeout=10)
        assert args == [f"::,constructor:{name},ra-stateless,ra-names"]
        r = host.lxc("config", "device", "add", c, "eth0", "nic", f"network={name}", f"ipv6.address={lo + 6}",
                     check=False)
        assert r.returncode != 0 and "ipv6.dhcp.stateful" in r.stderr, r.stderr
    finally:
        host.lxc("delete", "-f", c, check=False)
        host.lxc("network", "delete", name, check=False)


# ---- scheduled snapshots ------------------------------------------------------------------------

def test_scheduled_snapshots_of_instances_and_volumes(host):
    run, stop_yes, stop_no, vol = unique("sr"), unique("sy"), unique("sn"), unique("sv")
    pattern = "auto-{{ creation_date|date:'2006-01-02' }}-%d"
    sched = ["-c", "snapshots.schedule=* * * * *"]
    try:
        err = host.lxc("init", "busybox", unique("sx"), "-c", "snapshots.schedule=61 * * * *", check=False).stderr
        assert "snapshots.schedule" in err
        host.lxc("launch", "busybox", run, *sched, "-c", f"snapshots.pattern={pattern}", "-c", "snapshots.expiry=1d")
        host.lxc("init", "busybox", stop_yes, *sched, "-c", "snapshots.schedule.stopped=true")
        host.lxc("init", "busybox", stop_no, *sched)
        host.lxc("storage", "volume", "create", "default", vol, "snapshots.schedule=@hourly, * * * * *")

        def snaps(path):
            return host.get(path + "?recursion=1").metadata

        def all_done():
            return (snaps(f"/1.0/instances/{run}/snapshots") and snaps(f"/1.0/instances/{stop_yes}/snapshots")
                    and snaps(f"/1.0/storage-pools/default/volumes/custom/{vol}/snapshots"))
        start = time.monotonic()
        wait_for(all_done, timeout=70, interval=1)
        print(f"\nfirst scheduled snapshots after {time.monotonic() - start:.1f} s")
        s = snaps(f"/1.0/instances/{run}/snapshots")[0]
        today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        assert s["name"] == f"auto-{today}-0", s["name"]
        assert not s["expires_at"].startswith("0001")
        assert [x["name"] for x in snaps(f"/1.0/instances/{stop_yes}/snapshots")] == ["snap0"]
        assert snaps(f"/1.0/instances/{stop_no}/snapshots") == []
    finally:
        host.lxc("delete", "-f", run, stop_yes, stop_no, check=False)
        host.lxc("storage", "volume", "delete", "default", vol, check=False)


# ---- server defaults: images.compression_algorithm, backups.compression_algorithm ------------------

def test_server_compression_defaults(host):
    c = unique("cz")
    host.lxc("init", "busybox", c)
    fp = None
    try:
        host.request("PATCH", "/1.0", {"config": {"images.compression_algorithm": "xz",
                                                  "backups.compression_algorithm": "none"}})
        r = host.request("POST", f"/1.0/instances/{c}/backups", {"name": "b0"})
        assert host.wait_op(r)["status"] == "Success"
        raw = host.get(f"/1.0/instances/{c}/backups/b0/export").body
        assert raw[257:262] == b"ustar"   # a plain tar: backups.compression_algorithm=none
        r = host.request("POST", "/1.0/images", {"source": {"type": "instance", "name": c}})
        res = host.wait_op(r)
        assert res["status"] == "Success", res
        fp = res["metadata"]["fingerprint"]
        body = host.get(f"/1.0/images/{fp}/export").body
        assert body[:6] == b"\xfd7zXZ\x00"   # xz: images.compression_algorithm
    finally:
        host.request("PATCH", "/1.0", {"config": {"images.compression_algorithm": "",
                                                  "backups.compression_algorithm": ""}})
        if fp:
            host.request("DELETE", f"/1.0/images/{fp}")
        host.lxc("delete", "-f", c, check=False)


# ---- core.proxy_https: outbound image downloads go through the proxy -----------------------------

def test_image_pull_goes_through_core_proxy_https(host):
    import socket
    import threading
    seen: list[bytes] = []
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(20)
    port = srv.getsockname()[1]

    def serve():
        try:
            conn, _ = srv.accept()
            with conn:
                conn.settimeout(10)
                seen.append(conn.recv(4096))
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        except OSError:
            pass
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        host.request("PATCH", "/1.0", {"config": {"core.proxy_https": f"http://127.0.0.1:{port}"}})
        r = host.request("POST", "/1.0/images", {"source": {"type": "image", "mode": "pull",
                                                            "server": "https://images.invalid:8443",
                                                            "protocol": "lxd", "alias": "busybox"}})
        res = host.wait_op(r)
        assert res["status"] == "Failure"
        t.join(20)
        assert seen and seen[0].startswith(b"CONNECT images.invalid:8443 "), seen
        # An ignored host is reached directly: a closed loopback port, and the proxy sees nothing.
        host.request("PATCH", "/1.0", {"config": {"core.proxy_ignore_hosts": "127.0.0.1"}})
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
        closed.close()
        r = host.request("POST", "/1.0/images", {"source": {"type": "image", "mode": "pull",
                                                            "server": f"https://127.0.0.1:{closed_port}",
                                                            "protocol": "lxd", "alias": "busybox"}})
        assert host.wait_op(r)["status"] == "Failure"
        srv.settimeout(0.5)
        with pytest.raises(OSError):
            srv.accept()
    finally:
        host.request("PATCH", "/1.0", {"config": {"core.proxy_https": "", "core.proxy_ignore_hosts": ""}})
        srv.close()
