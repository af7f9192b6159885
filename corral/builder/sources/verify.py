"""Checksums and OpenPGP signatures of downloaded files, for the image sources.

Keys come from a definition's `source.keys`: ASCII-armoured public key blocks are imported as they are,
anything else is a key id or fingerprint received from `source.keyserver` over HKP (as distrobuilder has
gpg do). Every check runs in a throwaway GNUPGHOME (gpg never starts its agent or dirmngr there; removed
when the Keyring closes) with `gpgv` against a keyring holding exactly those keys: the user's own
keyrings are never consulted.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile

from corral.builder.sources import SourceError

DEFAULT_KEYSERVER = "hkps://keyserver.ubuntu.com"
GPG_TIMEOUT = 60
_ARMOR = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
_CLEARSIGNED = b"-----BEGIN PGP SIGNED MESSAGE-----"


class VerificationError(SourceError):
    """A checksum or signature did not match (the download is refused)."""


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def is_clearsigned(data: bytes) -> bool:
    return data.lstrip().startswith(_CLEARSIGNED)


# --------------------------------------------------------------------------- checksum files

_BSD = re.compile(r"^(?P<algo>[A-Za-z0-9-]+) \((?P<name>.+)\) = (?P<hex>[0-9a-fA-F]+)$")
_GNU = re.compile(r"^(?P<hex>[0-9a-fA-F]{32,128}) [ *]?(?P<name>.+)$")
_ALGO_BY_LEN = {32: "MD5", 40: "SHA1", 64: "SHA256", 96: "SHA384", 128: "SHA512"}


def parse_checksums(text: str) -> dict[str, dict[str, str]]:
    """{file name: {algorithm: hex digest}} from a checksum file in either format mirrors use:
    BSD (`SHA256 (name) = hex`, as AlmaLinux's and Fedora's CHECKSUM) or GNU (`hex  name`, sha256sum's)."""
    out: dict[str, dict[str, str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _BSD.match(line)
        if m:
            algo = m["algo"].upper().replace("-", "")
        else:
            m = _GNU.match(line)
            if not m:
                continue
            algo = _ALGO_BY_LEN.get(len(m["hex"]))
            if algo is None:
                continue
        name = os.path.basename(m["name"].strip().lstrip("*"))
        out.setdefault(name, {})[algo] = m["hex"].lower()
    return out


def sha256_for(checksums: dict[str, dict[str, str]], name: str, where: str) -> str:
    """The SHA256 of `name` in a parsed checksum file; a clear error when it is not listed."""
    entry = checksums.get(name)
    if not entry:
        raise VerificationError(f"{name} is not listed in {where}")
    if "SHA256" not in entry:
        raise VerificationError(f"{where} has no SHA256 checksum for {name} (only {', '.join(sorted(entry))})")
    return entry["SHA256"]


def check_sha256(path: str, expected: str, what: str) -> None:
    got = sha256_file(path)
    if got != expected.lower():
        raise VerificationError(f"Checksum mismatch for {what}: expected sha256 {expected.lower()}, got {got}")


# --------------------------------------------------------------------------- keys and signatures

def _key_id(k: str) -> str:
    kid = k.strip().replace(" ", "").upper()
    return kid[2:] if kid.startswith("0X") else kid


class Keyring:
    """The keys of `source.keys` in a throwaway GNUPGHOME. Use as a context manager."""

    def __init__(self, keys: list[str], keyserver: str | None = None, parent: str | None = None):
        if not keys:
            raise SourceError("No GPG keys given (source.keys) to verify the signature with")
        self.keys = [k for k in keys if k and k.strip()]
        self.keyserver = keyserver or DEFAULT_KEYSERVER
        self.home: str | None = None
        self.keyring: str | None = None
        self.parent = parent

    def __enter__(self) -> "Keyring":
        # in the caller's scratch directory when it has one (cleared even if the build is killed)
        self.home = tempfile.mkdtemp(prefix="corral-gpg.", dir=self.parent)
        os.chmod(self.home, 0o700)
        try:
            self._load()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.home and os.path.isdir(self.home):
            subprocess.run(["gpgconf", "--homedir", self.home, "--kill", "all"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=GPG_TIMEOUT)
            shutil.rmtree(self.home, ignore_errors=True)
        self.home = None

    def _gpg(self, *args: str, stdin: bytes | None = None, timeout: float = GPG_TIMEOUT) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(["gpg", "--batch", "--no-tty", "--no-autostart", "--homedir", self.home, *args],
                                  input=stdin,
                                  capture_output=True, timeout=timeout, env={**os.environ, "LANG": "C.UTF-8"})
        except FileNotFoundError:
            raise SourceError("gpg is not installed (Debian package gnupg)") from None
        except subprocess.TimeoutExpired:
            raise SourceError(f"gpg {args[0]} did not finish within {timeout:.0f}s") from None

    def _load(self) -> None:
        armored = [k.strip() for k in self.keys if k.strip().startswith(_ARMOR)]
        ids = [_key_id(k) for k in self.keys if not k.strip().startswith(_ARMOR)]
        trusted: set[str] = set()
        for block in armored:
            trusted |= self._import(block.encode(), "source.keys")
        for kid in ids:
            if not re.fullmatch(r"[0-9A-F]{8,40}", kid):
                raise SourceError(f'Invalid GPG key in source.keys: "{kid}" is neither a key block nor a fingerprint')
        for kid in ids:
            got = self._import(self._receive(kid), f"keyserver {self.keyserver}")
            match = {f for f in got if f.endswith(kid)}
            if not match:
                raise SourceError(f"Failed to receive GPG keys {kid} from keyserver {self.keyserver}: "
                                  "it returned other keys")
            trusted |= match
        # only the keys asked for: whatever else a keyserver sent along is not trusted
        self.keyring = os.path.join(self.home, "trusted.gpg")
        r = self._gpg("--export", "--output", self.keyring, *sorted(trusted))
        if r.returncode != 0 or not os.path.exists(self.keyring) or not os.path.getsize(self.keyring):
            raise SourceError(f"Failed to export the GPG keyring: {_last(r.stderr) or 'no keys'}")

    def _import(self, data: bytes, where: str) -> set[str]:
        """Import key blocks; the fingerprints (primary keys and subkeys) they added."""
        before = set(self.fingerprints())
        r = self._gpg("--import", stdin=data)
        added = set(self.fingerprints()) - before
        if r.returncode != 0 and not added:
            raise SourceError(f"Invalid GPG key from {where}: {_last(r.stderr)}")
        return added

    def _receive(self, kid: str) -> bytes:
        """The key block of `kid` from the HKP keyserver (fetched here, with the downloads' timeouts and
        error texts, rather than by a dirmngr daemon)."""
        from corral.builder.sources.fetch import FetchError, NotFound, get_document
        url = f"{_hkp_base(self.keyserver)}/pks/lookup?op=get&options=mr&search=0x{kid}"
        try:
            return get_document(url, limit=4 << 20)
        except NotFound:
            raise SourceError(f"Failed to receive GPG keys {kid} from keyserver {self.keyserver}: not found") from None
        except FetchError as e:
            raise SourceError(f"Failed to receive GPG keys {kid} from keyserver {self.keyserver}: {e}") from None

    def fingerprints(self) -> list[str]:
        r = self._gpg("--with-colons", "--list-keys")
        return [line.split(":")[9] for line in r.stdout.decode(errors="replace").splitlines()
                if line.startswith("fpr:")]

    def export_armored(self) -> bytes:
        return self._gpg("--armor", "--export").stdout

    def _gpgv(self, *args: str, what: str) -> None:
        try:
            r = subprocess.run(["gpgv", "--homedir", self.home, "--keyring", self.keyring, "--status-fd", "1", *args],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=GPG_TIMEOUT,
                               env={**os.environ, "LANG": "C.UTF-8"})
        except FileNotFoundError:
            raise SourceError("gpgv is not installed (Debian package gpgv)") from None
        status = r.stdout.decode(errors="replace")
        if r.returncode != 0 or "[GNUPG:] VALIDSIG " not in status or "[GNUPG:] BADSIG " in status:
            if "[GNUPG:] BADSIG " in status:
                why = "BAD signature (the file was modified after it was signed)"
            elif "[GNUPG:] NO_PUBKEY " in status or "[GNUPG:] ERRSIG " in status:
                why = "signed by a key that is not in source.keys"
            elif "[GNUPG:] NODATA " in status:
                why = "no signature found"
            else:
                why = _last(r.stderr) or "verification failed"
            raise VerificationError(f"Invalid signature for {what}: {why}")

    def clearsigned_text(self, path: str, what: str) -> bytes:
        """The signed content of a clearsigned file (only what the signature covers), once it verified."""
        out = path + ".verified"
        try:
            self._gpgv("--output", out, path, what=what)
            with open(out, "rb") as f:
                return f.read()
        finally:
            if os.path.exists(out):
                os.unlink(out)

    def verify_detached(self, data_path: str, sig_path: str, what: str) -> None:
        self._gpgv(sig_path, data_path, what=what)


def _hkp_base(keyserver: str) -> str:
    """hkps://HOST -> https://HOST, hkp://HOST[:PORT] -> http://HOST:PORT (11371 by default); a bare
    host name is taken as hkps; http(s):// URLs are used as they are."""
    ks = keyserver.strip().rstrip("/")
    if ks.startswith(("http://", "https://")):
        return ks
    if ks.startswith("hkps://"):
        return "https://" + ks[len("hkps://"):]
    if ks.startswith("hkp://"):
        host = ks[len("hkp://"):]
        return "http://" + (host if re.search(r":\d+$", host) else host + ":11371")
    return "https://" + ks


def _last(stderr: bytes) -> str:
    lines = [ln for ln in stderr.decode(errors="replace").strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""
