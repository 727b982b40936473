"""Staging rehearsal (S1): copy the source database and assets to staging, and prove it worked.

    pyinfra inventories/staging.py deploys/dry_run.py --dry     # the plan, in concrete terms
    pyinfra inventories/staging.py deploys/dry_run.py           # do it

Starts with the shared pre-flight (``turnout.runbook.start_runbook``: settings, both databases
answer, the tables exist, a given dump is a dump, the assets source exists). Runs on the staging
host, which holds the DSNs in its server-side ``.env`` (``source_dsn_env``,
``target_dsn_env``): the control machine never connects to a database.

1. evidence directory ``<evidence_root>/dry_run/<timestamp>/``;
2. dump the source (``dump_format`` custom or directory with ``dump_jobs``; ``--no-owner
   --no-acl``) into ``src_artifacts/`` (or ``work_dir``), or take ``dump_path``;
3. restore into staging (``drop_schema`` drops schema public first: released with
   ``i_know_what_im_doing``, refused on prod, both while the deploy loads); a dump already
   restored (same sha256) is skipped unless ``restore=always`` (heals a drifted staging);
4. mirror the assets from ``rsync_source`` into ``assets_dir`` (``rsync_delete`` only when asked);
5. validate: required extensions, row counts and orphans, the constraints by name (unique
   constraints, unique indexes, primary and foreign keys of the source present on staging),
   asset paths and a readable sample;
6. smoke: the staging health endpoint.

``assets=false`` turns steps 4 and the asset validation off (an app without asset files: no
``assets_dir`` needed); ``health=false`` turns step 6 off (no health endpoint on staging). The
plan (``--dry``) and the run say which steps are off.

Any failure stops the run with a non-zero exit and the reason in one line; reports are kept as
JSON in ``outputs/`` and every tool's redacted output in ``logs/``.
"""

from pyinfra.operations import files

from turnout.cutover import db_exec_argv
from turnout.operations import assets, db, evidence, http, integrity, validate
from turnout.runbook import Preflight, start_runbook
from turnout.settings import SettingsError

run = start_runbook("dry_run", Preflight(tables=True, dump=True, assets_source=True))
settings = run.settings
if settings.migrate_redis:
    raise SettingsError(
        "setting migrate_redis is true, but the rehearsal does not copy Redis (S1.12: queues and "
        "caches are rebuilt); unset it, or copy Redis's data by hand after reading the runbook"
    )
if settings.assets and not settings.asset_path_columns:
    raise SettingsError(
        "setting asset_path_columns is empty while assets is true; name the columns holding "
        "asset paths, or turn the asset steps off with --data assets=false"
    )
if settings.assets and not settings.assets_dir:
    raise SettingsError(
        "setting assets_dir must name the host directory mounted at asset_prefix "
        f"({settings.asset_prefix}); set it in group_data/ or with --data assets_dir=/srv/app/data"
    )

evidence.directory(name="Evidence directory", path=run.run_dir)
files.directory(name="State directory", path=run.state_dir, mode="700")

if settings.dump_path:
    dump_file = settings.dump_path
else:
    artifacts = settings.work_dir or f"{run.run_dir}/src_artifacts"
    suffix = "dump" if settings.dump_format == "custom" else "dir"
    dump_file = f"{artifacts}/source.{suffix}"
    db.dump(
        name="Dump the source database",
        source=run.source,
        dest=dump_file,
        format=settings.dump_format,
        jobs=settings.dump_jobs,
        log_path=run.log("pg_dump.log"),
        progress_interval_s=settings.progress_interval_s,
    )

db.restore(
    name="Restore into staging",
    dump=dump_file,
    into=run.target,
    marker=f"{run.state_dir}/restored-{settings.target_dsn_env}.json",
    drop_schema=settings.drop_schema,
    log_path=run.log("pg_restore.log"),
    progress_interval_s=settings.progress_interval_s,
    policy=settings.restore,
    compose_exec=db_exec_argv(settings),
)

if not settings.assets:
    validate.off(name="Mirror the assets", what="Mirroring the assets", setting="assets")
elif settings.rsync_source:
    assets.mirror(
        name="Mirror the assets",
        source=settings.rsync_source,
        dest=settings.assets_dir,
        delete=settings.rsync_delete,
        rsh=settings.rsync_rsh,
        log_path=run.log("rsync.log"),
        progress_interval_s=settings.progress_interval_s,
    )

validate.extensions(
    name="Required extensions",
    target=run.target,
    required=settings.required_extensions,
    record=run.output("validate_extensions.json"),
)

validate.database(
    name="Validate the database",
    source=run.source,
    target=run.target,
    tables=settings.tables,
    relations=settings.orphan_relations,
    timeout_ms=settings.count_timeout_ms,
    allowed_diff=settings.allowed_row_diff,
    require_exact=settings.require_exact_counts,
    record=run.output("validate_db.json"),
)

integrity.constraints(
    name="Validate the constraints",
    source=run.source,
    target=run.target,
    record=run.output("validate_constraints.json"),
    remedy="restore again with --data restore=always (a staging that drifted since its restore) "
    "and read logs/pg_restore.log",
)

if not settings.assets:
    validate.off(name="Validate the assets", what="Validating the assets", setting="assets")
else:
    validate.assets(
        name="Validate the assets",
        target=run.target,
        columns=settings.asset_path_columns,
        assets_dir=settings.assets_dir,
        prefix=settings.asset_prefix,
        sample_size=settings.asset_sample_size,
        seed=settings.asset_sample_seed,
        record=run.output("validate_assets.json"),
    )

if not settings.health:
    validate.off(name="Smoke: staging health", what="The health check", setting="health")
else:
    http.health(
        name="Smoke: staging health",
        url=settings.base_url + settings.health_path,
        expect=settings.health_expect_map,
        retries=settings.health_retries,
        timeout=settings.http_timeout_s,
        record=run.output("health.json"),
    )

evidence.passed(name="Verdict", path=run.run_dir)
