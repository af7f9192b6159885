import pytest

from helpers import Corrald, busybox_tarball


@pytest.fixture(scope="module")
def host():
    """A real corrald, initialised (`init --auto`: dir pool `default`), with the busybox image imported."""
    d = Corrald()
    try:
        d.start()
        d.run("corrald", "init", "--auto", check=True)
        d.lxc("image", "import", busybox_tarball(), "--alias", "busybox")
        yield d
    finally:
        d.cleanup()
