"""The converters of SQLite's loose values (RELIABILITY 17): each documented conversion, each bad
value reported with its column, lossy forms counted; values read from real SQLite files."""

import datetime
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from turnout.hostside.base import HostsideError
from turnout.hostside.sqlite_types import (
    BadValue,
    RowConverter,
    TargetColumn,
    decode_text,
    fetch_rows,
    foreign_key_order,
    open_source,
    sqlite_columns,
    sqlite_tables,
)

UTC = datetime.UTC


def one(pg_type: str, value: object, nullable: bool = True, lossy: bool = False) -> object:
    """``value`` converted for a column ``c`` of ``pg_type``."""
    return RowConverter([TargetColumn("c", pg_type, nullable)], lossy=lossy)((value,))[0]


def bad(pg_type: str, value: object, reason: str, nullable: bool = True) -> BadValue:
    """The BadValue ``value`` raises in a column ``c`` of ``pg_type`` (its reason checked)."""
    with pytest.raises(BadValue) as caught:
        one(pg_type, value, nullable)
    assert caught.value.column == "c"
    assert reason in caught.value.reason
    assert str(caught.value).startswith("column c: ")
    return caught.value


def lossy(pg_type: str, value: object, nullable: bool = True) -> tuple[object, dict]:
    convert = RowConverter([TargetColumn("c", pg_type, nullable)], lossy=True)
    return convert((value,))[0], convert.lossy_counts


@pytest.fixture
def dirty_file(tmp_path: Path) -> Path:
    """A real SQLite file with the values SQLite's loose typing lets an app store."""
    path = tmp_path / "odd name #1?.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, s TEXT, b BLOB, j JSON, k);
            INSERT INTO t VALUES (1, '12', CAST(X'636166E9' AS TEXT), X'00FF', '{"a": 1}', ' 7 ');
            INSERT INTO t VALUES (2, 'twelve', 'a' || char(0) || 'b', 'text', 5, 'x');
            INSERT INTO t VALUES (3, ' 7 ', 'ok', X'6869', 'not json', 7.0);
            CREATE TABLE alembic_version (version_num TEXT);
            CREATE TABLE "Mixed Case" (id INTEGER PRIMARY KEY AUTOINCREMENT, "Odd Col" TEXT);
            CREATE VIRTUAL TABLE notes USING fts5(body);
            """
        )
    return path


# open_source --------------------------------------------------------------------------------------


def test_open_source_is_read_only_and_keeps_invalid_utf8(dirty_file: Path) -> None:
    conn = open_source(str(dirty_file))
    rows = conn.execute("SELECT id, n, s, b, j, k FROM t ORDER BY id").fetchall()
    assert rows[0] == (1, 12, "caf\udce9", b"\x00\xff", '{"a": 1}', " 7 ")
    assert rows[1][1:3] == ("twelve", "a\x00b") and rows[1][4] == 5
    assert rows[2][1] == 7  # SQLite's INTEGER affinity converted ' 7 ' itself
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("INSERT INTO t (n) VALUES (1)")
    assert sqlite_tables(conn) == ["Mixed Case", "t"]  # no sqlite_sequence, FTS, alembic_version
    assert sqlite_columns(conn, "Mixed Case") == ["id", "Odd Col"]
    immutable = open_source(str(dirty_file), immutable=True)
    assert immutable.execute("SELECT count(*) FROM t").fetchone() == (3,)


def test_open_source_refuses_a_missing_or_foreign_file(tmp_path: Path) -> None:
    with pytest.raises(HostsideError, match="cannot read SQLite file"):
        open_source(str(tmp_path / "none.db"))
    other = tmp_path / "notes.txt"
    other.write_text("hello, this is not a database at all")
    with pytest.raises(HostsideError, match="not an SQLite database"):
        open_source(str(other))


def test_the_dirty_rows_convert_or_name_their_column(dirty_file: Path) -> None:
    columns = [
        TargetColumn("id", "integer", False),
        TargetColumn("n", "integer"),
        TargetColumn("s", "text"),
        TargetColumn("b", "bytea"),
        TargetColumn("j", "jsonb"),
        TargetColumn("k", "integer"),  # declared without a type in SQLite: no affinity
    ]
    rows = open_source(str(dirty_file)).execute("SELECT * FROM t ORDER BY id").fetchall()
    strict = RowConverter(columns)
    problems = []
    for row in rows:
        try:
            strict(row)
        except BadValue as error:
            problems.append((row[0], error.column, error.reason))
    assert problems == [
        (1, "s", "invalid UTF-8"),
        (2, "n", "not an integer"),
        (3, "j", "invalid JSON"),
    ]
    loose = RowConverter(columns, lossy=True)
    assert loose(rows[0]) == (1, 12, "caf\ufffd", b"\x00\xff", '{"a": 1}', 7)
    assert loose(rows[2]) == (3, 7, "ok", b"hi", None, 7)
    with pytest.raises(BadValue, match="column n: not an integer"):
        loose(rows[1])  # no lossy form for an integer
    assert loose.lossy_counts == {("s", "invalid UTF-8"): 1, ("j", "invalid JSON"): 1}


# integers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5, 5),
        (5.0, 5),
        ("12", 12),
        (" -12 ", -12),
        ("12.0", 12),
        ("1.2e1", 12),
        (2**63 - 1, 2**63 - 1),
    ],
)
def test_integers_convert(value: object, expected: int) -> None:
    assert one("bigint", value) == expected
    assert type(one("bigint", value)) is int


@pytest.mark.parametrize("value", ["twelve", 1.5, "1.5", "1_000", "", b"\x01", "0x10", "true"])
def test_non_integers_are_bad(value: object) -> None:
    bad("integer", value, "not an integer")


def test_integers_out_of_range_are_bad() -> None:
    assert one("smallint", 32767) == 32767
    bad("smallint", 32768, "out of range for smallint")
    bad("integer", "-2147483649", "out of range for integer")
    assert one("integer", -(2**31)) == -(2**31)


# booleans -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["1", "t", "T", "true", "TRUE", " yes ", "y", "on", "On"])
def test_true_words(word: str) -> None:
    assert one("boolean", word) is True


@pytest.mark.parametrize("word", ["0", "f", "False", "no", "N", "off "])
def test_false_words(word: str) -> None:
    assert one("boolean", word) is False


def test_boolean_numbers_and_bad_values() -> None:
    assert one("boolean", 1) is True and one("boolean", 0) is False
    assert one("boolean", 1.0) is True and one("boolean", True) is True
    for value in (2, -1, "maybe", "", 0.5, b"1"):
        bad("boolean", value, "not a boolean")


# floats and numeric ------------------------------------------------------------------------------


def test_floats() -> None:
    assert one("double precision", 3) == 3.0 and type(one("double precision", 3)) is float
    assert one("double precision", " 1.5e3 ") == 1500.0
    assert one("real", "-0.25") == -0.25
    assert one("double precision", "Infinity") == float("inf")
    bad("double precision", "1,5", "not a number")
    bad("real", 1e39, "out of range for real")
    bad("double precision", b"1", "not a number")


def test_numeric_is_decimal_rounded_as_postgresql_rounds() -> None:
    assert one("numeric(10,2)", "19.99") == Decimal("19.99")
    assert one("numeric(10,2)", 0.1) == Decimal("0.10")
    assert one("numeric(10,2)", 7) == Decimal("7.00")
    assert one("numeric", "1e-20") == Decimal("1e-20")
    bad("numeric(10,2)", 1.234, "more than 2 decimals")
    assert lossy("numeric(10,2)", "1.235") == (
        Decimal("1.24"),
        {("c", "more than 2 decimals"): 1},
    )
    assert lossy("numeric(10,2)", "-1.235")[0] == Decimal("-1.24")  # half away from zero
    bad("numeric(5,2)", "1000", "too many digits for numeric(5,2)")
    assert one("numeric(5,2)", "999.99") == Decimal("999.99")
    bad("numeric(5,2)", "999.999", "too many digits")  # rounds to 1000.00
    bad("numeric", "abc", "not a number")


# timestamps, dates, times -------------------------------------------------------------------------

INSTANT = datetime.datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        "2024-05-01 10:00:00",  # CURRENT_TIMESTAMP's format
        "2024-05-01T10:00:00",
        "2024-05-01T10:00:00Z",
        "2024-05-01 12:00:00+02:00",
        "2024-05-01T05:00:00.000-05:00",
        " 2024-05-01 10:00 ",
        1714557600,  # epoch seconds
        1714557600.0,
        "1714557600",
        1714557600000,  # epoch milliseconds (>= 1e11)
    ],
)
def test_timestamptz_readings_of_one_instant(value: object) -> None:
    assert one("timestamp with time zone", value) == INSTANT
    assert one("timestamp with time zone", value).tzinfo is UTC


def test_timestamp_without_time_zone_is_naive_utc() -> None:
    naive = datetime.datetime(2024, 5, 1, 10, 0)
    assert one("timestamp without time zone", "2024-05-01 10:00:00") == naive
    assert one("timestamp without time zone", "2024-05-01T12:00:00+02:00") == naive
    assert one("timestamp without time zone", 1714557600) == naive
    assert one("timestamp without time zone", "2024-05-01") == datetime.datetime(2024, 5, 1)


def test_timestamp_fractions_and_epoch_rule() -> None:
    moment = one("timestamp with time zone", "2024-05-01 10:00:00.123456")
    assert moment.microsecond == 123456
    assert one("timestamp(3) with time zone", "2024-05-01 10:00:00.1235").microsecond == 124000
    assert one("timestamp with time zone", 1714557600123).microsecond == 123000
    # below 1e11 an epoch number is seconds: milliseconds before March 1973 read as seconds
    assert one("timestamp with time zone", 99_999_999_999).year == 5138
    assert one("timestamp with time zone", 100_000_000_000).year == 1973


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01", "01/05/2024", "", b"x", "infinity"])
def test_bad_timestamps(value: object) -> None:
    bad("timestamp with time zone", value, "not a timestamp")


def test_dates() -> None:
    assert one("date", "2024-05-01") == datetime.date(2024, 5, 1)
    assert one("date", "2024-05-01 00:00:00") == datetime.date(2024, 5, 1)
    assert one("date", 1714521600) == datetime.date(2024, 5, 1)
    bad("date", "2024-05-01 10:00:00", "has a time of day")
    assert lossy("date", "2024-05-01 10:00:00") == (
        datetime.date(2024, 5, 1),
        {("c", "has a time of day"): 1},
    )
    bad("date", "May 1st", "not a date")


def test_times() -> None:
    assert one("time without time zone", "10:30") == datetime.time(10, 30)
    assert one("time without time zone", "10:30:15.5") == datetime.time(10, 30, 15, 500000)
    assert one("time(0) without time zone", "10:30:15.5") == datetime.time(10, 30, 16)
    bad("time without time zone", "25:00", "not a time")
    bad("time without time zone", 36000, "not a time")


# text ---------------------------------------------------------------------------------------------


def test_text_conversions() -> None:
    assert one("text", "plain") == "plain"
    assert one("text", "café ☕") == "café ☕"
    assert one("text", 12) == "12" and one("text", 1.5) == "1.5"
    assert one("text", b"ok") == "ok"
    assert one("text", "é".encode()) == "é"
    bad("text", b"\xff\xfe", "invalid UTF-8")
    bad("text", "caf\udce9", "invalid UTF-8")
    bad("text", "a\x00b", "NUL byte")


def test_text_lossy_forms_are_counted_per_column_and_reason() -> None:
    convert = RowConverter([TargetColumn("a", "text"), TargetColumn("b", "text")], lossy=True)
    assert convert(("a\x00b", "caf\udce9")) == ("ab", "caf\ufffd")
    assert convert(("x\x00", b"\xff")) == ("x", "\ufffd")
    assert convert.lossy_counts == {("a", "NUL byte"): 2, ("b", "invalid UTF-8"): 2}


def test_varchar_and_char_lengths() -> None:
    assert one("character varying(3)", "abc") == "abc"
    assert one("character varying(3)", "ab     ") == "ab "  # spaces past n dropped, as PG
    bad("character varying(3)", "abcd", "longer than 3 characters")
    assert lossy("character varying(3)", "abcd") == ("abc", {("c", "longer than 3 characters"): 1})
    assert one("character varying", "x" * 5000) == "x" * 5000
    assert one("character(3)", "ab") == "ab "  # padded as PostgreSQL stores it
    assert one("character(3)", "ab ") == "ab "
    bad("character(2)", "abc", "longer than 2 characters")
    assert one("character varying(2)", "éé") == "éé"  # characters, not bytes


# bytea, json, uuid --------------------------------------------------------------------------------


def test_bytea() -> None:
    assert one("bytea", b"\x00\xff") == b"\x00\xff"
    assert one("bytea", "hé") == "hé".encode()
    assert one("bytea", "caf\udce9") == b"caf\xe9"  # the file's own bytes
    bad("bytea", 12, "a number in a bytea column")


def test_json_and_jsonb() -> None:
    assert one("jsonb", '{"b": 1,  "a": [true, null]}') == '{"b": 1,  "a": [true, null]}'
    assert one("json", 5) == "5" and one("jsonb", 1.5) == "1.5"
    assert one("jsonb", b'"x"') == '"x"'
    assert one("json", '"\\u0000"') == '"\\u0000"'  # json keeps its text
    bad("jsonb", '"\\u0000"', "\\u0000 in jsonb")
    bad("jsonb", '{"k\\u0000": 1}', "\\u0000 in jsonb")
    assert one("jsonb", '"\\\\u0000"') == '"\\\\u0000"'  # an escaped backslash, then u0000
    bad("jsonb", '["\\ud800"]', "lone surrogate escape in jsonb")
    assert one("json", '["\\ud800"]') == '["\\ud800"]'  # json keeps its text
    assert one("jsonb", '"\\ud83d\\ude00"') == '"\\ud83d\\ude00"'  # a pair is fine
    bad("jsonb", "{'a': 1}", "invalid JSON")
    bad("json", "NaN", "invalid JSON")
    bad("jsonb", '{"a": Infinity}', "invalid JSON")
    assert lossy("jsonb", "nope") == (None, {("c", "invalid JSON"): 1})
    with pytest.raises(BadValue, match="column c: invalid JSON"):
        lossy("jsonb", "nope", nullable=False)  # no NULL allowed: no lossy form


def test_json_left_to_postgresql_when_asked() -> None:
    columns = [TargetColumn("j", "jsonb", False)]
    trusting = RowConverter(columns, validate_json=False)
    assert trusting(("{not json",)) == ("{not json",)  # PostgreSQL's COPY will refuse it
    assert trusting(('{"é": 1}',)) == ('{"é": 1}',)
    with pytest.raises(BadValue, match="column j: NUL byte"):
        trusting(("{}\x00",))  # text checks stay
    with pytest.raises(BadValue, match="column j: NULL in a NOT NULL column"):
        trusting((None,))
    with pytest.raises(BadValue, match="column j: invalid JSON"):
        RowConverter(columns)(("{not json",))  # the default validates
    lossy = RowConverter([TargetColumn("j", "jsonb")], lossy=True, validate_json=False)
    assert lossy(("{not json",)) == (None,)  # lossy forms need the parse: validated anyway


def test_fetch_rows_reads_fast_and_falls_back_on_invalid_utf8(dirty_file: Path) -> None:
    conn = open_source(str(dirty_file))
    query = "SELECT id, s FROM t WHERE id >= ? ORDER BY id"
    assert fetch_rows(conn, query, (2,)) == [(2, "a\x00b"), (3, "ok")]
    assert fetch_rows(conn, query, (1,))[0] == (1, "caf\udce9")
    assert conn.text_factory is decode_text  # left as open_source set it
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        fetch_rows(conn, "SELECT * FROM nope")


def test_uuid() -> None:
    canonical = "12345678-1234-5678-1234-567812345678"
    assert one("uuid", "12345678-1234-5678-1234-567812345678") == canonical
    assert one("uuid", "{12345678-1234-5678-1234-567812345678}") == canonical
    assert one("uuid", "12345678123456781234567812345678".upper()) == canonical
    assert one("uuid", bytes.fromhex("12345678123456781234567812345678")) == canonical
    bad("uuid", "urn:uuid:12345678-1234-5678-1234-567812345678", "not a UUID")
    bad("uuid", "1234", "not a UUID")


def test_other_types_pass_as_clean_text() -> None:
    assert one("inet", "10.0.0.1") == "10.0.0.1"
    assert one("interval", 5) == "5"
    bad("inet", "a\x00", "NUL byte")


# NULL, BadValue -----------------------------------------------------------------------------------


def test_nulls() -> None:
    for pg_type in (
        "integer",
        "boolean",
        "text",
        "character(2)",
        "jsonb",
        "timestamp with time zone",
    ):
        assert one(pg_type, None) is None
        bad(pg_type, None, "NULL in a NOT NULL column", nullable=False)
    with pytest.raises(BadValue):
        lossy("text", None, nullable=False)


def test_huge_and_deep_values_are_reported_not_crashing() -> None:
    bad("bigint", "9" * 5000, "not an integer")
    bad("bigint", "1e999999999", "not an integer")
    bad("numeric(10,2)", "1e999999999", "too many digits")
    bad("numeric", "1e999999999", "out of range for numeric")
    bad("double precision", "1e999", "out of range")
    bad("timestamp with time zone", 10**30, "not a timestamp")
    bad("timestamp with time zone", -9 * 10**10, "not a timestamp")  # before year 1
    bad("jsonb", "[" * 100_000 + "]" * 100_000, "JSON nested too deeply")


def test_the_module_examples_run() -> None:
    import doctest

    from turnout.hostside import sqlite_types, sqlite_unique

    assert doctest.testmod(sqlite_types).failed == 0
    assert doctest.testmod(sqlite_unique).failed == 0


def test_bad_value_is_one_short_line() -> None:
    error = bad("integer", "x" * 500 + "\nsecond line", "not an integer")
    assert "\n" not in str(error)
    assert len(str(error)) < 100
    assert str(error).startswith("column c: not an integer ('xxx")


def test_a_row_converts_column_by_column() -> None:
    columns = [
        TargetColumn("id", "bigint", False),
        TargetColumn("email", "character varying(255)"),
        TargetColumn("active", "boolean"),
        TargetColumn("created_at", "timestamp with time zone"),
    ]
    convert = RowConverter(columns)
    assert convert((1, "a@x.test", 1, "2024-05-01 10:00:00")) == (1, "a@x.test", True, INSTANT)
    with pytest.raises(BadValue, match="column active: not a boolean"):
        convert((2, "b@x.test", "sometimes", None))


# the pairing helpers ------------------------------------------------------------------------------


def test_foreign_key_order() -> None:
    names = {1: "users", 2: "posts", 3: "comments", 4: "audit"}
    refs = [(3, 2), (3, 1), (2, 1), (1, 1)]  # a self-reference does not block
    assert foreign_key_order(names, refs) == [4, 1, 2, 3]
    cycle = {1: "b", 2: "a", 3: "c"}
    assert foreign_key_order(cycle, [(1, 2), (2, 1)]) == [3, 2, 1]
