"""CPU, memory and GPU inventory (LXD's resources API)."""
from __future__ import annotations

import os
import re

from corral.resources.sysfs import (
    SYS_CPU, SYS_NODE, _cpulist, _driver_version, _hexid, _int, _link_name, _ls, _meminfo, _natural, _numa, _pci_name, _pci_parent, _read, _size,
)


def _cpuinfo() -> dict[int, dict[str, str]]:
    cpus: dict[int, dict[str, str]] = {}
    for block in _read("/proc/cpuinfo").split("\n\n"):
        fields = {}
        for line in block.splitlines():
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
        if fields.get("processor", "").isdigit():
            cpus[int(fields["processor"])] = fields
    return cpus


def _khz_to_mhz(path: str) -> int:
    return _int(path) // 1000


def get_cpu() -> dict:
    info = _cpuinfo()
    isolated = _cpulist(_read(f"{SYS_CPU}/isolated"))
    ids = sorted(int(n[3:]) for n in _ls(SYS_CPU) if re.fullmatch(r"cpu\d+", n))
    sockets: dict[int, dict] = {}
    for cpu in ids:
        base = f"{SYS_CPU}/cpu{cpu}"
        topo = f"{base}/topology"
        sid = max(_int(f"{topo}/physical_package_id", 0), 0)
        sock = sockets.get(sid)
        if sock is None:
            fields = info.get(cpu, {})
            sock = sockets[sid] = {
                "name": fields.get("model name", fields.get("cpu model", "")),
                "vendor": fields.get("vendor_id", fields.get("vendor", "")),
                "socket": sid,
                "cache": _cache(base),
                "cores": {},
                "_freq": f"{base}/cpufreq",
            }
        core_id, die = _int(f"{topo}/core_id", cpu), max(_int(f"{topo}/die_id", 0), 0)
        core = sock["cores"].setdefault((die, core_id), {"core": core_id, "die": die, "threads": []})
        node = next((int(n[4:]) for n in _ls(base) if re.fullmatch(r"node\d+", n)), 0)
        core["threads"].append({
            "id": cpu,
            "numa_node": node,
            "thread": len(core["threads"]),
            "online": _read(f"{base}/online", "1") == "1",
            "isolated": cpu in isolated,
        })
        freq = _khz_to_mhz(f"{base}/cpufreq/scaling_cur_freq")
        if freq:
            core["frequency"] = freq
    out = []
    for sid in sorted(sockets):
        sock = sockets[sid]
        freq_dir = sock.pop("_freq")
        sock["cores"] = [sock["cores"][k] for k in sorted(sock["cores"])]
        freqs = [c["frequency"] for c in sock["cores"] if c.get("frequency")]
        extra = {
            "frequency": sum(freqs) // len(freqs) if freqs else 0,
            "frequency_minimum": _khz_to_mhz(f"{freq_dir}/cpuinfo_min_freq"),
            "frequency_turbo": _khz_to_mhz(f"{freq_dir}/cpuinfo_max_freq"),
        }
        sock.update({k: v for k, v in extra.items() if v})  # omitempty
        out.append(sock)
    return {"architecture": os.uname().machine, "sockets": out, "total": len(ids)}


def _cache(cpu_dir: str) -> list[dict]:
    caches = []
    for idx in _ls(f"{cpu_dir}/cache"):
        d = f"{cpu_dir}/cache/{idx}"
        if idx.startswith("index"):
            caches.append({"level": _int(f"{d}/level"), "type": _read(f"{d}/type"),
                           "size": _size(_read(f"{d}/size"))})
    return caches


# ---------------------------------------------------------------- memory
def get_memory() -> dict:
    mem = _meminfo("/proc/meminfo")
    hp_size = mem.get("Hugepagesize", 0)
    total = mem.get("MemTotal", 0)
    nodes = []
    for name in sorted(_ls(SYS_NODE), key=_natural):
        if re.fullmatch(r"node\d+", name):
            nm = _meminfo(f"{SYS_NODE}/{name}/meminfo")
            hp_total = nm.get("HugePages_Total", 0) * hp_size
            nodes.append({
                "numa_node": int(name[4:]),
                "hugepages_used": hp_total - nm.get("HugePages_Free", 0) * hp_size,
                "hugepages_total": hp_total,
                "used": nm.get("MemUsed", 0),
                "total": nm.get("MemTotal", 0),
            })
    hp_total = mem.get("HugePages_Total", 0) * hp_size
    free = sum(mem.get(k, 0) for k in ("MemFree", "Buffers", "Cached"))
    return {
        "nodes": nodes,
        "hugepages_total": hp_total,
        "hugepages_used": hp_total - mem.get("HugePages_Free", 0) * hp_size,
        "hugepages_size": hp_size,
        "used": total - free,
        "total": total,
    }


# ------------------------------------------------------------------- gpu
def get_gpu() -> dict:
    cards = []
    for name in _ls("/sys/class/drm"):
        if not re.fullmatch(r"card\d+", name):
            continue
        base = f"/sys/class/drm/{name}"
        pci = _pci_parent(f"{base}/device")
        driver = _link_name(f"{base}/device/driver")
        drm = {"id": int(name[4:]), "card_name": name,
               "card_device": _read(f"{base}/dev")}
        for sub in _ls(f"{base}/device/drm"):
            if sub.startswith("renderD"):
                drm["render_name"] = sub
                drm["render_device"] = _read(f"{base}/device/drm/{sub}/dev")
        vendor_id, product_id = _hexid(f"{pci}/vendor"), _hexid(f"{pci}/device")
        card = {"driver": driver, "driver_version": _driver_version(f"{base}/device"), "drm": drm,
                "numa_node": _numa(pci), "pci_address": os.path.basename(pci),
                "vendor": _pci_name(vendor_id), "vendor_id": vendor_id,
                "product": _pci_name(vendor_id, product_id), "product_id": product_id}
        cards.append({k: v for k, v in card.items() if v != ""})  # omitempty
    return {"cards": cards, "total": len(cards)}


# --------------------------------------------------------------- network
