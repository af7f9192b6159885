"""pylxd 2.4.2's own live-daemon suite (`integration/` of its source distribution on PyPI), run
unchanged against a fresh corrald set up the way pylxd's `integration/run-integration-tests` sets up
LXD: a client certificate made by `lxc remote add`, `core.https_address 127.0.0.1`, the trust password
`password` (LXD 5.0 has no `explicit_trust_token`), a `default` dir pool and the default profile's root
disk. The server certificate is copied where pylxd looks for it (as the script does on a snap), the
machine-wide CA bundle variables are dropped (they override pylxd's pinning), and daemon and suite run
in a network namespace of their own, because the suite talks to the fixed https://127.0.0.1:8443/.

`scripts/setup.sh --test` downloads the source distribution and checks its pinned sha256. The real
LXD 5.0.2 passes 58 of the suite's tests on this machine (10 are the suite's own skips: clustering,
VMs, the 10.0.3.x migration hosts); every one of them must pass here too."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

import pytest

from helpers import ROOT, Corrald, unique

pytestmark = pytest.mark.integration

SUITE = os.path.join(ROOT, "build", "pylxd-sdist", "pylxd-2.4.2")
SKIPPED_BY_THE_SUITE = 10   # its own skipTest calls: no cluster, no VMs, no 10.0.3.111/222 hosts


def sh(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(list(args), capture_output=True, text=True, **kw)
    if check and res.returncode != 0:
        raise AssertionError(f"{args} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res


def outcomes(junit_xml: str) -> dict[str, str]:
    """test id -> passed / failed / error / skipped, from pytest's junit report."""
    out = {}
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        name = f"{case.get('classname')}.{case.get('name')}"
        kinds = {child.tag for child in case}
        out[name] = ("failed" if "failure" in kinds else "error" if "error" in kinds
                     else "skipped" if "skipped" in kinds else "passed")
    return out


def set_up_like_run_integration_tests(d: Corrald, home: str, nsenter: list[str]) -> None:
    lxc = ["lxc"]
    env = dict(d.env, HOME=home)
    env.pop("LXD_CONF", None)

    def run(*args: str, check: bool = True):
        return sh(*nsenter, *lxc, *args, check=check, env=env, timeout=60)

    run("remote", "add", "foo", "127.0.0.1:1234", check=False)   # makes ~/.config/lxc/client.{crt,key}
    assert os.path.exists(os.path.join(home, ".config", "lxc", "client.crt"))
    run("config", "set", "core.https_address", "127.0.0.1")
    assert "explicit_trust_token" not in run("info").stdout
    run("config", "set", "core.trust_password", "password")
    if run("storage", "show", "default", check=False).returncode != 0:
        run("storage", "create", "default", "dir")
        run("profile", "device", "add", "default", "root", "disk", "path=/", "pool=default")
    servercerts = os.path.join(home, ".config", "lxc", "servercerts")
    os.makedirs(servercerts, exist_ok=True)
    shutil.copy(os.path.join(d.dir, "server.crt"), os.path.join(servercerts, "127.0.0.1.crt"))


def run_suite(d: Corrald, home: str, nsenter: list[str], report: str, timeout: float = 1500):
    env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "LXD_SOCKET",
                                                            "LXD_CONF", "PYTHONPATH")}
    env.update(HOME=home, LXD_DIR=d.dir)
    cmd = nsenter + [sys.executable, "-m", "pytest", "integration", "-q", "-rfE", "-p", "no:cacheprovider", "-o", "timeout=300",
                     f"--junitxml={report}", "-o", "junit_family=xunit1"]
    return subprocess.run(cmd, cwd=SUITE, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(1800)
def test_pylxd_integration_suite_passes_against_corrald(capsys):
    if not os.path.isfile(os.path.join(SUITE, "integration", "testing.py")):
        pytest.fail(f"{SUITE} is missing: run `scripts/setup.sh --test` (make test does)")
    ns = unique("cpy")[:11]
    home = tempfile.mkdtemp(prefix="corral-pylxd-home-")
    d = Corrald()
    try:
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        # nsenter, not `ip netns exec`: that one remounts /sys and hides the cgroup hierarchies
        nsenter = ["nsenter", f"--net=/run/netns/{ns}"]
        d.wrapper = nsenter
        d.start()
        set_up_like_run_integration_tests(d, home, nsenter)
        report = os.path.join(home, "report.xml")
        res = run_suite(d, home, nsenter, report)
        got = outcomes(report)
        counts = {k: sum(1 for v in got.values() if v == k) for k in ("passed", "failed", "error", "skipped")}
        with capsys.disabled():   # the count is wanted in CI's output, pass or fail
            print(f"\npylxd 2.4.2 integration suite against corrald: {counts['passed']} passed, "
                  f"{counts['failed']} failed, {counts['error']} errors, {counts['skipped']} skipped")
        bad = sorted(k for k, v in got.items() if v in ("failed", "error"))
        assert not bad, f"{len(bad)} of pylxd's tests fail:\n" + "\n".join(bad) + "\n" + res.stdout[-20000:]
        assert counts["skipped"] == SKIPPED_BY_THE_SUITE, res.stdout[-5000:]
        assert counts["passed"] == 58, res.stdout[-5000:]
    finally:
        d.cleanup()
        sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(home, ignore_errors=True)
