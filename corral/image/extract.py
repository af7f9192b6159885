"""Safe extraction of image archives (a part of corral/image/store.py's import): every entry is
checked and created here (numeric owners and modes kept, nothing ever written through a symlink)."""
from __future__ import annotations

import os
import stat
import tarfile

from corral.image.formats import detect_format
from corral.image.unpack import (CHUNK, ENTRY_COST, READ_ERRORS as _READ_ERRORS, Budget, ImageError,
                                 invalid as _invalid, open_tar)


def _components(name: str, what: str = "entry") -> tuple[str, ...]:
    """The path of an entry (or hardlink target) inside the directory it is unpacked into. Leading
    slashes are dropped, as GNU tar and LXD do (pylxd's and LXD's test images name a member
    `/rootfs/etc/inittab`); `..` is refused wherever it appears."""
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise ImageError(f"Invalid image tarball: '..' in {what} {name!r}")
    return parts


class Unpacker:
    def __init__(self, root: str, allow_devices: bool, budget: Budget | None = None):
        self.root = root
        self.allow_devices = allow_devices
        self.budget = budget or Budget.unlimited()
        self.as_root = os.geteuid() == 0
        self.dirs: list[tuple[str, tarfile.TarInfo]] = []
        self.known_dirs: set[tuple[str, ...]] = {()}
        self.meta_rootfs = False   # a split image's metadata tarball carried rootfs/ entries

    # -- archive reading

    def _open(self, path: str):
        fmt = detect_format(path)
        if fmt == "squashfs":
            raise ImageError("Invalid image tarball: squashfs is only supported for the rootfs of a split image")
        return open_tar(path, fmt, self.budget)

    def extract_tar(self, path: str, prefix: tuple[str, ...], metadata_only: bool = False) -> None:
        with self._open(path) as tar:
            while True:
                try:
                    member = tar.next()
                except _READ_ERRORS as e:
                    raise _invalid(e) from None
                if member is None:
                    break
                try:
                    self._member(tar, member, prefix, metadata_only)
                except (OSError, ValueError) as e:
                    raise ImageError(f"Failed to unpack image entry {member.name!r}: {e}") from None
                tar.members.clear()  # stream mode keeps every TarInfo otherwise; we never look back

    # -- entries

    def _member(self, tar: tarfile.TarFile, m: tarfile.TarInfo, prefix: tuple[str, ...],
                metadata_only: bool) -> None:
        comps = _components(m.name)
        if metadata_only and comps[:1] == ("rootfs",):
            self.meta_rootfs = True   # LXD unpacks them too, before the rootfs tarball goes on top
        rel = prefix + comps
        if not rel:  # "./" (or "/") of a unified tarball: the image directory itself
            if not m.isdir():   # and never skip the data a header announces for it unchecked
                raise ImageError(f"Invalid image tarball: {m.name!r} names the image directory but is not one")
            return
        if rel == ("rootfs",) and not m.isdir():
            raise ImageError("Invalid image tarball: rootfs is not a directory")
        self.budget.charge(ENTRY_COST)
        if m.isreg():
            self.budget.ensure(m.size)  # a size announced in the header that cannot fit: refuse now
        self._parents(rel[:-1], m.name)
        path = os.path.join(self.root, *rel)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        if st is not None:
            if stat.S_ISDIR(st.st_mode):
                if not m.isdir():
                    raise ImageError(f"Invalid image tarball: {m.name!r} would replace a directory")
            else:
                os.unlink(path)  # never write through whatever was there (e.g. a symlink)
                st = None

        if m.isdir():
            if st is None:
                os.mkdir(path, 0o700)
            self.known_dirs.add(rel)
            self.dirs.append((path, m))
        elif m.isreg():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as out:
                src = tar.extractfile(m)
                while True:
                    try:
                        chunk = src.read(CHUNK)
                    except _READ_ERRORS as e:
                        raise _invalid(e) from None
                    if not chunk:
                        break
                    self.budget.charge(len(chunk))
                    out.write(chunk)
                out.flush()
                self._attrs(fd, m)
        elif m.issym():
            self._check_symlink(rel, m.linkname, m.name)
            os.symlink(m.linkname, path)
            self._attrs(path, m)
        elif m.islnk():
            target = prefix + _components(m.linkname, "hardlink target")
            self._parents(target[:-1], m.linkname)
            tpath = os.path.join(self.root, *target)
            if not target or not os.path.lexists(tpath) or os.path.isdir(tpath) and not os.path.islink(tpath):
                raise ImageError(f"Invalid image tarball: hardlink {m.name!r} -> {m.linkname!r} has no valid target")
            os.link(tpath, path, follow_symlinks=False)
        elif m.ischr() or m.isblk() or m.isfifo():
            if not m.isfifo() and not self.allow_devices:
                raise ImageError(f"Invalid image tarball: device node {m.name!r} "
                                 "(device nodes are only allowed in privileged imports)")
            if m.isfifo():
                os.mkfifo(path, 0o600)
            else:
                kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
                os.mknod(path, kind | 0o600, os.makedev(m.devmajor, m.devminor))
            self._attrs(path, m)
        else:
            raise ImageError(f"Invalid image tarball: unsupported entry type for {m.name!r}")

    def _parents(self, rel: tuple[str, ...], name: str) -> None:
        """Make sure every directory leading to an entry is a real directory (never a symlink)."""
        for i in range(1, len(rel) + 1):
            sub = rel[:i]
            if sub in self.known_dirs:
                continue
            path = os.path.join(self.root, *sub)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                os.mkdir(path, 0o755)
                os.chmod(path, 0o755)
            else:
                if stat.S_ISLNK(st.st_mode):
                    raise ImageError(f"Invalid image tarball: {name!r} is beneath a symlink")
                if not stat.S_ISDIR(st.st_mode):
                    raise ImageError(f"Invalid image tarball: {name!r} is beneath a non-directory")
            self.known_dirs.add(sub)

    def _check_symlink(self, rel: tuple[str, ...], target: str, name: str) -> None:
        """Inside rootfs, absolute targets are fine (they resolve against the container's root);
        relative ones must stay inside rootfs. Elsewhere in the image, targets must stay inside it."""
        in_rootfs = rel[:1] == ("rootfs",)
        if not target or "\0" in target:
            raise ImageError(f"Invalid image tarball: symlink {name!r} has an empty target")
        if target.startswith("/"):
            if in_rootfs:
                return
            raise ImageError(f"Invalid image tarball: absolute symlink {name!r} -> {target!r} outside rootfs")
        base = list(rel[1:-1] if in_rootfs else rel[:-1])
        for part in target.split("/"):
            if part == "..":
                if not base:
                    raise ImageError(f"Invalid image tarball: symlink {name!r} -> {target!r} points outside the image")
                base.pop()
            elif part not in ("", "."):
                base.append(part)

    def _attrs(self, target: int | str, m: tarfile.TarInfo) -> None:
        """Numeric owner, then mode (chown clears setuid bits), then mtime; never follows symlinks."""
        is_fd = isinstance(target, int)
        if self.as_root:
            if is_fd:
                os.fchown(target, m.uid, m.gid)
            else:
                os.chown(target, m.uid, m.gid, follow_symlinks=False)
        if not m.issym():
            os.chmod(target, m.mode & 0o7777)
        if is_fd:
            os.utime(target, (m.mtime, m.mtime))
        else:
            os.utime(target, (m.mtime, m.mtime), follow_symlinks=False)

    def finish(self) -> None:
        """Apply directory attributes last (deepest first), so read-only dirs don't block unpacking."""
        for path, m in reversed(self.dirs):
            try:
                self._attrs(path, m)
            except OSError as e:
                raise ImageError(f"Failed to unpack image entry {m.name!r}: {e}") from None
        self.dirs.clear()

    def check_tree(self, rootfs: str) -> None:
        """Apply the tar entry rules to an already unpacked rootfs (squashfs)."""
        for dirpath, dirnames, filenames in os.walk(rootfs):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                rel = ("rootfs", *os.path.relpath(path, rootfs).split(os.sep))
                st = os.lstat(path)
                mode = st.st_mode
                self.budget.charge(ENTRY_COST + (st.st_size if stat.S_ISREG(mode) else 0))
                if stat.S_ISLNK(mode):
                    self._check_symlink(rel, os.readlink(path), "/".join(rel))
                elif (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)) and not self.allow_devices:
                    raise ImageError(f"Invalid image: device node {'/'.join(rel)!r} "
                                     "(device nodes are only allowed in privileged imports)")


# --------------------------------------------------------------------------- pack
