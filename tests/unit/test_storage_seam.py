"""The storage seam (issue 11): no code outside corral/storage/ builds or walks a pool path. It asks
its Pool (corral/storage/pool.py) for volume operations and, where it must read files inside a
volume, for the mount path the pool hands out (`instance_path`, `mount`, `space_probe`).

An AST check over the server code, tested on snippets first so that it can fail, and the pool
layer's instance operations the instance code now calls, on the fake driver (no root)."""
import ast
import os
import re

import pytest

from corral.storage.drivers.fake import FakeDriver
from corral.storage.pool import Pool

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "corral")

# Path-based calls of the old storage API and driver layout helpers (corral/storage/ only).
FORBIDDEN_ATTRS = {"copy_tree", "delete_tree", "instance_dir", "snapshot_dir", "volume_path", "snapshots_path",
                   "block_path", "remove_leftover"}
# Directory names of a pool's tree (corral/storage/drivers/base.py SUBDIRS) and of the pools' parent.
POOL_DIRS = {"storage-pools", "containers-snapshots", "custom-snapshots"}
# A pool path written out in a string; API URLs (/1.0/storage-pools/..., also as regexes) are not paths.
POOL_PATH_TEXT = re.compile(r"(?<!1\.0/)(?<!1\\\.0/)\b(storage-pools|containers-snapshots|custom-snapshots)/")


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def violations(source: str, filename: str = "<snippet>") -> list[str]:
    """What in `source` reaches past the Pool into a pool's paths."""
    tree = ast.parse(source, filename)
    docs = _docstrings(tree)
    out = []
    for node in ast.walk(tree):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRS:
            out.append(f"{where}: .{node.attr}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "driver":
            owner = node.func.value
            if (isinstance(owner, ast.Name) and owner.id == "pools") or \
                    (isinstance(owner, ast.Attribute) and owner.attr == "pools"):
                out.append(f"{where}: pools.driver(...) (ask pools.pool(...))")
        if isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name)) and \
                (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "join":
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and \
                        arg.value.strip("/").split("/")[0] in POOL_DIRS:
                    out.append(f"{where}: join(..., {arg.value!r})")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs \
                and POOL_PATH_TEXT.search(node.value):
            out.append(f"{where}: pool path in {node.value!r}")
    return out


def _server_modules():
    for dirpath, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        rel = os.path.relpath(dirpath, ROOT)
        if rel == "storage" or rel.startswith("storage" + os.sep):
            continue
        for f in files:
            if f.endswith(".py"):
                yield os.path.join(dirpath, f)


@pytest.mark.parametrize("snippet", [
    "def f(d, inst): return d.pools.driver(inst.pool)",
    "def f(pools): pools.driver('default').instance_dir('c1')",
    "def f(insts, cur): return insts.snapshot_dir(cur, 's0')",
    "def f(drv, a, b): drv.copy_tree(a, b)",
    "def f(drv, p): drv.delete_tree(p)",
    "def f(pool, v): return pool.driver.volume_path(v)",
    "def f(pool, v): return pool.driver.snapshots_path(v)",
    "import os\ndef f(root): return os.path.join(root, 'storage-pools', 'default')",
    "import os\ndef f(p, v): return os.path.join(p, 'containers-snapshots', v)",
    "def f(paths): return paths.join('storage-pools/default/containers')",
    "def f(root, v): return f'{root}/storage-pools/default/custom/{v}'",
])
def test_the_check_finds_pool_paths(snippet):
    assert violations(snippet)


@pytest.mark.parametrize("snippet", [
    '"""Volumes live in storage-pools/<pool>/containers/<vol>."""',
    "URL = '/1.0/storage-pools/default/volumes'",
    r"AUTH = r'^/1\.0/storage-pools/[^/]+/volumes(/.*)?$'",
    "def f(d, inst, vol): return d.pools.pool(inst.pool).instance_path(vol)",
    "import os\ndef f(pool, vol): return os.path.join(pool.instance_path(vol), 'rootfs')",
])
def test_the_check_allows_what_the_pool_hands_out(snippet):
    assert violations(snippet) == []


def test_no_code_outside_storage_touches_a_pool_path():
    found = []
    for path in _server_modules():
        with open(path) as f:
            found += violations(f.read(), os.path.relpath(path, os.path.dirname(ROOT)))
    assert found == [], "code outside corral/storage/ reaches into a pool:\n" + "\n".join(found)
    assert len(list(_server_modules())) > 50   # the walk found the server code


def test_the_compatibility_layer_is_gone():
    from corral.storage.pools import Pools
    for name in ("instance_dir", "snapshot_dir", "copy_tree", "delete_tree", "pool"):
        assert not hasattr(Pool, name), name
    assert not hasattr(Pools, "driver")


# ---- the pool operations the instance code calls (creation, snapshots, rename, delete) --------

def _pool(tmp_path, name="p") -> Pool:
    drv = FakeDriver(name, str(tmp_path / name), {})
    drv.create_pool()
    return Pool(name, drv)


def _write(pool: Pool, vol: str, text: str, snap: str | None = None) -> None:
    with open(os.path.join(pool.instance_path(vol, snap), "rootfs", "f"), "w") as f:
        f.write(text)


def _read(pool: Pool, vol: str, snap: str | None = None) -> str:
    with open(os.path.join(pool.instance_path(vol, snap), "rootfs", "f")) as f:
        return f.read()


def _tree(pool: Pool) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, e), pool.driver.path)
                  for d, dirs, files in os.walk(pool.driver.path) for e in dirs + files)


def test_copy_of_a_snapshot_and_of_an_instance_with_its_snapshots(tmp_path):
    src, dst = _pool(tmp_path), _pool(tmp_path, "q")
    src.create_instance_empty("c1")
    _write(src, "c1", "one")
    src.create_instance_snapshot("c1", "s0")
    _write(src, "c1", "two")
    dst.create_instance_from_copy("from-snap", src, "c1", "s0", [])   # `lxc copy c1/s0 from-snap`
    assert _read(dst, "from-snap") == "one" and not dst.has_instance_snapshots("from-snap")
    dst.create_instance_from_copy("whole", src, "c1", None, ["s0"])
    assert _read(dst, "whole") == "two" and _read(dst, "whole", "s0") == "one"
    dst.delete_instance("whole")
    assert not dst.has_instance("whole") and not dst.has_instance_snapshots("whole")


def test_a_failed_copy_leaves_nothing(tmp_path):
    src, dst = _pool(tmp_path), _pool(tmp_path, "q")
    src.create_instance_empty("c1")
    src.create_instance_snapshot("c1", "s0")
    before = _tree(dst)
    with pytest.raises(FileNotFoundError):
        dst.create_instance_from_copy("c2", src, "c1", None, ["s0", "gone"])
    assert _tree(dst) == before   # no volume, no snapshot, no *.partial


def test_snapshot_rename_and_delete_and_restore(tmp_path):
    pool = _pool(tmp_path)
    pool.create_instance_empty("c1")
    _write(pool, "c1", "a")
    pool.create_instance_snapshot("c1", "s0")
    with pytest.raises(Exception, match="already exists"):
        pool.create_instance_snapshot("c1", "s0")
    pool.rename_instance_snapshot("c1", "s0", "s1")
    with pytest.raises(Exception):
        pool.instance_path("c1", "s0")
    _write(pool, "c1", "b")
    pool.restore_instance("c1", "s1")
    assert _read(pool, "c1") == "a"
    assert not [e for e in _tree(pool) if ".restore-" in e or e.endswith(".partial")]
    pool.delete_instance_snapshot("c1", "s1")
    assert not pool.has_instance_snapshots("c1")   # the last snapshot takes its directory along


def test_instance_rename_moves_snapshots_and_refuses_a_taken_name(tmp_path):
    pool = _pool(tmp_path)
    for v in ("c1", "c2"):
        pool.create_instance_empty(v)
    pool.create_instance_snapshot("c1", "s0")
    with pytest.raises(Exception, match="already exists"):
        pool.rename_instance("c1", "c2")
    assert pool.has_instance("c1") and pool.has_instance_snapshots("c1")
    pool.rename_instance("c1", "c3")
    assert not pool.has_instance("c1") and pool.has_instance("c3") and pool.snapshot_names(
        pool.instance_volume("c3")) == ["s0"]
    with pytest.raises(Exception, match="does not exist"):
        pool.instance_path("c1")
