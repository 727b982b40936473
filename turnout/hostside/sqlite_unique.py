"""Unique-conflict precheck of an SQLite → PostgreSQL copy (S3.2; issue 10 item 4): every unique
constraint and unique index of the target tables (primary keys, multi-column, expression indexes
such as ``lower(email)``, partial indexes, NULLS NOT DISTINCT) checked against the SQLite data
as the copy will load it, with PostgreSQL's own semantics.

How: per table, the columns the table's unique indexes use are read from the SQLite file,
converted by ``RowConverter`` (the copy's converters), and COPYed into a TEMP table of the same
column names, types and collations; then per index ``GROUP BY`` its key expressions (as
``pg_get_indexdef(indexrelid, k, true)`` prints them, under the index's collation) ``HAVING
count(*) > 1``, with the index's predicate (``pg_get_expr(indpred, indrelid)``), rows with a NULL
key left out unless NULLS NOT DISTINCT. So ``'A@x.test'`` and ``'a@x.test'`` conflict under
``lower(email)``, integer ``1`` and text ``'1'`` in an integer column, ``'ab'`` and ``'ab '`` in
char(n), an epoch and an ISO text of the same instant — as PostgreSQL would refuse them.

An index whose one key is the column that is the SQLite table's rowid (``INTEGER PRIMARY KEY``)
holds by construction (distinct integers, kept as they are) and is reported ``proven``, not
loaded; an index using a column the SQLite table lacks (left to its default by the copy) is
reported ``skipped``. A row that cannot convert is left out of the check and reported in
``bad_values`` (table, key, column): the copy stops on it unless it has a lossy form.

Nothing is written to the target's tables: temp tables only, in transactions rolled back.
Expression and predicate text and type names come from the target's catalog and are composed with
``sql.SQL``; names go through ``sql.Identifier``; nothing from params reaches SQL text.

    python -c 'from turnout.remote import hostside_command as c
    print(c("sqlite_unique_conflicts", {"sqlite_path": "/srv/app/data/app.db",
        "dsn_env": "DATABASE_URL_SECONDARY", "tables": ["users"]}).get_raw_value())' | sh
"""

import sqlite3
from collections.abc import Sequence

from turnout.hostside.base import HostsideError
from turnout.hostside.pg import pg_connect, pg_display
from turnout.hostside.sqlite_checks import quote_ident
from turnout.hostside.sqlite_types import (
    INTEGER_TYPES,
    BadValue,
    RowConverter,
    TablePair,
    TargetColumn,
    copy_binary_type,
    open_source,
    table_pairs,
)

DEFAULT_LIMIT = 20
DEFAULT_TIMEOUT_MS = 600_000
ROWS_PER_GROUP = 10
FETCH_ROWS = 10_000
WORK_MEM = "64MB"


# The target's unique indexes ---------------------------------------------------------------------


def pg_table_oid(pg_conn, pair: TablePair) -> int:  # noqa: ANN001
    """The target table's oid.

    pg_table_oid(pg_conn, TablePair("users", "public", "id", columns))   # 16390
    """
    row = pg_conn.execute(
        "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s",
        (pair.schema, pair.name),
    ).fetchone()
    if row is None:
        raise HostsideError(f"table {pg_display(pair.schema, pair.name)} left the target")
    return row[0]


def pg_column_catalog(pg_conn, oid: int) -> dict[int, dict]:  # noqa: ANN001
    """attnum → the column's name, type (``format_type``) and collation ``(schema, name)``.

    pg_column_catalog(pg_conn, 16390)[2]
    # {'name': 'email', 'type': 'character varying(255)', 'collation': ('pg_catalog', 'default')}
    """
    rows = pg_conn.execute(
        "SELECT a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), cn.nspname, "
        "co.collname FROM pg_attribute a "
        "LEFT JOIN pg_collation co ON co.oid = a.attcollation "
        "LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace "
        "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped",
        (oid,),
    ).fetchall()
    return {
        attnum: {"name": name, "type": pg_type, "collation": (nsp, coll) if coll else None}
        for attnum, name, pg_type, nsp, coll in rows
    }


def unique_checks(pg_conn, pair: TablePair) -> list[dict]:  # noqa: ANN001
    """The unique constraints and unique indexes of a target table: name (the constraint's, else
    the index's), definition, key expressions with their collations, predicate, NULLS NOT
    DISTINCT, and the columns they use (their ``pg_depend`` entries and plain key columns).

        unique_checks(pg_conn, pairs[0])[0]["definition"]   # 'UNIQUE (email)'
    """
    from psycopg import sql

    nulls = "i.indnullsnotdistinct" if pg_conn.info.server_version >= 150000 else "false"
    query = sql.SQL(
        "SELECT i.indexrelid, coalesce(con.conname, ic.relname), "
        "coalesce(pg_get_constraintdef(con.oid), pg_get_indexdef(i.indexrelid)), "
        "pg_get_expr(i.indpred, i.indrelid), {nulls}, "
        "ARRAY(SELECT d.refobjsubid::int FROM pg_depend d "
        "  WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid "
        "  AND d.refclassid = 'pg_class'::regclass AND d.refobjid = i.indrelid "
        "  AND d.refobjsubid > 0 "
        "  UNION SELECT k::int FROM unnest(i.indkey::int2[]) k WHERE k > 0), "
        "((i.indkey::int2[])[0:i.indnkeyatts - 1])::int[] "
        "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
        "LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid "
        "  AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u') "
        "WHERE i.indrelid = %s AND i.indisunique ORDER BY 2"
    ).format(nulls=sql.SQL(nulls))
    oid = pg_table_oid(pg_conn, pair)
    checks = []
    for row in pg_conn.execute(query, (oid,)).fetchall():
        index_oid, name, definition, predicate, nulls_not_distinct, attnums, key_columns = row
        checks.append(
            {
                "name": name,
                "table": pg_display(pair.schema, pair.name),
                "definition": definition,
                "keys": index_keys(pg_conn, index_oid),
                "predicate": predicate,
                "nulls_not_distinct": bool(nulls_not_distinct),
                "attnums": sorted(attnums),
                "key_columns": key_columns,  # attnum per key, 0 for an expression
            }
        )
    return checks


def index_keys(pg_conn, index_oid: int) -> list[tuple[str, tuple[str, str] | None]]:  # noqa: ANN001
    """The index's key expressions (``INCLUDE`` columns left out) as PostgreSQL prints them, each
    with the index's collation for it (None when the key is not collatable).

        index_keys(pg_conn, 16401)   # [('lower(email::text)', ('pg_catalog', 'default'))]
    """
    rows = pg_conn.execute(
        "SELECT pg_get_indexdef(i.indexrelid, k.n, true), cn.nspname, co.collname "
        "FROM pg_index i CROSS JOIN LATERAL generate_series(1, i.indnkeyatts) AS k(n) "
        "LEFT JOIN pg_collation co ON co.oid = i.indcollation[k.n - 1] "
        "LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace "
        "WHERE i.indexrelid = %s ORDER BY k.n",
        (index_oid,),
    ).fetchall()
    return [(expression, (nsp, coll) if coll else None) for expression, nsp, coll in rows]


def sqlite_rowid_column(sqlite_conn: sqlite3.Connection, table: str) -> str | None:
    """The column that is the SQLite table's rowid (a lone ``INTEGER PRIMARY KEY`` of a rowid
    table, which SQLite keeps as distinct integers), else None. An ``INTEGER PRIMARY KEY DESC``,
    another type or a WITHOUT ROWID table has a separate key index (origin ``pk``) instead.

    >>> conn = sqlite3.connect(":memory:")
    >>> _ = conn.executescript("CREATE TABLE a (id INTEGER PRIMARY KEY); CREATE TABLE b "
    ...     "(id INT PRIMARY KEY); CREATE TABLE c (id INTEGER PRIMARY KEY) WITHOUT ROWID")
    >>> [sqlite_rowid_column(conn, name) for name in "abc"]
    ['id', None, None]
    """
    keys = sqlite_conn.execute(
        "SELECT name, upper(type) FROM pragma_table_info(?) WHERE pk > 0", (table,)
    ).fetchall()
    key_index = sqlite_conn.execute(
        "SELECT count(*) FROM pragma_index_list(?) WHERE origin = 'pk'", (table,)
    ).fetchone()[0]
    if len(keys) == 1 and keys[0][1] == "INTEGER" and not key_index:
        return keys[0][0]
    return None


def proven_by_rowid(check: dict, catalog: dict[int, dict], rowid: str | None) -> bool:
    """Whether a unique index holds by construction: its one key is the plain column that is the
    SQLite rowid (distinct integers, which the integer converters keep as they are), no predicate.

    >>> check = {"key_columns": [1], "predicate": None}
    >>> proven_by_rowid(check, {1: {"name": "id", "type": "bigint"}}, "id")
    True
    >>> proven_by_rowid(check, {1: {"name": "id", "type": "text"}}, "id")
    False
    """
    if rowid is None or check["predicate"] or len(check["key_columns"]) != 1:
        return False
    column = catalog.get(check["key_columns"][0])
    return (
        column is not None
        and column["name"].lower() == rowid.lower()
        and column["type"] in INTEGER_TYPES
    )


# Loading the converted SQLite values --------------------------------------------------------------


def needed_columns(
    pair: TablePair, checks: list[dict], catalog: dict[int, dict]
) -> tuple[list[dict], list[dict]]:
    """The checks the SQLite data can answer and the columns they need (with the integer key to
    name rows); a check using a column the SQLite table lacks gets ``skipped`` (the copy leaves
    that column to its default).

    >>> pair = TablePair("t", "public", "id", (TargetColumn("id", "integer", False),
    ...     TargetColumn("a", "text")))
    >>> catalog = {1: {"name": "id"}, 2: {"name": "a"}, 3: {"name": "b"}}
    >>> runnable, columns = needed_columns(pair, [{"attnums": [2]}, {"attnums": [3]}], catalog)
    >>> runnable, columns
    ([{'attnums': [2]}], [{'name': 'id'}, {'name': 'a'}])
    """
    present = {column.name for column in pair.columns}
    wanted: set[int] = set()
    runnable = []
    for check in checks:
        missing = [
            catalog[n]["name"] for n in check["attnums"] if catalog[n]["name"] not in present
        ]
        if missing:
            check["skipped"] = (
                f"uses {', '.join(missing)}, which the SQLite table lacks (filled by the "
                "column's default by the copy; not checkable here)"
            )
            continue
        wanted.update(check["attnums"])
        runnable.append(check)
    names = {catalog[n]["name"] for n in wanted}
    if runnable and pair.key:
        names.add(pair.key)
    columns = [catalog[n] for n in sorted(catalog) if catalog[n]["name"] in names]
    return runnable, columns


def create_temp_table(pg_conn, table: str, columns: list[dict]) -> None:  # noqa: ANN001
    """A TEMP table of ``columns`` with the target's names, types and collations (types and
    collation names from the catalog, composed with ``sql.SQL``/``sql.Identifier``).

        create_temp_table(pg_conn, "turnout_unique_check",
            [{"name": "email", "type": "text", "collation": ("pg_catalog", "default")}])
    """
    from psycopg import sql

    parts = []
    for column in columns:
        part = sql.SQL("{} {}").format(sql.Identifier(column["name"]), sql.SQL(column["type"]))
        if column["collation"]:
            part = sql.SQL("{} COLLATE {}").format(part, sql.Identifier(*column["collation"]))
        parts.append(part)
    pg_conn.execute(
        sql.SQL("CREATE TEMP TABLE {} ({})").format(
            sql.Identifier(table), sql.SQL(", ").join(parts)
        )
    )


def load_converted(
    sqlite_conn: sqlite3.Connection,
    pg_conn,  # noqa: ANN001
    pair: TablePair,
    table: str,
    columns: Sequence[TargetColumn],
    lossy: bool,
    limit: int,
) -> dict:
    """The SQLite rows' ``columns``, converted as the copy converts them, COPYed into the TEMP
    ``table``; the rows that cannot convert are left out and reported (table, key, column).

        load_converted(source, pg_conn, pair, "turnout_unique_check", pair.columns, False, 20)
        # {'rows': 1000, 'bad_values': [], 'bad_value_count': 0, 'lossy_counts': {}}
    """
    from psycopg import sql

    convert = RowConverter(columns, lossy=lossy)
    names = [column.name for column in columns]
    key_at = names.index(pair.key) if pair.key in names else None
    select = f"SELECT {', '.join(quote_ident(n) for n in names)} FROM {quote_ident(pair.name)}"
    binary_types = [copy_binary_type(column.pg_type) for column in columns]
    binary = all(binary_types)
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN{}").format(
        sql.Identifier(table),
        sql.SQL(", ").join(sql.Identifier(n) for n in names),
        sql.SQL(" (FORMAT BINARY)" if binary else ""),
    )
    bad: list[dict] = []
    count = bad_count = 0
    cursor = sqlite_conn.execute(select)
    with pg_conn.cursor() as pg_cursor, pg_cursor.copy(copy_sql) as copy:
        if binary:
            copy.set_types(binary_types)
        while rows := cursor.fetchmany(FETCH_ROWS):
            for row in rows:
                try:
                    copy.write_row(convert(row))
                except BadValue as error:
                    bad_count += 1
                    if len(bad) < limit:
                        key = row[key_at] if key_at is not None else None
                        bad.append(
                            {
                                "table": pg_display(pair.schema, pair.name),
                                "key": {pair.key: key} if pair.key else None,
                                "column": error.column,
                                "error": str(error),
                            }
                        )
                    continue
                count += 1
    return {
        "rows": count,
        "bad_values": bad,
        "bad_value_count": bad_count,
        "lossy_counts": convert.lossy_counts,
    }


# Finding the conflicts ----------------------------------------------------------------------------


def conflict_query(check: dict, table: str, key: str | None, limit: int):  # noqa: ANN201
    """The duplicate groups of one unique index over the TEMP ``table``. The key expressions,
    collations and predicate are the catalog's text (``pg_get_indexdef``, ``pg_get_expr``),
    composed with ``sql.SQL`` — never user input.

    >>> check = {"keys": [("lower(email)", None)], "predicate": None, "nulls_not_distinct": False}
    >>> "GROUP BY \\"turnout_k0\\"" in conflict_query(check, "tmp", "id", 5).as_string(None)
    True
    """
    from psycopg import sql

    keys, outputs, not_null = [], [], []
    for n, (expression, collation) in enumerate(check["keys"]):
        alias = sql.Identifier(f"turnout_k{n}")
        value = sql.SQL("({})").format(sql.SQL(expression))
        not_null.append(sql.SQL("{} IS NOT NULL").format(value))
        if collation:
            value = sql.SQL("{} COLLATE {}").format(value, sql.Identifier(*collation))
        keys.append(alias)
        outputs.append(sql.SQL("{} AS {}").format(value, alias))
    where = [sql.SQL("({})").format(sql.SQL(check["predicate"]))] if check["predicate"] else []
    if not check["nulls_not_distinct"]:
        where += not_null
    row_key = sql.Identifier(key) if key else sql.SQL("NULL::bigint")
    inner = sql.SQL("SELECT {outputs}, {row_key} AS turnout_row FROM {table}{where}").format(
        outputs=sql.SQL(", ").join(outputs),
        row_key=row_key,
        table=sql.Identifier(table),
        where=sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""),
    )
    return sql.SQL(
        "SELECT ARRAY[{texts}], count(*), count(*) OVER (), "
        "(array_agg(turnout_row ORDER BY turnout_row))[1:{rows}] "
        "FROM ({inner}) AS s GROUP BY {keys} HAVING count(*) > 1 "
        "ORDER BY count(*) DESC, 1 LIMIT {limit}"
    ).format(
        texts=sql.SQL(", ").join(sql.SQL("{}::text").format(alias) for alias in keys),
        rows=sql.Literal(ROWS_PER_GROUP),
        inner=inner,
        keys=sql.SQL(", ").join(keys),
        limit=sql.Literal(limit),
    )


def table_conflicts(
    sqlite_conn: sqlite3.Connection,
    pg_conn,  # noqa: ANN001
    pair: TablePair,
    limit: int,
    lossy: bool,
) -> dict:
    """One table's unique checks against its converted SQLite rows, in a transaction rolled
    back: ``checked``, ``conflicts``, and the rows that could not convert.

        table_conflicts(source, pg_conn, pairs[0], 20, False)["conflicts"]   # []
    """
    from psycopg import sql

    catalog = pg_column_catalog(pg_conn, pg_table_oid(pg_conn, pair))
    checks = unique_checks(pg_conn, pair)
    rowid = sqlite_rowid_column(sqlite_conn, pair.name)
    for check in checks:
        if proven_by_rowid(check, catalog, rowid):
            check["proven"] = (
                f"{rowid} is the SQLite table's INTEGER PRIMARY KEY: distinct integers"
            )
    runnable, needed = needed_columns(
        pair, [check for check in checks if "proven" not in check], catalog
    )
    answer = {
        "checked": checks,
        "conflicts": [],
        "bad_values": [],
        "bad_value_count": 0,
        "lossy_counts": {},
    }
    if not runnable:
        return answer
    by_name = {column.name: column for column in pair.columns}
    columns = [by_name[column["name"]] for column in needed]
    table = "turnout_unique_check"
    with pg_conn.transaction(force_rollback=True):
        # room for the GROUP BYs to hash in memory (this transaction only)
        pg_conn.execute("SELECT set_config('work_mem', %s, true)", (WORK_MEM,))
        create_temp_table(pg_conn, table, needed)
        loaded = load_converted(sqlite_conn, pg_conn, pair, table, columns, lossy, limit)
        answer.update({key: loaded[key] for key in ("bad_values", "bad_value_count")})
        answer["lossy_counts"] = loaded["lossy_counts"]
        pg_conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
        for check in runnable:
            rows = pg_conn.execute(conflict_query(check, table, pair.key, limit)).fetchall()
            if rows:
                answer["conflicts"].append(conflict_report(check, rows, pair.key))
    return answer


def conflict_report(check: dict, rows: list[tuple], key: str | None) -> dict:
    """One index's conflict: its name, table, definition, groups (up to the limit) and their
    number; each group's key values (PostgreSQL's text of the key expressions), row count and
    the first rows' keys.

    >>> check = {"name": "uq", "table": "public.t", "definition": "UNIQUE (a)"}
    >>> conflict_report(check, [(["x"], 2, 1, [1, 2])], "id")["groups"]
    [{'key': ['x'], 'count': 2, 'rows': {'id': [1, 2]}}]
    """
    groups = []
    for values, count, _total, row_keys in rows:
        group = {"key": values, "count": count}
        if key:
            group["rows"] = {key: row_keys}
        groups.append(group)
    return {
        "name": check["name"],
        "table": check["table"],
        "definition": check["definition"],
        "groups": groups,
        "group_count": rows[0][2],
    }


def check_unique(
    sqlite_conn: sqlite3.Connection,
    pg_conn,  # noqa: ANN001
    pairs: Sequence[TablePair],
    limit: int = DEFAULT_LIMIT,
    lossy: bool = False,
) -> dict:
    """Every unique constraint and index of ``pairs``' target tables checked against their
    converted SQLite rows: ``checked``, ``conflicts``, ``bad_values`` (rows that could not
    convert, left out of the check: the copy would stop on them), ``bad_value_count``,
    ``lossy_counts``.

        report = check_unique(open_source("/srv/app/data/app.db"), pg_conn, pairs)
        [conflict["name"] for conflict in report["conflicts"]]   # ['uq_users_email_lower']
    """
    report: dict = {
        "checked": [],
        "conflicts": [],
        "bad_values": [],
        "bad_value_count": 0,
        "lossy_counts": [],
    }
    for pair in pairs:
        answer = table_conflicts(sqlite_conn, pg_conn, pair, limit, lossy)
        for check in answer["checked"]:
            entry = {key: check[key] for key in ("name", "table", "definition")}
            for note in ("skipped", "proven"):
                if note in check:
                    entry[note] = check[note]
            report["checked"].append(entry)
        report["conflicts"] += answer["conflicts"]
        report["bad_values"] += answer["bad_values"][: limit - len(report["bad_values"])]
        report["bad_value_count"] += answer["bad_value_count"]
        report["lossy_counts"] += [
            {
                "table": pg_display(pair.schema, pair.name),
                "column": column,
                "reason": reason,
                "count": count,
            }
            for (column, reason), count in sorted(answer["lossy_counts"].items())
        ]
    return report


def find_conflicts(
    sqlite_conn: sqlite3.Connection,
    pg_conn,  # noqa: ANN001
    pairs: Sequence[TablePair],
    limit: int = DEFAULT_LIMIT,
    lossy: bool = False,
) -> list[dict]:
    """The unique conflicts the SQLite data would raise in the target (``check_unique``'s
    ``conflicts``): each ``{"name", "table", "definition", "groups": [{"key", "count", "rows"}],
    "group_count"}``; an empty list when the copy can load every converted row.

        find_conflicts(open_source("/srv/app/data/app.db"), pg_conn, pairs, limit=5)
    """
    return check_unique(sqlite_conn, pg_conn, pairs, limit=limit, lossy=lossy)["conflicts"]


def positive_int(params: dict, name: str, default: int) -> int:
    """``params[name]`` (else ``default``), refused unless a positive integer.

    >>> positive_int({"limit": 5}, "limit", 20), positive_int({}, "limit", 20)
    (5, 20)
    """
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise HostsideError(f"{name} must be a positive integer, not {value!r}")
    return value


def action_sqlite_unique_conflicts(params: dict) -> dict:
    """Fact: the unique conflicts the app's SQLite data would raise in the target schema.

    Params: ``sqlite_path``, ``dsn_env`` (+ ``env_file``), ``tables`` (default: all), ``limit``
    (groups per index, rows reported; default 20), ``lossy`` (convert as the copy will),
    ``timeout_ms`` (per statement; default 600000).

        action_sqlite_unique_conflicts({"sqlite_path": "/srv/app/data/app.db",
            "dsn_env": "DATABASE_URL_SECONDARY", "env_file": "/srv/app/.env"})
        # {"ok": True, "checked": [...], "conflicts": [], "bad_values": [], ...}
    """
    limit = positive_int(params, "limit", DEFAULT_LIMIT)
    timeout_ms = positive_int(params, "timeout_ms", DEFAULT_TIMEOUT_MS)
    tables = params.get("tables")
    if tables is not None and not (
        isinstance(tables, list) and all(isinstance(name, str) for name in tables)
    ):
        raise HostsideError("tables must be a list of table names")
    sqlite_conn = open_source(params.get("sqlite_path"))
    pg_conn = pg_connect(params, autocommit=False)
    try:
        pg_conn.execute("SELECT set_config('statement_timeout', %s, false)", (str(timeout_ms),))
        pairs = table_pairs(sqlite_conn, pg_conn, tables or None)
        report = check_unique(
            sqlite_conn, pg_conn, pairs, limit=limit, lossy=bool(params.get("lossy", False))
        )
    finally:
        pg_conn.rollback()
        pg_conn.close()
        sqlite_conn.close()
    return {"ok": True, "tables": [pg_display(pair.schema, pair.name) for pair in pairs], **report}
