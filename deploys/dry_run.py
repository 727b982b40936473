"""Staging rehearsal (S1): copy the source database and assets to staging, and prove it worked.

    pyinfra inventories/staging.py deploys/dry_run.py --dry     # the plan, in concrete terms
    pyinfra inventories/staging.py deploys/dry_run.py           # do it

Runs on the staging host, which holds the DSNs in its server-side ``.env`` (``source_dsn_env``,
``target_dsn_env``): the control machine never connects to a database.

1. evidence directory ``<evidence_root>/dry_run/<timestamp>/``;
2. dump the source (``dump_format`` custom or directory with ``dump_jobs``; ``--no-owner
   --no-acl``) into ``src_artifacts/`` (or ``work_dir``), or take ``dump_path``;
3. restore into staging (``drop_schema`` drops schema public first: released with
   ``i_know_what_im_doing``, refused on prod); a dump already restored (same sha256) is skipped;
4. mirror the assets from ``rsync_source`` into ``assets_dir`` (``rsync_delete`` only when asked);
5. validate: required extensions, row counts and orphans, asset paths and a readable sample;
6. smoke: the staging health endpoint.

Any failure stops the run with a non-zero exit and the reason in one line; reports are kept as
JSON in ``outputs/`` and every tool's redacted output in ``logs/``.
"""

from pyinfra import host, state
from pyinfra.operations import files

from turnout.evidence import evidence_dir, run_timestamp
from turnout.facts.dump import DumpInfo
from turnout.facts.postgres import PostgresServer, RowCounts
from turnout.guard import require_release
from turnout.operations import assets, db, evidence, http, validate
from turnout.preflight import PreflightError, require
from turnout.settings import SettingsError, load_settings

settings = load_settings(host.data)
if settings.migrate_redis:
    raise SettingsError(
        "setting migrate_redis is true, but the rehearsal does not copy Redis (S1.12: queues and "
        "caches are rebuilt); unset it, or copy Redis's data by hand after reading the runbook"
    )
if not settings.assets_dir:
    raise SettingsError(
        "setting assets_dir must name the host directory mounted at asset_prefix "
        f"({settings.asset_prefix}); set it in group_data/ or with --data assets_dir=/srv/app/data"
    )

if settings.drop_schema:
    # Checked here, not only in the restore step: with -y pyinfra skips planning, and the steps
    # before the restore would already have run when its guard refused.
    if "prod" in host.groups:
        raise SettingsError("setting drop_schema is for staging only; this host is in group prod")
    require_release(host.data, "the restore with drop_schema (drops schema public on staging)")

python = settings.hostside_python
env_file = settings.env_file_path
run_dir = evidence_dir(settings.evidence_root, "dry_run", run_timestamp(settings, state))

# Pre-flight, before anything is planned or run: both databases answer, the tables asked for
# exist, a given dump is a dump, the assets source exists.
for role, dsn_env in (("source", settings.source_dsn_env), ("target", settings.target_dsn_env)):
    require(
        host.get_fact(PostgresServer, dsn_env=dsn_env, env_file=env_file, python=python),
        f"connect to the {role} database ({dsn_env})",
    )
if settings.tables:
    require(
        host.get_fact(
            RowCounts,
            dsn_env=settings.source_dsn_env,
            env_file=env_file,
            tables=list(settings.tables),
            timeout_ms=1,
            python=python,
        ),
        "find the tables to validate in the source",
    )
if settings.dump_path:
    given = require(
        host.get_fact(DumpInfo, path=settings.dump_path, python=python),
        f"read the dump {settings.dump_path}",
    )
    if not given["exists"] or not given.get("format"):
        raise PreflightError(
            f"dump_path {settings.dump_path} is not a pg_dump custom file or directory on the "
            "host; nothing was changed"
        )
state_dir = f"{settings.evidence_root}/state"

evidence.directory(name="Evidence directory", path=run_dir, python=python)
files.directory(name="State directory", path=state_dir, mode="700")

if settings.dump_path:
    dump_file = settings.dump_path
else:
    artifacts = settings.work_dir or f"{run_dir}/src_artifacts"
    suffix = "dump" if settings.dump_format == "custom" else "dir"
    dump_file = f"{artifacts}/source.{suffix}"
    db.dump(
        name="Dump the source database",
        dsn_env=settings.source_dsn_env,
        env_file=env_file,
        dest=dump_file,
        format=settings.dump_format,
        jobs=settings.dump_jobs,
        log_path=f"{run_dir}/logs/pg_dump.log",
        python=python,
    )

db.restore(
    name="Restore into staging",
    dump=dump_file,
    dsn_env=settings.target_dsn_env,
    env_file=env_file,
    marker=f"{state_dir}/restored-{settings.target_dsn_env}.json",
    drop_schema=settings.drop_schema,
    log_path=f"{run_dir}/logs/pg_restore.log",
    python=python,
)

if settings.rsync_source:
    assets.mirror(
        name="Mirror the assets",
        source=settings.rsync_source,
        dest=settings.assets_dir,
        delete=settings.rsync_delete,
        rsh=settings.rsync_rsh,
        log_path=f"{run_dir}/logs/rsync.log",
        python=python,
    )

validate.extensions(
    name="Required extensions",
    dsn_env=settings.target_dsn_env,
    env_file=env_file,
    required=settings.required_extensions,
    record=f"{run_dir}/outputs/validate_extensions.json",
    python=python,
)

validate.database(
    name="Validate the database",
    source_dsn_env=settings.source_dsn_env,
    target_dsn_env=settings.target_dsn_env,
    env_file=env_file,
    tables=settings.tables,
    relations=settings.orphan_relations,
    timeout_ms=settings.count_timeout_ms,
    allowed_diff=settings.allowed_row_diff,
    require_exact=settings.require_exact_counts,
    record=f"{run_dir}/outputs/validate_db.json",
    python=python,
)

validate.assets(
    name="Validate the assets",
    dsn_env=settings.target_dsn_env,
    env_file=env_file,
    columns=settings.asset_path_columns,
    assets_dir=settings.assets_dir,
    prefix=settings.asset_prefix,
    sample_size=settings.asset_sample_size,
    seed=settings.asset_sample_seed,
    record=f"{run_dir}/outputs/validate_assets.json",
    python=python,
)

http.health(
    name="Smoke: staging health",
    url=settings.base_url + settings.health_path,
    expect=settings.health_expect_map,
    retries=settings.health_retries,
    timeout=settings.http_timeout_s,
    record=f"{run_dir}/outputs/health.json",
    python=python,
)

evidence.passed(name="Verdict", path=run_dir)
