"""corral-builder's definitions (issue 15, acceptance 2): every section of distrobuilder's schema is
parsed, unknown keys and invalid values are refused with the offending key's path, -o overrides,
defaults, mappings, filters and the template variables/filters."""
from __future__ import annotations

import os
import re

import pytest
import yaml

from corral.builder import definition as D

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")

FULL = """
image:
  distribution: debian
  release: bookworm
  architecture: x86_64
  variant: cloud
  description: "{{ image.distribution|capfirst }} {{ image.release }}"
  expiry: 1w
  name: my-{{ image.release }}
  serial: "20260101"
source:
  downloader: debootstrap
  url: http://mirror.example/debian
  keys: [0xABCDEF]
  keyserver: keyserver.example
  variant: minbase
  suite: stable
  same_as: bookworm
  skip_verification: true
  components: [main, contrib]
targets:
  lxc:
    create_message: hello
    config:
      - type: all
        before: 5
        content: lxc.include = x
      - type: user
        after: 4
        content: lxc.include = y
        releases: [bookworm]
  lxd:
    vm:
      size: 4294967296
      filesystem: ext4
files:
  - path: /etc/hostname
    generator: hostname
  - path: /etc/motd
    generator: dump
    content: hi
    mode: "0600"
    uid: "0"
    gid: "0"
    pongo: true
    releases: [bookworm]
    architectures: [amd64]
    variants: [cloud]
    types: [container]
  - path: /etc/x
    generator: template
    name: x
    content: "{{ container.name }}"
    template:
      when: [create, start]
      properties: {a: b}
  - generator: copy
    source: files/thing
    path: /opt/thing
  - name: user-data
    generator: cloud-init
packages:
  manager: apt
  update: true
  cleanup: true
  sets:
    - packages: [vim]
      action: install
      flags: [--no-install-recommends]
      early: true
    - packages: [nano]
      action: remove
      variants: [default]
  repositories:
    - name: extra
      url: deb http://x.example/debian bookworm main
      type: sources.list
      key: "-----BEGIN PGP PUBLIC KEY BLOCK-----"
      architectures: [amd64]
actions:
  - trigger: post-unpack
    action: echo 1
  - trigger: post-files
    action: echo 2
    pongo: true
    types: [vm]
mappings:
  architecture_map: debian
  architectures: {amd64: amd64}
environment:
  clear_defaults: true
  variables:
    - key: FOO
      value: bar
"""


def test_every_section_is_parsed():
    d = D.load(FULL)
    assert d["image"]["architecture_mapped"] == "amd64" and d["image"]["architecture_kernel"] == "x86_64"
    assert d["image"]["description"] == "Debian bookworm" and d["image"]["name"] == "my-bookworm"
    assert d["source"]["components"] == ["main", "contrib"] and d["source"]["skip_verification"] is True
    assert d["targets"]["lxc"]["config"][1] == {"type": "user", "after": 4, "content": "lxc.include = y",
                                                 "releases": ["bookworm"]}
    assert d["targets"]["lxd"]["vm"] == {"size": 4294967296, "filesystem": "ext4"}
    assert d["targets"]["type"] == "container"
    assert d["files"][1]["types"] == ["container"] and d["files"][2]["template"]["when"] == ["create", "start"]
    assert d["packages"]["sets"][0]["early"] is True and d["packages"]["repositories"][0]["name"] == "extra"
    assert d["actions"][1]["types"] == ["vm"]
    assert d["environment"]["variables"] == [{"key": "FOO", "value": "bar"}]


def _variant(text: str, path: str, value) -> str:
    """FULL with the value at `path` (dotted, list indexes as numbers) replaced."""
    doc = yaml.safe_load(FULL)
    node = doc
    parts = path.split(".")
    for p in parts[:-1]:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if isinstance(node, list):
        node[int(parts[-1])] = value
    else:
        node[parts[-1]] = value
    return yaml.safe_dump(doc)


@pytest.mark.parametrize("path,value,error", [
    ("packages.sets.1.action", "instal", 'packages.sets[1].action: invalid value "instal" (one of: install, remove)'),
    ("files.0.generator", "hostnam", 'files[0].generator: invalid value "hostnam"'),
    ("actions.0.trigger", "post-install", 'actions[0].trigger: invalid value "post-install"'),
    ("mappings.architecture_map", "debain", 'mappings.architecture_map: invalid value "debain"'),
    ("source.downloader", "debootstra", 'source.downloader: invalid value "debootstra"'),
    ("targets.lxc.config.0.type", "both", 'targets.lxc.config[0].type: invalid value "both" (one of: all, user, system)'),
    ("files.1.types", ["containers"], 'files[1].types[0]: invalid value "containers" (one of: container, vm)'),
    ("files.2.template.when", ["boot"], 'files[2].template.when[0]: invalid value "boot"'),
    ("packages.update", "yes", 'packages.update: invalid value "yes" (expected true or false)'),
    ("targets.lxd.vm.size", -1, "targets.lxd.vm.size: invalid value -1 (expected an unsigned integer)"),
    ("packages.manager", "aptitude", 'packages.manager: invalid value "aptitude"'),
    ("packages.sets", {"packages": ["x"]}, "packages.sets: expected a list"),
    ("files.1.mode", "rw-r--r--", 'files[1].mode: invalid value "rw-r--r--" (an octal mode)'),
    ("files.1.path", "etc/motd", 'files[1].path: invalid value "etc/motd" (an absolute path)'),
    ("files.4.name", "userdata", 'files[4].name: invalid value "userdata"'),
    ("image.distribution", "", "image.distribution: may not be empty"),
    ("image.expiry", "soon", 'image.expiry: invalid value "soon"'),
    ("image.architecture", "vax", 'image.architecture: unknown architecture "vax"'),
])
def test_invalid_values_name_their_key(path, value, error):
    with pytest.raises(D.DefinitionError) as e:
        D.load(_variant(FULL, path, value))
    assert str(e.value).startswith(error), str(e.value)


@pytest.mark.parametrize("path,key", [
    ("image", "relase"), ("source", "mirror"), ("targets", "lxdd"), ("targets.lxc", "create-message"),
    ("targets.lxd.vm", "format"), ("files.0", "paths"), ("packages", "set"), ("packages.sets.1", "package"),
    ("packages.repositories.0", "uri"), ("actions.1", "script"), ("mappings", "arch"), ("environment", "vars"),
    ("files.2.template", "whenn"), ("", "extra"),
])
def test_unknown_keys_are_refused_with_their_path(path, key):
    doc = yaml.safe_load(FULL)
    node = doc
    for p in [p for p in path.split(".") if p]:
        node = node[int(p)] if isinstance(node, list) else node[p]
    node[key] = "x"
    with pytest.raises(D.DefinitionError) as e:
        D.load(yaml.safe_dump(doc))
    want = re.sub(r"\.(\d+)", r"[\1]", f"{path}.{key}") if path else key
    assert str(e.value) == f"{want}: unknown key"


def test_missing_required_keys():
    with pytest.raises(D.DefinitionError, match=r"^source.downloader: may not be empty"):
        D.load("image: {distribution: x}")
    with pytest.raises(D.DefinitionError, match=r"^packages.manager: "):
        D.load("image: {distribution: x}\nsource: {downloader: busybox}\npackages: {sets: [{packages: [a], action: install}]}")
    with pytest.raises(D.DefinitionError, match=r"^packages.sets\[0\].action: may not be empty"):
        D.load("image: {distribution: x}\nsource: {downloader: busybox}\npackages: {manager: apt, sets: [{packages: [a]}]}")
    with pytest.raises(D.DefinitionError, match=r"^files\[0\].path: may not be empty for the dump generator"):
        D.load("image: {distribution: x}\nsource: {downloader: busybox}\nfiles: [{generator: dump}]")
    with pytest.raises(D.DefinitionError, match=r"^invalid YAML"):
        D.load("image: [")


def test_defaults_as_distrobuilder():
    d = D.load("image: {distribution: alpine, release: '3.19'}\nsource: {downloader: busybox}", now=0)
    img = d["image"]
    assert img["architecture"] == os.uname().machine and img["expiry"] == "30d" and img["variant"] == "default"
    assert img["serial"] == "19700101_0000"
    assert img["name"] == f"alpine-3.19-{os.uname().machine}-default-19700101_0000"
    assert img["description"] == f"Alpine 3.19 {os.uname().machine} (19700101_0000)"
    d = D.load("image: {distribution: alpine, variant: cloud}\nsource: {downloader: busybox}", now=0)
    assert d["image"]["description"].endswith(" (cloud) (19700101_0000)")
    assert d["source"]["keyserver"] == "hkps.pool.sks-keyservers.net"
    assert D.expiry_seconds(D.load(FULL)) == 7 * 86400


def test_overrides():
    d = D.load(FULL, ["image.release=trixie", "packages.update=false", "files.1.content=bye",
                      "targets.lxd.vm.size=10", "source.url=http://m/debian"])
    assert d["image"]["release"] == "trixie" and d["image"]["name"] == "my-trixie"
    assert d["packages"]["update"] is False and d["files"][1]["content"] == "bye"
    assert d["targets"]["lxd"]["vm"]["size"] == 10 and d["source"]["url"] == "http://m/debian"
    for bad, msg in [("image.relase=x", "image.relase: unknown key"), ("image.release", "-o image.release: expected key=value"),
                     ("packages.update=maybe", 'packages.update: invalid value "maybe"'),
                     ("files.9.content=x", "files.9.content: index out of range"),
                     ("packages.sets.0.action=purge", 'packages.sets[0].action: invalid value "purge"'),
                     ("targets.lxd.vm.size=big", 'targets.lxd.vm.size: invalid value "big"'),
                     ("packages.sets=x", "packages.sets: cannot be set with -o")]:
        with pytest.raises(D.DefinitionError, match="^" + msg.replace("[", r"\[").replace("]", r"\]")):
            D.load(FULL, [bad])


def test_mappings():
    base = "image: {distribution: x, architecture: %s}\nsource: {downloader: busybox}\n"
    assert D.load(base % "x86_64" + "mappings: {architecture_map: debian}")["image"]["architecture_mapped"] == "amd64"
    assert D.load(base % "aarch64" + "mappings: {architecture_map: debian}")["image"]["architecture_mapped"] == "arm64"
    assert D.load(base % "amd64" + "mappings: {architecture_map: centos}")["image"]["architecture_mapped"] == "x86_64"
    assert D.load(base % "x86_64" + "mappings: {architectures: {x86_64: x64}}")["image"]["architecture_mapped"] == "x64"
    assert D.load(base % "x86_64")["image"]["architecture_mapped"] == "x86_64"
    with pytest.raises(D.DefinitionError, match="^mappings.architecture_map: architecture"):
        D.load(base % "s390x" + "mappings: {architecture_map: plamolinux}")


def test_filters():
    d = D.load(FULL)
    assert D.applies({}, d)
    assert D.applies({"releases": ["bookworm", "trixie"]}, d) and not D.applies({"releases": ["trixie"]}, d)
    assert D.applies({"architectures": ["amd64"]}, d) and D.applies({"architectures": ["x86_64"]}, d)
    assert not D.applies({"architectures": ["arm64"]}, d)
    assert D.applies({"variants": ["cloud"]}, d) and not D.applies({"variants": ["default"]}, d)
    assert D.applies({"types": ["container"]}, d) and not D.applies({"types": ["vm"]}, d)
    assert D.applies({"types": ["vm"]}, D.load(FULL, vm=True))
    assert not D.applies({"releases": ["bookworm"], "variants": ["default"]}, d)
    assert [s["packages"] for s in D.filtered(d["packages"]["sets"], d)] == [["vim"]]


def test_template_variables_and_filters():
    from corral.builder.render import render_string
    d = D.load(FULL)
    assert render_string("{{ image.distribution|capfirst }}/{{ source.url }}", d, "x") == "Debian/http://mirror.example/debian"
    assert render_string('{{ image.nothing|default:"none" }}', d, "x") == "none"
    assert render_string('{% if image.variant == "cloud" %}c{% else %}d{% endif %}', d, "x") == "c"
    assert render_string("{{ targets.type }} {{ image.architecture_mapped|upper }}", d, "x") == "container AMD64"
    with pytest.raises(D.DefinitionError, match="^image.name: cannot render"):
        D.load("image: {distribution: x, name: '{{ nosuch.key }}'}\nsource: {downloader: busybox}")


@pytest.mark.parametrize("name", sorted(f for f in os.listdir(os.path.join(ROOT, "images")) if f.endswith(".yaml")))
@pytest.mark.parametrize("variant", ["default", "cloud"])
def test_shipped_definitions_validate(name, variant):
    d = D.load_file(os.path.join(ROOT, "images", name), [f"image.variant={variant}"])
    assert d["image"]["distribution"]


def test_debian_variants_differ_as_declared():
    path = os.path.join(ROOT, "images", "debian-bookworm.yaml")
    default, cloud = D.load_file(path), D.load_file(path, ["image.variant=cloud"])
    gens = lambda d: [(f["generator"], f.get("path") or f.get("name")) for f in D.filtered(d["files"], d)]
    pkgs = lambda d: [p for s in D.filtered(d["packages"]["sets"], d) for p in s["packages"]]
    assert ("dump", "/etc/systemd/network/eth0.network") in gens(default)
    assert ("cloud-init", "user-data") not in gens(default) and ("cloud-init", "user-data") in gens(cloud)
    assert "cloud-init" in pkgs(cloud) and "cloud-init" not in pkgs(default) and "systemd" in pkgs(default)
    assert ("lxd-agent", None) not in gens(default)      # VM only
    assert default["image"]["architecture_mapped"] == {"x86_64": "amd64"}.get(os.uname().machine, os.uname().machine)
