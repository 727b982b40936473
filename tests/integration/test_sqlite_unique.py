"""The unique-conflict precheck (S3.2) on a real PostgreSQL and real SQLite files, through the
shipped host program (``sqlite_unique_conflicts``): rows unique in SQLite that PostgreSQL's
unique indexes refuse once converted (case under ``lower(email)``, ``1`` vs ``'1'``, char(n)
trailing spaces, one instant as epoch and as ISO text), conflicts SQLite allowed for lack of a
constraint (a partial unique index), NULLs (no conflict unless NULLS NOT DISTINCT).

This module owns the database ``turnout_uniq`` on the stack's staging cluster (owner ``app``;
its DSN in a 0600 env file under ``<stack dir>/uniq_test/``).
"""

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import STACK_DIR, superuser

from turnout.remote import hostside_command, parse_hostside_output

DB = "turnout_uniq"
TARGET_SCHEMA = """
CREATE TABLE accounts (
    id integer PRIMARY KEY,
    email varchar(255) NOT NULL,
    code integer CONSTRAINT uq_accounts_code UNIQUE,
    tag char(3) CONSTRAINT uq_accounts_tag UNIQUE,
    seen_at timestamptz CONSTRAINT uq_accounts_seen UNIQUE,
    org integer,
    nick text,
    deleted boolean NOT NULL DEFAULT false,
    note text
);
CREATE UNIQUE INDEX uq_accounts_email_lower ON accounts (lower(email));
CREATE UNIQUE INDEX uq_accounts_org_nick ON accounts (org, nick);
CREATE UNIQUE INDEX uq_accounts_live_nick ON accounts (nick) INCLUDE (note) WHERE NOT deleted;
CREATE TABLE "Slots" (
    id bigint PRIMARY KEY,
    unit integer,
    kind text,
    CONSTRAINT "Slots_unit_kind_nnd" UNIQUE NULLS NOT DISTINCT (unit, kind)
);
CREATE TABLE tokens (token text PRIMARY KEY, made_at timestamptz DEFAULT now() UNIQUE);
CREATE TABLE tags (name char(4) PRIMARY KEY);
"""
# SQLite's own tables as an app made them: no unique constraint but the key; ``code`` declared
# without a type, so that SQLite keeps 1 and '1' apart.
SOURCE_SCHEMA = """
CREATE TABLE accounts (id INTEGER PRIMARY KEY, email VARCHAR(255) NOT NULL, code, tag CHAR(3),
    seen_at DATETIME, org INTEGER, nick TEXT, deleted BOOLEAN NOT NULL, note TEXT);
CREATE TABLE "Slots" (id INTEGER PRIMARY KEY, unit INTEGER, kind TEXT);
CREATE TABLE tokens (token TEXT PRIMARY KEY);
CREATE TABLE tags (name TEXT PRIMARY KEY);
"""
CLEAN_ROWS = """
INSERT INTO accounts VALUES
    (1, 'A@x.test', 1, 'ab', '2024-05-01 10:00:00', 1, 'x', 0, 'n'),
    (2, 'b@x.test', '2', 'cd', 1714557601, NULL, 'x', 1, 'n'),
    (3, 'c@x.test', NULL, NULL, NULL, NULL, 'y', 0, NULL),
    (4, 'd@x.test', NULL, NULL, NULL, NULL, 'x', 1, NULL),
    (5, 'e@x.test', 5, 'AB', NULL, NULL, 'z', 0, NULL);
INSERT INTO "Slots" VALUES (1, NULL, 'p'), (2, 5, 'p'), (3, 6, 'p');
INSERT INTO tokens VALUES ('t1'), ('t2');
INSERT INTO tags VALUES ('ab'), ('cd');
"""
DIRTY_ROWS = """
INSERT INTO accounts VALUES
    (1, 'A@x.test', 1, 'ab', '2024-05-01 10:00:00', 1, 'x', 0, 'n'),
    (2, 'a@x.test', '1', 'ab ', 1714557600, NULL, 'x', 1, 'n'),
    (3, 'c@x.test', 3, 'cd', NULL, NULL, 'x', 0, NULL),
    (4, 'd@x.test', NULL, NULL, NULL, NULL, 'x', 1, NULL),
    (5, 'E@x.test', NULL, NULL, NULL, NULL, 'w', 1, NULL),
    (6, 'e@x.test ', 'abc', NULL, NULL, NULL, 'v', 1, NULL),
    (7, 'e@x.test', 7, NULL, '2024-05-01T12:00:00+02:00', NULL, 'u', 1, NULL);
INSERT INTO "Slots" VALUES (1, NULL, 'p'), (2, NULL, 'p'), (3, 5, 'p'), (4, 6, 'p');
INSERT INTO tokens VALUES ('t1'), ('T1');
INSERT INTO tags VALUES ('ab'), ('ab  ');
"""
OUTPUTS: list[str] = []


@pytest.fixture(scope="module")
def uniq(stack: dict, tmp_path_factory: pytest.TempPathFactory):
    root = STACK_DIR / "uniq_test"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    with superuser(stack, "staging", "postgres") as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB} OWNER app")
    password = (STACK_DIR / "secrets" / "pg_staging_app").read_text().strip()
    port = stack["pg"]["staging"]["port"]
    env_file = root / "uniq.env"
    env_file.touch(mode=0o600)
    env_file.write_text(
        f'UNIQ_URL="postgresql://app:{quote(password, safe="")}@127.0.0.1:{port}/{DB}"\n'
    )
    with superuser(stack, "staging", DB) as conn:
        conn.execute("SET ROLE app")
        conn.execute(TARGET_SCHEMA)
    files = {}
    for name, rows in (("clean", CLEAN_ROWS), ("dirty", DIRTY_ROWS)):
        path = tmp_path_factory.mktemp(name) / "app.db"
        with sqlite3.connect(path) as conn:
            conn.executescript(SOURCE_SCHEMA + rows)
        files[name] = str(path)
    yield {"stack": stack, "env_file": str(env_file), "files": files}
    with superuser(stack, "staging", "postgres") as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    shutil.rmtree(root, ignore_errors=True)


def conflicts_fact(uniq: dict, source: str, **params: object) -> dict:
    """The shipped program's answer on the "host" (this machine), as the fact runs it; the DSN
    comes from the env file only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UNIQ_", "PG", "DATABASE"))}
    params = {
        "sqlite_path": uniq["files"][source],
        "dsn_env": "UNIQ_URL",
        "env_file": uniq["env_file"],
        **params,
    }
    command = hostside_command(
        "sqlite_unique_conflicts", params, python=uniq["stack"]["python"]
    ).get_raw_value()
    result = subprocess.run(
        ["sh", "-c", command], capture_output=True, text=True, env=env, check=False, timeout=120
    )
    OUTPUTS.append(result.stdout + result.stderr)
    assert result.returncode == 0, result.stderr  # a fact always exits 0
    return parse_hostside_output(result.stdout.splitlines())


CHECKED = {
    ("accounts_pkey", "public.accounts", "PRIMARY KEY (id)"),
    ("uq_accounts_code", "public.accounts", "UNIQUE (code)"),
    ("uq_accounts_email_lower", "public.accounts", None),
    ("uq_accounts_live_nick", "public.accounts", None),
    ("uq_accounts_org_nick", "public.accounts", None),
    ("uq_accounts_seen", "public.accounts", "UNIQUE (seen_at)"),
    ("uq_accounts_tag", "public.accounts", "UNIQUE (tag)"),
    ("Slots_pkey", 'public."Slots"', "PRIMARY KEY (id)"),
    ("Slots_unit_kind_nnd", 'public."Slots"', "UNIQUE NULLS NOT DISTINCT (unit, kind)"),
    ("tokens_pkey", "public.tokens", "PRIMARY KEY (token)"),
    ("tokens_made_at_key", "public.tokens", "UNIQUE (made_at)"),
    ("tags_pkey", "public.tags", "PRIMARY KEY (name)"),
}


def test_clean_data_has_no_conflict_and_every_index_is_checked(uniq: dict) -> None:
    answer = conflicts_fact(uniq, "clean")
    assert answer["ok"] is True, answer
    assert answer["conflicts"] == []
    assert answer["bad_values"] == [] and answer["bad_value_count"] == 0
    checked = {(c["name"], c["table"], c["definition"]) for c in answer["checked"]}
    assert {(n, t) for n, t, _ in checked} == {(n, t) for n, t, _ in CHECKED}
    for name, table, definition in CHECKED:
        if definition:
            assert (name, table, definition) in checked
    indexes = {c["name"]: c["definition"] for c in answer["checked"]}
    assert "lower((email)::text)" in indexes["uq_accounts_email_lower"]
    assert "WHERE (NOT deleted)" in indexes["uq_accounts_live_nick"]
    skipped = {c["name"]: c.get("skipped") for c in answer["checked"]}
    assert "made_at" in skipped["tokens_made_at_key"]  # a column only the target has
    assert skipped["accounts_pkey"] is None
    proven = {c["name"]: c.get("proven") for c in answer["checked"]}
    assert "INTEGER PRIMARY KEY" in proven["accounts_pkey"]  # SQLite's rowid: nothing to load
    assert "INTEGER PRIMARY KEY" in proven["Slots_pkey"]
    assert proven["tokens_pkey"] is None and proven["tags_pkey"] is None
    assert answer["tables"] == ['public."Slots"', "public.accounts", "public.tags", "public.tokens"]


def test_the_traps_postgresql_refuses_are_found(uniq: dict, stack_secrets: list[str]) -> None:
    answer = conflicts_fact(uniq, "dirty")
    assert answer["ok"] is True, answer
    found = {c["name"]: c for c in answer["conflicts"]}
    assert set(found) == {
        "uq_accounts_email_lower",  # 'A@x.test' / 'a@x.test', 'E@x.test' / 'e@x.test'
        "uq_accounts_code",  # 1 / '1'
        "uq_accounts_tag",  # char(3): 'ab' / 'ab '
        "uq_accounts_seen",  # ISO text / epoch seconds / an offset, of one instant
        "uq_accounts_live_nick",  # a partial index SQLite never had
        "Slots_unit_kind_nnd",  # NULLS NOT DISTINCT
        "tags_pkey",  # a primary key: char(4) 'ab' / 'ab  ', two values in SQLite's TEXT key
    }  # not tokens_pkey: 't1' and 'T1' differ in PostgreSQL too
    email = found["uq_accounts_email_lower"]
    assert email["table"] == "public.accounts"
    assert email["group_count"] == 2
    assert email["groups"] == [
        {"key": ["a@x.test"], "count": 2, "rows": {"id": [1, 2]}},
        {"key": ["e@x.test"], "count": 2, "rows": {"id": [5, 7]}},
    ]  # 'e@x.test ' (row 6, trailing space) is another value in varchar
    assert found["uq_accounts_code"]["groups"] == [
        {"key": ["1"], "count": 2, "rows": {"id": [1, 2]}}
    ]
    assert found["uq_accounts_tag"]["groups"] == [
        {"key": ["ab"], "count": 2, "rows": {"id": [1, 2]}}
    ]
    seen = found["uq_accounts_seen"]["groups"]
    assert [(g["count"], g["rows"]) for g in seen] == [(3, {"id": [1, 2, 7]})]
    assert found["uq_accounts_live_nick"]["groups"] == [
        {"key": ["x"], "count": 2, "rows": {"id": [1, 3]}}  # rows 2 and 4 are deleted
    ]
    assert found["Slots_unit_kind_nnd"]["table"] == 'public."Slots"'
    assert found["Slots_unit_kind_nnd"]["groups"] == [
        {"key": [None, "p"], "count": 2, "rows": {"id": [1, 2]}}
    ]
    assert found["tags_pkey"]["groups"] == [{"key": ["ab"], "count": 2}]  # no integer key
    # (org, nick) with org NULL in rows 2-7: NULLs are distinct, no conflict
    assert "uq_accounts_org_nick" not in found
    # the row that cannot convert is reported with table, key and column, and left out
    assert answer["bad_value_count"] == 1
    [bad] = answer["bad_values"]
    assert bad["table"] == "public.accounts" and bad["key"] == {"id": 6}
    assert bad["column"] == "code" and "not an integer" in bad["error"]
    for output in OUTPUTS:
        assert not any(secret in output for secret in stack_secrets)


def test_limit_and_lossy(uniq: dict) -> None:
    answer = conflicts_fact(uniq, "dirty", limit=1, lossy=True, tables=["accounts"])
    email = next(c for c in answer["conflicts"] if c["name"] == "uq_accounts_email_lower")
    assert email["group_count"] == 2 and len(email["groups"]) == 1
    assert answer["tables"] == ["public.accounts"]
    assert answer["bad_value_count"] == 1  # an integer has no lossy form


def test_nothing_is_written_to_the_target(uniq: dict) -> None:
    with superuser(uniq["stack"], "staging", DB) as conn:
        counts = conn.execute(
            'SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM "Slots"), '
            "(SELECT count(*) FROM tokens)"
        ).fetchone()
        temp = conn.execute("SELECT count(*) FROM pg_class WHERE relpersistence = 't'").fetchone()
    assert counts == (0, 0, 0)
    assert temp == (0,)


def test_a_problem_is_one_line(uniq: dict) -> None:
    answer = conflicts_fact(uniq, "clean", tables=["missing_table"])
    assert answer["ok"] is False
    assert "table missing_table is not in the SQLite file" in answer["error"]
    answer = conflicts_fact(uniq, "clean", limit=0)
    assert answer["ok"] is False and "limit must be a positive integer" in answer["error"]
    missing = dict(uniq, files={"clean": str(Path(uniq["files"]["clean"]).parent / "none.db")})
    answer = conflicts_fact(missing, "clean")
    assert answer["ok"] is False and "cannot read SQLite file" in answer["error"]


@pytest.mark.slow
def test_precheck_scale(uniq: dict, tmp_path: Path) -> None:
    """Scale: 200k rows through the precheck (every index of ``accounts``), printed as rows/s."""
    import time

    rows = 200_000
    path = tmp_path / "big.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(SOURCE_SCHEMA)
        conn.executemany(
            "INSERT INTO accounts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (i, f"U{i}@x.test", i, None, 1_700_000_000 + i, i % 50, f"n{i}", i % 2, "note")
                for i in range(1, rows + 1)
            ),
        )
    started = time.monotonic()
    answer = conflicts_fact(dict(uniq, files={"big": str(path)}), "big", tables=["accounts"])
    elapsed = time.monotonic() - started
    assert answer["ok"] is True and answer["conflicts"] == [], answer
    print(f"precheck: {rows} rows, 7 indexes, {elapsed:.1f} s, {rows / elapsed:,.0f} rows/s")
