"""The `clustering_groups` API extension's check (imported by test_extensions.py), on the loopback
pair of ext_cluster_checks.py: groups made, assigned, shown, renamed and deleted with the real
client from either member, and `--target @GROUP` naming an unknown group refused."""
from __future__ import annotations

import yaml

from ext_cluster_checks import pair
from helpers import unique


def check_clustering_groups(d, c):
    a, b = pair()
    # a standalone server has none
    r = d.get("/1.0/cluster/groups")
    assert (r.status, r.json["error"]) == (400, "This server is not clustered"), r.body
    g, new = unique("grp"), unique("grp")
    a.lxc("cluster", "group", "create", g)
    try:
        a.lxc("cluster", "group", "assign", b.name, f"default,{g}")
        assert yaml.safe_load(b.lxc("cluster", "group", "show", g).stdout) == \
            {"description": "", "members": [b.name], "name": g}
        assert g in yaml.safe_load(a.lxc("cluster", "show", b.name).stdout)["groups"]
        listed = {x["name"]: x for x in yaml.safe_load(b.lxc("cluster", "group", "list", "--format", "yaml").stdout)}
        assert listed["default"]["members"] == [a.name, b.name]
        b.lxc("cluster", "group", "rename", g, new)
        g = new
        assert a.get(f"/1.0/cluster/groups/{g}").metadata["members"] == [b.name]
        r = a.lxc("init", unique("c"), "--empty", "--target", "@no-such-group", check=False)
        assert r.returncode != 0 and 'Cluster group "no-such-group" doesn\'t exist' in r.stderr, r.stderr
    finally:
        a.lxc("cluster", "group", "remove", b.name, g, check=False)
        a.lxc("cluster", "group", "delete", g, check=False)
    assert g not in [u.rsplit("/", 1)[1] for u in a.get("/1.0/cluster/groups").metadata]
