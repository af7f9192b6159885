"""The `packages` section, run in the build chroot: repositories, refresh, upgrade (`update: true`,
then the post-update actions), the install/remove sets (consecutive sets with the same action and flags
in one command, as distrobuilder does), and cleanup. apt, dnf and yum are implemented (distrobuilder's
commands and flags for each); the other managers distrobuilder knows and `custom_manager` are refused by
name.

Downloaded .debs are kept between builds: the cache directory is bind-mounted on the chroot's
/var/cache/apt/archives while packages install (and unmounted before `apt-get clean`)."""
from __future__ import annotations

import contextlib
import fcntl
import os
import re

from corral.builder import chroot
from corral.builder.definition import filtered
from corral.errors import NotImplementedFeature

APT_ARCHIVES = "var/cache/apt/archives"


@contextlib.contextmanager
def cache_lock(directory: str):
    """One build at a time uses a cache directory (apt and debootstrap lock theirs and fail at once)."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, ".corral-builder.lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


class Apt:
    def __init__(self, rootfs: str, env: dict[str, str], cache_dir: str, log=None):
        self.rootfs, self.env, self.log = rootfs, env, log
        self.cache = cache_dir
        os.makedirs(os.path.join(cache_dir, "partial"), exist_ok=True)

    def _apt(self, *args: str, cached: bool = True) -> None:
        binds = [(self.cache, "/" + APT_ARCHIVES)] if cached else []
        with cache_lock(self.cache) if cached else contextlib.nullcontext():
            chroot.run(self.rootfs, ["apt-get", "-y", "-q", *args], self.env, binds=binds, log=self.log,
                       what=f"apt-get {args[0]}")

    def refresh(self) -> None:
        self._apt("update", cached=False)

    def upgrade(self) -> None:
        self._apt("dist-upgrade")

    def install(self, pkgs: list[str], flags: list[str]) -> None:
        self._apt("install", *flags, *pkgs)

    def remove(self, pkgs: list[str], flags: list[str]) -> None:
        self._apt("remove", "--purge", *flags, *pkgs)

    def clean(self) -> None:
        self._apt("autoremove", "--purge", cached=False)
        self._apt("clean", cached=False)
        lists = os.path.join(self.rootfs, "var/lib/apt/lists")
        for name in os.listdir(lists) if os.path.isdir(lists) else ():
            path = os.path.join(lists, name)
            if os.path.isfile(path) and name != "lock":
                os.unlink(path)

    def add_repository(self, index: int, repo: dict) -> None:
        name = repo["name"]
        if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
            raise ValueError(f'packages.repositories[{index}].name: invalid value "{name}" (letters, digits, . _ -)')
        kind = repo.get("type") or ("deb822" if name.endswith(".sources") else "sources.list")
        url = repo.get("url", "")
        if kind == "deb822" or name.endswith(".sources"):
            path = os.path.join(self.rootfs, "etc/apt/sources.list.d", name if name.endswith(".sources") else name + ".sources")
        elif name == "sources.list":
            path = os.path.join(self.rootfs, "etc/apt/sources.list")
        else:
            path = os.path.join(self.rootfs, "etc/apt/sources.list.d", name if name.endswith(".list") else name + ".list")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(url if url.endswith("\n") else url + "\n")
        if repo.get("key"):
            keydir = os.path.join(self.rootfs, "etc/apt/trusted.gpg.d")
            os.makedirs(keydir, exist_ok=True)
            with open(os.path.join(keydir, f"{name.rsplit('.', 1)[0]}.asc"), "w") as f:
                f.write(repo["key"])


class Dnf:
    """dnf (and yum, the same verbs) as distrobuilder drives them: `-y` always, `makecache`, `upgrade`,
    `install`, `remove`, `clean all`; repositories are files in /etc/yum.repos.d."""
    def __init__(self, rootfs: str, env: dict[str, str], command: str = "dnf", log=None):
        self.rootfs, self.env, self.command, self.log = rootfs, env, command, log

    def _run(self, *args: str) -> None:
        chroot.run(self.rootfs, [self.command, "-y", *args], self.env, log=self.log,
                   what=f"{self.command} {args[0]}")

    def refresh(self) -> None:
        self._run("makecache")

    def upgrade(self) -> None:
        self._run("upgrade")

    def install(self, pkgs: list[str], flags: list[str]) -> None:
        self._run("install", *flags, *pkgs)

    def remove(self, pkgs: list[str], flags: list[str]) -> None:
        self._run("remove", *flags, *pkgs)

    def clean(self) -> None:
        self._run("clean", "all")

    def add_repository(self, index: int, repo: dict) -> None:
        name = repo["name"]
        if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
            raise ValueError(f'packages.repositories[{index}].name: invalid value "{name}" (letters, digits, . _ -)')
        path = os.path.join(self.rootfs, "etc/yum.repos.d", name if name.endswith(".repo") else name + ".repo")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        url = repo.get("url", "")
        with open(path, "w") as f:
            f.write(url if url.endswith("\n") else url + "\n")


def manager_for(definition: dict, rootfs: str, env: dict[str, str], cache_dir: str, log=None):
    pk = definition["packages"]
    if pk.get("custom_manager"):
        raise NotImplementedFeature("packages.custom_manager (corral-builder runs apt, dnf and yum)")
    name = pk.get("manager", "")
    if not name:
        return None
    if name in ("dnf", "yum"):
        return Dnf(rootfs, env, name, log)
    if name != "apt":
        raise NotImplementedFeature(f'packages.manager "{name}" (corral-builder runs apt, dnf and yum)')
    release = definition["image"]["release"] or "any"
    arch = definition["image"]["architecture_mapped"]
    return Apt(rootfs, env, os.path.join(cache_dir, "apt", f"{definition['image']['distribution']}-{release}-{arch}"),
               log)


def _groups(sets: list[dict]) -> list[tuple[str, list[str], list[str]]]:
    """Consecutive sets with the same action and flags, merged."""
    out: list[tuple[str, list[str], list[str]]] = []
    for s in sets:
        flags = list(s.get("flags", []))
        if out and out[-1][0] == s["action"] and out[-1][2] == flags:
            out[-1][1].extend(s.get("packages", []))
        else:
            out.append((s["action"], list(s.get("packages", [])), flags))
    return [g for g in out if g[1]]


def _apply(mgr, groups) -> None:
    for action, pkgs, flags in groups:
        (mgr.install if action == "install" else mgr.remove)(pkgs, flags)


def manage(definition: dict, rootfs: str, env: dict[str, str], cache_dir: str, run_actions, log=None) -> None:
    """The whole packages step; run_actions(trigger) runs the post-update actions after an upgrade
    (`update: true`), as distrobuilder does."""
    pk = definition["packages"]
    mgr = manager_for(definition, rootfs, env, cache_dir, log)
    if mgr is None:
        return
    sets = filtered(pk.get("sets", []), definition)
    repos = filtered(pk.get("repositories", []), definition)
    with chroot.NoServices(rootfs):
        early = [s for s in sets if s.get("early")]
        if early:
            mgr.refresh()
            _apply(mgr, _groups(early))
        for i, repo in enumerate(repos):
            mgr.add_repository(i, repo)
        mgr.refresh()
        if pk.get("update"):
            mgr.upgrade()
            run_actions("post-update")      # as distrobuilder: only after an upgrade
        _apply(mgr, _groups([s for s in sets if not s.get("early")]))
        if pk.get("cleanup"):
            mgr.clean()
