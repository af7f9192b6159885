import contextlib
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from helpers import Corrald, busybox_tarball  # noqa: E402

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


@contextlib.contextmanager
def initialised_corrald(env: dict | None = None):
    """A real corrald after `init --auto` (dir pool `default`) with the busybox image as `busybox`;
    it and every container it made are removed afterwards, also when the test fails. `env`: more
    environment for the daemon."""
    d = Corrald()
    d.env.update(env or {})
    try:
        d.start()
        d.run("corrald", "init", "--auto", check=True)
        d.lxc("image", "import", busybox_tarball(), "--alias", "busybox")
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
