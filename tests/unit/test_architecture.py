"""The shape the developers' guide asks for, checked on the source tree: no module over 500 lines and
no import cycle between corral's packages (each corral/<package>/ or top-level module is one node;
imports inside functions count). The CLI/server split is test_cli_layering.py's."""
import ast
import os

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "corral")
MAX_LINES = 500


def modules():
    for dp, _, files in os.walk(ROOT):
        for f in sorted(files):
            if f.endswith(".py"):
                path = os.path.join(dp, f)
                rel = os.path.relpath(path, os.path.dirname(ROOT))[:-3].replace(os.sep, ".")
                yield path, rel.removesuffix(".__init__")


def unit(mod: str) -> str | None:
    """The package (or top-level module) a module belongs to: corral.<first part>."""
    parts = mod.split(".")
    return ".".join(parts[:2]) if parts[0] == "corral" and len(parts) > 1 else None


def imports(path: str) -> list[tuple[str, int]]:
    out = []
    for n in ast.walk(ast.parse(open(path).read())):
        if isinstance(n, ast.Import):
            out += [(a.name, n.lineno) for a in n.names]
        elif isinstance(n, ast.ImportFrom) and n.module == "corral" and n.level == 0:
            out += [(f"corral.{a.name}", n.lineno) for a in n.names]
        elif isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
            out.append((n.module, n.lineno))
    return out


def graph() -> dict[str, dict[str, str]]:
    edges: dict[str, dict[str, str]] = {}
    for path, mod in modules():
        src = unit(mod)
        for name, line in imports(path):
            dst = unit(name)
            if dst and src and dst != src:
                edges.setdefault(src, {}).setdefault(dst, f"{os.path.relpath(path, ROOT)}:{line}")
    return edges


def cycles(edges: dict[str, dict[str, str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while (w := stack.pop()) != v:
                comp.append(w)
            comp.append(v)
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_module_over_500_lines():
    big = {os.path.relpath(p, ROOT): n for p, _ in modules()
           if (n := sum(1 for _ in open(p))) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_no_import_cycle_between_packages():
    edges = graph()
    found = cycles(edges)
    detail = [{a: {b: edges[a][b] for b in comp if b in edges.get(a, {})} for a in comp} for comp in found]
    assert not found, f"import cycles between packages: {detail}"


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b": ""}, "b": {"c": ""}, "c": {"a": ""}, "d": {"a": ""}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b": ""}, "b": {}}) == []


def test_test_file_basenames_are_unique():
    """pytest imports test files by basename (rootdir-relative packages are not used here): two test
    files with one name in different tiers break collection of the whole suite."""
    tests = os.path.join(os.path.dirname(__file__), "..")
    seen: dict[str, list[str]] = {}
    for d, _, files in os.walk(tests):
        for f in files:
            if f.startswith("test_") and f.endswith(".py"):
                seen.setdefault(f, []).append(os.path.relpath(os.path.join(d, f), tests))
    assert not {k: v for k, v in seen.items() if len(v) > 1}
