"""What a schema release does on the current host (``deploys/migrate.py``; SPEC S2).

``plan_for_host`` decides while the deploy loads: forward (backup, maintenance, pre-checks,
duplicates gate, pending-revision checks, upgrade, after-checks) or, with ``rollback``, the way
back — ``-1``/``<revision>`` (``alembic downgrade``, every revision on the way down reversible) or
``restore`` (the release's verified backup put back: pg_restore, or the SQLite file). The hosts'
roles are the cutover's (``app_hosts_group``, ``db_hosts_group``): the database host backs up,
checks and migrates once; the app hosts freeze, come up, pass health and smoke. A rollback is
refused without the release, before any step.

    from turnout import release
    plan = release.plan_for_host(host)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from turnout.cutover import alembic_head, compose_where, db_exec_argv, in_group
from turnout.guard import refuse_destructive
from turnout.preflight import PreflightError
from turnout.runrecord import operator_name
from turnout.settings import load_settings


@dataclass(frozen=True)
class ReleasePlan:
    """The schema release on one host."""

    app_host: bool
    db_host: bool
    sqlite: bool
    rollback: str | None
    databases: tuple[str, ...]
    db_exec: list[str] | None = None
    health_expect: dict[str, str] = field(default_factory=dict)
    smoke: dict[str, Any] = field(default_factory=dict)
    undo: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    records: dict[str, str] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        """``release``, ``downgrade`` or ``restore``."""
        if self.rollback is None:
            return "release"
        return "restore" if self.rollback == "restore" else "downgrade"


def plan_for_host(host: Any) -> ReleasePlan:
    """The release's shape on ``host``; a rollback without the release is refused here."""
    from turnout.failures import install_one_line_failures
    from turnout.lock import install_interrupt_handler

    install_one_line_failures()
    install_interrupt_handler()
    settings = load_settings(host.data)
    if settings.rollback:
        what = (
            "the schema rollback (puts the release's backup back)"
            if settings.rollback == "restore"
            else f"the schema rollback (alembic downgrade {settings.rollback})"
        )
        refuse_destructive(host.data, what, host.groups)
    app_host = in_group(settings.app_hosts_group, host.groups)
    db_host = in_group(settings.db_hosts_group, host.groups)
    sqlite = bool(settings.sqlite_path)
    return ReleasePlan(
        app_host=app_host,
        db_host=db_host,
        sqlite=sqlite,
        rollback=settings.rollback,
        databases=("target",) if db_host and not sqlite else (),
    )


def release_to_undo(run: Any) -> dict:
    """The schema release a rollback undoes: ``rollback_run`` or the latest migrate run that
    passed, with its backup and revisions (``PreflightError`` when there is none)."""
    from turnout.facts.evidence import JsonFile, RunRecords
    from turnout.memo import observe

    settings = run.settings
    runs = [
        r
        for r in observe(RunRecords, root=settings.evidence_root, task="migrate").get("runs") or []
        if r["run_dir"] != run.run_dir
    ]
    records = [
        (r, observe(JsonFile, path=f"{r['run_dir']}/run.json").get("data") or {}) for r in runs
    ]
    releases = [(r, rec) for r, rec in records if rec.get("mode") == "release"]
    if settings.rollback_run:
        releases = [(r, rec) for r, rec in releases if r["timestamp"] == settings.rollback_run]
    else:
        releases = [(r, rec) for r, rec in releases if rec.get("exit") == 0][-1:]
    if not releases:
        which = f"release {settings.rollback_run}" if settings.rollback_run else "passed release"
        raise PreflightError(
            f"no schema {which} with a run.json under {settings.evidence_root}/migrate on this "
            "host to roll back; set rollback_run to its timestamp; nothing was changed"
        )
    found, record = releases[-1]
    baseline = "baseline.sqlite3" if settings.sqlite_path else "baseline.dump"
    return {
        "run_dir": found["run_dir"],
        "timestamp": found["timestamp"],
        "backup": f"{found['run_dir']}/src_artifacts/{baseline}",
        "revisions": record.get("revisions") or {},
    }


def downgrade_target(run: Any, undo: dict) -> str:
    """The revision ``rollback`` names, ``-1`` taken from the revision the undone release
    reached (so a rerun resolves it to the same revision, and changes nothing)."""
    wanted = run.settings.rollback
    if wanted != "-1":
        return wanted
    reached = (undo.get("revisions") or {}).get("after")
    if not reached:
        raise PreflightError(
            f"the release {undo['timestamp']} recorded no revision after it, so -1 cannot be "
            "resolved; give rollback=<revision>; nothing was changed"
        )
    from turnout.facts.alembic import AlembicDowngradePath
    from turnout.memo import observe
    from turnout.operations.alembic import service_running

    settings = run.settings
    where = compose_where(settings)
    path = observe(
        AlembicDowngradePath,
        current=reached,
        target="-1",
        **where,
        service=settings.app_service,
        app_python=settings.app_python,
        running=service_running(where, settings.app_service),
    )
    if not path.get("ok"):
        raise PreflightError(
            f"cannot resolve rollback=-1 from {reached}: {path.get('error')}; nothing was changed"
        )
    return path["target"]


def restore_command(run: Any) -> str:
    """The command that puts this release's backup back (S2.1: kept with the backup)."""
    return (
        "pyinfra inventories/prod.py deploys/migrate.py --data rollback=restore "
        f"--data rollback_run={run.timestamp} --data i_know_what_im_doing=true"
    )


def check_plan(run: Any, plan: ReleasePlan) -> ReleasePlan:
    """Complete ``plan`` with what needs the run: the release undone (rollback), the revision
    health must report, the smoke credentials, the run record's fields."""
    settings = run.settings
    undo: dict = {}
    expect = dict(settings.health_expect_map)
    revision_key = settings.health_revision_key
    if plan.rollback:
        undo = release_to_undo(run)
        if plan.mode == "downgrade":
            undo["target"] = downgrade_target(run, undo)
            expected_revision = undo["target"]
        else:
            expected_revision = (undo.get("revisions") or {}).get("before")
    elif settings.target_revision == "head":
        expected_revision = alembic_head(settings) if plan.app_host and settings.health else None
    else:
        expected_revision = settings.target_revision
    if revision_key and expected_revision and settings.health:
        expect.setdefault(revision_key, expected_revision)
    smoke_arguments: dict = {}
    if plan.app_host and settings.smoke:
        from turnout.smoke import core_arguments, smoke_credentials

        smoke_credentials()
        smoke_arguments = core_arguments(settings)
    record = {
        "task": run.task,
        "mode": plan.mode,
        "timestamp": run.timestamp,
        "run_dir": run.run_dir,
        "operator": operator_name(settings.operator_name),
        "roles": [r for r, on in (("app", plan.app_host), ("db", plan.db_host)) if on],
        "target_revision": settings.target_revision if not plan.rollback else undo.get("target"),
        "undoes": undo.get("run_dir"),
    }
    baseline = "baseline.sqlite3" if plan.sqlite else "baseline.dump"
    records: dict[str, str] = {}
    if plan.db_host:
        records = {
            "revision_before": run.output("alembic_before.json"),
            "revision_after": run.output("alembic_after.json"),
        }
        if not plan.rollback:
            records.update(
                backup=run.artifact(f"{baseline}.sha256"),
                prechecks_before=run.output("prechecks_before.json"),
                prechecks_after=run.output("prechecks_after.json"),
            )
            if not plan.sqlite:
                records["pending_revisions"] = run.output("pending_revisions.json")
            if settings.unique_gate:
                records["unique_gate"] = run.output("unique_gate.json")
            if settings.dedupe and not plan.sqlite:
                records["dedupe"] = run.output("dedupe.json")
            record["restore_with"] = restore_command(run)
    return replace(
        plan,
        db_exec=db_exec_argv(settings),
        health_expect=expect,
        smoke=smoke_arguments,
        undo=undo,
        record=record,
        records=records,
    )


def expected_after(run: Any, plan: ReleasePlan) -> str | None:
    """The revision the database must be at when the run ends: the downgrade's target, the
    release's target (``head`` for the heads), the undone release's revision before for a
    restore (None when that release recorded none)."""
    if plan.mode == "downgrade":
        return plan.undo["target"]
    if plan.mode == "restore":
        before = (plan.undo.get("revisions") or {}).get("before")
        return before or None
    return run.settings.target_revision


def gate_parts(text: str) -> tuple[str, list[str], str]:
    """(table, columns, constraint) of the ``unique_gate`` setting.

    >>> gate_parts("uq_meter_unit_kind_slot=meters(unit_id, kind, slot)")
    ('meters', ['unit_id', 'kind', 'slot'], 'uq_meter_unit_kind_slot')
    """
    from turnout.hostside.checks import parse_gate

    gate = parse_gate(text)
    return gate["table"], gate["columns"], gate["constraint"]


def restore_command_of(undo: dict) -> str:
    """The command restoring the backup of the release ``undo``."""
    return (
        "pyinfra inventories/prod.py deploys/migrate.py --data rollback=restore "
        f"--data rollback_run={undo['timestamp']} --data i_know_what_im_doing=true"
    )


def completed(run: Any, plan: ReleasePlan) -> str | None:
    """Why the writers need not be stopped again (``turnout.cutover.completed_run``): this run
    passed already, and nothing needing the writers stopped is left on this host."""
    from turnout.cutover import completed_run

    same = {"mode": plan.mode, "target_revision": plan.record.get("target_revision")}
    return completed_run(run, same, lambda: pending(run, plan))


def pending(run: Any, plan: ReleasePlan) -> list[str]:
    """The steps on this host that need the writers stopped and still have work to do."""
    from turnout.facts.alembic import AlembicStatus
    from turnout.facts.dump import DumpInfo, RestoreMarker, SqliteBackup, SqliteRestore
    from turnout.memo import observe
    from turnout.operations.alembic import service_running

    if not plan.db_host:
        return []
    settings = run.settings
    left = []
    where = compose_where(settings)
    status = observe(
        AlembicStatus,
        **where,
        service=settings.app_service,
        app_python=settings.app_python,
        running=service_running(where, settings.app_service),
    )
    current = status.get("current") or []
    if plan.mode == "release":
        baseline = run.artifact("baseline.sqlite3" if plan.sqlite else "baseline.dump")
        if plan.sqlite:
            backup = observe(SqliteBackup, dest=baseline, source=settings.sqlite_path)
        else:
            backup = observe(
                DumpInfo, path=baseline, verify=False, pg_bin="", compose_exec=plan.db_exec
            )
        if not backup.get("trusted"):
            left.append("backup")
        target = settings.target_revision
        if not (status.get("at_head") if target == "head" else current == [target]):
            left.append("upgrade")
    elif plan.mode == "downgrade":
        if current != [plan.undo["target"]]:
            left.append("downgrade")
    elif plan.sqlite:
        if not observe(SqliteRestore, backup=plan.undo["backup"], dest=settings.sqlite_path).get(
            "restored"
        ):
            left.append("restore")
    else:
        info = observe(
            DumpInfo, path=plan.undo["backup"], verify=False, pg_bin="", compose_exec=plan.db_exec
        )
        marker = observe(
            RestoreMarker, marker=f"{run.state_dir}/restored-{settings.target_dsn_env}.json"
        )
        if info.get("sha256") != marker.get("dump_sha256"):
            left.append("restore")
    return left
