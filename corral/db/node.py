"""A dqlite node run in-process through libdqlite0 (ctypes).

libdqlite runs the node (raft + the SQL engine) on its own thread; the daemon talks to it
over its bind address with the PyPI dqlite client, exactly as every other cluster member will.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

_lib = None
_lock = threading.Lock()


class DqliteError(RuntimeError):
    pass


# int (*connect)(void *arg, const char *address, int *fd): dqlite calls it from a libuv worker
# thread to open a raft connection to another member; it returns a connected fd (0 on success).
CONNECT_FUNC = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int))


def _load():
    global _lib
    with _lock:
        if _lib is None:
            name = ctypes.util.find_library("dqlite") or "libdqlite.so.0"
            try:
                lib = ctypes.CDLL(name)
            except OSError as e:
                raise DqliteError(f"libdqlite0 is not installed ({e}); run `make deps`") from e
            lib.dqlite_node_create.argtypes = [ctypes.c_uint64, ctypes.c_char_p, ctypes.c_char_p,
                                               ctypes.POINTER(ctypes.c_void_p)]
            lib.dqlite_node_create.restype = ctypes.c_int
            lib.dqlite_node_set_bind_address.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            lib.dqlite_node_set_bind_address.restype = ctypes.c_int
            lib.dqlite_node_set_network_latency_ms.argtypes = [ctypes.c_void_p, ctypes.c_uint]
            lib.dqlite_node_set_network_latency_ms.restype = ctypes.c_int
            lib.dqlite_node_start.argtypes = [ctypes.c_void_p]
            lib.dqlite_node_start.restype = ctypes.c_int
            lib.dqlite_node_stop.argtypes = [ctypes.c_void_p]
            lib.dqlite_node_stop.restype = ctypes.c_int
            lib.dqlite_node_destroy.argtypes = [ctypes.c_void_p]
            lib.dqlite_node_destroy.restype = None
            lib.dqlite_node_errmsg.argtypes = [ctypes.c_void_p]
            lib.dqlite_node_errmsg.restype = ctypes.c_char_p
            lib.dqlite_node_set_connect_func.argtypes = [ctypes.c_void_p, CONNECT_FUNC, ctypes.c_void_p]
            lib.dqlite_node_set_connect_func.restype = ctypes.c_int
            lib.dqlite_node_recover_ext.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
            lib.dqlite_node_recover_ext.restype = ctypes.c_int
            lib.dqlite_node_set_failure_domain.argtypes = [ctypes.c_void_p, ctypes.c_ulonglong]
            lib.dqlite_node_set_failure_domain.restype = ctypes.c_int
            _lib = lib
    return _lib


class NodeInfoExt(ctypes.Structure):
    """dqlite.h's struct dqlite_node_info_ext (size, id, address pointer, dqlite_role)."""
    _fields_ = [("size", ctypes.c_uint64), ("id", ctypes.c_uint64), ("address", ctypes.c_uint64),
                ("dqlite_role", ctypes.c_uint64)]


def recover_config(lib, ptr, nodes: list[tuple[int, str, int]]) -> int:
    """Force the raft configuration of a created, not started node to `nodes` (id, address, role)."""
    keep = [ctypes.create_string_buffer(addr.encode()) for _, addr, _ in nodes]
    infos = (NodeInfoExt * len(nodes))(*[
        NodeInfoExt(ctypes.sizeof(NodeInfoExt), nid, ctypes.addressof(buf), role)
        for (nid, _, role), buf in zip(nodes, keep)])
    return lib.dqlite_node_recover_ext(ptr, infos, len(nodes))


class Node:
    """One dqlite node: id, address (its raft address: what the others dial, "IP:PORT" in a
    cluster) and data directory. `bind` is where it listens ("@abstract", default: `address`);
    `connect(address) -> fd` opens raft connections to the others (a cluster proxies them over TLS)."""

    def __init__(self, node_id: int, address: str, data_dir: str, latency_ms: int = 20, *,
                 bind: str | None = None, connect=None, failure_domain: int = 0):
        self.node_id = node_id
        self.address = address
        self.bind = bind or address
        self.data_dir = data_dir
        self.latency_ms = latency_ms
        self.failure_domain = failure_domain
        self._connect = connect
        self._connect_cb = None   # the ctypes callback, kept alive while the node lives
        self._ptr = ctypes.c_void_p()
        self._running = False

    def _connect_trampoline(self, _arg, address, fd_out) -> int:
        try:
            fd_out[0] = self._connect(address.decode())
            return 0
        except Exception:   # dqlite retries the connection later
            return 1

    def _check(self, rc: int, what: str):
        if rc != 0:
            msg = ""
            if self._ptr:
                raw = _load().dqlite_node_errmsg(self._ptr)
                msg = raw.decode(errors="replace") if raw else ""
            raise DqliteError(f"dqlite {what} failed (rc={rc}): {msg}")

    def start(self, recover: list[tuple[int, str, int]] | None = None):
        """Create and start the node; `recover` first rewrites its raft configuration (a member whose
        address changed: a standalone server becoming a cluster's first member)."""
        lib = _load()
        os.makedirs(self.data_dir, mode=0o700, exist_ok=True)
        rc = lib.dqlite_node_create(self.node_id, self.address.encode(), self.data_dir.encode(),
                                    ctypes.byref(self._ptr))
        self._check(rc, "node create")
        if recover:
            self._check(recover_config(lib, self._ptr, recover), "recover")
        self._check(lib.dqlite_node_set_bind_address(self._ptr, self.bind.encode()), "bind")
        if self._connect is not None:
            self._connect_cb = CONNECT_FUNC(self._connect_trampoline)
            self._check(lib.dqlite_node_set_connect_func(self._ptr, self._connect_cb, None), "connect func")
        if self.failure_domain:
            self._check(lib.dqlite_node_set_failure_domain(self._ptr, self.failure_domain), "failure domain")
        if self.latency_ms:
            self._check(lib.dqlite_node_set_network_latency_ms(self._ptr, self.latency_ms), "latency")
        self._check(lib.dqlite_node_start(self._ptr), "start")
        self._running = True

    def stop(self):
        if not self._ptr:
            return
        lib = _load()
        if self._running:
            lib.dqlite_node_stop(self._ptr)
            self._running = False
        lib.dqlite_node_destroy(self._ptr)
        self._ptr = ctypes.c_void_p()

    def recover(self, nodes: list[tuple[int, str, int]]) -> None:
        """Replace the raft configuration stored in this node's data directory by `nodes`
        ((raft id, address, role) with role 0 voter, 1 stand-by, 2 spare), through
        dqlite_node_recover_ext: a configuration entry appended to the raft log, so that the next
        start runs with it. Only on a node that is not running (no dqlite node of the cluster may
        run meanwhile); the data directory must hold the node's raft state. The node handle is
        created for the call and destroyed after it, so start() can follow."""
        if self._running:
            raise DqliteError("dqlite recover needs a stopped node")
        if not nodes:
            raise DqliteError("dqlite recover needs at least one node")
        for node_id, address, role in nodes:
            if int(node_id) <= 0 or not address or role not in (0, 1, 2):
                raise DqliteError(f"invalid raft node for recovery: id={node_id} address={address!r} "
                                  f"role={role}")
        if not os.path.isdir(self.data_dir):
            raise DqliteError(f"dqlite recover: no data directory {self.data_dir}")
        lib = _load()
        rc = lib.dqlite_node_create(self.node_id, self.address.encode(), self.data_dir.encode(),
                                    ctypes.byref(self._ptr))
        try:
            self._check(rc, "node create")
            self._check(recover_config(lib, self._ptr, nodes), "recover")
        finally:
            if self._ptr:
                lib.dqlite_node_destroy(self._ptr)
            self._ptr = ctypes.c_void_p()
