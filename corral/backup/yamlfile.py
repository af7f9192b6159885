"""`backup.yaml`, the file every instance volume carries (see corral/instance/backup_yaml.py for
what writes it and when): written atomically, mode 0400; read back for `lxd recover` and for the
start-up reconciliation of volumes no record points at."""
from __future__ import annotations

import contextlib
import os

import yaml

FILENAME = "backup.yaml"


def write_file(path: str, doc: dict) -> bool:
    """Write `doc` unless the file already holds exactly that text (no rewrite, no fsync then).
    True when it was written."""
    # libyaml's emitter when there is one: the same text, a third of the time (written at every launch)
    data = yaml.dump(doc, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), default_flow_style=False,
                     sort_keys=False).encode()
    with contextlib.suppress(OSError), open(path, "rb") as f:
        if f.read(len(data) + 1) == data:
            return False
    tmp = os.path.join(os.path.dirname(path), f".{FILENAME}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o400)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return True


class BackupYamlError(ValueError):
    pass


def parse(path: str) -> dict:
    """Read a backup.yaml back: {"container": {...}, "snapshots": [...], "profiles": [...], "pool": {...}}.
    Raises BackupYamlError with the reason when it is missing pieces or malformed."""
    try:
        with open(path) as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise BackupYamlError(str(e)) from None
    if not isinstance(doc, dict):
        raise BackupYamlError("not a YAML mapping")
    c = doc.get("container")
    if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not c["name"]:
        raise BackupYamlError('no "container" section with a name')
    for key, kind in (("config", dict), ("devices", dict), ("profiles", list)):
        if not isinstance(c.get(key) if c.get(key) is not None else kind(), kind):
            raise BackupYamlError(f'"container.{key}" is not a {kind.__name__}')
    snaps = doc.get("snapshots") or []
    if not isinstance(snaps, list) or not all(isinstance(s, dict) and isinstance(s.get("name"), str)
                                              for s in snaps):
        raise BackupYamlError('"snapshots" is not a list of named snapshots')
    profiles = doc.get("profiles") or []
    if not isinstance(profiles, list):
        raise BackupYamlError('"profiles" is not a list')
    return {"container": c, "snapshots": snaps, "profiles": profiles, "pool": doc.get("pool") or {},
            "volume": doc.get("volume") or {}}


def recoverable(volume_dir: str, volume: str, volume_name) -> bool:
    """True when an instance volume no record points at carries a backup.yaml for itself: records
    lost (a damaged or reset database) rather than a half-made copy (which carries its source's) or
    an interrupted delete (which removes the file before the record). `lxd recover` brings it back."""
    try:
        c = parse(os.path.join(volume_dir, FILENAME))["container"]
    except BackupYamlError:
        return False
    return volume_name(c.get("project") or "default", c["name"]) == volume


def forget(volume_dir: str) -> None:
    """Remove the backup.yaml of an instance about to be deleted (first, see recoverable())."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(volume_dir, FILENAME))
