"""Downloads for the image sources: small documents read into memory (directory listings, checksum
files) and files downloaded into the build cache.

Cached files live in `CACHE/downloads/KEY/NAME`, KEY a hash of the URL and the expected SHA256: a file is
reused only when its checksum is known and still matches. A download goes to `NAME.part` first (resumed with
a Range request when a checksum will vouch for the whole), is checked, then renamed: a file under its final
name is always complete and verified. A checksum mismatch removes the download. Progress goes to stderr.
Connections time out after CONNECT_TIMEOUT seconds (also a stalled transfer), so an unreachable mirror
fails quickly with the reason.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import shutil
import socket
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from corral.builder.sources import SourceError
from corral.builder.sources.verify import VerificationError, check_sha256

CONNECT_TIMEOUT = float(os.environ.get("CORRAL_BUILDER_TIMEOUT", "20"))
USER_AGENT = "corral-builder"
MAX_DOCUMENT = 16 << 20
CHUNK = 1 << 20


class FetchError(SourceError):
    """A download failed (network, HTTP status); the text names the URL and the reason."""


class NotFound(FetchError):
    pass


def _reason(url: str, e: BaseException) -> str:
    host = urllib.parse.urlsplit(url).hostname or url
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        e = e.reason if isinstance(e.reason, BaseException) else e
    if isinstance(e, socket.gaierror):
        return f'cannot resolve host "{host}" (no DNS or network: {e.strerror or e})'
    if isinstance(e, (socket.timeout, TimeoutError)):
        return f"connection to {host} timed out after {CONNECT_TIMEOUT:.0f}s (network unreachable?)"
    if isinstance(e, ConnectionRefusedError):
        return f"connection to {host} refused"
    if isinstance(e, ssl.SSLError):
        return f"TLS error with {host}: {e.reason or e}"
    if isinstance(e, OSError) and e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return f"network unreachable ({host}: {e.strerror})"
    if isinstance(e, OSError) and e.strerror:
        return f"{host}: {e.strerror}"
    return str(e) or type(e).__name__


def _open(url: str, headers: dict | None = None):
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https", "file"):
        raise FetchError(f'Failed to download "{url}": unsupported URL scheme "{scheme}"')
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
    try:
        return urllib.request.urlopen(req, timeout=CONNECT_TIMEOUT)
    except urllib.error.HTTPError as e:
        e.close()
        err = (NotFound if e.code == 404 else FetchError)(f'Failed to download "{url}": {_reason(url, e)}')
        err.code = e.code
        raise err from None
    except (urllib.error.URLError, OSError) as e:
        raise FetchError(f'Failed to download "{url}": {_reason(url, e)}') from None


def get_document(url: str, limit: int = MAX_DOCUMENT) -> bytes:
    """The body of a small document (a directory listing, a checksum file), read into memory."""
    with _open(url) as resp:
        try:
            data = resp.read(limit + 1)
        except (OSError, ValueError) as e:
            raise FetchError(f'Failed to download "{url}": {_reason(url, e)}') from None
    if len(data) > limit:
        raise FetchError(f'Failed to download "{url}": larger than {limit >> 20} MiB')
    return data


def strip_fragment(url: str) -> str:
    return urllib.parse.urldefrag(url)[0]


def cache_path(cache_dir: str, url: str, sha256: str | None, name: str | None = None) -> str:
    key = hashlib.sha256(f"{url}\n{(sha256 or '').lower()}".encode()).hexdigest()[:24]
    name = name or os.path.basename(urllib.parse.urlsplit(url).path) or "download"
    return os.path.join(cache_dir, "downloads", key, name)


class _Progress:
    def __init__(self, name: str, total: int | None, start: int):
        self.name, self.total, self.done = name, total, start
        self.tty = sys.stderr.isatty()
        self.last = 0.0
        self.last_pct = -1

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.tty:
            if now - self.last >= 0.25:
                self.last = now
                sys.stderr.write(f"\r{self._text()}\033[K")
                sys.stderr.flush()
        elif self.total:
            pct = self.done * 100 // self.total // 25 * 25
            if pct > self.last_pct:
                self.last_pct = pct
                print(self._text(), file=sys.stderr, flush=True)

    def _text(self) -> str:
        mib = self.done / (1 << 20)
        if self.total:
            return f"Downloading {self.name}: {mib:.1f} / {self.total / (1 << 20):.1f} MiB ({self.done * 100 // self.total}%)"
        return f"Downloading {self.name}: {mib:.1f} MiB"

    def end(self) -> None:
        if self.tty:
            sys.stderr.write(f"\r{self._text()}\033[K\n")
        elif not self.total:
            print(self._text(), file=sys.stderr)
        sys.stderr.flush()


def download(url: str, cache_dir: str, sha256: str | None = None, name: str | None = None,
             what: str | None = None) -> str:
    """Download `url` into the cache and return its path. With `sha256`, a cached copy that still matches
    is reused, an interrupted download is resumed, and a mismatch is refused (VerificationError) with
    nothing kept. Without it the file is downloaded anew every time."""
    final = cache_path(cache_dir, url, sha256, name)
    d = os.path.dirname(final)
    os.makedirs(d, exist_ok=True)
    what = what or os.path.basename(final)
    with open(os.path.join(d, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if sha256 and os.path.isfile(final):
                try:
                    check_sha256(final, sha256, what)
                    print(f"Using cached {what}", file=sys.stderr)
                    return final
                except VerificationError:
                    os.unlink(final)
            elif os.path.lexists(final):
                os.unlink(final)
            part = final + ".part"
            try:
                _transfer(url, part, resume=bool(sha256), name=what)
                if sha256:
                    check_sha256(part, sha256, what)
            except VerificationError:
                _unlink(part)
                raise
            except BaseException:
                if not sha256:   # nothing would vouch for a resumed copy
                    _unlink(part)
                raise
            os.replace(part, final)
            return final
        finally:
            if not os.path.exists(final) and not os.path.exists(final + ".part"):
                _unlink(lock.name)
                shutil.rmtree(d, ignore_errors=True)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _transfer(url: str, part: str, resume: bool, name: str) -> None:
    have = os.path.getsize(part) if resume and os.path.isfile(part) else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        resp = _open(url, headers)
    except FetchError as e:
        if have and getattr(e, "code", None) == 416:   # the part is already whole (or stale): start over
            os.unlink(part)
            return _transfer(url, part, False, name)
        raise
    with resp:
        status = getattr(resp, "status", 200)
        if have and status != 206:
            have = 0      # the server ignored the range: the body is the whole file
        length = resp.headers.get("Content-Length")
        total = int(length) + have if length and length.isdigit() else None
        progress = _Progress(name, total, have)
        mode = "ab" if have else "wb"
        with open(part, mode) as out:
            try:
                while chunk := resp.read(CHUNK):
                    out.write(chunk)
                    progress.update(len(chunk))
            except (OSError, ValueError) as e:
                raise FetchError(f'Failed to download "{url}": {_reason(url, e)} '
                                 f"after {progress.done} bytes") from None
            finally:
                progress.end()
        size = os.path.getsize(part)
        if total is not None and size != total:
            raise FetchError(f'Failed to download "{url}": truncated ({size} of {total} bytes)')
