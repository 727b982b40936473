"""tests/cutover (SPEC C5) against the real stack hosts over real ssh: it passes on a consistent
host, and fails with a clear line when a service is stopped or a table lost rows.

The cutover evidence the checks read is written here by hand, in the format the cutover deploy
writes (``run.json`` with ``revisions.after``, ``outputs/rowcounts_before.json``,
``outputs/assets_after.json``), from the live state of each host.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import REPO, compose, run_pyinfra, seed_app, stack_env, superuser

TIMESTAMP = "20991231T235959Z"
TABLES = ("users", "meters", "knowledge_materials", "ugc_assets", "gallery_items")
PYTEST = str(Path(sys.executable).parent / "pytest")


def seed(host: dict, rows: int) -> None:
    seed_app(host, rows)


def prod_sql(stack: dict, query: str) -> str:
    return compose(stack["hosts"]["prod"], "exec", "-T", "db", "psql", "-At", "-c", query).stdout


def live_counts(stack: dict, name: str) -> dict[str, int]:
    if name == "prod":
        return {t: int(prod_sql(stack, f"SELECT count(*) FROM {t}")) for t in TABLES}
    with superuser(stack, "staging") as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def write_evidence(stack: dict, name: str, timestamp: str = TIMESTAMP) -> Path:
    """``<evidence_root>/cutover/<TIMESTAMP>`` as the cutover deploy leaves it, from the host's
    live state (so the checks must pass)."""
    host = stack["hosts"][name]
    run_dir = Path(host["evidence_root"]) / "cutover" / timestamp
    (run_dir / "outputs").mkdir(parents=True, exist_ok=True)
    for path in (run_dir.parent, run_dir, run_dir / "outputs"):
        os.chmod(path, 0o700)
    revision = httpx.get(host["base_url"] + "/api/v1/health", timeout=10).json()["alembic_revision"]
    files = [p for p in Path(host["assets_dir"]).rglob("*") if p.is_file() and not p.is_symlink()]
    records = {
        "run.json": {
            "task": "cutover",
            "timestamp": timestamp,
            "operator": "test",
            "steps": {},
            "exit": 0,
            "revisions": {"before": "0001", "after": revision},
            "artifacts": {},
        },
        "outputs/rowcounts_before.json": {
            "tables": {
                f"public.{t}": {"count": n, "exact": True, "relation": "table"}
                for t, n in live_counts(stack, name).items()
            }
        },
        "outputs/assets_after.json": {
            "files": len(files),
            "bytes": sum(p.stat().st_size for p in files),
        },
    }
    for rel, record in records.items():
        (run_dir / rel).write_text(json.dumps(record, indent=2))
    return run_dir


@pytest.fixture(scope="module")
def cutover(stack: dict) -> dict:
    """Both apps up and seeded, with the evidence of a cutover that left them as they are."""
    result = run_pyinfra("-y", "tests/stack/inventory.py", "deploys/app_up.py")
    assert result.returncode == 0, result.stdout[-3000:]
    for name in ("staging", "prod"):
        seed(stack["hosts"][name], 8)
        write_evidence(stack, name)
    return stack


def checks(*args: str, pin: bool = True) -> subprocess.CompletedProcess:
    """``pytest tests/cutover`` as an operator runs it, against the session's stack; ``pin``:
    the run of ``TIMESTAMP``, else the latest run (by start: ours was written last)."""
    return subprocess.run(
        [
            PYTEST,
            "tests/cutover",
            "--inventory",
            "tests/stack/inventory.py",
            *(("--cutover-timestamp", TIMESTAMP) if pin else ()),
            "--data",
            "health_expect=db_backend=postgresql",
            "-p",
            "no:cacheprovider",
            "-q",
            *args,
        ],
        env=stack_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


PROD = ("--limit", "stack-prod", "--data", "db_in_compose=true")


def test_checks_pass_on_a_consistent_host(cutover: dict, stack_secrets: list[str]) -> None:
    prod = checks(*PROD, "-vv")
    assert prod.returncode == 0, prod.stdout[-3000:] + prod.stderr[-2000:]
    assert "5 passed" in prod.stdout
    assert "[stack-prod]" in prod.stdout and "[stack-staging]" not in prod.stdout
    # Staging's database is outside compose: counted by the host's Python reading its .env.
    staging = checks("--limit", "staging", "-vv", pin=False)
    assert staging.returncode == 0, staging.stdout[-3000:] + staging.stderr[-2000:]
    assert "5 passed" in staging.stdout and "[stack-staging]" in staging.stdout
    for output in (prod.stdout + prod.stderr, staging.stdout + staging.stderr):
        assert not any(secret in output for secret in stack_secrets)


def test_a_stopped_service_fails(cutover: dict) -> None:
    host = cutover["hosts"]["prod"]
    compose(host, "stop", "worker")
    try:
        result = checks(*PROD)
    finally:
        compose(host, "start", "worker")
    assert result.returncode == 1, result.stdout[-3000:]
    assert "stack-prod: service worker is exited, expected running" in result.stdout
    assert "1 failed, 4 passed" in result.stdout


def test_a_table_that_lost_rows_fails(cutover: dict, stack_secrets: list[str]) -> None:
    before = int(prod_sql(cutover, "SELECT count(*) FROM meters"))
    prod_sql(
        cutover,
        "CREATE TABLE turnout_test_held AS SELECT * FROM meters ORDER BY id DESC LIMIT 2; "
        "DELETE FROM meters WHERE id IN (SELECT id FROM turnout_test_held)",
    )
    try:
        lost = checks(*PROD)
        tolerated = checks(*PROD, "--data", "allowed_row_diff=2")
    finally:
        prod_sql(
            cutover,
            "INSERT INTO meters SELECT * FROM turnout_test_held; DROP TABLE turnout_test_held",
        )
    assert lost.returncode == 1, lost.stdout[-3000:]
    assert f"public.meters: {before} rows before, {before - 2} now (-2)" in lost.stdout, (
        lost.stdout[-3000:]
    )
    assert "1 failed, 4 passed" in lost.stdout
    assert tolerated.returncode == 0, tolerated.stdout[-3000:]
    assert not any(secret in lost.stdout + lost.stderr for secret in stack_secrets)


def test_without_evidence_it_says_so(cutover: dict) -> None:
    result = checks(*PROD, "--cutover-timestamp", "19700101T000000Z")
    assert result.returncode == 1
    assert "stack-prod: no cutover run directory" in result.stdout


def test_a_run_that_stopped_fails(cutover: dict) -> None:
    failed = "20991231T235958Z"
    run_dir = write_evidence(cutover, "prod", failed)
    record = json.loads((run_dir / "run.json").read_text())
    record.update(exit="failed", failed_step="Migrate")
    (run_dir / "run.json").write_text(json.dumps(record))
    result = checks(*PROD, "--cutover-timestamp", failed)
    assert result.returncode == 1, result.stdout[-3000:]
    assert "did not finish: exit 'failed' at step 'Migrate'" in result.stdout
    assert "1 failed, 4 passed" in result.stdout
