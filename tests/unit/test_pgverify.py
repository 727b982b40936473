"""The verification's pure parts (canonical texts, chunks, sampling, the failure line) and its
SQLite side on real SQLite files; the pairs' agreement with PostgreSQL itself is tested in
tests/integration/test_sqlite_verify.py."""

import datetime
import doctest
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from turnout.hostside import pgverify
from turnout.hostside.base import HostsideError
from turnout.hostside.pgverify import (
    ColumnKind,
    RowRenderer,
    SourceSide,
    chunk_hash,
    chunk_range,
    column_kind,
    failure_line,
    json_text,
    numeric_text,
    open_snapshot,
    round_micros,
    sampled_chunks,
    verify_settings,
)
from turnout.hostside.sqlite_types import RowConverter, TablePair, TargetColumn

UTC = datetime.UTC


def test_the_docstring_examples_run() -> None:
    result = doctest.testmod(pgverify)
    assert result.attempted > 40 and result.failed == 0


@pytest.mark.parametrize(
    ("pg_type", "kind"),
    [
        ("smallint", ColumnKind("integer")),
        ("bigint", ColumnKind("integer")),
        ("boolean", ColumnKind("boolean")),
        ("double precision", ColumnKind("double")),
        ("real", ColumnKind("real")),
        ("numeric", ColumnKind("numeric")),
        ("numeric(10,2)", ColumnKind("numeric", 2)),
        ("numeric(5,-2)", ColumnKind("numeric", -2)),
        ("character varying(255)", ColumnKind("text")),
        ("character varying", ColumnKind("text")),
        ("character(3)", ColumnKind("char")),
        ("text", ColumnKind("text")),
        ("uuid", ColumnKind("uuid")),
        ("timestamp with time zone", ColumnKind("timestamptz")),
        ("timestamp(3) with time zone", ColumnKind("timestamptz", 3)),
        ("timestamp without time zone", ColumnKind("timestamp")),
        ("timestamp(0) without time zone", ColumnKind("timestamp", 0)),
        ("date", ColumnKind("date")),
        ("time without time zone", ColumnKind("time")),
        ("time(2) without time zone", ColumnKind("time", 2)),
        ("time with time zone", ColumnKind("other")),
        ("interval", ColumnKind("other")),
        ("json", ColumnKind("json")),
        ("jsonb", ColumnKind("jsonb")),
        ("bytea", ColumnKind("bytea")),
        ("inet", ColumnKind("other")),
        ("text[]", ColumnKind("other")),
    ],
)
def test_column_kinds_follow_format_type(pg_type: str, kind: ColumnKind) -> None:
    assert column_kind(pg_type) == kind


@pytest.mark.parametrize(
    ("value", "scale", "text"),
    [
        (Decimal("1.50"), 2, "1.5"),
        (Decimal("1.505"), 2, "1.51"),
        (Decimal("-1.505"), 2, "-1.51"),  # half away from zero, as PostgreSQL
        (Decimal("-0.00"), 2, "0"),
        (Decimal("1E+2"), None, "100"),
        (Decimal("0E-7"), None, "0"),
        (Decimal("1E-20"), None, "0.00000000000000000001"),
        (Decimal("1E+30"), 2, "1000000000000000000000000000000"),
        (Decimal("125"), -1, "130"),
        (Decimal("NaN"), None, "NaN"),
        (Decimal("-Infinity"), None, "-Infinity"),
        (7, None, "7"),
    ],
)
def test_numeric_text_is_trim_scale(value: object, scale: int | None, text: str) -> None:
    assert numeric_text(value, scale) == text


@pytest.mark.parametrize(
    ("source", "text"),
    [
        ('{"b": 1, "a": 2}', '{"a": 2, "b": 1}'),
        ('{"bb": 1, "c": 2, "aaa": 3}', '{"c": 2, "bb": 1, "aaa": 3}'),  # length, then bytes
        ('{"é": 1, "z": 2, "ab": 3}', '{"z": 2, "ab": 3, "é": 1}'),  # é is 2 bytes
        ('{"a": 1, "a": 2}', '{"a": 2}'),  # the last duplicate wins
        ("[1.0, 1e2, 1.50e1, -0.0, -0, 1E-2, 0.1]", "[1.0, 100, 15.0, 0.0, 0, 0.01, 0.1]"),
        ('"\\u00e9\\t\\u001f/"', '"é\\t\\u001f/"'),
        ("  null ", "null"),
        ("{}", "{}"),
        ('{"a": []}', '{"a": []}'),
        ("12345678901234567890123", "12345678901234567890123"),
        ("0.30000000000000004", "0.30000000000000004"),
        ("3.14159265358979323846", "3.14159265358979323846"),  # not a float's repr
    ],
)
def test_json_text_renders_as_jsonb_prints(source: str, text: str) -> None:
    assert json_text(source) == text


def test_json_columns_with_a_nul_escape_compare_as_written() -> None:
    assert pgverify.json_column_text('{"a": "\\u0000"}') == 'R15:{"a": "\\u0000"}'
    assert pgverify.json_column_text('{"b": 1, "a": 2}') == '{"a": 2, "b": 1}'


def test_round_micros_rounds_half_away_from_zero() -> None:
    assert round_micros(1_234_500, 3) == 1_235_000
    assert round_micros(1_234_499, 3) == 1_234_000
    assert round_micros(-500, 3) == -1000
    assert round_micros(-499, 3) == 0
    assert round_micros(123, None) == 123
    assert round_micros(500_000, 0) == 1_000_000


def test_temporal_texts_are_independent_of_the_offset() -> None:
    moment = datetime.datetime(2024, 3, 31, 1, 30, tzinfo=UTC)
    paris = moment.astimezone(datetime.timezone(datetime.timedelta(hours=2)))
    assert pgverify.timestamptz_text(moment) == pgverify.timestamptz_text(paris)
    assert pgverify.timestamptz_text(moment) == pgverify.timestamptz_text(
        moment.replace(tzinfo=None)
    )
    assert pgverify.timestamp_text(datetime.datetime(2000, 1, 1, 0, 0, 0, 1)) == "0000000000000001"
    assert pgverify.date_text(datetime.date(1999, 12, 31)) == "ffffffff"


def test_row_texts_are_unambiguous() -> None:
    render = RowRenderer([TargetColumn("a", "text"), TargetColumn("b", "text")])
    texts = [
        render(row) for row in [("a", "bc"), ("ab", "c"), ("", None), (None, ""), ("\\N", None)]
    ]
    assert len(set(texts)) == len(texts)
    assert chunk_hash(["1,a", "2,b"]) != chunk_hash(["2,b", "1,a"])


def test_chunks_are_floor_divisions_with_inclusive_ranges() -> None:
    for key in (-21, -20, -11, -10, -1, 0, 9, 10, 19):
        lo, hi = chunk_range(key // 10, 10)
        assert lo <= key <= hi and hi - lo == 9


def test_sampled_chunks_are_a_deterministic_share() -> None:
    chunks = list(range(200))
    first = sampled_chunks("users", chunks, 0.05)
    assert first == sampled_chunks("users", reversed(chunks), 0.05) and len(first) == 10
    assert sampled_chunks("meters", chunks, 0.05) != first  # each table its own chunks
    assert len(sampled_chunks("users", [3], 0.01)) == 1  # at least one
    assert sampled_chunks("users", [], 0.5) == []
    assert len(sampled_chunks("users", chunks, 1.0)) == 200


def test_settings_are_checked() -> None:
    assert (
        verify_settings({})["sample"] is None and verify_settings({"sample": 1})["sample"] is None
    )
    for bad in (
        {"sample": 0},
        {"sample": 2},
        {"sample": "0.1"},
        {"sample": True},
        {"chunk_rows": 0},
        {"max_keys": -1},
        {"tables": "users"},
    ):
        with pytest.raises(HostsideError):
            verify_settings(bad)


def test_the_failure_line_names_the_first_table_kind_and_keys() -> None:
    answer = {
        "tables": [
            {"name": "ok", "matched": True},
            {
                "name": "users",
                "matched": False,
                "rows_different": 1,
                "rows_missing": 25,
                "rows_extra": 0,
                "source_rows": 10,
                "target_rows": 9,
                "differences": [
                    {"range": [40, 49], "missing": [41], "extra": [], "different": [42]},
                    {"range": [50, 59], "missing": [50, 51], "extra": [], "different": []},
                ],
            },
            {"name": "other", "matched": False},
        ]
    }
    assert failure_line(answer, "/e/v.json") == (
        "verification failed: users: 1 row differs (key 42), 25 rows missing in the target "
        "(keys 41, 50, 51, …) (and 1 more tables differ); report: /e/v.json"
    )


# The SQLite side on real files -------------------------------------------------------------------

COLUMNS = (
    TargetColumn("id", "bigint", False),
    TargetColumn("name", "text"),
    TargetColumn("seen", "timestamp with time zone"),
)
PAIR = TablePair("people", "public", "id", COLUMNS)


def make_file(tmp_path: Path, rows: list[tuple], key_type: str = "INTEGER") -> str:
    path = tmp_path / "src.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"CREATE TABLE people (id {key_type} PRIMARY KEY, name TEXT, seen TEXT)")
        conn.executemany("INSERT INTO people VALUES (?, ?, ?)", rows)
    conn.close()
    return str(path)


def expected_chunks(rows: list[tuple], width: int) -> dict:
    """The chunk hashes computed the plain way: convert, sort by key, group, hash."""
    convert, render = RowConverter(COLUMNS), RowRenderer(COLUMNS)
    converted = sorted(map(convert, rows), key=lambda row: row[0])
    grouped: dict[int, list[str]] = {}
    for row in converted:
        grouped.setdefault(row[0] // width, []).append(render(row))
    return {chunk: (len(texts), chunk_hash(texts)) for chunk, texts in grouped.items()}


def side(path: str, width: int) -> SourceSide:
    return SourceSide(open_snapshot(path), PAIR, RowConverter(COLUMNS), RowRenderer(COLUMNS), width)


def test_the_source_side_hashes_chunks_in_key_order(tmp_path: Path) -> None:
    rows = [(i, f"n{i}", f"2024-01-01 00:00:{i % 60:02d}") for i in (-12, -1, 0, 3, 9, 10, 25, 7)]
    source = side(make_file(tmp_path, rows), 10)
    assert source.chunks(None) == expected_chunks(rows, 10)
    assert source.rows_read == len(rows)
    assert source.chunks([0, 2]) == {
        c: h for c, h in expected_chunks(rows, 10).items() if c in (0, 2)
    }
    assert source.chunk_ids() == {-2, -1, 0, 1, 2}
    assert source.row_hashes(0, 9).keys() == {0, 3, 7, 9}


def test_keys_stored_as_text_fall_back_to_sorting_in_memory(tmp_path: Path) -> None:
    # a key column without a type keeps '3' and ' 12' as text, which SQLite sorts after 20
    rows = [(5, "a", None), (" 12", "b", None), ("3", "c", None), (20, "d", None)]
    source = side(make_file(tmp_path, rows, key_type=""), 10)
    assert not source.keys_stored_as_integers()
    with pytest.raises(pgverify.Unordered):
        source.ordered_chunks(pgverify.sqlite_select(PAIR))
    assert source.chunks(None) == expected_chunks(rows, 10)
    assert source.chunks([1]) == {1: expected_chunks(rows, 10)[1]}
    assert source.row_hashes(10, 19).keys() == {12}
    assert source.row_hashes(0, 9).keys() == {3, 5}


def test_rows_of_a_table_without_a_key_are_located_by_rowid_or_position(tmp_path: Path) -> None:
    path = tmp_path / "tags.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE tags (a INTEGER, b TEXT, PRIMARY KEY (a, b))")
        conn.execute("CREATE TABLE pairs (a INTEGER, b TEXT, PRIMARY KEY (a, b)) WITHOUT ROWID")
        for table in ("tags", "pairs"):
            conn.executemany(f"INSERT INTO {table} VALUES (?, ?)", [(2, "x"), (1, "y")])
    conn.close()
    columns = (TargetColumn("a", "integer", False), TargetColumn("b", "text", False))
    render = RowRenderer(columns)
    for table, with_rowid, places in (("tags", True, [1, 2]), ("pairs", False, [1, 2])):
        pair = TablePair(table, "public", None, columns)
        source = SourceSide(open_snapshot(str(path)), pair, RowConverter(columns), render, 10)
        assert pgverify.sqlite_has_rowid(source.conn, table) is with_rowid
        located = source.located_hashes(with_rowid)
        assert [place for place, _ in located] == places
        assert sorted(digest for _, digest in located) == sorted(
            pgverify.md5_hex(render(row)) for row in [(2, "x"), (1, "y")]
        )


def test_a_value_that_does_not_convert_is_named_without_its_value(tmp_path: Path) -> None:
    rows = [(1, "a", "2024-01-01"), (2, "b", "secret-ish garbage")]
    source = side(make_file(tmp_path, rows), 10)
    with pytest.raises(HostsideError) as error:
        source.chunks(None)
    message = str(error.value)
    assert "people: the row with key 2 does not convert (column seen:" in message
    assert "garbage" not in message
