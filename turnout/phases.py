"""The phases of the SQLite → PostgreSQL move (SPEC S3.5, seed 003): what each one writes to the
app's server-side ``.env``, and what the app's health must then report.

The table follows the seed literally:

========  ======================  =======================  =============  ==============
phase     DATABASE_URL            DATABASE_URL_SECONDARY   DB_WRITE_MODE  DB_READ_MODE
========  ======================  =======================  =============  ==============
shadow    ``${PG_DATABASE_URL}``  ``sqlite_url``           single         shadow_compare
dual      ``${PG_DATABASE_URL}``  ``sqlite_url``           dual           shadow_compare
cutover   ``${PG_DATABASE_URL}``  ``sqlite_url``           single         primary
rollback  ``sqlite_url``          (empty)                  single         primary
========  ======================  =======================  =============  ==============

The PostgreSQL DSN is written as a compose reference to the variable named by ``pg_dsn_env``
(which must already be defined in the ``.env``), so a phase never copies a password; the SQLite
URL is written as given (a ``$`` in it is escaped as ``$$``). Values are compose templates: what
goes between the double quotes of a ``.env`` line, ``${NAME}`` expanded, ``$$`` a literal ``$``.
At cutover the SQLite file stays configured as the (unused) secondary: the seed keeps it
read-only for weeks before archiving it.

    >>> phase_values("rollback", sqlite_url="sqlite:////app/.data/app.sqlite3")["DATABASE_URL"]
    'sqlite:////app/.data/app.sqlite3'
    >>> phase_values("shadow", sqlite_url="sqlite:////d/a.db")["DATABASE_URL"]
    '${PG_DATABASE_URL}'
"""

from __future__ import annotations

import os
import re
import time

from turnout.constants import PHASES

PHASE_KEYS = ("DATABASE_URL", "DATABASE_URL_SECONDARY", "DB_WRITE_MODE", "DB_READ_MODE")

# phase -> (primary, secondary, write mode, read mode); "pg"/"sqlite"/"" name the database.
_TABLE: dict[str, tuple[str, str, str, str]] = {
    "shadow": ("pg", "sqlite", "single", "shadow_compare"),
    "dual": ("pg", "sqlite", "dual", "shadow_compare"),
    "cutover": ("pg", "sqlite", "single", "primary"),
    "rollback": ("sqlite", "", "single", "primary"),
}

_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class PhaseError(ValueError):
    """An unknown phase or a value a phase cannot write; the message says which."""


def compose_literal(value: str) -> str:
    """``value`` as a compose template that expands to exactly ``value`` (``$`` doubled).

    >>> compose_literal("a$b")
    'a$$b'
    """
    return value.replace("$", "$$")


def compose_reference(name: str) -> str:
    """The compose template ``${name}``; ``PhaseError`` for a name compose cannot expand.

    >>> compose_reference("PG_DATABASE_URL")
    '${PG_DATABASE_URL}'
    """
    if not _ENV_NAME_RE.fullmatch(name or ""):
        raise PhaseError(f"{name!r} is not a variable name compose can expand")
    return "${" + name + "}"


def phase_values(
    phase: str, sqlite_url: str, pg_dsn_env: str = "PG_DATABASE_URL"
) -> dict[str, str]:
    """The four ``.env`` values of ``phase`` as compose templates (see the module docstring).

    + phase: shadow, dual, cutover or rollback
    + sqlite_url: the app's SQLite URL as its containers see it (setting ``sqlite_url``)
    + pg_dsn_env: the ``.env`` variable holding the PostgreSQL DSN (setting ``pg_dsn_env``)

    >>> phase_values("dual", "sqlite:////d/a.db")["DB_WRITE_MODE"]
    'dual'
    """
    if phase not in _TABLE:
        raise PhaseError(f"unknown phase {phase!r}: one of {', '.join(PHASES)}")
    if not sqlite_url or "\n" in sqlite_url or "\r" in sqlite_url:
        raise PhaseError("sqlite_url must be one line, like sqlite:////app/.data/app.sqlite3")
    primary, secondary, write_mode, read_mode = _TABLE[phase]
    database = {"pg": compose_reference(pg_dsn_env), "sqlite": compose_literal(sqlite_url), "": ""}
    return {
        "DATABASE_URL": database[primary],
        "DATABASE_URL_SECONDARY": database[secondary],
        "DB_WRITE_MODE": write_mode,
        "DB_READ_MODE": read_mode,
    }


def expected_backend(phase: str) -> str:
    """The ``db_backend`` the app's health must report once ``phase`` is in place.

    >>> expected_backend("cutover"), expected_backend("rollback")
    ('postgresql', 'sqlite')
    """
    if phase not in _TABLE:
        raise PhaseError(f"unknown phase {phase!r}: one of {', '.join(PHASES)}")
    return "postgresql" if _TABLE[phase][0] == "pg" else "sqlite"


def uses_postgres(phase: str) -> bool:
    """Whether the app reads or writes PostgreSQL in ``phase`` (its DSN must then answer).

    >>> uses_postgres("shadow"), uses_postgres("rollback")
    (True, False)
    """
    return "pg" in _TABLE[phase][:2]


def leaves_sqlite(phase: str, current_url: str | None) -> bool:
    """Whether ``phase`` moves the app's primary database off SQLite: the app runs on SQLite
    now (``current_url``, the ``.env``'s DATABASE_URL as compose reads it) and will read and
    write PostgreSQL. Whatever the app wrote to SQLite since the copy would then be missing.

    >>> leaves_sqlite("shadow", "sqlite:////app/.data/app.sqlite3")
    True
    >>> leaves_sqlite("cutover", "postgresql://app:***@db/app"), leaves_sqlite("rollback", "sqlite:///x")
    (False, False)
    """
    return _TABLE[phase][0] == "pg" and (current_url or "").startswith("sqlite")


def unready_copy(copy_plan: dict, verified: dict | None, sqlite_path: str) -> str | None:
    """Why the app may not leave SQLite yet, or None: the copy into PostgreSQL must be complete,
    the SQLite file unchanged since (the checkpoint's fingerprint), and its verification passed
    (``verified``: the marker a passed ``sqlite_verify`` keeps; a later copy removes it).

    >>> unready_copy({"checkpoint": {"state": "complete"}}, {"matched": True}, "/d/app.db")
    >>> unready_copy({"checkpoint": {"state": "in_progress"}}, None, "/d/app.db").split(";")[0]
    'the copy of /d/app.db into PostgreSQL is in_progress, not complete'
    """
    checkpoint = copy_plan.get("checkpoint") or {}
    state = checkpoint.get("state", "none")
    again = "run deploys/sqlite_to_pg.py (copy and verification) again"
    if state == "mismatch":
        return (
            f"{sqlite_path} changed since the copy into PostgreSQL "
            f"({', '.join(checkpoint.get('changed_tables') or ['schema'])}): what the app wrote "
            "since would be missing there; stop the app's writers, run deploys/sqlite_to_pg.py "
            "with copy_restart (released), then switch"
        )
    if state != "complete":
        return f"the copy of {sqlite_path} into PostgreSQL is {state}, not complete; {again}"
    if not verified or verified.get("matched") is not True:
        return f"the copy of {sqlite_path} into PostgreSQL has no passed verification; {again}"
    return None


def is_timed(phase: str) -> bool:
    """Whether ``phase`` is timed from the command to a healthy app (the rollback, S3.7).

    >>> is_timed("rollback")
    True
    """
    return phase == "rollback"


def missing_unique(expected: tuple[str, ...] | list[str], constraints: dict) -> list[str]:
    """The names of ``expected`` that are neither a unique constraint nor a unique index in a
    ``Constraints`` fact's answer (keys may be ``schema.table.name`` for a name used twice).

    >>> missing_unique(["uq_a", "ix_b", "uq_c"], {"unique_constraints": {"uq_a": {}},
    ...     "unique_indexes": {"public.t.ix_b": {}}})
    ['uq_c']
    """
    found = set()
    for kind in ("unique_constraints", "unique_indexes"):
        for key in constraints.get(kind) or {}:
            found.add(key)
            found.add(key.rsplit(".", 1)[-1])
    return [name for name in expected if name not in found]


def command_started() -> float:
    """When this command (the ``pyinfra`` process) started, in epoch seconds: read from
    ``/proc`` (Linux), else the time this module was first imported (the deploy's load).

    >>> command_started() <= __import__("time").time()
    True
    """
    try:
        with open("/proc/self/stat", encoding="ascii") as handle:
            ticks = int(handle.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as handle:
            uptime = float(handle.read().split()[0])
        return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return _IMPORTED


_IMPORTED = time.time()
