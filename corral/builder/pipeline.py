"""The build steps, in distrobuilder's order:

    build-dir:  source -> post-unpack -> packages (post-update) -> post-packages -> files (plain)
                [-> post-files with --with-post-files]
    pack-lxd:   files (LXD templates) -> post-files -> metadata + tarball(s)
    build-lxd:  build-dir's steps, then pack-lxd's, in a work directory under the cache.

Actions and package managers run chrooted in the rootfs (chroot.py); generators work on the rootfs
from outside."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile

from corral.builder import chroot, generators, lxdimage, packages, sources
from corral.builder.definition import filtered, rerender
from corral.errors import NotImplementedFeature

DEFAULT_CACHE = "/var/cache/corral/builder"


def cache_dir() -> str:
    return os.environ.get("CORRAL_BUILDER_CACHE", DEFAULT_CACHE)


class Builder:
    def __init__(self, definition: dict, *, cache: str | None = None, log=None, verbose: bool = False):
        self.d = definition
        self.cache = cache or cache_dir()
        self.env = chroot.environment(definition)
        self.verbose = verbose
        self._log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))

    def log(self, msg: str) -> None:
        self._log(f"corral-builder: {msg}")

    def _out(self, text: str) -> None:
        if self.verbose:
            self._log(text.rstrip())

    def run_actions(self, rootfs: str, trigger: str) -> int:
        ran = 0
        for index, action in enumerate(self.d["actions"]):
            if action["trigger"] != trigger or action not in filtered([action], self.d):
                continue
            script = action.get("action", "")
            if action.get("pongo"):
                from corral.builder import render
                script = render.render_string(script, self.d, f"actions[{index}].action")
            self.log(f"running {trigger} action {index}")
            chroot.run_script(rootfs, script, self.env, what=f"actions[{index}] ({trigger})", log=self._out)
            ran += 1
        return ran

    # -- build-dir ------------------------------------------------------------------------------------

    def unpack(self, rootfs: str) -> None:
        name = self.d["source"]["downloader"]
        os.makedirs(rootfs, exist_ok=True)
        if os.listdir(rootfs):
            raise sources.SourceError(f"{rootfs} is not empty")
        os.chmod(rootfs, 0o755)
        self.log(f"source {name}")
        cls = sources.get(name)
        cls(self.d, self.cache).run(rootfs)

    def build_dir(self, rootfs: str, *, with_post_files: bool = False, plain_files: bool = True) -> None:
        self.unpack(rootfs)
        self.run_actions(rootfs, "post-unpack")
        self.log("packages")
        packages.manage(self.d, rootfs, self.env, self.cache, lambda t: self.run_actions(rootfs, t), log=self._out)
        self.run_actions(rootfs, "post-packages")
        if plain_files:
            generators.run_all(rootfs, self.d, None)
            if with_post_files:
                self.run_actions(rootfs, "post-files")

    # -- pack-lxd -------------------------------------------------------------------------------------

    def pack_lxd(self, rootfs: str, out_dir: str, *, kind: str = "split", compression: str = "xz",
                 now: float | None = None) -> list[str]:
        lxdimage.check_options(kind, compression)
        if self.d["targets"]["type"] == "vm":
            raise NotImplementedFeature("VM images (--vm: rootfs.img disk) in corral-builder")
        rerender(self.d)
        clear_dev(rootfs)
        meta = generators.LXDMeta()
        generators.run_all(rootfs, self.d, meta)
        self.run_actions(rootfs, "post-files")
        self.log(f"packing the {kind} image ({compression})")
        return lxdimage.pack(self.d, rootfs, meta, out_dir, kind=kind, compression=compression, now=now)

    def build_lxd(self, out_dir: str, *, kind: str = "split", compression: str = "xz",
                  keep_rootfs: str | None = None) -> list[str]:
        lxdimage.check_options(kind, compression)
        if self.d["targets"]["type"] == "vm":
            raise NotImplementedFeature("VM images (--vm: rootfs.img disk) in corral-builder")
        os.makedirs(self.cache, exist_ok=True)
        work = tempfile.mkdtemp(prefix="build-", dir=self.cache)
        try:
            rootfs = os.path.join(work, "rootfs")
            self.build_dir(rootfs, plain_files=False)
            files = self.pack_lxd(rootfs, out_dir, kind=kind, compression=compression)
            if keep_rootfs:
                os.rename(rootfs, keep_rootfs)
            return files
        finally:
            if not remove_tree(work):
                self.log(f"left {work} in place: something is mounted under it")


def clear_dev(rootfs: str) -> None:
    """Empty the rootfs' /dev: the container's /dev is made at start (liblxc's autodev), and device nodes
    in an image are refused by unprivileged imports (debootstrap creates a few)."""
    dev = os.path.join(rootfs, "dev")
    if os.path.isdir(dev) and not os.path.islink(dev):
        if os.path.ismount(dev):
            raise RuntimeError(f"{dev} is a mount point")
        for name in os.listdir(dev):
            path = os.path.join(dev, name)
            if os.path.isdir(path) and not os.path.islink(path):
                if not remove_tree(path):
                    raise RuntimeError(f"{path} has a mount under it")
            else:
                os.unlink(path)


def remove_tree(path: str) -> bool:
    """rm -rf a build directory unless anything is mounted under it (chroot and debootstrap mounts live
    in their own namespaces and never show here; this guards against deleting through a mount)."""
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            if point == real or point.startswith(real + "/"):
                return False
    shutil.rmtree(path, ignore_errors=True)
    return True
