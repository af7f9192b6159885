"""Taking over an LXD 5.0 host: `corral migrate-from-lxd` (docs/migrate-from-lxd.md).

checks.py (what blocks a migration, before anything changes), daemons.py (LXD and corrald as the
migration drives them), datamove.py (renames, links and paths, the undo journal),
corral/db/queries/lxd_import.py (LXD's database dump -> Corral's patch.global.sql), run.py (the steps
and the rollback). The `corral` CLI runs it as `python -m corral.migrate` (the CLI imports no server code).
"""
