"""LXD's InstanceState of a virtual machine: from its agent when it answers, else from QEMU (QMP) and the
host side of its NICs, as LXD shows a VM whose agent is not running (processes -1, no guest addresses)."""
from __future__ import annotations

from corral.instance.model import STATUS_CODES
from corral.network import host


def render(status: str, pid: int, cfg: dict, agent: dict | None, qmp: dict | None,
           leases: dict[str, list[tuple[str, str]]] | None = None) -> dict:
    """`leases`: MAC -> [(address, prefix length)] the managed networks' DHCP servers gave out (LXD's
    fallback for the addresses of a VM whose agent does not answer)."""
    out = {"status": status, "status_code": STATUS_CODES.get(status, 112), "disk": {},
           "memory": {"usage": 0, "usage_peak": 0, "swap_usage": 0, "swap_usage_peak": 0},
           "network": None, "pid": pid if status != "Stopped" else 0, "processes": 0, "cpu": {"usage": 0}}
    if status == "Stopped":
        return out
    if agent is not None:
        out["processes"] = agent.get("processes", 0)
        out["memory"].update(agent.get("memory") or {})
        out["network"] = agent.get("network") or {}
        out["disk"] = agent.get("disk") or {}
        if agent.get("cpu"):
            out["cpu"] = agent["cpu"]
        return out
    out["processes"] = -1
    if qmp is not None:
        out["memory"]["total"] = qmp.get("memory", 0)
    out["network"] = _host_nics(cfg, leases or {})
    return out


def _host_nics(cfg: dict, leases: dict[str, list[tuple[str, str]]]) -> dict:
    """Each NIC as the host sees its tap (counters, MAC): no guest addresses without the agent."""
    nets = {}
    for key, value in cfg.items():
        if not (key.startswith("volatile.") and key.endswith(".host_name")) or not value:
            continue
        dev = key[len("volatile."):-len(".host_name")]
        st = host.link_state(value)
        if st is None:
            continue
        st = dict(st)
        c = dict(st["counters"])   # the tap's receive is the guest's send
        for a, b in (("bytes_received", "bytes_sent"), ("packets_received", "packets_sent"),
                     ("errors_received", "errors_sent"), ("packets_dropped_inbound", "packets_dropped_outbound")):
            c[a], c[b] = st["counters"][b], st["counters"][a]
        st["counters"] = c
        st["hwaddr"] = cfg.get(f"volatile.{dev}.hwaddr", st.get("hwaddr", ""))
        st["addresses"] = [{"family": "inet6" if ":" in ip else "inet", "address": ip, "netmask": prefix,
                            "scope": "global"} for ip, prefix in leases.get(st["hwaddr"].lower(), [])]
        st["host_name"] = value
        nets[dev] = st
    return nets
