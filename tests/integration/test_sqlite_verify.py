"""The verification of an SQLite → PostgreSQL copy (issue 10 item 5, RELIABILITY 18) on a real
PostgreSQL and real SQLite files: each type's canonical pair (Python text of the converted value,
SQL text of the stored column) agrees byte for byte on tricky values; the ``sqlite_verify``
action, run as shipped, matches an identical copy and finds a planted same-key-different-content
row, a deleted row, an extra row, a different count, a difference in a sampled chunk, a changed
row of a table without an integer key, and works on a quoted mixed-case table name.

The target is loaded here with the converters' own values (``RowConverter``) by COPY, as the
copy does; this module owns the database ``turnout_verify`` on the stack's staging cluster.
"""

import datetime
import json
import math
import os
import shutil
import sqlite3
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from conftest import STACK_DIR, superuser
from psycopg import sql

from turnout.hostside import pgverify
from turnout.hostside.sqlite_types import RowConverter, TargetColumn, open_source, table_pairs
from turnout.remote import hostside_command, parse_hostside_output

DB = "turnout_verify"
ENV = "TV_TARGET"
UTC = datetime.UTC
ROOT = STACK_DIR / "verify_test"

# The app's SQLite schema and the target's (as the app's Alembic would make it).
SQLITE_SCHEMA = """
CREATE TABLE users (
    id INTEGER PRIMARY KEY, email TEXT NOT NULL, active TEXT, score REAL, balance TEXT,
    created_at TEXT, profile TEXT, avatar BLOB
);
CREATE TABLE "Odd Table" (id INTEGER PRIMARY KEY, "Mixed Col" TEXT);
CREATE TABLE tags (user_id INTEGER NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (user_id, tag));
"""
TARGET_SCHEMA = """
CREATE TABLE users (
    id bigint PRIMARY KEY, email varchar(255) NOT NULL, active boolean, score double precision,
    balance numeric(10,2), created_at timestamptz, profile jsonb, avatar bytea
);
CREATE TABLE "Odd Table" (id integer PRIMARY KEY, "Mixed Col" text);
CREATE TABLE tags (user_id integer NOT NULL, tag text NOT NULL, PRIMARY KEY (user_id, tag));
"""
USERS = 95  # keys 1..95: chunks of 10 keys → 10 chunks (0 holds 1..9)


def user_row(i: int) -> tuple:
    """A row as the app wrote it: loose SQLite values the converters read."""
    return (
        i,
        f"user{i}@example.test",
        ("yes", "no", "t", "0")[i % 4],
        i * 0.1,
        f"{i}.{i % 100:02d}",
        f"2024-03-{1 + i % 28:02d}T{i % 24:02d}:30:00.{i:06d}Z",
        json.dumps({"n": i, "tags": ["a", "b"], "ratio": i / 7, "ok": i % 2 == 0}),
        bytes([i % 256, 0, 255]),
    )


@pytest.fixture(scope="module")
def vdb(stack: dict):
    """The target database (app-owned, DSN in a 0600 env file) and the SQLite source file."""
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    with superuser(stack, "staging", "postgres") as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB} OWNER app")
    password = (STACK_DIR / "secrets" / "pg_staging_app").read_text().strip()
    port = stack["pg"]["staging"]["port"]
    url = f"postgresql://app:{quote(password, safe='')}@127.0.0.1:{port}/{DB}"
    env_file = ROOT / "verify.env"
    env_file.touch(mode=0o600)
    env_file.write_text(f"{ENV}={url}\n")
    source = ROOT / "app.db"
    with sqlite3.connect(source) as lite:
        lite.executescript(SQLITE_SCHEMA)
        lite.executemany(
            "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?, ?)", map(user_row, range(1, USERS + 1))
        )
        lite.executemany(
            'INSERT INTO "Odd Table" VALUES (?, ?)',
            [(i, f"odd {i}") for i in [-15, *range(0, 31)]],  # keys -15 and 0..30: 5 chunks
        )
        lite.executemany("INSERT INTO tags VALUES (?, ?)", [(i % 7, f"tag{i}") for i in range(40)])
    lite.close()
    target = psycopg.connect(url, autocommit=True)
    target.execute(TARGET_SCHEMA)
    info = {"stack": stack, "env_file": str(env_file), "source": str(source), "conn": target}
    yield info
    target.close()
    with superuser(stack, "staging", "postgres") as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    shutil.rmtree(ROOT, ignore_errors=True)


def load_target(vdb: dict, lossy: bool = False) -> None:
    """Empty the target's tables and load them with the converters' values, by COPY (the way
    the copy loads them; the real copier is not what this module tests)."""
    conn = vdb["conn"]
    source = open_source(vdb["source"])
    try:
        for pair in table_pairs(source, conn):
            table = sql.Identifier(pair.schema, pair.name)
            names = [column.name for column in pair.columns]
            conn.execute(sql.SQL("TRUNCATE {}").format(table))
            convert = RowConverter(pair.columns, lossy=lossy)
            select = pgverify.sqlite_select(pair)
            copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
                table, sql.SQL(", ").join(map(sql.Identifier, names))
            )
            with conn.cursor().copy(copy_sql) as copy:
                for raw in source.execute(select):
                    copy.write_row(convert(raw))
    finally:
        source.close()


def verify(vdb: dict, **params) -> tuple[subprocess.CompletedProcess, dict, dict | None]:
    """The shipped program runs ``sqlite_verify`` on the "host" (DSN from the env file only):
    the process, its answer, and the report it wrote."""
    report = ROOT / f"report-{time.monotonic_ns()}.json"
    params = {
        "sqlite_path": vdb["source"],
        "dsn_env": ENV,
        "env_file": vdb["env_file"],
        "chunk_rows": 10,
        "report_path": str(report),
        "log_path": str(ROOT / "verify.log"),
        **params,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TV_", "PG", "DATABASE"))}
    command = hostside_command("sqlite_verify", params, python=vdb["stack"]["python"])
    result = subprocess.run(
        ["sh", "-c", command.get_raw_value()],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    written = json.loads(report.read_text()) if report.exists() else None
    return result, parse_hostside_output(result.stdout.splitlines()), written


def table(report: dict, name: str) -> dict:
    return next(item for item in report["tables"] if item["name"] == name)


# The canonical pairs on real PostgreSQL ----------------------------------------------------------

# (type, converted values as the copy loads them); None is in every column.
TRICKY = [
    ("smallint", [-32768, 32767, 0]),
    ("bigint", [-(2**63), 2**63 - 1]),
    ("boolean", [True, False]),
    ("double precision", [0.1 + 0.2, 1e300, -0.0, 0.0, math.nan, math.inf, -math.inf, 5e-324]),
    ("real", [0.1, -0.0, math.nan, 3.4e38, 1 / 3]),
    ("numeric(10,2)", [Decimal("1.50"), Decimal("-0.00"), Decimal("12345678.99"), Decimal("1.5")]),
    (
        "numeric",
        [
            Decimal("1.500"),
            Decimal("1E+2"),
            Decimal("NaN"),
            Decimal("-0"),
            Decimal("0.000"),
            Decimal("-12.3400"),
            Decimal("1E-20"),
            Decimal("123456789012345678901234567890.5"),
        ],
    ),
    (
        "timestamp with time zone",
        [
            datetime.datetime(2024, 3, 31, 0, 59, 59, 999999, tzinfo=UTC),  # Europe: DST begins
            datetime.datetime(2024, 3, 31, 1, 0, 0, 1, tzinfo=UTC),
            datetime.datetime(2024, 11, 3, 5, 30, 0, 123456, tzinfo=UTC),  # US: DST ends
            datetime.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            datetime.datetime(1, 1, 1, tzinfo=UTC),
            datetime.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        ],
    ),
    (
        "timestamp(3) with time zone",
        [
            datetime.datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=UTC),
            datetime.datetime(1999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
            # not rounded yet: PostgreSQL rounds half away from zero, and so does the pair
            datetime.datetime(2024, 5, 1, 10, 0, 0, 123500, tzinfo=UTC),
            datetime.datetime(1999, 12, 31, 23, 59, 59, 999500, tzinfo=UTC),
        ],
    ),
    (
        "timestamp without time zone",
        [
            datetime.datetime(2024, 3, 10, 2, 30, 0, 500000),  # not a New York wall time
            datetime.datetime(2024, 11, 3, 1, 30, 0, 1),  # twice a New York wall time
            datetime.datetime(1970, 1, 1),
            datetime.datetime(1999, 12, 31, 23, 59, 59, 999999),
        ],
    ),
    (
        "date",
        [
            datetime.date(2000, 1, 1),
            datetime.date(1999, 12, 31),
            datetime.date(1, 1, 1),
            datetime.date(9999, 12, 31),
        ],
    ),
    (
        "time without time zone",
        [datetime.time(0, 0), datetime.time(23, 59, 59, 999999), datetime.time(12, 0, 0, 1)],
    ),
    (
        "time(2) without time zone",
        [datetime.time(12, 0, 0, 130000), datetime.time(12, 0, 0, 125000)],
    ),
    ("text", ["", "a\tb", "a,b", "\\N", "line\nbreak", "Zürich 日本 🎉", "ab", "a", "'quoted'"]),
    ("character varying(10)", ["", "x y ", "ünï"]),
    ("character(5)", ["ab   ", "abcde", "     "]),
    ("bytea", [b"", b"\x00", b"\x00\x01\xff\x00", "é".encode()]),
    ("uuid", ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]),
    (
        "json",
        [
            '{ "b": 1, "a": [1.0, 1e2, -0.0, 0.1, -0] }',
            '{"a":1,"a":2}',
            '"x"',
            "null",
            "[]",
            "{}",
            '{"é": "\\u00e9\\t", "aa": "\\u001f", "b": "a\\nb\\\\"}',
            "1E400",
            "12345678901234567890123",
            "1.50e1",
            '{"long key": 1, "zz": 2, "a": {"y": [true, false, null], "x": 0.30000000000000004}}',
            "[1.7976931348623157e308, 5e-324, 0.1, 100.0, 1e-7]",
            '"a\\u0000b"',  # json keeps it, jsonb refuses it: compared as written
            '{"k": "\\\\u0000"}',  # an escaped backslash, then u0000
        ],
    ),
    ("jsonb", ['{"b": 1, "a": "x"}', '{"a": 1.0}', "[1e2]", '"\\u00e9"', "3.0", "null"]),
    ("inet", ["10.0.0.1"]),
]


def test_each_types_canonical_pair_agrees_on_postgresql(vdb: dict) -> None:
    conn = vdb["conn"]
    conn.execute("SET TimeZone = 'America/New_York'")  # the SQL half must not depend on it
    conn.execute("SET extra_float_digits = 0")  # nor on this
    try:
        for pg_type, values in TRICKY:
            conn.execute("DROP TABLE IF EXISTS pairs")
            conn.execute(sql.SQL("CREATE TABLE pairs (n int, v {})").format(sql.SQL(pg_type)))
            rows = list(enumerate([*values, None]))
            for row in rows:
                conn.execute("INSERT INTO pairs VALUES (%s, %s)", row, prepare=False)
            column = TargetColumn("v", pg_type)
            query = sql.SQL("SELECT n, {} FROM pairs ORDER BY n").format(
                pgverify.pg_column_sql(column)
            )
            theirs = dict(conn.execute(query).fetchall())
            render = pgverify.RowRenderer([column])
            ours = {n: render((value,)) for n, value in rows}
            assert ours == theirs, pg_type
            assert list(ours.values()).count(pgverify.NULL_TEXT) == 1, pg_type
    finally:
        conn.execute("DROP TABLE IF EXISTS pairs")
        conn.execute("RESET TimeZone")
        conn.execute("RESET extra_float_digits")


def test_row_texts_and_hashes_agree_and_are_unambiguous(vdb: dict) -> None:
    conn = vdb["conn"]
    columns = [TargetColumn("a", "text"), TargetColumn("b", "text"), TargetColumn("c", "bytea")]
    rows = [
        ("a", "bc", b""),
        ("ab", "c", b""),
        ("", None, None),
        (None, "", b""),
        ("\\N", None, b""),
    ]
    conn.execute("DROP TABLE IF EXISTS amb")
    conn.execute("CREATE TABLE amb (n int, a text, b text, c bytea)")
    try:
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO amb VALUES (%s, %s, %s, %s)", [(n, *r) for n, r in enumerate(rows)]
            )
        query = sql.SQL("SELECT md5({}) FROM amb ORDER BY n").format(pgverify.pg_row_sql(columns))
        theirs = [digest for (digest,) in conn.execute(query)]
        render = pgverify.RowRenderer(columns)
        assert theirs == [pgverify.md5_hex(render(row)) for row in rows]
        assert len(set(theirs)) == len(rows)
    finally:
        conn.execute("DROP TABLE amb")


# The action --------------------------------------------------------------------------------------


def test_an_identical_copy_matches(vdb: dict) -> None:
    load_target(vdb)
    result, out, report = verify(vdb)
    assert result.returncode == 0, result.stderr
    assert out["ok"] is True and out["matched"] is True and out["sample"] is None
    assert report == out
    users = table(out, "users")
    assert (users["source_rows"], users["target_rows"]) == (USERS, USERS)
    assert users["chunks"] == users["chunks_compared"] == 10
    assert users["differences"] == [] and users["key"] == "id"
    assert users["rows_per_s_source"] > 0 and users["rows_per_s_target"] > 0
    odd = table(out, "Odd Table")
    assert odd["target"] == 'public."Odd Table"' and odd["matched"] and odd["source_rows"] == 32
    assert odd["chunks"] == 5  # -2 (key -15), 0, 1, 2, 3: the floor division agrees
    tags = table(out, "tags")
    assert tags["key"] is None and tags["method"] == "row hash multiset" and tags["matched"]
    assert "users: matched" in (ROOT / "verify.log").read_text()


def test_same_key_different_content_is_found_with_its_key(vdb: dict) -> None:
    load_target(vdb)
    vdb["conn"].execute("UPDATE users SET email = 'planted@example.test' WHERE id = 42")
    marker = ROOT / "verified.json"
    marker.write_text('{"matched": true}')  # an earlier passed verification
    result, out, report = verify(vdb, verified_path=str(marker))
    assert result.returncode == 1
    assert not marker.exists()  # a failed verification takes the marker away
    line = result.stderr.strip().splitlines()[-1]
    assert f"verification failed: users: 1 row differs (key 42); report: {ROOT}" in line
    assert report["matched"] is False
    users = table(report, "users")
    assert users["differences"] == [
        {
            "range": [40, 49],
            "missing": [],
            "extra": [],
            "different": [42],
            "counts": {"missing": 0, "extra": 0, "different": 1},
        }
    ]
    assert table(report, "Odd Table")["matched"] and table(report, "tags")["matched"]
    text = json.dumps(report)
    assert "planted" not in text and "user42@" not in text  # keys only, never values


def test_a_subtle_change_is_found(vdb: dict) -> None:
    """One microsecond, one float ulp, a JSON key renamed: each a different row."""
    load_target(vdb)
    conn = vdb["conn"]
    conn.execute("UPDATE users SET created_at = created_at + interval '1 microsecond' WHERE id = 7")
    conn.execute("UPDATE users SET score = score + 1e-15 WHERE id = 61")
    conn.execute("""UPDATE users SET profile = profile - 'ok' || '{"OK": true}' WHERE id = 88""")
    result, _, report = verify(vdb)
    assert result.returncode == 1
    users = table(report, "users")
    assert [key for d in users["differences"] for key in d["different"]] == [7, 61, 88]
    assert "3 rows differ (keys 7, 61, 88)" in result.stderr


def test_a_deleted_row_is_missing_and_the_counts_differ(vdb: dict) -> None:
    load_target(vdb)
    vdb["conn"].execute("DELETE FROM users WHERE id IN (13, 57)")
    result, _, report = verify(vdb)
    assert result.returncode == 1
    assert "users: 2 rows missing in the target (keys 13, 57)" in result.stderr
    users = table(report, "users")
    assert (users["source_rows"], users["target_rows"]) == (USERS, USERS - 2)
    assert [(d["range"], d["missing"]) for d in users["differences"]] == [
        ([10, 19], [13]),
        ([50, 59], [57]),
    ]


def test_an_extra_row_is_found_also_in_a_chunk_the_source_lacks(vdb: dict) -> None:
    load_target(vdb)
    vdb["conn"].execute("INSERT INTO users (id, email) VALUES (50000, 'x'), (-3, 'y'), (96, 'z')")
    vdb["conn"].execute("DELETE FROM users WHERE id = 55")
    result, _, report = verify(vdb)
    assert result.returncode == 1
    users = table(report, "users")
    assert users["rows_extra"] == 3 and users["rows_missing"] == 1
    assert [(d["range"], d["extra"], d["missing"]) for d in users["differences"]] == [
        ([-10, -1], [-3], []),
        ([50, 59], [], [55]),
        ([90, 99], [96], []),
        ([50000, 50009], [50000], []),
    ]
    assert (
        "1 row missing in the target (key 55), 3 rows extra in the target (keys -3, 96, 50000)"
        in (result.stderr)
    )


def test_max_keys_caps_the_keys_named_not_the_counts(vdb: dict) -> None:
    load_target(vdb)
    vdb["conn"].execute("DELETE FROM users WHERE id BETWEEN 20 AND 34")
    result, _, report = verify(vdb, max_keys=4)
    assert result.returncode == 1
    users = table(report, "users")
    assert users["rows_missing"] == 15
    assert [key for d in users["differences"] for key in d["missing"]] == [20, 21, 22, 23]
    assert "15 rows missing in the target (keys 20, 21, 22, …)" in result.stderr


def test_sample_compares_a_share_of_chunks_and_finds_a_difference_in_one(vdb: dict) -> None:
    load_target(vdb)
    chunks = list(range(10))
    sampled = pgverify.sampled_chunks("users", chunks, 0.2)
    assert len(sampled) == 2
    unsampled = next(chunk for chunk in chunks if chunk not in sampled and chunk)
    # a change in a chunk that is not sampled: the sampled run does not look there
    vdb["conn"].execute("UPDATE users SET email = 'changed' WHERE id = %s", (unsampled * 10 + 1,))
    result, out, _ = verify(vdb, sample=0.2, tables=["users"])
    assert result.returncode == 0, result.stderr
    users = table(out, "users")
    assert out["sample"] == 0.2 and (users["chunks"], users["chunks_compared"]) == (10, 2)
    assert users["rows_compared_source"] < USERS and users["matched"]
    # a change in a sampled chunk is found, with its key
    key = max(sampled[0] * 10, 1) + 2
    vdb["conn"].execute("UPDATE users SET active = NOT active WHERE id = %s", (key,))
    result, _, report = verify(vdb, sample=0.2, tables=["users"])
    assert result.returncode == 1
    assert table(report, "users")["differences"][0]["different"] == [key]
    assert f"users: 1 row differs (key {key})" in result.stderr
    # the full run finds both
    result, _, report = verify(vdb, tables=["users"])
    found = [k for d in table(report, "users")["differences"] for k in d["different"]]
    assert found == sorted([key, unsampled * 10 + 1])


def test_a_sampled_run_still_compares_full_counts(vdb: dict) -> None:
    load_target(vdb)
    unsampled = [c for c in range(10) if c not in pgverify.sampled_chunks("users", range(10), 0.1)]
    vdb["conn"].execute("DELETE FROM users WHERE id = %s", (unsampled[-1] * 10 + 5,))
    result, _, report = verify(vdb, sample=0.1, tables=["users"])
    assert result.returncode == 1
    users = table(report, "users")
    assert (users["source_rows"], users["target_rows"]) == (USERS, USERS - 1)
    assert f"users: {USERS} source rows, {USERS - 1} target rows" in result.stderr


def test_a_table_without_an_integer_key_is_compared_as_a_multiset(vdb: dict) -> None:
    load_target(vdb)
    conn = vdb["conn"]
    conn.execute("UPDATE tags SET tag = 'changed' WHERE user_id = 3 AND tag = 'tag10'")
    ctid = conn.execute("SELECT ctid::text FROM tags WHERE tag = 'changed'").fetchone()[0]
    result, _, report = verify(vdb, tables=["tags"])
    assert result.returncode == 1
    tags = table(report, "tags")
    rowid = (
        sqlite3.connect(vdb["source"])
        .execute("SELECT rowid FROM tags WHERE user_id = 3 AND tag = 'tag10'")
        .fetchone()[0]
    )
    assert tags["differences"] == [
        {
            "range": None,
            "missing": [f"rowid {rowid}"],
            "extra": [f"ctid {ctid}"],
            "different": [],
            "counts": {"missing": 1, "extra": 1, "different": 0},
        }
    ]
    # the same rows in another physical order are the same multiset
    load_target(vdb)
    conn.execute("CLUSTER tags USING tags_pkey")
    conn.execute("UPDATE tags SET tag = tag WHERE user_id = 0")  # moves rows to the end
    result, out, _ = verify(vdb, tables=["tags"])
    assert result.returncode == 0, result.stderr
    assert table(out, "tags")["matched"]


def test_a_quoted_mixed_case_table_is_verified(vdb: dict) -> None:
    load_target(vdb)
    vdb["conn"].execute('UPDATE "Odd Table" SET "Mixed Col" = NULL WHERE id = 30')
    result, _, report = verify(vdb, tables=["Odd Table"])
    assert result.returncode == 1
    assert "verification failed: Odd Table: 1 row differs (key 30)" in result.stderr
    assert [t["name"] for t in report["tables"]] == ["Odd Table"]


def test_a_source_value_that_does_not_convert_stops_with_key_and_column(vdb: dict) -> None:
    load_target(vdb)
    bad = ROOT / "bad.db"
    shutil.copy(vdb["source"], bad)
    with sqlite3.connect(bad) as lite:
        lite.execute("UPDATE users SET created_at = 'next tuesday-ish' WHERE id = 77")
    lite.close()
    result, _, report = verify({**vdb, "source": str(bad)}, tables=["users"])
    assert result.returncode == 1 and report is None
    assert (
        "verification: users: the row with key 77 does not convert (column created_at: "
        "not a timestamp); verify with the copy's lossy setting"
    ) in result.stderr
    assert "tuesday" not in result.stderr


def test_lossy_verifies_as_the_lossy_copy_converted_and_counts(vdb: dict) -> None:
    lossy_file = ROOT / "lossy.db"
    shutil.copy(vdb["source"], lossy_file)
    with sqlite3.connect(lossy_file) as lite:
        lite.execute("UPDATE users SET email = ? WHERE id = 5", ("x" * 300 + "@example.test",))
    lite.close()
    lossy_vdb = {**vdb, "source": str(lossy_file)}
    load_target(lossy_vdb, lossy=True)
    result, out, _ = verify(lossy_vdb, tables=["users"], lossy=True)
    assert result.returncode == 0, result.stderr
    assert table(out, "users")["lossy_conversions"] == [
        {"column": "email", "reason": "longer than 255 characters", "count": 1}
    ]
    result, _, _ = verify(lossy_vdb, tables=["users"])
    assert result.returncode == 1
    assert "users: the row with key 5 does not convert (column email: longer than 255" in (
        result.stderr
    )


def test_progress_lines_and_the_copy_it_verified(vdb: dict) -> None:
    load_target(vdb)
    copy_report = ROOT / "copy.json"
    copy_report.write_text(json.dumps({"finished": "2026-11-25T06:00:00Z", "tables": []}))
    result, _, report = verify(vdb, progress_interval_s=0.001, copy_report=str(copy_report))
    assert result.returncode == 0, result.stderr
    assert report["matched"] and report["copy_finished"] == "2026-11-25T06:00:00Z"
    lines = [line for line in result.stderr.splitlines() if "source rows hashed" in line]
    assert lines and lines[0].startswith("turnout: sqlite_verify: ")
    assert "of 3 tables)" in lines[0]
    rows = sum(table["source_rows"] for table in report["tables"])
    closing = result.stderr.strip().splitlines()[-1]
    assert closing.startswith(f"turnout: sqlite_verify: matched: {rows} rows in 3 tables, ")
    sampled, _, _ = verify(vdb, progress_interval_s=0.001, sample=0.5)
    assert "hashed (a sample)" in sampled.stderr.strip().splitlines()[-1]


def test_bad_settings_and_a_missing_file_are_one_line(vdb: dict) -> None:
    result, _, report = verify(vdb, sample=1.5)
    assert result.returncode == 1 and report is None
    assert "sample 1.5 must be a share of chunks in (0, 1]" in result.stderr
    result, _, _ = verify(vdb, sqlite_path=str(ROOT / "nope.db"))
    assert result.returncode == 1 and "cannot read SQLite file" in result.stderr
    result, _, _ = verify(vdb, report_path=str(ROOT / "no-dir" / "v.json"))
    assert result.returncode == 1 and "the directory of report_path" in result.stderr


# Scale (slow): throughput of a full verification -------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("rows", [200_000, 1_000_000])
def test_full_verification_throughput(vdb: dict, tmp_path: Path, rows: int) -> None:
    """A 6-column mixed-type table: full verification, rows/s of each side (printed)."""
    path = tmp_path / "big.db"
    with sqlite3.connect(path) as lite:
        lite.execute(
            "CREATE TABLE big (id INTEGER PRIMARY KEY, email TEXT, active INTEGER, score REAL, "
            "created_at TEXT, balance TEXT)"
        )
        lite.executemany(
            "INSERT INTO big VALUES (?, ?, ?, ?, ?, ?)",
            (
                (
                    i,
                    f"user{i}@example.test",
                    i % 3 == 0,
                    i * 1.37,
                    f"2024-03-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:{i * 7 % 60:02d}",
                    f"{i % 100000}.{i % 100:02d}",
                )
                for i in range(1, rows + 1)
            ),
        )
    lite.close()
    conn = vdb["conn"]
    conn.execute("DROP TABLE IF EXISTS big")
    conn.execute(
        "CREATE TABLE big (id bigint PRIMARY KEY, email text, active boolean, "
        "score double precision, created_at timestamptz, balance numeric(10,2))"
    )
    source = open_source(str(path))
    pair = table_pairs(source, conn, ["big"])[0]
    convert = RowConverter(pair.columns)
    with conn.cursor().copy("COPY big FROM STDIN") as copy:
        for raw in source.execute(pgverify.sqlite_select(pair)):
            copy.write_row(convert(raw))
    source.close()
    conn.execute("VACUUM ANALYZE big")
    result, out, _ = verify(
        {**vdb, "source": str(path)}, tables=["big"], chunk_rows=10_000, log_path=None
    )
    conn.execute("DROP TABLE big")
    assert result.returncode == 0, result.stderr
    big = table(out, "big")
    assert big["matched"] and big["source_rows"] == rows
    print(
        f"\nverify {rows} rows: {big['seconds']} s; source {big['rows_per_s_source']} rows/s, "
        f"target {big['rows_per_s_target']} rows/s"
    )
