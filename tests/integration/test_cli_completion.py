"""Acceptance 4 of issue 16: `corral completion bash|zsh` generates scripts, and completion asks the live
server for names: bash with the generated script sourced completes an instance name (COMP_WORDS set,
the completion function called as bash calls it), and the click protocol completes the others."""
import os
import shutil
import subprocess
import tempfile

import pytest

from helpers import VENV_BIN, initialised_corrald, unique

pytestmark = pytest.mark.integration

CORRAL = os.path.join(VENV_BIN, "corral")


@pytest.fixture(scope="module")
def server():
    with initialised_corrald() as d:
        conf = tempfile.mkdtemp(prefix="completion-conf-")
        d.env["CORRAL_CONF"] = conf
        names = {"instance": unique("comp-i"), "profile": unique("comp-p"), "project": unique("comp-j")}
        d.run("corral", "init", "busybox", names["instance"], check=True)
        d.run("corral", "profile", "create", names["profile"], check=True)
        d.run("corral", "project", "create", names["project"], check=True)
        try:
            yield d, names
        finally:
            d.run("corral", "delete", "-f", names["instance"])
            d.run("corral", "profile", "delete", names["profile"])
            d.run("corral", "project", "delete", names["project"])
            shutil.rmtree(conf, ignore_errors=True)


def test_scripts_are_generated(server):
    d, _ = server
    bash = d.run("corral", "completion", "bash", check=True).stdout
    assert "_corral_completion()" in bash and "complete -o nosort -F _corral_completion corral" in bash
    zsh = d.run("corral", "completion", "zsh", check=True).stdout
    assert zsh.startswith("#compdef corral") and "_CORRAL_COMPLETE=zsh_complete" in zsh
    bad = d.run("corral", "completion", "tcsh")
    assert bad.returncode != 0


def _bash_complete(d, line: str) -> list[str]:
    """Complete the last word of ``line`` in a real bash with the generated script sourced."""
    script = d.run("corral", "completion", "bash", check=True).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".bash", delete=False) as f:
        f.write(script)
        path = f.name
    try:
        words = line.split(" ")
        program = (
            f"source {path}\n"
            f"COMP_WORDS=({' '.join(repr(w) for w in words)})\n"
            f"COMP_CWORD={len(words) - 1}\n"
            "_corral_completion corral\n"
            "printf '%s\\n' \"${COMPREPLY[@]}\"\n"
        )
        env = dict(d.env, PATH=VENV_BIN + os.pathsep + d.env.get("PATH", ""))
        res = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], env=env, capture_output=True,
                             text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        return [w for w in res.stdout.splitlines() if w]
    finally:
        os.unlink(path)


def test_bash_completes_an_instance_name(server):
    d, names = server
    inst = names["instance"]
    assert _bash_complete(d, f"corral start {inst[:7]}") == [inst]
    assert inst in _bash_complete(d, "corral exec ")
    assert _bash_complete(d, f"corral start local:{inst[:7]}") == [f"local:{inst}"]
    # a name that is not there completes to nothing
    assert _bash_complete(d, "corral start zzz-no-such") == []


def _click_complete(d, line: str) -> list[str]:
    words = line.split(" ")
    env = dict(d.env, _CORRAL_COMPLETE="bash_complete", COMP_WORDS=line, COMP_CWORD=str(len(words) - 1))
    res = subprocess.run([CORRAL], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return [item.split(",", 1)[1] for item in res.stdout.splitlines() if "," in item]


def test_click_protocol_completes_other_names(server):
    d, names = server
    assert names["profile"] in _click_complete(d, "corral profile show ")
    assert names["project"] in _click_complete(d, "corral project switch ")
    assert "default" in _click_complete(d, "corral storage volume list ")
    assert "busybox" in _click_complete(d, "corral image show ")
    assert "local" in _click_complete(d, "corral remote switch ")
    assert names["instance"] in _click_complete(d, "corral config show ")
    assert "launch" in _click_complete(d, "corral lau")
