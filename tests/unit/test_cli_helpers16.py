"""Issue 16's CLI helpers without a server: Examples in every help, cobra-style suggestions, alias
expansion (lxc's main_aliases.go), lxc's argument-count rule, the usage-driven completion kinds."""
import click
import pytest
from click.testing import CliRunner

from corral.cli.alias import expand
from corral.cli.completion import usage_kinds
from corral.cli.main import COMMANDS, cli, suggestions


def _walk(cmd, path):
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name in sorted(cmd.commands):
            sub = cmd.commands[name]
            if sub.name == name:
                yield from _walk(sub, path + [name])


def _all_commands():
    ctx = click.Context(cli)
    for name in sorted(COMMANDS):
        yield from _walk(cli.get_command(ctx, name), [name])


@pytest.mark.parametrize("path", [" ".join(p) for p, _ in _all_commands()])
def test_every_command_help_has_examples(path):
    result = CliRunner().invoke(cli, [*path.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.output
    assert "corral " in result.output.split("Examples:", 1)[1]


def test_unknown_command_suggests_like_cobra():
    result = CliRunner().invoke(cli, ["lisx"])
    assert result.exit_code == 1
    assert result.stderr == 'Error: unknown command "lisx" for "corral"\n\nDid you mean this?\n\tlist\n\n'
    result = CliRunner().invoke(cli, ["project", "lsit"])
    assert 'unknown command "lsit" for "corral project"' in result.stderr and "\tlist\n" in result.stderr
    assert suggestions("zzzzzz", ["list", "launch"]) == []


def test_alias_expansion():
    aliases = {"ll": "list -c n", "sh2": "exec @ARGS@ -- sh", "first": "info @ARG1@ --show-log"}
    assert expand(["ll", "-f", "csv"], aliases) == ["list", "-c", "n", "-f", "csv"]
    assert expand(["sh2", "c1"], aliases) == ["exec", "c1", "--", "sh"]
    assert expand(["first", "c1", "c2"], aliases) == ["info", "c1", "--show-log", "c2"]
    assert expand(["shell", "c1"], {}) == ["exec", "c1", "--", "su", "-l"]   # lxc's built-in alias
    assert expand(["list"], aliases) is None


def test_lxc_argument_count_rule(monkeypatch, tmp_path):
    monkeypatch.setenv("CORRAL_CONF", str(tmp_path))
    none = CliRunner().invoke(cli, ["project", "get"])
    assert none.exit_code == 0 and "Usage:" in none.output          # no arguments: the help, success
    bad = CliRunner().invoke(cli, ["project", "get", "a", "b", "c"])
    assert bad.exit_code == 1 and bad.stderr == "Error: Invalid number of arguments\n"


def test_unknown_remote_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("CORRAL_CONF", str(tmp_path))
    for args in (["project", "list", "nosuch:"], ["warning", "list", "nosuch:"], ["profile", "list", "nosuch:"],
                 ["list", "nosuch:"], ["image", "list", "nosuch:"]):
        result = CliRunner().invoke(cli, args)
        assert (result.exit_code, result.stderr) == (1, 'Error: The remote "nosuch" doesn\'t exist\n'), args


def test_usage_kinds():
    assert usage_kinds("[<remote>:]<pool> <volume> <profile> [<device name>] [<path>]") == \
        ["pool", "volume", "profile", None, None]
    assert usage_kinds("[<remote>:]") == ["remote"]
    assert usage_kinds("[<remote>:]<instance> <template>") == ["instance", None]
