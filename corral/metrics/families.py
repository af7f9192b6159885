"""LXD 5.0's instance metrics: name, HELP text and Prometheus type, in LXD's output order
(lxd/metrics/types.go). Every sample carries the labels name and project, and type except the
filesystem ones (LXD 5.0.2 gives those device, fstype, mountpoint, name and project only)."""
from __future__ import annotations

COUNTER, GAUGE = "counter", "gauge"


def _family(key: str, name: str, help_text: str) -> tuple[str, str, str, str]:
    kind = GAUGE if key == "procs" or name.endswith("_bytes") else COUNTER
    return key, name, help_text, kind


_MEMORY = [
    ("Active_anon", "The amount of anonymous memory on active LRU list."),
    ("Active_file", "The amount of file-backed memory on active LRU list."),
    ("Active", "The amount of memory on active LRU list."),
    ("Cached", "The amount of cached memory."),
    ("Dirty", "The amount of memory waiting to get written back to the disk."),
    ("HugepagesFree", "The amount of free memory for hugetlb."),
    ("HugepagesTotal", "The amount of used memory for hugetlb."),
    ("Inactive_anon", "The amount of file-backed memory on inactive LRU list."),   # sic, as LXD
    ("Inactive_file", "The amount of file-backed memory on inactive LRU list."),
    ("Inactive", "The amount of memory on inactive LRU list."),
    ("Mapped", "The amount of mapped memory."),
    ("MemAvailable", "The amount of available memory."),
    ("MemFree", "The amount of free memory."),
    ("MemTotal", "The amount of used memory."),   # sic, as LXD
    ("RSS", "The amount of anonymous and swap cache memory."),
    ("Shmem", "The amount of cached filesystem data that is swap-backed."),
    ("Swap", "The amount of used swap memory."),
    ("Unevictable", "The amount of unevictable memory."),
    ("Writeback", "The amount of memory queued for syncing to disk."),
]

_NETWORK = [
    ("receive_bytes", "received bytes"), ("receive_drop", "received dropped bytes"),
    ("receive_errs", "received errors"), ("receive_packets", "received packets"),
    ("transmit_bytes", "transmitted bytes"), ("transmit_drop", "transmitted dropped bytes"),
    ("transmit_errs", "transmitted errors"), ("transmit_packets", "transmitted packets"),
]

FAMILIES: list[tuple[str, str, str, str]] = [
    _family("cpu_seconds", "lxd_cpu_seconds_total", "The total number of CPU time used in seconds."),
    _family("disk_read_bytes", "lxd_disk_read_bytes_total", "The total number of bytes read."),
    _family("disk_reads_completed", "lxd_disk_reads_completed_total", "The total number of completed reads."),
    _family("disk_written_bytes", "lxd_disk_written_bytes_total", "The total number of bytes written."),
    _family("disk_writes_completed", "lxd_disk_writes_completed_total", "The total number of completed writes."),
    _family("fs_avail", "lxd_filesystem_avail_bytes", "The number of available space in bytes."),
    _family("fs_free", "lxd_filesystem_free_bytes", "The number of free space in bytes."),
    _family("fs_size", "lxd_filesystem_size_bytes", "The size of the filesystem in bytes."),
    *(_family(f"memory_{k}", f"lxd_memory_{k}_bytes", text) for k, text in _MEMORY),
    _family("memory_OOM_kills", "lxd_memory_OOM_kills_total", "The number of out of memory kills."),
    *(_family(f"net_{k}", f"lxd_network_{k}_total", f"The amount of {text} on a given interface.")
      for k, text in _NETWORK),
    _family("procs", "lxd_procs_total", "The number of running processes."),
]
BY_KEY = {f[0]: f for f in FAMILIES}
NAMES = [f[1] for f in FAMILIES]
# The samples of these families have no "type" label in LXD 5.0.2.
UNTYPED = frozenset({"fs_avail", "fs_free", "fs_size"})
