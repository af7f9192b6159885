"""Host-side image store primitives: fingerprinting, safe import (unpack + validate) of
LXD unified and split images, and packing an image directory back into a unified tarball.

An unpacked image directory looks like LXD's:

    <dest>/metadata.yaml
    <dest>/templates/...
    <dest>/rootfs/...

Archives are never unpacked with a generic extractor: every entry is checked and created
by this module (numeric owners and modes kept, nothing ever written through a symlink),
into a sibling temporary directory that is renamed into place only once everything has
been validated.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import yaml

from corral.image.unpack import (CHUNK, ENTRY_COST, READ_ERRORS as _READ_ERRORS, Budget, ImageError,
                                 ImageTooLarge, invalid as _invalid, open_tar, tool as _tool, unsquashfs)

__all__ = ["Budget", "ImageError", "ImageTooLarge"]

MAX_METADATA_SIZE = 16 << 20

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"hsqs", "squashfs"),
)

# LXD (shared/osarch) architecture names and the aliases it accepts for them.
_ARCHITECTURES = {
    "i686": ("i386", "i486", "i586", "386", "x86", "generic_32"),
    "x86_64": ("amd64", "generic_64"),
    "armv6l": ("armel", "arm"),
    "armv7l": ("armhf", "armhfp", "armv7a", "armv7hl", "armv7hnl", "armv7nhl", "armv7hnl"),
    "armv8l": (),
    "aarch64": ("arm64", "arm64v8", "armv8"),
    "ppc": ("powerpc",),
    "ppc64": ("powerpc64", "ppc64be"),
    "ppc64le": ("ppc64el",),
    "s390x": (),
    "mips": ("mipsel", "mipsle"),
    "mips64": ("mips64el", "mips64le"),
    "riscv32": (),
    "riscv64": (),
    "loongarch64": (),
}
_ARCH_BY_ALIAS = {a: name for name, aliases in _ARCHITECTURES.items() for a in (name, *aliases)}


@dataclass
class ImageInfo:
    fingerprint: str
    size: int
    architecture: str
    created_at: str
    properties: dict[str, str] = field(default_factory=dict)
    templates: dict[str, dict] = field(default_factory=dict)
    filename: str = ""
    type: str = "container"
    expires_at: str = "1970-01-01T00:00:00Z"


# --------------------------------------------------------------------------- fingerprint

def fingerprint(paths: list[str]) -> str:
    """sha256 over the bytes of `paths`, in order (LXD: metadata tarball, then rootfs)."""
    h = hashlib.sha256()
    for p in paths:
        try:
            with open(p, "rb") as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
        except OSError as e:
            raise ImageError(f"Failed to read image file: {e.strerror or e}") from None
    return h.hexdigest()


def detect_format(path: str) -> str:
    """"gzip", "xz", "bzip2", "zstd", "squashfs" or "tar" (anything else), by magic bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise ImageError(f"Failed to read image file: {e.strerror or e}") from None
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return "tar"


# --------------------------------------------------------------------------- metadata

def normalize_architecture(name: object) -> str:
    arch = _ARCH_BY_ALIAS.get(name) if isinstance(name, str) else None
    if arch is None:
        raise ImageError(f"Invalid metadata.yaml: unknown architecture {name!r}")
    return arch


def rfc3339(timestamp: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def parse_metadata(yaml_text: str | bytes, *, strict: bool = True) -> dict:
    """Parse and check an image's metadata.yaml.

    Returns {"architecture", "creation_date", "expiry_date", "properties", "templates"}
    with the architecture normalised to LXD's name, property values as the literal YAML
    text (like LXD's map[string]string), and templates as
    {path: {"when": [...], "create_only": bool, "template": str, "properties": {...}}}.
    With strict=False (used when applying templates) only the templates are checked.
    """
    try:
        typed = yaml.safe_load(yaml_text)
        literal = yaml.load(yaml_text, Loader=yaml.BaseLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ImageError(f"Invalid metadata.yaml: {getattr(e, 'problem', None) or e}{where}") from None
    if typed is None and not strict:
        typed = literal = {}
    if not isinstance(typed, dict) or not isinstance(literal, dict):
        raise ImageError("Invalid metadata.yaml: expected a mapping")

    meta = {
        "properties": _string_map(typed.get("properties"), literal.get("properties"), "properties"),
        "templates": _parse_templates(typed.get("templates"), literal.get("templates")),
    }
    if not strict:
        return meta
    if "architecture" not in typed:
        raise ImageError("Invalid metadata.yaml: missing architecture")
    meta["architecture"] = normalize_architecture(typed["architecture"])
    if "creation_date" not in typed:
        raise ImageError("Invalid metadata.yaml: missing creation_date")
    meta["creation_date"] = _timestamp(typed["creation_date"], "creation_date")
    meta["expiry_date"] = _timestamp(typed.get("expiry_date") or 0, "expiry_date")
    return meta


def _timestamp(value: object, key: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ImageError(f"Invalid metadata.yaml: {key} must be a unix timestamp, got {value!r}")
    try:
        rfc3339(value)
    except (OverflowError, OSError, ValueError):
        raise ImageError(f"Invalid metadata.yaml: {key} is out of range") from None
    return value


def _string_map(typed: object, literal: object, what: str) -> dict[str, str]:
    if typed is None:
        return {}
    if not isinstance(typed, dict) or not isinstance(literal, dict):
        raise ImageError(f"Invalid metadata.yaml: {what} must be a mapping")
    out = {}
    for key, value in typed.items():
        if isinstance(value, (dict, list)):
            raise ImageError(f"Invalid metadata.yaml: {what}.{key} must be a string")
        if value is None:
            out[str(key)] = ""
        elif isinstance(value, str):
            out[str(key)] = value
        else:  # keep the YAML text, as LXD does when decoding into map[string]string
            out[str(key)] = literal.get(str(key), str(value))
    return out


def _parse_templates(typed: object, literal: object) -> dict[str, dict]:
    if typed is None:
        return {}
    if not isinstance(typed, dict) or not isinstance(literal, dict):
        raise ImageError("Invalid metadata.yaml: templates must be a mapping")
    out = {}
    for path, tpl in typed.items():
        if not isinstance(path, str) or not path.strip("/"):
            raise ImageError(f"Invalid metadata.yaml: bad template path {path!r}")
        if not isinstance(tpl, dict):
            raise ImageError(f"Invalid metadata.yaml: template {path} must be a mapping")
        name = tpl.get("template")
        if not isinstance(name, str) or not name or name.startswith("/") or ".." in name.split("/"):
            raise ImageError(f"Invalid metadata.yaml: template {path} has a bad template file {name!r}")
        when = tpl.get("when") or []
        if not isinstance(when, list) or not all(isinstance(w, str) for w in when):
            raise ImageError(f"Invalid metadata.yaml: template {path}: when must be a list of strings")
        create_only = tpl.get("create_only", False)
        if not isinstance(create_only, bool):
            raise ImageError(f"Invalid metadata.yaml: template {path}: create_only must be a boolean")
        lit = literal.get(path) if isinstance(literal.get(path), dict) else {}
        out[path] = {
            "when": list(when),
            "create_only": create_only,
            "template": name,
            "properties": _string_map(tpl.get("properties"), lit.get("properties") or {},
                                      f"templates.{path}.properties"),
        }
    return out


# --------------------------------------------------------------------------- import

def import_unified(tarball_path: str, dest_dir: str, *, filename: str = "",
                   allow_devices: bool = False, budget: Budget | None = None) -> ImageInfo:
    """Unpack a unified image tarball (metadata.yaml, templates/, rootfs/) into dest_dir,
    refusing it (ImageTooLarge, nothing left) as soon as it passes `budget`."""
    fp = fingerprint([tarball_path])
    with _staging(dest_dir) as tmp:
        unpacker = _Unpacker(tmp, allow_devices, budget)
        unpacker.extract_tar(tarball_path, prefix=())
        unpacker.finish()
        meta = _validate_tree(tmp)
    return _info(meta, fp, [tarball_path], filename)


def import_split(meta_path: str, rootfs_path: str, dest_dir: str, *, filename: str = "",
                 allow_devices: bool = False, budget: Budget | None = None) -> ImageInfo:
    """Unpack a split image (metadata tarball + rootfs tarball or squashfs) into dest_dir; the
    two parts together must fit `budget` (a squashfs is measured before it is unpacked)."""
    fp = fingerprint([meta_path, rootfs_path])
    with _staging(dest_dir) as tmp:
        unpacker = _Unpacker(tmp, allow_devices, budget)
        unpacker.extract_tar(meta_path, prefix=(), metadata_only=True)
        if detect_format(rootfs_path) == "squashfs":
            if unpacker.meta_rootfs:
                # unsquashfs would have to write into a tree the metadata tarball made (and through
                # its symlinks): refused rather than merged
                raise ImageError("Invalid image: a metadata tarball with rootfs/ entries is only "
                                 "supported with a tarball rootfs, not a squashfs one")
            unsquashfs(rootfs_path, os.path.join(tmp, "rootfs"), unpacker.budget)
            unpacker.check_tree(os.path.join(tmp, "rootfs"))
        else:
            if not unpacker.meta_rootfs:
                os.mkdir(os.path.join(tmp, "rootfs"), 0o755)
            unpacker.extract_tar(rootfs_path, prefix=("rootfs",))
        unpacker.finish()
        meta = _validate_tree(tmp)
    return _info(meta, fp, [meta_path, rootfs_path], filename)


def _info(meta: dict, fp: str, paths: list[str], filename: str) -> ImageInfo:
    return ImageInfo(
        fingerprint=fp,
        size=sum(os.path.getsize(p) for p in paths),
        architecture=meta["architecture"],
        created_at=rfc3339(meta["creation_date"]),
        expires_at=rfc3339(meta["expiry_date"]),
        properties=meta["properties"],
        templates=meta["templates"],
        filename=filename,
    )


@contextlib.contextmanager
def _staging(dest_dir: str) -> Iterator[str]:
    """Yield a private sibling temp dir; rename it to dest_dir on success, remove it on error."""
    dest_dir = os.path.abspath(dest_dir)
    if os.path.lexists(dest_dir):
        if os.path.islink(dest_dir) or not os.path.isdir(dest_dir) or os.listdir(dest_dir):
            raise ImageError(f"Image directory {os.path.basename(dest_dir)} already exists")
    parent = os.path.dirname(dest_dir)
    os.makedirs(parent, exist_ok=True)
    # 0700: the unpacked rootfs may contain setuid binaries that host users must not reach.
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(dest_dir)}.tmp-", dir=parent)
    try:
        yield tmp
        try:
            os.rename(tmp, dest_dir)
        except OSError:  # someone else populated dest_dir meanwhile
            raise ImageError(f"Image directory {os.path.basename(dest_dir)} already exists") from None
    except BaseException:
        _rmtree(tmp)
        raise


def _rmtree(path: str) -> None:
    def force(func, p, exc):
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), 0o700)
            func(p)
    shutil.rmtree(path, onexc=force)


def _validate_tree(root: str) -> dict:
    meta_file = os.path.join(root, "metadata.yaml")
    try:
        st = os.lstat(meta_file)
    except FileNotFoundError:
        raise ImageError("Invalid image: missing metadata.yaml") from None
    if not stat.S_ISREG(st.st_mode):
        raise ImageError("Invalid image: metadata.yaml is not a regular file")
    if st.st_size > MAX_METADATA_SIZE:
        raise ImageError("Invalid image: metadata.yaml is too large")
    with open(meta_file, "rb") as f:
        meta = parse_metadata(f.read())
    for name in ("rootfs", "templates"):
        path = os.path.join(root, name)
        if not os.path.lexists(path):
            if name == "rootfs":
                raise ImageError("Invalid image: missing rootfs/ directory")
        elif os.path.islink(path) or not os.path.isdir(path):
            raise ImageError(f"Invalid image: {name} is not a directory")
    return meta


def _components(name: str, what: str = "entry") -> tuple[str, ...]:
    """The path of an entry (or hardlink target) inside the directory it is unpacked into. Leading
    slashes are dropped, as GNU tar and LXD do (pylxd's and LXD's test images name a member
    `/rootfs/etc/inittab`); `..` is refused wherever it appears."""
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise ImageError(f"Invalid image tarball: '..' in {what} {name!r}")
    return parts


class _Unpacker:
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

_PACK_MODES = {"gzip": "w|gz", "xz": "w|xz", "none": "w|", "zstd": "w|"}


def pack_unified(src_dir: str, out_path: str, compression: str = "gzip",
                 progress: Callable[[int], None] | None = None,
                 budget: Budget | None = None) -> tuple[str, str, int]:
    """Write src_dir's metadata.yaml, templates/ and rootfs/ as a unified image tarball.

    Streams (nothing is held in memory), keeps numeric owners/modes, symlinks, hardlinks and
    device nodes; progress(bytes_read_so_far) is called as file data is read. The tarball is
    written to a temp file beside out_path and renamed into place. The files packed (contents plus
    ENTRY_COST each) must fit `budget`, or ImageTooLarge is raised and nothing is left.
    Returns (out_path, fingerprint, size).
    """
    if compression not in _PACK_MODES:
        raise ImageError(f"Unsupported compression {compression!r} (use gzip, xz, zstd or none)")
    if not os.path.isfile(os.path.join(src_dir, "metadata.yaml")) or \
            not os.path.isdir(os.path.join(src_dir, "rootfs")):
        raise ImageError(f"{src_dir} is not an image directory (needs metadata.yaml and rootfs/)")
    zstd = _tool("zstd") if compression == "zstd" else None
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(out_path)}.tmp-",
                               dir=os.path.dirname(os.path.abspath(out_path)))
    counter = _Progress(progress, budget=budget or Budget.unlimited())
    try:
        with os.fdopen(fd, "wb") as out:
            proc = None
            if zstd:
                proc = subprocess.Popen([zstd, "-q", "-c", "-T0"], stdin=subprocess.PIPE, stdout=out,
                                        stderr=subprocess.PIPE)
                sink = proc.stdin
            else:
                sink = out
            try:
                kwargs = {"compresslevel": 6} if compression == "gzip" else {}
                with tarfile.open(fileobj=sink, mode=_PACK_MODES[compression],
                                  format=tarfile.PAX_FORMAT, **kwargs) as tar:
                    for arcname, path in _image_entries(src_dir):
                        _add(tar, arcname, path, counter)
            finally:
                if proc is not None:
                    proc.stdin.close()
                    err = proc.stderr.read().decode(errors="replace").strip()
                    proc.stderr.close()
                    if proc.wait() != 0:
                        raise OSError(f"zstd failed: {err}")
        os.replace(tmp, out_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    counter.done()
    return out_path, fingerprint([out_path]), os.path.getsize(out_path)


def _image_entries(src_dir: str) -> Iterator[tuple[str, str]]:
    yield "metadata.yaml", os.path.join(src_dir, "metadata.yaml")
    for top in ("templates", "rootfs"):
        base = os.path.join(src_dir, top)
        if not os.path.isdir(base) or os.path.islink(base):
            continue
        yield top, base
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            rel = os.path.relpath(dirpath, src_dir)
            for name in sorted(dirnames + filenames):
                yield f"{rel}/{name}", os.path.join(dirpath, name)


def _add(tar: tarfile.TarFile, arcname: str, path: str, counter: "_Progress") -> None:
    info = tar.gettarinfo(path, arcname)  # lstat: symlinks stay symlinks, hardlinks are detected
    if info is None:  # sockets
        return
    counter.budget.charge(ENTRY_COST)
    info.uname = info.gname = ""  # numeric owners only
    if not info.isreg():
        tar.addfile(info)
        return
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        tar.addfile(info, counter.wrap(f))


class _Progress:
    def __init__(self, callback: Callable[[int], None] | None, every: int = CHUNK,
                 budget: Budget | None = None):
        self.callback = callback
        self.budget = budget or Budget.unlimited()
        self.every = every
        self.total = 0
        self.reported = 0

    def wrap(self, f):
        progress = self

        class Reader:
            def read(self, size=-1):
                data = f.read(size)
                progress.add(len(data))
                return data
        return Reader()

    def add(self, n: int) -> None:
        self.budget.charge(n)
        self.total += n
        if self.callback and self.total - self.reported >= self.every:
            self.reported = self.total
            self.callback(self.total)

    def done(self) -> None:
        if self.callback and self.reported != self.total:
            self.reported = self.total
            self.callback(self.total)
