"""Schema release checks (SPEC S2.4, S2.8, S2.10): read-only pre-checks, the duplicates gate of
a unique constraint, and the released dedupe that clears the way for it.

The pre-checks and the gate are read-only facts (``turnout.facts.checks``), so they are measured
while planning too: ``--dry`` shows each pre-check's current result and the gate's verdict. Each
keeps its report as JSON in evidence (``keep_text``: unchanged content is not rewritten, so a
rerun changes nothing) and fails the step with one line when a check fails. ``dedupe`` deletes;
it is declared ``@destructive`` (refused while the deploy loads unless released) and rehearses on
a copy before it touches the live database (``turnout/hostside/checks.py``).
"""

import json

from pyinfra import host
from pyinfra.api import operation
from pyinfra.api.exceptions import OperationError

from turnout.database import Database, SqliteDatabase
from turnout.dsn import redact
from turnout.facts.checks import DuplicateGroups, Prechecks
from turnout.failures import fail_command, require_fact, stop
from turnout.guard import destructive
from turnout.hostside.checks import (
    KEEP_RULES,
    first_failure,
    keep_split,
    render_table,
    show_values,
)
from turnout.memo import observe
from turnout.operations.evidence import keep_text, plan_keep
from turnout.remote import hostside_command

NO_DUPLICATES = "NO_DUPLICATES"


def report_text(report: dict) -> str:
    """A report as kept in evidence: sorted JSON, redacted."""
    return redact(json.dumps(report, indent=2, sort_keys=True, default=str)) + "\n"


def current_results(rows: list[dict]) -> str:
    """``active_admin: 1 row(s) (pass); no_duplicate_emails: 1 duplicate group(s) (FAIL: …)``."""
    parts = []
    for row in rows:
        verdict = "pass" if row["passed"] else "FAIL"
        shown = "; ".join(show_values(o["values"]) for o in row["offending"][:3])
        parts.append(
            f"{row['name']} [{row['expectation']}]: now {row['result']} ({verdict}"
            + (f": {shown}" if shown and not row["passed"] else "")
            + ")"
        )
    return "; ".join(parts)


@operation()
def prechecks(
    database: Database | SqliteDatabase,
    checks: tuple[str, ...] | list[str],
    record: str,
    limit: int = 20,
    phase: str = "before",
    timeout_ms: int = 5000,
):
    """
    Run the read-only pre-checks (S2.4; again after the upgrade with ``phase="after"``, S2.8)
    on ``database``: each named check (``[name=]kind:table(…)``, kinds ``unique``,
    ``duplicates``, ``min_rows``) in one ``READ ONLY`` transaction under ``statement_timeout``.
    The report (a row per check: name, expectation, result, pass/fail, offending values up to
    ``limit``) is kept as JSON in ``record``; a failing check fails the step with one line
    naming it and its offending values. While planning it shows each check's current result.

    + database: ``Database(dsn_env, env_file)``
    + checks: the ``prechecks`` setting
    + record: e.g. ``<run_dir>/outputs/prechecks_before.json``

    .. code:: python

        from turnout.database import Database, SqliteDatabase
        from turnout.operations import checks
        checks.prechecks(
            name="Pre-checks",
            database=Database("DATABASE_URL", "/srv/app/.env"),
            checks=("active_admin=min_rows:users(role=admin, is_active=true)>=1",
                    "no_duplicate_emails=duplicates:users(lower(email))"),
            record="/var/lib/turnout/evidence/migrate/20261125T000000Z/outputs/prechecks_before.json",
        )
    """
    try:
        found = require_fact(
            observe(
                Prechecks,
                database=database,
                checks=list(checks),
                limit=limit,
                timeout_ms=timeout_ms,
            ),
            f"run the pre-checks on {database}",
        )
    except OperationError as error:
        yield from stop(error)
        return
    rows = found["checks"]
    if not host.state.is_executing:
        host.log(
            f"Will check {database} read-only ({phase}, {len(rows)} check(s)): "
            + (current_results(rows) or "no checks configured")
        )
        yield from plan_keep(record, f"the pre-check report ({phase})")
        return
    for line in render_table(rows).splitlines():
        host.log(line)
    failure = first_failure(rows)
    report = {
        "step": "prechecks",
        "phase": phase,
        "database": found["database"],
        "read_only": found["read_only"],
        "limit": limit,
        "verdict": "fail" if failure else "pass",
        "failures": [failure] if failure else [],
        "checks": [{k: v for k, v in row.items() if k != "measured"} for row in rows],
    }
    yield from keep_text(record, report_text(report))
    if failure:
        yield fail_command([failure])


def gate_groups_line(gate: dict, limit: int = 5) -> str:
    """``unit_id=1, kind='water', slot=0 ×2 ids [1, 201]; …`` for the first groups."""
    shown = [
        f"{show_values(g['values'])} ×{g['count']} ids {g['ids']}" for g in gate["groups"][:limit]
    ]
    more = gate["groups_count"] - len(shown)
    return "; ".join(shown) + (f"; and {more} more group(s)" if more > 0 else "")


@operation()
def unique_gate(
    database: Database | SqliteDatabase,
    table: str,
    columns: tuple[str, ...] | list[str],
    constraint: str,
    record: str,
    limit: int = 20,
):
    """
    The duplicates gate before a revision adds the unique ``constraint`` on ``table(columns)``
    (S2.10): none → the report says ``NO_DUPLICATES`` and the step passes; any → the groups
    (count and ids, up to ``limit``) are listed and the step fails, before any upgrade.
    A constraint already present (as a constraint or unique index) → no-op "already present".

    + record: e.g. ``<run_dir>/outputs/unique_gate.json``

    .. code:: python

        from turnout.database import Database, SqliteDatabase
        from turnout.operations import checks
        checks.unique_gate(
            name="Duplicates gate",
            database=Database("DATABASE_URL", "/srv/app/.env"),
            table="meters",
            columns=("unit_id", "kind", "slot"),
            constraint="uq_meter_unit_kind_slot",
            record="/var/lib/turnout/evidence/migrate/20261125T000000Z/outputs/unique_gate.json",
        )
    """
    try:
        gate = require_fact(
            observe(
                DuplicateGroups,
                database=database,
                table=table,
                columns=list(columns),
                constraint=constraint,
                limit=limit,
            ),
            f"look for duplicates of {table}({', '.join(columns)}) on {database}",
        )
    except OperationError as error:
        yield from stop(error)
        return
    target = f"{gate['table']}({', '.join(gate['columns'])})"
    if gate["constraint_present"]:
        host.noop(f"{constraint} already present on {gate['table']} ({gate['constraint_present']})")
        return
    verdict = NO_DUPLICATES if gate["groups_count"] == 0 else "DUPLICATES"
    if verdict == NO_DUPLICATES:
        now = NO_DUPLICATES
    else:
        now = (
            f"{gate['groups_count']} duplicate group(s), {gate['extra_rows']} extra row(s): "
            + gate_groups_line(gate)
        )
    if not host.state.is_executing:
        host.log(f"Will check {target} for duplicates before adding {constraint}: now {now}")
        yield from plan_keep(record, f"the duplicates gate of {constraint}")
        return
    host.log(f"Duplicates gate {target} for {constraint}: {now}")
    report = {
        "step": "unique_gate",
        "verdict": verdict,
        "database": gate["database"],
        "table": gate["table"],
        "columns": gate["columns"],
        "constraint": constraint,
        "key": gate["key"],
        "rows": gate["rows"],
        "groups_count": gate["groups_count"],
        "extra_rows": gate["extra_rows"],
        "groups": gate["groups"],
        "limit": limit,
    }
    yield from keep_text(record, report_text(report))
    if verdict != NO_DUPLICATES:
        yield fail_command(
            [
                f"duplicates gate: {gate['groups_count']} group(s) of {target} would block "
                f"{constraint} ({gate_groups_line(gate, 3)}); the database is untouched: run the "
                f"dedupe step (released) or fix the rows, then run again"
            ]
        )


@destructive("dedupe (deletes duplicate rows)", when=lambda kw: kw.get("apply", True))
@operation()
def dedupe(
    database: Database,
    table: str,
    columns: tuple[str, ...] | list[str],
    record: str,
    constraint: str | None = None,
    keep: str = "lowest",
    dump: str | None = None,
    apply: bool = True,
    limit: int = 100,
    log_path: str | None = None,
    timeout_s: int = 1800,
    pg_bin: str = "",
    compose_exec: list[str] | None = None,
):
    """
    Remove the duplicate rows of ``table(columns)`` that block a unique constraint (S2.10).
    The rule: per duplicate group the row with the lowest primary key (``keep="highest"``: the
    highest) is kept, every other row of the group is deleted. It runs first on a copy: with
    ``dump`` (the run's verified backup) a scratch database ``turnout_scratch_<pid>_<hex>`` is
    created on the same server (the role needs CREATEDB), the dump restored into it with
    ``pg_restore``, the delete run there (and ``constraint`` added, to prove it then fits), what
    it deleted counted and the scratch database dropped; without ``dump``, the same rehearsal
    runs in a transaction on the live database that is rolled back. Only then, with ``apply``
    (destructive: needs ``--data i_know_what_im_doing=true``), the delete runs on the live
    database in one transaction (table locked against writers, the plan measured again and
    required to equal the copy's), and ``record`` (0600) keeps every deleted row in full as
    JSON. ``apply=False`` only rehearses (and keeps the rehearsal in ``record``). Nothing left
    to delete → no change. The plan lists the ids it would delete per group (up to ``limit``).
    ``compose_exec`` (``facts.compose.compose_exec_argv``): the scratch restore's pg_restore runs
    inside the database's compose service, the dump streamed in on stdin.

    .. code:: python

        from turnout.database import Database, SqliteDatabase
        from turnout.operations import checks
        checks.dedupe(
            name="Dedupe meters",
            database=Database("DATABASE_URL", "/srv/app/.env"),
            table="meters",
            columns=("unit_id", "kind", "slot"),
            constraint="uq_meter_unit_kind_slot",
            dump="/var/lib/turnout/evidence/migrate/20261125T000000Z/src_artifacts/backup.dump",
            record="/var/lib/turnout/evidence/migrate/20261125T000000Z/outputs/dedupe.json",
        )
    """
    try:
        if keep not in KEEP_RULES:
            raise OperationError(f"keep must be one of {', '.join(KEEP_RULES)}, got {keep!r}")
        gate = require_fact(
            observe(
                DuplicateGroups,
                database=database,
                table=table,
                columns=list(columns),
                constraint=constraint,
                limit=limit,
            ),
            f"look for duplicates of {table}({', '.join(columns)}) on {database}",
        )
    except OperationError as error:
        yield from stop(error)
        return
    target = f"{gate['table']}({', '.join(gate['columns'])})"
    if gate["groups_count"] == 0:
        host.noop(f"nothing to dedupe: no duplicate groups in {target}")
        return
    if not gate["key"]:
        yield from stop(OperationError(f"{gate['table']} has no single-column primary key"))
        return
    planned = []
    for group in gate["groups"]:
        kept, deleted = keep_split(group["ids"], keep)
        planned.append(f"{show_values(group['values'])}: keep {kept}, delete {deleted}")
    more = gate["groups_count"] - len(planned)
    copy = (
        f"a scratch database restored from {dump}"
        if dump
        else "a transaction on the live database that is rolled back"
    )
    what = "delete" if apply else "rehearse deleting"
    host.log(
        f"Will {what} {gate['extra_rows']} row(s) of {target} ({gate['groups_count']} group(s), "
        f"the {keep} {gate['key']} kept), first on {copy}; record in {record}: "
        + "; ".join(planned)
        + (f"; and {more} more group(s)" if more > 0 else "")
    )
    yield hostside_command(
        "dedupe",
        {
            **database.params(),
            "table": table,
            "columns": list(columns),
            "constraint": constraint,
            "keep": keep,
            "dump": dump,
            "apply": bool(apply),
            "record": record,
            "log_path": log_path,
            "timeout_s": timeout_s,
            "pg_bin": pg_bin,
            **({"compose_exec": list(compose_exec)} if compose_exec else {}),
        },
    )
