"""The `debootstrap` downloader (Debian and Ubuntu), as distrobuilder's sources/debootstrap.go:

    debootstrap [--variant=V] --arch=ARCH [--components=a,b] [--no-check-gpg] [--keyring=K]
                --cache-dir=CACHE SUITE ROOTFS URL [SCRIPT]

SUITE is source.suite or image.release; source.same_as names the debootstrap script to use for a
release debootstrap does not know yet; URL defaults to the Debian mirror this host's apt uses. The
.debs are kept in CACHE (<cache>/debootstrap/<suite>-<arch>) so a rebuild downloads nothing.

source.keys: distrobuilder fetches those from source.keyserver; keyservers are not reachable here, so
the Release file is checked against the distribution's archive keyring instead (debian-archive-keyring,
ubuntu-keyring) and the keys are only reported. skip_verification passes --no-check-gpg."""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys

from corral.builder.sources import Source, SourceError

DEBIAN_MIRROR = "http://deb.debian.org/debian"
UBUNTU_MIRROR = "http://archive.ubuntu.com/ubuntu"
KEYRINGS = {"debian": "/usr/share/keyrings/debian-archive-keyring.gpg",
            "ubuntu": "/usr/share/keyrings/ubuntu-archive-keyring.gpg"}
SCRIPTS = "/usr/share/debootstrap/scripts"


def host_mirror(default: str = DEBIAN_MIRROR) -> str:
    """The Debian mirror in this host's /etc/apt/sources.list(.d) (deb822 or one-line), else default."""
    files = ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.sources")),
             *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]
    for path in files:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        for m in re.finditer(r"^\s*URIs:\s*(\S+)", text, re.M):
            if "security" not in m.group(1):
                return m.group(1).rstrip("/")
        for m in re.finditer(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", text, re.M):
            if "security" not in m.group(1) and "security" not in m.group(2):
                return m.group(1).rstrip("/")
    return default


class Debootstrap(Source):
    def argv(self, rootfs_dir: str) -> list[str]:
        src, img = self.source, self.image
        suite = src.get("suite") or img.get("release")
        if not suite:
            raise SourceError("debootstrap needs image.release (or source.suite)")
        distro = img.get("distribution", "").lower()
        url = src.get("url") or (host_mirror() if distro != "ubuntu" else UBUNTU_MIRROR)
        arch = img.get("architecture_mapped") or img.get("architecture")
        cache = os.path.join(self.cache_dir, "debootstrap", f"{suite}-{arch}")
        os.makedirs(cache, exist_ok=True)
        argv = ["debootstrap", f"--arch={arch}", f"--cache-dir={cache}"]
        if src.get("variant"):
            argv.append(f"--variant={src['variant']}")
        if src.get("components"):
            argv.append(f"--components={','.join(src['components'])}")
        if src.get("skip_verification"):
            argv.append("--no-check-gpg")
        elif os.path.exists(KEYRINGS.get(distro, "")):
            argv.append(f"--keyring={KEYRINGS[distro]}")
        argv += [suite, rootfs_dir, url]
        self.mirror = url
        same_as = src.get("same_as")
        if same_as:
            script = os.path.join(SCRIPTS, same_as)
            if not os.path.exists(script):
                raise SourceError(f'source.same_as: debootstrap has no script "{same_as}" ({SCRIPTS})')
            argv.append(script)
        return argv

    def run(self, rootfs_dir: str) -> None:
        if shutil.which("debootstrap") is None:
            raise SourceError("debootstrap is not installed (apt-get install debootstrap)")
        if self.source.get("keys"):
            print(f"corral-builder: source.keys are not fetched (no keyserver reachable); debootstrap checks "
                  f"the Release file against {KEYRINGS.get(self.image.get('distribution', '').lower(), 'its keyring')}",
                  file=sys.stderr)
        argv = self.argv(rootfs_dir)
        self.source["url"] = self.mirror     # the mirror used, for the templates of later steps
        from corral.builder.packages import cache_lock
        with cache_lock(next(a.split("=", 1)[1] for a in argv if a.startswith("--cache-dir="))):
            # debootstrap mounts /proc and /sys in the target: in a private mount namespace of its
            # own, they go away with it even when it fails or is killed.
            proc = subprocess.run(["unshare", "--mount", "--propagation", "private", *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
        if proc.returncode != 0:
            tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
            log = os.path.join(rootfs_dir, "debootstrap", "debootstrap.log")
            if os.path.exists(log):
                with open(log, errors="replace") as f:
                    tail += "\n" + "\n".join(f.read().strip().splitlines()[-15:])
            raise SourceError(f"debootstrap failed (exit status {proc.returncode}, mirror {self.mirror}):\n{tail}")
        # debootstrap copies the build host's hostname and resolver; the image must not carry them.
        with open(os.path.join(rootfs_dir, "etc/hostname"), "w") as f:
            f.write("distrobuilder\n")
        resolv = os.path.join(rootfs_dir, "etc/resolv.conf")
        if os.path.isfile(resolv) and not os.path.islink(resolv):
            open(resolv, "w").close()
        hosts = os.path.join(rootfs_dir, "etc/hosts")
        if not os.path.exists(hosts):
            with open(hosts, "w") as f:
                f.write("127.0.0.1\tlocalhost\n127.0.1.1\tdistrobuilder\n\n"
                        "::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
