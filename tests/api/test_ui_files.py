"""The web UI's files at /ui/ (corral/api/ui.py), asked over the unix socket of a real corrald; the
browser tests are tests/integration/test_web_ui.py."""
import os
import re

from corral.ui import STATIC_DIR

BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}


def test_index_and_redirects(daemon):
    r = daemon.get("/ui/")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
    assert b'<script type="module" src="/ui/js/app.js">' in r.body
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    assert r.headers["Cache-Control"] == "no-cache"
    r = daemon.get("/ui")
    assert r.status == 301 and r.headers["Location"] == "/ui/"
    # a route of the page itself (not a file) gets the page
    assert daemon.get("/ui/instances/c1").body == daemon.get("/ui/").body
    # a browser asking for / is sent to the UI, as LXD does; other clients get LXD's answer
    r = daemon.get("/", headers=BROWSER)
    assert r.status == 301 and r.headers["Location"] == "/ui/"
    assert daemon.get("/", headers={"User-Agent": "LXD 5.0.2"}).json["metadata"] == ["/1.0"]


def test_types_cache_and_no_escape(daemon):
    r = daemon.get("/ui/vendor/xterm/xterm.mjs")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/javascript")
    assert r.headers["Cache-Control"].startswith("public")
    assert daemon.get("/ui/style.css").headers["Content-Type"].startswith("text/css")
    r = daemon.get("/ui/js/nope.js")
    assert r.status == 404 and r.json["error"] == "not found"
    for path in ("/ui/../api/ui.py", "/ui/%2e%2e/api/ui.py", "/ui/..%2f..%2fapi%2fui.py", "/ui//etc/passwd"):
        r = daemon.get(path)
        assert b"routes = web.RouteTableDef()" not in r.body and b"root:" not in r.body, path


def test_every_module_import_resolves():
    """Each `import ... from "./x.js"` of the UI's modules names a file that is shipped."""
    seen = 0
    for base, _, files in os.walk(os.path.join(STATIC_DIR, "js")):
        for name in files:
            path = os.path.join(base, name)
            with open(path) as f:
                text = f.read()
            for spec in re.findall(r'(?:from|import)\s*\(?\s*"(\.{1,2}/[^"]+)"', text):
                seen += 1
                assert os.path.isfile(os.path.normpath(os.path.join(base, spec))), (path, spec)
    assert seen > 30
    with open(os.path.join(STATIC_DIR, "index.html")) as f:
        for ref in re.findall(r'(?:src|href)="/ui/([^"]+)"', f.read()):
            assert os.path.isfile(os.path.join(STATIC_DIR, ref)), ref
