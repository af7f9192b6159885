"""LXD's backup format, read in one place: backup/index.yaml and backup.yaml files, and the checks a
backup tarball's members must pass before anything is extracted.

Instance backup (`lxc export`, LXD 5.0 and Corral): backup/index.yaml, backup/container/ (backup.yaml
from LXD, metadata.yaml, templates/, rootfs/), backup/snapshots/<snapshot>/; a VM's: its config
directory backup/virtual-machine/ (without the disk) and the disk backup/virtual-machine.img,
backup/virtual-machine-snapshots/<snapshot>/ and <snapshot>.img. Custom volume backup
(`lxc storage volume export`): backup/index.yaml, backup/volume/, backup/volume-snapshots/<snapshot>/.

Callers (import here, `lxd recover`) use `load_yaml`, `parse_index` / `parse_backup_yaml` and
`BackupTarball`; none of them parses these files by hand.
"""
from __future__ import annotations

import os
import posixpath
import tarfile
from dataclasses import dataclass, field

import yaml

from corral.errors import BadRequest


_CHUNK = 1 << 20
UPLOAD_PREFIX = ".upload-"   # backup tarballs being received, in $CORRAL_DIR/backups/


def remove_stale_uploads(directory: str) -> int:
    """At start: uploads a crashed daemon was receiving or importing are of no use any more."""
    n = 0
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return 0
    for name in names:
        if name.startswith(UPLOAD_PREFIX):
            try:
                os.unlink(os.path.join(directory, name))
                n += 1
            except OSError:
                pass
    return n


class _Loader(yaml.SafeLoader):
    """YAML as LXD writes it, with timestamps kept as the strings they are (RFC 3339, ns)."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def load_yaml(data: bytes | str) -> dict:
    try:
        out = yaml.load(data, Loader=_Loader)   # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as e:
        raise BadRequest(f"Invalid backup file: {e}") from None
    if not isinstance(out, dict):
        raise BadRequest("Invalid backup file: expected a YAML mapping")
    return out


@dataclass
class BackupInfo:
    """What index.yaml (or a backup.yaml) says about a backup."""
    name: str
    kind: str                       # "container" or "custom"
    backend: str = ""
    pool: str = ""
    optimized: bool = False
    snapshots: list[str] = field(default_factory=list)
    instance: dict | None = None    # the instance as `GET /1.0/instances/<name>` renders it
    instance_snapshots: list[dict] = field(default_factory=list)
    volume: dict | None = None      # the storage volume record
    volume_snapshots: list[dict] = field(default_factory=list)


def _dict(v, what: str) -> dict:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise BadRequest(f"Invalid backup file: {what} must be a mapping")
    return v


def _list(v, what: str) -> list:
    if v is None:
        return []
    if not isinstance(v, list):
        raise BadRequest(f"Invalid backup file: {what} must be a list")
    return v


def parse_backup_yaml(doc: dict) -> dict:
    """A backup.yaml (LXD's per-volume copy of the config: container, snapshots, pool, volume, ...)
    as {"container": dict|None, "snapshots": [dict], "pool": dict, "volume": dict|None,
    "volume_snapshots": [dict], "profiles": [dict]}."""
    doc = _dict(doc, "config")
    snaps = [_dict(s, "snapshot") for s in _list(doc.get("snapshots"), "snapshots")]
    vsnaps = [_dict(s, "volume snapshot") for s in _list(doc.get("volume_snapshots"), "volume_snapshots")]
    container = doc.get("container")
    volume = doc.get("volume")
    return {"container": _dict(container, "container") if container is not None else None,
            "snapshots": snaps, "pool": _dict(doc.get("pool"), "pool"),
            "volume": _dict(volume, "volume") if volume is not None else None,
            "volume_snapshots": vsnaps,
            "profiles": [_dict(p, "profile") for p in _list(doc.get("profiles"), "profiles")]}


def parse_index(doc: dict, backup_yaml: dict | None = None) -> BackupInfo:
    """index.yaml -> BackupInfo. `backup_yaml` (backup/container/backup.yaml) stands in for an
    index without `config` (backups made by older LXD releases)."""
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest("Invalid backup file: index.yaml has no name")
    snapshots = _list(doc.get("snapshots"), "snapshots")
    if not all(isinstance(s, str) and s for s in snapshots):
        raise BadRequest("Invalid backup file: snapshot names must be strings")
    cfg = doc.get("config")
    conf = parse_backup_yaml(cfg if cfg is not None else (backup_yaml or {}))
    kind = doc.get("type") or ("container" if conf["container"] is not None or conf["volume"] is None
                               else "custom")
    if kind == "virtual-machine":
        kind = "virtual-machine"
    elif kind not in ("container", "custom"):
        raise BadRequest(f'Invalid backup file: unknown backup type "{kind}"')
    info = BackupInfo(name=name, kind=kind, backend=str(doc.get("backend") or ""),
                      pool=str(doc.get("pool") or ""), optimized=bool(doc.get("optimized")),
                      snapshots=list(snapshots), instance=conf["container"],
                      instance_snapshots=conf["snapshots"], volume=conf["volume"],
                      volume_snapshots=conf["volume_snapshots"])
    return info


# ---- tarball members ---------------------------------------------------------------------

@dataclass
class Member:
    info: tarfile.TarInfo
    path: str          # normalised, relative to the archive root ("backup/container/rootfs/bin")


class BackupTarball:
    """An opened backup tarball whose members have all been checked: relative paths inside
    backup/, no "..", no duplicates, no device nodes, nothing below a symlink, hard links only to
    regular files seen earlier. Raises BadRequest (and closes the file) otherwise."""

    def __init__(self, path: str):
        try:
            self.tf = tarfile.open(path, "r:*")
        except (tarfile.TarError, OSError, EOFError) as e:
            raise BadRequest(f"Invalid backup tarball: {e}") from None
        try:
            self.members = self._check(self.tf.getmembers())
        except (tarfile.TarError, OSError, EOFError) as e:
            self.tf.close()
            raise BadRequest(f"Invalid backup tarball: {e}") from None
        except BaseException:
            self.tf.close()
            raise
        self.by_path = {m.path: m for m in self.members}

    def close(self) -> None:
        self.tf.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @staticmethod
    def _norm(name: str) -> str:
        if not name or name.startswith("/"):
            raise BadRequest(f'Invalid backup tarball: absolute path "{name}"')
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise BadRequest(f'Invalid backup tarball: path escapes the archive "{name}"')
        if not parts or parts[0] != "backup":
            raise BadRequest(f'Invalid backup tarball: "{name}" is outside backup/')
        return "/".join(parts)

    def _check(self, infos: list[tarfile.TarInfo]) -> list[Member]:
        seen: dict[str, tarfile.TarInfo] = {}
        links: set[str] = set()
        out = []
        for ti in infos:
            path = self._norm(ti.name)
            if path in seen:
                raise BadRequest(f'Invalid backup tarball: "{path}" appears twice')
            parent = posixpath.dirname(path)
            while parent:
                if parent in links:
                    raise BadRequest(f'Invalid backup tarball: "{path}" lies below a symlink')
                if parent in seen and not seen[parent].isdir():
                    raise BadRequest(f'Invalid backup tarball: "{path}" lies below a non-directory')
                parent = posixpath.dirname(parent)
            if ti.ischr() or ti.isblk():
                raise BadRequest(f'Invalid backup tarball: device node "{path}"')
            if ti.issym():
                links.add(path)
            elif ti.islnk():
                target = self._norm(ti.linkname)
                if target not in seen or not seen[target].isreg() or _volume_of(target) != _volume_of(path):
                    raise BadRequest(f'Invalid backup tarball: hard link "{path}" to "{ti.linkname}"')
            elif not (ti.isreg() or ti.isdir() or ti.isfifo()):
                raise BadRequest(f'Invalid backup tarball: unsupported member type of "{path}"')
            seen[path] = ti
            out.append(Member(ti, path))
        if "backup/index.yaml" not in seen or not seen["backup/index.yaml"].isreg():
            raise BadRequest("Invalid backup tarball: no backup/index.yaml")
        return out

    def check_instance_layout(self) -> None:
        """An instance volume holds metadata.yaml (and backup.yaml) files and rootfs/ and templates/
        directories: none of them, nor anything in templates/, may be a link (a rootfs symlinked to
        the host's / would boot the host's root; a linked template would copy host files in)."""
        for m in self.members:
            vol = _volume_of(m.path)
            if not vol or vol == "backup/snapshots" or not vol.startswith(("backup/container", "backup/snapshots/")):
                continue
            rel = m.path[len(vol) + 1:] if m.path != vol else ""
            top = rel.split("/", 1)[0]
            if rel == "":
                ok = m.info.isdir()
            elif "/" not in rel:
                ok = m.info.isdir() if top in ("rootfs", "templates") else m.info.isreg()
            elif top == "templates":
                ok = m.info.isdir() or m.info.isreg()
            else:
                continue
            if not ok:
                raise BadRequest(f'Invalid backup tarball: "{m.path}" has the wrong type')

    def read(self, path: str, limit: int = 16 << 20) -> bytes | None:
        m = self.by_path.get(path)
        if m is None:
            return None
        if not m.info.isreg() or m.info.size > limit:
            raise BadRequest(f'Invalid backup tarball: "{path}" is not a small regular file')
        f = self.tf.extractfile(m.info)
        return f.read() if f else b""

    def info(self, backup_yaml: str = "backup/container/backup.yaml") -> BackupInfo:
        index = load_yaml(self.read("backup/index.yaml"))
        by = self.read(backup_yaml) if index.get("config") is None else None
        return parse_index(index, load_yaml(by) if by else None)

    def extract(self, prefix: str, dest_root: str, dest: str, skip: set[str] = frozenset()) -> int:
        """Extract the members below `prefix` (e.g. "backup/container") to `dest` (a relative path
        under `dest_root`, an existing empty directory), keeping numeric owners and modes. Members
        named in `skip` (paths relative to `prefix`) are left out. Returns how many were written."""
        n = 0
        for m in self.members:
            if not m.path.startswith(prefix + "/"):
                continue
            rel = m.path[len(prefix) + 1:]
            if rel in skip:
                continue
            ti = _copy_info(m.info)
            ti.name = posixpath.join(dest, rel)
            if ti.islnk():
                target = self._norm(m.info.linkname)
                if not target.startswith(prefix + "/"):
                    raise BadRequest(f'Invalid backup tarball: hard link "{m.path}" leaves its volume')
                ti.linkname = posixpath.join(dest, target[len(prefix) + 1:])
            kw = {"filter": "fully_trusted"} if hasattr(tarfile, "data_filter") else {}
            self.tf.extract(ti, dest_root, numeric_owner=True, **kw)
            n += 1
        return n

    def apply_root(self, prefix: str, path: str) -> None:
        """Give `path` the owner and mode of the directory member `prefix` (a custom volume's root,
        which is the mount's root inside the container), when the archive has it."""
        m = self.by_path.get(prefix)
        if m is None or not m.info.isdir():
            return
        os.chown(path, m.info.uid, m.info.gid)
        os.chmod(path, m.info.mode & 0o7777)

    def extract_disk(self, path: str, dest: str) -> int:
        """Write the regular member `path` (a VM's disk: backup/virtual-machine.img) to the file
        `dest` (made or replaced), sparse: holes of a sparse member and all-zero chunks of a plain
        one are not written. Returns its size."""
        m = self.by_path.get(path)
        if m is None:
            raise BadRequest(f'Invalid backup tarball: no "{path}"')
        if not m.info.isreg():
            raise BadRequest(f'Invalid backup tarball: "{path}" is not a regular file')
        ti = m.info
        src = self.tf.fileobj
        src.seek(ti.offset_data)
        zero = bytes(_CHUNK)
        with open(dest, "wb") as out:
            for offset, length in ti.sparse if ti.sparse is not None else [(0, ti.size)]:
                out.seek(offset)
                while length > 0:
                    chunk = src.read(min(_CHUNK, length))
                    if not chunk:
                        raise BadRequest(f'Invalid backup tarball: "{path}" is truncated')
                    if chunk == zero[:len(chunk)]:
                        out.seek(len(chunk), os.SEEK_CUR)
                    else:
                        out.write(chunk)
                    length -= len(chunk)
            out.truncate(ti.size)
        return ti.size

    def names_below(self, prefix: str) -> set[str]:
        """The first path component of every member below `prefix` (e.g. snapshot names)."""
        out = set()
        for m in self.members:
            if m.path.startswith(prefix + "/"):
                out.add(m.path[len(prefix) + 1:].split("/", 1)[0])
        return out


def _volume_of(path: str) -> str:
    """The volume a member belongs to: backup/container, backup/volume, backup/virtual-machine,
    backup/snapshots/<name>, backup/volume-snapshots/<name>, backup/virtual-machine-snapshots/<name>
    ("" for backup/index.yaml and the like)."""
    parts = path.split("/")
    if len(parts) >= 2 and parts[1] in ("container", "volume", "virtual-machine"):
        return "/".join(parts[:2])
    if len(parts) >= 3 and parts[1] in ("snapshots", "volume-snapshots", "virtual-machine-snapshots"):
        return "/".join(parts[:3])
    return ""


def _copy_info(ti: tarfile.TarInfo) -> tarfile.TarInfo:
    new = tarfile.TarInfo(ti.name)
    for attr in ("size", "mtime", "mode", "type", "linkname", "uid", "gid", "uname", "gname",
                 "devmajor", "devminor", "offset", "offset_data", "pax_headers", "sparse"):
        setattr(new, attr, getattr(ti, attr))
    new.uname = new.gname = ""
    return new
