"""Host-side schema release checks (SPEC S2.4, S2.10): read-only pre-checks, the duplicates gate
and the released dedupe.

- ``prechecks`` (fact): each named check of the settings (``parse_check``) run in one
  ``READ ONLY`` (repeatable read) transaction under ``statement_timeout``, judged by
  ``judge_check``: uniqueness (``count(*)`` vs ``count(DISTINCT (cols))``), duplicate groups,
  a minimum number of rows matching ``column=value`` conditions (bound as parameters).
- ``duplicate_groups`` (fact): the duplicate groups of ``table(columns)`` (count and ids, up to
  ``limit`` groups), and whether the unique ``constraint`` already exists.
- ``dedupe`` (operation): per duplicate group keep the row with the lowest id (``keep``:
  ``lowest``/``highest``) and delete the others. First on a copy (the run's verified ``dump``
  restored into a scratch database ``turnout_scratch_<pid>_<hex>`` on the same server, dropped
  afterwards; without a dump, a transaction on the live database that is rolled back), then, with
  ``apply``, on the live database in one transaction that records every deleted row.

Check syntax (one string per check, ``[name=]kind:spec``; names and columns are SQL identifiers,
reaching SQL only as ``psycopg.sql.Identifier``; values are bound parameters, never SQL text)::

    meter_slots_unique=unique:meters(unit_id, kind, slot)
    no_duplicate_emails=duplicates:users(lower(email))
    active_admin=min_rows:users(role=admin, is_active=true)>=1

    python -c 'from turnout.remote import hostside_command as c
    print(c("prechecks", {"dsn_env": "DATABASE_URL", "checks": ["unique:users(email)"]}
    ).get_raw_value())' | sh
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time

from turnout.hostside.base import HostsideError, libpq_child, params_dsn, run_tool
from turnout.hostside.pg import (
    pg_connect,
    pg_current_database,
    pg_display,
    pg_find_table,
    pg_name_text,
    pg_relations,
    pg_sql_name_parts,
    pg_table_columns,
)

CHECK_KINDS = ("unique", "duplicates", "min_rows")
KEEP_RULES = ("lowest", "highest")
_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")
_CHECK_RE = re.compile(
    r"^\s*(?:(?P<name>[^=:()]+?)\s*=\s*)?(?P<kind>[a-z_]+)\s*:\s*(?P<table>[^()]+?)\s*"
    r"(?:\((?P<inner>.*)\))?\s*(?:>=\s*(?P<min>\d+))?\s*$"
)
_GATE_RE = re.compile(r"^\s*(?P<name>[^=()]+?)\s*=\s*(?P<table>[^()]+?)\s*\((?P<inner>.*)\)\s*$")
DEFAULT_TIMEOUT_MS = 5000
VALUE_MAX = 200


# Parsing (pure; used by turnout.settings to validate, and here) ----------------------------------


def parse_table(text: str) -> str:
    """A table name as SQL writes it (``users``, ``public.users``, ``public."PlayCount"``);
    ``ValueError`` otherwise."""
    try:
        parts = pg_sql_name_parts(text, 1, 2)
    except HostsideError:
        raise ValueError(f"{text!r} is not a table name like users or public.users") from None
    return pg_name_text(parts)


def parse_column(text: str) -> dict:
    """``email`` → ``{"column": "email", "lower": False}``; ``lower(email)`` compares
    ``lower(email::text)`` (e-mails differing in case are duplicates)."""
    text = text.strip()
    lowered = re.fullmatch(r"lower\s*\(\s*(.+?)\s*\)", text)
    name = lowered.group(1) if lowered else text
    if not _IDENT_RE.fullmatch(name):
        raise ValueError(f"column {text!r} must be a plain identifier like unit_id or lower(email)")
    return {"column": name, "lower": bool(lowered)}


def parse_condition(text: str) -> list:
    """``role=admin`` → ``["role", "admin"]`` (quotes around the value are dropped; the value is
    sent as a bound parameter and compared with ``column = %s``)."""
    column, equals, value = text.partition("=")
    column, value = column.strip(), value.strip()
    if not equals or not _IDENT_RE.fullmatch(column) or not value:
        raise ValueError(f"condition {text!r} must look like column=value (role=admin)")
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    return [column, value]


def parse_check(text: str) -> dict:
    """One pre-check of the settings, ``[name=]kind:table(…)[>=N]``, as the host runs it.

    >>> parse_check("active_admin=min_rows:users(role=admin, is_active=true)>=1")["where"]
    [['role', 'admin'], ['is_active', 'true']]
    >>> parse_check("unique:meters(unit_id, kind, slot)")["name"]
    'unique_meters_unit_id_kind_slot'
    """
    if not isinstance(text, str):
        raise ValueError(f"check {text!r} must be a string")
    match = _CHECK_RE.match(text)
    if not match:
        raise ValueError(f"check {text!r} must look like name=kind:table(columns)")
    kind, table, inner = match["kind"], parse_table(match["table"]), match["inner"]
    if kind not in CHECK_KINDS:
        raise ValueError(f"check {text!r}: kind {kind!r} is not one of {', '.join(CHECK_KINDS)}")
    check: dict = {"kind": kind, "table": table, "text": text.strip()}
    items = [item for item in (inner or "").split(",") if item.strip()]
    if kind == "min_rows":
        check["where"] = [parse_condition(item) for item in items]
        check["min"] = int(match["min"]) if match["min"] is not None else 1
        default = f"min_rows_{table}_" + "_".join(c for c, _ in check["where"])
    else:
        if match["min"] is not None:
            raise ValueError(f"check {text!r}: >=N belongs to min_rows checks only")
        if not items:
            raise ValueError(f"check {text!r}: {kind} needs columns, like users(email)")
        check["columns"] = [parse_column(item) for item in items]
        default = f"{kind}_{table}_" + "_".join(c["column"] for c in check["columns"])
    name = (match["name"] or "").strip() or re.sub(r"[^a-z0-9_]+", "_", default.lower()).strip("_")
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"check name {name!r} must be lower-case letters, digits and _")
    check["name"] = name
    return check


def parse_gate(text: str) -> dict:
    """The unique constraint a release adds, ``constraint=table(col, …)``.

    >>> parse_gate("uq_meter_unit_kind_slot=meters(unit_id, kind, slot)")["columns"]
    ['unit_id', 'kind', 'slot']
    """
    match = _GATE_RE.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"{text!r} must look like constraint_name=table(column, …)")
    name = match["name"].strip()
    if not _IDENT_RE.fullmatch(name):
        raise ValueError(f"constraint name {name!r} must be a plain identifier")
    columns = [c.strip() for c in match["inner"].split(",") if c.strip()]
    if not columns or not all(_IDENT_RE.fullmatch(c) for c in columns):
        raise ValueError(f"{text!r}: columns must be plain identifiers like unit_id")
    return {"constraint": name, "table": parse_table(match["table"]), "columns": columns}


def describe_check(check: dict) -> str:
    """What a check asserts, in one line: ``users(role=admin, is_active=true): at least 1 row``."""
    if check["kind"] == "min_rows":
        where = ", ".join(f"{c}={v}" for c, v in check["where"])
        return f"{check['table']}({where}): at least {check['min']} row(s)"
    columns = ", ".join(
        f"lower({c['column']})" if c["lower"] else c["column"] for c in check["columns"]
    )
    if check["kind"] == "unique":
        return f"{check['table']}({columns}): count(*) = count(DISTINCT)"
    return f"{check['table']}({columns}): no duplicate groups"


def keep_split(ids: list, keep: str) -> tuple[object, list]:
    """The id kept and the ids deleted of one duplicate group: ``keep`` ``lowest`` keeps the
    smallest id (the oldest row of a serial key), ``highest`` the largest.

    >>> keep_split([7, 3, 9], "lowest")
    (3, [7, 9])
    """
    if keep not in KEEP_RULES:
        raise ValueError(f"keep must be one of {', '.join(KEEP_RULES)}")
    ordered = sorted(ids)
    kept = ordered[0] if keep == "lowest" else ordered[-1]
    return kept, [i for i in ordered if i != kept]


# Judging (pure) ---------------------------------------------------------------------------------


def judge_check(check: dict, measured: dict) -> dict:
    """One report row: name, expectation, result, ``passed`` and the offending values.

    >>> row = judge_check({"name": "u", "kind": "unique", "table": "users", "columns": [
    ...     {"column": "email", "lower": False}]}, {"total": 5, "distinct": 4, "groups": []})
    >>> row["passed"], row["result"]
    (False, 'count 5, distinct 4')
    """
    kind = check["kind"]
    row = {"name": check["name"], "kind": kind, "expectation": describe_check(check)}
    if kind == "min_rows":
        count = measured["count"]
        return {
            **row,
            "result": f"{count} row(s)",
            "passed": count >= check["min"],
            "offending": [],
        }
    groups = measured.get("groups") or []
    offending = [
        {"values": group["values"], "count": group["count"], "ids": group.get("ids")}
        for group in groups
    ]
    if kind == "unique":
        total, distinct = measured["total"], measured["distinct"]
        return {
            **row,
            "result": f"count {total}, distinct {distinct}",
            "passed": total == distinct,
            "offending": offending,
        }
    count = measured["groups_count"]
    return {
        **row,
        "result": f"{count} duplicate group(s)",
        "passed": count == 0,
        "offending": offending,
    }


def show_values(values: dict) -> str:
    """``{"email": "a@x"}`` → ``email='a@x'`` (one line, each value cut to 60 characters)."""
    return ", ".join(
        f"{k}={str(v)[:60]!r}" if isinstance(v, str) else f"{k}={v}" for k, v in values.items()
    )


def first_failure(rows: list[dict]) -> str | None:
    """The one line naming the first failing check and its offending values, or None."""
    failing = [row for row in rows if not row["passed"]]
    if not failing:
        return None
    row = failing[0]
    shown = "; ".join(show_values(o["values"]) + f" ×{o['count']}" for o in row["offending"][:3])
    more = f" ({len(failing) - 1} more failing)" if len(failing) > 1 else ""
    offending = f": {shown}" if shown else ""
    return (
        f"pre-check {row['name']} failed ({row['expectation']}; {row['result']}){offending}{more}"
    )


def render_table(rows: list[dict]) -> str:
    """The report as a text table: check, expectation, result, verdict."""
    header = ("check", "expectation", "result", "verdict")
    lines = [
        (r["name"], r["expectation"], r["result"], "pass" if r["passed"] else "FAIL") for r in rows
    ]
    widths = [max(len(str(x[i])) for x in [header, *lines]) for i in range(4)]
    return "\n".join(
        "  ".join(str(x[i]).ljust(widths[i]) for i in range(4)).rstrip() for x in [header, *lines]
    )


# SQL (names only as sql.Identifier; values only as parameters) ----------------------------------


def column_sql(column: dict, alias: str | None = None):  # noqa: ANN201 - psycopg lazily
    """A column of a check as SQL: ``"email"`` or ``lower("email"::text)``."""
    from psycopg import sql

    ident = sql.Identifier(alias, column["column"]) if alias else sql.Identifier(column["column"])
    return sql.SQL("lower({}::text)").format(ident) if column["lower"] else ident


def not_null_sql(columns: list[dict]):  # noqa: ANN201
    """Every column of the key is set (a unique constraint lets NULLs repeat)."""
    from psycopg import sql

    return sql.SQL(" AND ").join(
        sql.SQL("{} IS NOT NULL").format(sql.Identifier(c["column"])) for c in columns
    )


def unique_counts_sql(schema: str, table: str, columns: list[dict]):  # noqa: ANN201
    """``count(*)`` and ``count(DISTINCT (cols))`` over the rows whose key columns are all set."""
    from psycopg import sql

    key = sql.SQL(", ").join(column_sql(c) for c in columns)
    distinct = key if len(columns) == 1 else sql.SQL("({})").format(key)
    return sql.SQL("SELECT count(*), count(DISTINCT {}) FROM {} WHERE {}").format(
        distinct, sql.Identifier(schema, table), not_null_sql(columns)
    )


def group_summary_sql(schema: str, table: str, columns: list[dict]):  # noqa: ANN201
    """How many duplicate groups there are and how many rows beyond one per group."""
    from psycopg import sql

    key = sql.SQL(", ").join(column_sql(c) for c in columns)
    return sql.SQL(
        "SELECT count(*), coalesce(sum(n - 1), 0)::bigint FROM (SELECT count(*) AS n FROM {} "
        "WHERE {} GROUP BY {} HAVING count(*) > 1) AS g"
    ).format(sql.Identifier(schema, table), not_null_sql(columns), key)


def groups_sql(schema: str, table: str, columns: list[dict], pk: str | None, limited: bool):  # noqa: ANN201
    """The duplicate groups (values, count, ids ordered), biggest first; ``LIMIT %s`` when
    ``limited``."""
    from psycopg import sql

    key = sql.SQL(", ").join(column_sql(c) for c in columns)
    ids = (
        sql.SQL("array_agg({} ORDER BY {})").format(sql.Identifier(pk), sql.Identifier(pk))
        if pk
        else sql.SQL("NULL::int[]")
    )
    query = sql.SQL(
        "SELECT {key}, count(*), {ids} FROM {table} WHERE {nn} GROUP BY {key} "
        "HAVING count(*) > 1 ORDER BY count(*) DESC, {key}"
    ).format(key=key, ids=ids, table=sql.Identifier(schema, table), nn=not_null_sql(columns))
    return query + sql.SQL(" LIMIT %s") if limited else query


def min_rows_sql(schema: str, table: str, where: list):  # noqa: ANN201
    """``SELECT count(*) FROM t WHERE c1 = %s AND …`` (values bound by the caller)."""
    from psycopg import sql

    condition = (
        sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c, _ in where)
        if where
        else sql.SQL("true")
    )
    return sql.SQL("SELECT count(*) FROM {} WHERE {}").format(
        sql.Identifier(schema, table), condition
    )


def count_sql(schema: str, table: str):  # noqa: ANN201
    """``SELECT count(*)`` of one table."""
    from psycopg import sql

    return sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))


def delete_sql(schema: str, table: str, pk: str):  # noqa: ANN201
    """Delete the given ids, returning each deleted row in full as JSON."""
    from psycopg import sql

    return sql.SQL("DELETE FROM {t} AS d WHERE {pk} = ANY(%s) RETURNING to_jsonb(d.*)").format(
        t=sql.Identifier(schema, table), pk=sql.Identifier(pk)
    )


# Reading ----------------------------------------------------------------------------------------


class ReadOnly:
    """``with ReadOnly(conn, timeout_ms):`` one ``REPEATABLE READ, READ ONLY`` transaction under
    ``statement_timeout`` (``SET LOCAL``), rolled back at the end: a write inside it is refused
    by the server (``cannot execute … in a read-only transaction``)."""

    def __init__(self, conn, timeout_ms: int) -> None:  # noqa: ANN001
        self.conn, self.timeout_ms = conn, timeout_ms

    def __enter__(self):  # noqa: ANN204
        self.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        self.conn.execute(
            "SELECT set_config('statement_timeout', %s, true)", (str(self.timeout_ms),)
        )
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.execute("ROLLBACK")


def plain(value: object) -> object:
    """A database value as JSON keeps it (text cut to ``VALUE_MAX`` characters)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = str(value)
    return text if len(text) <= VALUE_MAX else text[: VALUE_MAX - 1] + "…"


def resolve(conn, relations: dict, table: str, columns: list[str], database: str) -> tuple:  # noqa: ANN001
    """The catalog's (schema, table) and the columns as they exist there (unquoted names match
    as written or folded to lower case); ``HostsideError`` naming what is missing."""
    catalog = {key: info["oid"] for key, info in relations.items()}
    key = pg_find_table(catalog, table, database)
    existing = pg_table_columns(conn, catalog[key])
    found = []
    for column in columns:
        match = next((c for c in (column, column.lower()) if c in existing), None)
        if match is None:
            raise HostsideError(
                f"column {column} does not exist in {pg_display(*key)} of {database}"
            )
        found.append(match)
    return key, found, catalog[key]


def primary_key(conn, oid: int) -> str | None:  # noqa: ANN001
    """The table's single-column primary key, or None."""
    rows = conn.execute(
        "SELECT a.attname::text FROM pg_index x JOIN pg_attribute a "
        "ON a.attrelid = x.indrelid AND a.attnum = ANY(x.indkey) "
        "WHERE x.indrelid = %s::oid AND x.indisprimary",
        (oid,),
    ).fetchall()
    return rows[0][0] if len(rows) == 1 else None


def read_groups(conn, key: tuple, columns: list[dict], pk: str | None, limit: int | None) -> dict:  # noqa: ANN001
    """Duplicate groups of ``key(columns)``: their number, the extra rows, and up to ``limit``
    groups (all with None) with their values, count and ids."""
    groups_count, extra = conn.execute(group_summary_sql(*key, columns)).fetchone()
    query = groups_sql(*key, columns, pk, limit is not None)
    rows = conn.execute(query, (limit,) if limit is not None else None).fetchall()
    names = [f"lower({c['column']})" if c["lower"] else c["column"] for c in columns]
    groups = [
        {
            "values": {n: plain(v) for n, v in zip(names, row[: len(columns)], strict=True)},
            "count": row[len(columns)],
            "ids": list(row[len(columns) + 1]) if row[len(columns) + 1] is not None else None,
        }
        for row in rows
    ]
    return {"groups_count": groups_count, "extra_rows": int(extra), "groups": groups}


def measure_check(conn, relations: dict, check: dict, limit: int, database: str) -> dict:  # noqa: ANN001
    """What one check measures (the numbers ``judge_check`` reads)."""
    if check["kind"] == "min_rows":
        key, columns, _ = resolve(
            conn, relations, check["table"], [c for c, _ in check["where"]], database
        )
        where = [[c, v] for c, (_, v) in zip(columns, check["where"], strict=True)]
        count = conn.execute(min_rows_sql(*key, where), [v for _, v in where]).fetchone()[0]
        return {"table": pg_display(*key), "count": count}
    names = [c["column"] for c in check["columns"]]
    key, found, oid = resolve(conn, relations, check["table"], names, database)
    columns = [{**c, "column": f} for c, f in zip(check["columns"], found, strict=True)]
    pk = primary_key(conn, oid)
    measured = {"table": pg_display(*key), **read_groups(conn, key, columns, pk, limit)}
    if check["kind"] == "unique":
        measured["total"], measured["distinct"] = conn.execute(
            unique_counts_sql(*key, columns)
        ).fetchone()
    return measured


def checks_param(params: dict) -> list[dict]:
    """The checks of ``params["checks"]``: strings in the settings' syntax (parsed here again)."""
    checks = []
    for item in params.get("checks") or []:
        try:
            checks.append(parse_check(item) if isinstance(item, str) else parse_check(item["text"]))
        except (ValueError, KeyError, TypeError) as error:
            raise HostsideError(f"pre-check {item!r}: {error}") from None
    return checks


def action_prechecks(params: dict) -> dict:
    """Run every check in one read-only transaction; one report row per check (``judge_check``)
    with the measured numbers, plus ``read_only`` as the server reported it inside."""
    import psycopg

    limit = int(params.get("limit") or 20)
    timeout_ms = int(params.get("timeout_ms") or DEFAULT_TIMEOUT_MS)
    checks = checks_param(params)
    rows = []
    with pg_connect(params) as conn:
        database = pg_current_database(conn)
        with ReadOnly(conn, timeout_ms):
            read_only = conn.execute("SHOW transaction_read_only").fetchone()[0]
            relations = pg_relations(conn)
            for check in checks:
                try:
                    measured = measure_check(conn, relations, check, limit, database)
                except psycopg.errors.QueryCanceled:
                    raise HostsideError(
                        f"pre-check {check['name']} took longer than {timeout_ms} ms"
                    ) from None
                except psycopg.Error as error:
                    raise HostsideError(f"pre-check {check['name']} failed: {error}") from None
                numbers = {k: v for k, v in measured.items() if k != "groups"}
                rows.append({**judge_check(check, measured), "measured": numbers})
    return {
        "database": database,
        "read_only": read_only,
        "limit": limit,
        "checks": rows,
        "passed": all(row["passed"] for row in rows),
    }


def constraint_present(conn, oid: int, name: str) -> str | None:  # noqa: ANN001
    """``"constraint"`` or ``"unique index"`` when ``name`` exists on the table, else None."""
    if conn.execute(
        "SELECT 1 FROM pg_constraint WHERE conrelid = %s::oid AND conname = %s", (oid, name)
    ).fetchone():
        return "constraint"
    if conn.execute(
        "SELECT 1 FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "WHERE x.indrelid = %s::oid AND x.indisunique AND i.relname = %s",
        (oid, name),
    ).fetchone():
        return "unique index"
    return None


def read_gate(conn, params: dict, limit: int | None) -> dict:  # noqa: ANN001
    """The duplicates gate measured on ``conn`` (inside the caller's transaction)."""
    database = pg_current_database(conn)
    relations = pg_relations(conn)
    key, found, oid = resolve(
        conn, relations, params["table"], params.get("columns") or [], database
    )
    columns = [{"column": c, "lower": False} for c in found]
    pk = primary_key(conn, oid)
    constraint = params.get("constraint")
    return {
        "database": database,
        "table": pg_display(*key),
        "columns": found,
        "key": pk,
        "constraint": constraint,
        "constraint_present": constraint_present(conn, oid, constraint) if constraint else None,
        "rows": conn.execute(count_sql(*key)).fetchone()[0],
        **read_groups(conn, key, columns, pk, limit),
        "_key": key,
        "_columns": columns,
    }


def action_duplicate_groups(params: dict) -> dict:
    """The duplicates gate (read-only): groups of ``table(columns)`` holding more than one row
    (count and ids, up to ``limit`` groups), and whether ``constraint`` exists already."""
    limit = int(params.get("limit") or 20)
    with (
        pg_connect(params) as conn,
        ReadOnly(conn, int(params.get("timeout_ms") or DEFAULT_TIMEOUT_MS)),
    ):
        gate = read_gate(conn, params, limit)
    gate.pop("_key")
    gate.pop("_columns")
    return gate


# Dedupe -----------------------------------------------------------------------------------------


def dedupe_plan(conn, params: dict) -> dict:  # noqa: ANN001
    """Every duplicate group (no limit) with the id kept and the ids deleted (``keep_split``)."""
    gate = read_gate(conn, params, None)
    if not gate["key"]:
        raise HostsideError(f"{gate['table']} has no single-column primary key to dedupe by")
    keep = params.get("keep") or "lowest"
    groups = []
    for group in gate["groups"]:
        kept, deleted = keep_split(group["ids"], keep)
        groups.append({**group, "kept": kept, "deleted": deleted})
    gate["groups"] = groups
    gate["delete_ids"] = sorted(i for g in groups for i in g["deleted"])
    return gate


def add_constraint_sql(key: tuple, constraint: str, columns: list[str]):  # noqa: ANN201
    from psycopg import sql

    return sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} UNIQUE ({})").format(
        sql.Identifier(*key),
        sql.Identifier(constraint),
        sql.SQL(", ").join(sql.Identifier(c) for c in columns),
    )


def rehearse_delete(conn, params: dict, expected: list | None) -> dict:  # noqa: ANN001
    """Inside the caller's transaction on a copy: the plan, the delete, what is left and whether
    the constraint can then be added. ``expected``: the live plan's ids (the copy must hold
    them)."""
    plan = dedupe_plan(conn, params)
    if expected is not None and plan["delete_ids"] != expected:
        raise HostsideError(
            f"the copy plans to delete {len(plan['delete_ids'])} row(s), the live database "
            f"{len(expected)}: the dump does not hold the live rows (take the backup again)"
        )
    deleted = conn.execute(delete_sql(*plan["_key"], plan["key"]), (plan["delete_ids"],)).fetchall()
    left = conn.execute(group_summary_sql(*plan["_key"], plan["_columns"])).fetchone()[0]
    added = None
    if params.get("constraint") and not plan["constraint_present"]:
        conn.execute(add_constraint_sql(plan["_key"], params["constraint"], plan["columns"]))
        added = True
    return {"deleted": len(deleted), "groups_left": left, "constraint_added": added}


def restore_scratch(
    params: dict, dsn: str, name: str, log_path: str | None, timeout: float
) -> None:
    """``pg_restore --no-owner --no-acl --exit-on-error`` of ``params["dump"]`` into the scratch
    database ``name``: on the host (``pg_bin``), or inside the database's compose service
    (``compose_exec``: the dump streamed in on stdin, the DSN's user over the local socket)."""
    import shutil

    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    argv = ["--no-owner", "--no-acl", "--exit-on-error"]
    if params.get("compose_exec"):
        user = conninfo_to_dict(libpq_child(dsn)[0]).get("user")
        argv = [*params["compose_exec"], "pg_restore", *argv, f"--dbname={name}"]
        argv += [f"--username={user}"] if user else []
        with open(params["dump"], "rb") as source:
            run_tool(
                argv,
                log_path=log_path,
                timeout=timeout,
                feed=lambda stdin: shutil.copyfileobj(source, stdin, 1 << 20),
            )
        return
    safe_dsn, env = libpq_child(make_conninfo(dsn, dbname=name))
    tool = os.path.join(params.get("pg_bin") or "", "pg_restore")
    run_tool(
        [tool, *argv, f"--dbname={safe_dsn}", params["dump"]],
        env=env,
        log_path=log_path,
        timeout=timeout,
    )


def scratch_copy(params: dict, expected: list, log_path: str | None, timeout: float) -> dict:
    """Restore ``params["dump"]`` into a new scratch database on the live database's server,
    rehearse the delete there, then drop it (always). Needs the CREATEDB privilege."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    name = f"turnout_scratch_{os.getpid()}_{secrets.token_hex(4)}"
    dsn = params_dsn(params)
    started = time.monotonic()
    with pg_connect(params) as conn:
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.Error as error:
            raise HostsideError(
                f"cannot create the scratch database {name}: {str(error).strip()} (the role "
                "needs CREATEDB; or leave dump unset to rehearse in a rolled-back transaction)"
            ) from None
    try:
        restore_scratch(params, dsn, name, log_path, timeout)
        with psycopg.connect(make_conninfo(dsn, dbname=name), autocommit=False) as scratch:
            result = rehearse_delete(scratch, params, expected)
            scratch.commit()
    finally:
        with pg_connect(params) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    return {
        **result,
        "how": "scratch database restored from the dump",
        "database": name,
        "dump": params["dump"],
        "seconds": round(time.monotonic() - started, 2),
        "dropped": True,
    }


def rolled_back_copy(params: dict, expected: list) -> dict:
    """The delete rehearsed in a transaction on the live database that is rolled back."""
    with pg_connect(params, autocommit=False) as conn:
        try:
            result = rehearse_delete(conn, params, expected)
        finally:
            conn.rollback()
    return {**result, "how": "transaction on the live database, rolled back"}


def write_record(path: str, record: dict) -> None:
    """The dedupe's evidence (0600, written whole through a temporary file)."""
    from turnout.dsn import redact
    from turnout.hostside.base import _SECRETS, write_json_atomically

    record = json.loads(redact(json.dumps(record, sort_keys=True, default=str), _SECRETS))
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    write_json_atomically(path, record)


def action_dedupe(params: dict) -> dict:
    """Keep one row per duplicate group (``keep``) and delete the others: rehearsed on a copy
    first (``scratch_copy`` with a ``dump``, else ``rolled_back_copy``), then with ``apply`` on the
    live database in one transaction (the table locked against writers, the plan measured again
    and required to equal the copy's), the deleted rows recorded in ``record`` in full."""
    log_path, timeout = params.get("log_path"), float(params.get("timeout_s") or 1800)
    keep = params.get("keep") or "lowest"
    if keep not in KEEP_RULES:
        raise HostsideError(f"keep must be one of {', '.join(KEEP_RULES)}")
    with pg_connect(params, autocommit=False) as conn:
        plan = dedupe_plan(conn, params)
        conn.rollback()
    expected = plan["delete_ids"]
    summary = {k: plan[k] for k in ("database", "table", "columns", "key", "constraint")}
    if not expected:
        return {**summary, "deleted": 0, "note": "no duplicate groups: nothing to delete"}
    copy = (
        scratch_copy(params, expected, log_path, timeout)
        if params.get("dump")
        else rolled_back_copy(params, expected)
    )
    if copy["deleted"] != len(expected) or copy["groups_left"]:
        raise HostsideError(
            f"the rehearsal on the copy deleted {copy['deleted']} of {len(expected)} row(s) and "
            f"left {copy['groups_left']} group(s): live database untouched"
        )
    record = {
        **summary,
        "keep": keep,
        "rule": f"per duplicate group the row with the {keep} {plan['key']} is kept",
        "groups": [
            {k: g[k] for k in ("values", "count", "ids", "kept", "deleted")} for g in plan["groups"]
        ],
        "copy": copy,
        "applied": False,
    }
    if not params.get("apply"):
        write_record(params["record"], record)
        return {**record, "deleted": 0}
    from psycopg import sql

    with pg_connect(params, autocommit=False) as conn:
        conn.execute(
            sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(
                sql.Identifier(*plan["_key"])
            )
        )
        again = dedupe_plan(conn, params)
        if again["delete_ids"] != expected:
            conn.rollback()
            raise HostsideError(
                "the duplicates changed while the copy was rehearsed: "
                "live database untouched; run again"
            )
        rows = [row[0] for row in conn.execute(delete_sql(*plan["_key"], plan["key"]), (expected,))]
        if len(rows) != len(expected):
            conn.rollback()
            raise HostsideError(f"deleted {len(rows)} of {len(expected)} row(s): rolled back")
        record.update(
            applied=True,
            applied_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            deleted_ids=expected,
            deleted_rows=sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str)),
        )
        write_record(params["record"] + ".partial", record)
        try:
            conn.commit()
        except BaseException:
            os.unlink(params["record"] + ".partial")
            raise
    os.replace(params["record"] + ".partial", params["record"])
    return {**summary, "deleted": len(rows), "record": params["record"], "copy": copy}
