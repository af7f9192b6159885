"""Timestamps in LXD's RFC 3339 form with nanoseconds ("2026-11-21T13:03:34.509756076Z")."""
import time
from datetime import datetime, timedelta, timezone


def now() -> str:
    ns = time.time_ns()
    sec, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:09d}Z"


ZERO = "0001-01-01T00:00:00Z"
EPOCH = "1970-01-01T00:00:00Z"   # LXD's last_used_at of an instance never started


def after(seconds: int) -> str:
    """The RFC 3339 time `seconds` from now (snapshot and backup expiry)."""
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(ts: str) -> datetime:
    """Parse an RFC 3339 timestamp (nanoseconds are truncated to microseconds)."""
    ts = ts.strip()
    if ts.endswith("Z"):
        ts = ts[:-1] + "+00:00"
    if "." in ts:
        head, rest = ts.split(".", 1)
        digits = "".join(c for c in rest if c.isdigit())
        tz = rest[len(digits):]
        ts = f"{head}.{digits[:6]:0<6}{tz}"
    dt = datetime.fromisoformat(ts)
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
