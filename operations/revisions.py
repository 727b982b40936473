"""Pending Alembic revisions checked against the live data before any upgrade (S2.10, issue 9
item 4, "beyond the one configured constraint").

The SQL of every pending revision is rendered offline by Alembic inside the app's compose service
(``facts.revisions.PendingSql``), classified on this machine (``turnout.sqlrisk``), and each
data-dependent statement is checked read-only on the host (``facts.revisions.PendingChecks``).
Nothing is changed by the checks, so they run while planning and again while executing.
"""

from __future__ import annotations

import json
import re

from pyinfra import host
from pyinfra.api import operation
from pyinfra.api.exceptions import OperationError

from turnout.database import Database
from turnout.dsn import redact
from turnout.facts.compose import project_where
from turnout.facts.revisions import PendingChecks, PendingSql
from turnout.failures import fail_command, require_fact, stop
from turnout.memo import observe
from turnout.operations.alembic import service_running
from turnout.operations.evidence import keep_text
from turnout.sqlrisk import (
    ALEMBIC_TABLE,
    DATA_KINDS,
    HEAVY_KINDS,
    analyse_revisions,
    display_table,
    split_statements,
)

OK, FAIL, UNCHECKED = "OK", "FAIL", "UNCHECKED"
ALLOW_SETTING = "allow_unchecked_revisions"


def renders_nothing(sql: str) -> bool:
    """Whether a revision's offline SQL holds nothing but the transaction and Alembic's own
    bookkeeping (what a data migration written in Python renders, or an empty revision).

    >>> renders_nothing("BEGIN;\\nUPDATE alembic_version SET version_num='b';\\nCOMMIT;")
    True
    """
    for statement in split_statements(sql or ""):
        words = statement.split()
        if words[0].upper() in ("BEGIN", "COMMIT", "START"):
            continue
        if ALEMBIC_TABLE in statement.lower():
            continue
        return False
    return True


def simple_cast(using: str | None, column: str) -> bool:
    """Whether a ``USING`` clause is only the column cast to the new type (``col::integer``).

    >>> simple_cast('"Age"::integer', "Age"), simple_cast("age * 2", "age")
    (True, False)
    """
    if using is None:
        return True
    quoted = '"' + column.replace('"', '""') + '"'
    bare = re.escape(column) if column == column.lower() else re.escape(quoted)
    pattern = rf"\(?\s*(?:{bare}|{re.escape(quoted)})\s*\)?\s*::\s*[A-Za-z_][A-Za-z0-9_ (),]*"
    return re.fullmatch(pattern, using.strip(), re.IGNORECASE) is not None


def local_verdict(finding: dict) -> tuple[str, str] | None:
    """The verdict of a data-dependent finding that needs no look at the live data (from what the
    pending SQL does before it), or None when the host must check it."""
    context, kind = finding.get("context"), finding["kind"]
    if kind == "unknown":
        return UNCHECKED, finding.get("why") or "not understood"
    if context == "new_table":
        return OK, "the table is created by a pending revision (empty)"
    if context == "after_dml":
        return UNCHECKED, "a pending statement changes the table's data first"
    if context == "new_column":
        if kind == "not_null" and finding.get("default"):
            return OK, "the column is added with a default"
        if kind == "not_null":
            return None  # checked as add_not_null: the column is NULL on every existing row
        if finding.get("default"):
            return UNCHECKED, "the column is added with a default; its values are not live yet"
        return OK, "the column is added without a default (NULL everywhere)"
    if kind == "type" and not simple_cast(finding.get("using"), finding["column"]):
        return UNCHECKED, f"the type change converts with USING {finding['using']}"
    return None


def host_check(finding: dict, check_id: str) -> dict:
    """The ``PendingChecks`` entry of a finding."""
    table = [finding["table"][0] or "public", finding["table"][1]]
    kind = finding["kind"]
    if kind == "not_null" and finding.get("context") == "new_column":
        kind = "add_not_null"
    check = {"id": check_id, "kind": kind, "table": table}
    if kind in ("not_null", "add_not_null", "type"):
        check["column"] = finding["column"]
    if kind == "type":
        check["new_type"] = finding["new_type"]
    if kind == "check":
        check["expression"] = finding["expression"]
    if kind == "unique":
        check["items"] = finding["columns"]
        check["columns"] = [c["column"] for c in finding["columns"] if "column" in c]
        check["where"] = finding.get("where")
        check["nulls_not_distinct"] = bool(finding.get("nulls_not_distinct"))
    if kind == "foreign_key":
        check["columns"] = finding["columns"]
        check["ref_table"] = [finding["ref_table"][0] or "public", finding["ref_table"][1]]
        check["ref_columns"] = finding["ref_columns"]
    return check


def plan_checks(revisions: list[dict]) -> tuple[list[dict], list[dict], list[list]]:
    """``(findings, checks, tables)``: the classified findings of the rendered revisions (each
    data-dependent one with ``check_id`` or a local ``verdict``), the host checks to run and the
    tables to size for the heavy statements."""
    renderable = [r for r in revisions if r.get("sql") and not r.get("error")]
    findings = analyse_revisions(renderable)
    checks, tables = [], []
    for number, finding in enumerate(findings, 1):
        if finding["kind"] in DATA_KINDS + ("unknown",):
            verdict = local_verdict(finding)
            if verdict:
                finding["verdict"], finding["why"] = verdict
            else:
                finding["check_id"] = f"{finding['revision']}:{number}"
                checks.append(host_check(finding, finding["check_id"]))
        if finding["kind"] in HEAVY_KINDS and finding.get("context") != "new_table":
            table = [finding["table"][0] or "public", finding["table"][1]]
            if table not in tables:
                tables.append(table)
    return findings, checks, tables


def describe_found(result: dict, limit: int) -> str:
    """``3 rows holding NULL (id 1, 2, 3)``; groups as ``(a, b)×2 [ids 4, 9]``."""
    found = result.get("found") or []
    if found and isinstance(found[0], dict) and "rows" in found[0]:
        shown = "; ".join(
            f"({', '.join(str(v) for v in g['values'])})×{g['rows']} [ids {', '.join(g['ids'])}]"
            for g in found
        )
    elif found and isinstance(found[0], dict):
        shown = ", ".join(f"{o['id']}→({', '.join(str(v) for v in o['values'])})" for o in found)
    else:
        shown = ", ".join(str(i) for i in found)
    more = f", first {len(found)}" if result.get("count", 0) > len(found) else ""
    return f"{result.get('count')} {result.get('detail')} (ids {shown}{more})"


def judge(revisions: list[dict], findings: list[dict], answer: dict, limit: int) -> list[dict]:
    """Each revision with its verdict (``OK``/``FAIL``/``UNCHECKED``), its reasons and its heavy
    statements (with the table's size and estimated rows)."""
    results = answer.get("checks", {})
    sizes = answer.get("tables", {})
    judged = []
    for revision in revisions:
        entry = {
            "revision": revision["revision"],
            "message": revision.get("message", ""),
            "verdict": OK,
            "reasons": [],
            "heavy": [],
            "checks": [],
        }
        if revision.get("error"):
            entry["verdict"] = UNCHECKED
            entry["reasons"].append(
                f"its SQL cannot be rendered offline ({revision['error']}): a data migration "
                "in Python?"
            )
        elif renders_nothing(revision.get("sql", "")):
            entry["verdict"] = UNCHECKED
            entry["reasons"].append(
                "it renders no SQL offline (a data migration in Python, or an empty revision)"
            )
        for finding in (f for f in findings if f["revision"] == revision["revision"]):
            where = display_table(finding.get("table"))
            if finding["kind"] in HEAVY_KINDS:
                size = sizes.get(where, {})
                entry["heavy"].append(
                    {
                        "kind": finding["kind"],
                        "table": where,
                        "statement": finding["statement"],
                        "total_bytes": size.get("total_bytes"),
                        "estimated_rows": size.get("estimated_rows"),
                    }
                )
                continue
            if finding["kind"] not in DATA_KINDS + ("unknown",):
                continue
            if "check_id" in finding:
                result = results.get(
                    finding["check_id"], {"status": "error", "detail": "no answer"}
                )
                status = result.get("status")
                if status == "fail":
                    verdict, why = FAIL, describe_found(result, limit)
                elif status == "ok":
                    verdict, why = OK, result.get("detail") or "no offending rows"
                elif status == "missing":
                    verdict = UNCHECKED
                    why = f"{result.get('detail')} in the live database (made by a pending step?)"
                else:
                    verdict, why = UNCHECKED, result.get("detail") or "not checked"
            else:
                verdict, why = finding["verdict"], finding["why"]
            entry["checks"].append(
                {"statement": finding["statement"], "table": where, "verdict": verdict, "why": why}
            )
            if verdict == FAIL:
                entry["verdict"] = FAIL
                entry["reasons"].append(f"{finding['statement']}: {why}")
            elif verdict == UNCHECKED:
                if entry["verdict"] == OK:
                    entry["verdict"] = UNCHECKED
                entry["reasons"].append(f"{finding['statement']}: not checked, {why}")
        if entry["verdict"] == FAIL:
            entry["reasons"] = [r for r in entry["reasons"] if ": not checked, " not in r] + [
                r for r in entry["reasons"] if ": not checked, " in r
            ]
        judged.append(entry)
    return judged


def human_size(size: int | None) -> str:
    """``1.5 MiB``.

    >>> human_size(1572864)
    '1.5 MiB'
    """
    if size is None:
        return "size unknown"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def plan_lines(judged: list[dict]) -> list[str]:
    """What the plan says about each pending revision."""
    lines = []
    for entry in judged:
        head = f"Revision {entry['revision']} ({entry['message']}): {entry['verdict']}"
        lines.append(head + (f" - {entry['reasons'][0]}" if entry["reasons"] else ""))
        lines += [f"  {reason}" for reason in entry["reasons"][1:]]
        for heavy in entry["heavy"]:
            rows = heavy["estimated_rows"]
            lines.append(
                f"  heavy ({heavy['kind']}): {heavy['statement']} on {heavy['table']}, "
                f"{human_size(heavy['total_bytes'])}, ~{rows if rows is not None else '?'} rows: "
                "the freeze must cover it"
            )
    return lines


def stop_reason(judged: list[dict], allow_unchecked: bool) -> str | None:
    """The one line stopping the run, or None."""
    failed = [e for e in judged if e["verdict"] == FAIL]
    unchecked = [e for e in judged if e["verdict"] == UNCHECKED]
    if failed:
        first = failed[0]
        more = f" (and {len(failed) - 1} more revision(s) failing)" if len(failed) > 1 else ""
        return (
            f"pending revision {first['revision']} ({first['message']}) would fail on the live "
            f"data: {first['reasons'][0]}{more}; nothing was upgraded"
        )
    if unchecked and not allow_unchecked:
        first = unchecked[0]
        return (
            f"pending revision {first['revision']} ({first['message']}) is UNCHECKED: "
            f"{first['reasons'][0]}; nothing was upgraded (set {ALLOW_SETTING}=true to go on "
            "without checking it)"
        )
    return None


def allowed_by_settings() -> bool:
    """The ``allow_unchecked_revisions`` setting of the current host."""
    from dataclasses import fields

    from turnout.settings import Settings, setting_info

    field = {f.name: f for f in fields(Settings)}[ALLOW_SETTING]
    raw = host.data.get(ALLOW_SETTING, field.default)
    return bool(setting_info(field).validate(raw))


@operation()
def check_pending(
    database: Database,
    env_file: str,
    compose_file: str,
    project: str | None = None,
    docker_bin: str = "docker",
    service: str = "api",
    app_python: str = "uv run python",
    target: str = "head",
    record: str | None = None,
    limit: int = 20,
    timeout_ms: int = 5000,
    allow_unchecked: bool | None = None,
):
    """
    Before an upgrade: render the SQL of every pending Alembic revision offline (inside the app's
    compose ``service``), classify its statements and check each data-dependent one read-only
    against the live data of ``database`` (``SET NOT NULL`` → rows holding NULL, ``UNIQUE`` →
    duplicate groups, ``FOREIGN KEY`` → rows without a parent, ``CHECK`` → rows failing it, a
    narrowing ``TYPE`` → values that do not fit), up to ``limit`` offending rows each. The plan
    lists each revision as ``OK``, ``FAIL`` (with the rows) or ``UNCHECKED`` (why), and the heavy
    statements (table rewrites, volatile defaults, indexes built without ``CONCURRENTLY``) with
    the table's size and rows. A ``FAIL`` or ``UNCHECKED`` stops the run with one line before
    anything changed (``UNCHECKED`` goes on when ``allow_unchecked``, default: the setting
    ``allow_unchecked_revisions``). No pending revision: no change. The checks change nothing, so
    they run while planning and again while executing; the JSON report is kept in ``record``
    (rewritten only when it differs).

    + database: the app's database (``Database(dsn_env, env_file)``)
    + env_file / compose_file / project / docker_bin: the app's compose project
    + service / app_python: where Alembic runs, as for ``alembic.upgrade``
    + target: the revision the upgrade goes to (default ``head``)
    + record: JSON report path in the evidence, or None
    + limit / timeout_ms: offending rows shown per check; statement timeout per check

    .. code:: python

        from turnout.database import Database
        from turnout.operations import revisions
        revisions.check_pending(
            name="Check pending revisions against the live data",
            database=Database("DATABASE_URL", "/srv/app/.env"),
            env_file="/srv/app/.env",
            compose_file="/srv/app/docker-compose.yml",
            project="app",
            record="/var/lib/turnout/evidence/migrate/20261124T120000Z/outputs/pending.json",
        )
    """
    try:
        where = project_where(env_file, compose_file, project, docker_bin)
        running = service_running(where, service)
        pending = require_fact(
            observe(
                PendingSql,
                **where,
                service=service,
                app_python=app_python,
                running=running,
                target=target,
            ),
            f"render the pending revisions' SQL with Alembic in compose service {service}",
        )
        revisions = pending["revisions"]
        if not revisions:
            host.noop(
                f"no pending revision: the database is at {', '.join(pending['current'])}"
                f" ({target})"
            )
            return
        findings, checks, tables = plan_checks(revisions)
        answer = {"checks": {}, "tables": {}}
        if checks or tables:
            answer = require_fact(
                observe(
                    PendingChecks,
                    database=database,
                    checks=checks,
                    tables=tables,
                    limit=limit,
                    timeout_ms=timeout_ms,
                ),
                f"check the pending revisions against {database}",
            )
        judged = judge(revisions, findings, answer, limit)
        for line in plan_lines(judged):
            host.log(redact(line))
        allow = allowed_by_settings() if allow_unchecked is None else allow_unchecked
        reason = stop_reason(judged, allow)
        if record:
            report = {
                "step": "check_pending_revisions",
                "current": pending["current"],
                "target": target,
                "verdict": "fail" if reason else "pass",
                "allow_unchecked_revisions": allow,
                "revisions": judged,
            }
            text = redact(json.dumps(report, indent=2, sort_keys=True)) + "\n"
            if host.state.is_executing:
                yield from keep_text(record, text)
        if reason:
            if not host.state.is_executing:
                raise OperationError(redact(reason))
            yield fail_command([redact(reason)])
            return
        if not record:
            host.noop(f"{len(judged)} pending revision(s) checked against the live data")
        elif not host.state.is_executing:
            yield from keep_text(record, text)
    except OperationError as error:
        yield from stop(error)
