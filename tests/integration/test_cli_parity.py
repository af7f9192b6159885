"""Acceptance 3 of issue 16: the real `lxc` 5.0.2 and `corral` run the same commands against one corrald
and must print the same thing (stdout and stderr) with the same exit code, in the table, csv, json and yaml
formats.

Read-only commands run back to back on the same state and are compared byte for byte. Commands that make
or change things run as a scenario: once with lxc on names ending in `-l`, cleaned up, then with corral on
names ending in `-c`; the suffix is the one thing normalised there. Besides it, normalised: random
tokens/secrets (a fresh one each run), time stamps of the objects the scenario made (made a moment apart),
the program name in error texts (`for "lxc cluster"` vs `for "corral cluster"`), and progress lines
(lxc's carriage-return progress: only what follows the last carriage return of a line is compared, and
transfer speeds are masked). Help texts themselves are not compared (cobra vs click layout), only that both print help
and exit alike. A second, clustered daemon runs the cluster commands."""
from __future__ import annotations

import glob
import os
import re
import shlex
import shutil
import subprocess
import tempfile

import pytest

from helpers import VENV_BIN, free_port, initialised_corrald, unique

pytestmark = pytest.mark.integration

FORMATS = ("table", "csv", "json", "yaml")

# Read-only commands, each run in every format where it takes -f.
LISTS = [
    "project list", "project list local:", "project info default", "warning list", "warning list --all",
    "config trust list", "config trust list-tokens", "alias list", "storage volume list default",
    "storage volume list default -c nt", "image list", "cluster list-tokens",
]
SHOWS = [
    "project show default", "project get default features.images", "project get default nope.key",
    "project list nosuchremote:", "project show nosuchremote:default", "project show nope", "project get",
    "project get a b c", "warning show nope", "warning list -c x", "warning list -c utL", "cluster list",
    "cluster show foo", "config trust show nope", "image get-property busybox os", "image show nosuch:busybox",
    "list nosuch:", "info nosuch:c1", "storage volume list nosuch:default", "image list nosuch:",
    "profile list nosuch:", "network list nosuch:", "storage list nosuch:", "operation list nosuch:",
    "image alias list nosuch:", "monitor nosuch:", "config template list nope", "config metadata show nope",
    "image info nope", "image get-property busybox nope", "config trust add --type foo", "config trust add",
    "config trust revoke-token nope", "cluster add n9", "cluster enable", "lisx", "cluster info",
    "move c1", "move nope x", "image copy busybox local:", "image copy busybox nosuch:",
    "storage volume export default nope", "export nope", "image refresh busybox", "alias rename nope x",
]

# Scenarios: lists of commands; {s} is the per-tool suffix.
SCENARIOS = {
    "project": [
        "project create p{s} -c user.x=1 -c features.images=false", "project create p{s}",
        "project set p{s} user.a=1", "project set p{s} user.b 2", "project get p{s} user.a",
        "project show p{s}", "project list -f csv", "project list -f yaml", "project unset p{s} user.a",
        "project show p{s}", "project switch p{s}", "project list", "project switch default",
        "project delete p{s}", "project delete p{s}",
    ],
    "project-edit": [
        "project create e{s} -c user.k=v", "!project edit e{s}", "project show e{s}", "project delete e{s}",
    ],
    "alias": [
        "alias add l{s} 'list -c n'", "alias list", "alias list -f yaml", "alias add l{s} x",
        "alias rename l{s} m{s}", "alias rename nope x", "alias list -f csv", "alias remove m{s}",
        "alias remove m{s}", "alias list",
    ],
    "trust-token": [
        "config trust add --name tok{s} --quiet", "config trust list-tokens -f csv --quiet",
        "config trust revoke-token tok{s}", "config trust revoke-token tok{s}", "config trust list-tokens",
    ],
    "image-property": [
        "image set-property busybox user.p{s} v", "image get-property busybox user.p{s}",
        "image unset-property busybox user.p{s}", "image get-property busybox user.p{s}",
    ],
    "volume": [
        "storage volume create default v{s}", "storage volume list default -c ntc",
        "storage volume list default -f csv -c nd", "profile create pr{s}",
        "storage volume attach-profile default v{s} pr{s} dev0 /mnt", "profile show pr{s}",
        "storage volume detach-profile default v{s} pr{s}", "profile show pr{s}",
        "storage volume detach-profile default v{s} pr{s}", "profile delete pr{s}",
        "storage volume delete default v{s}",
    ],
    "backup": [
        "init busybox i{s}", "export i{s} /tmp/parity-i{s}.tar.gz", "import /tmp/parity-i{s}.tar.gz k{s}",
        "import /tmp/parity-i{s}.tar.gz k{s}", "list k{s} -c n -f csv", "delete k{s}", "delete i{s}",
        "storage volume create default v{s}", "storage volume export default v{s} /tmp/parity-v{s}.tar.gz",
        "storage volume import default /tmp/parity-v{s}.tar.gz w{s}", "storage volume list default w{s} -c n",
        "storage volume delete default w{s}", "storage volume delete default v{s}",
    ],
    "config-edit-empty": [
        "init busybox i{s} -c user.k=v", "!config edit i{s}", "config get i{s} user.k", "profile create pr{s}",
        "profile set pr{s} user.z=1", "!profile edit pr{s}", "profile show pr{s}", "profile delete pr{s}",
        "delete i{s}",
    ],
    "instance": [
        "init busybox i{s}", "config template create i{s} t.tpl", "config template list i{s}",
        "config template list i{s} -f csv", "config template show i{s} t.tpl", "config template delete i{s} t.tpl",
        "config template delete i{s} t.tpl", "config metadata show i{s}", "move i{s} j{s}", "list j{s} -c n -f csv",
        "move j{s} k{s} -c user.a=b", "move j{s}", "delete j{s}",
    ],
}

CLUSTER_LISTS = ["cluster list", "cluster list-tokens", "cluster group list"]
CLUSTER_SCENARIO = [
    "cluster show n1", "cluster get n1 nope", "cluster set n1 user.a=b", "cluster get n1 user.a",
    "cluster unset n1 user.a", "cluster show n1", "cluster role add n1 event-hub", "cluster role add n1 event-hub",
    "cluster list -f csv", "cluster role remove n1 event-hub", "cluster role remove n1 event-hub",
    "cluster group create g{s}", "cluster group create g{s}", "cluster group assign n1 default,g{s}",
    "cluster group list -f csv", "cluster group show g{s}", "cluster group remove n1 g{s}",
    "cluster group remove n1 g{s}", "cluster group rename g{s} h{s}", "cluster group delete h{s}",
    "cluster group delete h{s}", "cluster add m{s} --quiet", "cluster list-tokens -f csv",
    "cluster revoke-token m{s}", "cluster revoke-token m{s}", "cluster rename n1 n1", "cluster evacuate nope --force",
    "cluster remove nope --force --yes",
]

# Only these may differ between the tools (see the module doc).
TOKEN = re.compile(r"\beyJ[A-Za-z0-9+/=]{20,}")
PROGRESS = re.compile(r"[^\n]*\r")
RATE = re.compile(r"\(\d+(\.\d+)?[kMGTPE]?B/s\)")
PROGRAM = re.compile(r'(unknown command "[^"]*" for ")lxc\b')
TIMES = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)|\d{4}/\d\d/\d\d \d\d:\d\d [A-Z]+")


def normalise(text: str, suffix: str) -> str:
    text = RATE.sub("(<rate>)", PROGRESS.sub("", PROGRAM.sub(r"\1corral", text)))
    if not suffix:
        return text
    text = text.replace(suffix, "{s}")
    text = TOKEN.sub("<token>", text)
    return TIMES.sub("<time>", text)


@pytest.fixture(scope="module")
def daemon():
    with initialised_corrald() as d:
        yield d


@pytest.fixture(scope="module")
def clustered():
    """A one-member cluster (n1) on a loopback port."""
    with initialised_corrald() as d:
        d.lxc("config", "set", "core.https_address", f"127.0.0.1:{free_port()}")
        d.lxc("cluster", "enable", "n1")
        yield d


def _tools(daemon):
    """Run a command line with either tool, each with its own fresh client configuration directory."""
    dirs = {name: tempfile.mkdtemp(prefix=f"parity-{name}-") for name in ("lxc", "corral")}
    env = dict(daemon.env)
    env.pop("LXD_DIR", None)
    env["LXD_CONF"] = dirs["lxc"]
    env["CORRAL_CONF"] = dirs["corral"]
    env["EDITOR"] = "false"   # never an interactive editor

    def run(tool: str, line: str, stdin: str = "") -> tuple[int, str, str]:
        args = shlex.split(line)
        exe = "lxc" if tool == "lxc" else os.path.join(VENV_BIN, "corral")
        # bytes, not text mode: universal newlines would turn lxc's progress carriage returns into lines
        res = subprocess.run([exe, *args], env=env, capture_output=True, input=stdin.encode(), timeout=120)
        return res.returncode, res.stdout.decode("utf-8", "replace"), res.stderr.decode("utf-8", "replace")

    run("lxc", "remote list")   # lxc's first-run message ("To start your first container...") out of the way
    return run, dirs


@pytest.fixture
def tools(daemon):
    run, dirs = _tools(daemon)
    yield run
    for d in dirs.values():
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def cluster_tools(clustered):
    run, dirs = _tools(clustered)
    yield run
    for d in dirs.values():
        shutil.rmtree(d, ignore_errors=True)


def _is_help(text: str) -> bool:
    return text.lstrip().startswith(("Description:", "Usage:"))


def _compare(run, line: str) -> None:
    got = {}
    for tool in ("lxc", "corral"):
        rc, out, err = run(tool, line)
        if _is_help(out):
            out = "<help>"   # cobra's and click's help layouts differ
        if _is_help(err):
            err = err[err.rfind("Error:"):] if "Error:" in err else "<help>"
        got[tool] = (rc, normalise(out, ""), normalise(err, ""))
    assert got["corral"] == got["lxc"], line


@pytest.mark.parametrize("line", [f"{c} -f {f}" for c in LISTS for f in FORMATS] + SHOWS)
def test_read_only_commands_match_lxc(tools, line):
    _compare(tools, line)


def _scenario(run, steps: list[str], cleanup: list[str]) -> None:
    base = unique("")
    outputs = {}
    for tool, suffix in (("lxc", f"{base}l"), ("corral", f"{base}c")):
        seen = []
        try:
            for step in steps:
                line = step.lstrip("!")   # "!": an edit fed an empty document on stdin
                rc, out, err = run(tool, line.replace("{s}", suffix), "")
                if _is_help(out):
                    out = "<help>"
                if _is_help(err):
                    err = err[err.rfind("Error:"):] if "Error:" in err else "<help>"
                seen.append((line, rc, normalise(out, suffix), normalise(err, suffix)))
        finally:
            for line in cleanup:
                run(tool, line.replace("{s}", suffix))
            for leftover in glob.glob(f"/tmp/parity-*{suffix}.tar.gz"):
                os.unlink(leftover)
        outputs[tool] = seen
    for lxc_step, corral_step in zip(outputs["lxc"], outputs["corral"]):
        assert corral_step == lxc_step
    assert len(outputs["lxc"]) == len(outputs["corral"])


CLEANUP = ["delete -f i{s}", "delete -f j{s}", "delete -f k{s}", "storage volume delete default v{s}",
           "storage volume delete default w{s}", "profile delete pr{s}", "project delete p{s}",
           "project delete e{s}", "project switch default", "config trust revoke-token tok{s}", "alias remove l{s}",
           "alias remove m{s}"]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenarios_match_lxc(tools, name):
    _scenario(tools, SCENARIOS[name], CLEANUP)


@pytest.mark.parametrize("line", [f"{c} -f {f}" for c in CLUSTER_LISTS for f in FORMATS])
def test_cluster_lists_match_lxc(cluster_tools, line):
    _compare(cluster_tools, line)


def test_cluster_scenario_matches_lxc(cluster_tools):
    _scenario(cluster_tools, CLUSTER_SCENARIO,
              ["cluster group delete g{s}", "cluster group delete h{s}", "cluster revoke-token m{s}",
               "cluster role remove n1 event-hub", "cluster group assign n1 default"])
