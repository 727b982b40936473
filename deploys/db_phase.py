"""Put the app in a phase of the SQLite → PostgreSQL move (SPEC S3.5-S3.7, seed 003) by
rewriting its server-side ``.env`` and recreating the services that read it.

    pyinfra inventories/prod.py deploys/db_phase.py --data phase=shadow --dry   # the .env diff
    pyinfra inventories/prod.py deploys/db_phase.py --data phase=shadow
    pyinfra inventories/prod.py deploys/db_phase.py --data phase=dual
    pyinfra inventories/prod.py deploys/db_phase.py --data phase=cutover
    pyinfra inventories/prod.py deploys/db_phase.py --data phase=rollback \\
        --data i_know_what_im_doing=true --data sqlite_path=/srv/app/data/app.sqlite3 -y

What each phase writes is ``turnout/phases.py``'s table (``DATABASE_URL``,
``DATABASE_URL_SECONDARY``, ``DB_WRITE_MODE``, ``DB_READ_MODE``); the PostgreSQL DSN is written as
``${<pg_dsn_env>}``, a reference to the variable already in the ``.env``, never as a copy of the
password. Steps:

1. while loading: the phase is given and known, the ``.env`` rewrite is planned (a value referring
   to a variable the file lacks is refused), PostgreSQL answers (phases that use it), a phase
   that moves the app off SQLite (it runs on SQLite now) finds the copy complete, its
   verification passed and the SQLite file (``sqlite_path``) unchanged since the copy — else
   what the app wrote since would be missing (``phase_require_verified_copy``), for the
   cutover every ``expected_unique`` name exists on it, for the rollback the SQLite file exists
   (when ``sqlite_path`` gives its host path: else the app would start on a new, empty file) — a
   problem stops the run, nothing changed;
2. the evidence directory ``<evidence_root>/db_phase/<ts>/``;
3. the ``.env`` rewrite (the diff, redacted, in the plan and in ``outputs/env_phase.json``; the
   old file kept beside it as ``<env_file>.before-<phase>-<ts>``, 0600, since it holds the
   secrets that evidence must not);
4. ``phase_services`` recreated where their configuration changed (``up --wait``);
5. health with ``db_backend`` = ``postgresql`` (shadow, dual, cutover) or ``sqlite`` (rollback);
6. cutover: the acceptance (S3.6) again, recorded; rollback: the seconds from the command's start
   to the healthy app, printed in one line and kept in ``outputs/rollback_time.json`` (over
   ``rollback_budget_s``: a warning; run it with ``-y``, or the time at pyinfra's confirmation
   prompt counts too — the record also gives the seconds from the first step);
7. ``run.json``.

The rollback is declared destructive (released with ``i_know_what_im_doing=true``): the app goes
back to the SQLite file, and what it wrote to PostgreSQL since the switch stays behind there. The
other phases lose nothing (the shadow and dual phases keep SQLite as the secondary; the cutover
keeps the file, unwritten, for the weeks the seed keeps it). With a pinned
``evidence_timestamp`` a rerun changes nothing.
"""

from pyinfra.facts.files import File

from turnout import phases, sqlite_pg
from turnout.cutover import compose_where
from turnout.facts.envphase import EnvPhasePlan
from turnout.facts.evidence import JsonFile
from turnout.facts.pgload import SqliteCopyPlan
from turnout.facts.postgres import Constraints, PostgresServer
from turnout.memo import observe
from turnout.operations import envphase, evidence, http
from turnout.preflight import PreflightError, require
from turnout.runbook import Preflight, start_runbook
from turnout.runrecord import operator_name

STARTED = phases.command_started()
run = start_runbook("db_phase", Preflight(databases=()))
settings = run.settings
phase = settings.phase
if phase is None:
    raise PreflightError(
        "no phase given: run with --data phase=shadow, dual, cutover or rollback; nothing was "
        "changed"
    )
env_file = settings.env_file_path
values = phases.phase_values(phase, settings.sqlite_url, settings.pg_dsn_env)
pg = sqlite_pg.target_of(settings)
plan = require(observe(EnvPhasePlan, env_file=env_file, values=values), f"plan phase {phase}")
if phases.uses_postgres(phase):
    require(
        observe(PostgresServer, database=pg),
        f"connect to the PostgreSQL of phase {phase} ({pg})",
        f"check {pg} in {env_file} (setting pg_dsn_env names it) and that the server answers",
    )
if settings.phase_require_verified_copy and phases.leaves_sqlite(
    phase, plan["current"].get("DATABASE_URL")
):
    if not settings.sqlite_path:
        raise PreflightError(
            f"phase {phase} moves the app off SQLite: set sqlite_path (the host path of "
            f"{settings.sqlite_url}) so that the copy can be checked complete, verified and "
            "current first (or phase_require_verified_copy=false); nothing was changed"
        )
    state = sqlite_pg.state_paths(settings)
    copy_plan = require(
        observe(
            SqliteCopyPlan,
            source=settings.sqlite_path,
            target=pg,
            tables=settings.copy_tables,
            batch_size=settings.batch_size,
            checkpoint=state["checkpoint"],
            lossy=settings.lossy,
        ),
        f"read the copy of {settings.sqlite_path} into {pg}",
        "run deploys/sqlite_to_pg.py first",
    )
    verified = observe(JsonFile, path=state["verified"])
    problem = phases.unready_copy(
        copy_plan, verified.get("data") if verified.get("exists") else None, settings.sqlite_path
    )
    if problem:
        raise PreflightError(f"phase {phase}: {problem}; nothing was changed")
if phase == "rollback" and settings.sqlite_path:
    if not observe(File, path=settings.sqlite_path):
        raise PreflightError(
            f"sqlite_path {settings.sqlite_path} is not a file on the host: the app would start "
            f"on an empty database; fix sqlite_path (the host path of {settings.sqlite_url}); "
            f"nothing was changed"
        )
if phase == "cutover":
    constraints = require(observe(Constraints, database=pg), f"read the constraints of {pg}")
    missing = phases.missing_unique(settings.expected_unique, constraints)
    if missing:
        raise PreflightError(
            f"cutover acceptance: {', '.join(missing)} missing on {pg} (neither a unique "
            f"constraint nor a unique index); create it with the app's migrations, or fix "
            f"expected_unique; nothing was changed"
        )
record = {
    "task": run.task,
    "timestamp": run.timestamp,
    "run_dir": run.run_dir,
    "operator": operator_name(settings.operator_name),
    "phase": phase,
    "values": values,
    "env_file": env_file,
}

evidence.directory(name="Evidence directory", path=run.run_dir)
evidence.install_failed_record(f"{run.run_dir}/run.json", record)

envphase.apply(
    name=f"Phase {phase}: rewrite .env",
    env_file=env_file,
    values=values,
    backup_path=f"{env_file}.before-{phase}-{run.timestamp}",
    record=run.output("env_phase.json"),
    discards_writes=phase == "rollback",
)

envphase.recreate(
    name="Recreate " + ", ".join(settings.phase_services),
    services=settings.phase_services,
    env_changes=plan["changed_keys"],
    **compose_where(settings),
)

http.health(
    name="Health",
    url=settings.base_url + settings.health_path,
    expect={**settings.health_expect_map, "db_backend": phases.expected_backend(phase)},
    retries=settings.health_retries,
    timeout=settings.http_timeout_s,
    record=run.output("health.json"),
)

if phase == "cutover":
    envphase.unique_acceptance(
        name="Acceptance: unique constraints and indexes",
        database=pg,
        expected=settings.expected_unique,
        record=run.output("acceptance.json"),
    )

if phases.is_timed(phase):
    envphase.timed(
        name="Rollback time",
        started=STARTED,
        budget_s=settings.rollback_budget_s,
        record=run.output("rollback_time.json"),
        switching=bool(plan["changed_keys"]),
    )

evidence.run_record(
    name="Run record",
    path=f"{run.run_dir}/run.json",
    run=record,
    records={
        "env_phase": run.output("env_phase.json"),
        "acceptance": run.output("acceptance.json"),
        "rollback_time": run.output("rollback_time.json"),
    },
)
