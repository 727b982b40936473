"""Health and smoke-core against the stack's reference app, with the default settings.

The staging host's app (brought up with ``deploys/app_up.py``, seeded with its two users) is
checked by ``tests/integration/deploys/smoke_only.py`` over the stack's SSH inventory: health on
the host, smoke-core from this machine. The admin's password (``REFAPP_ADMIN_PASSWORD`` in the
host's ``.env``), every stack secret and every token the app issued must never show in any output
(``-v``, ``-vv``), the evidence, or any process's argv. Each test stands alone (``-k <name>``
passes): it makes its own runs and checks its own outputs.
"""

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from conftest import (
    BIN,
    REPO,
    ArgvWatcher,
    changes,
    run_pyinfra,
    seed_app,
    stack_env,
)

DEPLOY = "tests/integration/deploys/smoke_only.py"
TIMESTAMP = "smoke-itest"
# refapp's tokens: base64url('{"exp":…') "." base64url(signature)
TOKEN_RE = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{20,}")


@pytest.fixture(scope="module")
def refapp(stack: dict) -> dict:
    """The staging app up and seeded; its passwords, read from the host's .env."""
    shutil.rmtree(Path(stack["hosts"]["staging"]["evidence_root"]) / "smoke", ignore_errors=True)
    up = run_pyinfra(
        "-y",
        "--limit",
        "stack-staging",
        "tests/stack/inventory.py",
        "deploys/app_up.py",
        "--data",
        "evidence_timestamp=smoke-up",
    )
    assert up.returncode == 0, up.stdout[-3000:]
    host = stack["hosts"]["staging"]
    passwords = seed_app(host, 20)
    return {"host": host, **passwords}


def credentials(app: dict, **extra: str) -> dict[str, str]:
    return {
        "TURNOUT_SMOKE_EMAIL": "admin@example.test",
        "TURNOUT_SMOKE_PASSWORD": app["REFAPP_ADMIN_PASSWORD"],
        "TURNOUT_SMOKE_USER_EMAIL": "user@example.test",
        "TURNOUT_SMOKE_USER_PASSWORD": app["REFAPP_USER_PASSWORD"],
        **extra,
    }


def smoke_run(
    app: dict,
    *args: str,
    timestamp: str = TIMESTAMP,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """The deploy on the staging host with the default settings; stdin is not a terminal.
    ``stdout`` holds stdout and stderr; ``argv_seen`` the argv of every process seen meanwhile."""
    base = {k: v for k, v in stack_env().items() if not k.startswith("TURNOUT_SMOKE_")}
    with ArgvWatcher() as watcher:
        result = subprocess.run(
            [
                str(BIN / "pyinfra"),
                "--limit",
                "stack-staging",
                "tests/stack/inventory.py",
                DEPLOY,
                "--data",
                f"evidence_timestamp={timestamp}",
                "--data",
                "health_expect=db_backend=postgresql",
                *args,
            ],
            env={**base, **(credentials(app) if env is None else env)},
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=300,
        )
    result.argv_seen = watcher.seen
    return result


def run_dir(app: dict, timestamp: str = TIMESTAMP) -> Path:
    return Path(app["host"]["evidence_root"]) / "smoke" / timestamp


def test_smoke_passes_with_default_settings(refapp: dict) -> None:
    result = smoke_run(refapp, "-y", "-v")
    assert result.returncode == 0, result.stdout[-3000:]
    assert changes(result.stdout) == 3  # the directory, health.json, smoke.json
    record = json.loads((run_dir(refapp) / "outputs" / "smoke.json").read_text())
    assert record["verdict"] == "pass", record
    got = {(row["check"], row["path"]): row["got"] for row in record["checks"]}
    assert got == {
        ("login (admin)", "/api/v1/auth/login"): 200,
        ("GET as admin", "/api/v1/me"): 200,
        ("GET as admin", "/api/v1/admin/stats"): 200,
        ("GET as anonymous", "/api/v1/admin/stats"): 401,
        ("login (normal user)", "/api/v1/auth/login"): 200,
        ("GET as user", "/api/v1/admin/stats"): 403,
        ("WebSocket", "/api/v1/ws"): "answered",
    }


def test_rerun_changes_nothing(refapp: dict) -> None:
    first = smoke_run(refapp, "-y", timestamp="smoke-rerun")
    assert first.returncode == 0, first.stdout[-3000:]
    result = smoke_run(refapp, "-y", "-vv", timestamp="smoke-rerun")
    assert result.returncode == 0, result.stdout[-3000:]
    assert changes(result.stdout) == 0


def test_plan_names_the_calls(refapp: dict) -> None:
    result = smoke_run(refapp, "--dry", timestamp="smoke-dry")
    assert result.returncode == 0, result.stdout[-3000:]
    base = refapp["host"]["base_url"]
    assert f"Will log in at {base}/api/v1/auth/login (json: email/password" in result.stdout
    assert "/api/v1/admin/stats as the normal user (403)" in result.stdout


def test_wrong_password_fails_with_one_line(refapp: dict) -> None:
    env = credentials(refapp, TURNOUT_SMOKE_PASSWORD="Canary-refapp-wr0ng")
    result = smoke_run(refapp, "-y", "-v", timestamp="smoke-wrong", env=env)
    assert result.returncode != 0
    lines = [
        line for line in result.stdout.splitlines() if "turnout:" in line and ">>>" not in line
    ]
    assert len(lines) == 1, result.stdout[-3000:]
    assert "login as the admin at " in lines[0]
    assert "answered HTTP 401, expected 200 (check TURNOUT_SMOKE_EMAIL" in lines[0]


def test_missing_credentials_is_one_line(refapp: dict) -> None:
    result = smoke_run(refapp, "-y", timestamp="smoke-nocreds", env={})
    assert result.returncode != 0
    assert "--> turnout: smoke-core needs the admin's credentials: set TURNOUT_SMOKE_EMAIL" in (
        result.stdout
    )
    assert "Traceback" not in result.stdout
    assert not run_dir(refapp, "smoke-nocreds").exists()


def test_no_password_or_token_anywhere(refapp: dict, stack_secrets: list[str]) -> None:
    """A plan, a passing run at -v, its rerun at -vv and a wrong password at -vv: no password, no
    stack secret and no token (the shape of the one this test gets by logging in itself) in any
    output, argv or evidence."""
    answer = httpx.post(
        refapp["host"]["base_url"] + "/api/v1/auth/login",
        json={"email": "admin@example.test", "password": refapp["REFAPP_ADMIN_PASSWORD"]},
    )
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    assert TOKEN_RE.fullmatch(token), "TOKEN_RE no longer matches the app's tokens"
    runs = [
        smoke_run(refapp, "--dry", timestamp="smoke-secrets"),
        smoke_run(refapp, "-y", "-v", timestamp="smoke-secrets"),
        smoke_run(refapp, "-y", "-vv", timestamp="smoke-secrets"),
        smoke_run(
            refapp,
            "-y",
            "-vv",
            timestamp="smoke-secrets-wrong",
            env=credentials(refapp, TURNOUT_SMOKE_PASSWORD="Canary-refapp-wr0ng"),
        ),
    ]
    assert [run.returncode for run in runs] == [0, 0, 0, 1], runs[-1].stdout[-3000:]
    evidence = [
        p.read_text(errors="replace")
        for timestamp in ("smoke-secrets", "smoke-secrets-wrong")
        for p in run_dir(refapp, timestamp).rglob("*")
        if p.is_file()
    ]
    assert any('"verdict": "pass"' in text for text in evidence)
    texts = [run.stdout for run in runs] + evidence
    texts += [argv for run in runs for argv in run.argv_seen]
    planted = [refapp["REFAPP_ADMIN_PASSWORD"], refapp["REFAPP_USER_PASSWORD"]]
    for text in texts:
        assert not TOKEN_RE.search(text), TOKEN_RE.search(text)
        assert token not in text
        for secret in [*planted, *stack_secrets, "Canary-refapp-wr0ng"]:
            assert secret not in text
