"""Validation steps of a rehearsal or cutover (S1.4-S1.8): database, assets, extensions.

Each step observes with facts at execution time (after the restore and the mirror ran), keeps its
report as JSON in the evidence ``outputs/`` (changed only when the result changed, so a rerun on an
unchanged host reports no change) and fails the run with the reason in one line. While planning
it describes what it will check; the state before the restore says nothing about the result.
"""

import io
import json

from pyinfra import host
from pyinfra.api import operation
from pyinfra.operations import files

from turnout.dsn import redact
from turnout.facts.assets import AssetSample
from turnout.facts.postgres import Extensions, Orphans, RowCounts
from turnout.failures import fact_problem, fail_command
from turnout.validation import (
    asset_failures,
    compare_counts,
    count_failures,
    count_rows_as_dicts,
    extension_failures,
    orphan_failures,
    render_count_table,
)


def unobservable(step: str, record: str, problems: list[str]):
    """The target cannot be observed: at execution that fails the step; while planning it is
    expected (the restore has not run yet), so the step is planned as a change."""
    if host.state.is_executing:
        yield fail_command(problems)
        return
    host.log(f"(not observable before the earlier steps run: {problems[0]})")
    yield from record_report(record, {"step": step, "verdict": "pending", "failures": []}, [])


def record_report(record: str, report: dict, failures: list[str]):
    """Keep ``report`` in ``record`` (0600; unchanged content is not rewritten) and, at execution
    time, fail the step when there are ``failures``."""
    text = redact(json.dumps(report, indent=2, sort_keys=True)) + "\n"
    yield from files.put._inner(src=io.StringIO(text), dest=record, mode="600")
    if failures and host.state.is_executing:
        yield fail_command(failures)


@operation()
def database(
    source_dsn_env: str,
    target_dsn_env: str,
    record: str,
    env_file: str | None = None,
    tables: tuple[str, ...] | None = None,
    relations: tuple[str, ...] = (),
    timeout_ms: int = 3000,
    allowed_diff: int = 0,
    require_exact: bool = False,
    python: str = "python3",
):
    """
    Compare per-table row counts of source and target (exact ``count(*)`` under ``timeout_ms``,
    else the planner estimate, each labelled) and check the target for orphan rows (declared
    ``relations`` and every foreign key). Fails on a difference beyond ``allowed_diff`` (only
    judged when both counts are exact), on an estimate when ``require_exact``, and on orphans.

    + source_dsn_env / target_dsn_env: variables holding the DSNs on the host
    + record: JSON report path, e.g. ``<evidence>/outputs/validate_db.json``
    + env_file: the server-side ``.env`` the variables are read from
    + tables: tables to compare (default: every table of the source)
    + relations: extra ``child.col->parent.col`` orphan checks

    .. code:: python

        from turnout.operations import validate
        validate.database(
            name="Validate database",
            source_dsn_env="SOURCE_DATABASE_URL",
            target_dsn_env="DATABASE_URL",
            env_file="/srv/app/.env",
            record="/var/lib/turnout/evidence/dry_run/20261123T120000Z/outputs/validate_db.json",
        )
    """
    scope = ", ".join(tables) if tables else "every table of the source"
    if not host.state.is_executing:
        host.log(
            f"Will validate row counts ({scope}; count timeout {timeout_ms} ms, allowed "
            f"difference {allowed_diff}{', exact counts required' if require_exact else ''}) "
            f"and orphans on the target; report in {record}"
        )
    counts = {}
    for side, dsn_env in (("source", source_dsn_env), ("target", target_dsn_env)):
        counts[side] = host.get_fact(
            RowCounts,
            dsn_env=dsn_env,
            env_file=env_file,
            tables=list(tables) if tables else None,
            timeout_ms=timeout_ms,
            python=python,
        )
    orphans = host.get_fact(
        Orphans, dsn_env=target_dsn_env, env_file=env_file, relations=list(relations), python=python
    )
    problems = [
        p
        for p in (
            fact_problem(counts["source"], f"count rows with {source_dsn_env}"),
            fact_problem(counts["target"], f"count rows with {target_dsn_env}"),
            fact_problem(orphans, f"check orphans with {target_dsn_env}"),
        )
        if p
    ]
    if problems:
        yield from unobservable("validate_database", record, problems)
        return
    rows = compare_counts(
        counts["source"]["tables"],
        counts["target"]["tables"],
        allowed_diff=allowed_diff,
        require_exact=require_exact,
    )
    failures = count_failures(rows) + orphan_failures(orphans["checks"])
    if host.state.is_executing:
        for line in render_count_table(rows).splitlines():
            host.log(line)
    report = {
        "step": "validate_database",
        "verdict": "fail" if failures else "pass",
        "failures": failures,
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
    dsn_env: str,
    columns: tuple[str, ...],
    assets_dir: str,
    record: str,
    env_file: str | None = None,
    prefix: str = "/app/.data",
    sample_size: int = 50,
    seed: int = 0,
    python: str = "python3",
):
    """
    Check the assets the target database references: every path starts with ``prefix``, and a
    seeded random sample of ``sample_size`` paths is readable under ``assets_dir`` on the host.

    + dsn_env: variable holding the target DSN on the host
    + columns: ``table.column`` path columns
    + assets_dir: the host directory mounted at ``prefix`` in the app's containers
    + record: JSON report path, e.g. ``<evidence>/outputs/validate_assets.json``

    .. code:: python

        from turnout.operations import validate
        validate.assets(
            name="Validate assets",
            dsn_env="DATABASE_URL",
            env_file="/srv/app/.env",
            columns=("knowledge_materials.storage_path", "ugc_assets.storage_path"),
            assets_dir="/srv/app/data/assets",
            record="/var/lib/turnout/evidence/dry_run/20261123T120000Z/outputs/validate_assets.json",
        )
    """
    if not host.state.is_executing:
        host.log(
            f"Will check that every path in {', '.join(columns)} starts with {prefix} and that "
            f"{sample_size} sampled (seed {seed}) are readable under {assets_dir}; "
            f"report in {record}"
        )
    sample = host.get_fact(
        AssetSample,
        dsn_env=dsn_env,
        columns=list(columns),
        assets_dir=assets_dir,
        env_file=env_file,
        prefix=prefix,
        sample_size=sample_size,
        seed=seed,
        python=python,
    )
    why = fact_problem(sample, f"sample assets with {dsn_env}")
    if why:
        yield from unobservable("validate_assets", record, [why])
        return
    failures = asset_failures(sample)
    if host.state.is_executing:
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
    dsn_env: str,
    required: tuple[str, ...],
    record: str,
    env_file: str | None = None,
    python: str = "python3",
):
    """
    Fail when an extension in ``required`` is not installed in the target database (S1.6).

    .. code:: python

        from turnout.operations import validate
        validate.extensions(
            name="Required extensions",
            dsn_env="DATABASE_URL",
            env_file="/srv/app/.env",
            required=("vector",),
            record="/var/lib/turnout/evidence/dry_run/20261123T120000Z/outputs/extensions.json",
        )
    """
    if not host.state.is_executing:
        host.log(f"Will check the target has the extensions: {', '.join(required) or 'none'}")
    found = host.get_fact(Extensions, dsn_env=dsn_env, env_file=env_file, python=python)
    why = fact_problem(found, f"list extensions with {dsn_env}")
    if why:
        yield from unobservable("validate_extensions", record, [why])
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
