"""Fixtures of the multi-member tests: `cluster_factory(n)` makes an n-member Cluster (network
namespaces on one bridge, each a corrald with its own dir; tests/clusterlib.py), removed at teardown
whatever happened, also when making it failed half-way."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from clusterlib import Cluster  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def pytest_collection_modifyitems(config, items):
    """These tests need root (namespaces, bridges, real corralds): integration, skipped otherwise."""
    for item in items:
        if str(item.fspath).startswith(HERE + os.sep):
            item.add_marker(pytest.mark.integration)
            if os.geteuid() != 0:
                item.add_marker(pytest.mark.skip(reason="needs root (network namespaces, real corrald)"))


@pytest.fixture
def cluster_factory():
    """make(n=0, start=True, https=True) -> Cluster with n members added (started in parallel).
    Several clusters may be made; all are cleaned up at teardown."""
    made: list[Cluster] = []

    def make(n: int = 0, start: bool = True, https: bool = True) -> Cluster:
        c = Cluster()
        made.append(c)   # before anything exists: teardown covers a half-made cluster
        if n:
            c.add_members(n, start=start, https=https)
        return c

    yield make
    errors = []
    for c in made:
        try:
            c.cleanup()
        except Exception as e:
            errors.append(str(e))
    assert not errors, errors
