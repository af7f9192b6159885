"""Fixtures of the builder's HTTP image sources: a test OpenPGP key, a local mirror of the
almalinux-http layout served on 127.0.0.1 (with an HKP keyserver endpoint), and the files it serves.

The AlmaLinux ISO is built in the real boot-ISO format the downloader reads: an ISO 9660 image (xorriso)
with `images/install.img`, a squashfs holding `LiveOS/rootfs.img`, an ext4 file system (or, with
layout="live", `LiveOS/squashfs.img` as live ISOs have). The root tree in it is busybox; its `dnf` is the
fixture's stand-in: a shell script that honours `--installroot`/`--releasever`/`install PKGS` by putting
busybox (every applet), itself, a stand-in `systemctl`, a PAM file and an os-release into the install
root, and records its arguments, the repositories configured and the RPM key it saw (under
/var/lib/fixture of the new root) for the tests to check (for release 99 it stays busy, for the test
that kills a build). In the new root the same `dnf` and `systemctl` record what the builder's packages
step and actions ask of them (dnf-log, installed, removed, systemctl-log), so a whole `build-dir` of
images/almalinux-9.yaml can run against the fixture. Real AlmaLinux packages are not reachable here.
"""
from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import subprocess
import tempfile
import threading
import urllib.parse

FAKE_DNF = r"""#!/bin/sh
# corral test fixture: a stand-in for dnf (see tests/sourcesfixture.py)
set -eu
root=""; rel=""; pkgs=""; cmd=""
for a in "$@"; do
    case "$a" in
        --installroot=*) root="${a#--installroot=}" ;;
        --releasever=*) rel="${a#--releasever=}" ;;
        -*) ;;
        *) if [ -z "$cmd" ]; then cmd="$a"; else pkgs="$pkgs $a"; fi ;;
    esac
done
if [ -z "$root" ]; then
    # dnf of the new system (the builder's packages step): record what it was asked
    mkdir -p /var/lib/fixture
    echo "$*" >> /var/lib/fixture/dnf-log
    case "$cmd" in
        install|reinstall) for p in $pkgs; do echo "$p" >> /var/lib/fixture/installed; done ;;
        remove|erase|autoremove) for p in $pkgs; do echo "$p" >> /var/lib/fixture/removed; done ;;
        update|upgrade|clean|makecache|check-update|distro-sync) ;;
        *) echo "dnf (fixture): unsupported command $cmd" >&2; exit 1 ;;
    esac
    exit 0
fi
[ "$cmd" = install ] || { echo "dnf (fixture): only install into --installroot" >&2; exit 1; }
if [ "$rel" = 99 ]; then    # the kill test's release: stay busy until killed
    touch /var/tmp/fixture-dnf-running
    sleep 600
fi
mkdir -p "$root/bin" "$root/usr/bin" "$root/etc/pam.d" "$root/var/lib/fixture" "$root/var/cache/dnf/junk" \
    "$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/root"
cp -a /bin/. "$root/bin/"
cp /usr/bin/dnf /usr/share/fixture/systemctl "$root/usr/bin/"
printf 'NAME="AlmaLinux"\nID="almalinux"\nVERSION_ID="%s"\n' "$rel" > "$root/etc/os-release"
printf 'auth required pam_env.so\nsession required pam_loginuid.so\n' > "$root/etc/pam.d/system-auth"
echo "$*" > "$root/var/lib/fixture/dnf-args"
echo $pkgs > "$root/var/lib/fixture/packages"
cat /etc/yum.repos.d/*.repo > "$root/var/lib/fixture/repos"
if [ -f /etc/pki/rpm-gpg/RPM-GPG-KEY-AlmaLinux ]; then
    cp /etc/pki/rpm-gpg/RPM-GPG-KEY-AlmaLinux "$root/var/lib/fixture/rpm-gpg-key"
fi
if [ -r /proc/self/status ] && [ -c /dev/null ]; then echo ok > "$root/var/lib/fixture/chroot-mounts"; fi
"""

FAKE_SYSTEMCTL = r"""#!/bin/sh
# corral test fixture: a stand-in for systemctl in the new root (records what the actions asked)
mkdir -p /var/lib/fixture
echo "$*" >> /var/lib/fixture/systemctl-log
"""


def _run(*argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, capture_output=True, **kw)


class SigningKey:
    """An OpenPGP signing key made for one test, in its own GNUPGHOME (close() stops gpg-agent)."""

    def __init__(self, name: str = "Corral Test Signing"):
        self.home = tempfile.mkdtemp(prefix="corral-testgpg.")
        os.chmod(self.home, 0o700)
        self._gpg("--passphrase", "", "--quick-gen-key", f"{name} <test@corral.invalid>", "ed25519", "sign", "never")
        out = self._gpg("--with-colons", "--list-keys").stdout.decode()
        self.fingerprint = next(ln.split(":")[9] for ln in out.splitlines() if ln.startswith("fpr:"))
        self.public = self._gpg("--armor", "--export", self.fingerprint).stdout.decode()

    def _gpg(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["gpg", "--batch", "--no-tty", "--homedir", self.home, *args], input=stdin,
                              check=True, capture_output=True)

    def clearsign(self, data: bytes) -> bytes:
        return self._gpg("--local-user", self.fingerprint, "--clearsign", stdin=data).stdout

    def detach_sign(self, data: bytes) -> bytes:
        return self._gpg("--local-user", self.fingerprint, "--armor", "--detach-sign", stdin=data).stdout

    def close(self) -> None:
        subprocess.run(["gpgconf", "--homedir", self.home, "--kill", "all"], capture_output=True)
        shutil.rmtree(self.home, ignore_errors=True)


# --------------------------------------------------------------------------- the AlmaLinux boot ISO

def install_tree(tree: str) -> None:
    """The root tree of the ISO's install image: busybox (every applet) and the stand-in dnf."""
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root", "var/tmp"):
        os.makedirs(os.path.join(tree, d), exist_ok=True)
    shutil.copy2("/bin/busybox", os.path.join(tree, "bin", "busybox"))
    applets = _run("/bin/busybox", "--list").stdout.decode().split()
    for app in applets:
        if app != "busybox" and not os.path.lexists(os.path.join(tree, "bin", app)):
            os.symlink("busybox", os.path.join(tree, "bin", app))
    os.makedirs(os.path.join(tree, "usr", "share", "fixture"))
    for path, text in (("usr/bin/dnf", FAKE_DNF), ("usr/share/fixture/systemctl", FAKE_SYSTEMCTL)):
        with open(os.path.join(tree, path), "w") as f:
            f.write(text)
        os.chmod(os.path.join(tree, path), 0o755)
    with open(os.path.join(tree, "etc", "os-release"), "w") as f:
        f.write('NAME="AlmaLinux install image (corral test fixture)"\nID="almalinux"\n')


def build_boot_iso(iso_path: str, layout: str = "install") -> None:
    """An ISO in the format of AlmaLinux's boot ISO (layout "install": images/install.img) or of a
    live ISO (layout "live": LiveOS/squashfs.img), holding an ext4 LiveOS/rootfs.img of install_tree()."""
    work = tempfile.mkdtemp(prefix="corral-isofix.")
    try:
        tree = os.path.join(work, "tree")
        install_tree(tree)
        sq = os.path.join(work, "sq", "LiveOS")
        os.makedirs(sq)
        img = os.path.join(sq, "rootfs.img")
        with open(img, "wb") as f:
            f.truncate(16 << 20)
        _run("mkfs.ext4", "-q", "-F", "-L", "Anaconda", "-d", tree, img)
        isodir = os.path.join(work, "iso")
        target = os.path.join(isodir, "images", "install.img") if layout == "install" \
            else os.path.join(isodir, "LiveOS", "squashfs.img")
        os.makedirs(os.path.dirname(target))
        _run("mksquashfs", os.path.join(work, "sq"), target, "-noappend", "-quiet", "-no-progress", "-all-root")
        with open(os.path.join(isodir, ".discinfo"), "w") as f:
            f.write("1700000000.000000\nAlmaLinux 9.4\nx86_64\n")
        _run("xorriso", "-as", "mkisofs", "-quiet", "-R", "-J", "-V", "AlmaLinux-9-4-x86_64-dvd",
             "-o", iso_path, isodir)
    finally:
        shutil.rmtree(work, ignore_errors=True)


_ISO_CACHE: dict[str, str] = {}


def boot_iso(layout: str = "install") -> str:
    """build_boot_iso() once per test run (the file is removed by remove_cached_isos())."""
    if layout not in _ISO_CACHE:
        d = tempfile.mkdtemp(prefix="corral-isocache.")
        path = os.path.join(d, f"boot-{layout}.iso")
        build_boot_iso(path, layout)
        _ISO_CACHE[layout] = path
    return _ISO_CACHE[layout]


def remove_cached_isos() -> None:
    for path in _ISO_CACHE.values():
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)
    _ISO_CACHE.clear()


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def checksum_text(entries: dict[str, tuple[str, int]]) -> bytes:
    """A CHECKSUM file as AlmaLinux publishes them ({name: (sha256, size)}), before signing."""
    lines = []
    for name, (digest, size) in entries.items():
        lines += [f"# {name}: {size} bytes", f"SHA256 ({name}) = {digest}"]
    return ("\n".join(lines) + "\n").encode()


def almalinux_mirror(root: str, key: SigningKey | None, iso: str, release: str = "9.4", arch: str = "x86_64",
                     major: str = "9", tamper: str | None = None) -> str:
    """Lay out ROOT/almalinux/MAJOR/isos/ARCH/ as the mirror has it: the boot ISO, an older ISO, the
    "latest" alias, and CHECKSUM, clearsigned by `key`. `tamper`: "iso" (the ISO differs from its
    checksum), "signature" (CHECKSUM edited after signing), None. Returns the URL path of the tree."""
    d = os.path.join(root, "almalinux", major, "isos", arch)
    os.makedirs(d, exist_ok=True)
    name = f"AlmaLinux-{release}-{arch}-boot.iso"
    shutil.copyfile(iso, os.path.join(d, name))
    digest = sha256(iso)
    older = f"AlmaLinux-{major}.0-{arch}-boot.iso"
    with open(os.path.join(d, older), "wb") as f:
        f.write(b"an older release, never chosen\n")
    shutil.copyfile(iso, os.path.join(d, f"AlmaLinux-{major}-latest-{arch}-boot.iso"))
    text = checksum_text({older: (sha256(os.path.join(d, older)), 31), name: (digest, os.path.getsize(iso))})
    signed = key.clearsign(text) if key else text
    if tamper == "signature":   # the signed text edited afterwards: its signature no longer verifies
        signed = signed.replace(digest.encode(), b"0" * 64)
    if tamper == "iso":
        with open(os.path.join(d, name), "r+b") as f:
            f.seek(40000)
            f.write(b"tampered")
    with open(os.path.join(d, "CHECKSUM"), "wb") as f:
        f.write(signed)
    return "/almalinux"


# --------------------------------------------------------------------------- the server

class MirrorServer:
    """http.server on 127.0.0.1 serving `root` (directory listings as any mirror's index pages, Range
    requests honoured), and an HKP keyserver lookup (/pks/lookup?op=get&search=0xFPR) for `keys`."""

    def __init__(self, root: str, keys: list[SigningKey] | None = None, hkp_sends_all: bool = False):
        self.root = root
        self.keys = keys or []
        self.hkp_sends_all = hkp_sends_all    # a keyserver answering with more keys than asked for
        self.requests: list[str] = []
        self.ranges: list[tuple[str, str]] = []     # (path, Range header) of the ranged requests
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=server.root, **kw)

            def log_message(self, *a):
                pass

            def do_GET(self):
                server.requests.append(self.path)
                if self.path.startswith("/pks/lookup"):
                    return self._hkp()
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    server.ranges.append((self.path, rng))
                    return self._range(rng)
                return super().do_GET()

            def _hkp(self):
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                want = (q.get("search") or [""])[0].upper().removeprefix("0X")
                for k in server.keys:
                    if want and k.fingerprint.endswith(want):
                        body = "\n".join(x.public for x in server.keys).encode() if server.hkp_sends_all \
                            else k.public.encode()
                        self.send_response(200)
                        self.send_header("Content-Type", "application/pgp-keys")
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                        return
                self.send_error(404)

            def _range(self, rng: str):
                path = self.translate_path(self.path)
                if not os.path.isfile(path):
                    return super().do_GET()
                size = os.path.getsize(path)
                start = int(rng[6:].split("-")[0] or 0)
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
                self.send_header("Content-Length", str(size - start))
                self.end_headers()
                with open(path, "rb") as f:
                    f.seek(start)
                    shutil.copyfileobj(f, self.wfile)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class AlmaLinuxFixture:
    """Everything a test of the whole build needs, made and served at once (close() undoes it all):
    a signing key, a mirror of the almalinux-http layout with the boot ISO, and its server with the
    HKP endpoint. `overrides` are the `-o` arguments pointing images/almalinux-9.yaml at it."""

    def __init__(self, layout: str = "install"):
        self.dir = tempfile.mkdtemp(prefix="corral-almamirror.")
        self.key = SigningKey("AlmaLinux fixture")
        try:
            almalinux_mirror(self.dir, self.key, boot_iso(layout))
            self.server = MirrorServer(self.dir, keys=[self.key])
        except BaseException:
            self.key.close()
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        self.url = self.server.url + "/almalinux"
        self.keyserver = f"hkp://127.0.0.1:{self.server.port}"
        self.fingerprint = self.key.fingerprint
        self.overrides = [f"source.url={self.url}", f"source.keyserver={self.keyserver}",
                          f"source.keys={self.fingerprint}"]

    def close(self) -> None:
        self.server.close()
        self.key.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "AlmaLinuxFixture":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
