"""LXD image outputs (distrobuilder's image/lxd.go): metadata.yaml (architecture, creation_date,
expiry_date, properties, templates) and the templates/ directory, packed as

- unified: one tarball `<image.name>.tar[.xz|.gz|...]` holding metadata.yaml, templates/ and rootfs/;
- split: `lxd.tar[.xz|...]` (metadata.yaml, templates/) and `rootfs.squashfs` (mksquashfs).

Tarballs are written by GNU tar (device nodes, hard links, xattrs such as file capabilities, numeric
owners) with members sorted by name."""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time

import yaml

from corral.builder.definition import expiry_seconds
from corral.builder.generators import LXDMeta

TAR_COMPRESSION = {"none": ("", None), "xz": (".xz", "xz -T0"), "gzip": (".gz", "gzip"),
                   "bzip2": (".bz2", "bzip2"), "zstd": (".zst", "zstd -T0 -q"), "lzma": (".lzma", "xz --format=lzma")}
SQUASHFS_COMPRESSION = {"none": ["-noI", "-noD", "-noF", "-noX"], "xz": ["-comp", "xz"], "gzip": ["-comp", "gzip"],
                        "zstd": ["-comp", "zstd"], "lzo": ["-comp", "lzo"], "lz4": ["-comp", "lz4"]}
TYPES = ("split", "unified")


class PackError(RuntimeError):
    pass


def check_options(kind: str, compression: str) -> None:
    if kind not in TYPES:
        raise PackError("--type needs to be one of ['split', 'unified']")
    if compression not in TAR_COMPRESSION:
        raise PackError(f"--compression: invalid value \"{compression}\" (one of: {', '.join(TAR_COMPRESSION)})")
    if kind == "split" and compression not in SQUASHFS_COMPRESSION:
        raise PackError(f'--compression "{compression}" cannot compress a squashfs (one of: '
                        f'{", ".join(SQUASHFS_COMPRESSION)})')


def metadata(d: dict, meta: LXDMeta, now: float | None = None) -> dict:
    created = int(time.time() if now is None else now)
    img = d["image"]
    return {
        "architecture": img["architecture"],
        "creation_date": created,
        "expiry_date": created + expiry_seconds(d),
        "properties": {
            "architecture": img["architecture_mapped"],
            "description": img["description"],
            "name": img["name"],
            "os": img["distribution"],
            "release": img["release"],
            "serial": img["serial"],
            "variant": img["variant"],
        },
        "templates": {path: meta.templates[path] for path in sorted(meta.templates)},
    }


def _run(argv: list[str], what: str) -> None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, errors="replace")
    except FileNotFoundError:
        raise PackError(f"{argv[0]} is not installed (needed to {what})") from None
    if proc.returncode != 0:
        raise PackError(f"{what} failed: {(proc.stderr or proc.stdout).strip()[-800:]}")


def _tar(out: str, parts: list[list[str]], compression: str) -> str:
    ext, program = TAR_COMPRESSION[compression]
    argv = ["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--sort=name", "-cf", out + ext]
    if program:
        argv += ["--use-compress-program", program]
    for part in parts:
        argv += part
    _run(argv, f"writing {os.path.basename(out + ext)}")
    return out + ext


def _stage_metadata(d: dict, meta: LXDMeta, now: float | None) -> str:
    stage = tempfile.mkdtemp(prefix="corral-builder-meta-")
    with open(os.path.join(stage, "metadata.yaml"), "w") as f:
        yaml.safe_dump(metadata(d, meta, now), f, sort_keys=False, default_flow_style=False)
    os.makedirs(os.path.join(stage, "templates"))
    for name, content in sorted(meta.files.items()):
        with open(os.path.join(stage, "templates", name), "w") as f:
            f.write(content)
    return stage


def pack(d: dict, rootfs: str, meta: LXDMeta, out_dir: str, *, kind: str = "split", compression: str = "xz",
         now: float | None = None) -> list[str]:
    """Write the image into out_dir; return the written files (metadata first)."""
    check_options(kind, compression)
    os.makedirs(out_dir, exist_ok=True)
    stage = _stage_metadata(d, meta, now)
    try:
        if kind == "unified":
            name = d["image"]["name"].replace("/", "_")
            rootfs_part = ["-C", os.path.abspath(rootfs), "--transform", "flags=rh;s,^\\.,rootfs,", "."]
            return [_tar(os.path.join(out_dir, f"{name}.tar"),
                         [["-C", stage, "metadata.yaml", "templates"], rootfs_part], compression)]
        metadata_file = _tar(os.path.join(out_dir, "lxd.tar"), [["-C", stage, "metadata.yaml", "templates"]],
                             compression)
        squash = os.path.join(out_dir, "rootfs.squashfs")
        if os.path.exists(squash):
            os.unlink(squash)
        _run(["mksquashfs", rootfs, squash, "-noappend", "-no-progress", "-quiet", "-xattrs",
              *SQUASHFS_COMPRESSION[compression]], "writing rootfs.squashfs")
        return [metadata_file, squash]
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def describe(files: list[str]) -> str:
    return " ".join(shlex.quote(f) for f in files)
