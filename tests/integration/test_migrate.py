"""deploys/migrate.py on the stack's prod host (the database in compose): a schema release of
the reference app's revision 0003 (``uq_meter_unit_kind_slot``), its duplicates gate and
released dedupe, a revision failing halfway, downgrade and restore rollbacks.

Everything is real: sshd, docker compose, PostgreSQL, Alembic in the app's container, HTTP.
"""

import json
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
from conftest import (
    REPO,
    STACK_DIR,
    app_database_url,
    app_from_copy,
    app_revision,
    changes,
    run_pyinfra,
    seed_app,
    stack_env,
)

RELEASE = REPO / "tests" / "fixtures" / "refapp" / "releases" / "0003_unique_meter_slot.py"
IRREVERSIBLE = '''"""notes on users, one way

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("note", sa.String(50), nullable=True))


def downgrade() -> None:
    pass
'''
FAILING = '''"""breaks halfway

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("half", sa.Integer(), nullable=True))
    op.execute("SELECT 1 / 0")


def downgrade() -> None:
    op.drop_column("users", "half")
'''


def secret(name: str) -> str:
    return (STACK_DIR / "secrets" / name).read_text().strip()


def migrate(*data: str, mode: str = "-y") -> subprocess.CompletedProcess:
    args = ["tests/stack/inventory.py", "deploys/migrate.py", "--limit", "stack-prod"]
    for item in data:
        args += ["--data", item]
    env = stack_env(
        TURNOUT_SMOKE_EMAIL="admin@example.test",
        TURNOUT_SMOKE_PASSWORD=secret("refapp_admin"),
        TURNOUT_SMOKE_USER_EMAIL="user@example.test",
        TURNOUT_SMOKE_USER_PASSWORD=secret("refapp_user"),
    )
    return run_pyinfra(mode, "-v", *args, env=env)


def turnout_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stdout.splitlines() if "turnout: " in line]


def constraint_exists(host: dict, name: str) -> bool:
    with psycopg.connect(app_database_url(host), autocommit=True) as conn:
        return bool(
            conn.execute("SELECT 1 FROM pg_constraint WHERE conname = %s", (name,)).fetchall()
        )


def plant_duplicates(host: dict, groups: int = 2) -> list[int]:
    """Copies of existing meters (same unit, kind, slot): the extra rows' ids."""
    with psycopg.connect(app_database_url(host), autocommit=True) as conn:
        rows = conn.execute(
            "INSERT INTO meters (user_id, unit_id, kind, slot, value) "
            "SELECT user_id, unit_id, kind, slot, value + 1 FROM meters ORDER BY id LIMIT %s "
            "RETURNING id",
            (groups,),
        ).fetchall()
    return [row[0] for row in rows]


@pytest.fixture(scope="module")
def app(stack: dict, tmp_path_factory: pytest.TempPathFactory):
    """prod's app from a copy of the reference app (seeded), with the release revision 0003
    pending in it."""
    host = stack["hosts"]["prod"]
    shutil.rmtree(Path(host["evidence_root"]) / "migrate", ignore_errors=True)
    with app_from_copy(host, tmp_path_factory.mktemp("refapp-migrate")) as source:
        seed_app(host, 20)
        versions = source / "migrations" / "versions"
        shutil.copyfile(RELEASE, versions / RELEASE.name)
        yield {**host, "src": source, "versions": versions}


def test_dry_run_shows_backup_checks_pending_and_the_gate(app: dict) -> None:
    dry = migrate("evidence_timestamp=mg-dry", mode="--dry")
    assert dry.returncode == 0, dry.stdout[-4000:]
    text = dry.stdout
    assert "Will dump app at 127.0.0.1:" in text and "inside compose service db" in text
    assert "active_admin [users(role=admin, is_active=true): at least 1 row(s)]: now" in text
    assert "Will upgrade the database from 0002 to 0003: 1 revision(s) 0003 (" in text
    assert "before adding uq_meter_unit_kind_slot: now NO_DUPLICATES" in text
    assert app_revision(app) == "0002"
    assert not (Path(app["evidence_root"]) / "migrate" / "mg-dry").exists()


def test_duplicates_stop_the_release_before_the_upgrade(app: dict) -> None:
    extra = plant_duplicates(app)
    result = migrate("evidence_timestamp=mg-dup")
    assert result.returncode != 0
    lines = turnout_lines(result)
    assert len(lines) == 1 and "uq_meter_unit_kind_slot" in lines[0], result.stdout[-4000:]
    assert app_revision(app) == "0002" and not constraint_exists(app, "uq_meter_unit_kind_slot")
    record = json.loads(
        (Path(app["evidence_root"]) / "migrate" / "mg-dup" / "run.json").read_text()
    )
    assert record["exit"] == "failed" and record["failed_step"] == "Duplicates gate"
    # dedupe needs the release, before any step
    refused = migrate("evidence_timestamp=mg-dup", "dedupe=true")
    assert refused.returncode != 0 and "refusing dedupe" in refused.stdout
    app["planted"] = extra


def test_a_released_dedupe_lets_the_release_pass_and_a_rerun_changes_nothing(app: dict) -> None:
    data = (
        "evidence_timestamp=mg-dup",
        "dedupe=true",
        "i_know_what_im_doing=true",
        "smoke_writes=2",
    )
    result = migrate(*data)
    assert result.returncode == 0, result.stdout[-4000:]
    assert app_revision(app) == "0003" and constraint_exists(app, "uq_meter_unit_kind_slot")
    run_dir = Path(app["evidence_root"]) / "migrate" / "mg-dup"
    deleted = json.loads((run_dir / "outputs" / "dedupe.json").read_text())
    assert sorted(deleted["deleted_ids"]) == sorted(app["planted"]), deleted
    record = json.loads((run_dir / "run.json").read_text())
    assert record["exit"] == 0 and record["revisions"] == {"before": "0002", "after": "0003"}
    # After-checks (S2.8): admin and normal user, two sample writes read back and removed.
    smoke = json.loads((run_dir / "outputs" / "smoke.json").read_text())
    assert smoke["verdict"] == "pass"
    checks = {row["check"]: row for row in smoke["checks"]}
    assert checks["GET as user"]["got"] in (401, 403)
    assert all(
        checks[f"sample {kind} {n}"]["ok"]
        for kind in ("write", "read", "removal", "gone")
        for n in (0, 1)
    )
    with psycopg.connect(app_database_url(app), autocommit=True) as conn:
        left = conn.execute("SELECT count(*) FROM meters WHERE kind = 'turnout-smoke'").fetchone()
    assert left[0] == 0
    report = (run_dir / "report.md").read_text()
    assert report.startswith("# migrate mg-dup — passed") and "to restore the backup" in report
    again = migrate(*data)
    assert again.returncode == 0 and changes(again.stdout) == 0, again.stdout[-4000:]


def test_rollback_minus_one_downgrades_and_a_rerun_changes_nothing(app: dict) -> None:
    data = ("evidence_timestamp=mg-back", "rollback=-1", "rollback_run=mg-dup")
    assert "refusing the schema rollback" in migrate(*data, mode="--dry").stdout
    released = (*data, "i_know_what_im_doing=true")
    dry = migrate(*released, mode="--dry")
    assert "Will downgrade the database from 0003 to 0002, undoing 0003 (" in dry.stdout
    result = migrate(*released)
    assert result.returncode == 0, result.stdout[-4000:]
    assert app_revision(app) == "0002" and not constraint_exists(app, "uq_meter_unit_kind_slot")
    again = migrate(*released)
    assert again.returncode == 0 and changes(again.stdout) == 0, again.stdout[-4000:]


def test_a_revision_failing_halfway_leaves_the_previous_revision(app: dict) -> None:
    ok = migrate("evidence_timestamp=mg-up")
    assert ok.returncode == 0 and app_revision(app) == "0003", ok.stdout[-4000:]
    failing = app["versions"] / "0004_breaks.py"
    failing.write_text(FAILING)
    try:
        result = migrate("evidence_timestamp=mg-fail")
    finally:
        failing.unlink()
    assert result.returncode != 0
    lines = turnout_lines(result)
    assert len(lines) == 1, result.stdout[-4000:]
    assert "the migration failed" in lines[0] and "the database is at revision 0003" in lines[0]
    assert "rollback=restore --data rollback_run=mg-fail" in lines[0]
    assert app_revision(app) == "0003"
    with psycopg.connect(app_database_url(app), autocommit=True) as conn:
        columns = [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'users'"
            )
        ]
    assert "half" not in columns


def test_an_irreversible_revision_is_refused_and_the_backup_restores(app: dict) -> None:
    (app["versions"] / "0004_one_way.py").write_text(IRREVERSIBLE)
    up = migrate("evidence_timestamp=mg-oneway")
    assert up.returncode == 0 and app_revision(app) == "0004", up.stdout[-4000:]
    back = (
        "evidence_timestamp=mg-oneway-back",
        "rollback=-1",
        "rollback_run=mg-oneway",
        "i_know_what_im_doing=true",
    )
    dry = migrate(*back, mode="--dry")
    lines = turnout_lines(dry)
    assert dry.returncode != 0 and len(lines) == 1, dry.stdout[-4000:]
    assert "revision 0004 (notes on users, one way) is irreversible" in lines[0]
    assert "rollback=restore --data rollback_run=mg-oneway" in lines[0]

    # A truncated backup is never taken for good.
    baseline = (
        Path(app["evidence_root"]) / "migrate" / "mg-oneway" / "src_artifacts" / "baseline.dump"
    )
    kept = baseline.read_bytes()
    baseline.write_bytes(kept[: len(kept) // 2])
    restore = (
        "evidence_timestamp=mg-restore",
        "rollback=restore",
        "rollback_run=mg-oneway",
        "i_know_what_im_doing=true",
    )
    truncated = migrate(*restore)
    assert truncated.returncode != 0 and app_revision(app) == "0004", truncated.stdout[-4000:]
    baseline.write_bytes(kept)

    restored = migrate(*restore)
    assert restored.returncode == 0, restored.stdout[-4000:]
    assert app_revision(app) == "0003"
    again = migrate(*restore)
    assert again.returncode == 0 and changes(again.stdout) == 0, again.stdout[-4000:]
    (app["versions"] / "0004_one_way.py").unlink()
