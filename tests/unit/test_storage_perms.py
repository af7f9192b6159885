"""storage/perms.py: the start-up pass that makes every volume root-only."""
import os
import stat

import pytest

from corral.storage.perms import IMAGE_MODE, KIND_MODE, KINDS, VOLUME_MODE, tighten_pool

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="tighten_pool chowns to root")


def mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_tighten_pool_fixes_old_modes_and_leaves_custom_volume_roots(tmp_path):
    pool = tmp_path / "pool"
    for k in KINDS:
        (pool / k).mkdir(parents=True)
        os.chmod(pool / k, 0o711)
    for p in ("containers/c1/rootfs", "containers-snapshots/c1/s0/rootfs", "images/" + "a" * 64 + "/rootfs",
              "custom/default_v1", "custom-snapshots/default_v1/s0"):
        (pool / p).mkdir(parents=True)
    for p in ("containers/c1", "containers-snapshots/c1", "containers-snapshots/c1/s0", "images/" + "a" * 64,
              "custom/default_v1", "custom-snapshots/default_v1", "custom-snapshots/default_v1/s0"):
        os.chmod(pool / p, 0o711)
    (pool / "images" / "stray-file").write_text("x")

    changed = tighten_pool(str(pool))

    assert all(mode(pool / k) == KIND_MODE for k in KINDS)
    assert mode(pool / "containers/c1") == VOLUME_MODE
    assert mode(pool / "containers-snapshots/c1") == KIND_MODE
    assert mode(pool / "containers-snapshots/c1/s0") == VOLUME_MODE
    assert mode(pool / ("images/" + "a" * 64)) == IMAGE_MODE
    assert mode(pool / "custom-snapshots/default_v1") == KIND_MODE
    # the roots of custom volumes (and of their snapshots) are the mounts' roots inside containers
    assert mode(pool / "custom/default_v1") == 0o711
    assert mode(pool / "custom-snapshots/default_v1/s0") == 0o711
    assert mode(pool / "containers/c1/rootfs") == 0o755 & ~_umask()
    assert len(changed) == len(KINDS) + 5
    assert tighten_pool(str(pool)) == []   # nothing left to do


def test_tighten_pool_on_a_missing_or_partial_pool(tmp_path):
    assert tighten_pool(str(tmp_path / "nothing")) == []
    (tmp_path / "p" / "containers").mkdir(parents=True)
    assert tighten_pool(str(tmp_path / "p")) == [str(tmp_path / "p" / "containers")]


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m
