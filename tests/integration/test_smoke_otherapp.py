"""Health and smoke-core against a second app with other conventions, by settings alone.

``tests/fixtures/otherapp`` runs as a plain local process (uvicorn) on a free loopback port: plain
``OK`` health, an OAuth2 form login answering ``data.token``, ``Token`` headers, 401 without a
token and 403 for a non-admin, a WebSocket taking ``{"action": "login", "jwt": …}``. The real
pyinfra CLI runs ``tests/integration/deploys/smoke_only.py`` on ``@local`` with ``--data`` only.

Each test stands alone (``-k <name>`` passes): it makes its own runs and checks its own outputs.
Planted passwords and the tokens the app issues (each test logs in itself to learn them: the app
has one token per account) must never appear in any output (``-v``, ``-vv``), in the evidence, or
in any process's argv — also when the app misbehaves (``OTHERAPP_FAULTS``): error answers that
echo the token or quote the Authorization header, redirects and WebSocket close reasons carrying
the token, a failed login echoing the password; and broken RBAC must fail the smoke.
"""

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest
from conftest import BIN, REPO, ArgvWatcher, changes

DEPLOY = "tests/integration/deploys/smoke_only.py"
ADMIN_EMAIL = "boss@other.test"
USER_EMAIL = "pleb@other.test"
ADMIN_PASSWORD = "Canary-0ther adm1n p@ss:/%#'\"&="
USER_PASSWORD = "Canary-0ther-user-pw"
WRONG_PASSWORD = "Canary-wr0ng-pw"
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


def serve(work: Path, faults: str = "") -> Iterator[dict]:
    """The app up on a free port with ``OTHERAPP_FAULTS=faults``, until the generator closes."""
    port = free_port()
    env = dict(os.environ)
    env.update(
        OTHERAPP_ADMIN_PASSWORD=ADMIN_PASSWORD,
        OTHERAPP_USER_PASSWORD=USER_PASSWORD,
        OTHERAPP_FAULTS=faults,
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
def otherapp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The app as it should be."""
    yield from serve(tmp_path_factory.mktemp("otherapp"))


@pytest.fixture(scope="module")
def leaky_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The app whose every error path echoes the caller's token or password."""
    yield from serve(tmp_path_factory.mktemp("otherapp-leaky"), faults="leak-secrets")


@pytest.fixture(scope="module")
def rbac_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The app whose admin endpoint answers 200 to a normal user."""
    yield from serve(tmp_path_factory.mktemp("otherapp-rbac"), faults="broken-rbac")


def login(app: dict, email: str, password: str) -> str:
    """Log in as a user would; the account's token (the same one smoke-core gets)."""
    answer = httpx.post(
        app["base_url"] + "/auth/token", data={"username": email, "password": password}
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]["token"]


def app_secrets(app: dict, *extra: str) -> list[str]:
    """Both accounts' passwords (as given and URL-encoded) and tokens, and ``extra``."""
    passwords = [ADMIN_PASSWORD, USER_PASSWORD, *extra]
    encoded = [form(value) for value in passwords for form in (quote_plus, quote)]
    tokens = [login(app, ADMIN_EMAIL, ADMIN_PASSWORD), login(app, USER_EMAIL, USER_PASSWORD)]
    return [*passwords, *encoded, *tokens]


def credentials(**extra: str) -> dict[str, str]:
    return {
        "TURNOUT_SMOKE_EMAIL": ADMIN_EMAIL,
        "TURNOUT_SMOKE_PASSWORD": ADMIN_PASSWORD,
        "TURNOUT_SMOKE_USER_EMAIL": USER_EMAIL,
        "TURNOUT_SMOKE_USER_PASSWORD": USER_PASSWORD,
        **extra,
    }


def smoke_run(
    app: dict,
    *args: str,
    timestamp: str = "itest",
    settings: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """``pyinfra @local smoke_only.py`` with the app's settings as ``--data``; stdin is not a
    terminal (a non-interactive run). ``stdout`` holds stdout and stderr; ``argv_seen`` the argv
    of every process seen meanwhile."""
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
    result.argv_seen = watcher.seen
    return result


def smoke_record(app: dict, timestamp: str = "itest") -> dict:
    return json.loads(
        (app["evidence"] / "smoke" / timestamp / "outputs" / "smoke.json").read_text()
    )


def turnout_lines(stdout: str) -> list[str]:
    """turnout's failure lines (not ``-vv``'s echo of the command that prints one)."""
    return [line for line in stdout.splitlines() if "turnout:" in line and ">>>" not in line]


def evidence_texts(app: dict, *timestamps: str) -> list[str]:
    """Every file of the runs' evidence directories."""
    texts = []
    for timestamp in timestamps:
        run_dir = app["evidence"] / "smoke" / timestamp
        texts += [p.read_text(errors="replace") for p in run_dir.rglob("*") if p.is_file()]
    return texts


def assert_hidden(secrets: list[str], runs: list[subprocess.CompletedProcess], evidence: list[str]):
    """No secret in the runs' output, in the argv seen during them, or in the evidence."""
    assert runs and evidence
    texts = [run.stdout for run in runs] + evidence
    texts += [argv for run in runs for argv in run.argv_seen]
    for number, secret in enumerate(secrets):
        leaks = [text for text in texts if secret in text]
        assert not leaks, f"secret #{number} shows in: {leaks[0][-2000:]}"


def test_plan_says_what_it_will_call(otherapp: dict) -> None:
    result = smoke_run(otherapp, "--dry", timestamp="dry")
    assert result.returncode == 0, result.stdout[-3000:]
    base = otherapp["base_url"]
    assert (
        f"Will log in at {base}/auth/token (form: username/password from "
        "TURNOUT_SMOKE_EMAIL/TURNOUT_SMOKE_PASSWORD), call /me (200), /admin/report as admin "
        "(200) and without a token (401), /admin/report as the normal user (403) with "
        f"'Token <token>', and open the WebSocket ws://{base.removeprefix('http://')}/socket"
    ) in result.stdout
    assert not (otherapp["evidence"] / "smoke" / "dry").exists()


def test_passes_by_settings_alone(otherapp: dict) -> None:
    result = smoke_run(otherapp, "-y", "-v", timestamp="pass")
    assert result.returncode == 0, result.stdout[-3000:]
    assert changes(result.stdout) == 3
    record = smoke_record(otherapp, "pass")
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
    outputs = otherapp["evidence"] / "smoke" / "pass" / "outputs"
    health = json.loads((outputs / "health.json").read_text())
    assert health["healthy"] is True and health["body"] == "OK\n"
    assert oct((outputs / "smoke.json").stat().st_mode & 0o777) == "0o600"


def test_rerun_changes_nothing(otherapp: dict) -> None:
    first = smoke_run(otherapp, "-y", timestamp="rerun")
    assert first.returncode == 0, first.stdout[-3000:]
    result = smoke_run(otherapp, "-y", "-vv", timestamp="rerun")
    assert result.returncode == 0, result.stdout[-3000:]
    assert changes(result.stdout) == 0
    assert "smoke-core passed against" in result.stdout


def test_nested_health_checks(otherapp: dict) -> None:
    settings = {**SETTINGS, "health_path": "/health/deep"}
    settings["health_body"] = "checks.db.status=up,checks.queue.depth=0"
    result = smoke_run(otherapp, "-y", timestamp="nested", settings=settings)
    assert result.returncode == 0, result.stdout[-3000:]
    settings["health_body"] = "checks.db.status=down"
    result = smoke_run(otherapp, "-y", timestamp="nested-bad", settings=settings)
    assert result.returncode != 0
    assert 'health reports checks.db.status="up", expected down' in result.stdout


def test_a_redirect_is_a_failure(otherapp: dict) -> None:
    settings = {**SETTINGS, "health_path": "/old-health", "health_body": "any"}
    result = smoke_run(otherapp, "-y", timestamp="redirect", settings=settings)
    assert result.returncode != 0
    assert "health answered HTTP 302 (a redirect to /login), not 200" in result.stdout


def test_reference_app_defaults_fail_clearly(otherapp: dict) -> None:
    runs = [smoke_run(otherapp, "-y", timestamp="defaults", settings={})]
    assert runs[-1].returncode != 0
    assert "health answered HTTP 404, not 200" in runs[-1].stdout
    runs.append(smoke_run(otherapp, "-y", timestamp="defaults", settings={"health": "false"}))
    assert runs[-1].returncode != 0
    line = (
        f"turnout: login as the admin at {otherapp['base_url']}/api/v1/auth/login answered "
        "HTTP 404, expected 200"
    )
    assert line in runs[-1].stdout
    # the right paths but the reference app's JSON login and Bearer header
    settings = {k: v for k, v in SETTINGS.items() if k not in ("smoke_login_body",)}
    runs.append(smoke_run(otherapp, "-y", timestamp="json-login", settings=settings))
    assert runs[-1].returncode != 0
    assert "answered HTTP 422, expected 200" in runs[-1].stdout
    settings = {k: v for k, v in SETTINGS.items() if k != "smoke_auth_scheme"}
    runs.append(smoke_run(otherapp, "-y", timestamp="bearer", settings=settings))
    assert runs[-1].returncode != 0
    assert "turnout: GET /me as admin answered HTTP 401, expected 200" in runs[-1].stdout
    assert [run.stdout for run in runs if "Traceback" in run.stdout] == []


def test_wrong_password_is_one_line(otherapp: dict) -> None:
    env = credentials(TURNOUT_SMOKE_PASSWORD=WRONG_PASSWORD)
    result = smoke_run(otherapp, "-y", "-vv", timestamp="wrong", env=env)
    assert result.returncode != 0
    failures = turnout_lines(result.stdout)
    assert len(failures) == 1, result.stdout[-3000:]
    assert failures[0].endswith(
        f"turnout: login as the admin at {otherapp['base_url']}/auth/token answered HTTP 401, "
        "expected 200 (check TURNOUT_SMOKE_EMAIL/TURNOUT_SMOKE_PASSWORD and the login settings)"
    )
    record = smoke_record(otherapp, "wrong")
    assert record["verdict"] == "fail"
    assert_hidden([WRONG_PASSWORD], [result], evidence_texts(otherapp, "wrong"))


def test_missing_credentials_non_interactive(otherapp: dict) -> None:
    result = smoke_run(otherapp, "-y", timestamp="nocreds", env={})
    assert result.returncode != 0
    assert result.stdout.rstrip().endswith(
        "--> turnout: smoke-core needs the admin's credentials: set TURNOUT_SMOKE_EMAIL and "
        "TURNOUT_SMOKE_PASSWORD in the environment (or run in a terminal to be asked); "
        "nothing was changed"
    )
    assert not (otherapp["evidence"] / "smoke" / "nocreds").exists()
    assert "Traceback" not in result.stdout


def test_no_secret_anywhere(otherapp: dict) -> None:
    """A plan, a passing run, its rerun at -vv and a wrong password at -vv: no password, no token
    and no normal user's email in any output, argv or evidence."""
    runs = [
        smoke_run(otherapp, "--dry", timestamp="secrets"),
        smoke_run(otherapp, "-y", "-v", timestamp="secrets"),
        smoke_run(otherapp, "-y", "-vv", timestamp="secrets"),
        smoke_run(
            otherapp,
            "-y",
            "-vv",
            timestamp="secrets-wrong",
            env=credentials(TURNOUT_SMOKE_PASSWORD=WRONG_PASSWORD),
        ),
    ]
    assert [run.returncode for run in runs] == [0, 0, 0, 1], runs[-1].stdout[-3000:]
    assert smoke_record(otherapp, "secrets")["verdict"] == "pass"
    evidence = evidence_texts(otherapp, "secrets", "secrets-wrong")
    assert_hidden(app_secrets(otherapp, WRONG_PASSWORD), runs, evidence)
    assert USER_EMAIL not in "".join(evidence)


def test_secrets_in_error_answers_stay_hidden(leaky_app: dict) -> None:
    """The app echoes the token in error bodies, quotes the Authorization header in a 500, puts
    the token in a redirect and in the WebSocket's close reason, and the password in a failed
    login's redirect: smoke-core fails with one line and shows none of them."""
    secrets = app_secrets(leaky_app)
    admin_token = login(leaky_app, ADMIN_EMAIL, ADMIN_PASSWORD)
    header = {"Authorization": f"Token {admin_token}"}
    base = leaky_app["base_url"]
    # the app really leaks (else this test would prove nothing)
    me = httpx.get(base + "/me", headers=header)
    assert me.status_code == 401 and me.json()["access_token"] == admin_token
    report = httpx.get(base + "/admin/report", headers=header)
    assert report.status_code == 500 and f"authorization: Token {admin_token}" in report.text
    session = httpx.get(base + "/session", headers=header)
    assert session.status_code == 302 and admin_token in session.headers["location"]

    everything = smoke_run(leaky_app, "-y", "-vv", timestamp="leak")
    only_session = {**SETTINGS, "smoke_endpoints": "/session=200"}
    only_session.update(smoke_admin_path="", smoke_ws_path="")
    redirect = smoke_run(leaky_app, "-y", "-vv", timestamp="leak-session", settings=only_session)
    stranger = credentials(TURNOUT_SMOKE_EMAIL="nobody@other.test")  # the admin's password
    failed_login = smoke_run(leaky_app, "-y", "-vv", timestamp="leak-login", env=stranger)
    runs = [everything, redirect, failed_login]
    assert [run.returncode for run in runs] == [1, 1, 1], everything.stdout[-3000:]
    lines = [turnout_lines(run.stdout) for run in runs]
    assert [len(each) for each in lines] == [1, 1, 1], lines
    evidence = evidence_texts(leaky_app, "leak", "leak-session", "leak-login")
    assert_hidden(secrets, runs, evidence)
    assert lines[0][0].endswith(
        "turnout: GET /me as admin answered HTTP 401, expected 200 (and 3 more, see the report)"
    )
    assert lines[1][0].endswith(
        "turnout: GET /session as admin answered HTTP 302 (a redirect to "
        "/login?expired=1&sid=***), expected 200"
    )
    assert lines[2][0].endswith(
        f"turnout: login as the admin at {base}/auth/token answered HTTP 302 (a redirect to "
        "/login?tried=***), expected 200"
    )
    problems = [row["problem"] for row in smoke_record(leaky_app, "leak")["checks"]]
    assert "GET /admin/report as admin answered HTTP 500, expected 200" in problems
    assert "GET /admin/report as user answered HTTP 500, expected 403" in problems
    assert f"the WebSocket ws://{base.removeprefix('http://')}/socket closed (4003 jwt *** " in (
        " ".join(str(problem) for problem in problems)
    )


def test_broken_rbac_fails(rbac_app: dict) -> None:
    """The admin endpoint answering 200 to a normal user fails the smoke, naming the path and
    the status."""
    result = smoke_run(rbac_app, "-y", "-v", timestamp="rbac")
    assert result.returncode != 0, result.stdout[-3000:]
    lines = turnout_lines(result.stdout)
    assert len(lines) == 1, result.stdout[-3000:]
    assert "/admin/report" in lines[0] and "HTTP 200" in lines[0] and "403" in lines[0], lines
    assert lines[0].endswith("turnout: GET /admin/report as user answered HTTP 200, expected 403")
    record = smoke_record(rbac_app, "rbac")
    assert record["verdict"] == "fail"
    row = next(row for row in record["checks"] if row["check"] == "GET as user")
    assert (row["path"], row["got"], row["ok"]) == ("/admin/report", 200, False)
