"""The converters against a real PostgreSQL (RELIABILITY 17): every type's converted values go
through a real table by binary COPY (``copy_binary_type``) and by text COPY and read back equal;
``table_pairs`` on a small Alembic-like schema in a real database and a real SQLite file.

This module owns the database ``turnout_types`` on the stack's staging cluster.
"""

import datetime
import json
import sqlite3
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from conftest import superuser
from psycopg import sql

from turnout.hostside.base import HostsideError
from turnout.hostside.sqlite_types import (
    BINARY_COPY_TYPES,
    BadValue,
    RowConverter,
    TablePair,
    TargetColumn,
    copy_binary_type,
    copy_types,
    fetch_rows,
    open_source,
    table_pairs,
)

DB = "turnout_types"
UTC = datetime.UTC

# (target type, raw SQLite value, expected value read back, how to read it back: "value" as
# psycopg loads it, "text" as PostgreSQL's text output, "json" as parsed JSON)
ROUND_TRIPS = [
    ("smallint", "12", 12, "value"),
    ("integer", 7.0, 7, "value"),
    ("bigint", 2**62, 2**62, "value"),
    ("boolean", "yes", True, "value"),
    ("real", "1.5", 1.5, "value"),
    ("double precision", 0.1, 0.1, "value"),
    ("numeric(10,2)", 0.1, Decimal("0.10"), "value"),
    ("numeric", "123.456789", Decimal("123.456789"), "value"),
    (
        "timestamp with time zone",
        "2024-05-01 12:00:00+02:00",
        datetime.datetime(2024, 5, 1, 10, tzinfo=UTC),
        "value",
    ),
    (
        "timestamp(3) with time zone",
        1714557600123,
        datetime.datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=UTC),
        "value",
    ),
    (
        "timestamp without time zone",
        "2024-05-01T10:00:00.123456Z",
        datetime.datetime(2024, 5, 1, 10, 0, 0, 123456),
        "value",
    ),
    ("date", 1714521600, datetime.date(2024, 5, 1), "value"),
    ("time without time zone", "10:30:15.5", datetime.time(10, 30, 15, 500000), "value"),
    ("text", "café ☕ \\ tab\there", "café ☕ \\ tab\there", "value"),
    ("character varying(5)", "ab", "ab", "value"),
    ("character(3)", "ab", "ab ", "value"),
    ("bytea", "hé", "hé".encode(), "value"),
    ("bytea", b"\x00\xff\\", b"\x00\xff\\", "value"),
    ("json", '{"b": 1,  "a": [true]}', '{"b": 1,  "a": [true]}', "text"),
    ("jsonb", '{"b": 1, "a": "\\u00e9"}', {"a": "é", "b": 1}, "json"),
    (
        "uuid",
        "{12345678-1234-5678-1234-567812345678}",
        "12345678-1234-5678-1234-567812345678",
        "text",
    ),
    ("inet", "10.0.0.1", "10.0.0.1/32", "text"),
]


@pytest.fixture(scope="module")
def pg(stack: dict):
    with superuser(stack, "staging", "postgres") as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    conn = superuser(stack, "staging", DB)
    yield conn
    conn.close()
    with superuser(stack, "staging", "postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


def read_back(conn: psycopg.Connection, table: sql.Composable, how: str) -> object:
    if how == "value":
        return conn.execute(sql.SQL("SELECT v FROM {}").format(table)).fetchone()[0]
    text = conn.execute(sql.SQL("SELECT v::text FROM {}").format(table)).fetchone()[0]
    return json.loads(text) if how == "json" else text


def copy_one(conn: psycopg.Connection, pg_type: str, value: object, binary: bool) -> sql.Composed:
    """``value`` COPYed into a new table of one ``pg_type`` column (the table's name)."""
    table = sql.Identifier(f"rt_{'bin' if binary else 'txt'}_{abs(hash(pg_type))}")
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
    conn.execute(sql.SQL("CREATE TABLE {} (v {})").format(table, sql.SQL(pg_type)))
    statement = sql.SQL("COPY {} (v) FROM STDIN{}").format(
        table, sql.SQL(" (FORMAT BINARY)" if binary else "")
    )
    with conn.cursor() as cur, cur.copy(statement) as copy:
        if binary:
            copy.set_types([copy_binary_type(pg_type)])
        copy.write_row((value,))
    return table


@pytest.mark.parametrize(("pg_type", "raw", "expected", "how"), ROUND_TRIPS)
def test_converted_values_round_trip_by_text_copy(
    pg: psycopg.Connection, pg_type: str, raw: object, expected: object, how: str
) -> None:
    value = RowConverter([TargetColumn("v", pg_type)])((raw,))[0]
    table = copy_one(pg, pg_type, value, binary=False)
    assert read_back(pg, table, how) == expected


@pytest.mark.parametrize(
    ("pg_type", "raw", "expected", "how"),
    [case for case in ROUND_TRIPS if copy_binary_type(case[0])],
)
def test_converted_values_round_trip_by_binary_copy(
    pg: psycopg.Connection, pg_type: str, raw: object, expected: object, how: str
) -> None:
    value = RowConverter([TargetColumn("v", pg_type)])((raw,))[0]
    table = copy_one(pg, pg_type, value, binary=True)
    assert read_back(pg, table, how) == expected


JSONB_TEXTS = [
    '{"b": 1, "a": "\\u00e9", "a": 2}',  # a repeated key: the last one wins, as in input
    '[1.50, 1e400, -0, 12345678901234567890, "caf\u00e9 \\" \\\\ \\t"]',
    '  {"nested": {"x": [null, true, false, {}]}}  ',
    '"just a string"',
    "3.140",
]


@pytest.mark.parametrize("text", JSONB_TEXTS)
def test_jsonb_by_binary_copy_with_copy_types_equals_text_copy(
    stack: dict, pg: psycopg.Connection, text: str
) -> None:
    """The copy sends jsonb in binary (``copy_types``: version byte + the converted text, on a
    connection of its own: the dumper is the connection's): PostgreSQL stores what its input
    function makes of the same text by text COPY."""
    value = RowConverter([TargetColumn("v", "jsonb")])((text,))[0]
    by_text = copy_one(pg, "jsonb", value, binary=False)
    with superuser(stack, "staging", DB) as own:
        jsonb_binary_round_trip(own, value, read_back(pg, by_text, "text"))


def jsonb_binary_round_trip(pg: psycopg.Connection, value: str, expected: str) -> None:
    table = sql.Identifier("rt_jsonb_copy_types")
    pg.execute(sql.SQL("DROP TABLE IF EXISTS {}; CREATE TABLE {} (v jsonb)").format(table, table))
    types = copy_types(pg, ["jsonb"])
    assert types == ["jsonb"]
    statement = sql.SQL("COPY {} (v) FROM STDIN (FORMAT BINARY)").format(table)
    with pg.cursor() as cur, cur.copy(statement) as copy:
        copy.set_types(types)
        copy.write_row((value,))
    assert read_back(pg, table, "text") == expected
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):  # the server still parses it
        with pg.cursor() as cur, cur.copy(statement) as copy:
            copy.set_types(types)
            copy.write_row(("{not json",))
    assert copy_types(pg, ["integer", "uuid", "character varying(3)"]) == ["int4", None, "varchar"]


def test_the_types_left_to_text_copy_do_fail_in_binary(pg: psycopg.Connection) -> None:
    """Why uuid and jsonb are not in BINARY_COPY_TYPES: psycopg's binary dumpers for them do
    not take the converted text (uuid fails; jsonb would store a JSON string, silently)."""
    assert {"uuid", "jsonb", "inet"}.isdisjoint(BINARY_COPY_TYPES)
    table = sql.Identifier("rt_uuid_binary")
    pg.execute(sql.SQL("DROP TABLE IF EXISTS {}; CREATE TABLE {} (v uuid)").format(table, table))
    with pytest.raises((psycopg.Error, AttributeError)):
        with (
            pg.cursor() as cur,
            cur.copy(sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(table)) as copy,
        ):
            copy.set_types(["uuid"])
            copy.write_row(("12345678-1234-5678-1234-567812345678",))
    table = sql.Identifier("rt_jsonb_binary")
    pg.execute(sql.SQL("DROP TABLE IF EXISTS {}; CREATE TABLE {} (v jsonb)").format(table, table))
    with (
        pg.cursor() as cur,
        cur.copy(sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(table)) as copy,
    ):
        copy.set_types(["jsonb"])
        copy.write_row(('{"a": 1}',))
    assert read_back(pg, table, "value") == '{"a": 1}'  # a JSON string, not the object


def test_postgresql_refuses_what_the_converters_report(pg: psycopg.Connection) -> None:
    """The reasons behind BadValue are PostgreSQL's own: NUL in text, a too-long varchar, what
    jsonb refuses and json keeps."""
    table = sql.Identifier("rt_refused")
    pg.execute(
        sql.SQL("DROP TABLE IF EXISTS {}; CREATE TABLE {} (v varchar(3))").format(table, table)
    )
    for value in ("a\x00b", "abcd"):
        with pytest.raises(psycopg.Error):
            with pg.cursor() as cur, cur.copy(sql.SQL("COPY {} FROM STDIN").format(table)) as copy:
                copy.write_row((value,))
    pg.execute(sql.SQL("INSERT INTO {} VALUES ('ab   ')").format(table))  # spaces past n: dropped
    assert read_back(pg, table, "value") == "ab "
    for text in ('"\\u0000"', '["\\ud800"]'):
        with pytest.raises(BadValue):
            RowConverter([TargetColumn("v", "jsonb")])((text,))
        with pytest.raises(psycopg.DataError):
            pg.execute("SELECT %s::jsonb", (text,))
        assert pg.execute("SELECT %s::json::text", (text,)).fetchone() == (text,)
        assert RowConverter([TargetColumn("v", "json")])((text,)) == (text,)
    accepted = '"\\\\u0000"'  # an escaped backslash before u0000
    assert RowConverter([TargetColumn("v", "jsonb")])((accepted,)) == (accepted,)
    assert pg.execute("SELECT %s::jsonb::text", (accepted,)).fetchone() == (accepted,)


# table_pairs --------------------------------------------------------------------------------------

TARGET_SCHEMA = """
CREATE TABLE "Tags" (id smallint PRIMARY KEY, "Label" text);
CREATE TABLE users (
    id serial PRIMARY KEY,
    email varchar(255) NOT NULL,
    legacy text,
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    pg_only text,
    doubled integer GENERATED ALWAYS AS (id * 2) STORED
);
ALTER TABLE users DROP COLUMN legacy;
CREATE TABLE posts (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    user_id integer NOT NULL REFERENCES users (id),
    tag_id smallint REFERENCES "Tags" (id),
    body text
);
CREATE TABLE memberships (
    user_id integer REFERENCES users (id), group_name text, PRIMARY KEY (user_id, group_name)
);
CREATE TABLE settings (key text PRIMARY KEY, value jsonb);
CREATE TABLE codes (code varchar(8) PRIMARY KEY, uses numeric NOT NULL);
CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);
CREATE SCHEMA shadow;
CREATE TABLE shadow.users (id text PRIMARY KEY);
"""

SOURCE_SCHEMA = """
CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);
CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, email VARCHAR(255), is_active BOOLEAN,
    created_at DATETIME);
CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users (id),
    tag_id INTEGER, body TEXT);
CREATE TABLE "Tags" (id INTEGER PRIMARY KEY, "Label" TEXT);
CREATE TABLE memberships (user_id INTEGER, group_name TEXT, PRIMARY KEY (user_id, group_name));
CREATE TABLE settings (key TEXT PRIMARY KEY, value JSON);
CREATE TABLE codes (code TEXT PRIMARY KEY, uses NUMERIC);
INSERT INTO users (email) VALUES ('a@x.test');
"""


@pytest.fixture(scope="module")
def schema(pg: psycopg.Connection, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pg.execute(TARGET_SCHEMA)
    path = tmp_path_factory.mktemp("pairs") / "app.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(SOURCE_SCHEMA)
    return path


def test_table_pairs_in_foreign_key_order_with_integer_keys(
    pg: psycopg.Connection, schema: Path
) -> None:
    pairs = table_pairs(open_source(str(schema)), pg)
    assert [(pair.schema, pair.name, pair.key) for pair in pairs] == [
        ("public", "Tags", "id"),
        ("public", "codes", None),  # text primary key: copied whole
        ("public", "settings", None),
        ("public", "users", "id"),  # public first, not shadow.users
        ("public", "memberships", None),  # two-column key
        ("public", "posts", "id"),  # after users and "Tags", which it references
    ]
    users = next(pair for pair in pairs if pair.name == "users")
    assert users == TablePair(
        name="users",
        schema="public",
        key="id",
        columns=(  # no dropped, generated or target-only column
            TargetColumn("id", "integer", False),
            TargetColumn("email", "character varying(255)", False),
            TargetColumn("is_active", "boolean", False),
            TargetColumn("created_at", "timestamp with time zone", False),
        ),
    )
    tags = pairs[0]
    assert tags.columns == (TargetColumn("id", "smallint", False), TargetColumn("Label", "text"))


def test_table_pairs_of_requested_tables(pg: psycopg.Connection, schema: Path) -> None:
    pairs = table_pairs(open_source(str(schema)), pg, ["posts", "Tags"])
    assert [pair.name for pair in pairs] == ["Tags", "posts"]
    with pytest.raises(HostsideError, match="table nope is not in the SQLite file"):
        table_pairs(open_source(str(schema)), pg, ["nope"])


def test_table_pairs_refuse_a_schema_that_is_not_the_apps(
    pg: psycopg.Connection, schema: Path, tmp_path: Path
) -> None:
    extra = tmp_path / "extra.db"
    with sqlite3.connect(extra) as conn:
        conn.executescript(SOURCE_SCHEMA + "ALTER TABLE posts ADD COLUMN draft BOOLEAN;")
    with pytest.raises(HostsideError, match="column draft of SQLite table posts is not in the"):
        table_pairs(open_source(str(extra)), pg, ["posts"])
    missing = tmp_path / "missing.db"
    with sqlite3.connect(missing) as conn:
        conn.execute("CREATE TABLE posts (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("CREATE TABLE comments (id INTEGER PRIMARY KEY)")
    with pytest.raises(HostsideError, match="target column posts.user_id is NOT NULL"):
        table_pairs(open_source(str(missing)), pg, ["posts"])
    with pytest.raises(HostsideError, match="table comments of the SQLite file is not in the"):
        table_pairs(open_source(str(missing)), pg, ["comments"])


@pytest.mark.slow
def test_webapp_conversion_scale(stack: dict, tmp_path: Path) -> None:
    """Scale: the benchmark's web-app database (tests/fixtures/webapp_db.py, 200k rows) paired
    with its Alembic-like target and every row converted; then the unique precheck. Printed as
    rows/s (the copier's and the precheck's conversion budget)."""
    import importlib.util
    import sys
    import time

    from turnout.hostside.sqlite_unique import check_unique

    spec = importlib.util.spec_from_file_location(
        "webapp_db", Path(__file__).resolve().parents[1] / "fixtures" / "webapp_db.py"
    )
    webapp_db = importlib.util.module_from_spec(spec)
    sys.modules["webapp_db"] = webapp_db
    spec.loader.exec_module(webapp_db)
    rows = 200_000
    path = tmp_path / "webapp.sqlite3"
    webapp_db.generate(path, rows)
    name = "turnout_types_web"
    with superuser(stack, "staging", "postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    try:
        with superuser(stack, "staging", name) as conn:
            webapp_db.load_target_schema(conn)
            source = open_source(str(path), immutable=True)
            pairs = table_pairs(source, conn)
            for fast in (False, True):
                started = time.process_time()
                converted = 0
                for pair in pairs:
                    convert = RowConverter(pair.columns, validate_json=not fast)
                    names = ", ".join(f'"{column.name}"' for column in pair.columns)
                    query = f'SELECT {names} FROM "{pair.name}" WHERE rowid > ? LIMIT 10000'
                    last = 0
                    while batch := (
                        fetch_rows(source, query, (last,))
                        if fast
                        else source.execute(query, (last,)).fetchall()
                    ):
                        converted += len(convert.many(batch))
                        last = batch[-1][0]
                elapsed = time.process_time() - started
                how = "fetch_rows, validate_json=False" if fast else "text factory, JSON parsed"
                print(f"\nread+convert ({how}): {converted / elapsed:,.0f} rows/s (CPU)")
            started = time.monotonic()
            report = check_unique(source, conn, pairs)
            elapsed = time.monotonic() - started
            print(f"unique precheck: {rows / elapsed:,.0f} rows/s, {report['checked']}")
            assert converted == rows and report["conflicts"] == []
    finally:
        with superuser(stack, "staging", "postgres") as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# (type, text) that PostgreSQL's own input reads: the converter must give the same value
AGREEMENT = [
    ("boolean", " Yes "),
    ("boolean", "OFF"),
    ("boolean", "t"),
    ("smallint", " -12 "),
    ("numeric(10,2)", "1.235"),
    ("numeric(10,2)", "-1.235"),
    ("numeric(10,2)", "1.2349"),
    ("numeric", "123.4500"),
    ("double precision", " 1.5e3 "),
    ("character(4)", "ab"),
    ("character(4)", "ab    "),
    ("character varying(3)", "ab    "),
    ("timestamp with time zone", "2024-05-01 12:00:00+02:00"),
    ("timestamp with time zone", "2024-05-01T10:00:00Z"),
    ("timestamp with time zone", "2024-05-01 10:00:00"),
    ("timestamp with time zone", "2024-05-01"),
    ("timestamp(3) with time zone", "2024-05-01 10:00:00.1235"),
    ("timestamp(0) without time zone", "2024-05-01 10:00:00.5"),
    ("timestamp without time zone", "2024-05-01T10:00:00.123456"),
    ("date", "2024-05-01"),
    ("time without time zone", "10:30:15.5"),
    ("time(0) without time zone", "10:30:15.5"),
    ("uuid", "{12345678-1234-5678-1234-56781234567A}"),
    ("uuid", "12345678123456781234567812345678"),
]


@pytest.mark.parametrize(("pg_type", "text"), AGREEMENT)
def test_converters_agree_with_postgresql_input(
    pg: psycopg.Connection, pg_type: str, text: str
) -> None:
    pg.execute("SET TimeZone = 'UTC'")  # the converters read a missing offset as UTC
    expected = pg.execute(sql.SQL("SELECT %s::{}").format(sql.SQL(pg_type)), (text,)).fetchone()[0]
    value = RowConverter([TargetColumn("v", pg_type)], lossy=True)((text,))[0]
    if pg_type == "uuid":
        expected = str(expected)
    assert value == expected


def test_an_offset_into_timestamp_without_time_zone_is_applied_unlike_postgresql(
    pg: psycopg.Connection,
) -> None:
    """The one documented departure: PostgreSQL drops the offset unapplied, the converter
    converts to UTC first (an app that wrote offsets meant those instants)."""
    text = "2024-05-01 12:00:00+02:00"
    dropped = pg.execute("SELECT %s::timestamp", (text,)).fetchone()[0]
    value = RowConverter([TargetColumn("v", "timestamp without time zone")])((text,))[0]
    assert dropped == datetime.datetime(2024, 5, 1, 12)
    assert value == datetime.datetime(2024, 5, 1, 10)
