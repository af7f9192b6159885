"""The web UI on a clustered corrald (issue 16, acceptance 1): three members in network namespaces
(tests/clusterlib.py), headless Chromium on the host logged in to m1 with a client certificate
(tests/uibrowser.py): the cluster page lists the members, the instances page their locations, and the
terminal of a container on m2 works through m1 (its exec websockets forwarded)."""
from __future__ import annotations

import shutil
import tempfile

from clusterlib import HTTPS_PORT, Cluster, form, leftovers
from helpers import busybox_tarball, unique
from uibrowser import Browser, ClientCert


def test_members_page_and_instance_locations():
    c = Cluster()
    tmp = tempfile.mkdtemp(prefix="corral-cluster-ui-")
    b = None
    made = None
    try:
        ms = form(c, 3)
        m1, m2, m3 = ms
        for m in ms:
            m1.lxc("storage", "create", "default", "dir", "--target", m.name)
        m1.lxc("storage", "create", "default", "dir")
        m1.lxc("profile", "device", "add", "default", "root", "disk", "path=/", "pool=default")
        m1.lxc("image", "import", busybox_tarball(), "--alias", "busybox")
        on2, on3 = unique("cu"), unique("cu")
        m1.lxc("launch", "busybox", on2, "--target", "m2")
        m1.lxc("init", "busybox", on3, "--target", "m3")
        cert = ClientCert(tmp, unique("uicl"))
        m1.lxc("config", "trust", "add", cert.crt)   # the trust store is the cluster's

        b = Browser(HTTPS_PORT, cert, host=m1.ip)
        b.get("/ui/")
        b.until(lambda: b.all("#page-instances[data-ready]"), 90, "the instances page")
        assert b.css("#nav-cluster").is_displayed()
        b.page("#/cluster")
        rows = {r.get_attribute("data-member"): r.text for r in b.all("#members tr[data-member]")}
        assert set(rows) == {"m1", "m2", "m3"}, rows
        assert all("Online" in t for t in rows.values()), rows
        for m in ms:
            assert m.url in rows[m.name]
        b.screenshot("40-cluster-members")

        b.page("#/instances")
        loc = {n: b.css(f'tr[data-instance="{n}"] td.location').text for n in (on2, on3)}
        assert loc == {on2: "m2", on3: "m3"}
        assert b.css(f'tr[data-instance="{on2}"] td.state').text == "Running"
        b.screenshot("41-cluster-instances")

        # created in the UI on a chosen member
        made_in_ui = unique("cu")
        b.css("#create-instance-btn").click()
        dlg = b.wait("#create-instance form")
        dlg.find_element("name", "name").send_keys(made_in_ui)
        from selenium.webdriver.support.ui import Select
        Select(dlg.find_element("name", "image")).select_by_value("alias:busybox")
        Select(dlg.find_element("name", "target")).select_by_value("m3")
        dlg.find_element("name", "start").click()   # created stopped
        dlg.find_element("css selector", "button[type=submit]").click()
        b.until(lambda: b.all(f'tr[data-instance="{made_in_ui}"] td.location'), 90, "the new instance listed")
        assert b.css(f'tr[data-instance="{made_in_ui}"] td.location').text == "m3"
        assert m2.get(f"/1.0/instances/{made_in_ui}").metadata["location"] == "m3"

        b.page(f"#/instances/{on2}/terminal")
        b.wait("#terminal[data-connected]")
        b.css(".xterm-helper-textarea").send_keys("echo on-$(hostname)-$((3*4))\n")
        b.until(lambda: f"on-{on2}-12" in b.driver.execute_script("return window.corralScreenText()"), 30,
                "the shell's answer through m1")
        b.screenshot("42-cluster-terminal")
        assert not b.notices(), b.notices()
    finally:
        if b is not None:
            b.close()
        shutil.rmtree(tmp, ignore_errors=True)
        made = c.made()
        c.cleanup()
    assert leftovers(made) == []
