"""What a migration's SQL does to existing data: pure parsing of the PostgreSQL SQL that Alembic
renders offline (``alembic upgrade a:b --sql``), stdlib only (S2.10, issue 9 item 4).

``split_statements`` cuts a script into statements (quotes, quoted identifiers, dollar quotes and
comments respected); ``classify`` names, per statement, what it needs of the live data:

- data-dependent (the statement fails on some rows): ``not_null`` (``ALTER COLUMN … SET NOT
  NULL``), ``add_not_null`` (``ADD COLUMN … NOT NULL`` without a default: fails on a table with
  rows), ``unique`` (``ADD CONSTRAINT … UNIQUE``, ``CREATE UNIQUE INDEX``), ``foreign_key``,
  ``check``, ``type`` (``ALTER COLUMN … TYPE``: narrowing is judged against the live column's
  type, which the SQL does not say);
- heavy (rewrites or locks the table while it runs): ``rewrite`` (``ALTER COLUMN … TYPE``),
  ``volatile_default`` (``ADD COLUMN … DEFAULT <volatile>``, serial columns), ``blocking_index``
  (``CREATE [UNIQUE] INDEX`` without ``CONCURRENTLY``);
- context: ``create_table``, ``add_column``, ``dml`` (``INSERT``/``UPDATE``/``DELETE``: later
  checks on that table cannot be judged from the live data), ``unknown`` (``VALIDATE
  CONSTRAINT``, ``DO`` blocks: data-dependent, not understood).

Tables are ``(schema, name)`` with the schema ``None`` when the SQL does not name one; names are
the real names (unquoted identifiers folded to lower case, ``""`` inside quotes is one ``"``).

>>> [f["kind"] for f in classify('ALTER TABLE "odd"."T" ALTER COLUMN "C" SET NOT NULL')]
['not_null']
>>> classify('ALTER TABLE "odd"."T" ALTER COLUMN "C" SET NOT NULL')[0]["table"]
('odd', 'T')
"""

from __future__ import annotations

import re

# Alembic's own bookkeeping, never a risk.
ALEMBIC_TABLE = "alembic_version"
# Functions whose value differs per row: a column added with such a default rewrites the table
# (a constant or a stable default like now() is stored once, PostgreSQL 11+).
VOLATILE_FUNCTIONS = (
    "random",
    "gen_random_uuid",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "clock_timestamp",
    "timeofday",
    "nextval",
    "statement_timestamp",
    "txid_current",
    "pg_current_xact_id",
    "random_normal",
)
_VOLATILE_RE = re.compile(r"\b(" + "|".join(VOLATILE_FUNCTIONS) + r")\s*\(", re.IGNORECASE)
_SERIAL_RE = re.compile(r"^\s*(small|big)?serial\d?\b", re.IGNORECASE)


# Splitting ------------------------------------------------------------------------------------


def _skip_quoted(sql: str, pos: int, quote: str) -> int:
    """Position after the quoted text starting at ``sql[pos]`` (doubled quotes escape)."""
    pos += 1
    while pos < len(sql):
        if sql[pos] == quote:
            if sql[pos + 1 : pos + 2] == quote:
                pos += 2
                continue
            return pos + 1
        pos += 1
    return pos


_DOLLAR_RE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


def _skip_token(sql: str, pos: int) -> int | None:
    """If a quoted string, quoted identifier, dollar-quoted body or comment starts at ``pos``,
    the position after it; else None."""
    char = sql[pos]
    if char in ("'", '"'):
        return _skip_quoted(sql, pos, char)
    if sql.startswith("--", pos):
        end = sql.find("\n", pos)
        return len(sql) if end < 0 else end + 1
    if sql.startswith("/*", pos):
        end = sql.find("*/", pos + 2)
        return len(sql) if end < 0 else end + 2
    if char == "$" and (pos == 0 or not (sql[pos - 1].isalnum() or sql[pos - 1] == "_")):
        match = _DOLLAR_RE.match(sql, pos)
        if match:
            end = sql.find(match.group(0), match.end())
            return len(sql) if end < 0 else end + len(match.group(0))
    return None


def split_statements(sql: str) -> list[str]:
    """The statements of an SQL script, without their ``;`` and comments (a statement holding
    only comments is dropped).

    >>> split_statements("BEGIN;\\n-- Running upgrade a -> b\\nSELECT ';' AS x; COMMIT;")
    ['BEGIN', "SELECT ';' AS x", 'COMMIT']
    >>> split_statements("CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;")
    ['CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql']
    """
    statements, start, pos = [], 0, 0
    while pos < len(sql):
        skipped = _skip_token(sql, pos)
        if skipped is not None:
            pos = skipped
            continue
        if sql[pos] == ";":
            statements.append(sql[start:pos])
            start = pos + 1
        pos += 1
    statements.append(sql[start:])
    return [strip_comments(s).strip() for s in statements if strip_comments(s).strip()]


def strip_comments(sql: str) -> str:
    """``sql`` with its comments replaced by a space (quoted text kept).

    >>> strip_comments("SELECT 1 -- one\\n/* two */ + '--'")
    "SELECT 1  \\n  + '--'"
    """
    out, pos = [], 0
    while pos < len(sql):
        skipped = _skip_token(sql, pos)
        if skipped is not None:
            text = sql[pos:skipped]
            if text.startswith(("--", "/*")):
                out.append(" " + ("\n" if text.endswith("\n") else ""))
            else:
                out.append(text)
            pos = skipped
            continue
        out.append(sql[pos])
        pos += 1
    return "".join(out)


# Tokens ------------------------------------------------------------------------------------


class _Cursor:
    """A small reader over one statement (comments removed)."""

    def __init__(self, text: str) -> None:
        self.text = strip_comments(text)
        self.pos = 0

    def ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def at_end(self) -> bool:
        self.ws()
        return self.pos >= len(self.text)

    def keyword(self, *words: str) -> bool:
        """Consume the keywords ``words`` (case-insensitive) if they come next."""
        saved = self.pos
        for word in words:
            self.ws()
            end = self.pos + len(word)
            following = self.text[end : end + 1]
            if self.text[self.pos : end].upper() != word or (
                following and (following.isalnum() or following in "_$")
            ):
                self.pos = saved
                return False
            self.pos = end
        return True

    def peek_keyword(self, *words: str) -> bool:
        saved = self.pos
        found = self.keyword(*words)
        self.pos = saved
        return found

    def ident(self) -> str | None:
        """One identifier: quoted (real name) or bare (folded to lower case)."""
        self.ws()
        if self.pos < len(self.text) and self.text[self.pos] == '"':
            end = _skip_quoted(self.text, self.pos, '"')
            value = self.text[self.pos + 1 : end - 1].replace('""', '"')
            self.pos = end
            return value
        match = re.compile(r"[A-Za-z_\x80-\uffff][A-Za-z0-9_$\x80-\uffff]*").match(
            self.text, self.pos
        )
        if not match:
            return None
        self.pos = match.end()
        return match.group(0).lower()

    def qualified(self) -> tuple[str | None, str] | None:
        """``name`` or ``schema.name`` (``db.schema.name`` keeps the last two)."""
        parts = [self.ident()]
        if parts[0] is None:
            return None
        while True:
            self.ws()
            if self.text[self.pos : self.pos + 1] != ".":
                break
            self.pos += 1
            part = self.ident()
            if part is None:
                return None
            parts.append(part)
        return (parts[-2] if len(parts) > 1 else None, parts[-1])

    def parens(self) -> str | None:
        """The text inside the parenthesised group starting here (nested groups kept)."""
        self.ws()
        if self.text[self.pos : self.pos + 1] != "(":
            return None
        depth, start, pos = 0, self.pos, self.pos
        while pos < len(self.text):
            skipped = _skip_token(self.text, pos)
            if skipped is not None:
                pos = skipped
                continue
            if self.text[pos] == "(":
                depth += 1
            elif self.text[pos] == ")":
                depth -= 1
                if depth == 0:
                    self.pos = pos + 1
                    return self.text[start + 1 : pos].strip()
            pos += 1
        return None

    def rest(self) -> str:
        self.ws()
        return self.text[self.pos :].strip()


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """``text`` split on ``sep`` outside parentheses, quotes and comments.

    >>> split_top_level("a, lower(b, c), \\"d,e\\"")
    ['a', 'lower(b, c)', '"d,e"']
    """
    items, depth, start, pos = [], 0, 0, 0
    while pos < len(text):
        skipped = _skip_token(text, pos)
        if skipped is not None:
            pos = skipped
            continue
        char = text[pos]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == sep and depth == 0:
            items.append(text[start:pos].strip())
            start = pos + 1
        pos += 1
    items.append(text[start:].strip())
    return [item for item in items if item]


def column_list(text: str) -> list[dict]:
    """Items of a column list: ``{"column": name}`` for a plain (possibly quoted) column, else
    ``{"expression": text}`` (an index on an expression), with any ``ASC``/``DESC``/``NULLS …``
    and operator class dropped.

    >>> column_list('"UserId", n DESC, lower(email)')
    [{'column': 'UserId'}, {'column': 'n'}, {'expression': 'lower(email)'}]
    """
    items = []
    for item in split_top_level(text):
        cursor = _Cursor(item)
        name = cursor.ident() if not item.lstrip().startswith("(") else None
        tail = cursor.rest() if name is not None else item
        trailing = re.fullmatch(
            r"(?:COLLATE\s+\S+\s*)?(?:[a-z_][a-z0-9_.]*_ops\s*)?(?:ASC|DESC)?\s*"
            r"(?:NULLS\s+(?:FIRST|LAST))?",
            tail,
            flags=re.IGNORECASE,
        )
        if name is not None and trailing:
            items.append({"column": name})
        else:
            items.append({"expression": item.strip()})
    return items


def parse_type(text: str) -> dict:
    """A PostgreSQL type as rendered (``VARCHAR(100)``, ``NUMERIC(5, 1)``, ``INTEGER``,
    ``TIMESTAMP WITHOUT TIME ZONE``): ``{"name": canonical, "length"/"precision"/"scale"}``.

    >>> parse_type("VARCHAR(100)")
    {'name': 'varchar', 'length': 100, 'text': 'VARCHAR(100)'}
    >>> parse_type("NUMERIC(5, 1)")["scale"]
    1
    >>> parse_type("BIGINT")["name"]
    'int8'
    """
    text = " ".join(text.split())
    match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_ .\"]*?)\s*(?:\(([^)]*)\))?(\s*\[\])?", text)
    if not match:
        return {"name": text.lower(), "text": text}
    base = match.group(1).lower().strip().strip('"')
    base = base.removeprefix("pg_catalog.")
    args = [a.strip() for a in (match.group(2) or "").split(",") if a.strip()]
    aliases = {
        "integer": "int4",
        "int": "int4",
        "int4": "int4",
        "smallint": "int2",
        "int2": "int2",
        "bigint": "int8",
        "int8": "int8",
        "character varying": "varchar",
        "varchar": "varchar",
        "character": "bpchar",
        "char": "bpchar",
        "bpchar": "bpchar",
        "numeric": "numeric",
        "decimal": "numeric",
        "text": "text",
        "real": "float4",
        "float4": "float4",
        "double precision": "float8",
        "float8": "float8",
        "float": "float8",
    }
    result: dict = {"name": aliases.get(base, base)}
    if match.group(3):
        result["name"] += "[]"
    numbers = [int(a) for a in args if re.fullmatch(r"-?\d+", a)]
    if result["name"] in ("varchar", "bpchar") and numbers:
        result["length"] = numbers[0]
    elif result["name"] == "bpchar" and not args:
        result["length"] = 1
    elif result["name"] == "numeric" and numbers:
        result["precision"] = numbers[0]
        result["scale"] = numbers[1] if len(numbers) > 1 else 0
    result["text"] = text
    return result


# Classification ---------------------------------------------------------------------------------


def _constraint(table: tuple, cursor: _Cursor, name: str | None, statement: str) -> list[dict]:
    """The findings of a table constraint (after ``ADD [CONSTRAINT name]``)."""
    base = {"table": table, "constraint": name, "statement": statement}
    if cursor.keyword("UNIQUE"):
        nulls_not_distinct = cursor.keyword("NULLS", "NOT", "DISTINCT")
        cursor.keyword("NULLS", "DISTINCT")
        columns = cursor.parens()
        if columns is None:  # UNIQUE USING INDEX name: the index was built (and checked) before
            return []
        return [
            {
                "kind": "unique",
                **base,
                "columns": column_list(columns),
                "where": None,
                "nulls_not_distinct": nulls_not_distinct,
            }
        ]
    if cursor.keyword("PRIMARY", "KEY"):
        columns = cursor.parens()
        if columns is None:
            return []
        found = [{"kind": "unique", **base, "columns": column_list(columns), "where": None}]
        return found + [
            {"kind": "not_null", **base, "column": c["column"]}
            for c in column_list(columns)
            if "column" in c
        ]
    if cursor.keyword("FOREIGN", "KEY"):
        columns = cursor.parens() or ""
        if not cursor.keyword("REFERENCES"):
            return [{"kind": "unknown", **base, "why": "a foreign key not understood"}]
        parent = cursor.qualified()
        parent_columns = cursor.parens()
        rest = cursor.rest()
        if re.search(r"\bNOT\s+VALID\b", rest, re.IGNORECASE):
            return []
        return [
            {
                "kind": "foreign_key",
                **base,
                "columns": [c.get("column") for c in column_list(columns)],
                "ref_table": parent,
                "ref_columns": (
                    [c.get("column") for c in column_list(parent_columns)]
                    if parent_columns
                    else None
                ),
            }
        ]
    if cursor.keyword("CHECK"):
        expression = cursor.parens()
        rest = cursor.rest()
        if expression is None:
            return [{"kind": "unknown", **base, "why": "a CHECK not understood"}]
        if re.search(r"\bNOT\s+VALID\b", rest, re.IGNORECASE):
            return []
        return [{"kind": "check", **base, "expression": expression}]
    if cursor.keyword("EXCLUDE"):
        return [{"kind": "unknown", **base, "why": "an exclusion constraint is not checked"}]
    return []


def _column_definition(table: tuple, column: str, definition: str, statement: str) -> list[dict]:
    """The findings of ``ADD COLUMN <column> <definition>``."""
    base = {"table": table, "column": column, "statement": statement}
    found = [{"kind": "add_column", **base}]
    flat = " ".join(strip_comments(definition).split())
    default = re.search(
        r"\bDEFAULT\s+(.+?)(?=\s+(?:NOT\s+NULL|NULL|CONSTRAINT|CHECK|UNIQUE|PRIMARY|REFERENCES|"
        r"GENERATED|COLLATE)\b|$)",
        flat,
        re.IGNORECASE,
    )
    has_default = default is not None and default.group(1).strip().upper() != "NULL"
    if _SERIAL_RE.match(flat) or re.search(r"\bGENERATED\b.*\bSTORED\b", flat, re.IGNORECASE):
        found.append({"kind": "volatile_default", **base, "default": flat})
        has_default = True
    elif has_default and _VOLATILE_RE.search(default.group(1)):
        found.append({"kind": "volatile_default", **base, "default": default.group(1).strip()})
    if re.search(r"\bGENERATED\b.*\bIDENTITY\b", flat, re.IGNORECASE):
        found.append({"kind": "volatile_default", **base, "default": "identity"})
        has_default = True
    if re.search(r"\bNOT\s+NULL\b|\bPRIMARY\s+KEY\b", flat, re.IGNORECASE) and not has_default:
        found.append({"kind": "add_not_null", **base})
    if re.search(r"\bUNIQUE\b|\bPRIMARY\s+KEY\b", flat, re.IGNORECASE) and has_default:
        found.append(
            {
                "kind": "unknown",
                **base,
                "why": "a unique column added with a default is not checked",
            }
        )
    check = re.search(r"\bCHECK\s*\(", flat, re.IGNORECASE)
    if check and has_default:
        found.append({"kind": "unknown", **base, "why": "a CHECK on a column added with a default"})
    references = re.search(r"\bREFERENCES\b", flat, re.IGNORECASE)
    if references and has_default:
        found.append(
            {"kind": "unknown", **base, "why": "a foreign key on a column added with a default"}
        )
    return found


def _alter_action(table: tuple, action: str, statement: str) -> list[dict]:
    cursor = _Cursor(action)
    if cursor.keyword("ADD", "CONSTRAINT"):
        name = cursor.ident()
        return _constraint(table, cursor, name, statement)
    if cursor.peek_keyword("ADD") and any(
        cursor.peek_keyword("ADD", word)
        for word in ("UNIQUE", "PRIMARY", "FOREIGN", "CHECK", "EXCLUDE")
    ):
        cursor.keyword("ADD")
        return _constraint(table, cursor, None, statement)
    if cursor.keyword("ADD"):
        cursor.keyword("COLUMN")
        cursor.keyword("IF", "NOT", "EXISTS")
        column = cursor.ident()
        if column is None:
            return []
        return _column_definition(table, column, cursor.rest(), statement)
    if cursor.keyword("ALTER"):
        cursor.keyword("COLUMN")
        column = cursor.ident()
        if column is None:
            return []
        base = {"table": table, "column": column, "statement": statement}
        if cursor.keyword("SET", "NOT", "NULL"):
            return [{"kind": "not_null", **base}]
        if cursor.keyword("SET", "DATA", "TYPE") or cursor.keyword("TYPE"):
            rest = cursor.rest()
            using = re.search(r"\bUSING\b", rest, re.IGNORECASE)
            collate = re.search(r"\bCOLLATE\b", rest, re.IGNORECASE)
            cut = min(m.start() for m in (using, collate) if m) if (using or collate) else None
            new_type = rest[:cut].strip() if cut is not None else rest
            return [
                {
                    "kind": "type",
                    **base,
                    "new_type": parse_type(new_type),
                    "using": rest[using.end() :].strip() if using else None,
                },
                {"kind": "rewrite", **base, "why": f"ALTER COLUMN {column} TYPE {new_type}"},
            ]
        return []
    if cursor.keyword("VALIDATE", "CONSTRAINT"):
        return [
            {
                "kind": "unknown",
                "table": table,
                "constraint": cursor.ident(),
                "statement": statement,
                "why": "VALIDATE CONSTRAINT: the constraint's definition is not in this statement",
            }
        ]
    return []


def classify(statement: str) -> list[dict]:
    """What ``statement`` needs of the live data and how heavy it is: a list of findings, each
    ``{"kind", "table", "statement", …}`` (see the module docstring); ``[]`` for a statement
    that depends on no existing data (or Alembic's own ``alembic_version``).

    >>> [f["kind"] for f in classify("CREATE UNIQUE INDEX ix ON users (email)")]
    ['unique', 'blocking_index']
    >>> classify("CREATE INDEX CONCURRENTLY ix ON users (email)")
    []
    >>> fk = "ALTER TABLE m ADD CONSTRAINT fk FOREIGN KEY(u) REFERENCES users (id)"
    >>> classify(fk)[0]["ref_table"]
    (None, 'users')
    """
    cursor = _Cursor(statement)
    text = " ".join(cursor.text.split())
    if cursor.keyword("ALTER", "TABLE"):
        cursor.keyword("IF", "EXISTS")
        cursor.keyword("ONLY")
        table = cursor.qualified()
        if table is None or table[1] == ALEMBIC_TABLE:
            return []
        found = []
        for action in split_top_level(cursor.rest()):
            found += _alter_action(table, action, text)
        return found
    if cursor.keyword("CREATE"):
        unique = cursor.keyword("UNIQUE")
        if cursor.keyword("INDEX"):
            concurrently = cursor.keyword("CONCURRENTLY")
            cursor.keyword("IF", "NOT", "EXISTS")
            if not cursor.peek_keyword("ON"):
                cursor.ident()
            if not cursor.keyword("ON"):
                return []
            cursor.keyword("ONLY")
            table = cursor.qualified()
            if table is None:
                return []
            method = None
            if cursor.keyword("USING"):
                method = cursor.ident()
            columns = cursor.parens() or ""
            rest = cursor.rest()
            where = re.search(r"\bWHERE\b", rest, re.IGNORECASE)
            found = []
            if unique:
                found.append(
                    {
                        "kind": "unique" if method in (None, "btree") else "unknown",
                        "table": table,
                        "constraint": None,
                        "statement": text,
                        "columns": column_list(columns),
                        "where": rest[where.end() :].strip() if where else None,
                        "nulls_not_distinct": bool(
                            re.match(
                                r"(?:INCLUDE\s*\([^)]*\)\s*)?NULLS\s+NOT\s+DISTINCT\b", rest, re.I
                            )
                        ),
                    }
                )
                if method not in (None, "btree"):
                    found[-1]["why"] = f"a unique index using {method} is not checked"
            if not concurrently:
                found.append({"kind": "blocking_index", "table": table, "statement": text})
            return found
        cursor.keyword("UNLOGGED")
        if cursor.keyword("TABLE"):
            cursor.keyword("IF", "NOT", "EXISTS")
            table = cursor.qualified()
            if table and table[1] != ALEMBIC_TABLE:
                return [{"kind": "create_table", "table": table, "statement": text}]
        return []
    for verb, lead in (("INSERT", ("INSERT", "INTO")), ("DELETE", ("DELETE", "FROM"))):
        if cursor.keyword(*lead):
            cursor.keyword("ONLY")
            table = cursor.qualified()
            if table and table[1] != ALEMBIC_TABLE:
                return [{"kind": "dml", "verb": verb, "table": table, "statement": text}]
            return []
    if cursor.keyword("UPDATE"):
        cursor.keyword("ONLY")
        table = cursor.qualified()
        if table and table[1] != ALEMBIC_TABLE:
            return [{"kind": "dml", "verb": "UPDATE", "table": table, "statement": text}]
        return []
    if cursor.keyword("DO") or cursor.keyword("CALL") or cursor.keyword("COPY"):
        return [
            {
                "kind": "unknown",
                "table": None,
                "statement": text,
                "why": f"{text.split()[0].upper()} runs code whose effect on data is not checked",
            }
        ]
    return []


DATA_KINDS = ("not_null", "add_not_null", "unique", "foreign_key", "check", "type")
HEAVY_KINDS = ("rewrite", "volatile_default", "blocking_index")


def display_table(table: tuple[str | None, str] | None) -> str:
    """``(schema, name)`` as SQL writes it: ``public.users``, ``"odd schema"."PlayCount"``;
    no schema → ``public``.

    >>> display_table(("odd schema", "PlayCount"))
    '"odd schema"."PlayCount"'
    """
    if table is None:
        return "?"

    def quote(name: str) -> str:
        plain = re.fullmatch(r"[a-z_][a-z0-9_$]*", name) is not None
        return name if plain else '"' + name.replace('"', '""') + '"'

    return f"{quote(table[0] or 'public')}.{quote(table[1])}"


def analyse_revisions(revisions: list[dict]) -> list[dict]:
    """The pending revisions (oldest first, each ``{"revision", "sql", …}``) with their
    statements classified in order: each finding gains ``revision`` and, when an earlier pending
    statement makes the live data say nothing about it, ``context``: ``new_table`` (the table is
    created by a pending statement and no data statement touches it before: it is empty),
    ``after_dml`` (an ``INSERT``/``UPDATE``/``DELETE`` on the table runs first),
    ``new_column`` (the column is added by a pending statement; ``default`` says whether with a
    default). Returns the findings of all revisions, in order.

    >>> sql = "CREATE TABLE t (id INTEGER);\\nALTER TABLE t ALTER COLUMN id SET NOT NULL;"
    >>> [(f["kind"], f.get("context")) for f in analyse_revisions([{"revision": "a", "sql": sql}])]
    [('create_table', None), ('not_null', 'new_table')]
    """
    created: set = set()
    touched: set = set()
    added: dict = {}
    findings = []

    def key(table: tuple | None) -> tuple | None:
        return (table[0] or "public", table[1]) if table else None

    for revision in revisions:
        for statement in split_statements(revision.get("sql") or ""):
            for finding in classify(statement):
                finding = {**finding, "revision": revision["revision"]}
                table = key(finding.get("table"))
                column = finding.get("column")
                if finding["kind"] in DATA_KINDS + ("unknown",):
                    if table in touched:
                        finding["context"] = "after_dml"
                    elif table in created:
                        finding["context"] = "new_table"
                    elif (
                        column is not None
                        and (table, column) in added
                        and finding["kind"] != "add_not_null"
                    ):
                        finding["context"] = "new_column"
                        finding["default"] = added[(table, column)]
                    elif finding["kind"] in ("unique", "foreign_key"):
                        names = (
                            [c.get("column") for c in finding["columns"]]
                            if finding["kind"] == "unique"
                            else finding["columns"]
                        )
                        if any((table, n) in added for n in names):
                            finding["context"] = "new_column"
                            finding["default"] = any(added.get((table, n)) for n in names)
                findings.append(finding)
                if finding["kind"] == "create_table":
                    created.add(table)
                elif finding["kind"] == "dml":
                    touched.add(table)
                elif finding["kind"] == "add_column":
                    has_default = bool(
                        re.search(r"\bDEFAULT\s+(?!NULL\b)", finding["statement"], re.IGNORECASE)
                    )
                    added[(table, column)] = has_default
    return findings
