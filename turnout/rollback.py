"""What rolling a cutover back does on the current host (``deploys/rollback.py``; S0.10,
RELIABILITY 7).

The cutover to undo is ``rollback_run`` (its timestamp) or the latest one on the host that left a
``run.json``. Assets: the ``.prev_<ts>`` tree that cutover kept is swapped back in and the failed
tree kept as ``<assets_dir>.failed_<ts>``. Database (``rollback_db``): ``restore`` the cutover's
baseline backup (``src_artifacts/baseline.dump``), ``downgrade`` with Alembic to the revision
recorded before the cutover, or ``none``. Then up and health. Destructive: refused without the
release, before any step. A rerun after success changes nothing.

    from turnout import rollback
    target = rollback.cutover_to_undo(run)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from turnout.cutover import in_group
from turnout.guard import refuse_destructive
from turnout.preflight import PreflightError
from turnout.settings import load_settings


@dataclass(frozen=True)
class Undo:
    """The cutover run to undo on this host, and what it changed here."""

    run_dir: str
    timestamp: str
    record: dict
    swapped_assets: bool
    baseline: str | None
    revision_before: str | None


def refuse_unreleased(host: Any) -> None:
    """The rollback replaces the live assets and database: refused unless released."""
    from turnout.failures import install_one_line_failures
    from turnout.lock import install_interrupt_handler

    install_one_line_failures()  # a refusal here is one line too
    install_interrupt_handler()
    settings = load_settings(host.data)
    what = "rollback (swaps the assets back"
    what += ", restores the baseline database)" if settings.rollback_db == "restore" else ")"
    refuse_destructive(host.data, what, host.groups)


def cutover_to_undo(run: Any) -> Undo:
    """The cutover run to undo on this host (``rollback_run``, else the latest), read from its
    ``run.json``; ``PreflightError`` (one line) when there is none."""
    from turnout.facts.evidence import JsonFile, RunRecords
    from turnout.memo import observe

    settings = run.settings
    root = settings.evidence_root
    runs = observe(RunRecords, root=root, task="cutover").get("runs") or []
    if settings.rollback_run:
        chosen = [r for r in runs if r["timestamp"] == settings.rollback_run]
        if not chosen:
            raise PreflightError(
                f"no cutover run {settings.rollback_run} with a run.json under {root}/cutover on "
                "this host; set rollback_run to one of: "
                + (", ".join(r["timestamp"] for r in runs) or "none found")
                + "; nothing was changed"
            )
    elif not runs:
        raise PreflightError(
            f"no cutover run with a run.json under {root}/cutover on this host: nothing to roll "
            "back; nothing was changed"
        )
    else:
        chosen = runs[-1:]
    found = chosen[0]
    record = observe(JsonFile, path=f"{found['run_dir']}/run.json").get("data") or {}
    before = (record.get("revision_before") or {}).get("current") or []
    backup = record.get("backup") or {}
    baseline = f"{found['run_dir']}/src_artifacts/baseline.dump" if backup.get("sha256") else None
    return Undo(
        run_dir=found["run_dir"],
        timestamp=found["timestamp"],
        record=record,
        swapped_assets=bool(record.get("restore_assets")),
        baseline=baseline,
        revision_before=before[0] if len(before) == 1 else None,
    )


def check_undo(run: Any, undo: Undo, db_host: bool) -> None:
    """What the database rollback needs is there (one line, nothing changed, when not)."""
    mode = run.settings.rollback_db
    if not db_host or mode == "none":
        return
    if mode == "restore" and not undo.baseline:
        raise PreflightError(
            f"cutover run {undo.timestamp} kept no baseline backup on this host, so its database "
            "cannot be restored; use rollback_db=downgrade or none; nothing was changed"
        )
    if mode == "downgrade" and not undo.revision_before:
        raise PreflightError(
            f"cutover run {undo.timestamp} recorded no single Alembic revision before it, so "
            "there is nothing to downgrade to; use rollback_db=restore; nothing was changed"
        )


def roles(host: Any, settings: Any) -> tuple[bool, bool]:
    """(app host, database host) — the cutover's groups."""
    return in_group(settings.app_hosts_group, host.groups), in_group(
        settings.db_hosts_group, host.groups
    )


def operator_name(setting: str | None) -> str:
    """Who runs the rollback (``turnout.runrecord.operator_name``)."""
    from turnout.runrecord import operator_name as name

    return name(setting)


def pending(
    run: Any,
    undo: Undo,
    swaps_back: bool,
    restores: bool,
    downgrades: bool,
    swap_marker: str,
    restore_marker: str,
    db_exec: list[str] | None,
) -> list[str]:
    """The rollback's steps on this host that still have work to do."""
    from turnout.cutover import compose_where
    from turnout.facts.alembic import AlembicStatus
    from turnout.facts.dump import DumpInfo, RestoreMarker
    from turnout.facts.swap import AssetSwapBackPlan
    from turnout.memo import observe
    from turnout.operations.alembic import service_running

    settings = run.settings
    left = []
    if swaps_back:
        back = observe(
            AssetSwapBackPlan,
            dest=settings.assets_dir,
            marker=swap_marker,
            timestamp=run.timestamp,
        )
        if not back.get("up_to_date"):
            left.append("assets")
    if restores:
        info = observe(DumpInfo, path=undo.baseline, verify=False, pg_bin="", compose_exec=db_exec)
        if info.get("sha256") != observe(RestoreMarker, marker=restore_marker).get("dump_sha256"):
            left.append("database")
    if downgrades:
        where = compose_where(settings)
        status = observe(
            AlembicStatus,
            **where,
            service=settings.app_service,
            app_python=settings.app_python,
            running=service_running(where, settings.app_service),
        )
        if status.get("current") != [undo.revision_before]:
            left.append("database")
    return left
