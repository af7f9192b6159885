"""almalinux-http: AlmaLinux from its mirror's installation ISOs, as distrobuilder's downloader does.

`SOURCE_URL/RELEASE/isos/ARCH/` is listed and the newest `AlmaLinux-RELEASE[.N]-ARCH-VARIANT[-N].iso` in
it chosen (`source.variant`, "boot" by default: the small network-install ISO). Its SHA256 comes from the
directory's CHECKSUM file (or sha256sum.txt.asc), whose OpenPGP signature is checked against
`source.keys` (key blocks, or fingerprints received from `source.keyserver`). Over plain HTTP keys are
required; over HTTPS without keys the checksum is still checked, unsigned; `source.skip_verification`
skips both. The ISO's root image is then unpacked and dnf, run in it, installs a minimal system
(basesystem, almalinux-release, yum) from `SOURCE_URL/MAJOR/BaseOS/ARCH/os/` (or from the ISO's own
packages when it carries a repository), which becomes the build's root filesystem.
"""
from __future__ import annotations

import os
import re
import sys
import urllib.parse

from corral.builder.sources import Source, SourceError
from corral.builder.sources._fs import WorkDir, empty_dir
from corral.builder.sources.fetch import NotFound, download, get_document
from corral.builder.sources.rhel import unpack_iso
from corral.builder.sources.verify import Keyring, is_clearsigned, parse_checksums, sha256_for

DEFAULT_URL = "https://repo.almalinux.org/almalinux"
CHECKSUM_FILES = ("CHECKSUM", "sha256sum.txt.asc", "sha256sum.txt")
PACKAGES = "basesystem almalinux-release yum"

_INNER_SCRIPT = r"""
set -eu
touch /etc/mtab /etc/fstab
mkdir -p /etc/yum.repos.d
yum_args=""
if [ -d /mnt/cdrom/Packages ]; then
    cd /mnt/cdrom/Packages
    rpm -ivh --nodeps $(ls rpm-*.rpm | head -n1)
    rpm -ivh --nodeps $(ls yum-*.rpm | head -n1)
    cd /
    printf '[cdrom]\nname=Install CD-ROM\nbaseurl=file:///mnt/cdrom\nenabled=0\n' > /etc/yum.repos.d/cdrom.repo
    if [ -n "$CORRAL_GPG_KEYS" ]; then
        printf 'gpgcheck=1\ngpgkey=%s\n' "$CORRAL_GPG_KEYS" >> /etc/yum.repos.d/cdrom.repo
    else
        printf 'gpgcheck=%s\n' "$CORRAL_GPGCHECK" >> /etc/yum.repos.d/cdrom.repo
    fi
    yum_args="--disablerepo=* --enablerepo=cdrom"
    yum $yum_args -y reinstall yum
    pm=yum
else
    if [ ! -f /etc/pki/rpm-gpg/RPM-GPG-KEY-AlmaLinux ] && [ -s /tmp/corral-source-keys.asc ]; then
        mkdir -p /etc/pki/rpm-gpg
        cp /tmp/corral-source-keys.asc /etc/pki/rpm-gpg/RPM-GPG-KEY-AlmaLinux
    fi
    cat > /etc/yum.repos.d/almalinux.repo <<EOF
[baseos]
name=AlmaLinux \$releasever - BaseOS
baseurl=$CORRAL_REPO_URL/\$releasever/BaseOS/\$basearch/os/
gpgcheck=$CORRAL_GPGCHECK
enabled=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-AlmaLinux
EOF
    if command -v dnf >/dev/null 2>&1; then pm=dnf; else pm=yum; fi
fi
mkdir -p /rootfs
$pm $yum_args --installroot=/rootfs -y --releasever="$CORRAL_RELEASEVER" --skip-broken install $CORRAL_PACKAGES
rm -rf /rootfs/var/cache/yum /rootfs/var/cache/dnf
"""


def iso_patterns(release: str, arch: str, variant: str) -> list[re.Pattern]:
    """distrobuilder's names for the ISO: a release "9" takes any 9.x (or 9), "9.4" only 9.4; beta and
    RC ISOs are second choice. The variant is matched case-insensitively."""
    fields = release.split(".")
    a, v = re.escape(arch), re.escape(variant)
    if len(fields) == 1:
        ver = re.escape(fields[0]) + r"(?:\.\d+)*"
    else:
        ver = re.escape(fields[0]) + r"\." + re.escape(fields[1])
    return [re.compile(rf"AlmaLinux-{ver}-{a}-(?i:{v})(?:-\d+)?\.iso"),
            re.compile(rf"AlmaLinux-{ver}-(?:beta|rc)-\d-{a}-(?i:{v})\.iso")]


def _version_key(name: str) -> tuple:
    m = re.match(r"AlmaLinux-([\d.]+)", name)
    nums = tuple(int(x) for x in m.group(1).strip(".").split(".") if x) if m else ()
    return nums, name


def find_iso(listing: str, release: str, arch: str, variant: str) -> str | None:
    """The newest matching ISO named in a directory listing (an HTML index or a plain list)."""
    for pattern in iso_patterns(release, arch, variant):
        names = set(pattern.findall(listing))
        if names:
            return max(names, key=_version_key)
    return None


class AlmaLinuxHTTP(Source):
    def run(self, rootfs_dir: str) -> None:
        if os.geteuid() != 0:
            raise SourceError("The almalinux-http source needs root: it loop-mounts the ISO's root image "
                              "and runs its package manager in a chroot")
        release = str(self.image.get("release") or "").strip()
        if not release:
            raise SourceError("The almalinux-http source needs image.release (e.g. 9 or 9.4)")
        arch = str(self.image.get("architecture_mapped") or self.image.get("architecture") or "x86_64")
        variant = str(self.source.get("variant") or "boot")
        base = str(self.source.get("url") or DEFAULT_URL).rstrip("/")
        iso_dir = f"{base}/{release.lower()}/isos/{arch}/"
        skip = bool(self.source.get("skip_verification"))
        keys = [str(k) for k in (self.source.get("keys") or [])]
        if not skip and not keys and urllib.parse.urlsplit(iso_dir).scheme != "https":
            raise SourceError("GPG keys are required if downloading from HTTP (set source.keys, "
                              "or source.skip_verification)")

        listing = get_document(iso_dir).decode(errors="replace")
        fname = find_iso(listing, release, arch, variant)
        if not fname:
            raise SourceError(f'No AlmaLinux {release} "{variant}" ISO for {arch} in {iso_dir}')
        scratch = WorkDir(self.cache_dir, "almalinux.")
        work = scratch.path
        keyring = Keyring(keys, self.source.get("keyserver"), parent=work) if keys and not skip else None
        try:
            extra = {}
            if keyring:
                keyring.__enter__()
                extra["/tmp/corral-source-keys.asc"] = keyring.export_armored()
            sha = None if skip else self._checksum(iso_dir, fname, keyring, work)
            if sha is None:
                print(f"Warning: {fname} is not verified (source.skip_verification)", file=sys.stderr)
            iso = download(iso_dir + fname, self.cache_dir, sha256=sha, what=fname)
            env = {"CORRAL_RELEASEVER": release.split(".")[0], "CORRAL_REPO_URL": base,
                   "CORRAL_PACKAGES": PACKAGES, "CORRAL_GPGCHECK": "0" if skip else "1"}
            try:
                unpack_iso(iso, rootfs_dir, work, _INNER_SCRIPT, env, variant=variant, extra_files=extra)
            except BaseException:
                empty_dir(rootfs_dir)
                raise
        finally:
            if keyring:
                keyring.close()
            scratch.close()

    def _checksum(self, iso_dir: str, fname: str, keyring: Keyring | None, work: str) -> str:
        for cname in CHECKSUM_FILES:
            try:
                data = get_document(iso_dir + cname)
                break
            except NotFound:
                continue
        else:
            raise SourceError(f"No checksum file ({', '.join(CHECKSUM_FILES)}) in {iso_dir}")
        where = f"{cname} ({iso_dir}{cname})"
        if keyring is None:
            print(f"Warning: {cname} is checked without a signature (no source.keys)", file=sys.stderr)
            text = data
        else:
            path = os.path.join(work, cname)
            with open(path, "wb") as f:
                f.write(data)
            if is_clearsigned(data):
                text = keyring.clearsigned_text(path, where)
            else:
                sig = None
                for ext in (".asc", ".sig", ".gpg"):
                    try:
                        sig = get_document(iso_dir + cname + ext, limit=1 << 20)
                        break
                    except NotFound:
                        continue
                if sig is None:
                    raise SourceError(f"{where} is not signed (no clearsigned text, no {cname}.asc)")
                with open(path + ".sig", "wb") as f:
                    f.write(sig)
                keyring.verify_detached(path, path + ".sig", where)
                text = data
        return sha256_for(parse_checksums(text.decode(errors="replace")), fname, where)

