"""The SQLite → PostgreSQL move's shape on a host (``deploys/sqlite_to_pg.py``,
``deploys/db_status.py``; SPEC S3): the settings it needs, where its state and reports live,
and whether the target's schema is still to be built.

    from turnout import sqlite_pg
    plan = sqlite_pg.plan_for_host(host)      # while the deploy loads: one line on a problem
    paths = sqlite_pg.paths(run)              # checkpoint, progress file, snapshot, reports
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from turnout.database import Database, app_database
from turnout.guard import refuse_destructive
from turnout.hostside.pgload import SNAPSHOT_NAME, VERIFIED_NAME
from turnout.preflight import PreflightError
from turnout.settings import Settings, load_settings

TASK = "sqlite_to_pg"


@dataclass(frozen=True)
class MovePlan:
    """What the move needs on this host: the SQLite file and the PostgreSQL target."""

    source: str
    target: Database


@dataclass(frozen=True)
class MovePaths:
    """Where the move keeps its state (across runs) and this run's reports."""

    state_dir: str
    checkpoint: str
    progress: str
    snapshot: str
    verified: str
    copy_report: str
    verify_report: str
    unique_report: str


def target_of(settings: Settings) -> Database:
    """The PostgreSQL the data moves to: ``pg_dsn_env`` read on the host (env or ``.env``),
    reached through ``db_service`` when it is reachable only inside compose (``db_connect``)."""
    via = app_database(settings).via
    return Database(settings.pg_dsn_env, settings.env_file_path, via=via)


def plan_for_host(host: Any) -> MovePlan:
    """The move's inputs on ``host``, checked while the deploy loads, before any step (with
    ``-y`` too): ``sqlite_path`` is set and is an SQLite file holding every ``copy_tables``
    table, the PostgreSQL target (``pg_dsn_env``) answers, and ``copy_restart`` (destructive)
    is released. A problem is one ``PreflightError`` line; nothing is changed."""
    from turnout.facts.pgload import SqliteSource
    from turnout.facts.postgres import PostgresServer
    from turnout.memo import observe
    from turnout.preflight import require

    install_failures()
    settings = load_settings(host.data)
    if not settings.sqlite_path:
        raise PreflightError(
            "sqlite_path is not set: name the app's SQLite file on the host, e.g. --data "
            "sqlite_path=/srv/app/data/app.db; nothing was changed"
        )
    if settings.copy_restart:
        refuse_destructive(
            host.data, "copy_restart (empties the tables copied into PostgreSQL)", host.groups
        )
    source = require(
        observe(SqliteSource, source=settings.sqlite_path, tables=settings.copy_tables),
        "check sqlite_path",
    )
    if source["missing"]:
        raise PreflightError(
            f"copy_tables: {', '.join(source['missing'])} not in {settings.sqlite_path} (its "
            f"tables: {', '.join(source['tables']) or 'none'}); fix copy_tables; nothing was "
            "changed"
        )
    target = target_of(settings)
    require(
        observe(PostgresServer, database=target),
        f"connect to the PostgreSQL target ({target})",
        f"check {target.dsn_env} in the host's environment or {settings.env_file_path} "
        "(setting pg_dsn_env names it) and that the server answers",
    )
    return MovePlan(source=settings.sqlite_path, target=target)


def state_paths(settings: Settings) -> dict[str, str]:
    """The move's state, which outlives a run: ``<evidence_root>/state/sqlite_to_pg/`` holds the
    snapshot, the progress file, the passed verification's marker and (unless ``checkpoint``
    names one) the local checkpoint.

    >>> state_paths(Settings(evidence_root="/e"))["progress"]
    '/e/state/sqlite_to_pg/progress.json'
    """
    state_dir = f"{settings.evidence_root}/state/{TASK}"
    return {
        "state_dir": state_dir,
        "checkpoint": settings.checkpoint or f"{state_dir}/checkpoint.json",
        "progress": f"{state_dir}/progress.json",
        "snapshot": f"{state_dir}/{SNAPSHOT_NAME}",
        "verified": f"{state_dir}/{VERIFIED_NAME}",
    }


def paths(run: Any) -> MovePaths:
    """The move's state files and this run's reports (in its ``outputs/``)."""
    return MovePaths(
        **state_paths(run.settings),
        copy_report=run.output("copy.json"),
        verify_report=run.output("verify.json"),
        unique_report=run.output("unique_precheck.json"),
    )


def install_failures() -> None:
    """One line per failure and turnout's Ctrl-C handling, for a runbook that takes no lock
    (``db_status.py`` runs beside a running copy)."""
    from turnout.failures import install_one_line_failures
    from turnout.lock import install_interrupt_handler

    install_one_line_failures()
    install_interrupt_handler()


def schema_pending(settings: Settings, target: Database) -> bool:
    """Whether the target is not at the app's Alembic head yet (the schema step has work), as
    measured by the same facts ``alembic.create_schema`` reads; False when it cannot be told
    (the schema step then explains)."""
    from pyinfra.api.exceptions import OperationError

    from turnout.cutover import compose_where
    from turnout.facts.postgres import AlembicRevision
    from turnout.memo import observe
    from turnout.operations.alembic import alembic_status

    try:
        heads = alembic_status(compose_where(settings), settings.app_service, settings.app_python)[
            "heads"
        ]
    except OperationError:  # the schema step reports the problem in its own words
        return False
    found = observe(AlembicRevision, database=target)
    return not found.get("ok") or sorted(found.get("revisions") or []) != sorted(heads)
