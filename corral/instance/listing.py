"""Instance listings (`recursion=1`, filters) without a driver round trip per instance.

The statuses of all listed instances are read at once (`InstanceDriver.statuses`). An instance with
an operation in progress (its lock held: starting, stopping, freezing) is asked on its own, so a
transitional state reads exactly as a single GET would show it.
"""
from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


def _by_driver(insts, loaded: list, names: list[str]) -> list[tuple[object, list[str]]]:
    """The driver of each instance type among `loaded`, with the driver names of its instances."""
    groups: dict[int, tuple[object, list[str]]] = {}
    for inst, dname in zip(loaded, names):
        drv = insts.instance(inst).driver
        groups.setdefault(id(drv), (drv, []))[1].append(dname)
    return list(groups.values())


def statuses(insts, loaded: list) -> list[str]:
    names = [insts.driver_name(i.project, i.name) for i in loaded]
    known: dict[str, str] = {}
    for drv, group in _by_driver(insts, loaded, names):
        try:
            known.update(drv.statuses(group))
        except Exception:  # noqa: BLE001 - each one on its own then ("Error" where that fails too)
            log.exception("reading instance statuses")
    out = []
    for inst, dname in zip(loaded, names):
        if dname not in known or insts.lock(inst.project, inst.name).locked():
            out.append(insts.status(inst))
        else:
            out.append(known[dname])
    return out


def render_many(insts, loaded: list) -> list[dict]:
    """What `recursion=1` lists: each instance's record with its status."""
    return [insts.render(i, s) for i, s in zip(loaded, statuses(insts, loaded))]


def _stopped(st: dict) -> dict:
    if st.get("status") == "Stopped":
        st.update({"network": None, "pid": 0, "processes": 0})
    return st


async def render_all(insts, loaded: list) -> list[dict]:
    """`recursion=2` listings: every state read in one worker thread in one go (the driver reads
    the statuses at once), every snapshot fetched with one query."""
    snaps = await insts.snapshots_of_all()
    names = [insts.driver_name(i.project, i.name) for i in loaded]
    busy = {n for i, n in zip(loaded, names) if insts.lock(i.project, i.name).locked()}

    objs = {n: insts.instance(i) for i, n in zip(loaded, names)}
    containers = [(i, n) for i, n in zip(loaded, names) if objs[n].type_name != "virtual-machine"]

    def read() -> list[dict]:
        known: dict[str, dict] = {}
        for drv, group in _by_driver(insts, [i for i, _ in containers], [n for _, n in containers]):
            try:
                known.update(drv.states([n for n in group if n not in busy]))
            except Exception:  # noqa: BLE001 - each one on its own then
                log.exception("reading instance states")
        return [_stopped(known[n] if n in known else objs[n].state_blocking()) for n in names]

    out = []
    for inst, st in zip(loaded, await asyncio.to_thread(read)):
        full = insts.render(inst, st.get("status"))
        full["state"] = st
        full["snapshots"] = [insts.render_snapshot(inst, s) for s in snaps.get(inst.rec["id"], [])] or None
        full["backups"] = None
        out.append(full)
    return out
