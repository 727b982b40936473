"""deploys/db_phase.py on the stack (issue 10 items 7-9; SPEC S3.5-S3.7): staging's reference
app runs on a SQLite file in its data volume, with a PostgreSQL database (``phase_target`` on the
staging cluster) holding the same schema (the app's own Alembic) and the same seeded rows, its
DSN in ``PG_DATABASE_URL`` of the server-side ``.env``. The phases go shadow → dual → cutover →
rollback; each is a redacted ``.env`` diff in ``--dry`` that changes nothing, a run, a rerun
with zero changes and a healthy app; shadow reads and dual writes really reach the compare log
and the failure table; the rollback is timed; no secret anywhere.
"""

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
from conftest import (
    STACK_DIR,
    ArgvWatcher,
    changes,
    compose,
    read_env_file,
    run_pyinfra,
    seed_app,
    superuser,
)

from turnout.phases import PHASE_KEYS

TARGET_DB = "phase_target"
SQLITE_URL = "sqlite:////app/.data/app.sqlite3"
EXTRA_LINES = (
    "# turnout test: a comment kept as it is\n"
    "\n"
    "export TURNOUT_TEST_EXPORTED='kept as is'  # inline comment\n"
)


def db_phase(phase: str, *data: str, mode: str = "-y", verbose: str = "-v"):
    args = ["tests/stack/inventory.py", "deploys/db_phase.py", "--limit", "stack-staging"]
    for item in ((f"phase={phase}",) if phase else ()) + data:
        args += ["--data", item]
    return run_pyinfra(mode, verbose, *args)


def other_lines(text: str) -> list[str]:
    """The lines of an .env that no phase may touch, in order."""
    keep = []
    for line in text.splitlines(keepends=True):
        key = line.split("=", 1)[0].removeprefix("export ").strip()
        if key not in PHASE_KEYS:
            keep.append(line)
    return keep


def app_env(host: dict) -> dict[str, str]:
    """What the running api container has in its environment for the phase keys."""
    out = compose(host, "exec", "-T", "api", "env").stdout
    pairs = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return {key: pairs.get(key, "") for key in PHASE_KEYS}


def health(host: dict) -> dict:
    return httpx.get(host["base_url"] + "/api/v1/health", timeout=10).json()


def token(host: dict) -> str:
    password = (STACK_DIR / "secrets" / "refapp_admin").read_text().strip()
    answer = httpx.post(
        host["base_url"] + "/api/v1/auth/login",
        json={"email": "admin@example.test", "password": password},
        timeout=10,
    )
    answer.raise_for_status()
    return answer.json()["access_token"]


def pg_rows(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
        return conn.execute(sql).fetchall()


def pg_value(phased: dict, meter_id: int) -> float:
    return pg_rows(phased["pg_url"], f"SELECT value FROM meters WHERE id = {meter_id}")[0][0]


def sqlite_value(phased: dict, meter_id: int) -> float:
    with sqlite3.connect(phased["file"]) as conn:
        return conn.execute("SELECT value FROM meters WHERE id = ?", (meter_id,)).fetchone()[0]


def assert_no_secret(texts: list[str], secrets: list[str], where: str) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"a stack secret appears in {where}"


def evidence_texts(run_dir: Path) -> list[str]:
    return [p.read_text(errors="replace") for p in run_dir.rglob("*") if p.is_file()]


@pytest.fixture(scope="module")
def phased(stack: dict):
    """Staging's app on SQLite with the PostgreSQL target loaded and named in its .env; the .env,
    the database and the app are put back afterwards."""
    host = stack["hosts"]["staging"]
    env_path = Path(host["env_file"])
    original = env_path.read_bytes()
    database = Path(host["assets_dir"]) / "app.sqlite3"
    staging_url = read_env_file(host["env_file"])["DATABASE_URL"]
    pg_url = staging_url.rsplit("/", 1)[0] + f"/{TARGET_DB}"
    with superuser(stack, "staging") as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TARGET_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {TARGET_DB} OWNER app")
    evidence = Path(host["evidence_root"]) / "db_phase"
    move_dirs = [Path(host["evidence_root"]) / d for d in ("sqlite_to_pg", "state/sqlite_to_pg")]
    for directory in (evidence, *move_dirs):
        shutil.rmtree(directory, ignore_errors=True)
    compose(host, "down", "--timeout", "5")
    try:
        database.unlink(missing_ok=True)
        lines = original.decode().splitlines(keepends=True)
        lines = [f'DATABASE_URL="{SQLITE_URL}"\n' if x.startswith("DATABASE_URL=") else x
                 for x in lines]
        text = "".join(lines) + EXTRA_LINES + f'PG_DATABASE_URL="{pg_url}"\n'
        env_path.write_text(text)
        compose(host, "up", "--detach", "--wait", "--wait-timeout", "180")
        seed_app(host, 5)
        # The same schema and rows on PostgreSQL, as the operator gets them: the move.
        moved = run_pyinfra(
            "-y", "tests/stack/inventory.py", "deploys/sqlite_to_pg.py", "--limit",
            "stack-staging", "--data", f"sqlite_path={database}", "--data",
            "evidence_timestamp=ph-move",
        )
        assert moved.returncode == 0, moved.stdout[-4000:]
        assert health(host)["db_backend"] == "sqlite"
        yield {**host, "file": database, "pg_url": pg_url, "env_path": env_path, "base_env": text}
    finally:
        compose(host, "down", "--timeout", "5", check=False)
        env_path.write_bytes(original)
        os.chmod(env_path, 0o600)
        for leftover in database.parent.glob("app.sqlite3*"):
            leftover.unlink()
        for backup in env_path.parent.glob(".env.before-*"):
            backup.unlink()
        for directory in (evidence, *move_dirs):
            shutil.rmtree(directory, ignore_errors=True)
        with superuser(stack, "staging") as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {TARGET_DB} WITH (FORCE)")
        compose(host, "up", "--detach", "--wait", "--wait-timeout", "180")


def switch(
    phased: dict, phase: str, secrets: list[str], *data: str
) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """--dry (at -vv: a redacted diff, nothing changed), the run, the rerun (zero changes); the
    other lines of the .env byte for byte, its mode kept, the app healthy, no secret anywhere."""
    env_path = phased["env_path"]
    before = env_path.read_bytes()
    pinned = f"evidence_timestamp=ph-{phase}"
    dry = db_phase(phase, pinned, *data, mode="--dry", verbose="-vv")
    assert dry.returncode == 0, dry.stdout[-4000:]
    assert f"Will rewrite {env_path}" in dry.stdout, dry.stdout[-4000:]
    assert f"--- {env_path} (now)" in dry.stdout and f"+++ {env_path} (after)" in dry.stdout
    assert env_path.read_bytes() == before
    with ArgvWatcher() as watcher:
        done = db_phase(phase, pinned, *data, verbose="-vv")
    assert done.returncode == 0, done.stdout[-4000:]
    again = db_phase(phase, pinned, *data)
    assert again.returncode == 0 and changes(again.stdout) == 0, again.stdout[-4000:]
    after = env_path.read_bytes()
    assert other_lines(after.decode()) == other_lines(before.decode())
    assert stat.S_IMODE(env_path.stat().st_mode) == 0o600
    run_dir = Path(phased["evidence_root"]) / "db_phase" / f"ph-{phase}"
    record = json.loads((run_dir / "outputs" / "env_phase.json").read_text())
    assert record["changed_keys"] and Path(record["backup"]).read_bytes() == before
    assert stat.S_IMODE(Path(record["backup"]).stat().st_mode) == 0o600
    assert json.loads((run_dir / "run.json").read_text())["exit"] == 0
    outputs = [dry.stdout, done.stdout, again.stdout]
    assert_no_secret(outputs, secrets, "the output")
    assert_no_secret(evidence_texts(run_dir), secrets, "the evidence")
    assert_no_secret(list(watcher.seen), secrets, "argv")
    return dry, done


def test_refusals_while_loading(phased: dict) -> None:
    before = phased["env_path"].read_bytes()
    missing = db_phase("", mode="--dry")
    assert missing.returncode != 0
    assert "no phase given: run with --data phase=shadow" in missing.stdout, missing.stdout[-2000:]
    unknown = db_phase("later", mode="--dry")
    assert unknown.returncode != 0 and "shadow or dual or cutover or rollback" in unknown.stdout
    no_variable = db_phase("shadow", "pg_dsn_env=NOT_THERE_URL", mode="--dry")
    assert no_variable.returncode != 0
    assert "does not define NOT_THERE_URL, which DATABASE_URL would refer to" in no_variable.stdout
    no_file = db_phase("rollback", "sqlite_path=/nonexistent/app.sqlite3",
                       "i_know_what_im_doing=true", mode="--dry")
    assert no_file.returncode != 0
    assert "sqlite_path /nonexistent/app.sqlite3 is not a file on the host" in no_file.stdout
    # Leaving SQLite needs the copy complete, verified and current (nothing the app wrote lost).
    no_path = db_phase("shadow", mode="--dry")
    assert no_path.returncode != 0 and "phase shadow moves the app off SQLite: set sqlite_path" in (
        no_path.stdout
    )
    with sqlite3.connect(phased["file"]) as conn:  # the app wrote after the copy
        conn.execute("UPDATE meters SET value = value + 1 WHERE id = 3")
    try:
        changed = db_phase("shadow", f"sqlite_path={phased['file']}", mode="-y")
        assert changed.returncode != 0
        line = f"phase shadow: {phased['file']} changed since the copy into PostgreSQL (meters)"
        assert line in changed.stdout, changed.stdout[-2000:]
    finally:
        with sqlite3.connect(phased["file"]) as conn:
            conn.execute("UPDATE meters SET value = value - 1 WHERE id = 3")
    verified = Path(phased["evidence_root"]) / "state" / "sqlite_to_pg" / "verified.json"
    assert json.loads(verified.read_text())["matched"] is True
    verified.rename(verified.with_suffix(".aside"))
    try:
        unverified = db_phase("shadow", f"sqlite_path={phased['file']}", mode="-y")
        assert unverified.returncode != 0
        assert "into PostgreSQL has no passed verification" in unverified.stdout
    finally:
        verified.with_suffix(".aside").rename(verified)
    assert phased["env_path"].read_bytes() == before
    assert not (Path(phased["evidence_root"]) / "db_phase").exists()


def test_shadow_reads_are_compared_and_logged(phased: dict, stack_secrets: list[str]) -> None:
    dry, _ = switch(phased, "shadow", stack_secrets, f"sqlite_path={phased['file']}")
    assert '-DATABASE_URL="sqlite:////app/.data/app.sqlite3"' in dry.stdout
    assert '+DATABASE_URL="${PG_DATABASE_URL}"' in dry.stdout
    assert '+DB_READ_MODE="shadow_compare"' in dry.stdout
    assert "moved to the end of the file" in dry.stdout  # PG_DATABASE_URL is defined below it
    assert app_env(phased) == {
        "DATABASE_URL": phased["pg_url"],
        "DATABASE_URL_SECONDARY": SQLITE_URL,
        "DB_WRITE_MODE": "single",
        "DB_READ_MODE": "shadow_compare",
    }
    assert health(phased)["db_backend"] == "postgresql"
    with sqlite3.connect(phased["file"]) as conn:  # a planted difference on the secondary
        conn.execute("UPDATE meters SET value = value + 1000 WHERE id = 2")
    auth = {"Authorization": f"Bearer {token(phased)}"}
    for path in ("/api/v1/me", "/api/v1/meters/1", "/api/v1/meters/2"):
        httpx.get(phased["base_url"] + path, headers=auth, timeout=10).raise_for_status()
    logged = pg_rows(
        phased["pg_url"], "SELECT entity, key, matched, detail FROM db_compare_log ORDER BY id"
    )
    assert ("users", "1", True, None) in logged
    assert ("meters", "1", True, None) in logged
    assert ("meters", "2", False, "differs in value") in logged
    assert pg_rows(phased["pg_url"], "SELECT version_num FROM alembic_version") == [("0002",)]


def test_dual_writes_reach_both_and_failures_are_recorded(
    phased: dict, stack_secrets: list[str]
) -> None:
    switch(phased, "dual", stack_secrets)
    assert app_env(phased)["DB_WRITE_MODE"] == "dual"
    auth = {"Authorization": f"Bearer {token(phased)}"}
    meters = phased["base_url"] + "/api/v1/meters"
    made = httpx.post(meters, headers=auth, timeout=10,
                      json={"unit_id": 90, "kind": "water", "slot": 1, "value": 2.5})
    assert made.status_code == 201, made.text
    meter_id = made.json()["id"]
    with sqlite3.connect(phased["file"]) as conn:
        row = conn.execute("SELECT unit_id, kind FROM meters WHERE id = ?", (meter_id,)).fetchone()
        assert row == (90, "water")  # replayed on the secondary with the primary's key
        conn.execute(
            "CREATE TRIGGER refuse_dual BEFORE INSERT ON meters WHEN NEW.kind = 'refused' "
            "BEGIN SELECT RAISE(ABORT, 'planted failure'); END"
        )
    try:
        refused = httpx.post(meters, headers=auth, timeout=10,
                             json={"unit_id": 91, "kind": "refused", "slot": 1})
        assert refused.status_code == 201, refused.text  # never fails the request
    finally:
        with sqlite3.connect(phased["file"]) as conn:
            conn.execute("DROP TRIGGER refuse_dual")
    failures = pg_rows(
        phased["pg_url"], "SELECT entity, key, operation, error FROM dual_write_failures"
    )
    assert failures == [("meters", str(refused.json()["id"]), "insert",
                         "IntegrityError: planted failure")]
    # The worker's writes too: a queued job updates the primary and is replayed on the secondary.
    before = (pg_value(phased, 3), sqlite_value(phased, 3))
    queue = redis.Redis.from_url(read_env_file(phased["env_file"])["REDIS_URL"])
    queue.rpush("refapp:jobs", json.dumps({"kind": "meter.add", "meter_id": 3, "delta": 1.5}))
    queue.close()
    deadline = time.monotonic() + 60
    while (pg_value(phased, 3), sqlite_value(phased, 3)) == before:
        assert time.monotonic() < deadline, "the worker did not take the job"
        time.sleep(0.5)
    while sqlite_value(phased, 3) == before[1] and time.monotonic() < deadline:
        time.sleep(0.2)  # the replay follows the primary's commit
    assert (pg_value(phased, 3), sqlite_value(phased, 3)) == (before[0] + 1.5, before[1] + 1.5)
    gone = httpx.delete(f"{meters}/{meter_id}", headers=auth, timeout=10)
    assert gone.status_code == 204
    with sqlite3.connect(phased["file"]) as conn:
        left = conn.execute("SELECT count(*) FROM meters WHERE id = ?", (meter_id,)).fetchone()
    assert left == (0,)
    # db_status shows what the operator watches in these phases: the compare log (the reads
    # that differed apart) and the dual-write failures, as counted in the target.
    compared, differed = pg_rows(
        phased["pg_url"], "SELECT count(*), count(*) FILTER (WHERE NOT matched) FROM db_compare_log"
    )[0]
    assert compared > 0 and differed >= 1  # the shadow phase's planted difference at least
    status = run_pyinfra(
        "-y", "tests/stack/inventory.py", "deploys/db_status.py", "--limit", "stack-staging"
    )
    assert status.returncode == 0 and changes(status.stdout) == 0, status.stdout[-3000:]
    assert f"compare log: {compared} reads compared, {differed} differed" in status.stdout
    assert "dual-write failures: 1" in status.stdout
    assert_no_secret([status.stdout], stack_secrets, "the status output")


def test_cutover_acceptance(phased: dict, stack_secrets: list[str]) -> None:
    before = phased["env_path"].read_bytes()
    refused = db_phase("cutover", "evidence_timestamp=ph-cut-refused",
                       "expected_unique=uq_users_email,uq_not_there")
    assert refused.returncode != 0
    assert "uq_not_there missing on PG_DATABASE_URL" in refused.stdout, refused.stdout[-3000:]
    assert phased["env_path"].read_bytes() == before
    switch(phased, "cutover", stack_secrets)
    assert app_env(phased) == {
        "DATABASE_URL": phased["pg_url"],
        "DATABASE_URL_SECONDARY": SQLITE_URL,
        "DB_WRITE_MODE": "single",
        "DB_READ_MODE": "primary",
    }
    body = health(phased)
    assert body["db_backend"] == "postgresql" and body["db_read_mode"] == "primary"
    run_dir = Path(phased["evidence_root"]) / "db_phase" / "ph-cutover"
    accepted = json.loads((run_dir / "outputs" / "acceptance.json").read_text())
    assert accepted["missing"] == [] and accepted["expected_unique"] == ["uq_users_email"]


def test_rollback_is_released_and_timed(phased: dict, stack_secrets: list[str]) -> None:
    before = phased["env_path"].read_bytes()
    refused = db_phase("rollback", "evidence_timestamp=ph-rb-refused")
    assert refused.returncode != 0 and "i_know_what_im_doing=true" in refused.stdout
    assert phased["env_path"].read_bytes() == before
    dry, done = switch(phased, "rollback", stack_secrets, "i_know_what_im_doing=true",
                       f"sqlite_path={phased['file']}")
    assert '+DATABASE_URL="sqlite:////app/.data/app.sqlite3"' in dry.stdout
    assert app_env(phased) == {
        "DATABASE_URL": SQLITE_URL,
        "DATABASE_URL_SECONDARY": "",
        "DB_WRITE_MODE": "single",
        "DB_READ_MODE": "primary",
    }
    assert health(phased) == {"ok": True, "status": "ok", "db_backend": "sqlite",
                              "alembic_revision": "0002"}
    run_dir = Path(phased["evidence_root"]) / "db_phase" / "ph-rollback"
    timed = json.loads((run_dir / "outputs" / "rollback_time.json").read_text())
    assert 0 < timed["seconds"] < 60 and timed["within_budget"] is True
    assert 0 < timed["seconds_from_first_step"] <= timed["seconds"] + 1
    line = f"rollback: app healthy on SQLite {timed['seconds']:.1f} s after the command started"
    assert line in done.stdout, done.stdout[-3000:]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["rollback_time"]["seconds"] == timed["seconds"]
    print(f"rollback: {timed['seconds']} s from the command to the healthy app")
