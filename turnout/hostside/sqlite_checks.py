"""Host-side read-only pre-checks and duplicates gate on an app's SQLite file (S2.4, S2.10;
issue 9 item 9): the same checks, settings syntax and report rows as ``checks.py`` on
PostgreSQL, against the file opened read-only (``mode=ro``: any write is refused by SQLite) under
a time limit.

SQLite has no ``psycopg.sql``: names reach SQL only through ``quote_ident`` (double quotes,
doubled inside, after the settings' parser allowed plain identifiers only); values are bound
parameters.

    python -c 'from turnout.remote import hostside_command as c
    print(c("sqlite_prechecks", {"sqlite_path": "/srv/app/data/app.db",
        "checks": ["unique:meters(unit_id, kind, slot)"]}).get_raw_value())' | sh
"""

import os
import sqlite3
import time

from turnout.hostside.base import HostsideError
from turnout.hostside.checks import DEFAULT_TIMEOUT_MS, checks_param, judge_check


def quote_ident(name: str) -> str:
    """A SQLite identifier, quoted.

    >>> quote_ident('odd"name')
    '"odd""name"'
    """
    return '"' + name.replace('"', '""') + '"'


def sqlite_value(text: str) -> object:
    """A pre-check's ``column=value`` for SQLite, which stores booleans as 0/1 and compares
    ``'1'`` and ``1`` as different: ``true``/``false`` and integers become numbers.

    >>> sqlite_value("true"), sqlite_value("12"), sqlite_value("admin")
    (1, 12, 'admin')
    """
    lowered = text.lower()
    if lowered in ("true", "false"):
        return int(lowered == "true")
    try:
        return int(text)
    except ValueError:
        return text


def open_read_only(path: str, timeout_ms: int) -> sqlite3.Connection:
    """The file opened read-only; statements running past ``timeout_ms`` are interrupted."""
    if not os.path.isfile(path):
        raise HostsideError(f"SQLite file {path} does not exist on this host; fix sqlite_path")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    deadline = time.monotonic() + timeout_ms / 1000
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    return conn


def table_name(check_table: str) -> str:
    """The table of a check (``main.users`` or ``users``; SQLite has no other schema here)."""
    return check_table.split(".")[-1].strip('"')


def key_sql(columns: list[dict]) -> str:
    return ", ".join(
        f"lower({quote_ident(c['column'])})" if c["lower"] else quote_ident(c["column"])
        for c in columns
    )


def not_null_sql(columns: list[dict]) -> str:
    return " AND ".join(f"{quote_ident(c['column'])} IS NOT NULL" for c in columns)


def read_groups(
    conn: sqlite3.Connection, table: str, columns: list[dict], limit: int | None
) -> dict:
    """Duplicate groups of ``table(columns)`` (rows with a NULL in the key left out, as a unique
    constraint leaves them): their number, the extra rows, up to ``limit`` groups with ids."""
    key, where, name = key_sql(columns), not_null_sql(columns), quote_ident(table)
    grouped = f"SELECT count(*) AS n FROM {name} WHERE {where} GROUP BY {key} HAVING count(*) > 1"
    groups_count, extra = conn.execute(
        f"SELECT count(*), coalesce(sum(n - 1), 0) FROM ({grouped})"
    ).fetchone()
    query = (
        f"SELECT {key}, count(*), group_concat(rowid) FROM {name} WHERE {where} "
        f"GROUP BY {key} HAVING count(*) > 1 ORDER BY count(*) DESC, min(rowid)"
    )
    rows = conn.execute(
        query + (" LIMIT ?" if limit is not None else ""), (limit,) if limit is not None else ()
    ).fetchall()
    names = [f"lower({c['column']})" if c["lower"] else c["column"] for c in columns]
    groups = [
        {
            "values": dict(zip(names, row[: len(columns)], strict=True)),
            "count": row[len(columns)],
            "ids": sorted(int(i) for i in str(row[len(columns) + 1]).split(",")),
        }
        for row in rows
    ]
    return {"groups_count": groups_count, "extra_rows": int(extra), "groups": groups}


def measure_check(conn: sqlite3.Connection, check: dict, limit: int) -> dict:
    """What one check measures on SQLite (the numbers ``judge_check`` reads)."""
    table = table_name(check["table"])
    if check["kind"] == "min_rows":
        where = " AND ".join(f"{quote_ident(c)} = ?" for c, _ in check["where"]) or "1"
        values = [sqlite_value(v) for _, v in check["where"]]
        count = conn.execute(
            f"SELECT count(*) FROM {quote_ident(table)} WHERE {where}", values
        ).fetchone()[0]
        return {"table": table, "count": count}
    columns = check["columns"]
    measured = {"table": table, **read_groups(conn, table, columns, limit)}
    if check["kind"] == "unique":
        where = not_null_sql(columns)
        measured["total"] = conn.execute(
            f"SELECT count(*) FROM {quote_ident(table)} WHERE {where}"
        ).fetchone()[0]
        measured["distinct"] = conn.execute(
            f"SELECT count(*) FROM (SELECT DISTINCT {key_sql(columns)} "
            f"FROM {quote_ident(table)} WHERE {where})"
        ).fetchone()[0]
    return measured


def action_sqlite_prechecks(params: dict) -> dict:
    """Every pre-check on the SQLite file ``sqlite_path``, read-only; the report rows of
    ``checks.action_prechecks``."""
    limit = int(params.get("limit") or 20)
    timeout_ms = int(params.get("timeout_ms") or DEFAULT_TIMEOUT_MS)
    checks = checks_param(params)
    rows = []
    conn = open_read_only(params["sqlite_path"], timeout_ms)
    try:
        for check in checks:
            try:
                measured = measure_check(conn, check, limit)
            except sqlite3.OperationalError as error:
                raise HostsideError(f"pre-check {check['name']} failed: {error}") from None
            numbers = {k: v for k, v in measured.items() if k != "groups"}
            rows.append({**judge_check(check, measured), "measured": numbers})
    finally:
        conn.close()
    return {
        "database": params["sqlite_path"],
        "read_only": "on",
        "limit": limit,
        "checks": rows,
        "passed": all(row["passed"] for row in rows),
    }


def constraint_present(conn: sqlite3.Connection, table: str, name: str) -> str | None:
    """``"constraint"`` when the table's definition names ``name`` (SQLite keeps a named
    constraint only in the CREATE TABLE text), ``"unique index"`` for an index of that name."""
    found = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    if (
        found
        and found[0]
        and (f'CONSTRAINT "{name}"' in found[0] or f"CONSTRAINT {name} " in found[0])
    ):
        return "constraint"
    index = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)
    ).fetchone()
    return "unique index" if index else None


def action_sqlite_duplicate_groups(params: dict) -> dict:
    """The duplicates gate on the SQLite file, read-only (as ``checks.action_duplicate_groups``;
    ``key`` is SQLite's rowid)."""
    limit = int(params.get("limit") or 20)
    table = table_name(params["table"])
    columns = [{"column": c, "lower": False} for c in params.get("columns") or []]
    conn = open_read_only(
        params["sqlite_path"], int(params.get("timeout_ms") or DEFAULT_TIMEOUT_MS)
    )
    try:
        if not conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone():
            raise HostsideError(f"table {table} does not exist in {params['sqlite_path']}")
        constraint = params.get("constraint")
        return {
            "database": params["sqlite_path"],
            "table": table,
            "columns": [c["column"] for c in columns],
            "key": "rowid",
            "constraint": constraint,
            "constraint_present": constraint_present(conn, table, constraint)
            if constraint
            else None,
            "rows": conn.execute(f"SELECT count(*) FROM {quote_ident(table)}").fetchone()[0],
            **read_groups(conn, table, columns, limit),
        }
    finally:
        conn.close()
