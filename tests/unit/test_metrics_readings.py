"""The metrics of one container from its cgroup files (v1 and cgroup2 layouts, in a temp dir),
and their exposition with LXD 5.0's names, labels and order."""
from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from corral.instance.drivers.cgroups import Cgroups
from corral.metrics import container
from corral.metrics.collectors import InstanceCollector, render
from corral.metrics.families import FAMILIES, NAMES
from corral.metrics.scrape import Reading

V1_STAT = """cache 12288
rss 184320
shmem 4096
mapped_file 8192
dirty 4096
writeback 0
swap 0
inactive_anon 176128
active_anon 12288
inactive_file 4096
active_file 8192
unevictable 0
total_cache 999999
"""


def _files(root, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).write_text(text)


def test_v1_memory_cpu_disk(tmp_path):
    _files(tmp_path, {"memory.stat": V1_STAT, "memory.usage_in_bytes": "600000\n",
                      "memory.limit_in_bytes": "9223372036854771712\n", "memory.memsw.usage_in_bytes": "700000\n",
                      "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
                      "cpuacct.usage_all": "cpu user system\n0 1000000000 8000000\n1 0 500000000\n",
                      "blkio.throttle.io_service_bytes_recursive": "7:0 Read 4096\n7:0 Write 8192\nTotal 12288\n",
                      "blkio.throttle.io_serviced_recursive": "7:0 Read 1\n7:0 Write 2\nTotal 3\n"})
    cg = Cgroups({"memory": str(tmp_path), "cpuacct": str(tmp_path), "blkio": str(tmp_path)})
    host = container.Host(mem_total=2_000_000, block_names={"7:0": "loop0"})
    out: dict = {}
    container._memory(cg, host, out)
    container._cpu(cg, out)
    container._disk(cg, host, out)
    val = {k: v[0][1] for k, v in out.items() if len(v) == 1}
    assert val["memory_MemTotal"] == 2_000_000            # unlimited: the host's memory
    assert val["memory_MemFree"] == 2_000_000 - 600_000
    assert val["memory_MemAvailable"] == 2_000_000 - 600_000 + 12288
    assert val["memory_Active"] == 12288 + 8192 and val["memory_Inactive"] == 176128 + 4096
    assert val["memory_RSS"] == 184320 and val["memory_Cached"] == 12288 and val["memory_Mapped"] == 8192
    assert val["memory_Swap"] == 100_000 and val["memory_OOM_kills"] == 2
    cpu = {(lab["cpu"], lab["mode"]): v for lab, v in out["cpu_seconds"]}
    assert cpu == {("0", "user"): 1.0, ("0", "system"): 0.008, ("1", "user"): 0.0, ("1", "system"): 0.5}
    assert out["disk_read_bytes"] == [({"device": "loop0"}, 4096)]
    assert out["disk_writes_completed"] == [({"device": "loop0"}, 2)]


def test_v2_memory_with_a_limit(tmp_path):
    _files(tmp_path, {"memory.stat": "anon 1000\nfile 500\nactive_anon 10\nactive_file 20\ninactive_anon 30\n"
                                     "inactive_file 40\nunevictable 0\nfile_dirty 1\nfile_writeback 2\n"
                                     "file_mapped 3\nshmem 4\n",
                      "memory.current": "1500\n", "memory.max": "100000\n", "memory.swap.current": "7\n",
                      "memory.events": "low 0\nhigh 0\nmax 0\noom 1\noom_kill 1\n",
                      "cpu.stat": "usage_usec 3000000\nuser_usec 2000000\nsystem_usec 1000000\n"})
    cg = Cgroups({"": str(tmp_path)})
    cg._file = lambda ctrl, name: str(tmp_path / name)   # every controller on cgroup2 here
    out: dict = {}
    container._memory(cg, container.Host(mem_total=10**9), out)
    container._cpu(cg, out)
    val = {k: v[0][1] for k, v in out.items()}
    assert val["memory_MemTotal"] == 100000 and val["memory_MemFree"] == 98500
    assert val["memory_RSS"] == 1000 and val["memory_Cached"] == 500 and val["memory_Dirty"] == 1
    assert val["memory_Swap"] == 7 and val["memory_OOM_kills"] == 1
    assert dict((lab["mode"], v) for lab, v in out["cpu_seconds"]) == {"user": 2.0, "system": 1.0}


def test_network_counters_from_proc_net_dev(tmp_path, monkeypatch):
    text = ("Inter-|   Receive                                                |  Transmit\n"
            " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo "
            "colls carrier compressed\n"
            "    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0 "
            "    0       0          0\n"
            "  eth0:     686       2    1    3    0     0          0         0     1110       7    4    5    0 "
            "    0       0          0\n")
    monkeypatch.setattr(container, "_read", lambda path: text if path == "/proc/42/net/dev" else None)
    out: dict = {}
    container._network(42, out)
    assert out["net_receive_bytes"] == [({"device": "eth0"}, 686), ({"device": "lo"}, 0)]
    assert out["net_receive_errs"][0][1] == 1 and out["net_receive_drop"][0][1] == 3
    assert out["net_transmit_packets"][0][1] == 7 and out["net_transmit_errs"][0][1] == 4
    assert out["net_transmit_drop"][0][1] == 5


def test_statfs_of_a_real_directory(tmp_path):
    fstype, avail, free, size = container.statfs(str(tmp_path))
    assert fstype and 0 <= avail <= free <= size and size > 0


def test_exposition_has_lxd_names_labels_and_order():
    readings = [
        Reading("c2", "default", "container", {"procs": [({}, 3)], "memory_RSS": [({}, 4096)],
                                               "fs_size": [({"device": "", "fstype": "ext4", "mountpoint": "/"}, 10)],
                                               "cpu_seconds": [({"cpu": "0", "mode": "user"}, 0.25)]}),
        Reading("c1", "p1", "container", {"procs": [({}, 1)]}),
    ]
    text = render(InstanceCollector(readings)).decode()
    assert text.endswith("# EOF\n")
    fams = list(text_string_to_metric_families(text))
    names = [f.name + ("_total" if f.type == "counter" else "") for f in fams]
    assert names == [n for n in NAMES if n in names]   # LXD's order
    assert set(names) == {"lxd_cpu_seconds_total", "lxd_filesystem_size_bytes", "lxd_memory_RSS_bytes",
                          "lxd_procs_total"}         # families without samples are left out
    by = {f.name: f for f in fams}
    assert by["lxd_procs_total"].type == "gauge" and by["lxd_cpu_seconds"].type == "counter"
    procs = {s.labels["name"]: (s.labels, s.value) for s in by["lxd_procs_total"].samples}
    assert procs["c1"] == ({"name": "c1", "project": "p1", "type": "container"}, 1.0)
    fs = by["lxd_filesystem_size_bytes"].samples[0].labels
    assert fs == {"device": "", "fstype": "ext4", "mountpoint": "/", "name": "c2", "project": "default"}
    assert "# HELP lxd_cpu_seconds_total The total number of CPU time used in seconds." in text
    assert "# TYPE lxd_cpu_seconds_total counter" in text


def test_family_types_follow_lxd():
    kinds = {name: kind for _, name, _, kind in FAMILIES}
    assert kinds["lxd_procs_total"] == "gauge" and kinds["lxd_memory_OOM_kills_total"] == "counter"
    assert all(kinds[n] == "gauge" for n in kinds if n.endswith("_bytes"))
    assert all(kinds[n] == "counter" for n in kinds if n.endswith("_total") and n != "lxd_procs_total")


def _reading(name: str, project: str, rss: float, cpu: float, devices=("eth0", "lo")) -> Reading:
    return Reading(name, project, "container", {
        "cpu_seconds": [({"cpu": "0", "mode": "system"}, cpu), ({"cpu": "0", "mode": "user"}, 0.0)],
        "fs_avail": [({"device": "", "fstype": "ext4", "mountpoint": "/"}, 8.2022879232e10)],
        "memory_RSS": [({}, rss)], "memory_MemTotal": [({}, 24683584000)],
        "net_receive_bytes": [({"device": d}, 686) for d in devices], "procs": [({}, 3)]})


def test_remembered_lines_give_what_the_library_writes():
    from corral.metrics.collectors import render_instances
    from corral.metrics.linememo import LineMemo
    memo = LineMemo()
    scrapes = [
        [_reading("a", "default", 4096, 0.008), _reading("b", "p1", 8192, 1.5)],
        [_reading("a", "default", 4096, 0.012), _reading("b", "p1", 8192, 1.5)],                 # one value moved
        [_reading("b", "p1", 12288, 1.5, ("eth0",)), _reading("c", "default", 0, 0.0)],          # one gone, one new
        [_reading("c", "default", 0, 0.0)],
        [_reading('we"ird\\', "default", float("nan"), float("inf"))],                            # escapes, NaN, +Inf
        [],
    ]
    for readings in scrapes:
        assert memo.render(readings) == render_instances(readings)
