"""raw.idmap: host ids mapped into an unprivileged container, as LXD's AddSafe does it.

Each line is "uid|gid|both HOST[-END] NS[-END]" (one id or equal-length ranges). The container's id
map (volatile.idmap.next) is cut where the raw entries' container ids fall and the raw entries are
added: container id NS is host id HOST, everything else keeps its place.
"""
from __future__ import annotations

from corral.errors import BadRequest
from corral.idmap import SUBGID, SUBUID, IdmapEntry, read_subids


def _range(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition("-")
    if not lo.isdigit() or (hi and not hi.isdigit()):
        raise ValueError
    first, last = int(lo), int(hi or lo)
    if last < first or last >= 2**32:
        raise ValueError
    return first, last - first + 1


def parse(value: str) -> list[IdmapEntry]:
    out = []
    for n, line in enumerate(value.splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        try:
            if len(parts) != 3 or parts[0] not in ("uid", "gid", "both"):
                raise ValueError
            (host, hn), (ns, nn) = _range(parts[1]), _range(parts[2])
        except ValueError:
            raise ValueError(f'Invalid raw.idmap line {n}: "{line.strip()}" (expected "uid|gid|both HOST NS", '
                             'each an id or a range FIRST-LAST)') from None
        if hn != nn:
            raise ValueError(f'Invalid raw.idmap line {n}: the host and container ranges differ in length')
        out.append(IdmapEntry(parts[0] in ("uid", "both"), parts[0] in ("gid", "both"), host, ns, hn))
    return out


def parse_raw_idmap(value: str) -> str:
    parse(value)
    return value


def _cut(e: IdmapEntry, ns: int, count: int) -> list[IdmapEntry]:
    """`e` without the container ids [ns, ns+count)."""
    lo, hi = e.nsid, e.nsid + e.maprange
    a, b = max(lo, ns), min(hi, ns + count)
    if a >= b:
        return [e]
    out = []
    if lo < a:
        out.append(IdmapEntry(e.isuid, e.isgid, e.hostid, lo, a - lo))
    if b < hi:
        out.append(IdmapEntry(e.isuid, e.isgid, e.hostid + (b - lo), b, hi - b))
    return out


def _delegated(raw: IdmapEntry, subuid: str, subgid: str) -> None:
    """liblxc maps ids through newuidmap/newgidmap: only root's subordinate ids can be mapped."""
    for is_kind, path, kind in ((raw.isuid, subuid, "uid"), (raw.isgid, subgid, "gid")):
        if is_kind and not any(s <= raw.hostid and raw.hostid + raw.maprange <= s + n for s, n in read_subids(path)):
            last = raw.hostid + raw.maprange - 1
            ids = str(raw.hostid) if raw.maprange == 1 else f"{raw.hostid}-{last}"
            raise BadRequest(f'raw.idmap: host {kind} {ids} is not among root\'s subordinate ids ({path}); '
                             f'add "root:{raw.hostid}:{raw.maprange}" there to map it')


def apply(base: list[IdmapEntry], value: str, subuid: str = SUBUID, subgid: str = SUBGID) -> list[IdmapEntry]:
    """The container's map with the raw.idmap entries in it."""
    for raw in parse(value or ""):
        _delegated(raw, subuid, subgid)
    entries = [IdmapEntry(True, False, e.hostid, e.nsid, e.maprange) for e in base if e.isuid] + \
              [IdmapEntry(False, True, e.hostid, e.nsid, e.maprange) for e in base if e.isgid]
    for raw in parse(value or ""):
        for kind_uid in ((True,) if raw.isuid else ()) + ((False,) if raw.isgid else ()):
            kept = []
            for e in entries:
                same = e.isuid if kind_uid else e.isgid
                kept += _cut(e, raw.nsid, raw.maprange) if same else [e]
            entries = kept + [IdmapEntry(kind_uid, not kind_uid, raw.hostid, raw.nsid, raw.maprange)]
    return sorted(entries, key=lambda e: (not e.isuid, e.nsid))
