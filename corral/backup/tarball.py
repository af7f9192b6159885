"""Backup tarballs as LXD writes them (instance and custom volume backups): backup/index.yaml, then
the volume trees, owners by number; the record (JSON) is written only once the tarball is complete."""
from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
import time

import yaml

COMPRESSIONS = {"gzip": "gz", "none": "", "bzip2": "bz2", "xz": "xz"}


def write_json(path: str, data: dict) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path)


def write_backup(tar_path: str, meta_path: str, index: dict, dirs: list[tuple[str, str]], comp: str,
                  record: dict, files: dict[str, bytes] | None = None) -> None:
    os.makedirs(os.path.dirname(tar_path), mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(tar_path), prefix=".partial-")
    os.close(fd)
    try:
        with tarfile.open(tmp, f"w:{comp}" if comp else "w", format=tarfile.PAX_FORMAT) as tf:
            data = yaml.safe_dump(index, default_flow_style=False).encode()
            info = tarfile.TarInfo("backup/index.yaml")
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tf.addfile(info, io.BytesIO(data))
            generated = set(files or {})
            for arc, src in dirs:
                # The volume's own backup.yaml is replaced by the one generated for this backup.
                tf.add(src, arcname=arc, recursive=True,
                       filter=lambda i: None if i.name in generated else _numeric(i))
            for arc, content in (files or {}).items():
                info = tarfile.TarInfo(arc)
                info.size, info.mode, info.mtime = len(content), 0o400, int(time.time())
                tf.addfile(info, io.BytesIO(content))
        os.replace(tmp, tar_path)
        write_json(meta_path, record)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _numeric(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Owners by number only (the uids of the container, not names from the host)."""
    info.uname = info.gname = ""
    return info
