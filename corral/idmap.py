"""Root's subordinate id ranges (/etc/subuid, /etc/subgid) and the idmap built from them.

An unprivileged container maps its ids 0..N-1 to host ids base..base+N-1, like LXD does.
Entries serialise to LXD's volatile.idmap.* JSON shape (Isuid/Isgid/Hostid/Nsid/Maprange).
"""
from __future__ import annotations

import os
import pwd
from dataclasses import dataclass

SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"
DEFAULT_BASE = 1000000
DEFAULT_RANGE = 1000000000


class IdmapError(Exception):
    pass


@dataclass(frozen=True)
class IdmapEntry:
    isuid: bool
    isgid: bool
    hostid: int
    nsid: int
    maprange: int

    def to_lxc(self) -> list[str]:
        """The lxc.idmap values for this entry."""
        kinds = (["u"] if self.isuid else []) + (["g"] if self.isgid else [])
        return [f"{k} {self.nsid} {self.hostid} {self.maprange}" for k in kinds]

    def to_lxd(self) -> dict:
        return {"Isuid": self.isuid, "Isgid": self.isgid, "Hostid": self.hostid,
                "Nsid": self.nsid, "Maprange": self.maprange}

    @classmethod
    def from_lxd(cls, data: dict) -> "IdmapEntry":
        return cls(bool(data["Isuid"]), bool(data["Isgid"]), int(data["Hostid"]),
                   int(data["Nsid"]), int(data["Maprange"]))


def _user_names(user: str) -> set[str]:
    """A subid line may name the user or give its numeric uid."""
    names = {user}
    try:
        names.add(str(pwd.getpwnam(user).pw_uid))
    except KeyError:
        pass
    return names


def parse_subids(text: str, user: str = "root") -> list[tuple[int, int]]:
    """The (start, count) ranges of `user` in subuid/subgid file text, in file order."""
    names = _user_names(user)
    ranges = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) != 3 or fields[0] not in names:
            continue
        try:
            start, count = int(fields[1]), int(fields[2])
        except ValueError:
            continue
        if start >= 0 and count > 0:
            ranges.append((start, count))
    return ranges


def read_subids(path: str, user: str = "root") -> list[tuple[int, int]]:
    try:
        with open(path) as f:
            return parse_subids(f.read(), user)
    except FileNotFoundError:
        return []


def default_idmap(subuid: str = SUBUID, subgid: str = SUBGID) -> list[IdmapEntry]:
    """Map container ids 0.. onto root's first subuid and subgid ranges."""
    uids, gids = read_subids(subuid), read_subids(subgid)
    if not uids or not gids:
        raise IdmapError(f"root has no subordinate id range in {subuid if not uids else subgid}")
    (ubase, ucount), (gbase, gcount) = uids[0], gids[0]
    return [IdmapEntry(True, False, ubase, 0, ucount), IdmapEntry(False, True, gbase, 0, gcount)]


def ensure_subids(subuid: str = SUBUID, subgid: str = SUBGID,
                  base: int = DEFAULT_BASE, count: int = DEFAULT_RANGE) -> None:
    """Give root a `root:base:count` range in each file that has none for it (idempotent)."""
    for path in (subuid, subgid):
        if read_subids(path):
            continue
        text = ""
        if os.path.exists(path):
            with open(path) as f:
                text = f.read()
        with open(path, "a") as f:
            if text and not text.endswith("\n"):
                f.write("\n")
            f.write(f"root:{base}:{count}\n")
