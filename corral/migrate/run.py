"""`corral migrate-from-lxd`: checks, then stop LXD, move its data, write Corral's database, start corrald
and the instances that were running; any failure after the first change rolls everything back to a
working LXD and says what was undone.

Test hook: CORRAL_MIGRATE_FAIL_AFTER=<step> makes the migration fail right after that step (one of
STEPS), to exercise the rollback. Nothing else reads it.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

from corral.db.queries import lxd_import as q
from corral.migrate import back, checks, datamove
from corral.migrate.api import ApiError
from corral.migrate.daemons import Corrald, Lxd
from corral.storage import lxd_takeover

FAIL_ENV = "CORRAL_MIGRATE_FAIL_AFTER"
STEPS = ("stop-instances", "dump", "stop-lxd", "unmount", "move", "rewrite", "database", "start-corrald",
         "start-instances", "local-config")


class InjectedFailure(RuntimeError):
    pass


class Migration:
    def __init__(self, lxd_dir: str, corral_dir: str, out=print):
        self.lxd_dir = os.path.abspath(lxd_dir)
        self.corral_dir = os.path.abspath(corral_dir)
        self.out = out
        self.lxd = Lxd(self.lxd_dir)
        self.corrald = Corrald(self.corral_dir)
        self.journal = datamove.Journal()
        self.times: dict[str, float] = {}

    # ---- checks --------------------------------------------------------------------------
    def inspect(self) -> checks.Plan:
        if not self.lxd.api.alive():
            plan = checks.Plan()
            plan.blockers.append(f"LXD does not answer on {self.lxd.api.socket}: start it first (the migration "
                                 "reads its database and stops its instances through it)")
            return plan
        self.server = self.lxd.api.get("/1.0")
        self.dump = q.load_dump(self.lxd.sql_dump("global"))
        self.states = self.lxd.statuses()
        self.group = self.lxd.group()
        return checks.check(self.server, self.dump, self.lxd_dir, self.corral_dir, self.states)

    # ---- the steps -------------------------------------------------------------------------
    def _step(self, name: str, fn) -> None:
        t = time.monotonic()
        self.out(f"=> {name}")
        fn()
        self.times[name] = time.monotonic() - t
        if os.environ.get(FAIL_ENV) == name:
            raise InjectedFailure(f"failure injected after step {name!r} ({FAIL_ENV})")

    def _stop_instances(self) -> None:
        running = self.plan.running

        def stop(pn):
            try:
                self.lxd.set_state(pn[0], pn[1], "stop", timeout=30)
            except ApiError:
                self.lxd.api.wait(self.lxd.api.request(
                    "PUT", f"/1.0/instances/{pn[1]}/state?project={pn[0]}", {"action": "stop", "force": True}))

        self.journal.add("stop LXD's running instances", self._restart_on_lxd)
        with ThreadPoolExecutor(max(1, min(8, len(running)))) as ex:
            list(ex.map(stop, running))

    def _restart_on_lxd(self) -> None:
        states = self.lxd.statuses()
        todo = [pn for pn in self.plan.running if states.get(pn) != "Running"]
        with ThreadPoolExecutor(max(1, min(8, len(todo)))) as ex:
            list(ex.map(lambda pn: self.lxd.set_state(pn[0], pn[1], "start"), todo))

    def _dump(self) -> None:
        # after the stops: volatile keys as they are on a stopped instance
        self.dump = q.load_dump(self.lxd.sql_dump("global"))
        self.local = q.load_dump(self.lxd.sql_dump("local"))

    def _stop_lxd(self) -> None:
        self.modes = lxd_takeover.record_modes(self.lxd_dir)
        logfile = os.path.join(self.lxd_dir, "logs", "lxd.log")
        self.journal.add("stop LXD", lambda: self.lxd.start(self.group, logfile))
        self.lxd.shutdown()

    def _unmount(self) -> None:
        done = datamove.unmount_all(self.lxd_dir)
        self.out(f"   unmounted {len(done)}: {', '.join(done) or '-'}")

    def _move(self) -> None:
        moved = self.moved = datamove.move_data(self.journal, self.lxd_dir, self.corral_dir)
        self.out(f"   moved: {', '.join(moved)}")

    def _rewrite(self) -> None:
        self.network_files = datamove.preserve_files(self.journal, os.path.join(self.corral_dir, "networks"))
        links = datamove.rewrite_links(self.journal, self.corral_dir, self.lxd_dir, self.corral_dir)
        files = datamove.rewrite_files(self.journal, self.corral_dir, self.lxd_dir, self.corral_dir)
        self.out(f"   {links} links, {files} files rewritten")

    def _database(self) -> None:
        old, new = self.lxd_dir + "/", self.corral_dir + "/"

        def rewrite(v: str) -> str:
            return new + v[len(old):] if v.startswith(old) else v

        stmts, summary = q.patch(self.dump, rewrite)
        # The instances that ran come back with corrald (its start-up starts them, as LXD's does).
        for project, name in self.plan.running:
            stmts.append(q.set_last_state_running(project, name))
        dbdir = os.path.join(self.corral_dir, "database")
        os.makedirs(dbdir, mode=0o700, exist_ok=True)
        with open(os.path.join(dbdir, "patch.global.sql"), "w") as f:
            f.write(";\n".join(stmts) + ";\n")
        self.out(f"   {sum(summary['tables'].values())} rows in {len(summary['tables'])} tables")
        for t, cols in summary["dropped_columns"].items():
            self.out(f"   not kept: {t}.{', '.join(cols)}")
        for t in summary["lxd_only_tables"]:
            self.out(f"   not kept: table {t}")

    def _start_corrald(self) -> None:
        self.journal.add("start corrald", self._stop_corrald)
        # corrald's start-up starts the instances before it serves /dev/lxd: the directory must exist
        os.makedirs(os.path.join(self.corral_dir, "devlxd"), mode=0o755, exist_ok=True)
        # what `--back` needs to undo this migration later
        back.write_record(os.path.join(self.corral_dir, back.RECORD), self.lxd_dir, self.group, self.moved,
                          self.modes, self.network_files, self._loops())
        self.corrald.start(self.group, os.path.join(self.corral_dir, "logs", "corrald.log"))
        if os.path.exists(os.path.join(self.corral_dir, "database", "patch.global.sql")):
            raise RuntimeError("corrald did not apply the database patch")

    def _loops(self) -> dict[str, str]:
        old, new = self.lxd_dir + "/", self.corral_dir + "/"
        return {n: new + src[len(old):] for n, src in q.loop_pool_sources(self.dump) if src.startswith(old)}

    def _stop_corrald(self) -> None:
        back.stop_corral_side(self.corrald, self.corral_dir, self.modes, self._loops())

    def _start_instances(self) -> None:
        states = self.corrald.statuses()
        missing = set(self.plan.instances) - set(states)
        if missing:
            raise RuntimeError(f"corrald does not show {sorted(missing)}")
        for project, name in self.plan.running:
            if states.get((project, name)) != "Running":
                self.corrald.set_state(project, name, "start")

    def _local_config(self) -> None:
        cfg = {k: v for k, v in q.config_rows(self.local, "config") if v is not None}
        if cfg:
            doc = self.corrald.api.request("PATCH", "/1.0", {"config": cfg})
            self.corrald.api.wait(doc)
            self.out(f"   member config: {', '.join(sorted(cfg))}")

    # ---- the whole ---------------------------------------------------------------------------
    def run(self, dry_run: bool = False) -> int:
        self.plan = self.inspect()
        self.out(checks.describe(self.plan, self.lxd_dir, self.corral_dir))
        if dry_run:
            self.out("Dry run: nothing was changed.")
            return 1 if self.plan.blockers else 0
        if self.plan.blockers:
            self.out("Nothing was changed.")
            return 1
        t0 = time.monotonic()
        steps = {"stop-instances": self._stop_instances, "dump": self._dump, "stop-lxd": self._stop_lxd,
                 "unmount": self._unmount, "move": self._move, "rewrite": self._rewrite,
                 "database": self._database, "start-corrald": self._start_corrald,
                 "start-instances": self._start_instances, "local-config": self._local_config}
        try:
            for name in STEPS:
                self._step(name, steps[name])
        except Exception as e:
            self.out(f"Migration failed: {e}")
            self.out("Rolling back:")
            for line in self.journal.undo():
                self.out(f"  {line}")
            ok = self.lxd.api.alive()
            self.out("LXD is running again on " + self.lxd.api.socket if ok else
                     "LXD could not be started again: see the lines above")
            return 2
        total = time.monotonic() - t0
        down = sum(self.times.get(s, 0) for s in STEPS[:STEPS.index("start-instances") + 1])
        self.out(f"Migrated in {total:.2f} s; the running instances were stopped for about {down:.2f} s")
        self.out("Step times: " + ", ".join(f"{k} {v:.2f} s" for k, v in self.times.items()))
        self.out(f"LXD's database is kept in {os.path.join(self.lxd_dir, 'database')}: "
                 "`corral migrate-from-lxd --back` goes back to LXD (docs/migrate-from-lxd.md)")
        return 0
