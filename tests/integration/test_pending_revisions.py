"""``revisions.check_pending`` on the stack's prod host: the SQL of each pending revision is
rendered by Alembic in the app's ``api`` container, classified, and its data-dependent statements
checked read-only against prod's live data, before any upgrade.

The app runs from a copy of the reference app; the revisions of
``tests/fixtures/refapp/releases_risky/`` are placed in the copy one at a time. No setting names
the risky columns or tables: the checks come from the revisions' SQL alone.
"""

import json
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
from conftest import REPO, changes, compose, read_env_file, run_pyinfra

INVENTORY = "tests/stack/inventory.py"
DEPLOY = "tests/integration/deploys/check_pending.py"
RISKY = REPO / "tests" / "fixtures" / "refapp" / "releases_risky"
DANGLING_UNIT = 987654


def database_url(host: dict) -> str:
    url = read_env_file(host["env_file"])["DATABASE_URL"]
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def revision(host: dict) -> str | None:
    with psycopg.connect(database_url(host), autocommit=True) as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return row[0] if row else None


def schema_of_meters(host: dict) -> list[tuple]:
    with psycopg.connect(database_url(host), autocommit=True) as conn:
        columns = conn.execute(
            "SELECT column_name::text, is_nullable::text FROM information_schema.columns "
            "WHERE table_name = 'meters' ORDER BY 1"
        ).fetchall()
        constraints = conn.execute(
            "SELECT conname::text FROM pg_constraint WHERE conrelid = 'meters'::regclass ORDER BY 1"
        ).fetchall()
    return columns + constraints


def query(host: dict, text: str) -> list:
    with psycopg.connect(database_url(host), autocommit=True) as conn:
        return [row[0] for row in conn.execute(text)]


def set_env_value(path: str, key: str, value: str) -> None:
    lines = Path(path).read_text().splitlines(keepends=True)
    new = [f'{key}="{value}"\n' if line.startswith(f"{key}=") else line for line in lines]
    Path(path).write_text("".join(new))


def check(*data: str, mode: str = "-y") -> subprocess.CompletedProcess:
    args = [mode, "-v", INVENTORY, DEPLOY, "--limit", "stack-prod"]
    for item in data:
        args += ["--data", item]
    return run_pyinfra(*args)


def place(app: dict, name: str) -> Path:
    """Put one test revision into the running app's migrations (the source is bind-mounted)."""
    versions = app["src"] / "migrations" / "versions"
    for old in versions.glob("0004_*.py"):
        old.unlink()
    target = versions / name
    shutil.copy(RISKY / name, target)
    return target


def failure_line(result: subprocess.CompletedProcess) -> str:
    """The one line naming why the run stopped (planning: ``--> turnout:``; executing: the
    failing command's ``turnout:`` line)."""
    assert result.returncode != 0, result.stdout[-3000:]
    assert "Traceback" not in result.stdout, result.stdout[-3000:]
    lines = [line for line in result.stdout.splitlines() if "turnout: pending revision" in line]
    assert lines, result.stdout[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def app(stack: dict, tmp_path_factory: pytest.TempPathFactory):
    """prod's app from a copy of the reference app, at revision 0002, not migrating on start,
    with a user and meters of its own (one meter's unit has no user of that id)."""
    host = stack["hosts"]["prod"]
    source = tmp_path_factory.mktemp("refapp-pending") / "refapp"
    shutil.copytree(
        REPO / "tests" / "fixtures" / "refapp", source, ignore=shutil.ignore_patterns("__pycache__")
    )
    original = read_env_file(host["env_file"])["REFAPP_SRC"]
    compose(host, "down", "--timeout", "5")
    set_env_value(host["env_file"], "REFAPP_SRC", str(source))
    compose(host, "up", "--detach", "--wait", "--wait-timeout", "180")
    with open(host["env_file"], "a") as handle:
        handle.write('REFAPP_MIGRATE_ON_START="0"\n')
    compose(host, "up", "--detach", "--wait", "--wait-timeout", "180")
    assert revision(host) == "0002"
    with psycopg.connect(database_url(host), autocommit=True) as conn:
        user = conn.execute(
            "INSERT INTO users (email, password_hash, role, is_active) "
            "VALUES ('pending-checks@example.test', 'x', 'user', true) RETURNING id"
        ).fetchone()[0]
        meters = [
            conn.execute(
                "INSERT INTO meters (user_id, unit_id, kind, slot, value) "
                "VALUES (%s, %s, 'power', %s, 1.0) RETURNING id",
                (user, unit, slot),
            ).fetchone()[0]
            for slot, unit in enumerate((user, DANGLING_UNIT, user))
        ]
    yield {**host, "src": source, "user": user, "meters": meters}
    versions = source / "migrations" / "versions"
    if revision(host) not in ("0002", None):
        compose(host, "exec", "-T", "api", "python", "-m", "alembic", "downgrade", "0002")
    for planted in list(versions.glob("0003_*.py")) + list(versions.glob("0004_*.py")):
        planted.unlink()
    with psycopg.connect(database_url(host), autocommit=True) as conn:
        conn.execute("DELETE FROM meters WHERE user_id = %s", (user,))
        conn.execute("DELETE FROM users WHERE id = %s", (user,))
    set_env_value(host["env_file"], "REFAPP_SRC", original)
    lines = Path(host["env_file"]).read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith("REFAPP_MIGRATE_ON_START=")]
    Path(host["env_file"]).write_text("".join(kept))
    compose(host, "up", "--detach", "--wait", "--wait-timeout", "180")
    assert revision(host) == "0002"


def test_no_pending_revision_is_no_change(app: dict) -> None:
    result = check()
    assert result.returncode == 0, result.stdout[-3000:]
    assert changes(result.stdout) == 0
    assert "no pending revision: the database is at 0002" in result.stdout


def test_a_harmless_revision_passes_with_its_heavy_statement_sized(
    app: dict, tmp_path: Path
) -> None:
    place(app, "0003_meter_note.py")
    dry = check(mode="--dry")
    assert dry.returncode == 0, dry.stdout[-3000:]
    assert "Revision 0003 (meter notes and an index on meters.kind): OK" in dry.stdout
    assert "heavy (blocking_index): CREATE INDEX ix_meters_kind ON meters (kind) on " in dry.stdout
    assert "public.meters" in dry.stdout and "rows: the freeze must cover it" in dry.stdout
    assert revision(app) == "0002"

    record = Path(app["evidence_root"]) / "pending-test" / "pending.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    real = check(f"pending_record={record}")
    assert real.returncode == 0, real.stdout[-3000:]
    report = json.loads(record.read_text())
    assert report["verdict"] == "pass"
    assert [r["verdict"] for r in report["revisions"]] == ["OK"]
    assert report["revisions"][0]["heavy"][0]["table"] == "public.meters"
    again = check(f"pending_record={record}")
    assert again.returncode == 0 and changes(again.stdout) == 0, again.stdout[-3000:]
    assert revision(app) == "0002"  # the check never upgrades

    # The upgrade itself is another step's work: apply 0003 so meters.note holds NULLs.
    compose(app, "exec", "-T", "api", "python", "-m", "alembic", "upgrade", "0003")
    assert revision(app) == "0003"


def test_set_not_null_on_a_column_holding_nulls_stops_before_the_upgrade(app: dict) -> None:
    assert revision(app) == "0003"
    place(app, "0004_note_required.py")
    before = schema_of_meters(app)
    for mode in ("--dry", "-y"):
        line = failure_line(check(mode=mode))
        assert "pending revision 0004 (meter notes required) would fail" in line, line
        assert "ALTER TABLE meters ALTER COLUMN note SET NOT NULL" in line, line
        nulls = query(app, "SELECT id FROM meters WHERE note IS NULL ORDER BY id")
        assert f"{len(nulls)} rows holding NULL (ids " in line, line
        shown = ", ".join(str(i) for i in nulls[:20])
        assert shown in line, line
        assert all(str(meter) in line for meter in app["meters"] if meter in nulls[:20])
        assert "nothing was upgraded" in line
        assert revision(app) == "0003"
        assert schema_of_meters(app) == before


def test_a_foreign_key_with_dangling_values_stops_before_the_upgrade(app: dict) -> None:
    place(app, "0004_meter_unit_fk.py")
    before = schema_of_meters(app)
    for mode in ("--dry", "-y"):
        line = failure_line(check(mode=mode))
        assert "pending revision 0004 (meters.unit_id references users) would fail" in line
        assert "FOREIGN KEY(unit_id) REFERENCES users (id)" in line, line
        dangling = query(
            app,
            "SELECT id FROM meters m WHERE NOT EXISTS "
            "(SELECT 1 FROM users u WHERE u.id = m.unit_id) ORDER BY id",
        )
        assert f"{len(dangling)} rows without a parent in public.users" in line, line
        shown = dangling[:20]
        assert all(f"{meter}→(" in line for meter in shown), line
        if app["meters"][1] in shown:  # other tests' rows may come first
            assert f"{app['meters'][1]}→({DANGLING_UNIT})" in line, line
        assert revision(app) == "0003"
        assert schema_of_meters(app) == before


def test_a_data_migration_in_python_is_unchecked_unless_allowed(app: dict) -> None:
    place(app, "0004_note_backfill.py")
    line = failure_line(check(mode="--dry"))
    assert "pending revision 0004 (backfill meter notes in Python) is UNCHECKED" in line, line
    assert "cannot be rendered offline" in line, line
    assert "set allow_unchecked_revisions=true" in line, line
    line = failure_line(check())
    assert "is UNCHECKED" in line, line
    allowed = check("allow_unchecked_revisions=true")
    assert allowed.returncode == 0, allowed.stdout[-3000:]
    assert "Revision 0004 (backfill meter notes in Python): UNCHECKED" in allowed.stdout
    assert revision(app) == "0003"
    (app["src"] / "migrations" / "versions" / "0004_note_backfill.py").unlink()


SCRATCH_SCHEMA = """
CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."PlayCount" (
    "Id" integer PRIMARY KEY, "UserId" bigint, n numeric(10, 2), label varchar(255),
    code text, "Kind" text
);
CREATE TABLE parents (id integer PRIMARY KEY, code text);
INSERT INTO parents VALUES (1, 'a'), (2, 'b');
INSERT INTO "Odd Schema"."PlayCount" VALUES
    (1, 1, 1.5, 'short', '12', 'x'),
    (2, 3000000000, 123456.78, repeat('y', 40), 'twelve', 'x'),
    (3, NULL, -2.25, NULL, '7', 'y'),
    (4, 2, 0, 'z', NULL, 'x');
"""


@pytest.fixture
def scratch(stack: dict, monkeypatch: pytest.MonkeyPatch):
    """A scratch database on the source cluster with a quoted, schema-qualified table."""
    from urllib.parse import quote

    from conftest import STACK_DIR, superuser

    with superuser(stack, "source") as conn:
        conn.execute("DROP DATABASE IF EXISTS pending_scratch")
        conn.execute("CREATE DATABASE pending_scratch")
    with superuser(stack, "source", "pending_scratch") as conn:
        conn.execute(SCRATCH_SCHEMA)
    password = (STACK_DIR / "secrets" / "pg_source_superuser").read_text().strip()
    port = stack["pg"]["source"]["port"]
    dsn = f"postgresql://postgres:{quote(password, safe='')}@127.0.0.1:{port}/pending_scratch"
    monkeypatch.setenv("PENDING_SCRATCH_URL", dsn)
    yield dsn
    with superuser(stack, "source") as conn:
        conn.execute("DROP DATABASE IF EXISTS pending_scratch")


def test_host_checks_of_every_kind_on_quoted_schema_qualified_names(scratch: str) -> None:
    """The host-side checks themselves, against real PostgreSQL, for SQL Alembic renders."""
    from turnout.hostside.revisions import action_pending_checks
    from turnout.operations.revisions import plan_checks

    table = '"Odd Schema"."PlayCount"'
    sql_text = "\n".join(
        [
            f'ALTER TABLE {table} ALTER COLUMN "UserId" SET NOT NULL;',
            f'ALTER TABLE {table} ADD CONSTRAINT uq_kind UNIQUE ("Kind");',
            f"CREATE UNIQUE INDEX ix_code ON {table} (lower(code)) WHERE \"Kind\" = 'y';",
            f'ALTER TABLE {table} ADD CONSTRAINT fk FOREIGN KEY("UserId") REFERENCES parents (id);',
            f"ALTER TABLE {table} ADD CONSTRAINT ck CHECK (n >= 0);",
            f"ALTER TABLE {table} ALTER COLUMN label TYPE VARCHAR(20);",
            f'ALTER TABLE {table} ALTER COLUMN "UserId" TYPE INTEGER;',
            f"ALTER TABLE {table} ALTER COLUMN n TYPE NUMERIC(5, 1);",
            f"ALTER TABLE {table} ALTER COLUMN code TYPE INTEGER USING code::integer;",
            f"ALTER TABLE {table} ALTER COLUMN label TYPE VARCHAR(300);",
            f"ALTER TABLE {table} ADD COLUMN extra INTEGER NOT NULL;",
            "ALTER TABLE nowhere ALTER COLUMN x SET NOT NULL;",
        ]
    )
    _, checks, tables = plan_checks([{"revision": "r", "sql": sql_text}])
    answer = action_pending_checks(
        {"dsn_env": "PENDING_SCRATCH_URL", "checks": checks, "tables": tables, "limit": 5}
    )
    results = [answer["checks"][c["id"]] for c in checks]
    statuses = [r["status"] for r in results]
    assert statuses == [
        "fail",  # "UserId" NULL on row 3
        "fail",  # "Kind" x three times
        "ok",  # lower(code) among Kind = 'y': one row
        "fail",  # UserId 3000000000 has no parent
        "fail",  # n = -2.25
        "fail",  # one label of 40 characters
        "fail",  # 3000000000 is outside int4
        "fail",  # 123456.78 needs 6 digits before the point
        "fail",  # 'twelve' is not an integer
        "ok",  # widening
        "fail",  # the table has rows
        "missing",
    ], results
    assert results[0]["found"] == ["3"]
    assert results[1]["found"] == [{"values": ["x"], "rows": 3, "ids": ["1", "2", "4"]}]
    assert results[3]["found"] == [{"id": "2", "values": ["3000000000"]}]
    assert [r["found"] for r in results[4:9]] == [["3"], ["2"], ["2"], ["2"], ["2"]]
    assert results[10]["count"] == 4
    assert answer["tables"]['"Odd Schema"."PlayCount"']["total_bytes"] > 0
