"""The SQLite → PostgreSQL verification sees one changed value of each column type, whichever
side it changed on: bytea (a BLOB, and an SQLite TEXT of invalid UTF-8 copied as its bytes),
numeric (with and without a scale), timestamps with a time zone (another offset, the same wall
clock) and without, booleans, json and jsonb, and text with a NUL or invalid UTF-8 (copied
lossy). Each case changes one value of a faithful copy: in the SQLite file (the source changed
after the copy) or in PostgreSQL (the target changed); the ``sqlite_verify`` action, run as
shipped, must name exactly that key as different and nothing else, in its report and its one
line. A table without an integer key (compared as a multiset of row hashes) gets the same on
its bytea and numeric columns.

Real SQLite files and the stack's real PostgreSQL (staging cluster); this module owns the
database ``turnout_verify_values``.
"""

import json
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from conftest import STACK_DIR, superuser
from psycopg import sql

from turnout.hostside import pgverify
from turnout.hostside.sqlite_types import RowConverter, open_source, table_pairs
from turnout.remote import hostside_command, parse_hostside_output

DB = "turnout_verify_values"
ENV = "TVV_TARGET"
ROOT = STACK_DIR / "verify_values_test"
ROWS = 30  # keys 1..30, chunks of 10 keys

SQLITE_SCHEMA = """
CREATE TABLE vals (
    id INTEGER PRIMARY KEY, blob BLOB, raw TEXT, amount TEXT, exact TEXT, at_tz TEXT,
    at_local TEXT, flag TEXT, doc TEXT, docb TEXT
);
CREATE TABLE notes (id INTEGER PRIMARY KEY, note TEXT);
CREATE TABLE ledger (code TEXT PRIMARY KEY, blob BLOB, amount TEXT);
"""
TARGET_SCHEMA = """
CREATE TABLE vals (
    id bigint PRIMARY KEY, blob bytea, raw bytea, amount numeric(12,4), exact numeric,
    at_tz timestamptz, at_local timestamp, flag boolean, doc json, docb jsonb
);
CREATE TABLE notes (id bigint PRIMARY KEY, note text);
CREATE TABLE ledger (code text PRIMARY KEY, blob bytea, amount numeric(10,2));
"""


def vals_row(i: int) -> tuple:
    """A row as the app wrote it (loose SQLite values the converters read); ``raw`` is bytes
    here and stored as TEXT (``CAST(? AS TEXT)``): invalid UTF-8 on every other row."""
    return (
        i,
        bytes([0, i, 255, i % 7]),
        b"caf\xe9 " + str(i).encode() if i % 2 else f"café {i}".encode(),
        f"{i}.{i:02d}00",
        f"12345678901234567890.{i:03d}",
        f"2024-03-31T0{i % 4}:30:00.{i:06d}+02:00",
        f"2024-11-03 01:30:00.{i:06d}",
        ("yes", "no", "t", "f", "1", "0")[i % 6],
        json.dumps({"n": i, "list": [1, 2, i], "s": "1"}),
        json.dumps({"k": i % 2 == 0, "x": None, "r": i / 8}),
    )


def notes_row(i: int) -> tuple:
    """Text with a NUL (every third row), invalid UTF-8 (every third + 1), else plain text;
    ``note`` is bytes stored as TEXT."""
    if i % 3 == 0:
        return (i, f"a\x00b{i}".encode())
    if i % 3 == 1:
        return (i, b"Z\xfcrich " + str(i).encode())  # Latin-1 ü: invalid UTF-8
    return (i, f"Zürich {i}".encode())


@pytest.fixture(scope="module")
def vv(stack: dict):
    """The target database (app-owned, DSN in a 0600 env file) and the pristine SQLite file."""
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    with superuser(stack, "staging", "postgres") as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER app").format(sql.Identifier(DB)))
    password = (STACK_DIR / "secrets" / "pg_staging_app").read_text().strip()
    port = stack["pg"]["staging"]["port"]
    url = f"postgresql://app:{quote(password, safe='')}@127.0.0.1:{port}/{DB}"
    env_file = ROOT / "verify.env"
    env_file.touch(mode=0o600)
    env_file.write_text(f"{ENV}={url}\n")
    pristine = ROOT / "pristine.db"
    with sqlite3.connect(pristine) as lite:
        lite.executescript(SQLITE_SCHEMA)
        lite.executemany(
            "INSERT INTO vals VALUES (?, ?, CAST(? AS TEXT), ?, ?, ?, ?, ?, ?, ?)",
            map(vals_row, range(1, ROWS + 1)),
        )
        lite.executemany(
            "INSERT INTO notes VALUES (?, CAST(? AS TEXT))", map(notes_row, range(1, ROWS + 1))
        )
        lite.executemany(
            "INSERT INTO ledger VALUES (?, ?, ?)",
            [(f"code-{i}", bytes([i, 0, i]), f"{i}.5") for i in range(1, 13)],
        )
    lite.close()
    target = psycopg.connect(url, autocommit=True)
    target.execute(TARGET_SCHEMA)
    yield {"stack": stack, "env_file": str(env_file), "pristine": pristine, "conn": target}
    target.close()
    with superuser(stack, "staging", "postgres") as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB)))
    shutil.rmtree(ROOT, ignore_errors=True)


def faithful_copy(vv: dict) -> Path:
    """A fresh source file (a copy of the pristine one) and the target loaded from it with the
    converters' values by COPY, as the copy loads them (lossy, as the copy of ``notes`` must
    be: its NULs are removed, its invalid UTF-8 decoded with U+FFFD). Returns the source."""
    source_path = ROOT / f"source-{time.monotonic_ns()}.db"
    shutil.copy(vv["pristine"], source_path)
    conn = vv["conn"]
    source = open_source(str(source_path))
    try:
        for pair in table_pairs(source, conn):
            table = sql.Identifier(pair.schema, pair.name)
            names = sql.SQL(", ").join(sql.Identifier(column.name) for column in pair.columns)
            conn.execute(sql.SQL("TRUNCATE {}").format(table))
            convert = RowConverter(pair.columns, lossy=True)
            copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(table, names)
            with conn.cursor().copy(copy_sql) as copy:
                for raw in source.execute(pgverify.sqlite_select(pair)):
                    copy.write_row(convert(raw))
    finally:
        source.close()
    return source_path


def verify(vv: dict, source: Path, **params) -> tuple[subprocess.CompletedProcess, dict | None]:
    """The shipped program runs ``sqlite_verify`` (DSN from the env file only, lossy as the
    copy was): the process and the report it wrote."""
    report = ROOT / f"report-{time.monotonic_ns()}.json"
    params = {
        "sqlite_path": str(source),
        "dsn_env": ENV,
        "env_file": vv["env_file"],
        "chunk_rows": 10,
        "lossy": True,
        "report_path": str(report),
        **params,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TVV_", "PG", "DATABASE"))}
    command = hostside_command("sqlite_verify", params, python=vv["stack"]["python"])
    result = subprocess.run(
        ["sh", "-c", command.get_raw_value()],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    parse_hostside_output(result.stdout.splitlines())
    return result, json.loads(report.read_text()) if report.exists() else None


def report_table(report: dict, name: str) -> dict:
    return next(item for item in report["tables"] if item["name"] == name)


def keys_of(table: dict, kind: str) -> list:
    return [key for difference in table["differences"] for key in difference[kind]]


def change_source(source: Path, statement: str, *args: object) -> None:
    with sqlite3.connect(source) as lite:
        assert lite.execute(statement, args).rowcount == 1
    lite.close()


def change_target(vv: dict, statement: str, *args: object) -> None:
    assert vv["conn"].execute(statement, args).rowcount == 1


def test_a_faithful_copy_matches_and_names_its_lossy_conversions(vv: dict) -> None:
    source = faithful_copy(vv)
    result, report = verify(vv, source)
    assert result.returncode == 0, result.stderr
    assert report["matched"] is True
    assert [t["name"] for t in report["tables"] if t["matched"]] == ["ledger", "notes", "vals"]
    notes = report_table(report, "notes")
    assert notes["lossy_conversions"] == [
        {"column": "note", "reason": "NUL byte", "count": 10},
        {"column": "note", "reason": "invalid UTF-8", "count": 10},
    ]
    assert report_table(report, "vals")["lossy_conversions"] == []  # raw went to bytea whole


# (case, table, key, a change in the SQLite file, a change in PostgreSQL). Each change is to one
# value of one column of the row with that key, small: one byte, one unit of the last digit, one
# offset, one key's type.
CASES = [
    (
        "bytea",
        "vals",
        7,
        ("UPDATE vals SET blob = ? WHERE id = 7", bytes([0, 7, 255, 1])),
        ("UPDATE vals SET blob = set_byte(blob, 3, 1) WHERE id = 7",),
    ),
    (
        "bytea, an appended NUL byte",
        "vals",
        12,
        ("UPDATE vals SET blob = blob || x'00' WHERE id = 12",),
        ("UPDATE vals SET blob = blob || '\\x00'::bytea WHERE id = 12",),
    ),
    (
        "bytea from invalid UTF-8 text",
        "vals",
        9,
        ("UPDATE vals SET raw = CAST(? AS TEXT) WHERE id = 9", b"caf\xe8 9"),
        ("UPDATE vals SET raw = set_byte(raw, 3, 232) WHERE id = 9",),
    ),
    (
        "numeric(12,4)",
        "vals",
        21,
        ("UPDATE vals SET amount = '21.2101' WHERE id = 21",),
        ("UPDATE vals SET amount = amount + 0.0001 WHERE id = 21",),
    ),
    (
        "numeric",
        "vals",
        3,
        ("UPDATE vals SET exact = '12345678901234567890.0031' WHERE id = 3",),
        ("UPDATE vals SET exact = exact - 1e-20 WHERE id = 3",),
    ),
    (
        "timestamptz, the same wall clock at another offset",
        "vals",
        14,
        ("UPDATE vals SET at_tz = replace(at_tz, '+02:00', '+01:00') WHERE id = 14",),
        (
            "UPDATE vals SET at_tz = (at_tz AT TIME ZONE 'Europe/Paris') AT TIME ZONE 'UTC' "
            "WHERE id = 14",
        ),
    ),
    (
        "timestamptz, one microsecond",
        "vals",
        15,
        ("UPDATE vals SET at_tz = replace(at_tz, '.000015', '.000016') WHERE id = 15",),
        ("UPDATE vals SET at_tz = at_tz - interval '1 microsecond' WHERE id = 15",),
    ),
    (
        "timestamp without time zone",
        "vals",
        16,
        ("UPDATE vals SET at_local = '2024-11-03 02:30:00.000016' WHERE id = 16",),
        ("UPDATE vals SET at_local = at_local + interval '1 microsecond' WHERE id = 16",),
    ),
    (
        "boolean",
        "vals",
        8,  # 't'
        ("UPDATE vals SET flag = 'f' WHERE id = 8",),
        ("UPDATE vals SET flag = NOT flag WHERE id = 8",),
    ),
    (
        "boolean, to NULL",
        "vals",
        10,
        ("UPDATE vals SET flag = NULL WHERE id = 10",),
        ("UPDATE vals SET flag = NULL WHERE id = 10",),
    ),
    (
        "json, a number for a string",
        "vals",
        5,
        ("UPDATE vals SET doc = json_set(doc, '$.s', 1) WHERE id = 5",),
        ("UPDATE vals SET doc = (doc::jsonb || '{\"s\": 1}')::json WHERE id = 5",),
    ),
    (
        "json, an array's order",
        "vals",
        6,
        ("UPDATE vals SET doc = json_set(doc, '$.list', json('[2, 1, 6]')) WHERE id = 6",),
        ('UPDATE vals SET doc = \'{"n": 6, "list": [2, 1, 6], "s": "1"}\' WHERE id = 6',),
    ),
    (
        "jsonb",
        "vals",
        4,
        ("UPDATE vals SET docb = json_set(docb, '$.k', json('false')) WHERE id = 4",),
        ("UPDATE vals SET docb = docb - 'x' WHERE id = 4",),
    ),
    (
        "text with a NUL",
        "notes",
        6,  # a\0b6, copied as ab6
        ("UPDATE notes SET note = CAST(? AS TEXT) WHERE id = 6", b"a\x00c6"),
        ("UPDATE notes SET note = 'a b6' WHERE id = 6",),
    ),
    (
        "text with invalid UTF-8",
        "notes",
        4,  # Z\xfcrich 4, copied as Z\ufffdrich 4
        ("UPDATE notes SET note = CAST(? AS TEXT) WHERE id = 4", b"Z\xfcrich 44"),
        ("UPDATE notes SET note = 'Zürich 4' WHERE id = 4",),
    ),
    (
        "bytea, a table without an integer key",
        "ledger",
        None,
        ("UPDATE ledger SET blob = x'050005ff' WHERE code = 'code-5'",),
        ("UPDATE ledger SET blob = set_byte(blob, 1, 1) WHERE code = 'code-5'",),
    ),
    (
        "numeric, a table without an integer key",
        "ledger",
        None,
        ("UPDATE ledger SET amount = '5.51' WHERE code = 'code-5'",),
        ("UPDATE ledger SET amount = amount + 0.01 WHERE code = 'code-5'",),
    ),
]


@pytest.mark.parametrize("side", ["source", "target"])
@pytest.mark.parametrize(
    ("case", "table", "key", "in_source", "in_target"), CASES, ids=[c[0] for c in CASES]
)
def test_one_changed_value_is_found_with_its_key(
    vv: dict, side: str, case: str, table: str, key: int | None, in_source, in_target
) -> None:
    source = faithful_copy(vv)
    if side == "source":
        change_source(source, *in_source)
    else:
        change_target(vv, *in_target)
    result, report = verify(vv, source, tables=[table])
    assert result.returncode == 1, f"{case} changed in the {side} was not found"
    assert report["matched"] is False
    found = report_table(report, table)
    assert (found["source_rows"], found["target_rows"]) == (found["source_rows"],) * 2
    if key is not None:
        assert keys_of(found, "different") == [key], found["differences"]
        assert keys_of(found, "missing") == keys_of(found, "extra") == []
        assert f"verification failed: {table}: 1 row differs (key {key})" in result.stderr
    else:  # a multiset: the changed row is one missing (rowid) and one extra (ctid)
        assert (found["rows_missing"], found["rows_extra"], found["rows_different"]) == (1, 1, 0)
        rowid = sqlite3.connect(vv["pristine"]).execute(
            "SELECT rowid FROM ledger WHERE code = 'code-5'"
        )
        assert keys_of(found, "missing") == [f"rowid {rowid.fetchone()[0]}"]


def test_text_with_a_nul_does_not_verify_unless_lossy(vv: dict) -> None:
    """Without the copy's lossy setting, a NUL is no value PostgreSQL text holds: the run stops
    naming the key and the column (never the value)."""
    source = faithful_copy(vv)
    result, report = verify(vv, source, tables=["notes"], lossy=False)
    assert result.returncode == 1 and report is None
    assert "notes: the row with key 1 does not convert (column note: " in result.stderr
    with sqlite3.connect(source) as lite:
        lite.execute("DELETE FROM notes WHERE id % 3 = 1")  # no invalid UTF-8 left
    lite.close()
    result, report = verify(vv, source, tables=["notes"], lossy=False)
    assert result.returncode == 1 and report is None
    assert "notes: the row with key 3 does not convert (column note: " in result.stderr
    assert "b3" not in result.stderr
