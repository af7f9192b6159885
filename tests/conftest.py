import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from helpers import Corrald  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="needs root (real corrald, liblxc, dqlite)")
        for item in items:
            if "integration" in item.keywords or "api" in str(item.fspath):
                item.add_marker(skip)


@pytest.fixture(scope="module")
def daemon():
    d = Corrald()
    try:
        d.start()
        yield d
    finally:
        d.cleanup()
