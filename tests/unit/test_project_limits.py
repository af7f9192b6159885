"""corral/project_limits.py's pure checks, on hand-made project snapshots."""
import pytest

from corral import project_limits as pl
from corral.errors import Forbidden


def info(config, instances=(), profiles=None, volumes=(), reserved=0):
    profiles = profiles or {"default": {"name": "default", "config": {}, "devices": {}}}
    return pl.Info("p", dict(config), profiles,
                   [{"name": n, "type": "container", "config": c, "devices": {}, "profiles": ["default"]}
                    for n, c in instances], [{"name": n, "config": c} for n, c in volumes], reserved)


def test_iec_as_lxd_prints_it():
    assert [pl.iec(n) for n in (0, 1023, 1024, 1536, 256 * 1024 ** 2, 1024 ** 3, 3 * 1024 ** 4)] == \
        ["0B", "1023B", "1.0KiB", "1.5KiB", "256.0MiB", "1.0GiB", "3.0TiB"]


def test_counts_include_reservations():
    i = info({"limits.containers": "2"}, [("a", {})], reserved=1)
    with pytest.raises(Forbidden, match='Reached maximum number of instances of type "container" in project "p"'):
        pl.check_counts(i, "container")
    pl.check_counts(info({"limits.containers": "2"}, [("a", {})]), "container")
    pl.check_counts(info({"limits.virtual-machines": "0"}, [("a", {})]), "container")
    with pytest.raises(Forbidden, match='Reached maximum number of instances in project "p"'):
        pl.check_counts(info({"limits.instances": "1"}, [("a", {})]), "container")


def test_aggregate_needs_every_instance_to_set_the_key():
    with pytest.raises(Forbidden, match='Instance "b" in project "p" has no "limits.cpu" config'):
        pl.check_aggregates(info({"limits.cpu": "4"}, [("a", {"limits.cpu": "1"}), ("b", {})]), "x")
    profiles = {"default": {"name": "default", "config": {"limits.cpu": "2"}, "devices": {}}}
    pl.check_aggregates(info({"limits.cpu": "4"}, [("a", {}), ("b", {})], profiles), "x")
    with pytest.raises(Forbidden, match='Failed checking if x allowed: Reached maximum aggregate value "3"'):
        pl.check_aggregates(info({"limits.cpu": "3"}, [("a", {}), ("b", {})], profiles), "x")


def test_memory_parsing_and_percentages():
    with pytest.raises(Forbidden, match='Failed parsing "limits.memory" for instance "a"'):
        pl.check_aggregates(info({"limits.memory": "1GiB"}, [("a", {"limits.memory": "50%"})]), "x")
    assert pl.totals(info({}, [("a", {"limits.memory": "512MiB"}), ("b", {"limits.memory": "1GB"})]),
                     ["limits.memory"]) == {"limits.memory": 512 * 1024 ** 2 + 10 ** 9}


def test_disk_counts_root_disks_and_volumes():
    i = info({"limits.disk": "10GiB"}, volumes=[("v", {"size": "1GiB"}), ("w", {})])
    with pytest.raises(Forbidden, match='Custom volume "w" in project "p" has no "size" config set'):
        pl.check_aggregates(i, "x")
    i.volumes.pop()
    i.instances.append({"name": "a", "type": "container", "config": {}, "profiles": [],
                        "devices": {"root": {"type": "disk", "path": "/", "pool": "d", "size": "2GiB"}}})
    assert pl.totals(i, ["limits.disk"]) == {"limits.disk": 3 * 1024 ** 3}
    assert pl.state(i)["disk"] == {"limit": 10 * 1024 ** 3, "usage": 3 * 1024 ** 3}


def test_project_update_below_usage():
    i = info({}, [("a", {"limits.processes": "100"}), ("b", {"limits.processes": "50"})])
    with pytest.raises(Forbidden, match='"limits.processes" is too low: current total is "150"'):
        pl.check_project_update(i, {"limits.processes": "149"}, ["limits.processes"])
    pl.check_project_update(i, {"limits.processes": "150"}, ["limits.processes"])
    with pytest.raises(Forbidden, match="there currently are 2 total instances"):
        pl.check_project_update(i, {"limits.instances": "1"}, ["limits.instances"])
    # Unsetting a limit is always allowed.
    pl.check_project_update(i, {}, ["limits.instances", "limits.cpu"])


def test_state_unset_limits_are_minus_one():
    s = pl.state(info({}, [("a", {"limits.cpu": "2"})]))
    assert s["cpu"] == {"limit": -1, "usage": 2} and s["networks"] == {"limit": -1, "usage": 0}
    assert s["instances"] == s["containers"] == {"limit": -1, "usage": 1}
