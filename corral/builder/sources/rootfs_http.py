"""rootfs-http: a ready root filesystem archive at `source.url` (a tarball, plain or gzip/xz/bzip2/zstd
compressed, or a squashfs image), downloaded and unpacked, as distrobuilder's downloader does.

Verification, which distrobuilder's rootfs-http has none of:
- a checksum given in the URL's fragment (`https://host/rootfs.tar.xz#sha256=HEX`; never sent to the
  server) is checked, and lets the download be cached and resumed;
- with `source.keys`, a detached signature `URL.asc` (else `URL.sig`) must verify with those keys;
- `source.skip_verification` skips both; without either, the archive is used unchecked (with a warning).
Unpacking is safe as image imports are (corral/image/extract.py): no entry escapes the root directory,
nothing is written through a symlink, device nodes only when running as root.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import urllib.parse

from corral.builder.sources import Source, SourceError
from corral.builder.sources._fs import WorkDir, empty_dir
from corral.builder.sources.fetch import NotFound, download, get_document, strip_fragment
from corral.builder.sources.verify import Keyring
from corral.image.extract import Unpacker
from corral.image.formats import detect_format
from corral.image.unpack import Budget, ImageError, free_space_limit, unsquashfs


class _RootfsUnpacker(Unpacker):
    """The image unpacker with every entry treated as inside a rootfs: absolute symlink targets are
    fine (they resolve in the container), relative ones must stay inside the tree."""

    def _check_symlink(self, rel, target, name):
        super()._check_symlink(("rootfs",) + tuple(rel), target, name)


def _sha256_fragment(url: str) -> str | None:
    frag = urllib.parse.urlsplit(url).fragment
    if not frag:
        return None
    m = re.fullmatch(r"sha256[=:]([0-9a-fA-F]{64})", frag)
    if not m:
        raise SourceError(f'Invalid checksum in source.url: "#{frag}" (expected #sha256=<64 hex digits>)')
    return m.group(1).lower()


class RootfsHTTP(Source):
    def run(self, rootfs_dir: str) -> None:
        raw = str(self.source.get("url") or "")
        if not raw:
            raise SourceError("The rootfs-http source needs source.url")
        url = strip_fragment(raw)
        skip = bool(self.source.get("skip_verification"))
        sha = None if skip else _sha256_fragment(raw)
        keys = [str(k) for k in (self.source.get("keys") or [])]
        if not skip and not sha and not keys:
            print(f"Warning: {url} is used unverified (no #sha256= in source.url, no source.keys)", file=sys.stderr)
        path = download(url, self.cache_dir, sha256=sha)
        try:
            if keys and not skip:
                self._verify_signature(url, path, keys)
            print(f"Unpacking {os.path.basename(path)}", file=sys.stderr)
            self._unpack(path, rootfs_dir)
            if not sha:   # nothing could vouch for it next time: never reused, so not kept
                _remove_download(path)
        except BaseException:
            if not sha:   # an unverified download is never kept
                _remove_download(path)
            empty_dir(rootfs_dir)
            raise

    def _verify_signature(self, url: str, path: str, keys: list[str]) -> None:
        sig = None
        for ext in (".asc", ".sig"):
            try:
                sig = get_document(url + ext, limit=1 << 20)
                break
            except NotFound:
                continue
        if sig is None:
            raise SourceError(f"No signature for {url} ({url}.asc or .sig) to check with source.keys")
        with WorkDir(self.cache_dir, "rootfs-http.") as scratch, \
                Keyring(keys, self.source.get("keyserver"), parent=scratch.path) as kr:
            sig_path = os.path.join(kr.home, "download.sig")
            with open(sig_path, "wb") as f:
                f.write(sig)
            try:
                kr.verify_detached(path, sig_path, os.path.basename(path))
            except SourceError:
                _remove_download(path)
                raise

    def _unpack(self, path: str, rootfs_dir: str) -> None:
        fmt = detect_format(path)
        allow_devices = os.geteuid() == 0
        try:
            if fmt == "squashfs":
                tmp = tempfile.mkdtemp(prefix="rootfs-http.", dir=os.path.dirname(os.path.abspath(rootfs_dir)))
                try:
                    tree = os.path.join(tmp, "rootfs")
                    unsquashfs(path, tree, Budget([free_space_limit(tmp, "the build directory")]))
                    Unpacker(tmp, allow_devices).check_tree(tree)   # its paths are rootfs/...
                    for name in os.listdir(tree):
                        os.rename(os.path.join(tree, name), os.path.join(rootfs_dir, name))
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
                return
            unpacker = _RootfsUnpacker(rootfs_dir, allow_devices,
                                       Budget([free_space_limit(rootfs_dir, "the build directory")]))
            unpacker.extract_tar(path, ())
            unpacker.finish()
        except ImageError as e:
            msg = str(e).replace("Invalid image tarball", "Invalid root filesystem archive")
            raise SourceError(f"Failed to unpack {os.path.basename(path)}: {msg}") from None


def _remove_download(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    d = os.path.dirname(path)
    for leftover in (".lock",):
        try:
            os.unlink(os.path.join(d, leftover))
        except FileNotFoundError:
            pass
    try:
        os.rmdir(d)
    except OSError:
        pass

