"""Health and smoke-core against a second app with other conventions, by settings alone.

``tests/fixtures/otherapp`` runs as a plain local process (uvicorn) on a free loopback port: plain
``OK`` health, an OAuth2 form login answering ``data.token``, ``Token`` headers, 401 without a
token and 403 for a non-admin, a WebSocket taking ``{"action": "login", "jwt": …}``. The real
pyinfra CLI runs ``tests/integration/deploys/smoke_only.py`` on ``@local`` with ``--data`` only.
Planted passwords and every token the app issued must never appear in any output (``-v``,
``-vv``), in the evidence, or in any process's argv.
"""

import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
from conftest import BIN, REPO, ArgvWatcher, changes

DEPLOY = "tests/integration/deploys/smoke_only.py"
ADMIN_PASSWORD = "Canary-0ther adm1n p@ss:/%#'\"&="
USER_PASSWORD = "Canary-0ther-user-pw"
SETTINGS = {
    "health_path": "/healthz",
    "health_body": "text:OK",
    "smoke_login_path": "/auth/token",
    "smoke_login_body": "form",
    "smoke_username_field": "username",
    "smoke_token_path": "data.token",
    "smoke_auth_scheme": "Token",
    "smoke_endpoints": "/me=200",
    "smoke_admin_path": "/admin/report",
    "smoke_denied_status": "401",
    "smoke_user_status": "403",
    "smoke_ws_path": "/socket",
    "smoke_ws_auth": '{"action":"login","jwt":"{token}"}',
    "smoke_ws_expect": "event=welcome",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def otherapp(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The app, up on a free port; its issued tokens are logged to a file for the secrets check."""
    work = tmp_path_factory.mktemp("otherapp")
    port = free_port()
    env = dict(os.environ)
    env.update(
        OTHERAPP_ADMIN_PASSWORD=ADMIN_PASSWORD,
        OTHERAPP_USER_PASSWORD=USER_PASSWORD,
        OTHERAPP_TOKEN_LOG=str(work / "tokens"),
    )
    with open(work / "app.log", "w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "otherapp:app",
                "--app-dir",
                str(REPO / "tests" / "fixtures" / "otherapp"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(base_url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError((work / "app.log").read_text())
        yield {"base_url": base_url, "work": work, "evidence": work / "evidence"}
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def outputs() -> list[str]:
    return []


@pytest.fixture(scope="module")
def argv_seen() -> set[str]:
    return set()


def credentials(**extra: str) -> dict[str, str]:
    return {
        "TURNOUT_SMOKE_EMAIL": "boss@other.test",
        "TURNOUT_SMOKE_PASSWORD": ADMIN_PASSWORD,
        "TURNOUT_SMOKE_USER_EMAIL": "pleb@other.test",
        "TURNOUT_SMOKE_USER_PASSWORD": USER_PASSWORD,
        **extra,
    }


def smoke_run(
    app: dict,
    outputs: list[str],
    *args: str,
    timestamp: str = "itest",
    settings: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    argv_seen: set[str] | None = None,
) -> subprocess.CompletedProcess:
    """``pyinfra @local smoke_only.py`` with the app's settings as ``--data``; stdin is not a
    terminal (a non-interactive run)."""
    data = {
        "evidence_root": str(app["evidence"]),
        "evidence_timestamp": timestamp,
        "base_url": app["base_url"],
        "hostside_python": sys.executable,
        "health_retries": 1,
        **(SETTINGS if settings is None else settings),
    }
    command = [str(BIN / "pyinfra"), "@local", DEPLOY]
    for key, value in data.items():
        command += ["--data", f"{key}={value}"]
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("TURNOUT_SMOKE_")}
    base_env["PATH"] = f"{BIN}:{base_env.get('PATH', '')}"
    with ArgvWatcher() as watcher:
        result = subprocess.run(
            [*command, *args],
            env={**base_env, **(credentials() if env is None else env)},
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=300,
        )
    outputs.append(result.stdout)
    if argv_seen is not None:
        argv_seen.update(watcher.seen)
    return result


def smoke_record(app: dict, timestamp: str = "itest") -> dict:
    return json.loads(
        (app["evidence"] / "smoke" / timestamp / "outputs" / "smoke.json").read_text()
    )


def test_plan_says_what_it_will_call(otherapp: dict, outputs: list[str]) -> None:
    result = smoke_run(otherapp, outputs, "--dry", timestamp="dry")
    assert result.returncode == 0, result.stdout[-3000:]
    base = otherapp["base_url"]
    assert (
        f"Will log in at {base}/auth/token (form: username/password from "
        "TURNOUT_SMOKE_EMAIL/TURNOUT_SMOKE_PASSWORD), call /me (200), /admin/report as admin "
        "(200) and without a token (401), /admin/report as the normal user (403) with "
        f"'Token <token>', and open the WebSocket ws://{base.removeprefix('http://')}/socket"
    ) in result.stdout
    assert not (otherapp["evidence"] / "smoke" / "dry").exists()


def test_passes_by_settings_alone(otherapp: dict, outputs: list[str], argv_seen: set[str]) -> None:
    result = smoke_run(otherapp, outputs, "-y", "-v", argv_seen=argv_seen)
    assert result.returncode == 0, result.stdout[-3000:]
    assert changes(result.stdout) == 3
    record = smoke_record(otherapp)
    assert record["verdict"] == "pass" and record["failures"] == []
    got = {(row["check"], row["path"]): row["got"] for row in record["checks"]}
    assert got == {
        ("login (admin)", "/auth/token"): 200,
        ("GET as admin", "/me"): 200,
        ("GET as admin", "/admin/report"): 200,
        ("GET as anonymous", "/admin/report"): 401,
        ("login (normal user)", "/auth/token"): 200,
        ("GET as user", "/admin/report"): 403,
        ("WebSocket", "/socket"): "answered",
    }
    assert all(row["ok"] for row in record["checks"])
    health = json.loads(
        (otherapp["evidence"] / "smoke" / "itest" / "outputs" / "health.json").read_text()
    )
    assert health["healthy"] is True and health["body"] == "OK\n"
    mode = (otherapp["evidence"] / "smoke" / "itest" / "outputs" / "smoke.json").stat().st_mode
    assert oct(mode & 0o777) == "0o600"


def test_rerun_changes_nothing(otherapp: dict, outputs: list[str], argv_seen: set[str]) -> None:
    smoke_run(otherapp, outputs, "-y")
    result = smoke_run(otherapp, outputs, "-y", "-vv", argv_seen=argv_seen)
    assert result.returncode == 0, result.stdout[-3000:]
    assert changes(result.stdout) == 0
    assert "smoke-core passed against" in result.stdout


def test_nested_health_checks(otherapp: dict, outputs: list[str]) -> None:
    settings = {**SETTINGS, "health_path": "/health/deep"}
    settings["health_body"] = "checks.db.status=up,checks.queue.depth=0"
    result = smoke_run(otherapp, outputs, "-y", timestamp="nested", settings=settings)
    assert result.returncode == 0, result.stdout[-3000:]
    settings["health_body"] = "checks.db.status=down"
    result = smoke_run(otherapp, outputs, "-y", timestamp="nested-bad", settings=settings)
    assert result.returncode != 0
    assert 'health reports checks.db.status="up", expected down' in result.stdout


def test_a_redirect_is_a_failure(otherapp: dict, outputs: list[str]) -> None:
    settings = {**SETTINGS, "health_path": "/old-health", "health_body": "any"}
    result = smoke_run(otherapp, outputs, "-y", timestamp="redirect", settings=settings)
    assert result.returncode != 0
    assert "health answered HTTP 302 (a redirect to /login), not 200" in result.stdout


def test_reference_app_defaults_fail_clearly(otherapp: dict, outputs: list[str]) -> None:
    result = smoke_run(otherapp, outputs, "-y", timestamp="defaults", settings={})
    assert result.returncode != 0
    assert "health answered HTTP 404, not 200" in result.stdout
    result = smoke_run(otherapp, outputs, "-y", timestamp="defaults", settings={"health": "false"})
    assert result.returncode != 0
    line = (
        f"turnout: login as the admin at {otherapp['base_url']}/api/v1/auth/login answered "
        "HTTP 404, expected 200"
    )
    assert line in result.stdout
    # the right paths but the reference app's JSON login and Bearer header
    settings = {k: v for k, v in SETTINGS.items() if k not in ("smoke_login_body",)}
    result = smoke_run(otherapp, outputs, "-y", timestamp="json-login", settings=settings)
    assert result.returncode != 0
    assert "answered HTTP 422, expected 200" in result.stdout
    settings = {k: v for k, v in SETTINGS.items() if k != "smoke_auth_scheme"}
    result = smoke_run(otherapp, outputs, "-y", timestamp="bearer", settings=settings)
    assert result.returncode != 0
    assert "turnout: GET /me as admin answered HTTP 401, expected 200" in result.stdout
    traceback_free = [text for text in outputs if "Traceback" in text]
    assert traceback_free == []


def test_wrong_password_is_one_line(
    otherapp: dict, outputs: list[str], argv_seen: set[str]
) -> None:
    env = credentials(TURNOUT_SMOKE_PASSWORD="Canary-wr0ng-pw")
    result = smoke_run(
        otherapp, outputs, "-y", "-vv", timestamp="wrong", env=env, argv_seen=argv_seen
    )
    assert result.returncode != 0
    lines = result.stdout.splitlines()
    failures = [line for line in lines if "turnout:" in line and ">>>" not in line]  # -vv echo
    assert len(failures) == 1, result.stdout[-3000:]
    assert failures[0].endswith(
        f"turnout: login as the admin at {otherapp['base_url']}/auth/token answered HTTP 401, "
        "expected 200 (check TURNOUT_SMOKE_EMAIL/TURNOUT_SMOKE_PASSWORD and the login settings)"
    )
    record = smoke_record(otherapp, "wrong")
    assert record["verdict"] == "fail"
    assert "Canary-wr0ng-pw" not in result.stdout


def test_missing_credentials_non_interactive(otherapp: dict, outputs: list[str]) -> None:
    result = smoke_run(otherapp, outputs, "-y", timestamp="nocreds", env={})
    assert result.returncode != 0
    assert result.stdout.rstrip().endswith(
        "--> turnout: smoke-core needs the admin's credentials: set TURNOUT_SMOKE_EMAIL and "
        "TURNOUT_SMOKE_PASSWORD in the environment (or run in a terminal to be asked); "
        "nothing was changed"
    )
    assert not (otherapp["evidence"] / "smoke" / "nocreds").exists()
    assert "Traceback" not in result.stdout


def test_no_secret_anywhere(otherapp: dict, outputs: list[str], argv_seen: set[str]) -> None:
    tokens = (otherapp["work"] / "tokens").read_text().split()
    assert len(tokens) >= 6  # admin and user logins of several runs
    secrets = [ADMIN_PASSWORD, USER_PASSWORD, "Canary-wr0ng-pw", *tokens]
    assert len(outputs) >= 8 and len(argv_seen) > 10
    evidence = [
        p.read_text(errors="replace") for p in otherapp["evidence"].rglob("*") if p.is_file()
    ]
    assert any('"verdict": "pass"' in text for text in evidence)
    for secret in secrets:
        for text in [*outputs, *evidence, *argv_seen]:
            assert secret not in text
    assert "pleb@other.test" not in "".join(evidence)
