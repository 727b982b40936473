"""Production cutover (S0): freeze → backup → restore-assets → restore-db → migrate → up → health
→ smoke, each step chosen with ``steps`` (default: all, always in this order).

    pyinfra inventories/prod.py deploys/cutover.py --dry                 # the plan
    pyinfra inventories/prod.py deploys/cutover.py --data steps=freeze,backup,migrate,up,health
    pyinfra inventories/prod.py deploys/cutover.py --data i_know_what_im_doing=true \\
        --data src_dump=/srv/backups/app.src.dump --data src_assets=/srv/backups/app.data.tar.gz

- freeze: stop the writers (``freeze_services``) on every app host, before the backup starts;
- backup: ``pg_dump -Fc`` of the app's database into ``src_artifacts/baseline.dump`` (inside
  the ``db`` container with ``db_in_compose``; the SQLite backup API with ``sqlite_path``), read
  back in full and recorded by sha256, and the row counts before;
- restore-assets (``src_assets``; destructive): the tarball checked member by member, unpacked
  beside the live tree and swapped in; the old tree stays as ``<assets_dir>.prev_<ts>``;
- restore-db (``src_dump``; destructive): ``pg_restore --clean --if-exists`` in one transaction
  (inside the ``db`` container with ``db_in_compose``), other sessions terminated first;
- migrate: ``alembic upgrade head`` inside the app's service (``app_python``), the revisions
  before and after kept; runs once, where the database's host is;
- up, health (the expected ``db_backend`` and the Alembic head), smoke (log in, core and
  admin-only endpoints, WebSocket) on every app host.

Hosts: ``app_hosts_group`` names the app hosts and ``db_hosts_group`` the host of backup,
restore-db and migrate (both unset: one host does everything). The destructive steps refuse the
whole run, before any step, unless released with ``--data i_know_what_im_doing=true``. The run
leaves ``<evidence_root>/cutover/<ts>/`` (``run.json``, ``logs/``, ``outputs/``,
``src_artifacts/``); a pinned ``evidence_timestamp`` makes a rerun change nothing.
"""

from pyinfra import host
from pyinfra.operations import files

from turnout import cutover, hostapp
from turnout.operations import alembic, assets, db, evidence, http, integrity, smoke, swap, validate
from turnout.runbook import Preflight, start_runbook

plan = cutover.plan_for_host(host)
run = start_runbook("cutover", Preflight(databases=plan.databases))
plan = cutover.check_plan(run, plan)
settings = run.settings
app = cutover.compose_where(settings)

evidence.directory(name="Evidence directory", path=run.run_dir)
files.directory(name="State directory", path=run.state_dir, mode="700")
evidence.install_failed_record(f"{run.run_dir}/run.json", plan.record)

for step, why in plan.skipped:
    evidence.skipped(name=f"Step {step}", step=step, why=why)

frozen: tuple[str, ...] = ()
if plan.runs("freeze"):
    hostapp.stop_writers(
        settings,
        name="Freeze: stop the writers",
        unless=lambda: cutover.freeze_not_needed(run, plan),
    )
    frozen = () if cutover.freeze_not_needed(run, plan) else settings.freeze_services

if plan.runs("migrate"):  # the revision before the cutover (the rollback's downgrade target)
    alembic.record(
        name="Alembic revision before",
        path=run.output("alembic_before.json"),
        once=True,
        **app,
        service=settings.app_service,
        app_python=settings.app_python,
    )

if plan.runs("backup"):
    if settings.sqlite_path:
        db.sqlite_backup(
            name="Baseline backup (SQLite backup API)",
            source=settings.sqlite_path,
            dest=run.artifact("baseline.sqlite3"),
        )
    else:
        validate.snapshot_counts(
            name="Row counts before",
            database=run.target,
            record=run.output("rowcounts_before.json"),
            timeout_ms=settings.count_timeout_ms,
            once=True,
        )
        db.dump(
            name="Baseline backup (pg_dump)",
            source=run.target,
            dest=run.artifact("baseline.dump"),
            log_path=run.log("pg_dump.log"),
            progress_interval_s=settings.progress_interval_s,
            compose_exec=plan.db_exec,
        )

if plan.runs("restore-assets"):
    swap.restore_tarball(
        name="Restore assets (swap in the tarball)",
        tarball=settings.src_assets,
        dest=settings.assets_dir,
        marker=f"{run.state_dir}/assets-swap.json",
        timestamp=run.timestamp,
        log_path=run.log("assets.log"),
    )
    # The tarball's content, file by file: the checks after the cutover compare the live tree.
    integrity.assets_manifest(
        name="Assets manifest",
        tarball=settings.src_assets,
        record=run.output("assets_manifest.json"),
    )

if plan.runs("restore-db"):
    db.restore(
        name="Restore the database",
        dump=settings.src_dump,
        into=run.target,
        marker=f"{run.state_dir}/restored-{settings.target_dsn_env}.json",
        log_path=run.log("pg_restore.log"),
        progress_interval_s=settings.progress_interval_s,
        policy=settings.restore,
        compose_exec=plan.db_exec,
    )

if plan.runs("migrate"):
    alembic.upgrade(
        name="Migrate (alembic upgrade head)",
        after_restore=plan.runs("restore-db"),
        lock=None if settings.sqlite_path else run.target,
        log_path=run.log("alembic.log"),
        **app,
        service=settings.app_service,
        app_python=settings.app_python,
    )
    alembic.record(
        name="Alembic revision after",
        path=run.output("alembic_after.json"),
        **app,
        service=settings.app_service,
        app_python=settings.app_python,
    )

if "target" in plan.databases and (plan.runs("restore-db") or plan.runs("migrate")):
    # What the database holds after the database steps, before the app writes again: the
    # testinfra checks compare the live counts with it.
    validate.snapshot_counts(
        name="Row counts after",
        database=run.target,
        record=run.output("rowcounts_after.json"),
        timeout_ms=settings.count_timeout_ms,
        once=True,
    )
    # The rows' content, per table, for the checks after the cutover (tables the app writes once
    # it is up are left out: cutover_unchecked_tables).
    integrity.table_digests(
        name="Table digests after",
        database=run.target,
        record=run.output("table_digests.json"),
        exclude=settings.cutover_unchecked_tables,
    )

if "target" in plan.databases and plan.runs("restore-db"):
    migrated = " and the migration" if plan.runs("migrate") else ""
    integrity.constraints(
        name="Validate the constraints",
        dump=settings.src_dump,
        compose_exec=plan.db_exec,
        target=run.target,
        after=f"the restore{migrated}",
        record=run.output("validate_constraints.json"),
        remedy="restore the dump again with --data restore=always and read logs/pg_restore.log, "
        "or find the migration that drops them (logs/alembic.log) and fix it",
    )

if plan.runs("up"):
    hostapp.start_writers(settings, name="Compose up", stopped_before=frozen)
    hostapp.record_services(settings, name="Record compose ps", path=run.output("compose_ps.json"))

if plan.runs("health"):
    http.health(
        name="Health",
        url=settings.base_url + settings.health_path,
        expect=plan.health_expect,
        retries=settings.health_retries,
        timeout=settings.http_timeout_s,
        record=run.output("health.json"),
    )

if plan.runs("smoke"):
    smoke.core(name="Smoke: core", **plan.smoke, record=run.output("smoke.json"))

if plan.runs("restore-assets"):
    assets.record_tree(
        name="Assets after", path=settings.assets_dir, record=run.output("assets_after.json")
    )

evidence.run_record(
    name="Run record", path=f"{run.run_dir}/run.json", run=plan.record, records=plan.records
)
