"""Validation steps of a rehearsal or cutover (S1.4-S1.8): database, assets, extensions.

Each step observes with facts only at execution time (after the restore and the mirror ran): counts,
orphan joins and samples are never computed while planning, when the state before the restore says
nothing about the result. It keeps its report as JSON in the evidence ``outputs/`` (rewritten only
when the result changed, so a rerun on an unchanged host reports no change) and fails the run with
the reason in one line. While planning it says what it will check, against what, and whether a
report will be written (none yet) or the kept one is checked again.
"""

import hashlib
import json

from pyinfra import host
from pyinfra.api import operation

from turnout.database import Database
from turnout.dsn import redact
from turnout.facts.assets import AssetSample
from turnout.facts.evidence import FileDigest
from turnout.facts.postgres import Extensions, Orphans, RowCounts
from turnout.failures import fact_problem, fail_command
from turnout.memo import observe
from turnout.operations.evidence import keep_text, plan_keep
from turnout.validation import (
    asset_failures,
    compare_counts,
    count_failures,
    count_rows_as_dicts,
    count_totals,
    extension_failures,
    orphan_failures,
    render_count_table,
)


def unobservable(problems: list[str]):
    """The target cannot be observed while executing: fail the step with the first reason."""
    yield fail_command(problems)


def planned(step: str, record: str, plan: str):
    """While planning: say what will be checked; a report not kept yet is a change (a pending
    report stands in for it), a kept one is checked again when executing."""
    host.log(plan)
    if observe(FileDigest, path=record).get("exists"):
        host.noop(f"{step}: checked again when executing; {record} is rewritten only if it differs")
        return
    yield from record_report(record, {"step": step, "verdict": "pending", "failures": []}, [])


def attempt_record(record: str, verdict: str, text: str) -> str:
    """Where one attempt's report is kept beside ``record``, named by its verdict and content:
    ``outputs/validate_db.json`` → ``outputs/validate_db.fail-1a2b3c4d5e6f.json``. A later
    attempt with another result gets another file (a failing report is never overwritten); the
    same result again is the same file (a rerun on an unchanged host changes nothing)."""
    stem = record.removesuffix(".json")
    return f"{stem}.{verdict}-{hashlib.sha256(text.encode()).hexdigest()[:12]}.json"


def record_report(record: str, report: dict, failures: list[str]):
    """Keep ``report`` in ``record`` (the latest; 0600; unchanged content is not rewritten) and,
    once judged, in its attempt's own file (``attempt_record``); at execution time, fail the
    step when there are ``failures``."""
    text = redact(json.dumps(report, indent=2, sort_keys=True)) + "\n"
    yield from keep_text(record, text)
    if report.get("verdict") in ("pass", "fail"):
        yield from keep_text(attempt_record(record, report["verdict"], text), text)
    if failures and host.state.is_executing:
        yield fail_command(failures)


@operation()
def database(
    source: Database,
    target: Database,
    record: str,
    tables: tuple[str, ...] | None = None,
    relations: tuple[str, ...] = (),
    timeout_ms: int = 3000,
    allowed_diff: int = 0,
    require_exact: bool = False,
):
    """
    Compare per-table row counts of source and target (exact ``count(*)`` under ``timeout_ms``,
    else the planner estimate, each labelled) and check the target for orphan rows (declared
    ``relations`` and every foreign key). Fails on a difference beyond ``allowed_diff`` (only
    judged when both counts are exact), on an estimate when ``require_exact``, on a materialized
    view left unpopulated on the target, and on orphans. Partitions are reported beneath their
    partitioned table and counted once (``totals`` in the report). Each attempt's report is also
    kept as ``<record>.<verdict>-<sha>.json``.

    + source / target: the databases (``Database(dsn_env, env_file)``)
    + record: JSON report path, e.g. ``<evidence>/outputs/validate_db.json``
    + tables: tables to compare (default: every table of the source)
    + relations: extra ``child.col->parent.col`` orphan checks

    .. code:: python

        from turnout.database import Database
        from turnout.operations import validate
        validate.database(
            name="Validate database",
            source=Database("SOURCE_DATABASE_URL", "/srv/app/.env"),
            target=Database("DATABASE_URL", "/srv/app/.env"),
            record="/var/lib/turnout/evidence/dry_run/20261123T120000Z/outputs/validate_db.json",
        )
    """
    scope = ", ".join(tables) if tables else "every table of the source"
    if not host.state.is_executing:
        exact = ", exact counts required" if require_exact else ""
        yield from planned(
            "validate_database",
            record,
            f"Will validate row counts of {source} against {target} ({scope}; count timeout "
            f"{timeout_ms} ms, allowed difference {allowed_diff}{exact}) and orphans on "
            f"{target}; report in {record}",
        )
        return
    counts = {
        side: observe(
            RowCounts,
            database=database,
            tables=list(tables) if tables else None,
            timeout_ms=timeout_ms,
        )
        for side, database in (("source", source), ("target", target))
    }
    orphans = observe(Orphans, database=target, relations=list(relations))
    problems = [
        p
        for p in (
            fact_problem(counts["source"], f"count rows with {source}"),
            fact_problem(counts["target"], f"count rows with {target}"),
            fact_problem(orphans, f"check orphans with {target}"),
        )
        if p
    ]
    if problems:
        yield from unobservable(problems)
        return
    rows = compare_counts(
        counts["source"]["tables"],
        counts["target"]["tables"],
        allowed_diff=allowed_diff,
        require_exact=require_exact,
    )
    failures = count_failures(rows) + orphan_failures(orphans["checks"])
    for line in render_count_table(rows).splitlines():
        host.log(line)
    report = {
        "step": "validate_database",
        "verdict": "fail" if failures else "pass",
        "failures": failures,
        "totals": count_totals(rows),
        "counts": count_rows_as_dicts(rows),
        "orphans": orphans["checks"],
        "settings": {
            "tables": list(tables) if tables else None,
            "timeout_ms": timeout_ms,
            "allowed_diff": allowed_diff,
            "require_exact": require_exact,
        },
    }
    yield from record_report(record, report, failures)


@operation()
def assets(
    target: Database,
    columns: tuple[str, ...],
    assets_dir: str,
    record: str,
    prefix: str = "/app/.data",
    sample_size: int = 50,
    seed: int = 0,
):
    """
    Check the assets the target database references: every path starts with ``prefix``, and a
    seeded random sample of ``sample_size`` paths is readable under ``assets_dir`` on the host.

    + target: the database holding the paths (``Database(dsn_env, env_file)``)
    + columns: ``table.column`` path columns
    + assets_dir: the host directory mounted at ``prefix`` in the app's containers
    + record: JSON report path, e.g. ``<evidence>/outputs/validate_assets.json``

    .. code:: python

        from turnout.database import Database
        from turnout.operations import validate
        validate.assets(
            name="Validate assets",
            target=Database("DATABASE_URL", "/srv/app/.env"),
            columns=("knowledge_materials.storage_path", "ugc_assets.storage_path"),
            assets_dir="/srv/app/data/assets",
            record="/var/lib/turnout/evidence/dry_run/20261123T120000Z/outputs/validate_assets.json",
        )
    """
    if not host.state.is_executing:
        yield from planned(
            "validate_assets",
            record,
            f"Will check that every path in {', '.join(columns)} of {target} starts with "
            f"{prefix} and that {sample_size} sampled (seed {seed}) are readable under "
            f"{assets_dir}; report in {record}",
        )
        return
    sample = observe(
        AssetSample,
        database=target,
        columns=list(columns),
        assets_dir=assets_dir,
        prefix=prefix,
        sample_size=sample_size,
        seed=seed,
    )
    why = fact_problem(sample, f"sample assets with {target}")
    if why:
        yield from unobservable([why])
        return
    failures = asset_failures(sample)
    host.log(
        f"Assets: {sample['checked']} sampled, {sample['missing_count']} missing, "
        f"{sample['unreadable_count']} unreadable, "
        f"{sum(c['outside_prefix'] for c in sample['columns'].values())} outside {prefix}"
    )
    report = {
        "step": "validate_assets",
        "verdict": "fail" if failures else "pass",
        "failures": failures,
        **{k: v for k, v in sample.items() if k != "ok"},
    }
    yield from record_report(record, report, failures)


@operation()
def extensions(
    target: Database,
    required: tuple[str, ...],
    record: str,
):
    """
    Fail when an extension in ``required`` is not installed in the target database (S1.6).

    .. code:: python

        from turnout.database import Database
        from turnout.operations import validate
        validate.extensions(
            name="Required extensions",
            target=Database("DATABASE_URL", "/srv/app/.env"),
            required=("vector",),
            record="/var/lib/turnout/evidence/dry_run/20261123T120000Z/outputs/extensions.json",
        )
    """
    if not host.state.is_executing:
        yield from planned(
            "validate_extensions",
            record,
            f"Will check that {target} has the extensions: {', '.join(required) or 'none'}",
        )
        return
    found = observe(Extensions, database=target)
    why = fact_problem(found, f"list extensions with {target}")
    if why:
        yield from unobservable([why])
        return
    failures = extension_failures(found["installed"], required)
    report = {
        "step": "validate_extensions",
        "verdict": "fail" if failures else "pass",
        "failures": failures,
        "required": list(required),
        "installed": found["installed"],
    }
    yield from record_report(record, report, failures)


@operation()
def off(what: str, setting: str):
    """
    A step turned off by a setting (``assets=false``, ``health=false``): the plan (``--dry``)
    and the run say so, and nothing is checked or changed.

    .. code:: python

        from turnout.operations import validate
        validate.off(name="Validate the assets", what="the asset steps", setting="assets")
    """
    host.log(f"{what} is off ({setting}=false): not run")
    host.noop(f"{what} is off ({setting}=false)")
    yield from ()


@operation()
def snapshot_counts(
    database: Database,
    record: str,
    timeout_ms: int = 3000,
    once: bool = False,
):
    """
    Keep the row count of every table of ``database`` (exact under ``timeout_ms``, else the
    planner's estimate, each labelled; partitions beneath their table) as JSON in ``record``:
    the snapshot before a cutover and after it (S4.1; the testinfra checks compare the live
    database with it). With ``once``, a snapshot already kept is left as it is (the "before" of
    a run stays the first one measured).

    .. code:: python

        from turnout.database import Database
        from turnout.operations import validate
        validate.snapshot_counts(
            name="Row counts before",
            database=Database("DATABASE_URL", "/srv/app/.env"),
            record="/var/lib/turnout/evidence/cutover/20261124T120000Z/outputs/rowcounts_before.json",
            once=True,
        )
    """
    if once and observe(FileDigest, path=record).get("exists"):
        host.noop(f"row counts already kept in {record} (the first measurement of this run)")
        return
    if not host.state.is_executing:
        yield from plan_keep(record, f"the row counts of every table of {database}")
        return
    counts = observe(RowCounts, database=database, tables=None, timeout_ms=timeout_ms)
    why = fact_problem(counts, f"count the rows of {database}")
    if why:
        yield from unobservable([why])
        return
    text = redact(json.dumps({"tables": counts["tables"]}, indent=2, sort_keys=True)) + "\n"
    yield from keep_text(record, text)
