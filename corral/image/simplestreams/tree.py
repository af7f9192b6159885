"""A static simplestreams tree written from image files (`corral-builder publish DIR IMAGE...`), for
any plain web server (LXD's `images:` is such a tree):

    DIR/streams/v1/index.json
    DIR/streams/v1/images.json
    DIR/images/<os>/<release>/<arch>/<variant>/<serial>/lxd_combined.tar.xz      (unified)
    DIR/images/<os>/<release>/<arch>/<variant>/<serial>/lxd.tar.xz + root.squashfs  (split)

An IMAGE is a unified tarball, a split image given as "META,ROOT" (metadata tarball and rootfs:
squashfs, tarball, or a VM's disk image), or a directory holding distrobuilder's split output
(lxd.tar.xz with rootfs.squashfs, rootfs.tar.xz or disk.qcow2). Publishing again adds versions to
the tree's existing images.json; a product's aliases (by default "<os>/<release>/<variant>", and
"<os>/<release>" for the default variant) then resolve to its newest version, which is how a
client's auto-update sees a rebuilt image. Files are hard-linked into the tree when they can be,
else copied.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile

from corral.image import store
from corral.image.imagechecks import file_extension
from corral.image.simplestreams import products
from corral.image.unpack import Budget, ImageError, open_tar
from corral.image.vmimage import unified_type

ROOT_NAMES = ("rootfs.squashfs", "rootfs.tar.xz", "rootfs.tar.gz", "disk.qcow2", "rootfs.img")


class _Found(Exception):
    pass


def read_metadata(path: str) -> dict:
    """metadata.yaml of an image tarball, parsed (store.parse_metadata)."""
    data = None
    try:
        with open_tar(path, store.detect_format(path), Budget.unlimited()) as tar:
            for m in tar:
                if m.name.lstrip("./") == "metadata.yaml" and m.isreg():
                    f = tar.extractfile(m)
                    data = f.read(store.MAX_METADATA_SIZE + 1) if f is not None else b""
                    raise _Found()
                tar.members.clear()
    except _Found:
        pass
    if data is None:
        raise ImageError(f"{path}: no metadata.yaml in this tarball")
    return store.parse_metadata(data)


def _parts(arg: str) -> tuple[str, str | None]:
    """(metadata or unified file, root file or None) named by one IMAGE argument."""
    if "," in arg:
        meta, root = arg.split(",", 1)
        return meta, root
    if os.path.isdir(arg):
        meta = os.path.join(arg, "lxd.tar.xz")
        roots = [os.path.join(arg, n) for n in ROOT_NAMES if os.path.isfile(os.path.join(arg, n))]
        if not os.path.isfile(meta) or not roots:
            raise ImageError(f"{arg}: expected lxd.tar.xz and one of {', '.join(ROOT_NAMES)} in the directory")
        return meta, roots[0]
    return arg, None


def _root_ftype(path: str) -> tuple[str, str]:
    """(simplestreams ftype, file name in the tree) of a split image's root file."""
    ext = file_extension(path)
    if ext == ".squashfs":
        return "squashfs", "root.squashfs"
    if ext == ".qcow2" or (ext == "" and path.endswith(".img")):
        return "disk-kvm.img", "disk.qcow2" if ext == ".qcow2" else "disk.img"
    if ext.startswith(".tar"):
        return "root.tar.xz", f"root{ext}"
    raise ImageError(f"{path}: not a squashfs, a tarball or a VM disk image")


def _place(src: str, dst: str) -> None:
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if os.path.exists(dst):
        os.unlink(dst)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _write_json(path: str, doc: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def load_products(root: str) -> dict:
    path = os.path.join(root, "streams", "v1", "images.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        doc = json.load(f)
    prods = doc.get("products") if isinstance(doc, dict) else None
    if not isinstance(prods, dict):
        raise ImageError(f"{path}: not a products:1.0 document")
    return prods


def default_aliases(props: dict[str, str]) -> list[str]:
    os_, release = (props.get("os") or "").lower(), props.get("release") or ""
    if not os_ or not release:
        return []
    variant = props.get("variant") or "default"
    out = [f"{os_}/{release}/{variant}"]
    if variant == "default":
        out.append(f"{os_}/{release}")
    return out


def publish(root: str, args: list[str], *, aliases: list[str] | None = None, default_alias: bool = True,
            log=None) -> list[products.Published]:
    """Add the images named by `args` to the tree at `root`; the images added."""
    prods = load_products(root)
    done = []
    for arg in args:
        meta_path, root_path = _parts(arg)
        for p in (meta_path, root_path):
            if p is not None and not os.path.isfile(p):
                raise ImageError(f"{p}: no such file")
        meta = read_metadata(meta_path)
        props = dict(meta["properties"])
        paths = [meta_path] + ([root_path] if root_path else [])
        fp = store.fingerprint(paths)
        pub = products.Published(fingerprint=fp, architecture=meta["architecture"],
                                 created_at=meta["creation_date"], properties=props, files=[],
                                 aliases=(default_aliases(props) if default_alias else []) + list(aliases or []))
        pid, fields = pub.product_key()
        ser = products.serial(pub.created_at)
        versions = (prods.get(pid) or {}).get("versions") or {}
        n = 0
        while ser in versions and _version_fp(versions[ser]) not in (fp, None):
            n += 1
            ser = f"{products.serial(pub.created_at)}.{n}"
        rel = "/".join(["images", fields["os"].lower(), fields["release"], fields["arch"], fields["variant"], ser])
        if root_path is None:
            if unified_type(meta_path) == "virtual-machine":
                raise ImageError(f"{meta_path}: a unified virtual-machine image cannot be published over "
                                 f"simplestreams (LXD reads lxd_combined.tar.gz as a container); publish it split")
            name = f"lxd_combined{file_extension(meta_path)}"
            _place(meta_path, os.path.join(root, rel, name))
            pub.files = [products.File("unified", f"{rel}/{name}", fp, os.path.getsize(meta_path))]
        else:
            ftype, rname = _root_ftype(root_path)
            mname = f"lxd{file_extension(meta_path)}"
            _place(meta_path, os.path.join(root, rel, mname))
            _place(root_path, os.path.join(root, rel, rname))
            pub.files = [products.File("meta", f"{rel}/{mname}", store.fingerprint([meta_path]),
                                       os.path.getsize(meta_path)),
                         products.File("root", f"{rel}/{rname}", store.fingerprint([root_path]),
                                       os.path.getsize(root_path), ftype)]
        products.add(prods, pub, ser)
        done.append(pub)
        if log is not None:
            log(f"{arg}: {fp} as {pid} version {ser}")
    _write_json(os.path.join(root, "streams", "v1", "images.json"), products.products_doc(prods))
    _write_json(os.path.join(root, "streams", "v1", "index.json"), products.index_doc(prods))
    return done


def _version_fp(version: dict) -> str | None:
    its = [i for i in ((version or {}).get("items") or {}).values() if isinstance(i, dict)]
    for i in its:
        if i.get("ftype") == products.UNIFIED:
            return i.get("sha256")
        if i.get("ftype") == products.META:
            for key in products.COMBINED.values():
                if i.get(key):
                    return i[key]
    return None
