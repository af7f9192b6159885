"""The web UI (issue 16) in a real browser: headless Chromium (Selenium) logged in to corrald's HTTPS
listener with a TLS client certificate (tests/uibrowser.py). Screenshots of each page are written to
build/ui-screenshots/."""
from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
import urllib.request
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from helpers import busybox_tarball, free_port, initialised_corrald, unique, wait_for
from uibrowser import Browser, ClientCert, Pkcs12

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def site():
    """An initialised corrald listening on a loopback port, a trusted client certificate and a browser
    holding it."""
    tmp = tempfile.mkdtemp(prefix="corral-ui-test-")
    browser = None
    with initialised_corrald() as d:
        try:
            port = free_port()
            assert d.request("PATCH", "/1.0", {"config": {"core.https_address": f"127.0.0.1:{port}"}}).status == 200
            cert = ClientCert(tmp, unique("ui"))
            d.lxc("config", "trust", "add", cert.crt)
            browser = Browser(port, cert)
            browser.get("/ui/")
            browser.until(lambda: browser.all("#page-instances[data-ready]"), 90, "the instances page")
            browser.driver.execute_script("window.confirm = () => true")   # delete dialogs
            yield d, browser, port
        finally:
            if browser is not None:
                browser.close()
            shutil.rmtree(tmp, ignore_errors=True)


def _select(el, value):
    from selenium.webdriver.support.ui import Select
    Select(el).select_by_value(value)


def _state(d, name, project="default"):
    r = d.get(f"/1.0/instances/{name}/state?project={project}")
    return r.metadata["status"] if r.status == 200 else None


def _row_state(b, name):
    rows = b.all(f'tr[data-instance="{name}"] td.state')
    return rows[0].text if rows else None


def _create_in_ui(b, name, image_value):
    b.css("#create-instance-btn").click()
    dlg = b.wait("#create-instance form")
    dlg.find_element("name", "name").send_keys(name)
    _select(dlg.find_element("name", "image"), image_value)
    dlg.find_element("css selector", "button[type=submit]").click()


def _type_and_read(b, text: str, expect: str, timeout: float = 30) -> str:
    b.css(".xterm-helper-textarea").send_keys(text)
    return b.until(lambda: (s := b.driver.execute_script("return window.corralScreenText()")) and expect in s and s,
                   timeout, f"{expect!r} on the terminal")


def test_served_at_ui_and_browsers_redirected(site):
    d, b, port = site
    # the browser runs in a network namespace of its own (tests/uibrowser.py), reaching corrald by the relay
    assert subprocess.run(["ip", "netns", "pids", b.ns], capture_output=True, text=True).stdout.split()
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    # no client certificate at all: the files are public (the first-run page must load)
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/ui/", context=ctx) as r:
        assert r.status == 200 and b"/ui/js/app.js" in r.read()
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/ui/vendor/xterm/xterm.mjs", context=ctx) as r:
        assert r.headers["Content-Type"].startswith("text/javascript")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"https://127.0.0.1:{port}/ui/../../etc/passwd.js", context=ctx)
    assert e.value.code == 404
    # a browser asking for / goes to the UI; the lxc client's answer is unchanged
    req = urllib.request.Request(f"https://127.0.0.1:{port}/", headers={"User-Agent": "Mozilla/5.0 Gecko/20100101"})
    with urllib.request.urlopen(req, context=ctx) as r:
        assert r.url.endswith("/ui/")
    assert d.get("/").json["metadata"] == ["/1.0"]
    b.get("/")
    b.until(lambda: b.driver.current_url.startswith(f"https://127.0.0.1:{port}/ui/"), 10, "redirect")
    b.wait("#page-instances[data-ready]")
    b.driver.execute_script("window.confirm = () => true")


def test_container_lifecycle_terminal_snapshots_yaml(site):
    d, b, _ = site
    name = unique("ui")
    b.page("#/instances")
    b.screenshot("01-instances-empty")
    _create_in_ui(b, name, "alias:busybox")
    b.until(lambda: _row_state(b, name) == "Running", 90, f"{name} Running in the list")
    assert _state(d, name) == "Running"   # the UI went through the API
    b.screenshot("02-instances-running")

    # the terminal: exec over the websocket; what we type reaches the shell, its output comes back
    b.page(f"#/instances/{name}/terminal")
    b.wait("#terminal[data-connected]")
    screen = _type_and_read(b, "echo ui-$((6*7))-ok\n", "ui-42-ok")
    assert "echo ui-$((6*7))-ok" in screen   # the echo of what was typed, then the shell's answer
    _type_and_read(b, "cat /etc/hostname\n", name)
    b.screenshot("03-terminal")
    b.page(f"#/instances/{name}/console")
    b.wait("#console[data-connected]")
    # leaving the terminal closed its websockets: the shell and its operation end

    def exec_running():
        ops = d.get("/1.0/operations?recursion=1").metadata or {}
        return [o for o in ops.get("running", []) if o["description"] == "Executing command"]
    wait_for(lambda: not exec_running(), 20)
    # the test image runs no getty: what the container writes to /dev/console shows up
    marker = unique("console-mark")
    d.lxc("exec", name, "--", "sh", "-c", f"echo {marker} > /dev/console")
    b.until(lambda: marker in b.driver.execute_script("return window.corralScreenText()"), 30, "console output")
    b.screenshot("04-console")

    # snapshots
    b.page(f"#/instances/{name}/snapshots")
    b.css("#create-snapshot").click()
    dlg = b.wait(".modal form")
    dlg.find_element("name", "name").send_keys("snap0")
    dlg.find_element("css selector", "button[type=submit]").click()
    b.wait('tr[data-snapshot="snap0"]')
    assert d.get(f"/1.0/instances/{name}/snapshots/snap0").status == 200
    b.screenshot("05-snapshots")

    # configuration as YAML: a YAML error, then the server's own refusal, then a change that sticks
    b.page(f"#/instances/{name}/config")
    b.css("#edit-yaml").click()
    area = b.wait("#yaml-text")
    b.driver.execute_script("arguments[0].value = 'config: [unclosed'", area)
    b.css("#yaml-save").click()
    b.until(lambda: b.css("#yaml-error").text.startswith("YAML:"), 10, "YAML error shown")
    cur = d.get(f"/1.0/instances/{name}").metadata
    bad = {"architecture": cur["architecture"], "config": {**cur["config"], "limits.cpu.allowance": "lots"},
           "devices": cur["devices"], "ephemeral": False, "profiles": cur["profiles"], "description": ""}
    import yaml
    b.driver.execute_script("arguments[0].value = arguments[1]", area, yaml.safe_dump(bad))
    b.css("#yaml-save").click()
    r = d.request("PUT", f"/1.0/instances/{name}", bad)
    expected = r.json["error"] if r.status >= 400 else d.wait_op(r)["err"]
    assert expected
    b.until(lambda: b.css("#yaml-error").text == expected, 20, "the server's error text in the editor")
    b.screenshot("06-yaml-error")
    good = {**bad, "config": {**cur["config"], "user.note": "from-the-ui"}}
    b.driver.execute_script("arguments[0].value = arguments[1]", area, yaml.safe_dump(good))
    b.css("#yaml-save").click()
    b.until(lambda: not b.all("#yaml-dialog"), 20, "editor closed")
    assert d.get(f"/1.0/instances/{name}").metadata["config"]["user.note"] == "from-the-ui"
    assert "from-the-ui" in b.css("#instance-yaml").text

    # restoring the snapshot (taken before the edit) takes the change back
    b.page(f"#/instances/{name}/snapshots")
    b.css('tr[data-snapshot="snap0"] button[data-action="restore"]').click()
    b.until(lambda: any("restored snap0" in n.text for n in b.all("#notices .notice")), 60, "the restore's end")
    assert "user.note" not in d.get(f"/1.0/instances/{name}").metadata["config"]
    assert _state(d, name) == "Running"   # restarted after the restore, as LXD does

    # freeze, unfreeze, stop, delete from the list
    b.page("#/instances")
    for action, state in (("freeze", "Frozen"), ("unfreeze", "Running"), ("stop", "Stopped")):
        b.css(f'tr[data-instance="{name}"] button[data-action="{action}"]').click()
        b.until(lambda: _row_state(b, name) == state, 60, f"{name} {state}")
        assert _state(d, name) == state
    b.css(f'tr[data-instance="{name}"] button[data-action="delete"]').click()
    b.until(lambda: not b.all(f'tr[data-instance="{name}"]'), 60, f"{name} gone from the list")
    assert d.get(f"/1.0/instances/{name}").status == 404
    assert not b.notices(), b.notices()


def test_every_page_draws(site):
    d, b, _ = site
    net = unique("uibr")[:12]
    d.lxc("network", "create", net, "ipv4.address=auto", "ipv6.address=none")
    try:
        for page in ("images", "profiles", "storage", "networks", "projects", "cluster", "operations", "warnings"):
            b.page(f"#/{page}")
            b.screenshot(f"10-{page}")
            assert not b.notices(), (page, b.notices())
        b.page("#/networks")
        assert b.all(f'tr[data-name="{net}"]')
        b.css(f'tr[data-name="{net}"] button[data-action="leases"]').click()
        b.wait(".modal table")
        b.screenshot("11-network-leases")
        b.css(".modal .close").click()
        b.page("#/storage")
        b.wait("#volumes")
        b.page("#/cluster")
        assert b.css("#not-clustered").text == "This server is not clustered."
        # acknowledging a warning, when corrald filed one about this host at start (e.g. /sys/kernel/slab)
        warnings = d.get("/1.0/warnings?recursion=1").metadata
        new = [w for w in warnings if w["status"] == "new"]
        if new:
            b.page("#/warnings")
            w = new[0]
            b.css(f'tr[data-uuid="{w["uuid"]}"] button[data-action="acknowledge"]').click()
            b.until(lambda: d.get(f"/1.0/warnings/{w['uuid']}").metadata["status"] == "acknowledged", 20, "acknowledged")
            b.until(lambda: "acknowledged" in b.css(f'tr[data-uuid="{w["uuid"]}"]').text, 20, "shown acknowledged")
    finally:
        d.lxc("network", "delete", net, check=False)


def _yaml_edit(b, text: str) -> None:
    area = b.wait("#yaml-text")
    b.driver.execute_script("arguments[0].value = arguments[1]", area, text)
    b.css("#yaml-save").click()
    b.until(lambda: not b.all("#yaml-dialog") or b.css("#yaml-error").text, 20, "saved or refused")
    assert not b.all("#yaml-dialog"), b.css("#yaml-error").text


def test_profiles_and_volumes_through_the_ui(site):
    d, b, _ = site
    prof, vol = unique("uiprof"), unique("uivol")
    try:
        b.page("#/profiles")
        b.css("#create-profiles").click()
        dlg = b.wait(".modal form")
        dlg.find_element("name", "name").send_keys(prof)
        dlg.find_element("name", "description").send_keys("made in the UI")
        dlg.find_element("css selector", "button[type=submit]").click()
        b.wait(f'tr[data-name="{prof}"]')
        assert d.get(f"/1.0/profiles/{prof}").metadata["description"] == "made in the UI"
        b.css(f'tr[data-name="{prof}"] button[data-action="edit"]').click()
        _yaml_edit(b, "description: edited\nconfig:\n  limits.memory: 64MiB\ndevices:\n"
                      "  data:\n    type: disk\n    path: /mnt\n    source: /tmp\n")
        got = d.get(f"/1.0/profiles/{prof}").metadata
        assert got["config"] == {"limits.memory": "64MiB"} and got["devices"]["data"]["path"] == "/mnt"
        b.css(f'tr[data-name="{prof}"] button[data-action="delete"]').click()
        b.until(lambda: not b.all(f'tr[data-name="{prof}"]'), 20, "profile deleted")
        assert d.get(f"/1.0/profiles/{prof}").status == 404

        b.page("#/storage")
        b.wait("#volumes")
        b.css("#create-volume").click()
        dlg = b.wait(".modal form")
        dlg.find_element("name", "name").send_keys(vol)
        dlg.find_element("css selector", "button[type=submit]").click()
        b.wait(f'tr[data-volume="{vol}"]')
        assert d.get(f"/1.0/storage-pools/default/volumes/custom/{vol}").status == 200
        b.screenshot("13-storage-volume")
        b.css(f'tr[data-volume="{vol}"] button.danger').click()
        b.until(lambda: not b.all(f'tr[data-volume="{vol}"]'), 20, "volume deleted")
        assert d.get(f"/1.0/storage-pools/default/volumes/custom/{vol}").status == 404
        assert not b.notices(), b.notices()
    finally:
        d.lxc("profile", "delete", prof, check=False)
        d.lxc("storage", "volume", "delete", "default", vol, check=False)


def test_event_log_is_live(site):
    d, b, _ = site
    # the instances list follows lifecycle events: changes made elsewhere show up without a reload
    other = unique("uilive")
    b.page("#/instances")
    try:
        d.lxc("init", "busybox", other)
        b.until(lambda: _row_state(b, other) == "Stopped", 20, "the new instance listed")
        d.lxc("start", other)
        b.until(lambda: _row_state(b, other) == "Running", 20, "its new state")
        d.lxc("delete", "-f", other)
        b.until(lambda: not b.all(f'tr[data-instance="{other}"]'), 20, "its row gone")
    finally:
        d.lxc("delete", "-f", other, check=False)
    b.page("#/events")
    b.until(lambda: b.css("#event-status").text.startswith("connected"), 20, "events websocket")
    prof = unique("uip")
    d.lxc("profile", "create", prof)
    try:
        b.until(lambda: f"profile-created /1.0/profiles/{prof}" in b.css("#event-log").text, 20, "the event")
        b.screenshot("12-events")
    finally:
        d.lxc("profile", "delete", prof, check=False)


def _split_image(tmp_path) -> tuple[str, str]:
    """The busybox image as a split image: metadata.tar (metadata.yaml, templates) and rootfs.squashfs."""
    import tarfile
    src = tmp_path / "unified"
    src.mkdir()
    with tarfile.open(busybox_tarball()) as t:
        t.extractall(src, filter="tar")
    meta = tmp_path / "meta.tar"
    with tarfile.open(meta, "w") as t:
        for name in os.listdir(src):
            if name != "rootfs":
                t.add(src / name, arcname=name)
    rootfs = tmp_path / "rootfs.squashfs"
    subprocess.run(["mksquashfs", str(src / "rootfs"), str(rootfs), "-noappend", "-quiet"], check=True,
                   capture_output=True)
    return str(meta), str(rootfs)


def test_other_project_import_image_and_instance(site, tmp_path):
    """In a project with its own images: create it and switch in the UI, import the busybox image from a
    file (upload progress), create and start a container, see it only there, clean up through the UI."""
    d, b, _ = site
    proj, name = unique("uiproj"), unique("uip")
    try:
        b.page("#/projects")
        b.css("#create-projects").click()
        dlg = b.wait(".modal form")
        dlg.find_element("name", "name").send_keys(proj)
        dlg.find_element("css selector", "button[type=submit]").click()
        b.wait(f'tr[data-name="{proj}"]')
        assert d.get(f"/1.0/projects/{proj}").metadata["config"]["features.images"] == "true"
        b.css(f'tr[data-name="{proj}"] button[data-action="switch"]').click()
        b.until(lambda: b.driver.execute_script("return document.getElementById('project-select').value") == proj, 10)
        b.wait("#page-instances[data-ready]")
        assert "project " + proj in b.css("#page-instances h1").text
        # the project has a default profile of its own only with features.profiles: give it a root disk
        d.lxc("profile", "device", "add", "default", "root", "disk", "path=/", "pool=default", "--project", proj)

        b.page("#/images")
        b.css("#import-image-btn").click()
        b.wait("#image-file").send_keys(busybox_tarball())
        b.css("#image-alias").send_keys("bb")
        b.css("#image-upload").click()
        b.until(lambda: not b.all("#import-image"), 120, "import finished")
        assert not b.notices(), b.notices()
        aliases = d.get(f"/1.0/images/aliases?project={proj}&recursion=1").metadata
        assert [a["name"] for a in aliases] == ["bb"]
        b.screenshot("20-project-images")
        fp = aliases[0]["target"]
        b.css(f'tr[data-fingerprint="{fp}"] button[data-action="add-alias"]').click()
        dlg = b.wait(".modal form")
        dlg.find_element("name", "name").send_keys("bb2")
        dlg.find_element("css selector", "button[type=submit]").click()
        b.until(lambda: "bb2" in b.css(f'tr[data-fingerprint="{fp}"]').text, 20, "alias added")
        assert d.get(f"/1.0/images/aliases/bb2?project={proj}").metadata["target"] == fp
        b.css(f'tr[data-fingerprint="{fp}"] button[data-alias="bb2"]').click()
        b.until(lambda: "bb2" not in b.css(f'tr[data-fingerprint="{fp}"]').text, 20, "alias removed")
        assert d.get(f"/1.0/images/aliases/bb2?project={proj}").status == 404

        b.page("#/instances")
        _create_in_ui(b, name, "alias:bb")
        b.until(lambda: _row_state(b, name) == "Running", 90, f"{name} Running")
        assert _state(d, name, proj) == "Running" and d.get(f"/1.0/instances/{name}").status == 404
        b.screenshot("21-project-instances")
        b.css(f'tr[data-instance="{name}"] button[data-action="delete"]').click()   # stops it first
        b.until(lambda: not b.all(f'tr[data-instance="{name}"]'), 90, "deleted")
        assert d.get(f"/1.0/instances/{name}?project={proj}").status == 404

        b.page("#/images")
        b.css(f'tr[data-fingerprint="{fp}"] button[data-action="delete"]').click()
        b.until(lambda: not b.all(f'tr[data-fingerprint="{fp}"]'), 60, "image deleted")
        # a split image: the metadata tarball and a squashfs rootfs, sent as multipart like `lxc image import`
        meta, rootfs = _split_image(tmp_path)
        b.css("#import-image-btn").click()
        b.wait("#image-file").send_keys(meta)
        b.css("#image-rootfs").send_keys(rootfs)
        b.css("#image-upload").click()
        b.until(lambda: not b.all("#import-image"), 120, "split import finished")
        import hashlib
        h = hashlib.sha256()
        for part in (meta, rootfs):
            with open(part, "rb") as f:
                h.update(f.read())
        split_fp = h.hexdigest()
        assert d.get(f"/1.0/images/{split_fp}?project={proj}").metadata["type"] == "container"
        b.css(f'tr[data-fingerprint="{split_fp}"] button[data-action="delete"]').click()
        b.until(lambda: not b.all(f'tr[data-fingerprint="{split_fp}"]'), 60, "split image deleted")
        b.driver.execute_script("document.getElementById('project-select').value = 'default';"
                                "document.getElementById('project-select').dispatchEvent(new Event('change'))")
        b.page("#/projects")
        b.css(f'tr[data-name="{proj}"] button[data-action="delete"]').click()
        b.until(lambda: not b.all(f'tr[data-name="{proj}"]'), 30, "project deleted")
        assert d.get(f"/1.0/projects/{proj}").status == 404
    finally:
        d.lxc("delete", "-f", name, "--project", proj, check=False)
        for fp in d.get(f"/1.0/images?project={proj}").metadata if d.get(f"/1.0/projects/{proj}").status == 200 else []:
            d.request("DELETE", f"{fp}&project={proj}" if "?" in fp else f"{fp}?project={proj}")
        d.lxc("project", "delete", proj, check=False)
        b.driver.execute_script("localStorage.setItem('corral.project', 'default')")


def test_first_run_certificate_made_in_the_browser_and_trusted_with_a_token(site, tmp_path):
    """An untrusted browser gets the first-run page; the certificate it generates (WebCrypto, PKCS#12)
    is a valid self-signed client certificate; a browser holding it is trusted with a token pasted into
    the page, and then sees the instances."""
    d, _, port = site
    anon = Browser(port, None)
    trusted_fps = set()
    try:
        anon.get("/ui/")
        anon.wait("#page-login[data-ready]")
        assert "Log in to Corral" in anon.css("h1").text
        anon.screenshot("30-first-run")
        anon.css("#pfx-password").send_keys("pw-1234")
        anon.css("#generate-cert").click()
        anon.wait("#certgen-out[data-ready]")
        anon.screenshot("31-first-run-generated")
        pem = anon.css("#cert-pem").text
        cert = x509.load_pem_x509_certificate(pem.encode())
        assert cert.public_key().curve.name == "secp384r1"
        cert.public_key().verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA384()))   # self-signed
        fp = cert.fingerprint(hashes.SHA256()).hex()
        assert anon.css("#cert-fingerprint").text == fp
        assert [a.get_attribute("download") for a in anon.all("a.download")] == ["corral-ui.pfx", "corral-ui.crt", "corral-ui.key"]
        pfx_b64 = anon.css("#certgen-out").get_attribute("data-pfx")
        pfx = tmp_path / "browser.pfx"
        pfx.write_bytes(base64.b64decode(pfx_b64))
        # openssl reads it with the password (MAC checked) and finds the certificate and its key
        out = subprocess.run(["openssl", "pkcs12", "-in", str(pfx), "-passin", "pass:pw-1234", "-nodes"],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert "BEGIN PRIVATE KEY" in out.stdout and pem.strip().splitlines()[1] in out.stdout
        bad = subprocess.run(["openssl", "pkcs12", "-in", str(pfx), "-passin", "pass:wrong", "-nodes"], capture_output=True)
        assert bad.returncode != 0
    finally:
        anon.close()
    # the generated certificate in a browser, trusted with a token from `lxc config trust add`
    user = Browser(port, Pkcs12(str(pfx), "pw-1234"))
    try:
        user.get("/ui/")
        user.wait("#page-login[data-ready]")
        tokname = unique("uitok")
        out = d.lxc("config", "trust", "add", "--name", tokname).stdout
        token = out.strip().splitlines()[-1]
        user.css("#trust-token").send_keys(token)
        user.css("#use-token").click()
        user.wait("#page-instances[data-ready]", timeout=30)   # the page reloads, trusted
        certs_ = d.get("/1.0/certificates?recursion=1").metadata
        trusted_fps = {c["fingerprint"] for c in certs_ if c["fingerprint"] == fp}
        assert trusted_fps == {fp}
        user.screenshot("32-logged-in-with-token")
    finally:
        user.close()
        for f in trusted_fps:
            d.request("DELETE", f"/1.0/certificates/{f}")


def test_restricted_certificate_sees_its_project(site, tmp_path):
    """A certificate restricted to one project: the UI starts in that project, lists its instances
    only, and shows the server's refusal of a host-wide change as it comes."""
    d, _, port = site
    proj, name = unique("uirp"), unique("uir")
    cert = ClientCert(str(tmp_path), unique("uirc"))
    d.request("POST", "/1.0/projects", {"name": proj, "config": {"features.images": "false", "features.profiles": "false"}})
    b = None
    try:
        d.lxc("init", "busybox", name, "--project", proj)
        d.lxc("config", "trust", "add", cert.crt, "--restricted", "--projects", proj)
        b = Browser(port, cert)
        b.get("/ui/")
        b.until(lambda: b.all("#page-instances[data-ready]"), 90, "the instances page")
        assert b.driver.execute_script("return document.getElementById('project-select').value") == proj
        assert [r.get_attribute("data-instance") for r in b.all("#instances tr[data-instance]")] == [name]
        b.page("#/networks")
        b.css("#create-networks").click()
        dlg = b.wait(".modal form")
        dlg.find_element("name", "name").send_keys(unique("uirn")[:12])
        dlg.find_element("css selector", "button[type=submit]").click()
        err = b.until(lambda: b.css(".modal pre.error").text, 20, "the refusal shown")
        assert err.startswith("not authorized"), err
        b.screenshot("33-restricted")
    finally:
        if b is not None:
            b.close()
        d.lxc("delete", "-f", name, "--project", proj, check=False)
        d.request("DELETE", f"/1.0/certificates/{cert.fingerprint}")
        d.lxc("project", "delete", proj, check=False)
