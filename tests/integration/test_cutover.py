"""deploys/cutover.py and deploys/rollback.py on the stack's prod host (its database is the
compose ``db`` service), and the cutover's restore on the staging host (a database outside
compose): plan, refusal, run, rerun, migrate, smoke, testinfra, lock, rollback.

Everything is real: sshd, docker compose, PostgreSQL inside and outside compose, pg_dump and
pg_restore, Alembic in the app's container, HTTP and WebSocket to the reference app.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from conftest import (
    BIN,
    REPO,
    STACK_DIR,
    ArgvWatcher,
    app_from_copy,
    changes,
    compose,
    read_env_file,
    run_pyinfra,
    run_stack,
    source_artifacts,
    stack_env,
    superuser,
)

INVENTORY = "tests/stack/inventory.py"
FULL = "ct-full"
SEED_ROWS = "120"
NEW_REVISION = '''"""notes on meters (a revision added after the app started)

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("meters", sa.Column("note", sa.String(200), nullable=True))


def downgrade() -> None:
    op.drop_column("meters", "note")
'''


def secret(name: str) -> str:
    return (STACK_DIR / "secrets" / name).read_text().strip()


def smoke_env(**extra: str) -> dict[str, str]:
    return stack_env(
        TURNOUT_SMOKE_EMAIL="admin@example.test",
        TURNOUT_SMOKE_PASSWORD=secret("refapp_admin"),
        TURNOUT_SMOKE_USER_EMAIL="user@example.test",
        TURNOUT_SMOKE_USER_PASSWORD=secret("refapp_user"),
        **extra,
    )


def deploy(
    name: str, *data: str, host: str = "prod", mode: str = "-y", env: dict | None = None
) -> subprocess.CompletedProcess:
    args = [INVENTORY, f"deploys/{name}.py", "--limit", f"stack-{host}"]
    for item in data:
        args += ["--data", item]
    flags = [mode] if mode else []
    return run_pyinfra(*flags, "-v", *args, env=env or smoke_env())


def evidence(stack: dict, task: str, timestamp: str, host: str = "prod") -> Path:
    return Path(stack["hosts"][host]["evidence_root"]) / task / timestamp


def database_url(stack: dict, host: str = "prod") -> str:
    url = read_env_file(stack["hosts"][host]["env_file"])["DATABASE_URL"]
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def counts(url: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1"
            )
        ]
        return {t: conn.execute(f'SELECT count(*) FROM public."{t}"').fetchone()[0] for t in tables}


def revision(url: str) -> str | None:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return row[0] if row else None


def tree_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for item in sorted(path.rglob("*")):
        digest.update(str(item.relative_to(path)).encode())
        if item.is_file():
            digest.update(item.read_bytes())
    return digest.hexdigest()


def containers(stack: dict) -> dict[str, str]:
    out = compose(stack["hosts"]["prod"], "ps", "--all", "--format", "json").stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip().startswith("{")]
    return {row["Service"]: row["State"] for row in rows}


def one_turnout_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stdout.splitlines() if "--> turnout:" in line]
    assert result.returncode != 0, result.stdout[-3000:]
    assert len(lines) == 1, result.stdout[-3000:]
    assert "Traceback" not in result.stdout
    return lines[0]


@pytest.fixture(scope="module")
def outputs() -> list[str]:
    return []


@pytest.fixture(scope="module")
def artifacts(stack: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The source side seeded, and the night's inputs made from it: a dump and a tarball."""
    run_stack("seed", SEED_ROWS)
    state = json.loads((STACK_DIR / "stack.json").read_text())
    dump, tarball = source_artifacts(state, tmp_path_factory.mktemp("cutover-artifacts"))
    source_assets = Path(state["source"]["assets_dir"])
    with superuser(state, "source") as conn:
        source_counts = {
            t: conn.execute(f"SELECT count(*) FROM public.{t}").fetchone()[0]
            for t in ("users", "meters", "knowledge_materials", "ugc_assets", "gallery_items")
        }
    files = sum(1 for p in source_assets.rglob("*") if p.is_file())
    return {"dump": str(dump), "tarball": str(tarball), "counts": source_counts, "files": files}


@pytest.fixture(scope="module")
def prod(stack: dict, artifacts: dict, tmp_path_factory: pytest.TempPathFactory):
    """The prod app running from a copy of the reference app's source (so a test can add a
    migration to it; it does not migrate itself on start), with a row of its own and an assets
    directory holding one file of its own."""
    host = stack["hosts"]["prod"]
    for leftover in Path(host["assets_dir"]).parent.glob("assets.*"):
        shutil.rmtree(leftover)
    shutil.rmtree(host["assets_dir"], ignore_errors=True)
    Path(host["assets_dir"]).mkdir()
    (Path(host["assets_dir"]) / "before-cutover.txt").write_text("the old tree\n")
    shutil.rmtree(Path(host["evidence_root"]) / "state", ignore_errors=True)
    with app_from_copy(host, tmp_path_factory.mktemp("refapp-copy")) as source:
        with psycopg.connect(database_url(stack), autocommit=True) as conn:  # prod's own data
            conn.execute(
                "INSERT INTO users (email, password_hash, role, is_active) "
                "VALUES ('prod-only@example.test', 'x', 'user', true)"
            )
        yield {**host, "src": source}


def full_data(artifacts: dict, timestamp: str = FULL) -> tuple[str, ...]:
    return (
        f"evidence_timestamp={timestamp}",
        "i_know_what_im_doing=true",
        f"src_dump={artifacts['dump']}",
        f"src_assets={artifacts['tarball']}",
    )


def test_without_the_release_the_restores_are_refused_before_any_step(
    stack: dict, prod: dict, artifacts: dict
) -> None:
    for given in (f"src_dump={artifacts['dump']}", f"src_assets={artifacts['tarball']}"):
        result = deploy("cutover", "evidence_timestamp=ct-refused", given)
        line = one_turnout_line(result)
        assert "refusing restore-" in line and "i_know_what_im_doing=true" in line, line
    assert not evidence(stack, "cutover", "ct-refused").exists()
    assert containers(stack)["api"] == "running"


def test_dry_run_describes_every_step_and_changes_nothing(
    stack: dict, prod: dict, artifacts: dict, outputs: list[str]
) -> None:
    url = database_url(stack)
    before = (counts(url), tree_digest(Path(prod["assets_dir"])), containers(stack), revision(url))
    dry = deploy("cutover", *full_data(artifacts), mode="--dry")
    outputs.append(dry.stdout)
    assert dry.returncode == 0, dry.stdout[-4000:]
    text = dry.stdout
    assert "Will stop the writers: api (running), worker (running)" in text
    assert "inside compose service db to " in text and "baseline.dump" in text
    assert f"Will restore {artifacts['tarball']} into {prod['assets_dir']}: " in text
    assert f"{artifacts['files']} files" in text and "assets.prev_ct-full" in text
    assert "(pg_restore inside compose service db, dump streamed in)" in text
    assert "Will bring up: api (stopped by the freeze step first)" in text
    assert "Will check http://127.0.0.1:" in text
    assert "Will log in at http://127.0.0.1:" in text and "/api/v1/ws" in text
    after = (counts(url), tree_digest(Path(prod["assets_dir"])), containers(stack), revision(url))
    assert after == before
    assert not evidence(stack, "cutover", FULL).exists()


def test_the_cutover_restores_both_and_a_rerun_changes_nothing(
    stack: dict, prod: dict, artifacts: dict, outputs: list[str]
) -> None:
    with ArgvWatcher() as watcher:
        real = deploy("cutover", *full_data(artifacts))
    outputs.append(real.stdout)
    assert real.returncode == 0, real.stdout[-4000:]
    url = database_url(stack)
    live = counts(url)
    assert {t: live[t] for t in artifacts["counts"]} == artifacts["counts"]
    with psycopg.connect(url, autocommit=True) as conn:
        assert not conn.execute("SELECT 1 FROM users WHERE email LIKE 'prod-only%'").fetchall()
    assets = Path(prod["assets_dir"])
    assert sum(1 for p in assets.rglob("*") if p.is_file()) == artifacts["files"]
    prev = assets.parent / "assets.prev_ct-full"
    assert (prev / "before-cutover.txt").read_text() == "the old tree\n"
    assert not list(assets.parent.glob(".assets.staging-*"))

    run_dir = evidence(stack, "cutover", FULL)
    record = json.loads((run_dir / "run.json").read_text())
    assert record["exit"] == 0 and record["operator"]
    assert record["revisions"] == {"before": "0002", "after": "0002"}
    dump_sha = hashlib.sha256(Path(artifacts["dump"]).read_bytes()).hexdigest()
    tar_sha = hashlib.sha256(Path(artifacts["tarball"]).read_bytes()).hexdigest()
    assert record["artifacts"]["src_dump"]["sha256"] == dump_sha
    assert record["artifacts"]["src_assets"]["sha256"] == tar_sha
    baseline = run_dir / "src_artifacts" / "baseline.dump"
    assert (
        record["artifacts"]["backup"]["sha256"] == hashlib.sha256(baseline.read_bytes()).hexdigest()
    )
    for step in ("Freeze: stop the writers", "Baseline backup (pg_dump)", "Smoke: core"):
        assert record["steps"][step]["status"] == "ok" and record["steps"][step]["start"]
    for name in (
        "compose_ps.json",
        "health.json",
        "smoke.json",
        "rowcounts_before.json",
        "alembic_before.json",
        "alembic_after.json",
        "assets_after.json",
    ):
        assert (run_dir / "outputs" / name).is_file(), name
    assert oct(run_dir.stat().st_mode & 0o777) == "0o700"
    health = json.loads((run_dir / "outputs" / "health.json").read_text())
    assert health["body"]["alembic_revision"] == "0002"
    smoke = (run_dir / "outputs" / "smoke.json").read_text()
    assert '"ok": false' not in smoke
    for argv in watcher.seen:
        assert secret("refapp_admin") not in argv

    rerun = deploy("cutover", *full_data(artifacts))
    outputs.append(rerun.stdout)
    assert rerun.returncode == 0, rerun.stdout[-4000:]
    assert changes(rerun.stdout) == 0, rerun.stdout[-4000:]
    assert json.loads((run_dir / "run.json").read_text()) == record


def test_testinfra_checks_pass_after_the_cutover_and_fail_on_a_stopped_service(
    stack: dict, prod: dict
) -> None:
    def checks() -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "tests/cutover",
                "--inventory",
                INVENTORY,
                "--limit",
                "stack-prod",
                "--cutover-timestamp",
                FULL,
                "-q",
                "-p",
                "no:cacheprovider",
            ],
            cwd=REPO,
            env=stack_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )

    passed = checks()
    assert passed.returncode == 0, passed.stdout[-4000:] + passed.stderr[-2000:]
    compose(prod, "stop", "worker")
    try:
        failed = checks()
    finally:
        compose(prod, "up", "--detach", "--wait", "worker")
    assert failed.returncode != 0
    assert "worker" in failed.stdout, failed.stdout[-4000:]


def test_a_second_run_is_refused_and_a_killed_ones_lock_is_reported_stale(
    stack: dict, prod: dict, tmp_path: Path
) -> None:
    """A run waiting on a health endpoint that never answers holds the host lock: a second
    runbook on the host (the rehearsal's lock is the same) is refused at once; after kill -9 of
    the first run and its lock holder, the lock is reported stale with the command clearing it."""
    lock = Path(prod["evidence_root"]) / ".turnout.lock"
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(
        [
            str(BIN / "pyinfra"),
            "-y",
            INVENTORY,
            "deploys/cutover.py",
            "--limit",
            "stack-prod",
            "--data",
            "steps=health",
            "--data",
            "evidence_timestamp=ct-lock",
            "--data",
            "base_url=http://127.0.0.1:9",
            "--data",
            "health_retries=50",
        ],
        cwd=REPO,
        env=smoke_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (lock.exists() and lock.read_text().strip()):
            time.sleep(0.1)
        holder = json.loads(lock.read_text())
        second = deploy("cutover", "evidence_timestamp=ct-second", "steps=health", mode="--dry")
        line = one_turnout_line(second)
        assert "another run holds the host lock on stack-prod" in line, line
        assert f"pid {holder['pid']}, task cutover" in line
        os.kill(int(holder["pid"]), signal.SIGKILL)
        first.send_signal(signal.SIGKILL)
        first.wait(60)
        stale = deploy("cutover", "evidence_timestamp=ct-second", "steps=health", mode="--dry")
        line = one_turnout_line(stale)
        assert "is stale" in line and f"flock --nonblock {lock} truncate --size=0 {lock}" in line
    finally:
        if first.poll() is None:
            first.kill()
        subprocess.run(["flock", "--nonblock", lock, "truncate", "--size=0", lock], check=False)
    assert not evidence(stack, "cutover", "ct-second").exists()


def test_rollback_puts_the_previous_assets_and_database_back(
    stack: dict, prod: dict, artifacts: dict, outputs: list[str]
) -> None:
    run_dir = evidence(stack, "cutover", FULL)
    baseline_counts = json.loads((run_dir / "outputs" / "rowcounts_before.json").read_text())
    refused = deploy("rollback", "evidence_timestamp=rb-1", f"rollback_run={FULL}")
    assert "refusing rollback" in one_turnout_line(refused)

    data = ("evidence_timestamp=rb-1", f"rollback_run={FULL}", "i_know_what_im_doing=true")
    result = deploy("rollback", *data)
    outputs.append(result.stdout)
    assert result.returncode == 0, result.stdout[-4000:]
    assets = Path(prod["assets_dir"])
    assert [p.name for p in assets.iterdir()] == ["before-cutover.txt"]
    failed = assets.parent / "assets.failed_rb-1"
    assert sum(1 for p in failed.rglob("*") if p.is_file()) == artifacts["files"]
    url = database_url(stack)
    live = counts(url)
    for name, entry in baseline_counts["tables"].items():
        assert live[name.split(".", 1)[1]] == entry["count"], name
    with psycopg.connect(url, autocommit=True) as conn:  # prod's own row is back
        emails = [row[0] for row in conn.execute("SELECT email FROM users")]
    assert emails == ["prod-only@example.test"]
    health = json.loads(
        (evidence(stack, "rollback", "rb-1") / "outputs" / "health.json").read_text()
    )
    assert health["healthy"] is True

    again = deploy("rollback", *data)
    outputs.append(again.stdout)
    assert again.returncode == 0 and changes(again.stdout) == 0, again.stdout[-4000:]


def test_migrate_applies_a_new_revision_that_the_plan_listed_first(
    stack: dict, prod: dict, outputs: list[str]
) -> None:
    url = database_url(stack)
    assert revision(url) == "0002"
    (prod["src"] / "migrations" / "versions" / "0003_meter_notes.py").write_text(NEW_REVISION)
    data = ("evidence_timestamp=ct-migrate", "steps=freeze,backup,migrate,up,health")
    dry = deploy("cutover", *data, mode="--dry")
    outputs.append(dry.stdout)
    assert dry.returncode == 0, dry.stdout[-4000:]
    assert (
        "Will upgrade the database from 0002 to 0003: 1 revision(s) 0003 (notes on meters (a "
        "revision added after the app started))" in dry.stdout
    )
    assert revision(url) == "0002"
    # Another session migrating this database (turnout's advisory lock held): refused at once.
    from turnout.hostside.schema import MIGRATION_LOCK_KEY

    with psycopg.connect(url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        refused = deploy("cutover", *data)
    outputs.append(refused.stdout)
    assert refused.returncode != 0
    assert "another migration of this database is running (pid " in refused.stdout
    assert revision(url) == "0002"
    real = deploy("cutover", *data)
    outputs.append(real.stdout)
    assert real.returncode == 0, real.stdout[-4000:]
    assert revision(url) == "0003"
    record = json.loads((evidence(stack, "cutover", "ct-migrate") / "run.json").read_text())
    assert record["revisions"] == {"before": "0002", "after": "0003"}

    # Reversible: the rollback of that run downgrades to the revision recorded before it.
    back = deploy(
        "rollback",
        "evidence_timestamp=rb-migrate",
        "rollback_run=ct-migrate",
        "rollback_db=downgrade",
        "i_know_what_im_doing=true",
    )
    outputs.append(back.stdout)
    assert back.returncode == 0, back.stdout[-4000:]
    assert revision(url) == "0002"
    (prod["src"] / "migrations" / "versions" / "0003_meter_notes.py").unlink()


def test_the_restore_outside_compose_uses_the_hosts_tools(
    stack: dict, artifacts: dict, outputs: list[str]
) -> None:
    """Staging's database runs outside compose: backup and restore-db with the host's tools."""
    data = (
        "evidence_timestamp=ct-staging",
        "steps=backup,restore-db",
        "i_know_what_im_doing=true",
        f"src_dump={artifacts['dump']}",
    )
    result = deploy("cutover", *data, host="staging")
    outputs.append(result.stdout)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "inside compose service" not in result.stdout
    live = counts(database_url(stack, "staging"))
    assert {t: live[t] for t in artifacts["counts"]} == artifacts["counts"]
    again = deploy("cutover", *data, host="staging")
    assert again.returncode == 0 and changes(again.stdout) == 0, again.stdout[-4000:]


def test_no_secret_in_any_output_or_evidence(
    stack: dict, stack_secrets: list[str], outputs: list[str]
) -> None:
    texts = list(outputs)
    for host in ("prod", "staging"):
        root = Path(stack["hosts"][host]["evidence_root"])
        for path in root.rglob("*"):
            if path.is_file() and path.suffix in (".json", ".log", ".sha256"):
                texts.append(path.read_text(errors="replace"))
    for value in stack_secrets:
        assert not [text for text in texts if value in text]
    assert not [text for text in texts if "Bearer ey" in text or 'access_token": "' in text]
