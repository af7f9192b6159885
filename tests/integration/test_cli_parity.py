"""Acceptance 3 of issue 16: the real `lxc` 5.0.2 and `corral` run the same commands against one corrald
and must print the same thing (stdout and stderr) with the same exit code, in the table, csv, json and yaml
formats.

Read-only commands run back to back on the same state and are compared byte for byte. Commands that make
or change things run as a scenario: once with lxc on names ending in `-l`, cleaned up, then with corral on
names ending in `-c`; the suffix is the one thing normalised there. Besides it, normalised: random
tokens/secrets (a fresh one each run), time stamps of the objects the scenario made (made a moment apart),
and the program name in usage texts (`lxc` vs `corral`) -- help texts themselves are not compared (cobra
vs click layout), only that both print help and exit alike."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

import pytest

from helpers import VENV_BIN, initialised_corrald, unique

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
    "list nosuch:", "info nosuch:c1", "version nosuch:", "storage volume list nosuch:default",
    "config template list nope", "config metadata show nope", "image info nope",
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
    "instance": [
        "init busybox i{s}", "config template create i{s} t.tpl", "config template list i{s}",
        "config template list i{s} -f csv", "config template show i{s} t.tpl", "config template delete i{s} t.tpl",
        "config template delete i{s} t.tpl", "config metadata show i{s}", "move i{s} j{s}", "list j{s} -c n -f csv",
        "delete j{s}",
    ],
}

# Only these may differ between the tools (see the module doc).
TOKEN = re.compile(r"\beyJ[A-Za-z0-9+/=]{20,}")
TIMES = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def normalise(text: str, suffix: str) -> str:
    text = text.replace(suffix, "{s}")
    text = TOKEN.sub("<token>", text)
    return TIMES.sub("<time>", text)


@pytest.fixture(scope="module")
def daemon():
    with initialised_corrald() as d:
        yield d


@pytest.fixture
def tools(daemon):
    """Run a command line with either tool, each with its own fresh client configuration directory."""
    dirs = {name: tempfile.mkdtemp(prefix=f"parity-{name}-") for name in ("lxc", "corral")}
    env = dict(daemon.env)
    env.pop("LXD_DIR", None)
    env["LXD_CONF"] = dirs["lxc"]
    env["CORRAL_CONF"] = dirs["corral"]
    env["EDITOR"] = "false"   # never an interactive editor

    def run(tool: str, line: str, stdin: str = "") -> tuple[int, str, str]:
        import shlex
        args = shlex.split(line)
        exe = "lxc" if tool == "lxc" else os.path.join(VENV_BIN, "corral")
        res = subprocess.run([exe, *args], env=env, capture_output=True, text=True, input=stdin, timeout=120)
        return res.returncode, res.stdout, res.stderr

    run("lxc", "remote list")   # lxc's first-run message ("To start your first container...") out of the way
    yield run
    for d in dirs.values():
        shutil.rmtree(d, ignore_errors=True)


def _compare(run, line: str, stdin: str = "", suffixes: tuple[str, str] = ("", "")) -> None:
    got = {}
    for tool, suffix in zip(("lxc", "corral"), suffixes):
        rc, out, err = run(tool, line.replace("{s}", suffix), stdin)
        if rc == 0 and out.startswith(("Description:", "Usage:")):
            out = "<help>"   # cobra's and click's help layouts differ
        if err.startswith(("Description:", "Usage:")) or "\nUsage:" in err:
            err = err[err.rfind("Error:"):] if "Error:" in err else "<help>"
        if out.lstrip().startswith(("Description:", "Usage:")):
            out = "<help>"
        if suffix:
            out, err = normalise(out, suffix), normalise(err, suffix)
        got[tool] = (rc, out, err)
    assert got["corral"] == got["lxc"], line


@pytest.mark.parametrize("line", [f"{c} -f {f}" for c in LISTS for f in FORMATS] + SHOWS)
def test_read_only_commands_match_lxc(tools, line):
    _compare(tools, line)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenarios_match_lxc(tools, name):
    base = unique("")
    steps = SCENARIOS[name]
    outputs = {}
    for tool, suffix in (("lxc", f"{base}l"), ("corral", f"{base}c")):
        seen = []
        try:
            for step in steps:
                stdin = ""
                if step.startswith("!"):   # an edit fed an empty document on stdin
                    step = step[1:]
                rc, out, err = tools(tool, step.replace("{s}", suffix), stdin)
                if out.lstrip().startswith(("Description:", "Usage:")):
                    out = "<help>"
                seen.append((step, rc, normalise(out, suffix), normalise(err, suffix)))
        finally:
            _cleanup(tools, tool, suffix)
        outputs[tool] = seen
    for lxc_step, corral_step in zip(outputs["lxc"], outputs["corral"]):
        assert corral_step == lxc_step


def _cleanup(run, tool: str, suffix: str) -> None:
    """Remove what a scenario may have left after a failure (the scenarios end by deleting it all)."""
    for line in (f"delete -f i{suffix}", f"delete -f j{suffix}", f"storage volume delete default v{suffix}",
                 f"profile delete pr{suffix}", f"project delete p{suffix}", f"project delete e{suffix}",
                 "project switch default", f"config trust revoke-token tok{suffix}"):
        run(tool, line)
