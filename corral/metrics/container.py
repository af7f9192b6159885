"""One running container's metrics, read the way LXD 5.0 reads them: from its cgroups (v1
hierarchies or cgroup2, whichever holds each controller on this host), the network counters of its
netns (/proc/<init pid>/net/dev: every interface, `lo` included, as LXD lists them) and a statfs
of its root filesystem. Nothing goes through LXCFS or liblxc's command socket.

`read(target, host)` returns {family key: [(labels, value), ...]} with the family keys of
corral/metrics/families.py; the caller adds the name/project/type labels.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass, field

from corral.instance.drivers import cgroups

_V1_MEMORY = {   # LXD's memory metric <- v1 memory.stat key
    "Active_anon": "active_anon", "Active_file": "active_file", "Inactive_anon": "inactive_anon",
    "Inactive_file": "inactive_file", "Unevictable": "unevictable", "Writeback": "writeback",
    "Dirty": "dirty", "Mapped": "mapped_file", "RSS": "rss", "Shmem": "shmem", "Cached": "cache",
}
_V2_MEMORY = {   # ... <- cgroup2 memory.stat key
    "Active_anon": "active_anon", "Active_file": "active_file", "Inactive_anon": "inactive_anon",
    "Inactive_file": "inactive_file", "Unevictable": "unevictable", "Writeback": "file_writeback",
    "Dirty": "file_dirty", "Mapped": "file_mapped", "RSS": "anon", "Shmem": "shmem", "Cached": "file",
}
_NET_FIELDS = {0: "net_receive_bytes", 1: "net_receive_packets", 2: "net_receive_errs", 3: "net_receive_drop",
               8: "net_transmit_bytes", 9: "net_transmit_packets", 10: "net_transmit_errs", 11: "net_transmit_drop"}
# statfs f_type -> name (linux/magic.h), for the fstype label.
_FSTYPES = {0xEF53: "ext4", 0x9123683E: "btrfs", 0x58465342: "xfs", 0x01021994: "tmpfs", 0x2FC12FC1: "zfs",
            0x794C7630: "overlay", 0x6969: "nfs", 0x65735546: "fuse", 0x5346544E: "ntfs", 0xF2F52010: "f2fs",
            0x73717368: "squashfs", 0x858458F6: "ramfs"}


@dataclass
class Target:
    """A running container to read: its API name, project and type, its liblxc name and init pid,
    and its root filesystem on the host ("" when not known)."""
    name: str
    project: str
    type: str
    dname: str
    pid: int
    rootfs: str = ""


@dataclass
class Host:
    """What a scrape reads once for all containers."""
    mem_total: int = 0
    block_names: dict[str, str] = field(default_factory=dict)   # "major:minor" -> device name

    @classmethod
    def now(cls) -> "Host":
        total = 0
        for line in (_read("/proc/meminfo") or "").splitlines():
            if line.startswith("MemTotal:"):
                total = int(line.split()[1]) * 1024
                break
        return cls(mem_total=total)

    def block_name(self, majmin: str) -> str:
        name = self.block_names.get(majmin)
        if name is None:
            name = majmin
            for line in (_read(f"/sys/dev/block/{majmin}/uevent") or "").splitlines():
                if line.startswith("DEVNAME="):
                    name = line[8:]
            self.block_names[majmin] = name
        return name


def _read(path: str | None) -> str | None:
    if not path:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunk = os.read(fd, 65536)
        if len(chunk) < 65536:   # procfs and cgroupfs fill the buffer: a short read is the end
            return chunk.decode(errors="replace")
        chunks = [chunk]
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def _int(text: str | None) -> int:
    try:
        return int(text) if text is not None else 0
    except ValueError:
        return 0


def _kv(text: str | None) -> dict[str, int]:
    out = {}
    for line in (text or "").splitlines():
        k, _, v = line.partition(" ")
        if v.lstrip("-").isdigit():
            out[k] = int(v)
    return out


class _Statfs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("f_bsize", ctypes.c_long), ("f_blocks", ctypes.c_ulong),
                ("f_bfree", ctypes.c_ulong), ("f_bavail", ctypes.c_ulong), ("f_files", ctypes.c_ulong),
                ("f_ffree", ctypes.c_ulong), ("f_fsid", ctypes.c_int * 2), ("f_namelen", ctypes.c_long),
                ("f_frsize", ctypes.c_long), ("f_flags", ctypes.c_long), ("f_spare", ctypes.c_long * 4)]


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.statfs.argtypes = [ctypes.c_char_p, ctypes.POINTER(_Statfs)]


def statfs(path: str) -> tuple[str, int, int, int] | None:
    """(fstype, available, free, size) in bytes of the filesystem holding `path`."""
    st = _Statfs()
    if _libc.statfs(os.fsencode(path), ctypes.byref(st)) != 0:
        return None
    bs = st.f_bsize
    return (_FSTYPES.get(st.f_type & 0xFFFFFFFF, f"0x{st.f_type & 0xFFFFFFFF:x}"),
            st.f_bavail * bs, st.f_bfree * bs, st.f_blocks * bs)


def _memory(cg: cgroups.Cgroups, host: Host, out: dict) -> None:
    v1 = "memory" in cg.paths
    stat = _kv(_read(cg.file("memory", "memory.stat")))
    if not stat:
        return
    keys = _V1_MEMORY if v1 else _V2_MEMORY
    mem = {k: stat.get(src, 0) for k, src in keys.items()}
    mem["Active"] = mem["Active_anon"] + mem["Active_file"]
    mem["Inactive"] = mem["Inactive_anon"] + mem["Inactive_file"]
    if v1:
        usage = _int(_read(cg.file("memory", "memory.usage_in_bytes")))
        limit = _int(_read(cg.file("memory", "memory.limit_in_bytes")))
        memsw = _read(cg.file("memory", "memory.memsw.usage_in_bytes"))
        mem["Swap"] = max(0, _int(memsw) - usage) if memsw is not None else stat.get("swap", 0)
        oom = _kv(_read(cg.file("memory", "memory.oom_control"))).get("oom_kill")
    else:
        usage = _int(_read(cg.file("memory", "memory.current")))
        raw = (_read(cg.file("memory", "memory.max")) or "max").strip()
        limit = 0 if raw == "max" else _int(raw)
        mem["Swap"] = _int(_read(cg.file("memory", "memory.swap.current")))
        oom = _kv(_read(cg.file("memory", "memory.events"))).get("oom_kill")
    total = limit if 0 < limit < host.mem_total else host.mem_total
    mem["MemTotal"] = total
    mem["MemFree"] = max(0, total - usage)
    mem["MemAvailable"] = mem["MemFree"] + mem["Cached"]
    for k, v in mem.items():
        out[f"memory_{k}"] = [({}, v)]
    if oom is not None:
        out["memory_OOM_kills"] = [({}, oom)]


def _cpu(cg: cgroups.Cgroups, out: dict) -> None:
    if "cpuacct" in cg.paths:
        rows = (_read(cg.file("cpuacct", "cpuacct.usage_all")) or "").splitlines()[1:]
        samples = []
        for row in rows:
            parts = row.split()
            if len(parts) == 3 and parts[0].isdigit():
                samples.append(({"cpu": parts[0], "mode": "system"}, int(parts[2]) / 1e9))
                samples.append(({"cpu": parts[0], "mode": "user"}, int(parts[1]) / 1e9))
        out["cpu_seconds"] = samples
        return
    stat = _kv(_read(cg.file("cpu", "cpu.stat")))
    if stat:
        out["cpu_seconds"] = [({"mode": "system"}, stat.get("system_usec", 0) / 1e6),
                              ({"mode": "user"}, stat.get("user_usec", 0) / 1e6)]


def _disk(cg: cgroups.Cgroups, host: Host, out: dict) -> None:
    per: dict[str, dict[str, int]] = {}
    if "blkio" in cg.paths:
        for fname, rkey, wkey in (("blkio.throttle.io_service_bytes_recursive", "disk_read_bytes",
                                   "disk_written_bytes"),
                                  ("blkio.throttle.io_serviced_recursive", "disk_reads_completed",
                                   "disk_writes_completed")):
            for line in (_read(cg.file("blkio", fname)) or "").splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[1] in ("Read", "Write"):
                    d = per.setdefault(parts[0], {})
                    d[rkey if parts[1] == "Read" else wkey] = int(parts[2])
    else:
        for line in (_read(cg.file("io", "io.stat")) or "").splitlines():
            majmin, *fields = line.split()
            kv = dict(f.split("=", 1) for f in fields if "=" in f)
            per[majmin] = {"disk_read_bytes": _int(kv.get("rbytes")), "disk_written_bytes": _int(kv.get("wbytes")),
                           "disk_reads_completed": _int(kv.get("rios")),
                           "disk_writes_completed": _int(kv.get("wios"))}
    for majmin in sorted(per):
        labels = {"device": host.block_name(majmin)}
        for key in ("disk_read_bytes", "disk_reads_completed", "disk_written_bytes", "disk_writes_completed"):
            out.setdefault(key, []).append((labels, per[majmin].get(key, 0)))


def _network(pid: int, out: dict) -> None:
    lines = (_read(f"/proc/{pid}/net/dev") or "").splitlines()[2:]
    rows = []
    for line in lines:
        dev, _, rest = line.partition(":")
        values = rest.split()
        if len(values) >= 16:
            rows.append((dev.strip(), values))
    for dev, values in sorted(rows):
        for idx, key in _NET_FIELDS.items():
            out.setdefault(key, []).append(({"device": dev}, int(values[idx])))


def read(t: Target, host: Host) -> dict[str, list[tuple[dict, float]]]:
    """The readings of one running container (empty when it stopped meanwhile)."""
    out: dict[str, list[tuple[dict, float]]] = {}
    try:
        cg = cgroups.of_pid(t.pid, t.dname)
    except OSError:
        return out
    _cpu(cg, out)
    _disk(cg, host, out)
    if t.rootfs and (fs := statfs(t.rootfs)) is not None:
        labels = {"device": "", "fstype": fs[0], "mountpoint": "/"}
        out["fs_avail"], out["fs_free"], out["fs_size"] = [(labels, fs[1])], [(labels, fs[2])], [(labels, fs[3])]
    _memory(cg, host, out)
    _network(t.pid, out)
    out["procs"] = [({}, cg.processes())]
    return out
