"""tests/cutover (SPEC C5) against the real stack hosts over real ssh: it passes on a consistent
host, and fails with a clear line when a service is stopped or a table lost rows.

The cutover evidence the checks read is written here by hand, in the format the cutover deploy
writes (``run.json`` with ``revisions.after``, ``outputs/rowcounts_before.json``,
``outputs/assets_after.json``), from the live state of each host.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import (
    REPO,
    STACK_DIR,
    changes,
    compose,
    run_pyinfra,
    run_stack,
    seed_app,
    source_artifacts,
    stack_env,
    superuser,
)

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


# After a real cutover: content, not only counts -------------------------------------------------

REAL = "20991231T235950Z"  # later than TIMESTAMP's run by name, pinned in every check below


@pytest.fixture(scope="module")
def real_cutover(stack: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A real cutover of the stack's prod host (its database the compose db) from a dump and an
    assets tarball of the seeded source: freeze, backup, restore-assets, restore-db, up, health."""
    up = run_pyinfra("-y", "tests/stack/inventory.py", "deploys/app_up.py")
    assert up.returncode == 0, up.stdout[-3000:]
    run_stack("seed", "40")
    state = json.loads((STACK_DIR / "stack.json").read_text())
    dump, tarball = source_artifacts(state, tmp_path_factory.mktemp("checks-artifacts"))
    host = state["hosts"]["prod"]
    # A cutover of its own, whatever ran before on this stack: no kept tree, marker or run.
    for leftover in Path(host["assets_dir"]).parent.glob("assets.*"):
        shutil.rmtree(leftover)
    shutil.rmtree(Path(host["evidence_root"]) / "state", ignore_errors=True)
    shutil.rmtree(Path(host["evidence_root"]) / "cutover" / REAL, ignore_errors=True)
    data = (
        f"evidence_timestamp={REAL}",
        "i_know_what_im_doing=true",
        f"src_dump={dump}",
        f"src_assets={tarball}",
        "steps=freeze,backup,restore-assets,restore-db,up,health",
    )
    result = cutover_deploy(*data)
    assert result.returncode == 0, result.stdout[-4000:]
    return {**state, "data": data, "run_dir": Path(host["evidence_root"]) / "cutover" / REAL}


def cutover_deploy(*data: str, dry: bool = False) -> subprocess.CompletedProcess:
    args = ["--dry" if dry else "-y", "tests/stack/inventory.py", "deploys/cutover.py"]
    args += ["--limit", "stack-prod"]
    for item in data:
        args += ["--data", item]
    return run_pyinfra(*args)


def real_checks(*args: str) -> subprocess.CompletedProcess:
    return checks(*PROD, "--cutover-timestamp", REAL, *args)


def test_the_cutover_records_content_and_a_rerun_changes_nothing(real_cutover: dict) -> None:
    outputs = real_cutover["run_dir"] / "outputs"
    digests = json.loads((outputs / "table_digests.json").read_text())
    assert set(digests["tables"]) >= {f"public.{t}" for t in TABLES}
    assert digests["tables"]["public.meters"]["rows"] == int(
        prod_sql(real_cutover, "SELECT count(*) FROM meters")
    )
    manifest = json.loads((outputs / "assets_manifest.json").read_text())
    source = Path(real_cutover["source"]["assets_dir"])
    files = [p for p in source.rglob("*") if p.is_file()]
    assert manifest["count"] == len(files) > 0
    one = files[0]
    assert (
        manifest["files"][str(one.relative_to(source))]["sha256"]
        == hashlib.sha256(one.read_bytes()).hexdigest()
    )
    report = json.loads((outputs / "validate_constraints.json").read_text())
    assert report["verdict"] == "pass" and not report["missing"], report
    assert report["matched"] >= 6  # the primary keys and the foreign keys of the app's tables
    assert "fk_meters_user_id_users" in {
        i["name"] for i in report["source_constraints"]["foreign_keys"]
    }
    for secret in (STACK_DIR / "secrets").iterdir():
        value = secret.read_text().strip()
        for name in ("table_digests.json", "assets_manifest.json", "validate_constraints.json"):
            assert value not in (outputs / name).read_text()
    rerun = cutover_deploy(*real_cutover["data"])
    assert rerun.returncode == 0, rerun.stdout[-4000:]
    assert changes(rerun.stdout) == 0, rerun.stdout[-4000:]
    plan = cutover_deploy(*real_cutover["data"], dry=True)
    assert plan.returncode == 0, plan.stdout[-4000:]
    assert re.search(
        r"Will compare the constraints of the dump \S+ \(\d+ primary keys \([^)]*meters",
        plan.stdout,
    ), plan.stdout[-4000:]
    assert "foreign keys (" in plan.stdout and "fk_meters_user_id_users" in plan.stdout


def test_content_checks_pass_on_the_untouched_host(real_cutover: dict) -> None:
    result = real_checks("-rA")  # the summary names every passed check (checks() runs -q)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "7 passed" in result.stdout, result.stdout[-3000:]
    for check in ("test_rows_match_the_digests", "test_assets_match_the_manifest"):
        assert f"PASSED tests/cutover/test_after_cutover.py::{check}[stack-prod]" in result.stdout


def test_a_changed_row_value_with_the_same_counts_fails(real_cutover: dict) -> None:
    row_id, value = (
        prod_sql(real_cutover, "SELECT id, value FROM meters ORDER BY id LIMIT 1")
        .strip()
        .split("|")
    )
    prod_sql(real_cutover, f"UPDATE meters SET value = value + 1 WHERE id = {row_id}")
    try:
        changed = real_checks()
        tolerated = real_checks("--data", "cutover_unchecked_tables=public.meters")
    finally:
        prod_sql(real_cutover, f"UPDATE meters SET value = {value} WHERE id = {row_id}")
    assert changed.returncode == 1, changed.stdout[-3000:]
    assert "1 failed, 6 passed" in changed.stdout, changed.stdout[-3000:]
    assert "live rows differ from the digests" in changed.stdout
    assert "public.meters: " in changed.stdout and "rows, content differs" in changed.stdout
    assert tolerated.returncode == 0, tolerated.stdout[-3000:]
    assert real_checks().returncode == 0  # put back: the same digest again


def asset_files(stack: dict) -> list[Path]:
    root = Path(stack["hosts"]["prod"]["assets_dir"])
    return sorted(p for p in root.rglob("*") if p.is_file() and p.stat().st_size > 0)


def test_an_asset_overwritten_with_zeros_of_the_same_size_fails(real_cutover: dict) -> None:
    victim = asset_files(real_cutover)[0]
    original = victim.read_bytes()
    victim.write_bytes(bytes(len(original)))
    try:
        result = real_checks()
    finally:
        victim.write_bytes(original)
    root = Path(real_cutover["hosts"]["prod"]["assets_dir"])
    assert result.returncode == 1, result.stdout[-3000:]
    assert "1 failed, 6 passed" in result.stdout, result.stdout[-3000:]
    assert (
        f"1 file(s) with other content than the tarball's: {victim.relative_to(root)}"
        in result.stdout
    ), result.stdout[-3000:]


def test_a_deleted_file_replaced_by_another_of_the_same_size_fails(real_cutover: dict) -> None:
    victim = asset_files(real_cutover)[-1]
    original = victim.read_bytes()
    stand_in = victim.parent / "stand-in.bin"
    victim.unlink()
    stand_in.write_bytes(original)
    try:
        result = real_checks()
    finally:
        stand_in.unlink()
        victim.write_bytes(original)
    root = Path(real_cutover["hosts"]["prod"]["assets_dir"])
    assert result.returncode == 1, result.stdout[-3000:]
    assert "1 failed, 6 passed" in result.stdout, result.stdout[-3000:]
    assert f"1 file(s) missing: {victim.relative_to(root)}" in result.stdout
    assert f"1 file(s) not in the tarball: {stand_in.relative_to(root)}" in result.stdout


def test_a_constraint_missing_after_the_restore_fails_the_cutover(real_cutover: dict) -> None:
    """A constraint of the dump gone from the database (dropped since; the rerun's restore is
    skipped, the dump being restored already): the cutover fails with one line naming it."""
    prod_sql(real_cutover, "ALTER TABLE meters DROP CONSTRAINT fk_meters_user_id_users")
    try:
        result = cutover_deploy(*real_cutover["data"])
    finally:
        prod_sql(
            real_cutover,
            "ALTER TABLE meters ADD CONSTRAINT fk_meters_user_id_users FOREIGN KEY (user_id) "
            "REFERENCES users (id)",
        )
    lines = [line for line in result.stdout.splitlines() if "turnout:" in line]
    assert result.returncode != 0, result.stdout[-3000:]
    assert len(lines) == 1, result.stdout[-3000:]
    assert "Error: executed" not in result.stdout, result.stdout[-3000:]
    assert (
        "1 constraint(s) of the source missing on the target: foreign key fk_meters_user_id_users "
        "on public.meters; restore the dump again with --data restore=always" in lines[0]
    ), lines[0]
    again = cutover_deploy(*real_cutover["data"])
    assert again.returncode == 0, again.stdout[-3000:]
