import contextlib

import pytest

from helpers import Corrald, busybox_tarball


@contextlib.contextmanager
def initialised_corrald():
    """A real corrald after `init --auto` (dir pool `default`) with the busybox image as `busybox`;
    it and every container it made are removed afterwards, also when the test fails."""
    d = Corrald()
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
