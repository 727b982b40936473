"""deploys/sqlite_to_pg.py and deploys/db_status.py on the stack (issue 10; SPEC S3.1-S3.4):
staging's reference app runs on a SQLite file in its data volume with loose values planted in
it; the move builds the schema on a fresh PostgreSQL database with the app's own Alembic (inside
the api container), copies through a snapshot with checkpoints, verifies every row, and a rerun
changes nothing. Then the things that must be refused: a source edited after the checkpoint, a
restart without the release flag; and a same-key-different-content row planted in the target is
found by a fresh verification, with its key."""

import json
import sqlite3
from pathlib import Path

import pytest
from conftest import (
    STACK_DIR,
    changes,
    compose,
    read_env_file,
    run_pyinfra,
    seed_app,
    set_env_value,
    stack_env,
    superuser,
)

TARGET_DB = "moved"


def move(*data: str, mode: str = "-y", deploy: str = "deploys/sqlite_to_pg.py", env=None):
    args = ["tests/stack/inventory.py", deploy, "--limit", "stack-staging"]
    for item in data:
        args += ["--data", item]
    return run_pyinfra(mode, *args, env=env or stack_env())


def target_url(staging_url: str) -> str:
    """The app role's DSN of the fresh target database on the staging cluster."""
    return staging_url.rsplit("/", 1)[0] + f"/{TARGET_DB}"


def target_rows(stack: dict, sql: str) -> list[tuple]:
    with superuser(stack, "staging", TARGET_DB) as conn:
        return conn.execute(sql).fetchall()


def sqlite_rows(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture(scope="module")
def sqlite_app(stack: dict):
    """Staging's app on SQLite, seeded, with loose values planted the way old SQLite apps
    have them; a fresh empty ``moved`` database owned by the app role; ``PG_DATABASE_URL`` in
    staging's .env."""
    host = stack["hosts"]["staging"]
    original = read_env_file(host["env_file"])["DATABASE_URL"]
    database = Path(host["assets_dir"]) / "app.sqlite3"
    database.unlink(missing_ok=True)
    with superuser(stack, "staging") as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TARGET_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {TARGET_DB} OWNER app")
    compose(host, "down", "--timeout", "5")
    set_env_value(host["env_file"], "DATABASE_URL", "sqlite:////app/.data/app.sqlite3")
    set_env_value(host["env_file"], "PG_DATABASE_URL", target_url(original))
    try:
        compose(host, "up", "--detach", "--wait", "--wait-timeout", "180")
        seed_app(host, 30)
        with sqlite3.connect(database) as conn:  # loose values the converters must take
            conn.execute("UPDATE users SET is_active = 'yes' WHERE id = 1")
            conn.execute("UPDATE users SET is_active = 't' WHERE id = 2")
            conn.execute("UPDATE users SET created_at = 1700000000 WHERE id = 1")
            conn.execute("UPDATE users SET created_at = 1700000000123 WHERE id = 2")
            conn.execute("UPDATE meters SET slot = '7' WHERE id = 1")
        yield {**host, "file": database}
    finally:
        compose(host, "down", "--timeout", "5")
        set_env_value(host["env_file"], "DATABASE_URL", original)
        set_env_value(host["env_file"], "PG_DATABASE_URL", None)
        for leftover in database.parent.glob("app.sqlite3*"):
            leftover.unlink()
        compose(host, "up", "--detach", "--wait", "--wait-timeout", "180")
        with superuser(stack, "staging") as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {TARGET_DB} WITH (FORCE)")


def evidence_text(host: dict) -> str:
    root = Path(host["evidence_root"])
    return "\n".join(
        p.read_text(errors="replace")
        for p in root.rglob("*")
        if p.is_file() and "sqlite3" not in p.name
    )


def test_dry_run_names_the_schema_step_and_changes_nothing(stack: dict, sqlite_app: dict) -> None:
    dry = move("evidence_timestamp=s2p-1", f"sqlite_path={sqlite_app['file']}", mode="--dry")
    assert dry.returncode == 0, dry.stdout[-4000:]
    assert "Will build the schema on PG_DATABASE_URL with the app's Alembic" in dry.stdout
    assert "Will copy every table of" in dry.stdout
    assert target_rows(stack, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [
        (0,)
    ]


@pytest.mark.parametrize(
    ("bad", "line"),
    [
        ("sqlite_path=/nonexistent/app.sqlite3", "cannot check sqlite_path: cannot read SQLite "
         "file /nonexistent/app.sqlite3: No such file or directory; fix sqlite_path"),
        ("copy_tables=users,nosuch", "copy_tables: nosuch not in "),
        ("pg_dsn_env=NOT_THERE_URL", "cannot connect to the PostgreSQL target (NOT_THERE_URL): "
         "NOT_THERE_URL is not set"),
    ],
)
def test_bad_inputs_are_refused_before_any_step(
    stack: dict, sqlite_app: dict, bad: str, line: str
) -> None:
    """With -y too: one line, exit 1, no evidence directory, no schema built."""
    run = move("evidence_timestamp=s2p-bad", f"sqlite_path={sqlite_app['file']}", bad)
    assert run.returncode == 1, run.stdout[-3000:]
    last = run.stdout.strip().splitlines()[-1]
    assert last.startswith("--> turnout: ") and line in last, last
    assert last.endswith("nothing was changed")
    assert not (Path(sqlite_app["evidence_root"]) / "sqlite_to_pg" / "s2p-bad").exists()
    assert "Starting operation" not in run.stdout
    assert target_rows(stack, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [
        (0,)
    ]


def test_move_copies_verifies_and_reruns_with_no_change(
    stack: dict, sqlite_app: dict, stack_secrets: list[str]
) -> None:
    data = ("evidence_timestamp=s2p-1", f"sqlite_path={sqlite_app['file']}")
    run = move(*data)
    assert run.returncode == 0, run.stdout[-6000:]
    for table in ("users", "meters", "knowledge_materials", "ugc_assets", "gallery_items"):
        source = sqlite_rows(sqlite_app["file"], f"SELECT count(*) FROM {table}")
        assert target_rows(stack, f"SELECT count(*) FROM {table}") == source, table
    assert target_rows(stack, "SELECT is_active FROM users WHERE id IN (1, 2) ORDER BY id") == [
        (True,),
        (True,),
    ]
    assert target_rows(stack, "SELECT slot FROM meters WHERE id = 1") == [(7,)]
    created = target_rows(
        stack, "SELECT extract(epoch FROM created_at) FROM users WHERE id IN (1, 2) ORDER BY id"
    )
    assert [float(value) for (value,) in created] == [1700000000.0, 1700000000.123]
    # Sequences past the data: the next user id is above every copied one.
    (top,) = target_rows(stack, "SELECT max(id) FROM users")[0]
    (following,) = target_rows(stack, "SELECT nextval(pg_get_serial_sequence('users', 'id'))")[0]
    assert following > top

    run_dir = Path(sqlite_app["evidence_root"]) / "sqlite_to_pg" / "s2p-1"
    record = json.loads((run_dir / "run.json").read_text())
    assert record["exit"] == 0
    assert record["verify"]["matched"] is True
    # The closing lines the operator reads at default verbosity, the numbers of the reports.
    rows = sum(table["rows"] for table in record["copy"]["tables"])
    copied = f"turnout: sqlite_copy: copied {rows} rows of {len(record['copy']['tables'])} tables"
    assert copied in run.stdout, run.stdout[-4000:]
    matched = f"turnout: sqlite_verify: matched: {rows} rows in "
    assert matched in run.stdout and "every row hashed on both sides" in run.stdout
    again = move(*data)
    assert again.returncode == 0, again.stdout[-4000:]
    assert changes(again.stdout) == 0, again.stdout[-4000:]

    for secret in stack_secrets:
        assert secret not in run.stdout + again.stdout
        assert secret not in evidence_text(sqlite_app)


def test_status_shows_the_tables_and_the_app_counters(stack: dict, sqlite_app: dict) -> None:
    status = move(deploy="deploys/db_status.py", mode="-y")
    assert status.returncode == 0, status.stdout[-4000:]
    assert "users:" in status.stdout and "done" in status.stdout
    assert "compare log:" in status.stdout and "dual-write failures:" in status.stdout
    assert changes(status.stdout) == 0


def test_a_planted_difference_is_found_with_its_key(stack: dict, sqlite_app: dict) -> None:
    with superuser(stack, "staging", TARGET_DB) as conn:
        conn.execute("UPDATE meters SET kind = kind || '-x' WHERE id = 5")
    try:
        run = move("evidence_timestamp=s2p-2", f"sqlite_path={sqlite_app['file']}")
        assert run.returncode != 0
        failed = "verification failed: meters: 1 row differs (key 5)"
        assert failed in run.stdout, run.stdout[-4000:]
        run_dir = Path(sqlite_app["evidence_root"]) / "sqlite_to_pg" / "s2p-2"
        report = json.loads((run_dir / "outputs" / "verify.json").read_text())
        assert report["matched"] is False
        tables = {table["name"]: table for table in report["tables"]}
        meters = tables.pop("meters")
        keys = {
            kind: [key for difference in meters["differences"] for key in difference[kind]]
            for kind in ("different", "missing", "extra")
        }
        assert keys == {"different": [5], "missing": [], "extra": []}
        assert meters["source_rows"] == meters["target_rows"]
        assert all(table["matched"] for table in tables.values()), tables
    finally:
        with superuser(stack, "staging", TARGET_DB) as conn:
            conn.execute("UPDATE meters SET kind = left(kind, -2) WHERE id = 5")


def test_a_source_edited_after_the_checkpoint_is_refused_then_restarted(
    stack: dict, sqlite_app: dict
) -> None:
    data = ("evidence_timestamp=s2p-3", f"sqlite_path={sqlite_app['file']}")
    with sqlite3.connect(sqlite_app["file"]) as conn:
        conn.execute("UPDATE knowledge_materials SET title = 'edited' WHERE id = 2")
    refused = move(*data, mode="--dry")
    assert refused.returncode != 0
    assert "knowledge_materials" in refused.stdout and "copy_restart" in refused.stdout

    unreleased = move(*data, "copy_restart=true")
    assert unreleased.returncode != 0
    assert "i_know_what_im_doing" in unreleased.stdout

    restarted = move(*data, "copy_restart=true", "i_know_what_im_doing=true")
    assert restarted.returncode == 0, restarted.stdout[-6000:]
    assert target_rows(stack, "SELECT title FROM knowledge_materials WHERE id = 2") == [
        ("edited",)
    ]


def test_the_target_database_password_is_never_in_argv(stack: dict, sqlite_app: dict) -> None:
    from conftest import ArgvWatcher

    password = (STACK_DIR / "secrets" / "pg_staging_app").read_text().strip()
    with ArgvWatcher() as watcher:
        move("evidence_timestamp=s2p-4", f"sqlite_path={sqlite_app['file']}", mode="--dry")
    assert not [line for line in watcher.seen if password in line]
