"""The simplestreams documents LXD reads (its shared/simplestreams): streams/v1/index.json
(format index:1.0) names the products files; a products file (format products:1.0, datatype
image-downloads) maps product ids to products, each with its versions (a serial like
"20240102_03:04") and their items (files).

An image is one version's metadata item with, for a split image, one root item:
- unified: ftype "lxd_combined.tar.gz" (the tarball; its sha256 is the fingerprint);
- split: ftype "lxd.tar.xz" (the metadata tarball) with a root of ftype "squashfs", "root.tar.xz"
  or "disk-kvm.img" (a virtual machine); the metadata item carries the fingerprint of the pair
  (sha256 over both files) as combined_squashfs_sha256, combined_rootxz_sha256 (and
  combined_sha256) or combined_disk-kvm-img_sha256.
Deltas (squashfs.vcdiff items) are neither written nor used: a refresh downloads the full image.

Aliases are a product's comma-separated "aliases"; as in LXD's client each also answers as
"<alias>/<arch>" (the product's architecture name), and when several images claim an alias the
newest (by serial) wins, the local architecture first.
"""
from __future__ import annotations

import dataclasses
import platform
import re
import time
from datetime import datetime, timezone

from corral.errors import BadRequest
from corral.image.store import _ARCH_BY_ALIAS

# LXD architecture name -> the name simplestreams servers use for products (Debian's).
DEBIAN_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "i386", "armv7l": "armhf", "armv6l": "armel",
               "ppc64le": "ppc64el", "s390x": "s390x", "riscv64": "riscv64", "ppc": "powerpc",
               "ppc64": "ppc64", "mips": "mips", "mips64": "mips64", "loongarch64": "loongarch64"}
# root ftype -> the metadata item's key holding the fingerprint of metadata + root
COMBINED = {"squashfs": "combined_squashfs_sha256", "root.tar.xz": "combined_rootxz_sha256",
            "disk-kvm.img": "combined_disk-kvm-img_sha256", "disk1.img": "combined_disk1-img_sha256",
            "uefi1.img": "combined_uefi1-img_sha256"}
VM_FTYPES = ("disk-kvm.img", "disk1.img", "uefi1.img")
UNIFIED = "lxd_combined.tar.gz"
META = "lxd.tar.xz"
SERIAL = "%Y%m%d_%H:%M"
_SERIAL_RE = re.compile(r"^\d{8}")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


# ---- writing ------------------------------------------------------------------------------------

@dataclasses.dataclass
class File:
    """One file of an image as published: role "unified", "meta" or "root"; `ftype` for a root
    ("squashfs", "root.tar.xz", "disk-kvm.img"); `path` relative to the tree's base URL."""
    role: str
    path: str
    sha256: str
    size: int
    ftype: str = ""


@dataclasses.dataclass
class Published:
    fingerprint: str
    architecture: str                 # LXD's name (x86_64)
    created_at: int                   # unix time
    properties: dict[str, str]
    files: list[File]
    aliases: list[str] = dataclasses.field(default_factory=list)
    product_id: str = ""              # default: os:release:arch:variant

    def product_key(self) -> tuple[str, dict]:
        p = self.properties
        arch = DEBIAN_ARCH.get(self.architecture, self.architecture)
        os_, release = p.get("os") or "unknown", p.get("release") or "unknown"
        variant = p.get("variant") or "default"
        pid = self.product_id or f"{os_.lower()}:{release}:{arch}:{variant}"
        return pid, {"arch": arch, "os": os_, "release": release, "release_title": p.get("release") or release,
                     "variant": variant}


def serial(created_at: int) -> str:
    return time.strftime(SERIAL, time.gmtime(created_at))


def items(img: Published) -> dict[str, dict]:
    """The version items of one image."""
    out: dict[str, dict] = {}
    unified = [f for f in img.files if f.role == "unified"]
    if unified:
        f = unified[0]
        out[UNIFIED] = {"ftype": UNIFIED, "path": f.path, "sha256": f.sha256, "size": f.size}
        return out
    meta = next(f for f in img.files if f.role == "meta")
    root = next(f for f in img.files if f.role == "root")
    if root.ftype not in COMBINED:
        raise ValueError(f"unknown root file type {root.ftype!r}")
    m = {"ftype": META, "path": meta.path, "sha256": meta.sha256, "size": meta.size,
         COMBINED[root.ftype]: img.fingerprint}
    if root.ftype == "root.tar.xz":
        m["combined_sha256"] = img.fingerprint
    out[META] = m
    out[root.ftype] = {"ftype": root.ftype, "path": root.path, "sha256": root.sha256, "size": root.size}
    return out


def add(products: dict, img: Published, version: str = "") -> str:
    """Add (or replace) the image's version (by default named by its creation minute) in a products
    map; returns the product id."""
    pid, fields = img.product_key()
    prod = products.setdefault(pid, {**fields, "aliases": "", "versions": {}})
    if img.aliases:
        names = [a for a in prod["aliases"].split(",") if a]
        names += [a for a in img.aliases if a not in names]
        prod["aliases"] = ",".join(names)
    prod["versions"][version or serial(img.created_at)] = {"items": items(img)}
    return pid


def products_doc(products: dict) -> dict:
    return {"content_id": "images", "datatype": "image-downloads", "format": "products:1.0",
            "updated": _rfc2822(time.time()), "products": products}


def index_doc(products: dict, path: str = "streams/v1/images.json") -> dict:
    return {"format": "index:1.0", "updated": _rfc2822(time.time()),
            "index": {"images": {"datatype": "image-downloads", "path": path, "format": "products:1.0",
                                 "updated": _rfc2822(time.time()), "products": sorted(products)}}}


def _rfc2822(t: float) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(t))


# ---- reading (as LXD's client) ------------------------------------------------------------------

@dataclasses.dataclass
class RemoteFile:
    kind: str        # "meta" or "root"
    path: str
    sha256: str
    size: int
    ftype: str


@dataclasses.dataclass
class StreamImage:
    fingerprint: str
    type: str                        # container | virtual-machine
    architecture: str                # LXD's name
    arch_name: str                   # the product's
    serial: str
    created_at: str                  # RFC 3339
    size: int
    filename: str
    properties: dict[str, str]
    aliases: list[str]
    files: list[RemoteFile]

    def info(self) -> dict:
        """As an LXD image object (what corrald's download path reads)."""
        return {"fingerprint": self.fingerprint, "type": self.type, "architecture": self.architecture,
                "size": self.size, "filename": self.filename, "properties": dict(self.properties),
                "public": True, "created_at": self.created_at, "aliases": [{"name": a} for a in self.aliases]}


def images(doc: dict) -> list[StreamImage]:
    """The images of a products document, newest first (products with an unknown architecture,
    versions without a date serial and items without a fingerprint are skipped, as LXD)."""
    out = []
    prods = doc.get("products") if isinstance(doc, dict) else None
    for prod in (prods.values() if isinstance(prods, dict) else []):
        if not isinstance(prod, dict) or not isinstance(prod.get("versions"), dict):
            continue
        arch = _ARCH_BY_ALIAS.get(prod.get("arch"))
        if arch is None:
            continue
        for name, version in prod["versions"].items():
            created = _serial_date(name)
            its = version.get("items") if isinstance(version, dict) else None
            if created is None or not isinstance(its, dict):
                continue
            its = [i for i in its.values() if isinstance(i, dict)]
            for item in its:
                if item.get("ftype") == UNIFIED:
                    _add(out, prod, arch, name, created, version, item, None)
                elif item.get("ftype") == META:
                    for root in its:
                        if root.get("ftype") in COMBINED:
                            _add(out, prod, arch, name, created, version, item, root)
    out.sort(key=lambda i: i.serial, reverse=True)
    return out


def _serial_date(name: str) -> str | None:
    if not isinstance(name, str) or not _SERIAL_RE.match(name):
        return None
    try:
        return datetime.strptime(name[:8], "%Y%m%d").replace(tzinfo=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None


def _file(kind: str, item: dict) -> RemoteFile | None:
    path, sha, size = item.get("path"), item.get("sha256"), item.get("size")
    if not isinstance(path, str) or not path or ".." in path.split("/") or path.startswith("/"):
        return None
    if not isinstance(sha, str) or not _HEX64.match(sha.lower()):
        return None   # corrald checks every file it downloads: an item without sha256 is unusable
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return None
    return RemoteFile(kind, path, sha.lower(), size, item.get("ftype") or "")


def _add(out: list, prod: dict, arch: str, name: str, created: str, version: dict, meta: dict,
         root: dict | None) -> None:
    if root is None:
        fp = meta.get("sha256")
    elif root["ftype"] == "root.tar.xz":
        fp = meta.get("combined_rootxz_sha256") or meta.get("combined_sha256")
    else:
        fp = meta.get(COMBINED[root["ftype"]])
    if not isinstance(fp, str) or not _HEX64.match(fp.lower()):
        return
    files = [_file("meta", meta)] + ([_file("root", root)] if root is not None else [])
    if None in files:
        return
    label = version.get("label") or ""
    desc = f"{prod.get('os', '')} {prod.get('release_title', '')} {prod.get('arch')}"
    desc = (f"{desc} ({label})" if label else desc) + f" ({name})"
    props = {"os": prod.get("os"), "release": prod.get("release"), "version": prod.get("version"),
             "architecture": prod.get("arch"), "label": label, "serial": name, "description": desc,
             "variant": prod.get("variant"), "type": root["ftype"] if root is not None else "tar.gz"}
    for k, v in (prod.get("lxd_requirements") or {}).items():
        props[f"requirements.{k}"] = v
    props = {k: str(v) for k, v in props.items() if v not in (None, "")}
    aliases = [a for a in str(prod.get("aliases") or "").split(",") if a]
    out.append(StreamImage(
        fingerprint=fp.lower(), type="virtual-machine" if root is not None and root["ftype"] in VM_FTYPES
        else "container", architecture=arch, arch_name=str(prod.get("arch")), serial=name, created_at=created,
        size=sum(f.size for f in files), filename=meta["path"].rsplit("/", 1)[-1], properties=props,
        aliases=aliases, files=files))


def local_architecture() -> str:
    return _ARCH_BY_ALIAS.get(platform.machine(), platform.machine())


def resolve(imgs: list[StreamImage], name: str, image_type: str = "") -> StreamImage:
    """The image an alias ("a" or "a/<arch>") or a fingerprint (or unique prefix) names."""
    if not name:
        raise BadRequest("Image source needs a fingerprint or an alias")
    wanted = sorted((i for i in imgs if not image_type or i.type == image_type), key=lambda i: i.serial,
                    reverse=True)
    local = local_architecture()
    matches = [i for i in wanted if name in i.aliases or any(name == f"{a}/{i.arch_name}" for a in i.aliases)]
    if matches:
        # newest first; the local architecture before others for a short alias
        matches.sort(key=lambda i: i.architecture != local)
        return matches[0]
    by_fp = {i.fingerprint: i for i in wanted if i.fingerprint.startswith(name.lower())}
    if len(by_fp) == 1:
        return next(iter(by_fp.values()))
    if len(by_fp) > 1:
        raise BadRequest("More than one match for the provided partial fingerprint")
    raise BadRequest(f"The requested image couldn't be found: \"{name}\"")
