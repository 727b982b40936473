"""Operations on the evidence directory of a run (S0.3), and keeping files in it."""

import hashlib
import posixpath

from pyinfra import host
from pyinfra.api import operation
from pyinfra.api.exceptions import OperationError

from turnout.dsn import redact
from turnout.evidence import EVIDENCE_SUBDIRS
from turnout.facts.evidence import EvidenceDirectory, FileDigest, JsonFile
from turnout.failures import require_fact, stop
from turnout.memo import observe
from turnout.remote import hostside_command
from turnout.runrecord import build_record, record_text, render_report, steps_so_far, summary


@operation()
def directory(path: str):
    """
    Ensure the evidence directory ``path`` and its ``logs/``, ``outputs/``, ``src_artifacts/``
    exist with mode 0700, and so do the directories above it up to the evidence root
    (``<evidence_root>/<task>`` and ``<evidence_root>``). A pinned timestamp makes ``path`` the
    same on a rerun, which then changes nothing.

    + path: ``<evidence_root>/<task>/<timestamp>`` (see ``turnout.evidence.evidence_dir``)

    .. code:: python

        from turnout.operations import evidence
        evidence.directory(
            name="Evidence directory",
            path="/var/lib/turnout/evidence/dry_run/20261123T120000Z",
        )
    """
    try:
        task_dir = posixpath.dirname(path.rstrip("/"))
        parents = (posixpath.dirname(task_dir), task_dir)
        wanted = [*parents, path, *(f"{path}/{name}" for name in EVIDENCE_SUBDIRS)]
        state = observe(EvidenceDirectory, path=path, parents=parents)
        if not state.get("ok"):
            raise OperationError(f"cannot inspect evidence directory {path}: {state.get('error')}")
        entries = state["paths"]
        missing = [p for p in wanted if entries.get(p) != {"type": "dir", "mode": "0700"}]
        if not missing:
            host.noop(f"evidence directory {path} exists (0700, and its parents)")
            return
        absent = [p if p in parents else (p.removeprefix(path).lstrip("/") or ".") for p in missing]
        host.log(f"Will create evidence directory {path} (0700): " + ", ".join(absent))
        yield hostside_command("make_dirs", {"paths": wanted, "mode": "0700"})
    except OperationError as error:
        yield from stop(error)


def keep_text(path: str, text: str):
    """Inside an operation: keep ``text`` in the evidence file ``path`` (0600, written through a
    temporary file and renamed; sent on stdin, never in argv). Unchanged content is not rewritten,
    so a rerun changes nothing; a failed write (a full filesystem) fails the step with one line."""
    existing = require_fact(observe(FileDigest, path=path), f"read {path}")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if existing["exists"] and existing["sha256"] == digest and existing["mode"] == "0600":
        host.noop(f"{path} is kept unchanged")
        return
    yield hostside_command("write_file", {"path": path}, stdin=text)


def plan_keep(path: str, what: str):
    """While planning a step that keeps evidence measured only when it runs: a file not kept yet
    is a planned change (its write stands in for it), a kept one is measured again when the step
    runs and rewritten only if it differs."""
    if observe(FileDigest, path=path).get("exists"):
        host.noop(f"{what}: measured again when the step runs; {path} is rewritten if it differs")
        return
    host.log(f"Will keep {what} in {path}")
    yield from keep_text(path, "pending\n")


@operation()
def skipped(step: str, why: str):
    """
    A runbook step that does not run on this host: the plan (``--dry``) and the run say so and
    why (not chosen, not this host's role, no input given). Changes nothing.

    .. code:: python

        from turnout.operations import evidence
        evidence.skipped(name="Step smoke", step="smoke", why="not chosen (setting steps)")
    """
    host.log(f"Step {step}: not run, {why}")
    host.noop(f"step {step} not run: {why}")
    yield from ()


@operation()
def passed(path: str, what: str = "rehearsal"):
    """
    The last step of a runbook: reached only when every earlier step succeeded on this host, it
    says so with the evidence directory to prove it. Changes nothing.

    .. code:: python

        from turnout.operations import evidence
        evidence.passed(
            name="Verdict",
            path="/var/lib/turnout/evidence/dry_run/20261123T120000Z",
        )
    """
    if host.state.is_executing:
        host.log(f"{what} passed; evidence in {path}")
    else:
        host.noop(f"{what} verdict comes at the end of the run")
    return
    yield  # an operation is a generator, even when it never changes anything


def read_record(path: str) -> dict | None:
    """The JSON record at ``path`` on the host (measured once per phase), or None."""
    found = require_fact(observe(JsonFile, path=path), f"read {path}")
    return found.get("data") if isinstance(found.get("data"), dict) else None


def embedded_records(records: dict[str, str]) -> dict[str, dict | None]:
    """Each named JSON record's content (None where there is none)."""
    return {name: read_record(path) for name, path in records.items()}


@operation()
def run_record(
    path: str, run: dict, records: dict[str, str] | None = None, report: str | None = None
):
    """
    The last step of a runbook: keep the run's audit record (S0.3, S2.9) in ``path``
    (``<run_dir>/run.json``, 0600): ``run`` (task, timestamp, operator, settings that matter),
    every step of this host with its start, end and outcome (``turnout.runrecord``), ``exit`` 0,
    and the content of each JSON record named in ``records`` (revisions before and after, the
    markers naming the artifacts by sha256). A rerun that changed nothing leaves it unchanged.
    A step that fails writes the record at once with ``exit: "failed"`` and the step's name
    (``turnout.runrecord.StepClock``; installed by ``install_failed_record``). With ``report``,
    the same record is kept for a human reader as markdown (``report.md``, S2.9).

    .. code:: python

        from turnout.operations import evidence
        evidence.run_record(
            name="Run record",
            path="/var/lib/turnout/evidence/cutover/20261124T120000Z/run.json",
            run={"task": "cutover", "timestamp": "20261124T120000Z", "operator": "ann"},
            records={"revision_after": "/var/lib/…/outputs/alembic_after.json"},
        )
    """
    try:
        if not host.state.is_executing:
            yield from plan_keep(path, "the run's record (steps, times, revisions, artifacts)")
            return
        previous = read_record(path)
        steps = steps_so_far(host.state, host)
        embedded = embedded_records(records or {})
        record = build_record(
            previous,
            steps,
            {
                **run,
                "exit": 0,
                "failed_step": None,
                **embedded,
                **summary(embedded, records or {}),
            },
        )
        yield from keep_text(path, record_text(record))
        if report:
            yield from keep_text(report, redact(render_report(record)))
    except OperationError as error:
        yield from stop(error)


def install_failed_record(path: str, run: dict) -> None:
    """When a step fails on the current host, write ``path`` at once with ``exit: "failed"``
    and the failed step (best effort: a record that cannot be written is reported, and the run
    fails anyway)."""

    def write(state, failed_host, op_hash) -> None:  # noqa: ANN001 - pyinfra callback
        name = ", ".join(state.get_op_meta(op_hash).names) or "Operation"
        record = build_record(
            None, steps_so_far(state, failed_host), {**run, "exit": "failed", "failed_step": name}
        )
        text = record_text(record)
        command = hostside_command("write_file", {"path": path}, stdin=text)
        try:  # a command run directly takes its stdin as an argument, not from the command
            ok, _ = failed_host.run_shell_command(command, _stdin=text)
        except Exception as error:  # noqa: BLE001 - the run is failing already
            ok = False
            failed_host.log(f"could not keep the failed run's record {path}: {error}")
        if ok:
            failed_host.log(f"failed run recorded in {path}")

    host._turnout_failed_record = write
