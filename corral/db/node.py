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
            _lib = lib
    return _lib


class Node:
    """One dqlite node: id, address ("127.0.0.1:PORT" or "@abstract") and data directory."""

    def __init__(self, node_id: int, address: str, data_dir: str, latency_ms: int = 20):
        self.node_id = node_id
        self.address = address
        self.data_dir = data_dir
        self.latency_ms = latency_ms
        self._ptr = ctypes.c_void_p()
        self._running = False

    def _check(self, rc: int, what: str):
        if rc != 0:
            msg = ""
            if self._ptr:
                raw = _load().dqlite_node_errmsg(self._ptr)
                msg = raw.decode(errors="replace") if raw else ""
            raise DqliteError(f"dqlite {what} failed (rc={rc}): {msg}")

    def start(self):
        lib = _load()
        os.makedirs(self.data_dir, mode=0o700, exist_ok=True)
        rc = lib.dqlite_node_create(self.node_id, self.address.encode(), self.data_dir.encode(),
                                    ctypes.byref(self._ptr))
        self._check(rc, "node create")
        self._check(lib.dqlite_node_set_bind_address(self._ptr, self.address.encode()), "bind")
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
