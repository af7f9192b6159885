"""The $EDITOR loop of `edit` commands."""

import os
import stat
import sys

sys.path.insert(0, os.path.dirname(__file__))
from test_cli_fakeserver import fake, run  # noqa: E402,F401

import corral.cli.edit as edit  # noqa: E402

EDITOR = r"""#!/bin/sh
# Call 1: add an invalid key.  Call 2: fix it.  Keeps a copy of what it saw.
dir=$(dirname "$0")
n=$(cat "$dir/count" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$dir/count"
cp "$1" "$dir/seen.$n"
if [ $n = 1 ]; then
  sed -i 's/^config: {}/config:\n  limits.bogus: "1"/' "$1"
else
  sed -i 's/limits.bogus/user.fixed/' "$1"
fi
"""


def make_editor(tmp_path):
    path = tmp_path / "editor.sh"
    path.write_text(EDITOR)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_profile_edit_reopens_editor_with_error(fake, run, tmp_path, monkeypatch):
    monkeypatch.setattr(edit, "stdin_is_tty", lambda: True)
    editor = make_editor(tmp_path)
    fake.profiles["p1"] = {"config": {}, "description": "", "devices": {}, "name": "p1", "used_by": []}

    def put(req):
        if "limits.bogus" in (req.json.get("config") or {}):
            return 400, {"type": "error", "error": "Unknown configuration key: limits.bogus", "error_code": 400}
        fake.profiles["p1"]["config"] = req.json["config"]
        return 200, {"type": "sync", "status": "Success", "status_code": 200, "metadata": None}

    fake.route("PUT", "/1.0/profiles/p1", put)
    result = run("profile", "edit", "p1", input="\n", env={"EDITOR": str(editor), "VISUAL": ""})
    assert result.exit_code == 0, result.stderr
    assert "Config parsing error: Unknown configuration key: limits.bogus" in result.stderr
    assert "Press enter to open the editor again" in result.stdout
    first = (tmp_path / "seen.1").read_text()
    assert first.startswith("### This is a YAML representation of the profile.")
    assert "name: p1\n" in first
    second = (tmp_path / "seen.2").read_text()
    assert second.startswith("### ERROR: Unknown configuration key: limits.bogus\n### This is a YAML")
    assert fake.profiles["p1"]["config"] == {"user.fixed": "1"}
    assert len(fake.find("PUT", "/1.0/profiles/p1")) == 2


def test_edit_gives_up_on_eof(fake, run, tmp_path, monkeypatch):
    monkeypatch.setattr(edit, "stdin_is_tty", lambda: True)
    editor = tmp_path / "bad.sh"
    editor.write_text("#!/bin/sh\necho 'config: [' > \"$1\"\n")
    editor.chmod(0o755)
    result = run("config", "edit", input="", env={"EDITOR": str(editor), "VISUAL": ""})
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith("Error: yaml: line ")
    assert not fake.find("PUT", "/1.0")


def test_server_config_edit_with_editor(fake, run, tmp_path, monkeypatch):
    monkeypatch.setattr(edit, "stdin_is_tty", lambda: True)
    editor = tmp_path / "ok.sh"
    editor.write_text("#!/bin/sh\nprintf 'config:\\n  user.a: b\\n' > \"$1\"\n")
    editor.chmod(0o755)
    result = run("config", "edit", env={"EDITOR": str(editor), "VISUAL": ""})
    assert result.exit_code == 0
    put = fake.find("PUT", "/1.0")[-1]
    assert put.json == {"config": {"user.a": "b"}}
    assert put.headers["If-Match"] == "server-etag-1"


def test_with_error_replaces_previous_error():
    text = edit.with_error("### ERROR: old\nconfig: {}\n", "new\nsecond line")
    assert text == "### ERROR: new\n### ERROR: second line\nconfig: {}\n"
