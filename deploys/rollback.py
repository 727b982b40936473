"""Roll a production cutover back (S0.10, RELIABILITY 7): freeze → swap the assets back →
database back → up → health.

    pyinfra inventories/prod.py deploys/rollback.py --dry
    pyinfra inventories/prod.py deploys/rollback.py --data i_know_what_im_doing=true
    pyinfra inventories/prod.py deploys/rollback.py --data i_know_what_im_doing=true \\
        --data rollback_run=20261124T120000Z --data rollback_db=downgrade

The cutover undone is ``rollback_run`` or the latest one with a ``run.json`` on the host.
Assets (app hosts, when that cutover swapped them): the ``<assets_dir>.prev_<ts>`` tree becomes
live again, the tree it replaces is kept as ``<assets_dir>.failed_<ts>``. Database (the database
host): ``rollback_db=restore`` (default) restores that cutover's baseline backup
(``src_artifacts/baseline.dump``) in one transaction; ``downgrade`` runs ``alembic downgrade`` to
the revision recorded before it (reversible migrations only); ``none`` leaves it. Refused
without the release, before any step. Evidence in ``<evidence_root>/rollback/<ts>/``; with a
pinned ``evidence_timestamp`` a rerun after success changes nothing.
"""

from pyinfra import host
from pyinfra.operations import files

from turnout import cutover, hostapp, rollback
from turnout.operations import alembic, db, evidence, http, swap
from turnout.runbook import Preflight, start_runbook

rollback.refuse_unreleased(host)
run = start_runbook("rollback", Preflight(databases=()))
settings = run.settings
app_host, db_host = rollback.roles(host, settings)
undo = rollback.cutover_to_undo(run)
rollback.check_undo(run, undo, db_host)
app = cutover.compose_where(settings)
db_exec = cutover.db_exec_argv(settings)
swap_marker = f"{run.state_dir}/assets-swap.json"
restore_marker = f"{run.state_dir}/restored-{settings.target_dsn_env}.json"
record = {
    "task": run.task,
    "timestamp": run.timestamp,
    "run_dir": run.run_dir,
    "operator": rollback.operator_name(settings.operator_name),
    "undoes": undo.run_dir,
    "rollback_db": settings.rollback_db if db_host else "none",
    "roles": [r for r, on in (("app", app_host), ("db", db_host)) if on],
}
swaps_back = app_host and undo.swapped_assets and bool(settings.assets_dir)
restores = db_host and settings.rollback_db == "restore"
downgrades = db_host and settings.rollback_db == "downgrade"


def pending() -> list[str]:
    """What the rollback still has to do on this host (for the freeze decision)."""
    return rollback.pending(
        run, undo, swaps_back, restores, downgrades, swap_marker, restore_marker, db_exec
    )


evidence.directory(name="Evidence directory", path=run.run_dir)
files.directory(name="State directory", path=run.state_dir, mode="700")
evidence.install_failed_record(f"{run.run_dir}/run.json", record)

frozen: tuple[str, ...] = ()
if app_host:
    hostapp.stop_writers(
        settings,
        name="Freeze: stop the writers",
        unless=lambda: cutover.completed_run(run, {"undoes": undo.run_dir}, pending),
    )
    if not cutover.completed_run(run, {"undoes": undo.run_dir}, pending):
        frozen = settings.freeze_services

if swaps_back:
    swap.swap_back(
        name="Swap the assets back",
        dest=settings.assets_dir,
        marker=swap_marker,
        timestamp=run.timestamp,
    )
elif app_host:
    evidence.skipped(name="Swap the assets back", step="assets", why="the cutover kept them")

if restores:
    db.restore(
        name="Restore the baseline database",
        dump=undo.baseline,
        into=run.target,
        marker=restore_marker,
        log_path=run.log("pg_restore.log"),
        progress_interval_s=settings.progress_interval_s,
        compose_exec=db_exec,
    )
if downgrades:
    alembic.downgrade(
        name="Downgrade the database",
        revision=undo.revision_before,
        **app,
        service=settings.app_service,
        app_python=settings.app_python,
    )

if app_host:
    hostapp.start_writers(
        settings,
        name="Compose up",
        stopped_before=frozen,
        after_downgrade=settings.rollback_db == "downgrade",
    )
    hostapp.record_services(settings, name="Record compose ps", path=run.output("compose_ps.json"))
    if settings.health:
        http.health(
            name="Health",
            url=settings.base_url + settings.health_path,
            expect=settings.health_expect_map,
            retries=settings.health_retries,
            timeout=settings.http_timeout_s,
            record=run.output("health.json"),
        )

evidence.run_record(
    name="Run record",
    path=f"{run.run_dir}/run.json",
    run=record,
    records={"restore_db": restore_marker, "restore_assets": swap_marker},
)
