"""Move the app's SQLite database into PostgreSQL (SPEC S3.1-S3.3; seed 003 Phase 0 and 1):
the target's schema from the app's own Alembic, the unique-conflict precheck, the resumable
batch copy from a frozen snapshot, and the full cross-engine verification.

    pyinfra inventories/prod.py deploys/sqlite_to_pg.py --dry    # tables, rows, checkpoint
    pyinfra inventories/prod.py deploys/sqlite_to_pg.py          # schema + copy + verify
    pyinfra inventories/prod.py deploys/sqlite_to_pg.py --data copy_restart=true \\
        --data i_know_what_im_doing=true                         # discard a copy, start over

- schema: ``alembic upgrade head`` inside the app's service (``app_python``) with its
  ``DATABASE_URL`` pointed at the target (``pg_dsn_env``, read on the host) for that command;
  never guessed from SQLite's types;
- unique precheck: every unique constraint and index of the target against the SQLite data as
  converted, with PostgreSQL's semantics; a conflict stops the run before any row is copied;
- copy: from a snapshot (backup API) in primary-key batches of ``batch_size``, each batch one
  transaction with its checkpoint row in the target (``turnout_copy``); ``checkpoint`` is the
  local cache; secondary indexes and foreign keys set aside for the load (``copy_set_aside``)
  and recreated; sequences set past the data; a resume refuses a changed source;
- verify: counts and row hashes of every row (``verify_sample`` for a share), the differing keys
  named.

The app keeps running on SQLite; the phases (``deploys/db_phase.py``) switch it. Evidence:
``<evidence_root>/sqlite_to_pg/<ts>/`` (``run.json``, ``outputs/copy.json``, ``verify.json``,
``unique_precheck.json``); state (snapshot, checkpoint, progress) in
``<evidence_root>/state/sqlite_to_pg/``.
"""

from pyinfra import host
from pyinfra.operations import files

from turnout import sqlite_pg
from turnout.cutover import compose_where
from turnout.operations import alembic, evidence, pgload
from turnout.runbook import Preflight, start_runbook
from turnout.runrecord import operator_name

plan = sqlite_pg.plan_for_host(host)
run = start_runbook(sqlite_pg.TASK, Preflight(databases=()))
settings = run.settings
paths = sqlite_pg.paths(run)
target = plan.target
record = {
    "task": run.task,
    "timestamp": run.timestamp,
    "run_dir": run.run_dir,
    "operator": operator_name(settings.operator_name),
    "source": plan.source,
    "target": str(target),
    "batch_size": settings.batch_size,
    "lossy": settings.lossy,
    "verify_sample": settings.verify_sample,
}

evidence.directory(name="Evidence directory", path=run.run_dir)
files.directory(name="State directory", path=run.state_dir, mode="700")
files.directory(name="Copy state directory", path=paths.state_dir, mode="700")
evidence.install_failed_record(f"{run.run_dir}/run.json", record)

alembic.create_schema(
    name="Schema on PostgreSQL (the app's Alembic)",
    database=target,
    service=settings.app_service,
    app_python=settings.app_python,
    log_path=run.log("alembic.log"),
    **compose_where(settings),
)
schema_pending = sqlite_pg.schema_pending(settings, target)

if settings.copy_restart:
    pgload.reset(
        name="Start the copy over (copy_restart)",
        source=plan.source,
        target=target,
        checkpoint=paths.checkpoint,
        tables=settings.copy_tables,
    )

pgload.unique_precheck(
    name="Unique-conflict precheck",
    source=plan.source,
    target=target,
    record=paths.unique_report,
    tables=settings.copy_tables,
    limit=settings.precheck_limit,
    lossy=settings.lossy,
    schema_pending=schema_pending,
)

pgload.copy(
    name="Copy SQLite into PostgreSQL",
    source=plan.source,
    target=target,
    state_dir=paths.state_dir,
    checkpoint=paths.checkpoint,
    report_path=paths.copy_report,
    progress_path=paths.progress,
    tables=settings.copy_tables,
    batch_size=settings.batch_size,
    jobs=settings.copy_jobs,
    set_aside=settings.copy_set_aside,
    lossy=settings.lossy,
    schema_pending=schema_pending,
    log_path=run.log("copy.log"),
    progress_interval_s=settings.progress_interval_s,
)

pgload.verify(
    name="Verify the copy",
    source=paths.snapshot,
    target=target,
    report_path=paths.verify_report,
    copy_report=paths.copy_report,
    tables=settings.copy_tables,
    sample=settings.verify_sample,
    max_keys=settings.verify_max_keys,
    lossy=settings.lossy,
    log_path=run.log("verify.log"),
    progress_interval_s=settings.progress_interval_s,
    verified_path=paths.verified,
)

evidence.run_record(
    name="Run record",
    path=f"{run.run_dir}/run.json",
    run=record,
    records={
        "copy": paths.copy_report,
        "verify": paths.verify_report,
        "unique_precheck": paths.unique_report,
    },
    report=f"{run.run_dir}/report.md",
)
