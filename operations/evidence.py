"""Operations on the evidence directory of a run (S0.3), and keeping files in it."""

import hashlib
import posixpath

from pyinfra import host
from pyinfra.api import operation
from pyinfra.api.exceptions import OperationError

from turnout.evidence import EVIDENCE_SUBDIRS
from turnout.facts.evidence import EvidenceDirectory, FileDigest
from turnout.failures import require_fact, stop
from turnout.memo import observe
from turnout.remote import hostside_command


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
