"""Move an app's SQLite data into PostgreSQL (SPEC S3.1-S3.4; RELIABILITY 12, 14-19): the
unique-conflict precheck, the resumable batch copy, its reset, the cross-engine verification and
the status.

The host does the work (``turnout/hostside/pgload.py``, ``sqlite_unique.py``, ``pgverify.py``):
the copy reads a frozen snapshot of the SQLite file (backup API), converts every value
explicitly, and writes each primary-key batch with ``COPY`` in one target transaction together
with its checkpoint row (schema ``turnout_copy`` in the target; the local JSON checkpoint is a
cache). A resume checks the source's fingerprint first. Planning shows, per table, the rows to
copy, the batches, where a resume starts and what is refused.
"""

from __future__ import annotations

import json

from pyinfra import host
from pyinfra.api import operation
from pyinfra.api.exceptions import OperationError

from turnout.database import Database
from turnout.dsn import redact
from turnout.facts.evidence import JsonFile
from turnout.facts.pgload import CopyStatus, SqliteCopyPlan, UniqueConflicts, copy_params
from turnout.failures import fail_command, require_fact, stop
from turnout.guard import destructive
from turnout.memo import observe
from turnout.operations.evidence import keep_text, plan_keep
from turnout.remote import hostside_command, hostside_progress_command


def report_text(report: dict) -> str:
    """A report as kept in evidence: sorted JSON, redacted."""
    return redact(json.dumps(report, indent=2, sort_keys=True, default=str)) + "\n"


def copy_plan(
    source: str,
    target: Database,
    tables: tuple[str, ...] | None,
    batch_size: int,
    checkpoint: str,
    lossy: bool,
) -> dict:
    """The ``SqliteCopyPlan`` fact (measured once per phase), or an ``OperationError``."""
    return require_fact(
        observe(
            SqliteCopyPlan,
            source=source,
            target=target,
            tables=tables,
            batch_size=batch_size,
            checkpoint=checkpoint,
            lossy=lossy,
        ),
        f"plan the copy of {source} into {target}",
    )


def describe_table(table: dict, batch_size: int) -> str:
    """``users: 1000 rows in 1 batch(es) of 1000`` or where a resume starts.

    >>> describe_table({"name": "users", "mode": "batches", "source_rows": 2500,
    ...   "copied_rows": 1000, "last_key": 1000, "done": False}, 1000)
    'users: 1500 of 2500 rows left after key 1000, 2 batch(es) of 1000'
    >>> describe_table({"name": "tags", "mode": "whole", "source_rows": 7, "copied_rows": 0,
    ...   "done": False}, 1000)
    'tags: 7 rows whole in one transaction (no integer primary key)'
    """
    name, rows = table["name"], table["source_rows"]
    if table.get("done"):
        return f"{name}: done ({table.get('copied_rows', rows)} rows)"
    if table["mode"] != "batches":
        return f"{name}: {rows} rows whole in one transaction (no integer primary key)"
    copied = table.get("copied_rows") or 0
    left = max(rows - copied, 0)
    batches = -(-left // batch_size) if left else 0
    if copied:
        return (
            f"{name}: {left} of {rows} rows left after key {table.get('last_key')}, "
            f"{batches} batch(es) of {batch_size}"
        )
    return f"{name}: {rows} rows in {batches} batch(es) of {batch_size}"


def describe_deferred(deferred: list[dict]) -> str:
    """``; 2 index(es) and 3 foreign key(s) set aside, not yet recreated: …`` (or empty)."""
    pending = [d for d in deferred if not d.get("restored")]
    if not pending:
        return ""
    indexes = sum(1 for d in pending if d.get("kind") == "index")
    names = ", ".join(d["name"] for d in pending[:5]) + (" …" if len(pending) > 5 else "")
    return (
        f"; {indexes} index(es) and {len(pending) - indexes} constraint(s) set aside, "
        f"to be recreated: {names}"
    )


def refusal_of(plan: dict) -> str | None:
    """Why the copy must not start or resume (the first reason), else None."""
    checkpoint = plan.get("checkpoint") or {}
    if checkpoint.get("state") == "mismatch":
        changed = ", ".join(checkpoint.get("changed_tables") or []) or "its schema"
        return (
            f"the SQLite file changed since the copy began ({changed}: "
            f"{checkpoint.get('detail') or 'fingerprint differs'}); a resume would mix two "
            "versions of the data. Start again with --data copy_restart=true "
            "--data i_know_what_im_doing=true (empties the copied tables)"
        )
    if plan.get("refusals"):
        return plan["refusals"][0]
    return None


@operation()
def unique_precheck(
    source: str,
    target: Database,
    record: str,
    tables: tuple[str, ...] | None = None,
    limit: int = 20,
    lossy: bool = False,
    schema_pending: bool = False,
):
    """
    Check every unique constraint and unique index of the target against the SQLite data as
    the copy converts it, with PostgreSQL's semantics (S3.2): a conflict (two SQLite rows that
    would be one key in PostgreSQL: ``lower(email)``, ``'1'`` vs ``1``, padded ``char(n)``…)
    fails the step with its groups before any row is copied. The report is kept in ``record``;
    planning shows the verdict already.

    + source: the app's SQLite file on the host
    + target: the PostgreSQL the data moves to, e.g. ``Database("PG_DATABASE_URL", env_file)``
    + record: e.g. ``<run_dir>/outputs/unique_precheck.json``
    + tables: the tables to check (None: every table the copy takes)
    + limit: at most this many duplicate groups per constraint in the report
    + schema_pending: an earlier step builds the target's schema: the check is planned for
      after it

    .. code:: python

        from turnout.database import Database
        from turnout.operations import pgload
        pgload.unique_precheck(
            name="Unique-conflict precheck",
            source="/srv/app/data/app.db",
            target=Database("PG_DATABASE_URL", "/srv/app/.env"),
            record="/var/lib/turnout/evidence/sqlite_to_pg/20261125T000000Z/outputs/unique.json",
        )
    """
    if schema_pending and not host.state.is_executing:
        host.log(
            f"Will check every unique constraint and index of {target} against {source} once "
            "the app's Alembic has built the schema"
        )
        yield from plan_keep(record, "the unique-conflict report")
        return
    try:
        found = require_fact(
            observe(
                UniqueConflicts,
                source=source,
                target=target,
                tables=tables,
                limit=limit,
                lossy=lossy,
            ),
            f"check the unique constraints of {target} against {source}",
        )
    except OperationError as error:
        yield from stop(error)
        return
    conflicts = found["conflicts"]
    failures = [
        f"unique conflict: {c['name']} on {c['table']} would be broken by "
        f"{c['group_count']} group(s) of SQLite rows (first: "
        + "; ".join(f"{g['key']} ×{g['count']}" for g in c["groups"][:3])
        + f"); nothing was copied; fix the rows in SQLite, see {record}"
        for c in conflicts
    ]
    if not host.state.is_executing:
        if failures:
            raise OperationError(failures[0])
        host.log(
            f"Will check {len(found['checked'])} unique constraint(s)/index(es) of {target} "
            f"against {source}: no conflict now"
        )
        yield from plan_keep(record, "the unique-conflict report")
        return
    report = {
        "step": "unique_precheck",
        "verdict": "fail" if failures else "pass",
        "checked": found["checked"],
        "conflicts": conflicts,
    }
    yield from keep_text(record, report_text(report))
    if failures:
        yield fail_command(failures)


@operation()
def copy(
    source: str,
    target: Database,
    state_dir: str,
    checkpoint: str,
    report_path: str,
    progress_path: str | None = None,
    tables: tuple[str, ...] | None = None,
    batch_size: int = 1000,
    jobs: int = 2,
    set_aside: bool = True,
    lossy: bool = False,
    schema_pending: bool = False,
    log_path: str | None = None,
    progress_interval_s: float | None = None,
):
    """
    Copy the SQLite file ``source`` into ``target``, resumably (S3.1): from a frozen snapshot
    (backup API), table by table in primary-key batches of ``batch_size``, each batch one target
    transaction with its checkpoint row (a killed run resumes where it stopped, replaying the
    last batch idempotently); tables without an integer primary key whole, in one transaction.
    Secondary indexes and foreign keys may be set aside for the load and recreated from their
    recorded definitions; sequences are set past the data, empty tables included. A copy that
    is complete for an unchanged source changes nothing. Refused, while planning already: a
    target table with rows and no checkpoint, a source changed since the checkpoint, a value
    that cannot convert (unless ``lossy``).

    + source: the app's SQLite file on the host (read through a snapshot, never copied live)
    + target: the PostgreSQL the data moves to (its schema made by the app's Alembic first)
    + state_dir: where the snapshot is kept (0700)
    + checkpoint: the local JSON checkpoint (a cache of the target's checkpoint table)
    + report_path: the copy's report (rows, batches, rates, lossy conversions, sequences)
    + progress_path: the progress file ``db_status.py`` reads while the copy runs
    + tables: the tables to copy (None: every table but ``alembic_version``)
    + batch_size: rows per batch (and per commit)
    + jobs: tables loaded at once, each on its own connection
    + set_aside: drop secondary indexes and foreign keys for the load, recreate them after
    + lossy: go on past values without an exact conversion, each counted in the report
    + schema_pending: an earlier step builds the target's schema: the plan says the copy is
      measured again after it
    + progress_interval_s: seconds between progress lines (None: the host's setting)

    .. code:: python

        from turnout.database import Database
        from turnout.operations import pgload
        pgload.copy(
            name="Copy SQLite into PostgreSQL",
            source="/srv/app/data/app.db",
            target=Database("PG_DATABASE_URL", "/srv/app/.env"),
            state_dir="/var/lib/turnout/evidence/state",
            checkpoint="/srv/app/data/db_migrate_checkpoint.json",
            report_path="/var/lib/turnout/evidence/sqlite_to_pg/20261125T000000Z/outputs/copy.json",
        )
    """
    params = {
        **copy_params(source, target, tables, batch_size, checkpoint, lossy),
        "state_dir": state_dir,
        "report_path": report_path,
        "progress_path": progress_path,
        "jobs": jobs,
        "set_aside": set_aside,
        "log_path": log_path,
    }
    if schema_pending and not host.state.is_executing:
        host.log(
            f"Will copy every table of {source} into {target} once the app's Alembic has built "
            "its schema (the copy is planned again then: tables, rows, conflicts)"
        )
        yield hostside_progress_command("sqlite_copy", params, progress_interval_s)
        return
    try:
        plan = copy_plan(source, target, tables, batch_size, checkpoint, lossy)
        refusal = refusal_of(plan)
        if refusal:
            raise OperationError(refusal)
        if plan.get("complete"):
            rows = sum(t.get("copied_rows") or 0 for t in plan["tables"])
            host.noop(
                f"the copy into {target} is complete ({len(plan['tables'])} tables, {rows} "
                "rows) and the source is unchanged"
            )
            return
        state = (plan.get("checkpoint") or {}).get("state", "none")
        start = "resume the copy of" if state == "in_progress" else "copy"
        host.log(
            f"Will {start} {source} (through a snapshot) into {target}: "
            + "; ".join(describe_table(t, batch_size) for t in plan["tables"])
            + describe_deferred(plan.get("deferred") or [])
            + "; then sequences set past the data"
        )
        yield hostside_progress_command("sqlite_copy", params, progress_interval_s)
    except OperationError as error:
        yield from stop(error)


@destructive("copy-restart (empties the tables copied into PostgreSQL)")
@operation()
def reset(
    source: str,
    target: Database,
    checkpoint: str,
    tables: tuple[str, ...] | None = None,
    batch_size: int = 1000,
):
    """
    Discard a copy into ``target``: empty the tables it copied, recreate what it set aside,
    drop its checkpoint (in the target and the local cache), so the next copy starts over — the
    way forward when the SQLite file changed after a partial copy. Nothing copied and nothing
    kept: no change. Declared destructive: refused unless released.

    .. code:: python

        from turnout.database import Database
        from turnout.operations import pgload
        pgload.reset(
            name="Start the copy over",
            source="/srv/app/data/app.db",
            target=Database("PG_DATABASE_URL", "/srv/app/.env"),
            checkpoint="/srv/app/data/db_migrate_checkpoint.json",
        )
    """
    try:
        plan = copy_plan(source, target, tables, batch_size, checkpoint, False)
        filled = [t for t in plan["tables"] if t.get("target_rows")]
        state = (plan.get("checkpoint") or {}).get("state", "none")
        if state == "none" and not filled:
            host.noop(f"nothing copied into {target} yet, no checkpoint")
            return
        host.log(
            f"Will empty {len(filled)} table(s) of {target} ("
            + ", ".join(f"{t['name']} {t['target_rows']} rows" for t in filled)
            + f") and discard the copy's checkpoint ({state})"
        )
        params = copy_params(source, target, tables, batch_size, checkpoint, False)
        yield hostside_command("sqlite_copy_reset", params)
    except OperationError as error:
        yield from stop(error)


def verified_already(report_path: str, copy_report: str) -> bool:
    """Whether ``report_path`` holds a passed verification made after the copy's report was
    last written (so nothing was copied since)."""
    found = observe(JsonFile, path=report_path)
    copied = observe(JsonFile, path=copy_report)
    report = found.get("data") if found.get("ok") else None
    copy_data = copied.get("data") if copied.get("ok") else None
    if not isinstance(report, dict) or not isinstance(copy_data, dict):
        return False
    return bool(report.get("matched")) and report.get("copy_finished") == copy_data.get(
        "finished"
    )


@operation()
def verify(
    source: str,
    target: Database,
    report_path: str,
    copy_report: str,
    tables: tuple[str, ...] | None = None,
    sample: float | None = None,
    max_keys: int = 20,
    lossy: bool = False,
    log_path: str | None = None,
    progress_interval_s: float | None = None,
    verified_path: str | None = None,
):
    """
    Verify the copy (S3.3, RELIABILITY 18): counts per table, then row hashes on both engines
    (SQLite rows converted as the copy converts them, PostgreSQL hashed server-side) over key
    ranges; a differing range is narrowed down to its keys (missing, extra, same key with
    different content), at most ``max_keys`` named. Full by default; ``sample`` compares that
    share of the ranges. A mismatch fails the step with one line naming the table and keys; the
    report (keys only, never values) is kept in ``report_path``. A passed verification of the
    same copy is not repeated.

    + source: the snapshot the copy read (``<state_dir>/…``) or the SQLite file
    + copy_report: the copy's report; a newer copy makes the verification run again
    + verified_path: a marker a passed verification keeps (a failed one removes it; a copy that
      changes the target removes it too): the phases' pre-flight reads it

    .. code:: python

        from turnout.database import Database
        from turnout.operations import pgload
        pgload.verify(
            name="Verify the copy",
            source="/var/lib/turnout/evidence/state/sqlite_to_pg.snapshot.sqlite3",
            target=Database("PG_DATABASE_URL", "/srv/app/.env"),
            report_path="/var/lib/turnout/evidence/sqlite_to_pg/20261125T000000Z/outputs/verify.json",
            copy_report="/var/lib/turnout/evidence/sqlite_to_pg/20261125T000000Z/outputs/copy.json",
        )
    """
    how = "every row" if sample is None else f"{sample:.0%} of the key ranges"
    if verified_already(report_path, copy_report):
        host.noop(f"the copy was verified already ({how}); {report_path}")
        return
    host.log(
        f"Will verify {target} against {source}: counts per table and row hashes of {how} "
        f"(report {report_path})"
    )
    params = {
        "sqlite_path": source,
        **target.params(),
        "tables": list(tables) if tables else None,
        "sample": sample,
        "max_keys": max_keys,
        "lossy": lossy,
        "report_path": report_path,
        "copy_report": copy_report,
        "log_path": log_path,
        "verified_path": verified_path,
    }
    yield hostside_progress_command("sqlite_verify", params, progress_interval_s)


def status_lines(status: dict) -> list[str]:
    """The status as the operator reads it: one line per table, then the app's counters.

    >>> lines = status_lines({"state": "in_progress", "tables": [{"name": "users", "copied": 500,
    ...   "total": 1000, "last_key": 500, "rate": 1000.0, "eta_s": 0.5, "done": False}],
    ...   "compare_log": 12, "compare_log_mismatched": 1, "dual_write_failures": 2})
    >>> lines[1]
    'users: 500/1000 rows (50%), last key 500, 1000 rows/s, ETA 0.5 s'
    >>> lines[2:]
    ['compare log: 12 reads compared, 1 differed', 'dual-write failures: 2']
    """
    lines = [f"copy: {status.get('state', 'unknown')}"]
    for table in status.get("tables") or []:
        total = table.get("total") or 0
        copied = table.get("copied") or 0
        share = f" ({copied / total:.0%})" if total else ""
        line = f"{table['name']}: {copied}/{total} rows{share}"
        if table.get("done"):
            line += ", done"
        else:
            line += f", last key {table.get('last_key')}"
            if table.get("rate"):
                line += f", {table['rate']:.0f} rows/s"
            if table.get("eta_s") is not None:
                line += f", ETA {table['eta_s']:.1f} s"
        lines.append(line)
    compare = status.get("compare_log")
    mismatched = status.get("compare_log_mismatched")
    if compare is None:
        lines.append("compare log: no such table")
    else:
        differed = "" if mismatched is None else f", {mismatched} differed"
        lines.append(f"compare log: {compare} reads compared{differed}")
    failures = status.get("dual_write_failures")
    lines.append(f"dual-write failures: {'no such table' if failures is None else failures}")
    return lines


@operation()
def status(
    target: Database,
    progress_path: str | None = None,
    checkpoint: str | None = None,
    compare_log_table: str = "db_compare_log",
    dual_write_failures_table: str = "dual_write_failures",
    compare_log_mismatch_column: str = "matched",
):
    """
    Show how far the copy into ``target`` is (S3.4): per table rows copied of the total, the
    last key, rate and ETA while a copy runs; and the counts of the app's shadow-compare log and
    dual-write failures. Reads only: never a change.

    .. code:: python

        from turnout.database import Database
        from turnout.operations import pgload
        pgload.status(
            name="Copy status",
            target=Database("PG_DATABASE_URL", "/srv/app/.env"),
            progress_path="/var/lib/turnout/evidence/state/sqlite_to_pg.progress.json",
        )
    """
    try:
        found = require_fact(
            observe(
                CopyStatus,
                target=target,
                progress_path=progress_path,
                checkpoint=checkpoint,
                compare_log_table=compare_log_table,
                dual_write_failures_table=dual_write_failures_table,
                compare_log_mismatch_column=compare_log_mismatch_column,
            ),
            f"read the copy's status in {target}",
        )
    except OperationError as error:
        yield from stop(error)
        return
    for line in status_lines(found):
        host.log(line)
    host.noop("status read")
