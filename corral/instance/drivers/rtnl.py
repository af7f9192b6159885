"""A minimal rtnetlink client: dump the links and addresses of one network namespace.

The instance state of a listing reads every running container's interfaces; pyroute2's generic
message machinery cost about a millisecond per container, most of a `recursion=2` listing. This
reads exactly the attributes the state shows (name, flags, MTU, MAC, operstate, 64-bit counters,
link kind and peer; addresses) with `struct`, over a plain netlink socket made inside the netns.

Sockets are made with setns(2) on the calling thread, which then returns to its own netns: call
this from one dedicated thread (netstate.py does).
"""
from __future__ import annotations

import os
import socket
import struct

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_GETADDR = 16, 18, 20, 22
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_OPERSTATE, IFLA_LINKINFO, IFLA_STATS64 = 1, 3, 4, 5, 16, 18, 23
IFLA_INFO_KIND = 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
NLA_TYPE_MASK = 0x3FFF   # without NLA_F_NESTED / NLA_F_NET_BYTEORDER
OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")
STATS64 = ("rx_packets", "tx_packets", "rx_bytes", "tx_bytes", "rx_errors", "tx_errors", "rx_dropped", "tx_dropped")

_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")
_IFADDRMSG = struct.Struct("=BBBBI")
_RTATTR = struct.Struct("=HH")
_STATS = struct.Struct("=8Q")


def _attrs(data: bytes, offset: int) -> dict[int, bytes]:
    out = {}
    end = len(data)
    while offset + 4 <= end:
        length, kind = _RTATTR.unpack_from(data, offset)
        if length < 4:
            break
        out[kind & NLA_TYPE_MASK] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return out


def _str(v: bytes | None) -> str | None:
    return v.split(b"\0", 1)[0].decode(errors="replace") if v is not None else None


class Link:
    """One RTM_NEWLINK: the fields netstate reads."""
    __slots__ = ("index", "flags", "name", "mtu", "address", "operstate", "stats", "kind", "link")

    def __init__(self, payload: bytes):
        _, _, self.index, self.flags, _ = _IFINFOMSG.unpack_from(payload, 0)
        a = _attrs(payload, _IFINFOMSG.size)
        self.name = _str(a.get(IFLA_IFNAME)) or ""
        self.mtu = struct.unpack("=I", a[IFLA_MTU][:4])[0] if len(a.get(IFLA_MTU, b"")) >= 4 else 0
        mac = a.get(IFLA_ADDRESS)
        self.address = ":".join(f"{b:02x}" for b in mac) if mac else ""
        op = a.get(IFLA_OPERSTATE)
        self.operstate = OPERSTATES[op[0]] if op and op[0] < len(OPERSTATES) else "UNKNOWN"
        st = a.get(IFLA_STATS64)
        self.stats = dict(zip(STATS64, _STATS.unpack_from(st, 0))) if st and len(st) >= _STATS.size else None
        info = a.get(IFLA_LINKINFO)
        self.kind = _str(_attrs(info, 0).get(IFLA_INFO_KIND)) if info else None
        peer = a.get(IFLA_LINK)
        self.link = struct.unpack("=I", peer[:4])[0] if peer and len(peer) >= 4 else 0


class Addr:
    """One RTM_NEWADDR: family, prefix length, interface index and the address."""
    __slots__ = ("family", "prefixlen", "index", "address")

    def __init__(self, payload: bytes):
        self.family, self.prefixlen, _, _, self.index = _IFADDRMSG.unpack_from(payload, 0)
        a = _attrs(payload, _IFADDRMSG.size)
        raw = a.get(IFA_LOCAL) or a.get(IFA_ADDRESS)
        try:
            self.address = socket.inet_ntop(self.family, raw) if raw else None
        except (ValueError, OSError):
            self.address = None


class NetnsSocket:
    """A NETLINK_ROUTE socket inside the network namespace of `pid` (it stays there for its life)."""

    def __init__(self, pid: int):
        target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.setns(target, os.CLONE_NEWNET)
            try:
                self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
            finally:
                os.setns(own, os.CLONE_NEWNET)
        finally:
            os.close(target)
            os.close(own)
        self._sock.bind((0, 0))
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def _dump(self, msgtype: int, body: bytes, want: int) -> list[bytes]:
        self._seq += 1
        seq = self._seq
        self._sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), msgtype, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body)
        out = []
        while True:
            data = self._sock.recv(1 << 16)
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, kind, _, mseq, _ = _NLMSGHDR.unpack_from(data, offset)
                if length < _NLMSGHDR.size:
                    raise OSError("malformed netlink message")
                if mseq == seq:
                    if kind == NLMSG_DONE:
                        return out
                    if kind == NLMSG_ERROR:
                        err = struct.unpack_from("=i", data, offset + _NLMSGHDR.size)[0]
                        if err:
                            raise OSError(-err, os.strerror(-err))
                        return out
                    if kind == want:
                        out.append(data[offset + _NLMSGHDR.size:offset + length])
                offset += (length + 3) & ~3

    def links(self) -> list[Link]:
        return [Link(p) for p in self._dump(RTM_GETLINK, _IFINFOMSG.pack(0, 0, 0, 0, 0), RTM_NEWLINK)]

    def addrs(self) -> list[Addr]:
        return [Addr(p) for p in self._dump(RTM_GETADDR, _IFADDRMSG.pack(0, 0, 0, 0, 0), RTM_NEWADDR)]
