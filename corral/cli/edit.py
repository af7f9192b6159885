"""The `lxc ... edit` loop: YAML from stdin when it is not a terminal, else
$VISUAL/$EDITOR on a temporary file, re-opened with the error on top until the
change applies or the user gives up."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from typing import Any, Callable

import yaml

from corral.cli.client import ClientError
from corral.cli.output import to_yaml

ERROR_MARK = "### ERROR: "


def stdin_is_tty() -> bool:
    try:
        return os.isatty(sys.stdin.fileno())
    except (AttributeError, ValueError, OSError):
        return False


def find_editor() -> list[str]:
    for var in ("VISUAL", "EDITOR"):
        value = os.environ.get(var)
        if value:
            return shlex.split(value)
    for name in ("editor", "vi", "emacs", "nano"):
        path = shutil.which(name)
        if path:
            return [path]
    raise ClientError("No text editor found, please set the EDITOR environment variable")


def run_editor(text: str) -> str:
    """Open the editor on ``text``; return what was saved."""
    cmd = find_editor()
    fd, path = tempfile.mkstemp(prefix="corral_editor_", suffix=".yaml")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        try:
            rc = subprocess.call([*cmd, path])
        except OSError as exc:
            raise ClientError(f"Failed to start the editor {cmd[0]!r}: {exc.strerror}") from None
        if rc != 0:
            raise ClientError(f"Editor {cmd[0]!r} exited with status {rc}")
        with open(path) as f:
            return f.read()
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


def with_error(text: str, error: str) -> str:
    """Put ``error`` as a comment at the top of ``text`` (replacing an old one)."""
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith(ERROR_MARK):
        lines.pop(0)
    header = "".join(f"{ERROR_MARK}{line}\n" for line in error.splitlines() or [error])
    return header + "".join(lines)


def yaml_error(exc: yaml.YAMLError) -> str:
    """A PyYAML error in yaml.v2's words: 'yaml: line N: problem'."""
    mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        return f"yaml: line {mark.line + 1}: {problem}"
    return f"yaml: {problem}"


def parse_yaml(text: str) -> dict:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(yaml_error(exc)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"yaml: unmarshal errors:\n  cannot unmarshal !!{type(data).__name__} into an object")
    return data


def go_string(value: Any) -> str:
    """How yaml.v2 turns a scalar into a Go string."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def string_map(value: Any, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"yaml: cannot unmarshal {field} into map[string]string")
    return {str(k): go_string(v) for k, v in value.items()}


def devices_map(value: Any) -> dict[str, dict[str, str]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("yaml: cannot unmarshal devices into map[string]map[string]string")
    return {str(k): string_map(v, f"devices.{k}") for k, v in value.items()}


def edit_loop(
    current: Any,
    apply: Callable[[dict], None],
    help_text: str = "",
    typed: bool = True,
) -> None:
    """Edit ``current`` (rendered as YAML) and ``apply`` the parsed result.

    ``apply`` gets the parsed mapping and raises ValueError (bad content) or
    ClientError (server refused it); either re-opens the editor."""
    if not stdin_is_tty():
        content = sys.stdin.read()
        try:
            apply(parse_yaml(content))
        except ValueError as exc:
            raise ClientError(str(exc)) from None
        return

    text = to_yaml(current, typed=typed)
    if help_text:
        text = help_text + "\n\n" + text
    content = run_editor(text)
    while True:
        try:
            apply(parse_yaml(content))
            return
        except (ValueError, ClientError) as exc:
            error = str(exc)
        sys.stderr.write(f"Config parsing error: {error}\n")
        sys.stdout.write("Press enter to open the editor again or ctrl+c to abort change\n")
        sys.stdout.flush()
        answer = sys.stdin.readline()
        if answer == "":  # EOF: nobody to answer
            raise ClientError(error)
        content = run_editor(with_error(content, error))
