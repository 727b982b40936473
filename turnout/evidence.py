"""
Control-side pieces of the evidence directory (SPEC S0.3).

Every run writes its audit trail to ``<evidence_root>/<task>/<timestamp>/`` with the
subdirectories ``logs/`` (each command's redacted output), ``outputs/`` (compose ps, health JSON…)
and ``src_artifacts/`` (the dump and assets tarball given). A pinned ``evidence_timestamp``
reuses the same directory, which makes a rerun idempotent. The directory itself is created on the
host by the evidence operation; this module only names it.
"""

from __future__ import annotations

import posixpath
import re
import weakref
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pyinfra import context

if TYPE_CHECKING:
    from turnout.settings import Settings

EVIDENCE_SUBDIRS = ("logs", "outputs", "src_artifacts")

TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"

_SAFE_COMPONENT_RE = re.compile(r"[A-Za-z0-9._-]+")

# One timestamp per pyinfra State (one State = one run). Weak keys: a State that is gone cannot
# hand its timestamp to a new State that happens to get the same id().
_RUN_TIMESTAMPS: weakref.WeakKeyDictionary[object, str] = weakref.WeakKeyDictionary()

# The timestamp of runs that pass no State: one per process (the pyinfra CLI runs one deploy per
# process).
_PROCESS_TIMESTAMP: dict[str, str] = {}


def is_safe_component(value: str) -> bool:
    """
    Return whether ``value`` is a single safe path component: ``[A-Za-z0-9._-]+``, not ``.``/``..``.

    Example:

    .. code:: python

        is_safe_component("20240102T030405Z")  # True
        is_safe_component("../x")  # False
    """
    return (
        isinstance(value, str)
        and _SAFE_COMPONENT_RE.fullmatch(value) is not None
        and value not in (".", "..")
    )


def new_timestamp(now: datetime | None = None) -> str:
    """
    Return a UTC timestamp ``YYYYmmddTHHMMSSZ`` for an evidence directory.

    + now: an aware datetime (converted to UTC); defaults to the current time

    Example:

    .. code:: python

        new_timestamp(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))  # '20240102T030405Z'
    """
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(
            f"new_timestamp needs a timezone-aware datetime, got naive {now.isoformat()}; "
            f"pass e.g. datetime.now(UTC)",
        )
    return now.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def evidence_dir(root: str, task: str, timestamp: str) -> str:
    """
    Return ``<root>/<task>/<timestamp>``, refusing anything that could escape ``root``.

    + root: absolute path of the evidence root (on the host), without ``..`` components
    + task: the runbook name, a single safe path component (e.g. ``cutover``)
    + timestamp: a single safe path component (see ``new_timestamp``)

    Example:

    .. code:: python

        evidence_dir("/var/lib/turnout/evidence", "cutover", "20240102T030405Z")
        # '/var/lib/turnout/evidence/cutover/20240102T030405Z'
    """
    if not isinstance(root, str) or not root.startswith("/"):
        raise ValueError(
            f"evidence root must be an absolute path, got {root!r}; "
            f"set evidence_root to e.g. /var/lib/turnout/evidence",
        )
    if "\x00" in root or "\n" in root or ".." in root.split("/"):
        raise ValueError(
            f"evidence root must not contain '..', NUL or line breaks, got {root!r}; "
            f"set evidence_root to a plain absolute path",
        )
    for label, value in (("task", task), ("timestamp", timestamp)):
        if not is_safe_component(value):
            raise ValueError(
                f"evidence {label} must be a single path component of letters, digits, "
                f"'.', '_' or '-' (not '.' or '..'), got {value!r}",
            )
    return posixpath.join(root.rstrip("/") or "/", task, timestamp)


def run_timestamp(settings: Settings, state: object | None = None) -> str:
    """
    Return the evidence timestamp of this run, the same for every host and step.

    The pinned ``settings.evidence_timestamp`` wins. Otherwise the first call for a pyinfra
    ``State`` creates a timestamp and later calls with that State get the same one; calls without
    a State share one timestamp per process.

    + settings: loaded settings (see ``turnout.settings.load_settings``)
    + state: the pyinfra State of the run (a State, or the ``pyinfra.state`` context proxy), or None

    Example:

    .. code:: python

        from pyinfra import host, state
        ts = run_timestamp(load_settings(host.data), state)
    """
    pinned = getattr(settings, "evidence_timestamp", None)
    if pinned is not None:
        return pinned
    if state is context.state:
        # The context proxy hashes like whatever State is current; key on the State itself.
        state = context.ctx_state.get()
    if state is None:
        return _PROCESS_TIMESTAMP.setdefault("timestamp", new_timestamp())
    timestamp = _RUN_TIMESTAMPS.get(state)
    if timestamp is None:
        timestamp = new_timestamp()
        _RUN_TIMESTAMPS[state] = timestamp
    return timestamp
