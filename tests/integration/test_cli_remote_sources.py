"""`corral init OTHER:IMAGE NAME` creates the instance on the default remote, which pulls the image from
OTHER over HTTPS (a private image by fingerprint with a one-time secret, as lxc does it), and
`corral image copy` copies between remotes; `corral remote add` with a trust token from
`corral config trust add`."""
import shutil
import tempfile

import pytest

from helpers import free_port, initialised_corrald, unique

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pair():
    conf = tempfile.mkdtemp(prefix="remote-src-conf-")
    try:
        with initialised_corrald() as near, initialised_corrald() as far:
            far.run("corral", "config", "set", "core.https_address", f"127.0.0.1:{free_port()}", check=True)
            token = far.run("corral", "config", "trust", "add", "--name", "near", "--quiet",
                            check=True).stdout.strip()
            near.env["CORRAL_CONF"] = conf
            near.run("corral", "remote", "add", "far", token, check=True)
            far.run("corral", "image", "alias", "create", "far-only",
                    far.run("corral", "image", "list", "-c", "F", "-f", "csv", check=True).stdout.split()[0],
                    check=True)
            yield near, far
    finally:
        shutil.rmtree(conf, ignore_errors=True)


def test_init_from_another_remote(pair):
    near, far = pair
    name = unique("rs")
    try:
        near.run("corral", "init", "far:far-only", name, check=True)
        assert near.run("corral", "list", name, "-c", "n", "-f", "csv", check=True).stdout == f"{name}\n"
        assert far.run("corral", "list", "-c", "n", "-f", "csv", check=True).stdout == ""
    finally:
        near.run("corral", "delete", "-f", name)


def test_image_copy_between_remotes(pair):
    near, far = pair
    res = near.run("corral", "image", "copy", "far:far-only", "local:", "--alias", "copied-here", "-q",
                   check=True)
    assert res.stdout == ""
    aliases = near.run("corral", "image", "alias", "list", "-f", "csv", check=True).stdout
    assert "copied-here," in aliases
    same = near.run("corral", "image", "copy", "far-only", "local:")
    assert (same.returncode, same.stderr) == (1, "Error: The source and target servers must be different\n")
    listed = near.run("corral", "image", "alias", "list", "far:", "-f", "csv", check=True).stdout
    assert "far-only," in listed and "copied-here" not in listed
