"""Issue 9, finding 10: size overflow, alias names, host paths in errors, `lxc list --all-projects`."""
import os
from urllib.parse import quote

import pytest

from helpers import unique


@pytest.fixture(scope="module")
def inst(host):
    name = unique("f10")
    host.lxc("init", "busybox", name)
    yield name
    host.lxc("delete", "-f", name, check=False)


# ---- sizes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("size", ["99999999999TB", "8EiB", "9223372036854775808", "10000000EB", "1" + "0" * 5000 + "B"])
def test_sizes_past_int64_are_refused(host, inst, size):
    r = host.request("PATCH", f"/1.0/instances/{inst}", {"config": {"limits.memory": size}})
    assert r.status == 400, r.body
    assert "Overflow" in r.json["error"] or "Invalid integer" in r.json["error"], r.body
    res = host.lxc("config", "set", inst, "limits.memory", size[:100], check=False)
    assert res.returncode != 0 and ("Overflow" in res.stderr or "Invalid integer" in res.stderr), res.stderr
    assert "limits.memory" not in host.get(f"/1.0/instances/{inst}").metadata["config"]
    r = host.request("POST", "/1.0/storage-pools/default/volumes/custom",
                     {"name": unique("v"), "config": {"size": size}})
    assert r.status == 400, r.body
    r = host.request("PATCH", "/1.0/storage-pools/default", {"config": {"volume.size": size}})
    assert r.status == 400, r.body


def test_sizes_up_to_int64_still_accepted(host, inst):
    for size in ("7EiB", "9223372036854775807", "1.5GiB", "512MB"):
        r = host.request("PATCH", f"/1.0/instances/{inst}", {"config": {"limits.memory": size}})
        assert r.status == 200, (size, r.body)
    host.request("PATCH", f"/1.0/instances/{inst}", {"config": {"limits.memory": None}})
    host.lxc("config", "unset", inst, "limits.memory")


# ---- alias names -----------------------------------------------------------------------------

BAD_ALIASES = ["a/b", "..", ".", "a b", " lead", "tab\there", "new\nline", "x" * 256]


@pytest.mark.parametrize("alias", BAD_ALIASES)
def test_bad_alias_names_refused_everywhere(host, alias):
    fp = host.get("/1.0/images/aliases/busybox").metadata["target"]
    before = sorted(a["name"] for a in host.get("/1.0/images/aliases?recursion=1").metadata)
    r = host.request("POST", "/1.0/images/aliases", {"name": alias, "target": fp})
    assert r.status == 400, r.body
    r = host.request("POST", "/1.0/images/aliases/busybox", {"name": alias})
    assert r.status == 400, r.body
    res = host.lxc("image", "alias", "create", alias, fp, check=False)
    assert res.returncode != 0
    assert sorted(a["name"] for a in host.get("/1.0/images/aliases?recursion=1").metadata) == before


def test_good_alias_names_accepted(host):
    fp = host.get("/1.0/images/aliases/busybox").metadata["target"]
    for alias in (unique("al"), unique("ubuntu-22.04_") + ":x", unique("\u00e9t\u00e9")):
        assert host.request("POST", "/1.0/images/aliases", {"name": alias, "target": fp}).status in (200, 201)
        assert host.request("DELETE", f"/1.0/images/aliases/{quote(alias)}").status == 200


# ---- host paths in errors --------------------------------------------------------------------

def test_errors_do_not_print_host_paths(host, inst):
    """A storage collision (an instance volume on disk without its record) used to answer
    "Volume directory /var/lib/corral/storage-pools/default/containers/NAME already exists"."""
    name = unique("hp")
    host.lxc("init", "busybox", name)
    vol_dir = os.path.join(host.dir, "storage-pools", "default", "containers", name)
    assert os.path.isdir(vol_dir)
    try:
        host.run("corrald", "sql", "global", f"DELETE FROM instances WHERE name = '{name}'", check=True)
        r = host.request("POST", "/1.0/instances", {"name": name, "source": {"type": "image", "alias": "busybox"}})
        err = r.json["error"] if r.status != 202 else host.wait_op(r)["err"]
        assert err, r.body
        assert host.dir not in err and "/storage-pools/" not in err, err
        assert name in err and "already exists" in err, err
    finally:
        host.lxc("delete", "-f", name, check=False)
        host.run("rm", "-rf", vol_dir)


def test_file_and_upload_errors_do_not_print_host_paths(host, inst):
    checks = [
        host.request("POST", f"/1.0/instances/{inst}/files?path=/no/such/dir/f", raw=b"x",
                     headers={"Content-Type": "application/octet-stream", "X-LXD-type": "file"}),
        host.get(f"/1.0/instances/{inst}/files?path=/no/such/file"),
        host.request("POST", "/1.0/images", raw=b"garbage" * 100, headers={"Content-Type": "application/octet-stream"}),
        host.request("POST", f"/1.0/instances/{inst}/backups", {"name": "../x"}),
    ]
    for r in checks:
        text = r.body.decode(errors="replace")
        if r.status == 202:
            text = str(host.wait_op(r))
        assert host.dir not in text, text


# ---- lxc list --all-projects -------------------------------------------------------------------

def test_lxc_list_all_projects(host, inst):
    proj = unique("ap")
    other = unique("apc")
    host.lxc("project", "create", proj, "-c", "features.images=false")
    try:
        host.lxc("init", "busybox", other, "--project", proj, "-s", "default")
        assert "instance_all_projects" in host.get("/1.0").metadata["api_extensions"]
        out = host.lxc("list", "--all-projects", "-f", "csv").stdout.splitlines()
        assert f"default,{inst}" in [",".join(ln.split(",")[:2]) for ln in out], out
        assert f"{proj},{other}" in [",".join(ln.split(",")[:2]) for ln in out], out
    finally:
        host.lxc("delete", "-f", other, "--project", proj, check=False)
        host.lxc("project", "delete", proj, check=False)
