"""Host-side PostgreSQL actions: everything that connects to a database runs here, on the host.

Facts (always exit 0): ``postgres_server``, ``row_counts``, ``orphans``, ``constraints``,
``extensions``, ``alembic_revision``, ``table_sizes``. Table names are SQL names everywhere:
``schema.table``, each part double-quoted when it is not a plain lower-case identifier
(``public."PlayCount"``, ``"Odd Schema"."Listeners"``; ``pg_display``); a requested name without a
schema means ``public``, its unquoted parts match as written or folded to lower case
(``pg_find_table``). Identifiers reach SQL only through ``psycopg.sql.Identifier``; bulk work
(counts, orphan anti-joins) runs on the server. Counting follows the catalog (``row_counts``):
partitions beneath their partitioned table, materialized views with their populated state.

    python -c 'from turnout.remote import hostside_command as c
    print(c("row_counts", {"dsn_env": "DATABASE_URL", "tables": ["users"]}).get_raw_value())' | sh
"""

import re

from turnout.hostside.base import HostsideError, params_dsn

# Tables of these schemas are never counted, checked or listed.
PG_USER_SCHEMAS_SQL = "n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'"


# Connections, names -------------------------------------------------------------------------------


def pg_connect(params: dict, autocommit: bool = True):  # noqa: ANN201 - psycopg is imported lazily
    """A psycopg connection with the DSN named by ``params["dsn_env"]`` (read on this host)."""
    import psycopg

    dsn = params_dsn(params)
    timeout = int(params.get("connect_timeout", 10))
    try:
        return psycopg.connect(dsn, connect_timeout=timeout, autocommit=autocommit)
    except psycopg.Error as error:
        raise HostsideError(f"cannot connect with {params['dsn_env']}: {error}") from None


def pg_name_parts(text: str) -> list[tuple[str, bool]]:
    """An SQL name split into its dot-separated parts, each ``(name, quoted)``: ``"a"."B c"`` →
    ``[("a", True), ("B c", True)]``; inside double quotes ``""`` is one ``"`` and dots and
    commas are part of the name; unquoted parts are stripped. Raises ``HostsideError`` on an
    empty part, an unterminated quote or text after a closing quote."""
    if not isinstance(text, str):
        raise HostsideError(f"name {text!r} must be a string")
    parts, pos = [], 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos < len(text) and text[pos] == '"':
            value, pos = pg_quoted_part(text, pos)
            while pos < len(text) and text[pos].isspace():
                pos += 1
            parts.append((value, True))
        else:
            end = text.find(".", pos)
            end = len(text) if end < 0 else end
            value = text[pos:end].strip()
            if not value or '"' in value:
                raise HostsideError(f"name {text!r} has an empty or malformed part")
            parts.append((value, False))
            pos = end
        if pos == len(text):
            return parts
        if text[pos] != ".":
            raise HostsideError(f"name {text!r}: unexpected {text[pos]!r} after a quoted part")
        pos += 1


def pg_quoted_part(text: str, pos: int) -> tuple[str, int]:
    """The double-quoted part starting at ``text[pos]`` and the position after it."""
    value, pos = [], pos + 1
    while pos < len(text):
        if text[pos] == '"':
            if text[pos + 1 : pos + 2] == '"':
                value.append('"')
                pos += 2
                continue
            if not value:
                raise HostsideError(f"name {text!r} has an empty quoted part")
            return "".join(value), pos + 1
        value.append(text[pos])
        pos += 1
    raise HostsideError(f"name {text!r} has an unterminated quote")


def pg_quote_part(name: str) -> str:
    """A name part as SQL writes it: bare when it is a plain lower-case identifier, else
    double-quoted (``PlayCount`` → ``"PlayCount"``)."""
    plain = (
        name.isascii()
        and (name[:1].isalpha() or name[:1] == "_")
        and all(char.isalnum() or char in "_$" for char in name)
        and name == name.lower()
    )
    return name if plain else '"' + name.replace('"', '""') + '"'


def pg_display(schema: str, table: str) -> str:
    """``schema.table`` as SQL writes it, the key of every table in turnout's reports:
    ``public.users``, ``public."PlayCount"``, ``"Odd Schema"."Listeners"``."""
    return f"{pg_quote_part(schema)}.{pg_quote_part(table)}"


def pg_split_name(name: str) -> tuple[tuple[str, bool], tuple[str, bool]]:
    """``users`` → ``(("public", False), ("users", False))``; ``public."PlayCount"`` →
    ``(("public", False), ("PlayCount", True))``: (schema, table), each with its quoted flag."""
    try:
        parts = pg_name_parts(name)
    except HostsideError as error:
        parts = [error]
    if len(parts) == 1 and not isinstance(parts[0], HostsideError):
        return ("public", False), parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise HostsideError(
        f"table name {name!r} must be 'table' or 'schema.table' "
        '(SQL-quoted parts allowed: public."PlayCount")'
    )


def pg_split_table(name: str) -> tuple[str, str]:
    """``"users"`` → ``("public", "users")``; ``'"Odd Schema"."T"'`` → ``("Odd Schema", "T")``."""
    (schema, _), (table, _) = pg_split_name(name)
    return schema, table


PG_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")  # an unquoted SQL identifier


def pg_name_text(parts: list[tuple[str, bool]]) -> str:
    """Name parts as SQL writes them: quoted parts quoted again (``"`` doubled), plain ones as
    they are.

    >>> pg_name_text([("public", False), ("Play Count", True)])
    'public."Play Count"'
    """
    return ".".join('"' + v.replace('"', '""') + '"' if q else v for v, q in parts)


def pg_sql_name_parts(text: str, fewest: int, most: int) -> list[tuple[str, bool]]:
    """``pg_name_parts`` of ``text`` with ``fewest``..``most`` parts, each unquoted part a plain
    identifier (quoted parts may hold anything); ``HostsideError`` otherwise. The one parser of
    the names the settings give (pre-check tables, the duplicates gate, orphan relations).

    >>> pg_sql_name_parts('"user".id', 2, 3)
    [('user', True), ('id', False)]
    """
    parts = pg_name_parts(text)
    if not fewest <= len(parts) <= most:
        raise HostsideError(f"name {text!r} must have {fewest} to {most} dot-separated parts")
    plain = [value for value, quoted in parts if not quoted and not PG_IDENT_RE.fullmatch(value)]
    if plain:
        raise HostsideError(f"name {text!r}: {plain[0]!r} is not an identifier (quote it)")
    return parts


def pg_relation_sides(text: str) -> tuple[list[tuple[str, bool]], list[tuple[str, bool]]]:
    """The child and parent of a declared relation ``child.col->parent.col`` as name parts
    ``[schema, table, column]`` (schema ``public`` when not written); SQL quoting as in the
    pre-checks (``"user".id->"Org".id``)."""
    child, arrow, parent = text.partition("->") if isinstance(text, str) else ("", "", "")
    sides = []
    for side in (child, parent):
        try:
            parts = pg_sql_name_parts(side, 2, 3) if arrow else []
        except HostsideError:
            parts = []
        if not parts:
            raise HostsideError(
                f"relation {text!r} must look like child_table.column->parent_table.column "
                "(tables may be schema-qualified: schema.table.column; SQL quoting for other "
                'names: "user".id)'
            )
        sides.append(parts if len(parts) == 3 else [("public", False), *parts])
    return sides[0], sides[1]


def pg_parse_relation(text: str) -> dict:
    """A declared relation ``child.col->parent.col`` (each side may be ``schema.table.col``,
    parts SQL-quoted as the pre-checks' tables: ``"user".id``) as a check: ``{"name":
    "declared:…", "child": "public.meters", "columns": ["user_id"], "parent": "public.users",
    "parent_columns": ["id"]}``.

    >>> pg_parse_relation('"user".org_id->public."Org".id')["child"]
    'public."user"'
    """
    child, parent = pg_relation_sides(text)
    written = [side.strip() for side in text.partition("->")[::2]]
    shown = [pg_name_text(pg_name_parts(side)) for side in written]
    return {
        "name": f"declared:{shown[0]}->{shown[1]}",
        "child": pg_name_text(child[:2]),
        "columns": [child[2][0]],
        "parent": pg_name_text(parent[:2]),
        "parent_columns": [parent[2][0]],
    }


def pg_current_database(conn) -> str:  # noqa: ANN001
    return conn.execute("SELECT current_database()").fetchone()[0]


def pg_split_list(text: str) -> list[str]:
    """A comma-separated list of SQL names, split on the commas outside double quotes:
    ``'users, "a,b".c'`` → ``["users", '"a,b".c']``."""
    items, current, quoted = [], [], False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    items.append("".join(current).strip())
    return [item for item in items if item]


def pg_user_tables(conn) -> dict[tuple[str, str], int]:  # noqa: ANN001
    """(schema, table) → oid of every ordinary or partitioned table and materialized view
    outside system schemas."""
    return {key: info["oid"] for key, info in pg_relations(conn).items()}


def pg_relations(conn) -> dict[tuple[str, str], dict]:  # noqa: ANN001
    """(schema, table) → ``{"oid", "relkind", "populated", "parent"}`` of every ordinary or
    partitioned table and materialized view outside system schemas, as the catalog knows them:
    ``relkind`` ``r``/``p``/``m``, ``parent`` the (schema, table) a partition is attached to."""
    rows = conn.execute(
        "SELECT n.nspname::text, c.relname::text, c.oid::bigint, c.relkind::text, "
        "  c.relispopulated, pn.nspname::text, p.relname::text "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_inherits i ON c.relispartition AND i.inhrelid = c.oid "
        "LEFT JOIN pg_class p ON p.oid = i.inhparent "
        "LEFT JOIN pg_namespace pn ON pn.oid = p.relnamespace "
        f"WHERE c.relkind IN ('r', 'p', 'm') AND {PG_USER_SCHEMAS_SQL} ORDER BY 1, 2"
    ).fetchall()
    return {
        (schema, table): {
            "oid": oid,
            "relkind": relkind,
            "populated": populated,
            "parent": (parent_schema, parent) if parent else None,
        }
        for schema, table, oid, relkind, populated, parent_schema, parent in rows
    }


def pg_find_table(catalog: dict, name: str, database: str) -> tuple[str, str]:
    """The catalog's (schema, table) for a requested name. A quoted part matches exactly; an
    unquoted one as written, else folded to lower case (as SQL folds it)."""
    (schema, schema_quoted), (table, table_quoted) = pg_split_name(name)
    schemas = [schema] if schema_quoted else [schema, schema.lower()]
    tables = [table] if table_quoted else [table, table.lower()]
    for key in ((s, t) for s in schemas for t in tables):
        if key in catalog:
            return key
    raise HostsideError(f"table {pg_display(schema, table)} does not exist in {database}")


def pg_resolve_tables(conn, requested: list | None, database: str) -> list:  # noqa: ANN001
    """[(schema, table, oid)] for the requested names, or for every user table when None."""
    catalog = pg_user_tables(conn)
    if requested is None:
        return [(schema, table, oid) for (schema, table), oid in catalog.items()]
    if isinstance(requested, str):
        requested = [requested]
    resolved = []
    for name in requested:
        key = pg_find_table(catalog, name, database)
        if key not in [(s, t) for s, t, _ in resolved]:
            resolved.append((*key, catalog[key]))
    return resolved


def pg_table_columns(conn, oid: int) -> list[str]:  # noqa: ANN001
    rows = conn.execute(
        "SELECT attname::text FROM pg_attribute "
        "WHERE attrelid = %s::oid AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (oid,),
    ).fetchall()
    return [row[0] for row in rows]


def pg_key_by_name(items: list[tuple[str, str, dict]]) -> dict[str, dict]:
    """``[(name, "schema.table", value)]`` → ``{name: value}``; a name that occurs more than once
    in the database (constraint names are unique per table only) becomes ``schema.table.name``."""
    seen: dict[str, int] = {}
    for name, _, _ in items:
        seen[name] = seen.get(name, 0) + 1
    return {(name if seen[name] == 1 else f"{table}.{name}"): value for name, table, value in items}


# Row counts ---------------------------------------------------------------------------------------


def pg_count_rows(conn, schema: str, table: str, oid: int, timeout_ms: int) -> dict:  # noqa: ANN001
    """Exact ``count(*)`` under ``SET LOCAL statement_timeout`` in its own transaction; on a
    timeout (or without the privilege to read the table), the planner's estimate
    (``pg_class.reltuples``; 0 when never analyzed) marked ``exact: false`` with a ``note``."""
    import psycopg
    from psycopg import sql

    query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
    try:
        with conn.transaction():
            conn.execute("SELECT set_config('statement_timeout', %s, true)", (str(timeout_ms),))
            return {"count": conn.execute(query).fetchone()[0], "exact": True}
    except psycopg.errors.QueryCanceled:
        why = f"count(*) took longer than {timeout_ms} ms"
    except psycopg.errors.InsufficientPrivilege:
        why = "no permission to count the table's rows"
    estimate = conn.execute(
        "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::oid", (oid,)
    ).fetchone()[0]
    if estimate is None or estimate < 0:
        return {"count": 0, "exact": False, "note": f"{why} and the table was never analyzed"}
    return {"count": estimate, "exact": False, "note": f"{why}; planner estimate"}


def pg_with_partitions(relations: dict, keys: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``keys`` plus every partition (at any depth) of the partitioned tables among them."""
    selected = list(keys)
    for key in selected:  # grows while iterating: partitions of partitions are reached too
        if relations[key]["relkind"] == "p":
            children = [k for k, info in relations.items() if info["parent"] == key]
            selected += [child for child in children if child not in selected]
    return selected


def pg_count_relation(conn, key: tuple[str, str], info: dict, timeout_ms: int) -> dict:  # noqa: ANN001
    """One table's or materialized view's count; an unpopulated materialized view has none."""
    if info["relkind"] == "m" and not info["populated"]:
        return {"count": None, "exact": True, "relation": "matview", "populated": False}
    counted = pg_count_rows(conn, key[0], key[1], info["oid"], timeout_ms)
    if info["relkind"] == "m":
        return {**counted, "relation": "matview", "populated": True}
    return {**counted, "relation": "partition" if info["parent"] else "table"}


def pg_partitioned_count(key: tuple[str, str], relations: dict, counts: dict) -> dict:
    """A partitioned table's count: the sum of its leaf partitions' counts (each row counted
    once, never scanned twice); exact when every leaf count is."""
    leaves, pending = [], [key]
    while pending:
        current = pending.pop()
        children = [k for k, info in relations.items() if info["parent"] == current]
        for child in children:
            (pending if relations[child]["relkind"] == "p" else leaves).append(child)
    found = [counts[pg_display(*leaf)] for leaf in leaves]
    entry = {
        "count": sum(c["count"] or 0 for c in found),
        "exact": all(c["exact"] for c in found),
        "relation": "partitioned",
        "partitions": sorted(
            pg_display(*k) for k, info in relations.items() if info["parent"] == key
        ),
    }
    if not entry["exact"]:
        entry["note"] = "the sum of its partitions' counts, some of them planner estimates"
    return entry


def action_row_counts(params: dict) -> dict:
    """Per table ``{"count": n, "exact": bool, "relation": …}`` (plus a ``note`` when it is an
    estimate), following the catalog: a partitioned table's count is the sum of its partitions
    (``"relation": "partitioned"``, ``"partitions": [...]``), each partition listed with its
    ``"parent"``; a materialized view (``"relation": "matview"``) says whether it is
    ``populated`` (an unpopulated one has no count). Asking for a partitioned table counts its
    partitions too; names are keyed as SQL writes them (``public."PlayCount"``)."""
    timeout_ms = int(params.get("timeout_ms") or 3000)
    if timeout_ms <= 0:
        raise HostsideError("timeout_ms must be a positive number of milliseconds")
    with pg_connect(params) as conn:
        database = pg_current_database(conn)
        relations = pg_relations(conn)
        requested = params.get("tables")
        if requested is None:
            keys = list(relations)
        else:
            catalog = {key: info["oid"] for key, info in relations.items()}
            names = [requested] if isinstance(requested, str) else requested
            keys = [pg_find_table(catalog, name, database) for name in names]
        keys = pg_with_partitions(relations, list(dict.fromkeys(keys)))
        counts = {
            pg_display(*key): pg_count_relation(conn, key, relations[key], timeout_ms)
            for key in keys
            if relations[key]["relkind"] != "p"
        }
        for key in keys:
            if relations[key]["relkind"] == "p":
                counts[pg_display(*key)] = pg_partitioned_count(key, relations, counts)
        for key in keys:
            parent = relations[key]["parent"]
            if parent in keys:
                counts[pg_display(*key)]["parent"] = pg_display(*parent)
    return {"database": database, "tables": dict(sorted(counts.items()))}


# Orphans ------------------------------------------------------------------------------------------


def pg_foreign_keys(conn) -> list[dict]:  # noqa: ANN001
    """Every foreign key outside system schemas (multi-column ones too), in key column order."""
    rows = conn.execute(
        "SELECT c.conname::text, n.nspname::text, t.relname::text, "
        "  ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord) "
        "        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum "
        "        ORDER BY k.ord), "
        "  rn.nspname::text, r.relname::text, "
        "  ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, ord) "
        "        JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum "
        "        ORDER BY k.ord) "
        "FROM pg_constraint c "
        "JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
        "JOIN pg_class r ON r.oid = c.confrelid JOIN pg_namespace rn ON rn.oid = r.relnamespace "
        f"WHERE c.contype = 'f' AND c.conparentid = 0 AND {PG_USER_SCHEMAS_SQL} "
        "ORDER BY 2, 3, 1"
    ).fetchall()
    return [
        {
            "name": name,
            "table": pg_display(schema, table),
            "columns": list(columns),
            "references": pg_display(ref_schema, ref_table),
            "ref_columns": list(ref_columns),
            "_child": (schema, table),
            "_parent": (ref_schema, ref_table),
        }
        for name, schema, table, columns, ref_schema, ref_table, ref_columns in rows
    ]


def pg_orphan_query(child: tuple, columns: list, parent: tuple, parent_columns: list):  # noqa: ANN201
    """One anti-join counting child rows whose (all non-null) key has no parent row."""
    from psycopg import sql

    not_null = sql.SQL(" AND ").join(
        sql.SQL("c.{} IS NOT NULL").format(sql.Identifier(column)) for column in columns
    )
    match = sql.SQL(" AND ").join(
        sql.SQL("p.{} = c.{}").format(sql.Identifier(pc), sql.Identifier(cc))
        for cc, pc in zip(columns, parent_columns, strict=True)
    )
    return sql.SQL(
        "SELECT count(*) FROM {} AS c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} AS p WHERE {})"
    ).format(sql.Identifier(*child), not_null, sql.Identifier(*parent), match)


def pg_declared_check(conn, catalog: dict, text: str, database: str) -> dict:  # noqa: ANN001
    """A declared relation checked against the catalog: tables and columns must exist."""
    check = pg_parse_relation(text)
    sides = pg_relation_sides(text)
    for (side, columns_key), parts in zip(
        (("child", "columns"), ("parent", "parent_columns")), sides, strict=True
    ):
        key = pg_find_table(catalog, check[side], database)
        existing = pg_table_columns(conn, catalog[key])
        resolved = []
        for column in check[columns_key]:
            # a quoted column matches exactly; an unquoted one as written, else folded
            candidates = (column,) if parts[2][1] else (column, column.lower())
            found = next((c for c in candidates if c in existing), None)
            if found is None:
                raise HostsideError(
                    f"relation {text}: column {key[0]}.{key[1]}.{column} does not exist "
                    f"in {database}"
                )
            resolved.append(found)
        check[side] = pg_display(*key)
        check[columns_key] = resolved
        check["_" + side] = key
    return check


def action_orphans(params: dict) -> dict:
    """Declared relations plus every foreign key, each with the number of orphaned child rows."""
    import psycopg

    with pg_connect(params) as conn:
        database = pg_current_database(conn)
        catalog = pg_user_tables(conn)
        checks = [
            pg_declared_check(conn, catalog, text, database)
            for text in params.get("relations") or []
        ]
        if params.get("foreign_keys", True):
            for fk in pg_foreign_keys(conn):
                checks.append(
                    {
                        "name": f"fk:{fk['name']}",
                        "child": fk["table"],
                        "columns": fk["columns"],
                        "parent": fk["references"],
                        "parent_columns": fk["ref_columns"],
                        "_child": fk["_child"],
                        "_parent": fk["_parent"],
                    }
                )
        results = []
        for check in checks:
            query = pg_orphan_query(
                check.pop("_child"),
                check["columns"],
                check.pop("_parent"),
                check["parent_columns"],
            )
            try:
                check["orphans"] = conn.execute(query).fetchone()[0]
            except psycopg.Error as error:
                raise HostsideError(f"orphan check {check['name']} failed: {error}") from None
            results.append(check)
    return {"database": database, "checks": results}


# Constraints, extensions, Alembic, sizes ----------------------------------------------------------


def action_constraints(params: dict) -> dict:
    """Unique constraints, primary keys, unique indexes and foreign keys, by name."""
    with pg_connect(params) as conn:
        database = pg_current_database(conn)
        rows = conn.execute(
            "SELECT c.conname::text, c.contype::text, n.nspname::text, t.relname::text, "
            "  ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, o) "
            "        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum "
            "        ORDER BY k.o) "
            "FROM pg_constraint c "
            "JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
            f"WHERE c.contype IN ('u', 'p') AND {PG_USER_SCHEMAS_SQL} ORDER BY 3, 4, 1"
        ).fetchall()
        indexes = conn.execute(
            "SELECT i.relname::text, n.nspname::text, t.relname::text, "
            "  ARRAY(SELECT CASE WHEN x.indkey[k - 1] = 0 "
            "                    THEN pg_get_indexdef(x.indexrelid, k, true) "
            "                    ELSE (SELECT a.attname::text FROM pg_attribute a "
            "                          WHERE a.attrelid = x.indrelid "
            "                          AND a.attnum = x.indkey[k - 1]) END "
            "        FROM generate_series(1, x.indnkeyatts) AS k ORDER BY k), "
            "  x.indisprimary, x.indpred IS NOT NULL, "
            "  (SELECT c.conname::text FROM pg_constraint c WHERE c.conindid = x.indexrelid "
            "   AND c.conrelid = x.indrelid AND c.contype IN ('p', 'u', 'x') LIMIT 1) "
            "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
            f"WHERE x.indisunique AND {PG_USER_SCHEMAS_SQL} ORDER BY 2, 3, 1"
        ).fetchall()
        # Tables keyed as everywhere else (pg_display: public."PlayCount", not public.PlayCount).
        rows = [(n, kind, pg_display(s, t), c) for n, kind, s, t, c in rows]
        indexes = [(n, pg_display(s, t), *rest) for n, s, t, *rest in indexes]
        foreign_keys = pg_foreign_keys(conn)
    unique = [(n, t, {"table": t, "columns": list(c)}) for n, kind, t, c in rows if kind == "u"]
    primary = [(n, t, {"table": t, "columns": list(c)}) for n, kind, t, c in rows if kind == "p"]
    return {
        "database": database,
        "unique_constraints": pg_key_by_name(unique),
        "primary_keys": pg_key_by_name(primary),
        "unique_indexes": pg_key_by_name(
            [
                (
                    name,
                    table,
                    {
                        "table": table,
                        "columns": list(columns),
                        "primary": is_primary,
                        "partial": partial,
                        "backs_constraint": constraint is not None,
                        "constraint": constraint,
                    },
                )
                for name, table, columns, is_primary, partial, constraint in indexes
            ]
        ),
        "foreign_keys": pg_key_by_name(
            [
                (
                    fk["name"],
                    fk["table"],
                    {k: fk[k] for k in ("table", "columns", "references", "ref_columns")},
                )
                for fk in foreign_keys
            ]
        ),
    }


def action_extensions(params: dict) -> dict:
    """Installed extensions with their versions, and every extension the server could install."""
    with pg_connect(params) as conn:
        installed = conn.execute("SELECT extname::text, extversion FROM pg_extension").fetchall()
        available = conn.execute(
            "SELECT name::text FROM pg_available_extensions ORDER BY 1"
        ).fetchall()
        database = pg_current_database(conn)
    return {
        "database": database,
        "installed": dict(sorted(installed)),
        "available": [row[0] for row in available],
    }


def action_alembic_revision(params: dict) -> dict:
    """The rows of ``alembic_version`` (found through the search path); [] without the table."""
    with pg_connect(params) as conn:
        database = pg_current_database(conn)
        table = conn.execute("SELECT to_regclass('alembic_version')::text").fetchone()[0]
        revisions = []
        if table:
            rows = conn.execute("SELECT version_num::text FROM alembic_version").fetchall()
            revisions = sorted(row[0] for row in rows)
    return {"database": database, "table": table, "revisions": revisions}


def action_table_sizes(params: dict) -> dict:
    """``pg_total_relation_size`` (table, indexes, TOAST) per table."""
    with pg_connect(params) as conn:
        database = pg_current_database(conn)
        tables = pg_resolve_tables(conn, params.get("tables"), database)
        sizes = {}
        for schema, table, oid in tables:
            size = conn.execute(
                "SELECT pg_total_relation_size(%s::oid)::bigint", (oid,)
            ).fetchone()[0]
            sizes[pg_display(schema, table)] = {"total_bytes": size}
    return {"database": database, "tables": sizes}


def action_postgres_server(params: dict) -> dict:
    """Connect with the DSN named by ``dsn_env`` and describe the server (no secrets), with the
    catalog's cheap estimates for plans: user tables (partitioned parents once, their partitions
    not again), estimated rows (``reltuples`` of tables holding rows) and the database's size on
    disk (``pg_database_size``: tables, indexes, TOAST and free space — not a dump's size)."""
    with pg_connect(params) as conn:
        row = conn.execute(
            "SELECT current_setting('server_version'), current_database(), current_user, "
            "  pg_database_size(current_database())"
        ).fetchone()
        tables, rows = conn.execute(
            # A table never analyzed has reltuples -1: the statistics' live-row count stands in.
            "SELECT count(*) FILTER (WHERE NOT c.relispartition), "
            "  coalesce(sum(CASE WHEN c.reltuples >= 0 THEN c.reltuples "
            "    ELSE coalesce(pg_stat_get_live_tuples(c.oid), 0) END) "
            "    FILTER (WHERE c.relkind = 'r'), 0)::bigint "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE c.relkind IN ('r', 'p') AND {PG_USER_SCHEMAS_SQL}"
        ).fetchone()
        host, port = conn.info.host, conn.info.port
    return {
        "server_version": row[0],
        "database": row[1],
        "user": row[2],
        "host": host,
        "port": port,
        "database_bytes": row[3],
        "tables": tables,
        "estimated_rows": rows,
    }
