"""corral-builder's pipeline on the busybox source (fast, no network): every action trigger in its
place and with its filters, the apt manager's command sequence (a recording apt-get inside the
chroot), the environment section, build-dir / pack-lxd / build-lxd through the CLI, unified and split
outputs. Chroots need root."""
from __future__ import annotations

import os
import subprocess
import tarfile

import pytest
import yaml
from click.testing import CliRunner

from corral.builder.cli import cli

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/bin/busybox"),
                                reason="chroot builds need root and busybox-static")

FAKE_APT = """#!/bin/sh
echo "$*" >> /var/log/apt.log
"""


def definition(tmp_path, **extra) -> str:
    doc = {
        "image": {"distribution": "busybox", "variant": "default"},
        "source": {"downloader": "busybox"},
        "files": [{"generator": "hostname", "path": "/etc/hostname"},
                  {"generator": "dump", "path": "/etc/motd", "content": "built"}],
        "environment": {"variables": [{"key": "FOO", "value": "bar"}]},
        "packages": {
            "manager": "apt", "update": True, "cleanup": True,
            "sets": [{"packages": ["a", "b"], "action": "install", "flags": ["--no-install-recommends"]},
                     {"packages": ["c"], "action": "install", "flags": ["--no-install-recommends"]},
                     {"packages": ["d"], "action": "remove"},
                     {"packages": ["e"], "action": "install", "variants": ["cloud"]},
                     {"packages": ["early1"], "action": "install", "early": True}],
            "repositories": [{"name": "extra", "url": "deb http://x.invalid/debian bookworm main"},
                             {"name": "armonly", "url": "deb http://y.invalid/ bookworm main", "architectures": ["arm64"]}],
        },
        "actions": [
            {"trigger": "post-unpack", "action": "#!/bin/sh\nset -e\nmkdir -p /usr/bin /var/log\n"
                                                 f"cat > /usr/bin/apt-get <<'EOF'\n{FAKE_APT}EOF\nchmod 755 /usr/bin/apt-get\n"
                                                 "echo post-unpack >> /triggers"},
            {"trigger": "post-update", "action": "echo post-update >> /triggers"},
            {"trigger": "post-packages", "action": "#!/bin/sh\necho \"post-packages $FOO $DEBIAN_FRONTEND\" >> /triggers"},
            {"trigger": "post-packages", "action": "echo never-cloud >> /triggers", "variants": ["cloud"]},
            {"trigger": "post-packages", "action": "echo never-vm >> /triggers", "types": ["vm"]},
            {"trigger": "post-packages", "action": "echo never-release >> /triggers", "releases": ["0.1"]},
            {"trigger": "post-files", "action": "echo post-files $(cat /etc/motd) >> /triggers"},
        ],
    }
    doc.update(extra)
    path = tmp_path / "def.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def run(*args):
    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return res


def test_build_dir_runs_every_trigger_in_order(tmp_path):
    d, root = definition(tmp_path), str(tmp_path / "root")
    res = run("--cache-dir", str(tmp_path / "cache"), "build-dir", d, root)
    assert res.exit_code == 0, res.output
    assert open(f"{root}/triggers").read().split("\n") == ["post-unpack", "post-update",
                                                           "post-packages bar noninteractive", ""]
    assert open(f"{root}/var/log/apt.log").read().split("\n") == [
        "-y -q update", "-y -q install early1", "-y -q update", "-y -q dist-upgrade",
        "-y -q install --no-install-recommends a b c", "-y -q remove --purge d",
        "-y -q autoremove --purge", "-y -q clean", ""]
    assert open(f"{root}/etc/apt/sources.list.d/extra.list").read() == "deb http://x.invalid/debian bookworm main\n"
    assert not os.path.exists(f"{root}/etc/apt/sources.list.d/armonly.list")
    assert open(f"{root}/etc/motd").read() == "built\n"           # plain generators ran
    assert not os.path.exists(f"{root}/usr/sbin/policy-rc.d")     # only while packages install
    assert os.path.isdir(tmp_path / "cache" / "apt")
    root2 = str(tmp_path / "root2")
    assert run("--cache-dir", str(tmp_path / "cache"), "build-dir", d, root2, "--with-post-files").exit_code == 0
    assert open(f"{root2}/triggers").read().split("\n")[-2] == "post-files built"


def test_post_update_only_after_an_upgrade_and_clear_defaults(tmp_path):
    d = definition(tmp_path, environment={"clear_defaults": True,
                                          "variables": [{"key": "PATH", "value": "/bin:/usr/bin"},
                                                        {"key": "FOO", "value": "baz"}]})
    doc = yaml.safe_load(open(d))
    doc["packages"]["update"] = False
    open(d, "w").write(yaml.safe_dump(doc))
    root = str(tmp_path / "root")
    assert run("--cache-dir", str(tmp_path / "cache"), "build-dir", d, root).exit_code == 0
    assert open(f"{root}/triggers").read().split("\n") == ["post-unpack", "post-packages baz ", ""]


def test_a_failing_action_names_itself(tmp_path):
    d = definition(tmp_path, actions=[{"trigger": "post-unpack", "action": "#!/bin/sh\necho oops; exit 3"}],
                   packages={})
    res = run("--cache-dir", str(tmp_path / "cache"), "build-dir", d, str(tmp_path / "root"))
    assert res.exit_code == 1
    assert "actions[0] (post-unpack) failed (exit status 3):\noops" in res.output


def test_build_lxd_unified_and_split(tmp_path):
    d = definition(tmp_path)
    out = tmp_path / "out"
    res = run("--cache-dir", str(tmp_path / "cache"), "build-lxd", d, str(out), "--type", "unified",
              "--compression", "gzip")
    assert res.exit_code == 0, res.output
    (tarball,) = res.stdout.split()
    assert tarball.endswith(".tar.gz") and os.path.basename(tarball).startswith("busybox-")
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
        meta = yaml.safe_load(tar.extractfile("metadata.yaml"))
        triggers = tar.extractfile("rootfs/triggers").read().decode()
    assert {"metadata.yaml", "templates/hostname.tpl", "rootfs/bin/busybox", "rootfs/etc/motd"} <= names
    assert not any(n.startswith("rootfs/dev/") for n in names)
    assert triggers.endswith("post-files built\n")               # post-files always runs for LXD images
    assert meta["architecture"] == os.uname().machine and meta["properties"]["os"] == "busybox"
    assert meta["templates"]["/etc/hostname"]["template"] == "hostname.tpl"
    assert meta["expiry_date"] - meta["creation_date"] == 30 * 86400

    res = run("--cache-dir", str(tmp_path / "cache"), "build-lxd", d, str(out / "split"), "--compression", "gzip")
    assert res.exit_code == 0, res.output
    meta_file, squash = res.stdout.split()
    assert os.path.basename(meta_file) == "lxd.tar.gz" and os.path.basename(squash) == "rootfs.squashfs"
    with tarfile.open(meta_file) as tar:
        assert sorted(tar.getnames()) == ["metadata.yaml", "templates", "templates/hostname.tpl"]
    listing = subprocess.run(["unsquashfs", "-l", squash], capture_output=True, text=True, check=True).stdout
    assert "squashfs-root/bin/busybox" in listing and "squashfs-root/triggers" in listing
    assert not [p for p in os.listdir(tmp_path / "cache") if p.startswith("build-")]    # work dir removed


def test_pack_lxd_of_an_existing_rootfs(tmp_path):
    d, root = definition(tmp_path), str(tmp_path / "root")
    assert run("--cache-dir", str(tmp_path / "cache"), "build-dir", d, root).exit_code == 0
    res = run("-o", "image.description=packed", "pack-lxd", d, root, str(tmp_path / "out"), "--type", "unified",
              "--compression", "none")
    assert res.exit_code == 0, res.output
    with tarfile.open(res.stdout.split()[0]) as tar:
        assert yaml.safe_load(tar.extractfile("metadata.yaml"))["properties"]["description"] == "packed"


def test_refusals(tmp_path):
    d = definition(tmp_path)
    res = run("build-lxd", d, str(tmp_path / "o"), "--vm")
    assert res.exit_code == 1 and "not implemented: VM images" in res.output
    res = run("build-lxd", d, str(tmp_path / "o"), "--compression", "bzip2")
    assert res.exit_code == 1 and 'cannot compress a squashfs' in res.output
    res = run("-o", "image.release=0.1", "build-dir", d, str(tmp_path / "r"))
    assert res.exit_code == 1 and "only the host's busybox" in res.output
    res = run("-o", "packages.manager=zypper", "build-dir", d, str(tmp_path / "r2"))
    assert res.exit_code == 1 and 'not implemented: packages.manager "zypper"' in res.output
    res = run("-o", "source.downloader=gentoo-http", "build-dir", d, str(tmp_path / "r3"))
    assert res.exit_code == 1 and 'Unsupported source downloader "gentoo-http"' in res.output
    res = run("validate", d)
    assert res.exit_code == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("image: {distribution: x}\nsource: {downloader: busybox}\npackages:\n  manager: apt\n  sets:\n"
                   "    - {packages: [a], action: install}\n    - {packages: [a], action: install}\n"
                   "    - {packages: [a], action: instal}\n")
    res = run("validate", str(bad))
    assert res.exit_code == 1 and 'packages.sets[2].action: invalid value "instal"' in res.output
