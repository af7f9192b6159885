import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from helpers import Corrald, initialised_corrald  # noqa: E402

_ROOT_ONLY = ("integration", "security", "api")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if f"{os.sep}security{os.sep}" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
        elif f"{os.sep}mock{os.sep}" in str(item.fspath):
            item.add_marker(pytest.mark.mock)   # no root needed: never integration, never skipped
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="needs root (real corrald, liblxc, dqlite)")
        for item in items:
            if "integration" in item.keywords or any(f"{os.sep}{d}{os.sep}" in str(item.fspath) for d in _ROOT_ONLY):
                item.add_marker(skip)


@pytest.fixture(scope="module")
def daemon():
    d = Corrald()
    try:
        d.start()
        yield d
    finally:
        d.cleanup()


@pytest.fixture(scope="module")
def host():
    """One initialised daemon shared by a test module."""
    with initialised_corrald() as d:
        yield d


@pytest.fixture
def fresh_host():
    """A daemon of the test's own (for tests that kill or restart it)."""
    with initialised_corrald() as d:
        yield d


@pytest.fixture(scope="session")
def mock_host():
    """One corrald in mock mode (fake drivers, run as an ordinary user: tests/mockd.py), initialised
    with the busybox image, shared by the tests in tests/mock/."""
    from mockd import mock_corrald
    with mock_corrald() as d:
        yield d
