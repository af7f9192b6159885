"""corral-builder's files generators, one test each (issue 15, acceptance 2), on a small rootfs made
here; the LXD templates they add are rendered with corrald's own template code, as at create."""
from __future__ import annotations

import os
import stat

import pytest
import yaml

from corral.builder import definition as D
from corral.builder import generators as G
from corral.errors import NotImplementedFeature
from corral.image.templates import render_templates

BASE = "image: {distribution: test, release: r1, variant: %s}\nsource: {downloader: busybox}\n"


def defn(files: list[dict], variant: str = "default", base_dir: str = ".", vm: bool = False) -> dict:
    return D.load(BASE % variant + yaml.safe_dump({"files": files}), base_dir=base_dir, vm=vm)


@pytest.fixture
def rootfs(tmp_path):
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc/hostname").write_text("distrobuilder\n")
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tdistrobuilder\n")
    return str(root)


def apply_lxd(rootfs: str, meta: G.LXDMeta, tmp_path, trigger="create", name="c1", config=None) -> None:
    """Write meta as an image's metadata dir and render it into rootfs the way corrald does at create."""
    md = tmp_path / "meta"
    (md / "templates").mkdir(parents=True, exist_ok=True)
    (md / "metadata.yaml").write_text(yaml.safe_dump({"architecture": "x86_64", "creation_date": 0,
                                                       "properties": {}, "templates": meta.templates}))
    for fname, content in meta.files.items():
        (md / "templates" / fname).write_text(content)
    render_templates(str(md), rootfs, trigger, {"instance": {"name": name, "type": "container"},
                                                  "config": config or {}, "devices": {}})


def test_hostname(rootfs, tmp_path):
    d = defn([{"generator": "hostname", "path": "/etc/hostname"}])
    G.run_all(rootfs, d, None)     # a plain rootfs: unchanged
    assert open(f"{rootfs}/etc/hostname").read() == "distrobuilder\n"
    meta = G.LXDMeta()
    G.run_all(rootfs, d, meta)
    assert meta.templates["/etc/hostname"] == {"when": ["create", "copy"], "create_only": False,
                                               "template": "hostname.tpl", "properties": {}}
    apply_lxd(rootfs, meta, tmp_path, name="web1")
    assert open(f"{rootfs}/etc/hostname").read() == "web1\n"


def test_hostname_skips_a_missing_file(rootfs):
    meta = G.LXDMeta()
    G.run_all(rootfs, defn([{"generator": "hostname", "path": "/etc/nohostname"}]), meta)
    assert meta.templates == {}


def test_hosts(rootfs, tmp_path):
    meta = G.LXDMeta()
    G.run_all(rootfs, defn([{"generator": "hosts", "path": "/etc/hosts", "template": {"when": ["start"]}}]), meta)
    assert meta.files["hosts.tpl"] == "127.0.0.1\tlocalhost\n127.0.1.1\t{{ container.name }}\n"
    assert meta.templates["/etc/hosts"]["when"] == ["start"]
    apply_lxd(rootfs, meta, tmp_path, trigger="start", name="db2")
    assert open(f"{rootfs}/etc/hosts").read() == "127.0.0.1\tlocalhost\n127.0.1.1\tdb2\n"


def test_hosts_adds_the_line_when_missing(rootfs):
    open(f"{rootfs}/etc/hosts", "w").write("127.0.0.1\tlocalhost\n")
    meta = G.LXDMeta()
    G.run_all(rootfs, defn([{"generator": "hosts", "path": "/etc/hosts"}]), meta)
    assert meta.files["hosts.tpl"].startswith("127.0.1.1\t{{ container.name }}\n127.0.0.1")


def test_remove(rootfs):
    os.makedirs(f"{rootfs}/var/lib/dbus/sub")
    open(f"{rootfs}/var/lib/dbus/machine-id", "w").write("x")
    G.run_all(rootfs, defn([{"generator": "remove", "path": "/var/lib/dbus/machine-id"},
                            {"generator": "remove", "path": "/var/lib/dbus/sub"},
                            {"generator": "remove", "path": "/not/there"}]), None)
    assert os.listdir(f"{rootfs}/var/lib/dbus") == []


def test_dump_with_mode_owner_and_pongo(rootfs):
    G.run_all(rootfs, defn([{"generator": "dump", "path": "/etc/motd", "content": "hello"},
                            {"generator": "dump", "path": "/etc/deep/er/file", "content": "{{ image.release|upper }}",
                             "pongo": True, "mode": "0600", "uid": "1000", "gid": "1001"},
                            {"generator": "dump", "path": "/etc/raw", "content": "{{ image.release }}"}]), None)
    assert open(f"{rootfs}/etc/motd").read() == "hello\n"
    st = os.stat(f"{rootfs}/etc/deep/er/file")
    assert open(f"{rootfs}/etc/deep/er/file").read() == "R1\n"
    assert stat.S_IMODE(st.st_mode) == 0o600 and (st.st_uid, st.st_gid) == (1000, 1001)
    assert open(f"{rootfs}/etc/raw").read() == "{{ image.release }}\n"     # pongo not asked for


def test_dump_follows_symlinks_inside_the_rootfs_only(rootfs, tmp_path):
    outside = tmp_path / "host-file"
    outside.write_text("host\n")
    os.symlink(str(outside), f"{rootfs}/etc/resolv.conf")       # absolute: means <rootfs><outside>
    G.run_all(rootfs, defn([{"generator": "dump", "path": "/etc/resolv.conf", "content": "nameserver 1.1.1.1"}]), None)
    assert outside.read_text() == "host\n"
    assert open(rootfs + str(outside)).read() == "nameserver 1.1.1.1\n"


def test_copy(rootfs, tmp_path):
    src = tmp_path / "defdir"
    (src / "files/conf.d").mkdir(parents=True)
    (src / "files/one.conf").write_text("one\n")
    (src / "files/conf.d/a").write_text("a\n")
    (src / "files/x.list").write_text("x\n")
    (src / "files/y.list").write_text("y\n")
    d = defn([{"generator": "copy", "source": "files/one.conf", "path": "/etc/one.conf", "mode": "0640"},
              {"generator": "copy", "source": "files/conf.d", "path": "/etc/conf.d"},
              {"generator": "copy", "source": "files/*.list", "path": "/etc/apt/sources.list.d"}], base_dir=str(src))
    G.run_all(rootfs, d, None)
    assert open(f"{rootfs}/etc/one.conf").read() == "one\n"
    assert stat.S_IMODE(os.stat(f"{rootfs}/etc/one.conf").st_mode) == 0o640
    assert open(f"{rootfs}/etc/conf.d/a").read() == "a\n"
    assert sorted(os.listdir(f"{rootfs}/etc/apt/sources.list.d")) == ["x.list", "y.list"]
    with pytest.raises(G.GeneratorError, match=r"^files\[0\].source: files/nothing does not exist"):
        G.run_all(rootfs, defn([{"generator": "copy", "source": "files/nothing"}], base_dir=str(src)), None)


def test_template(rootfs, tmp_path):
    d = defn([{"generator": "template", "path": "/etc/whoami", "name": "whoami",
               "content": 'I am {{ container.name }} ({{ config_get("user.role", "none") }})'}])
    G.run_all(rootfs, d, None)
    assert not os.path.exists(f"{rootfs}/etc/whoami")           # LXD images only
    meta = G.LXDMeta()
    G.run_all(rootfs, d, meta)
    assert meta.templates["/etc/whoami"]["template"] == "whoami.tpl"
    apply_lxd(rootfs, meta, tmp_path, name="c9", config={"user.role": "web"})
    assert open(f"{rootfs}/etc/whoami").read() == "I am c9 (web)\n"


def test_cloud_init(rootfs, tmp_path):
    d = defn([{"generator": "cloud-init", "name": n} for n in ("meta-data", "user-data", "vendor-data", "network-config")])
    meta = G.LXDMeta()
    G.run_all(rootfs, d, meta)
    seed = "/var/lib/cloud/seed/nocloud-net"
    assert sorted(meta.templates) == [f"{seed}/{n}" for n in ("meta-data", "network-config", "user-data", "vendor-data")]
    assert meta.templates[f"{seed}/user-data"]["properties"] == {"default": "#cloud-config\n{}"}
    apply_lxd(rootfs, meta, tmp_path, name="ci1", config={"cloud-init.user-data": "#cloud-config\npackages: [vim]"})
    assert open(f"{rootfs}{seed}/meta-data").read().startswith("instance-id: ci1\nlocal-hostname: ci1\n")
    assert open(f"{rootfs}{seed}/user-data").read().strip() == "#cloud-config\npackages: [vim]"
    assert open(f"{rootfs}{seed}/vendor-data").read().strip() == "#cloud-config\n{}"
    net = yaml.safe_load(open(f"{rootfs}{seed}/network-config").read())
    assert net["config"][0]["name"] == "eth0" and net["config"][0]["subnets"][0]["type"] == "dhcp"


def test_lxd_agent_and_fstab(rootfs):
    with pytest.raises(NotImplementedFeature, match="lxd-agent generator"):
        G.run_all(rootfs, defn([{"generator": "lxd-agent"}]), G.LXDMeta())
    G.run_all(rootfs, defn([{"generator": "lxd-agent", "types": ["vm"]}]), G.LXDMeta())   # filtered out
    G.run_all(rootfs, defn([{"generator": "fstab", "path": "/etc/fstab"}]), G.LXDMeta())  # containers: nothing
    assert not os.path.exists(f"{rootfs}/etc/fstab")
    with pytest.raises(NotImplementedFeature, match="fstab generator"):
        G.run_all(rootfs, defn([{"generator": "fstab", "path": "/etc/fstab"}], vm=True), G.LXDMeta())


def test_filters_select_files(rootfs):
    d = defn([{"generator": "dump", "path": "/etc/a", "variants": ["cloud"]},
              {"generator": "dump", "path": "/etc/b", "releases": ["r1"]},
              {"generator": "dump", "path": "/etc/c", "releases": ["r2"]},
              {"generator": "dump", "path": "/etc/d", "types": ["container"]}], variant="default")
    G.run_all(rootfs, d, None)
    assert [os.path.exists(f"{rootfs}/etc/{n}") for n in "abcd"] == [False, True, False, True]
