"""What the production cutover does on the current host (``deploys/cutover.py``; SPEC S0).

``plan_for_host`` decides, while the deploy loads and before anything is measured, which of the
chosen steps (setting ``steps``, always in ``CUTOVER_STEPS`` order) run on this host: the app
hosts (``app_hosts_group``) freeze, restore assets, come up, pass health and smoke; the database
host (``db_hosts_group``) backs up, restores the database and migrates, once. A destructive step
asked for (``src_assets``, ``src_dump``) without the release refuses the whole run here, before
its first step, on every host. ``check_plan`` then completes the plan with what needs the run:
the revision health must report (Alembic's head, asked in the app's container), the smoke
credentials (the operator's environment or a prompt), the run record.

    from turnout import cutover
    plan = cutover.plan_for_host(host)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from turnout.constants import CUTOVER_STEPS
from turnout.guard import refuse_destructive
from turnout.preflight import PreflightError
from turnout.runrecord import operator_name
from turnout.settings import Settings, SettingsError, load_settings

APP_STEPS = ("freeze", "restore-assets", "up", "health", "smoke")
DB_STEPS = ("backup", "restore-db", "migrate")
# Each destructive step, the setting that asks for it, and what the refusal says it would do.
DESTRUCTIVE = {
    "restore-assets": ("src_assets", "restore-assets (replaces the live assets directory)"),
    "restore-db": ("src_dump", "restore-db (pg_restore --clean replaces the database)"),
}


@dataclass(frozen=True)
class CutoverPlan:
    """The cutover on one host: its roles, the steps it runs and the ones it does not (why)."""

    app_host: bool
    db_host: bool
    steps: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]
    databases: tuple[str, ...]
    db_exec: list[str] | None = None
    health_expect: dict[str, str] = field(default_factory=dict)
    smoke: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    records: dict[str, str] = field(default_factory=dict)

    def runs(self, step: str) -> bool:
        """Whether ``step`` runs on this host."""
        return step in self.steps


def in_group(group: str | None, groups: object) -> bool:
    """A host belongs to a role's group, or the role has no group (every host has it)."""
    return group is None or group in set(groups)


def why_not(step: str, settings: Settings, app_host: bool, db_host: bool) -> str | None:
    """Why ``step`` does not run on this host (None: it runs)."""
    if step not in settings.steps:
        return "not chosen in steps"
    if step in APP_STEPS and not app_host:
        return f"not an app host (app_hosts_group={settings.app_hosts_group})"
    if step in DB_STEPS and not db_host:
        return f"not the database host (db_hosts_group={settings.db_hosts_group})"
    if step == "smoke" and not settings.smoke:
        return "smoke is off (smoke=false)"
    if step == "health" and not settings.health:
        return "health is off (health=false)"
    if step == "restore-assets" and not settings.src_assets:
        return "no src_assets given"
    if step == "restore-db" and not settings.src_dump:
        return "no src_dump given"
    if step == "restore-db" and settings.sqlite_path:
        return "the app runs on SQLite (sqlite_path): restore-db restores PostgreSQL dumps"
    return None


def plan_for_host(host: Any) -> CutoverPlan:
    """The steps of the cutover on ``host`` (see the module docstring). Raises
    ``ReleaseRefused`` for a destructive step asked for without the release, and
    ``SettingsError`` for settings that cannot work together."""
    from turnout.failures import install_one_line_failures
    from turnout.lock import install_interrupt_handler

    install_one_line_failures()  # a refusal here is one line too
    install_interrupt_handler()
    settings = load_settings(host.data)
    for step, (setting, what) in DESTRUCTIVE.items():
        if step in settings.steps and getattr(settings, setting):
            refuse_destructive(host.data, what, host.groups)
    for setting in ("app_hosts_group", "db_hosts_group"):
        group = getattr(settings, setting)
        if group and not host.inventory.groups.get(group):
            raise SettingsError(
                f"setting {setting} names group {group!r}, which the inventory does not have; "
                "add the group to the inventory (inventories/prod.py builds prod_app and prod_db "
                "from TURNOUT_PROD_APP_HOSTS/TURNOUT_PROD_DB_HOSTS) or unset the setting"
            )
    app_host = in_group(settings.app_hosts_group, host.groups)
    db_host = in_group(settings.db_hosts_group, host.groups)
    reasons = {step: why_not(step, settings, app_host, db_host) for step in CUTOVER_STEPS}
    steps = tuple(step for step in CUTOVER_STEPS if reasons[step] is None)
    uses_postgres = db_host and not settings.sqlite_path and bool(set(steps) & set(DB_STEPS))
    return CutoverPlan(
        app_host=app_host,
        db_host=db_host,
        steps=steps,
        skipped=tuple((step, reasons[step]) for step in CUTOVER_STEPS if reasons[step]),
        databases=("target",) if uses_postgres else (),
    )


def compose_where(settings: Settings) -> dict[str, Any]:
    """The app's compose project, as the compose and Alembic operations take it."""
    from turnout.facts.compose import project_where

    return project_where(
        settings.env_file_path,
        settings.compose_file_path,
        settings.compose_project,
        settings.docker_bin,
    )


def db_exec_argv(settings: Settings) -> list[str] | None:
    """How to run libpq tools inside the database's compose service (``db_in_compose``, or
    ``db_connect=compose``)."""
    if not settings.db_tools_in_compose:
        return None
    from turnout.facts.compose import compose_exec_argv

    return compose_exec_argv(settings.db_service, **compose_where(settings))


def check_plan(run: Any, plan: CutoverPlan) -> CutoverPlan:
    """Complete ``plan`` with what needs the run (see the module docstring); raises
    ``PreflightError`` (one line) when it cannot be known, before any step ran."""
    settings = run.settings
    if plan.runs("restore-assets") and not settings.assets_dir:
        raise PreflightError(
            "restore-assets needs assets_dir (the live assets directory on the host); set it, "
            "or leave src_assets out; nothing was changed"
        )
    if plan.runs("restore-db"):
        from turnout.runbook import require_given_dump

        require_given_dump(
            "src_dump", settings.src_dump, "leave src_dump out", db_exec_argv(settings)
        )
    expect = dict(settings.health_expect_map)
    revision_key = settings.health_revision_key
    if plan.runs("health") and "migrate" in settings.steps and revision_key:
        expect.setdefault(revision_key, alembic_head(settings))
    smoke_arguments: dict[str, Any] = {}
    if plan.runs("smoke"):
        from turnout.smoke import core_arguments, smoke_credentials

        smoke_credentials()  # asks, or fails with one line, now: before any step
        smoke_arguments = core_arguments(settings)
    record = {
        "task": run.task,
        "timestamp": run.timestamp,
        "run_dir": run.run_dir,
        "operator": operator_name(settings.operator_name),
        "steps_chosen": list(settings.steps),
        "steps_on_this_host": list(plan.steps),
        "roles": [r for r, on in (("app", plan.app_host), ("db", plan.db_host)) if on],
    }
    baseline = "baseline.sqlite3" if settings.sqlite_path else "baseline.dump"
    records = {
        "revision_before": run.output("alembic_before.json") if plan.runs("migrate") else None,
        "revision_after": run.output("alembic_after.json") if plan.runs("migrate") else None,
        "backup": run.artifact(f"{baseline}.sha256") if plan.runs("backup") else None,
        # The markers of the restores, when this run restores (they name the artifacts by sha256).
        "restore_db": f"{run.state_dir}/restored-{settings.target_dsn_env}.json"
        if plan.runs("restore-db")
        else None,
        "restore_assets": f"{run.state_dir}/assets-swap.json"
        if plan.runs("restore-assets")
        else None,
    }
    return replace(
        plan,
        db_exec=db_exec_argv(settings),
        health_expect=expect,
        smoke=smoke_arguments,
        record={**record, "src_dump": settings.src_dump, "src_assets": settings.src_assets},
        records={k: v for k, v in records.items() if v},
    )


def alembic_head(settings: Settings) -> str:
    """The code's single Alembic head, asked of Alembic in the app's service, for the health
    check's expected revision."""
    from turnout.facts.alembic import AlembicStatus
    from turnout.memo import observe
    from turnout.operations.alembic import service_running

    where = compose_where(settings)
    try:
        running = service_running(where, settings.app_service)
    except Exception as error:  # noqa: BLE001 - reported as one line below
        raise PreflightError(
            f"cannot read the compose services: {error}; nothing was changed"
        ) from None
    status = observe(
        AlembicStatus,
        **where,
        service=settings.app_service,
        app_python=settings.app_python,
        running=running,
    )
    if not status.get("ok"):
        raise PreflightError(
            f"cannot ask Alembic for the head revision in compose service "
            f"{settings.app_service} ({status.get('error')}); check app_python and app_service, "
            "or leave health out of steps; nothing was changed"
        )
    if len(status["heads"]) != 1:
        raise PreflightError(
            f"Alembic reports {len(status['heads'])} heads ({', '.join(status['heads'])}); "
            "merge them before the cutover; nothing was changed"
        )
    return status["heads"][0]


def freeze_not_needed(run: Any, plan: CutoverPlan) -> str | None:
    """Why the writers need not be stopped again (None: they must be): see ``completed_run``,
    with the cutover's steps that need a freeze (``pending_writes``)."""
    return completed_run(
        run,
        {k: plan.record.get(k) for k in ("steps_chosen", "src_dump", "src_assets")},
        lambda: pending_writes(run, plan),
    )


def completed_run(run: Any, same: dict, pending: Any) -> str | None:
    """A reason to leave the writers running, or None: this run (its pinned timestamp) completed
    already — its ``run.json`` says ``exit`` 0 with the same values for ``same`` — and
    ``pending()`` (the steps needing the writers stopped that still have work on this host) is
    empty. A rerun of a completed runbook then changes nothing."""
    previous = _json(observe_json(f"{run.run_dir}/run.json"))
    if not previous or previous.get("exit") != 0:
        return None
    if any(previous.get(key) != value for key, value in same.items()):
        return None
    if pending():
        return None
    return f"this run ({run.timestamp}) completed already and nothing needing a freeze is left"


def observe_json(path: str) -> dict:
    from turnout.facts.evidence import JsonFile
    from turnout.memo import observe

    return observe(JsonFile, path=path)


def _json(found: dict) -> dict | None:
    data = found.get("data") if found.get("ok", True) else None
    return data if isinstance(data, dict) else None


def pending_writes(run: Any, plan: CutoverPlan) -> list[str]:
    """The steps on this host that need the writers stopped and still have work to do."""
    from turnout.facts.alembic import AlembicStatus
    from turnout.facts.dump import DumpInfo, RestoreMarker, SqliteBackup
    from turnout.facts.swap import AssetSwapPlan
    from turnout.memo import observe
    from turnout.operations.alembic import service_running

    settings = run.settings
    pending = []
    if plan.runs("backup"):
        if settings.sqlite_path:
            done = observe(
                SqliteBackup, dest=run.artifact("baseline.sqlite3"), source=settings.sqlite_path
            ).get("trusted")
        else:
            done = observe(
                DumpInfo,
                path=run.artifact("baseline.dump"),
                verify=False,
                pg_bin="",
                compose_exec=plan.db_exec,
            ).get("trusted")
        if not done:
            pending.append("backup")
    if plan.runs("restore-db"):
        info = observe(
            DumpInfo, path=settings.src_dump, verify=False, pg_bin="", compose_exec=plan.db_exec
        )
        marker = observe(
            RestoreMarker, marker=f"{run.state_dir}/restored-{settings.target_dsn_env}.json"
        )
        if settings.restore == "always" or info.get("sha256") != marker.get("dump_sha256"):
            pending.append("restore-db")
    if plan.runs("restore-assets"):
        swap = observe(
            AssetSwapPlan,
            tarball=settings.src_assets,
            dest=settings.assets_dir,
            marker=f"{run.state_dir}/assets-swap.json",
            timestamp=run.timestamp,
        )
        if not swap.get("up_to_date"):
            pending.append("restore-assets")
    if plan.runs("migrate"):
        where = compose_where(settings)
        status = observe(
            AlembicStatus,
            **where,
            service=settings.app_service,
            app_python=settings.app_python,
            running=service_running(where, settings.app_service),
        )
        if not status.get("at_head"):
            pending.append("migrate")
    return pending
