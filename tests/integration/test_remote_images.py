"""Images from remotes (issue 10, point 5): two corralds on 127.0.0.1, the real `lxc` client.

`lxc launch other:img c1` pulls the image into the local store as a cached image with its
update_source; a second launch reuses it; a rebuilt image on the other side is picked up by
`lxc image refresh` and by the auto-update task; an unused cached image expires; bad sources give
clear errors and leave nothing behind.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
from datetime import datetime, timedelta, timezone

import pytest

from corral.cli.busybox import build_busybox_image
from helpers import Corrald, free_port, images_by_fingerprint, import_image, unique, wait_for

pytestmark = pytest.mark.integration


# ---- set-up -------------------------------------------------------------------------------------

class Lxc:
    """The real `lxc` client with its own config dir; its local remote is `host`'s unix socket."""

    def __init__(self, local: Corrald):
        self.home = tempfile.mkdtemp(prefix="corral-lxc-home-")
        self.env = dict(local.env, HOME=self.home, LXD_CONF=os.path.join(self.home, "lxc"))

    def __call__(self, *args: str, check: bool = True, timeout: float = 180):
        res = subprocess.run(["lxc", *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"lxc {args} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res


@pytest.fixture(scope="module")
def other():
    d = Corrald()
    try:
        d.start()
        d.run("corrald", "init", "--auto", check=True)
        yield d
    finally:
        d.cleanup()


@pytest.fixture(scope="module")
def net(host, other):
    """Both daemons on HTTPS (127.0.0.1); an lxc client whose remote `other` was added with a token."""
    ports = {}
    for name, d in (("host", host), ("other", other)):
        ports[name] = free_port()
        r = d.request("PATCH", "/1.0", {"config": {"core.https_address": f"127.0.0.1:{ports[name]}"}})
        assert r.status == 200, r.body
    lxc = Lxc(host)
    token = other.lxc("config", "trust", "add", "--name", unique("cli")).stdout.strip().splitlines()[-1].strip()
    lxc("remote", "add", "other", token)
    env = other.get("/1.0").metadata["environment"]
    try:
        yield {"lxc": lxc, "server": f"https://127.0.0.1:{ports['other']}", "cert": env["certificate"],
               "host_cert": host.get("/1.0").metadata["environment"]["certificate"]}
    finally:
        shutil.rmtree(lxc.home, ignore_errors=True)


@pytest.fixture()
def workdir():
    d = tempfile.mkdtemp(prefix="corral-test-remoteimg-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture()
def cleanup(host, other):
    """Instances (on host) and images (on both) a test registers are removed afterwards."""
    made = {"instances": [], "host_images": set(), "other_images": set()}
    yield made
    for name in made["instances"]:
        host.lxc("delete", "-f", name, check=False)
    for d, key in ((host, "host_images"), (other, "other_images")):
        for fp in made[key]:
            if d.get(f"/1.0/images/{fp}").status == 200:
                d.wait_op(d.request("DELETE", f"/1.0/images/{fp}"))


def publish(other: Corrald, workdir: str, alias: str, made: dict, public: bool = True) -> str:
    """Build a busybox image of its own (a unique description makes a unique fingerprint), import it
    on `other` and point `alias` at it (created or moved). Returns its fingerprint."""
    path = build_busybox_image(os.path.join(workdir, unique("img")), description=f"busybox {unique('rev')}")
    fp = import_image(other, [path], alias, public)
    made["other_images"].add(fp)
    return fp


images = images_by_fingerprint


def store_files(d: Corrald) -> set[str]:
    return set(os.listdir(os.path.join(d.dir, "images")))


def run_task(d: Corrald, task: str, hour: int = 0) -> dict:
    r = d.request("POST", "/internal/testing/image-tasks", {"task": task, "hour": hour})
    assert r.status == 202, r.body
    op = d.wait_op(r)
    assert op["status"] == "Success", op
    return op["metadata"]


def set_config(d: Corrald, key: str, value: str) -> None:
    r = d.request("PATCH", "/1.0", {"config": {key: value}})
    assert r.status == 200, r.body


def age_image(d: Corrald, fp: str, days: float) -> None:
    """Make the image look unused for `days` days (an `lxd sql` recipe on LXD's images table; the
    one place this file writes SQL)."""
    when = (datetime.now(timezone.utc) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
    d.run("corrald", "sql", "global", f"UPDATE images SET last_use_date = '{when}', upload_date = '{when}' "
          f"WHERE fingerprint = '{fp}'", check=True)


def lifecycle_during(d: Corrald, trigger, count: int) -> list[dict]:
    """The first `count` lifecycle events sent while trigger() runs."""
    import aiohttp

    async def go():
        conn = aiohttp.UnixConnector(path=d.socket)
        async with aiohttp.ClientSession(connector=conn) as s:
            async with s.ws_connect("http://localhost/1.0/events?type=lifecycle") as ws:
                await asyncio.sleep(0.1)
                await asyncio.to_thread(trigger)
                return [json.loads((await ws.receive(timeout=30)).data)["metadata"] for _ in range(count)]
    return asyncio.run(go())


# ---- launching from a remote -----------------------------------------------------------------------

def test_launch_pulls_a_cached_image_and_the_next_launch_reuses_it(host, other, net, workdir, cleanup):
    lxc, alias = net["lxc"], unique("img")
    remote_fp = publish(other, workdir, alias, cleanup)
    before, files_before = images(host), store_files(host)
    c1, c2 = unique("ri"), unique("ri")
    cleanup["instances"] += [c1, c2]
    lxc("launch", f"other:{alias}", c1)
    after = images(host)
    new = set(after) - set(before)
    assert new == {remote_fp}
    cleanup["host_images"].add(remote_fp)
    img = after[remote_fp]
    assert img["cached"] is True and img["auto_update"] is True and img["public"] is False
    assert img["aliases"] == []
    assert img["update_source"] == {"alias": alias, "certificate": net["cert"], "protocol": "lxd",
                                    "server": net["server"], "image_type": ""}
    assert not img["last_used_at"].startswith("0001-")
    inst = host.get(f"/1.0/instances/{c1}").metadata
    assert inst["status"] == "Running"
    assert inst["config"]["volatile.base_image"] == remote_fp
    assert store_files(host) - files_before == {remote_fp}   # the original, no build leftovers
    info = lxc("image", "info", remote_fp[:12]).stdout
    assert "Cached: yes" in info and f"Server: {net['server']}" in info and f"Alias: {alias}" in info, info

    # Second launch: no new download (same single image, same upload time).
    lxc("launch", f"other:{alias}", c2)
    again = images(host)
    assert set(again) == set(after)
    assert again[remote_fp]["uploaded_at"] == img["uploaded_at"]
    assert again[remote_fp]["last_used_at"] >= img["last_used_at"]
    assert host.get(f"/1.0/instances/{c2}").metadata["config"]["volatile.base_image"] == remote_fp


def test_private_image_by_fingerprint_is_cached_without_auto_update(host, other, net, workdir, cleanup):
    """lxc sends a private image's fingerprint and a one-time secret: cached, but no source to
    update from (as LXD), so a refresh says why it cannot."""
    lxc, alias = net["lxc"], unique("priv")
    fp = publish(other, workdir, alias, cleanup, public=False)
    c = unique("ri")
    cleanup["instances"].append(c)
    lxc("init", f"other:{alias}", c)
    cleanup["host_images"].add(fp)
    img = images(host)[fp]
    assert img["cached"] is True and img["auto_update"] is False and "update_source" not in img
    r = lxc("image", "refresh", fp[:12], check=False)
    assert r.returncode != 0 and "no source to refresh from" in r.stderr, r.stderr


def test_auto_update_cached_false_keeps_the_source_without_auto_update(host, other, net, workdir, cleanup):
    lxc, alias = net["lxc"], unique("img")
    fp = publish(other, workdir, alias, cleanup)
    c = unique("ri")
    cleanup["instances"].append(c)
    try:
        set_config(host, "images.auto_update_cached", "false")
        lxc("init", f"other:{alias}", c)
    finally:
        set_config(host, "images.auto_update_cached", "")
    cleanup["host_images"].add(fp)
    img = images(host)[fp]
    assert img["cached"] is True and img["auto_update"] is False and img["update_source"]["alias"] == alias
    new = publish(other, workdir, alias, cleanup)
    cleanup["host_images"].add(new)
    assert fp not in run_task(host, "auto-update")["refreshed"]      # not an auto-update image
    assert fp in images(host) and new not in images(host)
    assert "Image refreshed successfully!" in lxc("image", "refresh", fp[:12]).stdout   # by hand it is
    now = images(host)
    assert fp not in now and now[new]["auto_update"] is True   # LXD's refresh downloads with auto_update


# ---- refreshing ------------------------------------------------------------------------------------

def test_lxc_image_refresh_picks_up_a_rebuilt_image(host, other, net, workdir, cleanup):
    lxc, alias = net["lxc"], unique("img")
    old = publish(other, workdir, alias, cleanup)
    c = unique("ri")
    cleanup["instances"].append(c)
    lxc("launch", f"other:{alias}", c)
    cleanup["host_images"].add(old)
    used = images(host)[old]["last_used_at"]
    assert "Image already up to date." in lxc("image", "refresh", old[:12]).stdout

    new = publish(other, workdir, alias, cleanup)   # rebuilt on the other side, same alias
    cleanup["host_images"].add(new)
    events = lifecycle_during(host, lambda: lxc("image", "refresh", old[:12]), 2)
    by_action = {e["action"]: e for e in events}
    assert by_action["image-refreshed"]["source"] == f"/1.0/images/{old}"
    assert by_action["image-created"]["source"] == f"/1.0/images/{new}"
    now = images(host)
    assert new in now and old not in now
    assert now[new]["cached"] is True and now[new]["auto_update"] is True
    assert now[new]["update_source"]["alias"] == alias
    assert now[new]["last_used_at"] == used                  # the old image's last use carries over
    assert old not in store_files(host) and new in store_files(host)
    assert host.get(f"/1.0/instances/{c}").metadata["status"] == "Running"   # its volume is its own
    assert "Image already up to date." in lxc("image", "refresh", new[:12]).stdout


def test_image_copy_with_auto_update_keeps_local_aliases_on_refresh(host, other, net, workdir, cleanup):
    lxc, alias, local = net["lxc"], unique("img"), unique("loc")
    old = publish(other, workdir, alias, cleanup)
    lxc("image", "copy", f"other:{alias}", "local:", "--auto-update", "--alias", local)
    cleanup["host_images"].add(old)
    img = images(host)[old]
    assert img["cached"] is False and img["auto_update"] is True and img["update_source"]["alias"] == alias
    new = publish(other, workdir, alias, cleanup)
    cleanup["host_images"].add(new)
    assert "Image refreshed successfully!" in lxc("image", "refresh", local).stdout
    assert host.get(f"/1.0/images/aliases/{local}").metadata["target"] == new
    now = images(host)
    assert old not in now and now[new]["cached"] is False and now[new]["auto_update"] is True


def test_auto_update_task_picks_up_a_rebuilt_image_when_due(host, other, net, workdir, cleanup):
    lxc, alias = net["lxc"], unique("img")
    old = publish(other, workdir, alias, cleanup)
    c = unique("ri")
    cleanup["instances"].append(c)
    lxc("init", f"other:{alias}", c)
    cleanup["host_images"].add(old)
    new = publish(other, workdir, alias, cleanup)
    cleanup["host_images"].add(new)
    try:
        set_config(host, "images.auto_update_interval", "0")     # 0 disables
        assert old not in run_task(host, "auto-update")["refreshed"]
        set_config(host, "images.auto_update_interval", "6")
        assert old not in run_task(host, "auto-update", hour=3)["refreshed"]   # not due at hour 3
        assert old in images(host)
        assert old in run_task(host, "auto-update", hour=6)["refreshed"]
    finally:
        set_config(host, "images.auto_update_interval", "")
    now = images(host)
    assert old not in now and now[new]["cached"] is True and now[new]["update_source"]["alias"] == alias
    # While auto-update is on, the next launch uses the cached image for that alias.
    c2 = unique("ri")
    cleanup["instances"].append(c2)
    lxc("init", f"other:{alias}", c2)
    assert host.get(f"/1.0/instances/{c2}").metadata["config"]["volatile.base_image"] == new
    assert set(images(host)) == set(now)


# ---- expiry ----------------------------------------------------------------------------------------

def test_unused_cached_image_expires(host, other, net, workdir, cleanup):
    lxc = net["lxc"]
    a1, a2 = unique("img"), unique("img")
    stale, fresh = publish(other, workdir, a1, cleanup), publish(other, workdir, a2, cleanup)
    for alias, fp in ((a1, stale), (a2, fresh)):
        c = unique("ri")
        lxc("init", f"other:{alias}", c)
        lxc("delete", c)
        cleanup["host_images"].add(fp)
    age_image(host, stale, 11)
    age_image(host, fresh, 9)
    try:
        set_config(host, "images.remote_cache_expiry", "0")      # 0 disables
        assert stale not in run_task(host, "expire")["expired"]
        set_config(host, "images.remote_cache_expiry", "10")
        out = run_task(host, "expire")["expired"]
    finally:
        set_config(host, "images.remote_cache_expiry", "")
    assert stale in out and fresh not in out
    now = images(host)
    assert stale not in now and fresh in now
    assert stale not in store_files(host)
    assert "busybox" in {a["name"] for i in now.values() for a in i["aliases"]}   # not cached: kept


# ---- bad input -------------------------------------------------------------------------------------

def _create(host, source: dict, name: str):
    return host.request("POST", "/1.0/instances", {"name": name, "source": {"type": "image", "mode": "pull",
                                                                           "protocol": "lxd", **source}})


def test_bad_sources_give_clear_errors_and_leave_nothing(host, other, net, workdir, cleanup):
    alias = unique("img")
    publish(other, workdir, alias, cleanup)
    imgs, files, insts = set(images(host)), store_files(host), host.get("/1.0/instances").metadata
    name = unique("bad")
    cleanup["instances"].append(name)
    cases = [
        ({"server": "ftp://127.0.0.1:1", "alias": alias}, 400, "https://"),
        ({"server": "https://127.0.0.1:1/\nx", "alias": alias}, 400, "control characters"),
        ({"server": "https://127.0.0.1:99999", "alias": alias}, 400, "bad port"),
        ({"server": net["server"], "alias": 5}, 400, "source.alias"),   # Go's decoder text, as LXD
        ({"server": net["server"], "alias": alias, "certificate": "not a certificate"}, 400,
         "Invalid source certificate"),
        ({"server": net["server"] + "/sub", "alias": alias}, 400, "expected https://host[:port]"),   # lxd: no path
        ({"server": net["server"], "alias": alias, "protocol": "ftp"}, 400, "protocol"),
        ({"server": net["server"]}, 400, "fingerprint or an alias"),
    ]
    for source, status, text in cases:
        r = _create(host, source, name)
        assert r.status == status and text in r.json["error"], (source, r.body)
    failing = [
        ({"server": net["server"], "alias": unique("nope"), "certificate": net["cert"]}, "not found"),
        ({"server": net["server"], "alias": alias, "certificate": net["host_cert"]},
         "certificate is not the one given"),
        ({"server": f"https://127.0.0.1:{free_port()}", "alias": alias, "certificate": net["cert"]},
         "Failed to connect"),
    ]
    for source, text in failing:
        r = _create(host, source, name)
        assert r.status == 202, r.body
        op = host.wait_op(r)
        assert op["status"] == "Failure" and text in op["err"], (source, op)
    assert set(images(host)) == imgs and store_files(host) == files
    assert host.get("/1.0/instances").metadata == insts
    # The client resolves the alias itself: an unknown one never reaches corrald.
    r = net["lxc"]("launch", f"other:{unique('nope')}", name, check=False)
    assert r.returncode != 0 and "not found" in r.stderr.lower()


def test_refresh_errors(host):
    local = host.get("/1.0/images/aliases/busybox").metadata["target"]
    r = host.request("POST", f"/1.0/images/{local}/refresh")
    op = host.wait_op(r)
    assert op["status"] == "Failure" and "no source to refresh from" in op["err"]
    assert host.request("POST", "/1.0/images/0123456789ab/refresh").status == 404
    r = host.request("POST", "/internal/testing/image-tasks", {"task": "nope"})
    assert r.status == 400 and "Unknown image task" in r.json["error"]
    r = host.request("POST", "/internal/testing/image-tasks", {"task": "expire", "hour": -1})
    assert r.status == 400


def test_expiry_runs_at_daemon_start(fresh_host, other, net, workdir, cleanup):
    """The timer's own path: corrald prunes expired cached images when it starts (then daily)."""
    d, alias = fresh_host, unique("img")
    fp = publish(other, workdir, alias, cleanup)
    name = unique("ri")
    r = d.request("POST", "/1.0/instances", {"name": name, "source": {
        "type": "image", "mode": "pull", "protocol": "lxd", "server": net["server"], "alias": alias,
        "certificate": net["cert"]}})
    op = d.wait_op(r)
    assert op["status"] == "Success", op
    assert images(d)[fp]["cached"] is True
    d.lxc("delete", name)
    age_image(d, fp, 30)
    d.stop()
    d.start()
    wait_for(lambda: fp not in images(d), timeout=30)
    assert fp not in store_files(d)
