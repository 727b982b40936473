"""deploys/migrate.py for an app on SQLite (S2.1, S2.2, S2.7; issue 9 item 9): the reference
app on the staging host runs on a SQLite file in its data volume; the release backs it up with
the backup API, runs the pre-checks and the duplicates gate on the file read-only, upgrades it to
0003 in the app's container, checks again, and ``rollback=restore`` puts the file back, the app
healthy at the old revision afterwards."""

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest
from conftest import (
    REPO,
    STACK_DIR,
    app_from_copy,
    changes,
    compose,
    read_env_file,
    run_pyinfra,
    seed_app,
    set_env_value,
    stack_env,
)

RELEASE = REPO / "tests" / "fixtures" / "refapp" / "releases" / "0003_unique_meter_slot.py"


def migrate(host_file: Path, *data: str, mode: str = "-y") -> subprocess.CompletedProcess:
    args = ["tests/stack/inventory.py", "deploys/migrate.py", "--limit", "stack-staging"]
    for item in (
        f"sqlite_path={host_file}",
        "health_expect=db_backend=sqlite",
        *data,
    ):
        args += ["--data", item]
    env = stack_env(
        TURNOUT_SMOKE_EMAIL="admin@example.test",
        TURNOUT_SMOKE_PASSWORD=(STACK_DIR / "secrets" / "refapp_admin").read_text().strip(),
    )
    return run_pyinfra(mode, "-v", *args, env=env)


def file_revision(path: Path) -> str:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]


@pytest.fixture(scope="module")
def sqlite_app(stack: dict, tmp_path_factory: pytest.TempPathFactory):
    """Staging's app on SQLite (a file in its data volume), from a copy of the reference app
    with the release revision 0003 pending."""
    host = stack["hosts"]["staging"]
    original = read_env_file(host["env_file"])["DATABASE_URL"]
    database = Path(host["assets_dir"]) / "app.sqlite3"
    database.unlink(missing_ok=True)
    compose(host, "down", "--timeout", "5")
    set_env_value(host["env_file"], "DATABASE_URL", "sqlite:////app/.data/app.sqlite3")
    try:
        with app_from_copy(host, tmp_path_factory.mktemp("refapp-sqlite")) as source:
            seed_app(host, 5)
            shutil.copyfile(RELEASE, source / "migrations" / "versions" / RELEASE.name)
            yield {**host, "file": database}
            compose(host, "down", "--timeout", "5")
    finally:
        set_env_value(host["env_file"], "DATABASE_URL", original)
        for leftover in database.parent.glob("app.sqlite3*"):
            leftover.unlink()
        compose(host, "up", "--detach", "--wait", "--wait-timeout", "180")


def test_release_and_file_rollback_on_sqlite(sqlite_app: dict) -> None:
    database = sqlite_app["file"]
    assert file_revision(database) == "0002"
    dry = migrate(database, "evidence_timestamp=sq-up", mode="--dry")
    assert dry.returncode == 0, dry.stdout[-4000:]
    assert f"Will back up SQLite {database}" in dry.stdout
    assert "Will upgrade the database from 0002 to 0003" in dry.stdout
    assert f"Will check SQLite {database} read-only (before, 3 check(s))" in dry.stdout
    assert "before adding uq_meter_unit_kind_slot: now NO_DUPLICATES" in dry.stdout

    up = migrate(database, "evidence_timestamp=sq-up")
    assert up.returncode == 0, up.stdout[-4000:]
    assert file_revision(database) == "0003"
    run_dir = Path(sqlite_app["evidence_root"]) / "migrate" / "sq-up"
    backup = run_dir / "src_artifacts" / "baseline.sqlite3"
    assert json.loads(backup.with_name("baseline.sqlite3.sha256").read_text())[
        "integrity_check"
    ] == "ok"
    assert file_revision(backup) == "0002"
    record = json.loads((run_dir / "run.json").read_text())
    assert record["prechecks_before"]["verdict"] == "pass"
    assert record["prechecks_after"]["verdict"] == "pass"
    assert record["unique_gate"]["verdict"] == "NO_DUPLICATES"
    again = migrate(database, "evidence_timestamp=sq-up")
    assert again.returncode == 0 and changes(again.stdout) == 0, again.stdout[-4000:]

    back = ("evidence_timestamp=sq-back", "rollback=restore", "rollback_run=sq-up",
            "i_know_what_im_doing=true")
    restored = migrate(database, *back)
    assert restored.returncode == 0, restored.stdout[-4000:]
    assert file_revision(database) == "0002"
    assert list(database.parent.glob("app.sqlite3.failed_sq-back*"))
    health = httpx.get(sqlite_app["base_url"] + "/api/v1/health", timeout=10).json()
    assert health["db_backend"] == "sqlite" and health["alembic_revision"] == "0002"
    again = migrate(database, *back)
    assert again.returncode == 0 and changes(again.stdout) == 0, again.stdout[-4000:]
