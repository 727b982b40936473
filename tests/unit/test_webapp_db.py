"""The benchmark's web-app SQLite database (tests/fixtures/webapp_db.py): deterministic, the
documented proportions and types, and a target schema with what an Alembic schema has."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import json
import sqlite3
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "webapp_db.py"


def load_fixture():  # noqa: ANN201 - the fixture module
    spec = importlib.util.spec_from_file_location("webapp_db", FIXTURE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["webapp_db"] = module
    spec.loader.exec_module(module)
    return module


webapp_db = load_fixture()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def small_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("webapp") / "small.sqlite3"
    webapp_db.generate(path, 2000)
    return path


def rows_of(path: Path, query: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def test_same_arguments_same_bytes(tmp_path: Path, small_db: Path) -> None:
    again = tmp_path / "again.sqlite3"
    webapp_db.generate(again, 2000)
    assert sha256(again) == sha256(small_db)
    other = tmp_path / "other.sqlite3"
    webapp_db.generate(other, 2000, seed=webapp_db.DEFAULT_SEED + 1)
    assert sha256(other) != sha256(small_db)
    assert not list(tmp_path.glob(".*tmp*")), "the temporary file is renamed into place"


def test_proportions_add_up() -> None:
    assert webapp_db.table_rows(1_000_000) == {
        "users": 50_000,
        "knowledge_materials": 100_000,
        "ugc_assets": 150_000,
        "meters": 300_000,
        "audit_logs": 400_000,
    }
    for total in (5, 99, 12_345, 100_001):
        counts = webapp_db.table_rows(total)
        assert sum(counts.values()) == total
        assert counts["users"] >= 1
        assert list(counts) == list(webapp_db.TABLES)
    with pytest.raises(ValueError):
        webapp_db.table_rows(4)


def test_row_counts_in_the_file(small_db: Path) -> None:
    expected = webapp_db.table_rows(2000)
    for table, count in expected.items():
        assert rows_of(small_db, f"SELECT count(*) FROM {table}") == [(count,)]


def test_keys_and_foreign_keys(small_db: Path) -> None:
    for table in webapp_db.TABLES:
        ((low, high, count),) = rows_of(small_db, f"SELECT min(id), max(id), count(*) FROM {table}")
        assert (low, high) == (1, count), f"{table}: keys 1..n"
    assert rows_of(small_db, "PRAGMA foreign_key_check") == []
    assert rows_of(small_db, "SELECT count(*) FROM audit_logs WHERE user_id IS NULL")[0][0] > 0
    emails = rows_of(small_db, "SELECT count(DISTINCT lower(trim(email))), count(*) FROM users")
    assert emails[0][0] == emails[0][1], "no case or whitespace duplicates for the unique check"


def test_sqlite_types_as_an_app_stores_them(small_db: Path) -> None:
    booleans = rows_of(
        small_db,
        "SELECT DISTINCT is_active FROM users UNION SELECT DISTINCT is_public FROM "
        "knowledge_materials UNION SELECT DISTINCT is_deleted FROM ugc_assets",
    )
    assert sorted(b for (b,) in booleans) == [0, 1]
    stamps = rows_of(small_db, "SELECT created_at, last_login_at FROM users")
    for created, last in stamps:
        assert dt.datetime.strptime(created, "%Y-%m-%d %H:%M:%S.%f")
        assert last is None or dt.datetime.strptime(last, "%Y-%m-%d %H:%M:%S.%f")
    payloads = rows_of(small_db, "SELECT payload FROM audit_logs")
    assert all(isinstance(json.loads(p), dict) for (p,) in payloads)
    blobs = rows_of(small_db, "SELECT DISTINCT typeof(thumb_hash) FROM ugc_assets")
    assert {t for (t,) in blobs} == {"blob", "null"}
    floats = rows_of(small_db, "SELECT DISTINCT typeof(value) FROM meters")
    assert floats == [("real",)]
    texts = rows_of(small_db, "SELECT display_name FROM users")
    assert any(not name.isascii() for (name,) in texts), "some non-ASCII text"


def test_target_ddl_has_the_alembic_schema() -> None:
    ddl = webapp_db.target_ddl()
    for table in webapp_db.TABLES:
        assert f"CREATE TABLE {table} (" in ddl
        assert f"CONSTRAINT pk_{table} PRIMARY KEY (id)" in ddl
    assert "CONSTRAINT uq_users_email UNIQUE (email)" in ddl
    for fragment in ("SERIAL", "JSONB", "BYTEA", "BOOLEAN", "TIMESTAMP WITH TIME ZONE"):
        assert fragment in ddl
    assert ddl.count("FOREIGN KEY") == 4
    assert ddl.count("CREATE INDEX") == 6


def test_cli_writes_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.sqlite3"
    assert webapp_db.main(["--rows", "100", str(out)]) == 0
    assert rows_of(out, "SELECT count(*) FROM audit_logs") == [(40,)]
    assert "users 5" in capsys.readouterr().err
