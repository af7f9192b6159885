"""The CLI and the server stay apart: `corral/cli/` and `corral/client/` import only themselves,
the standard library and third-party packages; no server module imports `corral/cli/`; every CLI
module is under 500 lines."""
import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "corral")


def _modules(under: str):
    for dirpath, _, files in os.walk(under):
        for f in files:
            if f.endswith(".py"):
                yield os.path.join(dirpath, f)


def _corral_imports(path: str) -> set[str]:
    """Every corral.* module a file imports (top level or inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "corral"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "corral":
                out |= {f"corral.{a.name}" for a in node.names}
            elif node.module.startswith("corral."):
                out.add(node.module)
    return out


def _inside(mod: str, *packages: str) -> bool:
    return any(mod == p or mod.startswith(p + ".") for p in packages)


CLI = os.path.join(ROOT, "cli")


def test_cli_and_client_import_no_server_code():
    bad = {}
    for path in [*_modules(CLI), *_modules(os.path.join(ROOT, "client"))]:
        server = sorted(m for m in _corral_imports(path) if not _inside(m, "corral.cli", "corral.client", "corral.pki"))
        if server:
            bad[os.path.relpath(path, ROOT)] = server
    assert bad == {}


def test_server_code_imports_no_cli():
    bad = {}
    for path in _modules(ROOT):
        if path.startswith(CLI + os.sep):
            continue
        cli = sorted(m for m in _corral_imports(path) if _inside(m, "corral.cli"))
        if cli:
            bad[os.path.relpath(path, ROOT)] = cli
    assert bad == {}


@pytest.mark.parametrize("path", sorted(_modules(CLI)), ids=lambda p: os.path.basename(p))
def test_cli_module_under_500_lines(path):
    with open(path) as f:
        assert sum(1 for _ in f) < 500


def test_every_command_loads():
    """Each top-level command resolves to a click command in its own module."""
    import click

    from corral.cli.main import COMMANDS
    import importlib

    for name, (module, attr) in COMMANDS.items():
        assert isinstance(getattr(importlib.import_module(module), attr), click.Command), name


def test_pki_is_shared_and_imports_nothing_else_from_corral():
    """corral/pki/ (certificates, TLS contexts) is used by both sides, so it depends on neither."""
    bad = {os.path.relpath(p, ROOT): sorted(m for m in _corral_imports(p) if not _inside(m, "corral.pki"))
           for p in _modules(os.path.join(ROOT, "pki"))}
    assert {k: v for k, v in bad.items() if v} == {}
