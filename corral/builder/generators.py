"""The `files` generators (distrobuilder's generators/): for a plain rootfs (build-dir) only dump, copy
and remove change anything; for an LXD image (build-lxd, pack-lxd) hostname, hosts, template and
cloud-init add LXD templates to the image's metadata (rendered by LXD, or corrald, at create/copy).

Paths inside the rootfs are resolved as the image would see them: an absolute symlink in the rootfs
points into the rootfs, never at the build host."""
from __future__ import annotations

import glob
import os
import shutil

from corral.builder import render
from corral.builder.definition import filtered
from corral.errors import NotImplementedFeature


class GeneratorError(RuntimeError):
    pass


class LXDMeta:
    """What generators add to an LXD image: metadata templates and the template files."""

    def __init__(self):
        self.templates: dict[str, dict] = {}
        self.files: dict[str, str] = {}

    def add(self, path: str, name: str, content: str, item: dict, default_when=("create", "copy")) -> None:
        tpl = item.get("template") or {}
        self.files[name] = content if content.endswith("\n") else content + "\n"
        self.templates[path] = {"when": list(tpl.get("when") or default_when), "create_only": False,
                                "template": name, "properties": dict(tpl.get("properties") or {})}


def resolve(rootfs: str, path: str, follow_last: bool = True) -> str:
    """The host path of `path` inside rootfs, following symlinks as chrooted (never leaving rootfs)."""
    parts = [p for p in path.split("/") if p and p != "."]
    done: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        here = os.path.join(rootfs, *done, part)
        if os.path.islink(here) and (parts or follow_last):
            hops += 1
            if hops > 40:
                raise GeneratorError(f"{path}: too many levels of symbolic links")
            target = os.readlink(here)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        done.append(part)
    return os.path.join(rootfs, *done)


def _access(host_path: str, item: dict) -> None:
    if item.get("mode"):
        os.chmod(host_path, int(item["mode"], 8))
    if item.get("uid") or item.get("gid"):
        os.lchown(host_path, int(item["uid"]) if item.get("uid") else -1, int(item["gid"]) if item.get("gid") else -1)


def _content(item: dict, d: dict, where: str) -> str:
    content = item.get("content", "")
    if item.get("pongo"):
        content = render.render_string(content, {**d, "lxd": d["targets"]["lxd"]}, f"{where}.content")
    return content


def dump(rootfs, item, d, meta, where):
    path = resolve(rootfs, item["path"])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    content = _content(item, d, where)
    if os.path.lexists(path) and not os.path.isfile(path):
        raise GeneratorError(f"{where}: {item['path']} exists and is not a regular file")
    with open(path, "w") as f:
        f.write(content if content.endswith("\n") else content + "\n")
    _access(path, item)


def remove(rootfs, item, d, meta, where):
    path = resolve(rootfs, item["path"], follow_last=False)
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def copy(rootfs, item, d, meta, where):
    """`source` (relative to the definition's directory; a glob) to `path` (default: the same path)."""
    base = d.get("_base_dir", ".")
    pattern = item["source"] if os.path.isabs(item["source"]) else os.path.join(base, item["source"])
    sources = sorted(glob.glob(pattern))
    if not sources:
        raise GeneratorError(f"{where}.source: {item['source']} does not exist")
    dest = item.get("path") or "/" + item["source"].lstrip("./")
    many = len(sources) > 1 or glob.has_magic(pattern)
    for src in sources:
        target = resolve(rootfs, os.path.join(dest, os.path.basename(src)) if many or dest.endswith("/") else dest)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.isdir(src) and not os.path.islink(src):
            shutil.copytree(src, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(src, target, follow_symlinks=False)
        if not os.path.islink(target):
            _access(target, item)


def hostname(rootfs, item, d, meta, where):
    if meta is None or not os.path.lexists(resolve(rootfs, item["path"])):
        return
    meta.add(item["path"], "hostname.tpl", "{{ container.name }}\n", item)


def hosts(rootfs, item, d, meta, where):
    path = resolve(rootfs, item["path"])
    if meta is None or not os.path.isfile(path):
        return
    with open(path) as f:
        content = f.read().replace("distrobuilder", "{{ container.name }}")
    if "{{ container.name }}" not in content:
        content = "127.0.1.1\t{{ container.name }}\n" + content
    meta.add(item["path"], "hosts.tpl", content, item)


def template(rootfs, item, d, meta, where):
    if meta is None:
        return
    meta.add(item["path"], f"{item['name']}.tpl", _content(item, d, where), item)


CLOUD_INIT_DEFAULT = "#cloud-config\n{}"
CLOUD_INIT = {
    "user-data": ('{%- if config_get("cloud-init.user-data", properties.default) == properties.default -%}\n'
                  '{{ config_get("user.user-data", properties.default) }}\n'
                  '{%- else -%}\n{{- config_get("cloud-init.user-data", properties.default) }}\n{%- endif %}\n'),
    "vendor-data": ('{%- if config_get("cloud-init.vendor-data", properties.default) == properties.default -%}\n'
                    '{{ config_get("user.vendor-data", properties.default) }}\n'
                    '{%- else -%}\n{{- config_get("cloud-init.vendor-data", properties.default) }}\n{%- endif %}\n'),
    "meta-data": ('instance-id: {{ container.name }}\nlocal-hostname: {{ container.name }}\n'
                  '{{ config_get("user.meta-data", "") }}\n'),
}
NETWORK_DEFAULT = ("version: 1\nconfig:\n  - type: physical\n    name: {% if instance.type == \"virtual-machine\" %}"
                   "enp5s0{% else %}eth0{% endif %}\n    subnets:\n      - type: dhcp\n        control: auto")


def cloud_init(rootfs, item, d, meta, where):
    """LXD templates for the NoCloud seed (meta-data, user-data, vendor-data, network-config), fed from
    the instance's cloud-init.* / user.* keys, as distrobuilder writes them."""
    if meta is None:
        return
    name = item["name"]
    properties: dict[str, str] = {}
    if name == "network-config":
        default = item.get("content") or NETWORK_DEFAULT
        content = ('{%- if config_get("cloud-init.network-config", "") == "" -%}\n'
                   '{%- if config_get("user.network-config", "") == "" -%}\n' + default + '\n'
                   '{%- else -%}\n{{- config_get("user.network-config", "") -}}\n{%- endif -%}\n'
                   '{%- else -%}\n{{- config_get("cloud-init.network-config", "") -}}\n{%- endif %}\n')
    else:
        content = CLOUD_INIT[name]
        if name != "meta-data":
            properties["default"] = item.get("content") or CLOUD_INIT_DEFAULT
    tpl = dict(item.get("template") or {})
    tpl["properties"] = tpl.get("properties") or properties
    path = item.get("path") or f"/var/lib/cloud/seed/nocloud-net/{name}"
    meta.add(path, f"cloud-init-{name}.tpl", content, {**item, "template": tpl})


def lxd_agent(rootfs, item, d, meta, where):
    raise NotImplementedFeature(f"{where}: the lxd-agent generator (VM images; corral-builder builds container "
                                "images only: give it `types: [vm]`)")


def fstab(rootfs, item, d, meta, where):
    """VM images only (distrobuilder writes the VM's /etc/fstab); nothing to do for a container."""
    if d["targets"]["type"] == "vm":
        raise NotImplementedFeature(f"{where}: the fstab generator (VM images)")


GENERATORS = {"dump": dump, "copy": copy, "remove": remove, "hostname": hostname, "hosts": hosts,
              "template": template, "cloud-init": cloud_init, "lxd-agent": lxd_agent, "fstab": fstab}


def run_all(rootfs: str, d: dict, meta: LXDMeta | None) -> None:
    """Every file entry whose filters match, in order. meta None: a plain rootfs (build-dir)."""
    for index, item in enumerate(d["files"]):
        if item not in filtered([item], d):
            continue
        where = f"files[{index}]"
        try:
            GENERATORS[item["generator"]](rootfs, item, d, meta, where)
        except OSError as e:
            raise GeneratorError(f"{where} ({item['generator']}): {e}") from None
