"""Host-side checks of pending migrations against the live data (S2.10, issue 9 item 4): each
data-dependent statement a pending Alembic revision holds (classified on the control machine by
``turnout/sqlrisk.py``) is checked read-only, and the tables of the heavy ones are sized.

Fact action ``pending_checks`` (always exits 0). Every check runs in its own ``READ ONLY``
transaction under ``SET LOCAL statement_timeout`` and is rolled back: nothing is changed, and a
function in a CHECK expression cannot write either. Table and column names reach SQL only through
``psycopg.sql.Identifier``; the two expressions a migration carries (a ``CHECK`` expression, a
unique index's expression or ``WHERE`` predicate) are the app's own migration text, evaluated as
written inside that read-only transaction (``SELECT … WHERE NOT (<expr>)``).

    python -c 'from turnout.remote import hostside_command as c
    print(c("pending_checks", {"dsn_env": "DATABASE_URL", "checks": [{"id": "1",
      "kind": "not_null", "table": ["public", "users"], "column": "email"}]}).get_raw_value())' | sh
"""

from turnout.hostside.base import HostsideError
from turnout.hostside.pg import pg_connect, pg_current_database, pg_display, pg_relations

INT_RANGES = {
    "int2": (-32768, 32767),
    "int4": (-2147483648, 2147483647),
    "int8": (-9223372036854775808, 9223372036854775807),
}
TEXT_TYPES = ("text", "varchar", "bpchar", "citext", "name")
NUMBER_TYPES = ("int2", "int4", "int8", "numeric", "float4", "float8")
INTEGER_RE = r"^\s*[-+]?[0-9]+\s*$"
NUMBER_RE = r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)\s*$"


def table_key(table: list | tuple) -> tuple[str, str]:
    """``[schema or None, name]`` → ``(schema, name)`` (no schema: ``public``)."""
    if not isinstance(table, (list, tuple)) or len(table) != 2 or not table[1]:
        raise HostsideError(f"table {table!r} must be [schema, name]")
    return (table[0] or "public", table[1])


def columns_of(conn, oid: int) -> dict[str, dict]:  # noqa: ANN001
    """column → ``{"type": typname, "typmod", "display": format_type}``."""
    rows = conn.execute(
        "SELECT a.attname::text, t.typname::text, a.atttypmod, "
        "  format_type(a.atttypid, a.atttypmod) "
        "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = %s::oid AND a.attnum > 0 AND NOT a.attisdropped",
        (oid,),
    ).fetchall()
    return {name: {"type": typ, "typmod": mod, "display": shown} for name, typ, mod, shown in rows}


def primary_key(conn, oid: int) -> list[str]:  # noqa: ANN001
    rows = conn.execute(
        "SELECT a.attname::text FROM pg_index i "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey::int2[]) "
        "WHERE i.indrelid = %s::oid AND i.indisprimary "
        "ORDER BY array_position(i.indkey::int2[], a.attnum)",
        (oid,),
    ).fetchall()
    return [row[0] for row in rows]


def row_id(sql, key: list[str], alias: str | None = None):  # noqa: ANN001, ANN201
    """The SQL naming one row: its primary key as text (``a,b`` for several columns), else its
    ``ctid``."""
    prefix = (alias,) if alias else ()
    if not key:
        return sql.SQL("{}::text").format(sql.Identifier(*prefix, "ctid"))
    if len(key) == 1:
        return sql.SQL("{}::text").format(sql.Identifier(*prefix, key[0]))
    return sql.SQL("concat_ws(',', {})").format(
        sql.SQL(", ").join(sql.Identifier(*prefix, c) for c in key)
    )


def row_order(sql, key: list[str], qualifier: str | tuple[str, ...] | None = None):  # noqa: ANN001, ANN201
    """The SQL ordering rows by their primary key (else ``ctid``): the first rows are shown.
    Always qualified (by the table, or its alias): a bare ``ORDER BY id`` would sort by the
    select list's ``id::text`` (an output column of that name wins): 1, 10, 100, 2…"""
    prefix = qualifier if isinstance(qualifier, tuple) else ((qualifier,) if qualifier else ())
    return sql.SQL(", ").join(sql.Identifier(*prefix, c) for c in (key or ["ctid"]))


def declared_length(info: dict) -> int | None:
    """The length of a ``varchar(n)``/``char(n)`` column (typmod - 4), else None."""
    if info["type"] in ("varchar", "bpchar") and info["typmod"] and info["typmod"] > 4:
        return info["typmod"] - 4
    return None


def numeric_limits(info: dict) -> tuple[int, int] | None:
    """(precision, scale) of a ``numeric(p, s)`` column, else None."""
    if info["type"] == "numeric" and info["typmod"] and info["typmod"] > 4:
        mod = info["typmod"] - 4
        return (mod >> 16) & 0xFFFF, mod & 0xFFFF
    return None


def narrowing_condition(sql, column: str, info: dict, new_type: dict):  # noqa: ANN001, ANN201
    """``(condition, what)``: the rows that do not fit ``new_type`` (None when the change cannot
    narrow: nothing to check), or raises ``HostsideError`` when the change is not understood."""
    col = sql.Identifier(column)
    old, new = info["type"], new_type.get("name")
    if new in ("text", "citext") or (new == "varchar" and "length" not in new_type):
        return None, "no length limit"
    if new in ("varchar", "bpchar"):
        length = int(new_type["length"])
        current = declared_length(info)
        if current is not None and current <= length:
            return None, f"{info['display']} fits in {new_type['text']}"
        condition = sql.SQL("length({}::text) > {}").format(col, sql.Literal(length))
        return condition, f"longer than {length} characters"
    if new in INT_RANGES:
        low, high = INT_RANGES[new]
        if old in INT_RANGES and INT_RANGES[old][1] <= high:
            return None, f"{info['display']} fits in {new_type['text']}"
        bounds = sql.SQL("NOT BETWEEN {} AND {}").format(sql.Literal(low), sql.Literal(high))
        if old in NUMBER_TYPES:
            return sql.SQL("{}::numeric {}").format(col, bounds), f"outside {new} range"
        if old in TEXT_TYPES:
            return (
                sql.SQL(
                    "CASE WHEN {c}::text ~ {r} THEN btrim({c}::text)::numeric {b} ELSE true END"
                ).format(c=col, r=sql.Literal(INTEGER_RE), b=bounds),
                f"not an integer in {new} range",
            )
    if new == "numeric":
        if "precision" not in new_type:
            if old in NUMBER_TYPES:
                return None, "numeric without a precision holds every number"
        else:
            precision, scale = int(new_type["precision"]), int(new_type.get("scale") or 0)
            current = numeric_limits(info)
            if current and current[0] - current[1] <= precision - scale and current[1] <= scale:
                return None, f"{info['display']} fits in {new_type['text']}"
            if old in INT_RANGES and len(str(INT_RANGES[old][1])) <= precision - scale:
                return None, f"{info['display']} fits in {new_type['text']}"
            limit = sql.Literal(10 ** (precision - scale))
            fits = sql.SQL("abs(round({v}::numeric, {s})) >= {l}")
            if old in NUMBER_TYPES:
                return (
                    fits.format(v=col, s=sql.Literal(scale), l=limit),
                    f"{precision - scale} digits or more before the point",
                )
            if old in TEXT_TYPES:
                inner = fits.format(
                    v=sql.SQL("btrim({}::text)").format(col), s=sql.Literal(scale), l=limit
                )
                return (
                    sql.SQL("CASE WHEN {c}::text ~ {r} THEN {i} ELSE true END").format(
                        c=col, r=sql.Literal(NUMBER_RE), i=inner
                    ),
                    f"not a number of at most {precision - scale} digits before the point",
                )
    if new in ("float8",) and old in NUMBER_TYPES:
        return None, "every number fits in double precision"
    raise HostsideError(f"a change from {info['display']} to {new_type.get('text')} is not checked")


def check_query(conn, check: dict, catalog: dict, limit: int):  # noqa: ANN001, ANN201
    """``(query, params, shape, note)`` for one check; ``None`` query when nothing can fail."""
    from psycopg import sql

    key = table_key(check["table"])
    if key not in catalog:
        raise LookupError(f"table {pg_display(*key)} does not exist")
    oid = catalog[key]["oid"]
    table = sql.Identifier(*key)
    columns = columns_of(conn, oid)
    # add_not_null: the column is the one being added (absent from the live table).
    wanted = [] if check["kind"] == "add_not_null" else [check.get("column")]
    for name in [*wanted, *(check.get("columns") or [])]:
        if name is not None and name not in columns:
            raise LookupError(f"column {name} of {pg_display(*key)} does not exist")
    key_columns = primary_key(conn, oid)
    rid, order = row_id(sql, key_columns), row_order(sql, key_columns, key)
    kind = check["kind"]
    params = (limit,)
    if kind == "not_null":
        query = sql.SQL(
            "SELECT {r}, count(*) OVER () FROM {t} WHERE {c} IS NULL ORDER BY {o} LIMIT %s"
        ).format(r=rid, t=table, c=sql.Identifier(check["column"]), o=order)
        return query, params, "rows", "rows holding NULL"
    if kind == "add_not_null":
        query = sql.SQL("SELECT {r}, count(*) OVER () FROM {t} ORDER BY {o} LIMIT %s").format(
            r=rid, t=table, o=order
        )
        return query, params, "rows", "rows that would get NULL (no default)"
    if kind == "check":
        query = sql.SQL(
            "SELECT {r}, count(*) OVER () FROM {t} WHERE NOT ({e}) ORDER BY {o} LIMIT %s"
        ).format(r=rid, t=table, e=sql.SQL(check["expression"]), o=order)
        return query, params, "rows", f"rows failing CHECK ({check['expression']})"
    if kind == "unique":
        items = []
        for item in check["items"]:
            if "column" in item:
                items.append(sql.Identifier(item["column"]))
            else:
                items.append(sql.SQL("({})").format(sql.SQL(item["expression"])))
        # NULLs are distinct (never duplicates) unless the constraint says NULLS NOT DISTINCT.
        where = [sql.SQL("true")] + (
            []
            if check.get("nulls_not_distinct")
            else [sql.SQL("{} IS NOT NULL").format(i) for i in items]
        )
        if check.get("where"):
            where.append(sql.SQL("({})").format(sql.SQL(check["where"])))
        query = sql.SQL(
            "SELECT ARRAY[{texts}], count(*), (array_agg({r} ORDER BY {o}))[1:5], "
            "count(*) OVER () FROM {t} WHERE {w} GROUP BY {g} HAVING count(*) > 1 "
            "ORDER BY count(*) DESC LIMIT %s"
        ).format(
            texts=sql.SQL(", ").join(sql.SQL("({})::text").format(i) for i in items),
            r=rid,
            o=order,
            t=table,
            w=sql.SQL(" AND ").join(where),
            g=sql.SQL(", ").join(items),
        )
        return query, params, "groups", "duplicate groups"
    if kind == "foreign_key":
        parent = table_key(check["ref_table"])
        if parent not in catalog:
            raise LookupError(f"table {pg_display(*parent)} does not exist")
        parent_columns = check.get("ref_columns") or primary_key(conn, catalog[parent]["oid"])
        known = columns_of(conn, catalog[parent]["oid"])
        if not parent_columns or any(c not in known for c in parent_columns):
            raise LookupError(f"referenced columns of {pg_display(*parent)} not found")
        child_columns = check["columns"]
        query = sql.SQL(
            "SELECT {r}, ARRAY[{texts}], count(*) OVER () FROM {t} AS c "
            "WHERE {notnull} AND NOT EXISTS (SELECT 1 FROM {p} AS p WHERE {join}) ORDER BY {o} "
            "LIMIT %s"
        ).format(
            r=row_id(sql, key_columns, "c"),
            o=row_order(sql, key_columns, "c"),
            texts=sql.SQL(", ").join(
                sql.SQL("{}::text").format(sql.Identifier("c", c)) for c in child_columns
            ),
            t=table,
            notnull=sql.SQL(" AND ").join(
                sql.SQL("{} IS NOT NULL").format(sql.Identifier("c", c)) for c in child_columns
            ),
            p=sql.Identifier(*parent),
            join=sql.SQL(" AND ").join(
                sql.SQL("{} = {}").format(sql.Identifier("p", pc), sql.Identifier("c", cc))
                for pc, cc in zip(parent_columns, child_columns, strict=False)
            ),
        )
        return query, params, "orphans", f"rows without a parent in {pg_display(*parent)}"
    if kind == "type":
        info = columns[check["column"]]
        condition, what = narrowing_condition(sql, check["column"], info, check["new_type"])
        if condition is None:
            return None, params, "rows", what
        query = sql.SQL(
            "SELECT {r}, count(*) OVER () FROM {t} WHERE {n} IS NOT NULL AND ({c}) "
            "ORDER BY {o} LIMIT %s"
        ).format(r=rid, t=table, n=sql.Identifier(check["column"]), c=condition, o=order)
        return query, params, "rows", f"{info['display']} → {check['new_type']['text']}: {what}"
    raise HostsideError(f"unknown check kind {kind!r}")


def run_check(conn, check: dict, catalog: dict, limit: int, timeout_ms: int) -> dict:  # noqa: ANN001
    """One check in its own read-only transaction, rolled back."""
    import psycopg

    conn.execute("BEGIN TRANSACTION READ ONLY")
    try:
        conn.execute("SELECT set_config('statement_timeout', %s, true)", (str(timeout_ms),))
        try:
            query, params, shape, what = check_query(conn, check, catalog, limit)
        except LookupError as missing:
            return {"status": "missing", "detail": str(missing)}
        except HostsideError as error:
            return {"status": "unchecked", "detail": str(error)}
        if query is None:
            return {"status": "ok", "count": 0, "detail": what}
        rows = conn.execute(query, params).fetchall()
    except psycopg.errors.QueryCanceled:
        return {"status": "error", "detail": f"the check took longer than {timeout_ms} ms"}
    except psycopg.Error as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return {"status": "error", "detail": first}
    finally:
        conn.execute("ROLLBACK")
    count = rows[0][-1] if rows else 0
    if shape == "groups":
        found = [{"values": r[0], "rows": r[1], "ids": r[2]} for r in rows]
    elif shape == "orphans":
        found = [{"id": r[0], "values": r[1]} for r in rows]
    else:
        found = [r[0] for r in rows]
    return {"status": "fail" if count else "ok", "count": count, "found": found, "detail": what}


def table_size(conn, key: tuple[str, str], catalog: dict) -> dict:  # noqa: ANN001
    if key not in catalog:
        return {"exists": False}
    bytes_, rows = conn.execute(
        "SELECT pg_total_relation_size(c.oid)::bigint, CASE WHEN c.reltuples >= 0 "
        "THEN c.reltuples ELSE coalesce(pg_stat_get_live_tuples(c.oid), 0) END::bigint "
        "FROM pg_class c WHERE c.oid = %s::oid",
        (catalog[key]["oid"],),
    ).fetchone()
    return {"exists": True, "total_bytes": bytes_, "estimated_rows": rows}


def action_pending_checks(params: dict) -> dict:
    """Run ``params["checks"]`` (each ``{"id", "kind", "table": [schema, name], …}``) read-only
    and size ``params["tables"]``: ``{"database", "checks": {id: {"status": ok|fail|missing|
    unchecked|error, "count", "found", "detail"}}, "tables": {"schema.table": {…}}}``."""
    limit = int(params.get("limit", 20))
    timeout_ms = int(params.get("timeout_ms", 5000))
    with pg_connect(params) as conn:
        database = pg_current_database(conn)
        catalog = pg_relations(conn)
        results = {
            str(check["id"]): run_check(conn, check, catalog, limit, timeout_ms)
            for check in params.get("checks") or []
        }
        sizes = {}
        for table in params.get("tables") or []:
            key = table_key(table)
            sizes[pg_display(*key)] = table_size(conn, key, catalog)
    return {"database": database, "checks": results, "tables": sizes}
