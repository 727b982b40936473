"""The run's audit record, ``<run_dir>/run.json`` (S0.3, S2.9): who ran which steps, when, with
what outcome, the revisions before and after and the artifacts by sha256.

A state callback (``StepClock``, installed by ``start_runbook``) notes when each operation
starts and ends on each host. The runbook's last step (``evidence.run_record``) writes the
record; a step that fails writes it at once with the failed step named (``exit`` is then
``"failed"``), so a run that stops half-way still leaves its record.

Rerun rule (idempotency): a step's entry is replaced only when the step changed something in
this run, or has no entry yet; a rerun that changes nothing leaves ``run.json`` as it was.

    from turnout.runrecord import build_record
    build_record(previous=None, steps=[...], run={...})
"""

from __future__ import annotations

import getpass
import json
import os
import time
from typing import Any

from pyinfra.api.state import BaseStateCallback


def now() -> str:
    """UTC time, to the second: ``2026-11-24T12:00:00Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def operator_name(setting: str | None = None) -> str:
    """Who runs turnout: the ``operator_name`` setting, else ``$SUDO_USER``, else ``$USER``
    (else the login name) of the control machine."""
    return setting or os.environ.get("SUDO_USER") or os.environ.get("USER") or getpass.getuser()


class StepClock(BaseStateCallback):
    """Start and end time of each operation on each host (``state._turnout_clock``)."""

    @staticmethod
    def operation_host_start(state: Any, host: Any, op_hash: Any) -> None:
        if op_hash not in state.ops[host]:
            return  # an operation this host does not run (pyinfra reports it "Skipped")
        clock(state).setdefault(host.name, {})[op_hash] = {"start": now()}

    @staticmethod
    def operation_host_success(state: Any, host: Any, op_hash: Any, retry_count: int = 0) -> None:
        clock(state).setdefault(host.name, {}).setdefault(op_hash, {}).update(
            end=now(), status="ok"
        )

    @staticmethod
    def operation_host_error(state: Any, host: Any, op_hash: Any, *args: Any) -> None:
        clock(state).setdefault(host.name, {}).setdefault(op_hash, {}).update(
            end=now(), status="failed"
        )
        writer = getattr(host, "_turnout_failed_record", None)
        if writer:
            writer(state, host, op_hash)


def clock(state: Any) -> dict:
    """The clock of this run (created on first use)."""
    times = getattr(state, "_turnout_clock", None)
    if times is None:
        times = {}
        state._turnout_clock = times
    return times


def install_step_clock(state: Any) -> None:
    """Start noting step times (once per run)."""
    if not getattr(state, "_turnout_clock_installed", False):
        state._turnout_clock_installed = True
        clock(state)
        state.add_callback_handler(StepClock())


def steps_so_far(state: Any, host: Any) -> list[dict]:
    """This host's operations that ran so far in this run, in order: name, start, end, whether
    they changed something, ok/failed."""
    times = clock(state).get(host.name, {})
    steps = []
    for op_hash in state.get_op_order():
        if op_hash not in times or op_hash not in state.ops[host]:
            continue
        entry = dict(times[op_hash])
        if not entry.get("end"):
            continue  # the step running now (the record itself)
        meta = state.get_op_data_for_host(host, op_hash).operation_meta
        name = ", ".join(state.get_op_meta(op_hash).names) or "Operation"
        complete = meta.is_complete()
        entry["changed"] = bool(complete and meta.did_change())
        if entry.get("status") == "failed":
            entry["changed"] = True  # a failed step may have changed something: always recorded
        steps.append({"name": name, **entry})
    return steps


def build_record(previous: dict | None, steps: list[dict], run: dict) -> dict:
    """The record to keep: ``run`` (task, timestamp, operator, revisions, artifacts…) with the
    steps merged into the previous record's by the rerun rule (see the module docstring).

    >>> first = build_record(None, [{"name": "Freeze", "start": "a", "end": "b",
    ...                              "changed": True, "status": "ok"}], {"task": "cutover"})
    >>> again = build_record(first, [{"name": "Freeze", "start": "c", "end": "d",
    ...                               "changed": False, "status": "ok"}], {"task": "cutover"})
    >>> again == first
    True
    """
    previous = previous or {}
    kept = dict(previous.get("steps") or {})
    changed = False
    for step in steps:
        name = step["name"]
        entry = {k: step.get(k) for k in ("start", "end", "changed", "status")}
        if step.get("changed") or name not in kept:
            changed = changed or kept.get(name) != entry
            kept[name] = entry
    record = {**run, "steps": kept}
    if changed or not previous:
        starts = [s["start"] for s in steps if s.get("start")]
        ends = [s["end"] for s in steps if s.get("end")]
        record["started_at"] = min(starts) if starts else now()
        record["ended_at"] = max(ends) if ends else now()
    else:
        record["started_at"] = previous.get("started_at")
        record["ended_at"] = previous.get("ended_at")
    return record


def record_text(record: dict) -> str:
    """The record as kept: indented, keys sorted, one trailing newline."""
    return json.dumps(record, indent=2, sort_keys=True) + "\n"


def summary(embedded: dict[str, dict | None], paths: dict[str, str]) -> dict:
    """The headline of the embedded records: ``revisions`` (before/after, from the Alembic
    records) and ``artifacts`` (path and sha256 of the baseline backup and of the dump and
    tarball restored), so readers need not know each record's shape.

    >>> summary({"revision_after": {"current": ["0003"]}, "backup": {"sha256": "ab"}},
    ...         {"backup": "/e/src_artifacts/baseline.dump.sha256"})["artifacts"]
    {'backup': {'path': '/e/src_artifacts/baseline.dump', 'sha256': 'ab'}}
    """
    result: dict = {}
    if "revision_before" in embedded or "revision_after" in embedded:
        result["revisions"] = {
            side: ", ".join((embedded.get(f"revision_{side}") or {}).get("current") or []) or None
            for side in ("before", "after")
        }
    artifacts = {}
    if embedded.get("backup"):
        path = paths["backup"].removesuffix(".sha256")
        artifacts["backup"] = {"path": path, "sha256": embedded["backup"].get("sha256")}
    if embedded.get("restore_db"):
        marker = embedded["restore_db"]
        artifacts["src_dump"] = {"path": marker.get("dump"), "sha256": marker.get("dump_sha256")}
    if embedded.get("restore_assets"):
        marker = embedded["restore_assets"]
        artifacts["src_assets"] = {"path": marker.get("tarball"), "sha256": marker.get("sha256")}
    if artifacts:
        result["artifacts"] = artifacts
    return result


def render_report(record: dict) -> str:
    """``report.md``: the run record for a human reader (S2.9) — who, when, the outcome, each
    step, the revisions, the backup and artifacts by sha256, the checks' verdicts.

    >>> print(render_report({"task": "migrate", "timestamp": "t", "operator": "ann",
    ...     "exit": 0, "steps": {}}).splitlines()[0])
    # migrate t — passed
    """
    outcome = "passed" if record.get("exit") == 0 else f"FAILED at {record.get('failed_step')}"
    lines = [
        f"# {record.get('task')} {record.get('timestamp')} — {outcome}",
        "",
        f"- operator: {record.get('operator')}",
        f"- started: {record.get('started_at')}, ended: {record.get('ended_at')}",
        f"- evidence: {record.get('run_dir')}",
    ]
    revisions = record.get("revisions")
    if revisions:
        lines.append(
            f"- revision before: {revisions.get('before')}, after: {revisions.get('after')}"
        )
    for name, artifact in sorted((record.get("artifacts") or {}).items()):
        lines.append(f"- {name}: {artifact.get('path')} (sha256 {artifact.get('sha256')})")
    if record.get("restore_with"):
        lines.append(f"- to restore the backup: `{record['restore_with']}`")
    lines += ["", "| step | start | end | changed | status |", "| --- | --- | --- | --- | --- |"]
    ordered = sorted(
        (record.get("steps") or {}).items(), key=lambda item: (item[1].get("start") or "", item[0])
    )
    for name, step in ordered:
        changed = "yes" if step.get("changed") else "no"
        lines.append(
            f"| {name} | {step.get('start')} | {step.get('end')} | {changed} | "
            f"{step.get('status')} |"
        )
    for name in (
        "prechecks_before",
        "prechecks_after",
        "unique_gate",
        "pending_revisions",
        "dedupe",
    ):
        if record.get(name):
            lines += [
                "",
                f"## {name}",
                "",
                "```json",
                json.dumps(record[name], indent=2, sort_keys=True),
                "```",
            ]
    return "\n".join(lines) + "\n"
