"""A schema release in production (S2): verified backup → maintenance → read-only pre-checks →
duplicates gate → checks of the pending revisions' SQL → ``alembic upgrade`` (under an advisory
lock) → after-checks (revision, pre-checks again, health, smoke) → audit record; or the way back.

    pyinfra inventories/prod.py deploys/migrate.py --dry   # backup, pre-checks, pending revisions
    pyinfra inventories/prod.py deploys/migrate.py         # do it
    pyinfra inventories/prod.py deploys/migrate.py --data rollback=-1 \
        --data i_know_what_im_doing=true
    pyinfra inventories/prod.py deploys/migrate.py --data rollback=restore \\
        --data rollback_run=<ts> --data i_know_what_im_doing=true

Forward, on the database's host: the backup (``pg_dump -Fc`` read back in full, or the SQLite
backup API with ``integrity_check``) with the command that restores it; the revision before;
the pre-checks (``prechecks``) and the duplicates gate (``unique_gate``) in read-only
transactions; the pending revisions' SQL (rendered offline by Alembic) checked against the live
data; ``alembic upgrade <target_revision>`` holding turnout's advisory lock; the revision after
and the pre-checks again. On the app hosts: the writers stopped first (``freeze_services``) and
started again after, health reporting the new revision, smoke. Any failed check stops the run
before the upgrade, the database untouched. ``rollback=-1|<revision>`` downgrades (refused,
while planning, when a revision on the way down has no downgrade); ``rollback=restore`` puts the
release's backup back (``rollback_run`` names the release, default the latest that passed).
Evidence: ``<evidence_root>/migrate/<ts>/`` with ``run.json`` and ``report.md``.
"""

from pyinfra import host
from pyinfra.operations import files

from turnout import cutover, hostapp, release
from turnout.database import SqliteDatabase
from turnout.operations import alembic, checks, db, evidence, http, revisions, smoke
from turnout.runbook import Preflight, start_runbook

plan = release.plan_for_host(host)
run = start_runbook("migrate", Preflight(databases=plan.databases))
plan = release.check_plan(run, plan)
settings = run.settings
app = cutover.compose_where(settings)
in_app = {"service": settings.app_service, "app_python": settings.app_python}
lock = None if plan.sqlite else run.target
baseline = run.artifact("baseline.sqlite3" if plan.sqlite else "baseline.dump")
# What the read-only checks read: the app's PostgreSQL, or its SQLite file.
checked = SqliteDatabase(settings.sqlite_path) if plan.sqlite else run.target

evidence.directory(name="Evidence directory", path=run.run_dir)
files.directory(name="State directory", path=run.state_dir, mode="700")
evidence.install_failed_record(f"{run.run_dir}/run.json", plan.record)

if plan.db_host and not plan.rollback:
    if plan.sqlite:
        db.sqlite_backup(
            name="Backup (SQLite backup API)", source=settings.sqlite_path, dest=baseline
        )
    else:
        db.dump(
            name="Backup (pg_dump, read back in full)",
            source=run.target,
            dest=baseline,
            log_path=run.log("pg_dump.log"),
            progress_interval_s=settings.progress_interval_s,
            compose_exec=plan.db_exec,
        )

frozen: tuple[str, ...] = ()
if plan.app_host:
    hostapp.stop_writers(
        settings,
        name="Maintenance: stop the writers",
        unless=lambda: release.completed(run, plan),
    )
    if not release.completed(run, plan):
        frozen = settings.freeze_services

if plan.db_host:
    alembic.record(
        name="Alembic revision before",
        path=run.output("alembic_before.json"),
        once=True,
        **app,
        **in_app,
    )

if plan.db_host and plan.mode == "release":
    # The gate (and its fix-up) first: duplicates are named for the constraint they block.
    if settings.unique_gate:
        table, columns, constraint = release.gate_parts(settings.unique_gate)
        if settings.dedupe and plan.sqlite:
            evidence.skipped(name="Dedupe", step="dedupe", why="it rehearses on PostgreSQL only")
        elif settings.dedupe:  # destructive: refused while loading unless released
            checks.dedupe(
                name="Dedupe (rehearsed on a copy, then applied)",
                database=run.target,
                table=table,
                columns=columns,
                constraint=constraint,
                keep=settings.dedupe_keep,
                dump=baseline,
                compose_exec=plan.db_exec,
                record=run.output("dedupe.json"),
                log_path=run.log("dedupe.log"),
            )
        checks.unique_gate(
            name="Duplicates gate",
            database=checked,
            table=table,
            columns=columns,
            constraint=constraint,
            record=run.output("unique_gate.json"),
            limit=settings.precheck_limit,
        )
    else:
        evidence.skipped(
            name="Duplicates gate", step="unique_gate", why="no unique gate (unique_gate is empty)"
        )
    checks.prechecks(
        name="Pre-checks (read-only)",
        database=checked,
        checks=settings.prechecks,
        record=run.output("prechecks_before.json"),
        limit=settings.precheck_limit,
        timeout_ms=settings.precheck_timeout_ms,
    )
    if plan.sqlite:
        evidence.skipped(
            name="Pending revisions against the live data",
            step="pending revision checks",
            why="the offline SQL is PostgreSQL's; this app runs on SQLite (sqlite_path)",
        )
    else:
        revisions.check_pending(
            name="Pending revisions against the live data",
            database=run.target,
            **app,
            **in_app,
            target=settings.target_revision,
            record=run.output("pending_revisions.json"),
        )
    alembic.upgrade(
        name="Migrate (alembic upgrade)",
        target=settings.target_revision,
        lock=lock,
        log_path=run.log("alembic.log"),
        restore_hint=release.restore_command(run),
        **app,
        **in_app,
    )

if plan.db_host and plan.mode == "downgrade":
    alembic.downgrade(
        name="Downgrade (alembic downgrade)",
        revision=plan.undo["target"],
        lock=lock,
        log_path=run.log("alembic.log"),
        restore_hint=release.restore_command_of(plan.undo),
        **app,
        **in_app,
    )

if plan.db_host and plan.mode == "restore":
    if plan.sqlite:
        db.sqlite_restore(
            name="Put the SQLite backup back",
            backup=plan.undo["backup"],
            dest=settings.sqlite_path,
            timestamp=run.timestamp,
        )
    else:
        db.restore(
            name="Restore the backup",
            dump=plan.undo["backup"],
            into=run.target,
            marker=f"{run.state_dir}/restored-{settings.target_dsn_env}.json",
            log_path=run.log("pg_restore.log"),
            progress_interval_s=settings.progress_interval_s,
            compose_exec=plan.db_exec,
        )

if plan.db_host and plan.mode == "release":
    checks.prechecks(
        name="Pre-checks again (after)",
        database=checked,
        checks=settings.prechecks,
        record=run.output("prechecks_after.json"),
        limit=settings.precheck_limit,
        phase="after",
        timeout_ms=settings.precheck_timeout_ms,
    )

if plan.app_host:
    hostapp.start_writers(
        settings,
        name="Up: start the writers",
        stopped_before=frozen,
        after_downgrade=plan.mode == "downgrade",
    )
    if settings.health:
        http.health(
            name="Health",
            url=settings.base_url + settings.health_path,
            expect=plan.health_expect,
            retries=settings.health_retries,
            timeout=settings.http_timeout_s,
            record=run.output("health.json"),
        )
    if settings.smoke:
        smoke.core(name="Smoke: core", **plan.smoke, record=run.output("smoke.json"))

if plan.db_host:
    # Read from the live database at the very end, after the writers came up: what the run
    # record says is after is what the database holds, and it must be where this run took it.
    alembic.record(
        name="Alembic revision after (the live database, at the end)",
        path=run.output("alembic_after.json"),
        expect=release.expected_after(run, plan),
        **app,
        **in_app,
    )

evidence.run_record(
    name="Run record",
    path=f"{run.run_dir}/run.json",
    run=plan.record,
    records=plan.records,
    report=f"{run.run_dir}/report.md",
)
