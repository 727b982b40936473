"""SQLite's loose values → the target PostgreSQL column's type (RELIABILITY 17), and the pairing
of an SQLite file's tables with the target schema's (made by the app's Alembic).

Shared by the copy (``pgload.py``), the unique-conflict precheck (``sqlite_unique.py``) and the
verification (``pgverify.py``), so that all three see the same converted values.

    conn = open_source("/srv/app/data/app.db")
    pairs = table_pairs(conn, pg_conn, ["users"])
    convert = RowConverter(pairs[0].columns, lossy=False)
    convert((1, "a@example.test", "yes"))   # (1, 'a@example.test', True)

Converted values are the Python objects psycopg dumps for the column's type: ``int`` (smallint,
integer, bigint), ``bool``, ``float`` (real, double precision), ``decimal.Decimal`` (numeric),
``str`` (text, varchar, char, uuid, and json/jsonb as validated JSON text), ``bytes`` (bytea),
``datetime.datetime`` (aware in UTC for timestamptz, naive for timestamp), ``datetime.date``,
``datetime.time``, or ``None``.

Reading the file (``open_source``): read-only (``mode=ro``), text decoded as UTF-8 with
``surrogateescape``: an invalid byte becomes a lone surrogate (U+DC80–U+DCFF) instead of an
exception, so the converter sees it, reports it, and can still give back the original bytes.

The conversions. Every value is either converted as below or raises ``BadValue`` (column, reason,
short value); with ``lossy=True`` a value that has a lossy form gets it and is counted in
``lossy_counts[(column, reason)]``; a value without one still raises.

==========================  ==========================================  ========================
target type                 converted                                   BadValue (lossy form)
==========================  ==========================================  ========================
any, NULL                   ``None``                                    NOT NULL column (none)
smallint/integer/bigint     int; float with an integral value; text     not a number, not
                            of an integer or integral decimal,          integral, out of the
                            stripped (``' 12 '``, ``'12.0'``)           type's range (none)
boolean                     1/0 (and 1.0/0.0); text, stripped, any      anything else (none)
                            case: t/f, true/false, yes/no, y/n, on/off,
                            1/0
real, double precision      int/float → float; numeric text → float     not a number; outside
                            (nan/inf as PostgreSQL accepts them)        real's range (none)
numeric, numeric(p,s)       int/float/text → Decimal (a float via its   not a number; too many
                            shortest repr: 0.1 → Decimal('0.1'))        digits for p (none);
                                                                        more decimals than s
                                                                        (rounded half away from
                                                                        zero to s, as PostgreSQL)
timestamp with time zone    ISO 8601 text as Python's ``fromisoformat`` unreadable text, out of
                            reads it (``T`` or space, optional          Python's years 1-9999,
                            fraction, optional ``Z``/offset;            'infinity' (none)
                            fraction, optional ``Z``/offset;            range (none)
                            CURRENT_TIMESTAMP's ``YYYY-MM-DD
                            HH:MM:SS``; a date alone is midnight;
                            digits past microseconds cut);
                            numbers (and numeric text) are epoch
                            seconds, or epoch milliseconds when
                            ``abs(value) >= 1e11`` (1e11 s is year
                            5138, 1e11 ms is 1973-03-03: milliseconds
                            before March 1973 are read as seconds).
                            No offset means UTC (not the session's
                            TimeZone). → aware, in UTC.
timestamp without t. z.     as above; an offset converts the value to   as above
                            UTC, then the offset is dropped (naive UTC;
                            PostgreSQL's input would drop it unapplied)
timestamp(p)/time(p)        fractions rounded half up to p digits (a    as above
                            time never past 23:59:59.999999)
date                        ISO date; a timestamp (text or epoch) at    a time of day other
                            midnight; an offset → the UTC date          than midnight (its date)
time without time zone      ISO time text ``HH:MM[:SS[.f]]``            unreadable (none)
text, citext                str; int/float → ``str(value)``; BLOB →     NUL byte (removed);
                            its UTF-8 text                              invalid UTF-8 (decoded
                                                                        with U+FFFD)
varchar(n), char(n)         as text; spaces past n are dropped (as      longer than n
                            PostgreSQL does); char(n) padded with       (truncated to n)
                            spaces to n (as PostgreSQL stores it)
bytea                       bytes; text → its UTF-8 bytes (invalid      number (none)
                            UTF-8 → the file's original bytes)
json, jsonb                 text (or a BLOB's UTF-8) validated with     invalid JSON, NaN/
                            ``json.loads`` and kept as written;         Infinity (NULL when the
                            int/float → its JSON text                   column is nullable);
                                                                        jsonb: ``\\u0000``, a
                                                                        lone surrogate escape
                                                                        (same)
uuid                        text (any form uuid.UUID reads but          not a UUID (none)
                            ``urn:``) or 16-byte BLOB → canonical
                            lower-case ``str``
any other type              text as for ``text``, for PostgreSQL's      as for text
                            own input function (text COPY only)
==========================  ==========================================  ========================

NUL bytes and invalid UTF-8 are checked in every text that reaches PostgreSQL (json
and the other types included), since PostgreSQL text cannot hold either. A value already of the
converted Python type (bool, datetime, date, time, Decimal, uuid.UUID) passes as it is.

Speed: each column's converter is built once; a value already clean costs one type check
(about 1M six-column rows/s on one core; ISO-text timestamps and text→int/bool ≈ 0.5-0.9M).

Every "as PostgreSQL" above is tested against PostgreSQL's own input of the same text
(tests/integration/test_sqlite_types_pg.py).

COPY: ``copy_binary_type`` names the types whose converted values binary COPY can carry
(``copy.set_types``); uuid, jsonb and every other type go by text COPY. ``copy_types`` adds
jsonb for one connection, with a dumper of its own for the converted JSON text (jsonb's binary
form is a version byte and that text; psycopg's own would send a JSON string).
"""

import datetime
import json
import operator
import re
import sqlite3
import sys
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from turnout.hostside.base import HostsideError

# Tables of the app's SQLite file never copied (Alembic's own is written by ``upgrade head``).
SKIPPED_TABLES = ("alembic_version",)
INTEGER_RANGES = {"smallint": 2**15, "integer": 2**31, "bigint": 2**63}
INTEGER_TYPES = frozenset(INTEGER_RANGES)
TRUE_TEXT = frozenset(("1", "t", "true", "yes", "y", "on"))
FALSE_TEXT = frozenset(("0", "f", "false", "no", "n", "off"))
# Epoch numbers this large or larger are milliseconds (1e11 seconds is the year 5138).
EPOCH_MS_FROM = 1e11
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
REAL_MAX = 3.4028234663852886e38
NUMERIC_DIGITS = 131072  # digits before the decimal point PostgreSQL's numeric holds
VALUE_SHOWN = 40

_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")
_NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_FLOAT_WORDS = frozenset(("nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"))
_LENGTH = re.compile(r"^(character varying|character|bit varying|bit)\((\d+)\)$")
_NUMERIC = re.compile(r"^numeric(?:\((\d+)(?:,(\d+))?\))?$")
_TIMESTAMP = re.compile(r"^timestamp(?:\((\d)\))? (with|without) time zone$")
_TIME = re.compile(r"^time(?:\((\d)\))? without time zone$")
_NO_LOSSY_FORM = object()


# Opening the source ------------------------------------------------------------------------------


def decode_text(data: bytes) -> str:
    """SQLite TEXT as ``str``: UTF-8, invalid bytes kept as lone surrogates (``surrogateescape``).

    >>> decode_text(b"caf\\xc3\\xa9"), decode_text(b"caf\\xe9")
    ('café', 'caf\\udce9')
    """
    return str(data, "utf-8", "surrogateescape")


def open_source(path: str, immutable: bool = False, timeout_s: float = 30) -> sqlite3.Connection:
    """The app's SQLite file opened read-only (URI ``mode=ro``: SQLite refuses every write), its
    TEXT decoded by ``decode_text`` (never raising on invalid UTF-8).

    ``immutable=True`` (no locking, no change detection) is only for a frozen snapshot such as
    the copy's backup-API copy: SQLite may read a changing live file wrongly with it.

        conn = open_source("/srv/app/data/app.db")
        conn.execute("SELECT count(*) FROM users").fetchone()
    """
    if not isinstance(path, str) or not path:
        raise HostsideError("sqlite_path must be the path of the app's SQLite file")
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError as error:
        raise HostsideError(
            f"cannot read SQLite file {path}: {error.strerror}; fix sqlite_path"
        ) from None
    if head and head != b"SQLite format 3\x00":
        raise HostsideError(f"{path} is not an SQLite database file; fix sqlite_path")
    query = "?mode=ro&immutable=1" if immutable else "?mode=ro"
    uri = "file:" + urllib.parse.quote(path) + query
    conn = sqlite3.connect(uri, uri=True, timeout=timeout_s, check_same_thread=False)
    conn.text_factory = decode_text
    return conn


def fetch_rows(
    sqlite_conn: sqlite3.Connection, query: str, params: Sequence[object] = ()
) -> list[tuple]:
    """All rows of ``query``, read with SQLite's own UTF-8 decoding (a third faster than any
    text factory); when a row holds invalid UTF-8 (SQLite's decoding raises) the query is read
    again with ``decode_text``, so the converters see and report the bad bytes. For batches.

    >>> conn = sqlite3.connect(":memory:")
    >>> _ = conn.execute("CREATE TABLE t (a)")
    >>> _ = conn.execute("INSERT INTO t VALUES ('ok'), (CAST(X'66FF' AS TEXT))")
    >>> fetch_rows(conn, "SELECT a FROM t WHERE rowid > ?", (0,))
    [('ok',), ('f\\udcff',)]
    """
    factory = sqlite_conn.text_factory
    try:
        sqlite_conn.text_factory = str
        return sqlite_conn.execute(query, params).fetchall()
    except sqlite3.OperationalError as error:
        if "decode" not in str(error):
            raise
        sqlite_conn.text_factory = decode_text
        return sqlite_conn.execute(query, params).fetchall()
    finally:
        sqlite_conn.text_factory = factory


# The pairing with the target --------------------------------------------------------------------


@dataclass(frozen=True)
class TargetColumn:
    """One column of a target table, as PostgreSQL's catalog says (``format_type``).

    >>> TargetColumn("email", "character varying(255)", nullable=False).pg_type
    'character varying(255)'
    """

    name: str
    pg_type: str  # e.g. 'integer', 'boolean', 'timestamp with time zone', 'character varying(255)'
    nullable: bool = True


@dataclass(frozen=True)
class TablePair:
    """A table in both the SQLite file and the target schema.

    >>> TablePair("users", "public", "id", (TargetColumn("id", "integer", False),)).key
    'id'
    """

    name: str  # the SQLite table name (the same name in the target)
    schema: str  # the target's schema, usually public
    key: str | None  # the single integer primary key column, else None (copied whole)
    columns: tuple[TargetColumn, ...]  # the columns both sides have, in the target's order


def sqlite_tables(sqlite_conn: sqlite3.Connection) -> list[str]:
    """The SQLite file's tables but ``alembic_version``, SQLite's own ``sqlite_*``, and virtual
    tables (FTS and the like) with their shadow tables: derived indexes, not the app's data, and
    PostgreSQL has no such tables (SQLite before 3.37 cannot tell shadow tables apart: they are
    listed there, and refused by ``table_pairs`` when the target lacks them).

    >>> conn = sqlite3.connect(":memory:")
    >>> _ = conn.executescript("CREATE TABLE b (x); CREATE TABLE alembic_version (v);"
    ...     "CREATE TABLE a (y); CREATE VIRTUAL TABLE docs USING fts5(body)")
    >>> sqlite_tables(conn)
    ['a', 'b']
    """
    try:
        rows = sqlite_conn.execute(
            "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table' "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
        ).fetchall()
    except sqlite3.OperationalError:  # SQLite before 3.37: no table_list
        rows = sqlite_conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
            "AND upper(sql) NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name"
        ).fetchall()
    return [name for (name,) in rows if name not in SKIPPED_TABLES]


def sqlite_columns(sqlite_conn: sqlite3.Connection, table: str) -> list[str]:
    """The columns of an SQLite table, in its order (the name bound, never quoted into SQL).

    >>> conn = sqlite3.connect(":memory:")
    >>> _ = conn.execute('CREATE TABLE "Odd T" (id INTEGER PRIMARY KEY, "Mixed Col" TEXT)')
    >>> sqlite_columns(conn, "Odd T")
    ['id', 'Mixed Col']
    """
    rows = sqlite_conn.execute("SELECT name FROM pragma_table_info(?) ORDER BY cid", (table,))
    return [name for (name,) in rows.fetchall()]


def pg_target_tables(pg_conn) -> dict[str, list[tuple[str, int]]]:  # noqa: ANN001
    """Every ordinary or partitioned table of the target's user schemas: name → [(schema,
    oid)], ``public`` first, then the schemas in name order.

        pg_target_tables(pg_conn)["users"]   # [('public', 16390), ('archive', 16420)]
    """
    rows = pg_conn.execute(
        "SELECT c.relname, n.nspname, c.oid FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition "
        "AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' "
        "ORDER BY n.nspname <> 'public', n.nspname"
    ).fetchall()
    found: dict[str, list[tuple[str, int]]] = {}
    for name, schema, oid in rows:
        found.setdefault(name, []).append((schema, oid))
    return found


def find_by_name(name: str, names: Sequence[str]) -> str | None:
    """``name`` as written in ``names``, else its only case-insensitive match (SQLite's names are
    case-insensitive; PostgreSQL's quoted ones are not), else None.

    >>> find_by_name("Users", ["users", "other"]), find_by_name("x", ["X", "x"])
    ('users', 'x')
    """
    if name in names:
        return name
    folded = [candidate for candidate in names if candidate.lower() == name.lower()]
    return folded[0] if len(folded) == 1 else None


def pg_columns(pg_conn, oid: int) -> list[dict]:  # noqa: ANN001
    """The target table's live, non-generated columns: name, type, not null, has a default.

    pg_columns(pg_conn, 16390)[0]   # {'name': 'id', 'type': 'integer', 'not_null': True, …}
    """
    rows = pg_conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
        "a.atthasdef OR a.attidentity <> '' FROM pg_attribute a "
        "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped "
        "AND a.attgenerated = '' ORDER BY a.attnum",
        (oid,),
    ).fetchall()
    return [
        {"name": name, "type": pg_type, "not_null": not_null, "default": default}
        for name, pg_type, not_null, default in rows
    ]


def pg_integer_key(pg_conn, oid: int) -> str | None:  # noqa: ANN001
    """The primary key column when the key is one smallint/integer/bigint column, else None.

    pg_integer_key(pg_conn, 16390)   # 'id'
    """
    rows = pg_conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_index i "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) "
        "WHERE i.indrelid = %s AND i.indisprimary AND i.indnatts = 1 AND i.indkey[0] <> 0",
        (oid,),
    ).fetchall()
    if len(rows) == 1 and rows[0][1] in INTEGER_TYPES:
        return rows[0][0]
    return None


def pg_references(pg_conn, oids: Sequence[int]) -> list[tuple[int, int]]:  # noqa: ANN001
    """(referencing table, referenced table) of every foreign key among ``oids``.

    pg_references(pg_conn, [16390, 16400])   # [(16400, 16390)]: posts → users
    """
    rows = pg_conn.execute(
        "SELECT conrelid, confrelid FROM pg_constraint WHERE contype = 'f' "
        "AND conrelid = ANY (%s) AND confrelid = ANY (%s)",
        (list(oids), list(oids)),
    ).fetchall()
    return [(child, parent) for child, parent in rows]


def foreign_key_order(names: dict[int, str], references: Sequence[tuple[int, int]]) -> list[int]:
    """Tables (oid → name) ordered so that a referenced table comes before the tables that
    reference it; ties in name order; the tables of a cycle after the rest, in name order.

    >>> foreign_key_order({1: "users", 2: "posts", 3: "audit"}, [(2, 1)])
    [3, 1, 2]
    >>> foreign_key_order({1: "a", 2: "b", 3: "c"}, [(1, 2), (2, 1), (3, 1)])
    [1, 2, 3]
    """
    parents: dict[int, set[int]] = {oid: set() for oid in names}
    for child, parent in references:
        if child != parent and child in parents and parent in names:
            parents[child].add(parent)
    ordered: list[int] = []
    placed: set[int] = set()
    while True:
        ready = [oid for oid in names if oid not in placed and parents[oid] <= placed]
        if not ready:
            break
        first = min(ready, key=lambda oid: names[oid])
        ordered.append(first)
        placed.add(first)
    return ordered + sorted((oid for oid in names if oid not in placed), key=lambda o: names[o])


def pair_columns(table: str, source: Sequence[str], target: Sequence[dict]) -> tuple:
    """The target's columns that the SQLite table has, as ``TargetColumn`` in the target's order;
    ``HostsideError`` for an SQLite column the target lacks, or a target NOT NULL column without
    a default that SQLite lacks.

    >>> pair_columns("t", ["ID"], [{"name": "id", "type": "integer", "not_null": True,
    ...     "default": True}, {"name": "x", "type": "text", "not_null": False, "default": False}])
    (TargetColumn(name='id', pg_type='integer', nullable=False),)
    """
    target_names = [column["name"] for column in target]
    matched = {}
    for name in source:
        found = find_by_name(name, target_names)
        if found is None:
            raise HostsideError(
                f"column {name} of SQLite table {table} is not in the target table; "
                "bring the target schema to the app's head revision (Alembic) first"
            )
        matched[found] = name
    for column in target:
        if column["name"] not in matched and column["not_null"] and not column["default"]:
            raise HostsideError(
                f"target column {table}.{column['name']} is NOT NULL without a default and the "
                "SQLite table has no such column; the target schema is not the app's (run Alembic)"
            )
    return tuple(
        TargetColumn(column["name"], column["type"], not column["not_null"])
        for column in target
        if column["name"] in matched
    )


def table_pairs(sqlite_conn, pg_conn, tables: Sequence[str] | None = None) -> list[TablePair]:  # noqa: ANN001
    """The tables to copy: ``tables``, else every SQLite table but ``alembic_version`` and
    ``sqlite_*``, each found in the target (``public`` first; the name as in SQLite, else its only
    case-insensitive match), with the columns both sides have and the integer primary key; ordered
    by foreign keys (referenced tables first). ``HostsideError`` names a missing table or column.

        pairs = table_pairs(open_source("/srv/app/data/app.db"), pg_conn)
        [(pair.name, pair.key) for pair in pairs]   # [('users', 'id'), ('posts', 'id'), ...]
    """
    available = sqlite_tables(sqlite_conn)
    if tables:
        wanted = []
        for name in tables:
            found = find_by_name(name, available)
            if found is None:
                raise HostsideError(f"table {name} is not in the SQLite file; fix tables")
            wanted.append(found)
    else:
        wanted = available
    catalog = pg_target_tables(pg_conn)
    located: dict[int, tuple[str, str]] = {}
    for name in wanted:
        target_name = find_by_name(name, list(catalog))
        if target_name is None:
            raise HostsideError(
                f"table {name} of the SQLite file is not in the target database; create the "
                "schema with the app's Alembic (upgrade head) first, or leave it out of tables"
            )
        schema, oid = catalog[target_name][0]
        located[oid] = (schema, target_name)
    pairs = {}
    for oid, (schema, name) in located.items():
        columns = pair_columns(name, sqlite_columns(sqlite_conn, name), pg_columns(pg_conn, oid))
        key = pg_integer_key(pg_conn, oid)
        key = key if key in {column.name for column in columns} else None
        pairs[oid] = TablePair(name=name, schema=schema, key=key, columns=columns)
    names = {oid: name for oid, (_, name) in located.items()}
    order = foreign_key_order(names, pg_references(pg_conn, list(located)))
    return [pairs[oid] for oid in order]


# Converting values ------------------------------------------------------------------------------


class BadValue(ValueError):
    """A value that cannot convert exactly to its column's type: one line with the column, the
    reason and a short repr of the value (the value is kept out of ``reason``, so that reasons
    count as categories in ``lossy_counts``).

    >>> str(BadValue("age", "not an integer", "twelve"))
    "column age: not an integer ('twelve')"
    """

    def __init__(self, column: str, reason: str, value: object = _NO_LOSSY_FORM) -> None:
        shown = "" if value is _NO_LOSSY_FORM else f" ({short_repr(value)})"
        super().__init__(f"column {column}: {reason}{shown}")
        self.column = column
        self.reason = reason


def short_repr(value: object, limit: int = VALUE_SHOWN) -> str:
    """``repr(value)`` on one line, cut to ``limit`` characters.

    >>> short_repr("x" * 60)
    "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…"
    """
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# A converter's report of a bad value: (reason, value, lossy form or _NO_LOSSY_FORM) → the lossy
# form, or it raises BadValue.
Report = Callable[[str, object, object], object]


def null_value(nullable: bool, bad: Report) -> None:
    """NULL: None, or the report of a NULL in a NOT NULL column (no lossy form).

    >>> report = RowConverter([]).reporter("c")
    >>> null_value(True, report) is None
    True
    """
    return None if nullable else bad("NULL in a NOT NULL column", None, _NO_LOSSY_FORM)


def clean_text(text: str, bad: Report) -> str:
    """``text`` checked for what PostgreSQL text cannot hold: NUL (lossy: removed) and invalid
    UTF-8 (lone surrogates from ``decode_text``; lossy: decoded with U+FFFD).

    >>> clean_text("café", RowConverter([]).reporter("c"))
    'café'
    >>> clean_text("a\\x00b", RowConverter([], lossy=True).reporter("c"))
    'ab'
    """
    if "\x00" in text:
        text = bad("NUL byte", text, text.replace("\x00", ""))
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            original = text.encode("utf-8", "surrogateescape")
            text = bad("invalid UTF-8", text, original.decode("utf-8", "replace"))
    return text


def any_text(value: object, bad: Report) -> str:
    """Any SQLite value as clean text: str checked, BLOB decoded, numbers as ``str()``.

    >>> report = RowConverter([]).reporter("c")
    >>> any_text(b"caf\\xc3\\xa9", report), any_text(1.5, report)
    ('café', '1.5')
    """
    if isinstance(value, str):
        return clean_text(value, bad)
    if isinstance(value, bytes):
        return clean_text(decode_text(value), bad)
    return str(value)


def text_converter(pg_type: str, nullable: bool, bad: Report) -> Callable[[object], object]:
    """text, varchar(n), char(n), and types read by PostgreSQL's own input function.

    >>> report = RowConverter([]).reporter("c")
    >>> text_converter("character(3)", True, report)("a"), text_converter("text", True, report)(7)
    ('a  ', '7')
    """
    match = _LENGTH.match(pg_type)
    sized = match is not None and match.group(1).startswith("character")
    limit = int(match.group(2)) if sized else sys.maxsize
    pad = limit if sized and match.group(1) == "character" else 0

    def convert(value: object) -> object:
        if (
            value.__class__ is str
            and pad <= len(value) <= limit
            and value.isascii()
            and "\x00" not in value
        ):
            return value
        if value is None:
            return null_value(nullable, bad)
        text = any_text(value, bad)
        if len(text) > limit:
            if text[limit:].strip(" "):
                text = bad(f"longer than {limit} characters", text, text[:limit])
            text = text[:limit]
        return text.ljust(pad)

    return convert


def integer_converter(pg_type: str, nullable: bool, bad: Report) -> Callable[[object], object]:
    """smallint, integer, bigint: exact integers only, in the type's range.

    >>> report = RowConverter([]).reporter("c")
    >>> integer_converter("smallint", True, report)(" 12 ")
    12
    """
    high = INTEGER_RANGES[pg_type]
    low = -high

    def convert(value: object) -> object:
        if value.__class__ is int and low <= value < high:
            return value
        if value is None:
            return null_value(nullable, bad)
        if isinstance(value, float):
            number = int(value) if value.is_integer() else None
        elif isinstance(value, str):
            number = integer_text(value.strip())
        else:
            number = int(value) if isinstance(value, int) else None
        if number is None:
            return bad("not an integer", value, _NO_LOSSY_FORM)
        if not low <= number < high:
            return bad(f"out of range for {pg_type}", value, _NO_LOSSY_FORM)
        return number

    return convert


def integer_text(text: str) -> int | None:
    """The integer that ``text`` writes (``'12'``, ``'-3'``, ``'12.0'``, ``'1.2e1'``), else None.

    >>> integer_text("12"), integer_text("12.0"), integer_text("1.5"), integer_text("1e999999")
    (12, 12, None, None)
    """
    if len(text) > 40:  # longer than any bigint; int() of thousands of digits is refused
        return None
    if text.isascii() and text.isdigit() or _INTEGER_TEXT.fullmatch(text):
        return int(text)
    if _NUMBER_TEXT.fullmatch(text):
        number = Decimal(text)
        if number.adjusted() < 20 and number == number.to_integral_value():
            return int(number)
    return None


def boolean_converter(nullable: bool, bad: Report) -> Callable[[object], object]:
    """boolean: 1/0 and the words PostgreSQL's boolean input reads (any case, stripped).

    >>> report = RowConverter([]).reporter("c")
    >>> convert = boolean_converter(True, report)
    >>> convert(1), convert("Yes"), convert("off")
    (True, True, False)
    """

    def convert(value: object) -> object:
        if value.__class__ is int and (value == 0 or value == 1):
            return value == 1
        if value is None:
            return null_value(nullable, bad)
        if value.__class__ is bool:
            return value
        if isinstance(value, str):
            word = value.strip().lower()
            if word in TRUE_TEXT:
                return True
            if word in FALSE_TEXT:
                return False
        elif isinstance(value, float) and value in (0.0, 1.0):
            return value == 1.0
        return bad("not a boolean", value, _NO_LOSSY_FORM)

    return convert


def float_converter(pg_type: str, nullable: bool, bad: Report) -> Callable[[object], object]:
    """real, double precision: numbers and numeric text as ``float`` (real's range checked;
    PostgreSQL rounds a real to its 24-bit precision).

    >>> report = RowConverter([]).reporter("c")
    >>> float_converter("double precision", True, report)(" 2.5 ")
    2.5
    """
    limit = REAL_MAX if pg_type == "real" else float("inf")

    def convert(value: object) -> object:
        if value.__class__ is float and -limit <= value <= limit:
            return value
        if value is None:
            return null_value(nullable, bad)
        if isinstance(value, int | float):
            number = float(value)
        elif isinstance(value, str):
            text = value.strip()
            number = None
            if text.lower() in _FLOAT_WORDS:
                number = float(text)
            elif _NUMBER_TEXT.fullmatch(text):
                number = float(text)
                if abs(number) == float("inf"):  # '1e999': PostgreSQL says out of range
                    return bad(f"out of range for {pg_type}", value, _NO_LOSSY_FORM)
        else:
            number = None
        if number is None:
            return bad("not a number", value, _NO_LOSSY_FORM)
        if number == number and abs(number) != float("inf") and abs(number) > limit:
            return bad(f"out of range for {pg_type}", value, _NO_LOSSY_FORM)
        return number

    return convert


def numeric_converter(pg_type: str, nullable: bool, bad: Report) -> Callable[[object], object]:
    """numeric(p,s): ``Decimal``; more decimals than s rounded half away from zero (lossy, as
    PostgreSQL itself rounds), more integer digits than p - s refused.

    >>> report = RowConverter([]).reporter("c")
    >>> numeric_converter("numeric(10,2)", True, report)(0.1)
    Decimal('0.10')
    """
    match = _NUMERIC.match(pg_type)
    precision = int(match.group(1)) if match and match.group(1) else None
    scale = int(match.group(2) or 0) if precision is not None else None
    quantum = Decimal(1).scaleb(-scale) if scale is not None else None

    def convert(value: object) -> object:
        if value is None:
            return null_value(nullable, bad)
        try:
            if isinstance(value, Decimal):
                number = value
            elif isinstance(value, int | float):
                number = Decimal(repr(value))
            elif isinstance(value, str):
                text = value.strip()
                number = Decimal(text) if _NUMBER_TEXT.fullmatch(text) else None
                if number is None and text.lower() == "nan":
                    number = Decimal("NaN")
            else:
                number = None
        except InvalidOperation:
            number = None
        if number is None:
            return bad("not a number", value, _NO_LOSSY_FORM)
        if not number.is_finite():
            return number
        if quantum is None:
            if number.adjusted() >= NUMERIC_DIGITS:
                return bad(f"out of range for {pg_type}", value, _NO_LOSSY_FORM)
            return number
        if number.adjusted() >= precision - scale:
            return bad(f"too many digits for {pg_type}", value, _NO_LOSSY_FORM)
        rounded = number.quantize(quantum, rounding=ROUND_HALF_UP)
        if rounded.adjusted() >= precision - scale:
            return bad(f"too many digits for {pg_type}", value, _NO_LOSSY_FORM)
        if rounded != number:
            return bad(f"more than {scale} decimals", value, rounded)
        return rounded

    return convert


def epoch_datetime(number: int | float) -> datetime.datetime:
    """Epoch seconds, or milliseconds when ``abs(number) >= 1e11``, as an aware UTC datetime.

    >>> print(epoch_datetime(1700000000), epoch_datetime(1700000000123))
    2023-11-14 22:13:20+00:00 2023-11-14 22:13:20.123000+00:00
    """
    if abs(number) >= EPOCH_MS_FROM:
        return EPOCH + datetime.timedelta(milliseconds=number)
    if number.__class__ is int:
        return datetime.datetime.fromtimestamp(number, datetime.UTC)  # exact, and faster
    return EPOCH + datetime.timedelta(seconds=number)


def read_datetime(value: object) -> datetime.datetime | None:
    """An SQLite timestamp (ISO text, epoch number or numeric text; a datetime or date object
    as it is) as a datetime (aware when it said its offset), else None.

    >>> print(read_datetime("2024-05-01 10:00:00"), read_datetime("2024-05-01T10:00:00.5+02:00"))
    2024-05-01 10:00:00 2024-05-01 10:00:00.500000+02:00
    >>> print(read_datetime(1714557600), read_datetime("soon"))
    2024-05-01 10:00:00+00:00 None
    """
    try:
        if value.__class__ is str:
            if len(value) >= 10 and value[4] == "-":
                try:
                    return datetime.datetime.fromisoformat(value)
                except ValueError:
                    pass
            text = value.strip()
            if _NUMBER_TEXT.fullmatch(text):
                number = float(text) if "." in text or "e" in text.lower() else int(text)
                return epoch_datetime(number)
            if len(text) < 10 or not text[:4].isdigit() or text[4] != "-":
                return None
            return datetime.datetime.fromisoformat(text)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return epoch_datetime(value)
        if isinstance(value, datetime.datetime):
            return value
        if isinstance(value, datetime.date):
            return datetime.datetime.combine(value, datetime.time(0))
    except (ValueError, OverflowError, OSError):
        return None
    return None


def round_fraction(moment: datetime.datetime | datetime.time, digits: int | None):  # noqa: ANN201
    """``moment`` with its microseconds rounded half up to ``digits`` (timestamp(p), time(p)).

    >>> round_fraction(datetime.time(10, 0, 0, 999_600), 3)
    datetime.time(10, 0, 1)
    """
    if digits is None or digits >= 6 or not moment.microsecond:
        return moment
    step = 10 ** (6 - digits)
    micro = (moment.microsecond + step // 2) // step * step
    if micro < 1_000_000:
        return moment.replace(microsecond=micro)
    if isinstance(moment, datetime.time):
        # PostgreSQL would write 24:00:00, which Python's time cannot hold: kept within the day
        whole = datetime.datetime.combine(datetime.date(2000, 1, 1), moment.replace(microsecond=0))
        later = whole + datetime.timedelta(seconds=1)
        return (
            later.time() if later.day == whole.day else moment.replace(microsecond=1_000_000 - step)
        )
    return moment.replace(microsecond=0) + datetime.timedelta(seconds=1)


def timestamp_converter(pg_type: str, nullable: bool, bad: Report) -> Callable[[object], object]:
    """timestamp with/without time zone: see the module's table.

    >>> report = RowConverter([]).reporter("c")
    >>> print(timestamp_converter("timestamp with time zone", True, report)("2024-05-01 10:00"))
    2024-05-01 10:00:00+00:00
    """
    match = _TIMESTAMP.match(pg_type)
    digits = int(match.group(1)) if match and match.group(1) else None
    aware = match is not None and match.group(2) == "with"
    from_iso, combine = datetime.datetime.fromisoformat, datetime.datetime.combine
    from_epoch = datetime.datetime.fromtimestamp

    def convert(value: object) -> object:
        if value.__class__ is str and len(value) >= 10 and value[4] == "-":
            try:
                moment = from_iso(value)
            except ValueError:
                moment = read_datetime(value)
        elif value.__class__ is int and -EPOCH_MS_FROM < value < EPOCH_MS_FROM:
            try:
                moment = from_epoch(value, datetime.UTC)  # epoch seconds
            except (ValueError, OverflowError, OSError):
                moment = None
        elif value.__class__ is datetime.datetime:
            moment = value
        elif value is None:
            return null_value(nullable, bad)
        else:
            moment = read_datetime(value)
        if moment is None:
            return bad("not a timestamp", value, _NO_LOSSY_FORM)
        # combine() rather than replace(tzinfo=…): four times faster on Python 3.11
        if moment.tzinfo is None:
            moment = combine(moment, moment.time(), datetime.UTC) if aware else moment
        elif moment.tzinfo is not datetime.UTC:
            moment = moment.astimezone(datetime.UTC)
        if not aware and moment.tzinfo is not None:
            moment = combine(moment, moment.time())
        return round_fraction(moment, digits) if digits is not None else moment

    return convert


def date_converter(nullable: bool, bad: Report) -> Callable[[object], object]:
    """date: an ISO date, or a timestamp at midnight (lossy: the date of any other time).

    >>> report = RowConverter([]).reporter("c")
    >>> date_converter(True, report)("2024-05-01 00:00:00")
    datetime.date(2024, 5, 1)
    """

    def convert(value: object) -> object:
        if value is None:
            return null_value(nullable, bad)
        if value.__class__ is datetime.date:
            return value
        if isinstance(value, str) and len(value) == 10:
            try:
                return datetime.date.fromisoformat(value)
            except ValueError:
                pass
        moment = read_datetime(value)
        if moment is None:
            return bad("not a date", value, _NO_LOSSY_FORM)
        if moment.tzinfo is not None:
            moment = moment.astimezone(datetime.UTC)
        if moment.time() != datetime.time(0):
            return bad("has a time of day", value, moment.date())
        return moment.date()

    return convert


def time_converter(pg_type: str, nullable: bool, bad: Report) -> Callable[[object], object]:
    """time without time zone: ISO ``HH:MM[:SS[.ffffff]]``.

    >>> report = RowConverter([]).reporter("c")
    >>> time_converter("time without time zone", True, report)("10:30")
    datetime.time(10, 30)
    """
    match = _TIME.match(pg_type)
    digits = int(match.group(1)) if match and match.group(1) else None

    def convert(value: object) -> object:
        if value is None:
            return null_value(nullable, bad)
        if value.__class__ is datetime.time and value.tzinfo is None:
            return round_fraction(value, digits)
        if isinstance(value, str):
            try:
                moment = datetime.time.fromisoformat(value.strip())
            except ValueError:
                moment = None
            if moment is not None and moment.tzinfo is None:
                return round_fraction(moment, digits)
        return bad("not a time", value, _NO_LOSSY_FORM)

    return convert


def bytea_converter(nullable: bool, bad: Report) -> Callable[[object], object]:
    """bytea: BLOBs as they are; text as its UTF-8 bytes (the file's own bytes, even invalid).

    >>> report = RowConverter([]).reporter("c")
    >>> bytea_converter(True, report)("caf\\udce9")
    b'caf\\xe9'
    """

    def convert(value: object) -> object:
        if value.__class__ is bytes:
            return value
        if value is None:
            return null_value(nullable, bad)
        if isinstance(value, str):
            return value.encode("utf-8", "surrogateescape")
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        return bad("a number in a bytea column", value, _NO_LOSSY_FORM)

    return convert


def _no_constant(word: str) -> object:
    raise ValueError(f"{word} is not JSON PostgreSQL accepts")


def jsonb_refusal(parsed: object) -> str | None:
    """What jsonb refuses in JSON that ``json.loads`` read: a ``\\u0000`` escape, or an escaped
    lone surrogate (``\\ud800``); json (not jsonb) keeps both as text. Walked without recursion.

    >>> jsonb_refusal(json.loads('{"a": ["\\\\u0000"]}')), jsonb_refusal(json.loads('"\\\\ud800"'))
    ('\\\\u0000 in jsonb', 'lone surrogate escape in jsonb')
    >>> jsonb_refusal(json.loads('["\\\\ud83d\\\\ude00", "\\\\\\\\u0000"]')) is None
    True
    """
    pending = [parsed]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.values())
            pending.extend(item.keys())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return "\\u0000 in jsonb"
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return "lone surrogate escape in jsonb"
    return None


def json_converter(
    pg_type: str, nullable: bool, bad: Report, validate: bool = True
) -> Callable[[object], object]:
    """json, jsonb: the JSON text as written, once ``json.loads`` (without NaN/Infinity) read
    it; numbers as their JSON text; lossy form of invalid JSON: NULL when the column allows it.

    >>> report = RowConverter([]).reporter("c")
    >>> json_converter("jsonb", True, report)('{"a": 1}'), json_converter("json", True, report)(5)
    ('{"a": 1}', '5')
    """
    lossy_form = None if nullable else _NO_LOSSY_FORM
    binary = pg_type == "jsonb"

    def convert(value: object) -> object:
        if not validate and value.__class__ is str and value.isascii() and "\x00" not in value:
            return value
        if value is None:
            return null_value(nullable, bad)
        if isinstance(value, int | float) and not isinstance(value, bool):
            text = json.dumps(value)
        else:
            text = any_text(value, bad)
        if not validate:
            return text
        try:
            parsed = json.loads(text, parse_constant=_no_constant)
        except ValueError:
            return bad("invalid JSON", value, lossy_form)
        except RecursionError:
            return bad("JSON nested too deeply", value, lossy_form)
        if binary and "\\u" in text:
            problem = jsonb_refusal(parsed)
            if problem:
                return bad(problem, value, lossy_form)
        return text

    return convert


def uuid_converter(nullable: bool, bad: Report) -> Callable[[object], object]:
    """uuid: text or a 16-byte BLOB as the canonical lower-case text.

    >>> report = RowConverter([]).reporter("c")
    >>> uuid_converter(True, report)("{12345678-1234-5678-1234-56781234567A}")
    '12345678-1234-5678-1234-56781234567a'
    """

    def convert(value: object) -> object:
        if value is None:
            return null_value(nullable, bad)
        try:
            if isinstance(value, str) and not value.strip().lower().startswith("urn:"):
                return str(uuid.UUID(value.strip()))
            if isinstance(value, bytes) and len(value) == 16:
                return str(uuid.UUID(bytes=value))
            if isinstance(value, uuid.UUID):
                return str(value)
        except ValueError:
            pass
        return bad("not a UUID", value, _NO_LOSSY_FORM)

    return convert


def column_converter(
    column: TargetColumn, bad: Report, validate_json: bool = True
) -> Callable[[object], object]:
    """The converter of one column, chosen by its type once (NULL refused in a NOT NULL column).

    >>> column_converter(TargetColumn("n", "integer"), lambda *report: None)("12")
    12
    """
    pg_type, nullable = column.pg_type, column.nullable
    if pg_type in INTEGER_RANGES:
        return integer_converter(pg_type, nullable, bad)
    if pg_type == "boolean":
        return boolean_converter(nullable, bad)
    if pg_type in ("real", "double precision"):
        return float_converter(pg_type, nullable, bad)
    if _NUMERIC.match(pg_type):
        return numeric_converter(pg_type, nullable, bad)
    if _TIMESTAMP.match(pg_type):
        return timestamp_converter(pg_type, nullable, bad)
    if pg_type == "date":
        return date_converter(nullable, bad)
    if _TIME.match(pg_type):
        return time_converter(pg_type, nullable, bad)
    if pg_type == "bytea":
        return bytea_converter(nullable, bad)
    if pg_type in ("json", "jsonb"):
        return json_converter(pg_type, nullable, bad, validate_json)
    if pg_type == "uuid":
        return uuid_converter(nullable, bad)
    return text_converter(pg_type, nullable, bad)


# psycopg's names of the types whose converted values COPY can send in binary (``set_types``);
# the round trip of each is tested on a real server (tests/integration/test_sqlite_types_pg.py).
BINARY_COPY_TYPES = {
    "smallint": "int2",
    "integer": "int4",
    "bigint": "int8",
    "boolean": "bool",
    "real": "float4",
    "double precision": "float8",
    "numeric": "numeric",
    "timestamp with time zone": "timestamptz",
    "timestamp without time zone": "timestamp",
    "date": "date",
    "time without time zone": "time",
    "text": "text",
    "character varying": "varchar",
    "character": "text",  # psycopg has no binary bpchar dumper; bpchar reads the same bytes
    "bytea": "bytea",
    # json's binary form is its text; jsonb's is a version byte and the text, which psycopg's
    # jsonb dumper would make from json.dumps(str) (a JSON string): jsonb goes as text
    "json": "text",
}
_TYPMOD = re.compile(r"\(\d+(?:,\d+)?\)")


def copy_binary_type(pg_type: str) -> str | None:
    """The type name for psycopg's ``copy.set_types`` to send a column's converted values with
    binary COPY, or None when the column must go by text COPY (uuid, jsonb, every other type:
    their converted values are text for PostgreSQL's input function).

    >>> copy_binary_type("character varying(255)"), copy_binary_type("timestamp(3) with time zone")
    ('varchar', 'timestamptz')
    >>> copy_binary_type("jsonb"), copy_binary_type("uuid"), copy_binary_type("numeric(10,2)")
    (None, None, 'numeric')
    """
    return BINARY_COPY_TYPES.get(_TYPMOD.sub("", pg_type))


JSONB_BINARY_VERSION = b"\x01"


def copy_types(pg_conn, pg_types: Sequence[str]) -> list[str | None]:  # noqa: ANN001
    """Per column the type name for ``copy.set_types`` (None: text COPY only), as
    ``copy_binary_type`` plus jsonb, whose converted JSON text ``pg_conn`` then sends as jsonb's
    binary form (version 1, then the text: PostgreSQL's ``jsonb_recv`` parses it as its input
    function parses the text). Call it before opening the cursor that COPYs.

    >>> copy_types(pg_conn, ["integer", "jsonb", "uuid"])  # doctest: +SKIP
    ['int4', 'jsonb', None]
    """
    from psycopg import pq
    from psycopg.adapt import Dumper

    if "jsonb" in pg_types:

        class JsonbTextDumper(Dumper):
            """The converted JSON text (a ``str``) as jsonb's binary form."""

            format = pq.Format.BINARY
            oid = pg_conn.adapters.types["jsonb"].oid

            def dump(self, obj: str) -> bytes:
                return JSONB_BINARY_VERSION + obj.encode()

        pg_conn.adapters.register_dumper(None, JsonbTextDumper)
    return ["jsonb" if t == "jsonb" else copy_binary_type(t) for t in pg_types]


@dataclass
class RowConverter:
    """Converts one SQLite row (values in ``columns`` order) to the target's Python values.

    With ``lossy`` False a value that cannot convert exactly raises ``BadValue``; with ``lossy``
    True it is replaced by the documented lossy form and counted in ``lossy_counts``.

    ``validate_json=False`` (ignored with ``lossy``: lossy forms need the parse) leaves json and
    jsonb text to PostgreSQL's own parser (NUL and UTF-8 still checked): parsing is about 3 µs a
    value, most of a JSON row's cost. A copy using it must, when COPY refuses a batch, convert
    that batch again with a validating converter to name the row (table, key, column).

    >>> columns = [TargetColumn("id", "integer", False), TargetColumn("ok", "boolean"),
    ...     TargetColumn("name", "character varying(3)")]
    >>> convert = RowConverter(columns, lossy=True)
    >>> convert((" 7 ", "yes", "abcd"))
    (7, True, 'abc')
    >>> convert.lossy_counts
    {('name', 'longer than 3 characters'): 1}
    """

    columns: Sequence[TargetColumn]
    lossy: bool = False
    lossy_counts: dict[tuple[str, str], int] = field(default_factory=dict)
    validate_json: bool = True
    converters: tuple = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.converters = tuple(
            column_converter(column, self.reporter(column.name), self.validate_json or self.lossy)
            for column in self.columns
        )

    def reporter(self, column: str) -> Report:
        """The bad-value report of one column: raise, or count and give the lossy form.

        >>> RowConverter([], lossy=True).reporter("c")("NUL byte", "a\\x00", "a")
        'a'
        """

        def report(reason: str, value: object, lossy_form: object) -> object:
            if not self.lossy or lossy_form is _NO_LOSSY_FORM:
                raise BadValue(column, reason, value)
            key = (column, reason)
            self.lossy_counts[key] = self.lossy_counts.get(key, 0) + 1
            return lossy_form

        return report

    def __call__(self, row: Sequence[object]) -> tuple:
        return tuple(map(operator.call, self.converters, row))

    def many(self, rows: Iterable[Sequence[object]]) -> list[tuple]:
        """A batch of rows converted (as ``self(row)`` each, about 10 % faster): for rows that
        need no report of which one failed; a ``BadValue`` names the column only.

        >>> RowConverter([TargetColumn("n", "integer")]).many([("1",), (2.0,)])
        [(1,), (2,)]
        """
        converters, call = self.converters, operator.call
        return [tuple(map(call, converters, row)) for row in rows]
