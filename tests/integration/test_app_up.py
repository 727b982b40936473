"""deploys/app_up.py over @ssh against both stack hosts: plan, run, rerun, and the app it serves.

Staging's app runs against a PostgreSQL outside compose (the staging cluster), prod's against the
compose ``db`` service. Everything is real: sshd, docker compose, PostgreSQL, HTTP.
"""

import json
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import httpx
import pytest
from conftest import changes, compose, read_env_file, run_pyinfra, seed_app
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

TIMESTAMP = "itest"
DEPLOY = (
    "tests/stack/inventory.py",
    "deploys/app_up.py",
    "--data",
    f"evidence_timestamp={TIMESTAMP}",
    "--data",
    "health_expect=db_backend=postgresql",
)
HOSTS = ("staging", "prod")


def evidence_run_dir(stack: dict, name: str) -> Path:
    return Path(stack["hosts"][name]["evidence_root"]) / "app_up" / TIMESTAMP


@pytest.fixture(scope="module")
def fresh(stack: dict) -> dict:
    """Both hosts with no app running and no evidence of this run."""
    for name in HOSTS:
        compose(stack["hosts"][name], "down", "--timeout", "5")
        shutil.rmtree(evidence_run_dir(stack, name), ignore_errors=True)
    return stack


@pytest.fixture(scope="module")
def outputs() -> list[str]:
    """Everything the pyinfra runs of this module printed, for the secrets check."""
    return []


@pytest.fixture(scope="module")
def first_run(fresh: dict, outputs: list[str]):
    dry = run_pyinfra(*DEPLOY, "--dry", "-v")
    outputs.append(dry.stdout)
    real = run_pyinfra("-y", "-v", *DEPLOY)
    outputs.append(real.stdout)
    return dry, real


def test_dry_run_plans_concretely_and_changes_nothing(fresh: dict, outputs: list[str]) -> None:
    dry = run_pyinfra(*DEPLOY, "--dry")
    outputs.append(dry.stdout)
    assert dry.returncode == 0, dry.stdout[-3000:]
    assert "Will bring up: api (not created), db (not created), worker (not created)" in dry.stdout
    assert f"Will create evidence directory {evidence_run_dir(fresh, 'prod')}" in dry.stdout
    assert changes_planned(dry.stdout) == 3
    for name in HOSTS:
        assert compose(fresh["hosts"][name], "ps", "--all", "-q").stdout.strip() == ""
        assert not evidence_run_dir(fresh, name).exists()


def changes_planned(stdout: str) -> int:
    section = stdout.split("Detected changes:")[1].split("Detected changes may")[0]
    rows = [line.split() for line in section.splitlines()[2:] if line.strip()]
    return sum(1 for row in rows if row[-2] != "-" or row[-1] != "-")


def test_deploy_brings_the_app_up_and_records_health(stack: dict, first_run) -> None:
    _, real = first_run
    assert real.returncode == 0, real.stdout[-3000:]
    assert changes(real.stdout) == 6
    for name in HOSTS:
        host = stack["hosts"][name]
        body = httpx.get(host["base_url"] + "/api/v1/health", timeout=10).json()
        assert body["status"] == "ok" and body["db_backend"] == "postgresql"
        assert body["alembic_revision"]
        run_dir = evidence_run_dir(stack, name)
        record = json.loads((run_dir / "outputs" / "health.json").read_text())
        assert record["healthy"] is True and record["body"] == body
        for sub in ("", "logs", "outputs", "src_artifacts"):
            assert oct((run_dir / sub).stat().st_mode & 0o777) == "0o700"
        assert oct((run_dir / "outputs" / "health.json").stat().st_mode & 0o777) == "0o600"


def test_where_each_app_keeps_its_data(stack: dict, first_run) -> None:
    staging_env = read_env_file(stack["hosts"]["staging"]["env_file"])
    assert f":{stack['pg']['staging']['port']}/" in staging_env["DATABASE_URL"]
    prod = stack["hosts"]["prod"]
    result = compose(
        prod, "exec", "-T", "db", "psql", "-At", "-c", "select version_num from alembic_version"
    )
    assert (
        result.stdout.strip()
        == httpx.get(prod["base_url"] + "/api/v1/health").json()["alembic_revision"]
    )


def test_second_run_changes_nothing(first_run, outputs: list[str]) -> None:
    again = run_pyinfra("-y", "-vv", *DEPLOY)
    outputs.append(again.stdout)
    assert again.returncode == 0, again.stdout[-3000:]
    assert changes(again.stdout) == 0


def test_login_admin_endpoint_and_websocket(stack: dict, first_run) -> None:
    host = stack["hosts"]["staging"]
    passwords = seed_app(host, 20)
    base = host["base_url"] + "/api/v1"

    def login(email: str, password: str) -> httpx.Response:
        return httpx.post(f"{base}/auth/login", json={"email": email, "password": password})

    assert login("admin@example.test", "wrong").status_code == 401
    admin = login("admin@example.test", passwords["REFAPP_ADMIN_PASSWORD"]).json()["access_token"]
    user = login("user@example.test", passwords["REFAPP_USER_PASSWORD"]).json()["access_token"]
    assert httpx.get(f"{base}/admin/stats").status_code == 401
    assert httpx.get(f"{base}/admin/stats", headers=bearer(user)).status_code == 403
    stats = httpx.get(f"{base}/admin/stats", headers=bearer(admin))
    assert stats.status_code == 200

    ws_url = base.replace("http://", "ws://") + "/ws"
    with connect(ws_url) as ws:
        ws.send(json.dumps({"type": "auth", "token": admin}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "ready", "user": "admin@example.test"}
        ws.send(json.dumps({"hello": 1}))
        assert json.loads(ws.recv(timeout=10))["type"] == "echo"
    with connect(ws_url) as ws:
        ws.send(json.dumps({"type": "auth", "token": "forged"}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd.code == 4401


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_wrong_payload_fails_with_the_reason(first_run, outputs: list[str]) -> None:
    result = run_pyinfra(
        "-y",
        "tests/stack/inventory.py",
        "deploys/app_up.py",
        "--data",
        f"evidence_timestamp={TIMESTAMP}-bad",
        "--data",
        "health_retries=1",
        "--data",
        "health_expect=db_backend=sqlite",
    )
    outputs.append(result.stdout)
    assert result.returncode != 0
    assert "health reports db_backend='postgresql', expected 'sqlite'" in result.stdout


def test_unreachable_health_fails(first_run, outputs: list[str]) -> None:
    result = run_pyinfra(
        "-y",
        "--limit",
        "stack-staging",
        "tests/stack/inventory.py",
        "deploys/app_up.py",
        "--data",
        f"evidence_timestamp={TIMESTAMP}-down",
        "--data",
        "health_retries=1",
        "--data",
        "base_url=http://127.0.0.1:9",
    )
    outputs.append(result.stdout)
    assert result.returncode != 0
    assert "unreachable" in result.stdout


def test_bad_setting_is_one_clear_line(first_run, outputs: list[str]) -> None:
    result = run_pyinfra("-y", *DEPLOY, "--data", "count_timeout_ms=abc")
    outputs.append(result.stdout)
    assert result.returncode != 0
    assert "setting count_timeout_ms must be" in result.stdout
    assert "Traceback" not in result.stdout


def test_no_secret_in_any_output_or_evidence(
    stack: dict, stack_secrets: list[str], outputs: list[str]
) -> None:
    assert len(outputs) >= 6
    texts = list(outputs)
    for name in HOSTS:
        root = Path(stack["hosts"][name]["evidence_root"])
        texts += [p.read_text(errors="replace") for p in root.rglob("*") if p.is_file()]
    for secret in stack_secrets:
        forms = {secret, urllib.parse.quote(secret, safe="")}
        for text in texts:
            for form in forms:
                assert form not in text


def fact_json(stdout: str) -> dict:
    return json.loads(stdout.split("--> Fact data for:")[1].split("\n", 1)[1].split("\n--> ")[0])


@pytest.mark.parametrize("name", HOSTS)
def test_database_is_observed_on_the_host(
    stack: dict, first_run, outputs: list[str], name: str
) -> None:
    """The host reads its DSN from the server-side .env and connects; the control machine only
    names the variable (staging: a cluster outside compose; prod: the compose db)."""
    host = stack["hosts"][name]
    result = run_pyinfra(
        "-y",
        "-vv",
        "--limit",
        f"stack-{name}",
        "tests/stack/inventory.py",
        "fact",
        "turnout.facts.postgres.PostgresServer",
        "database=DATABASE_URL",
    )
    outputs.append(result.stdout)
    assert result.returncode == 0, result.stdout[-3000:]
    fact = fact_json(result.stdout)[f"stack-{name}"]
    assert fact["ok"] is True and fact["database"] == "app" and fact["user"] == "app"
    env = read_env_file(host["env_file"])
    assert f":{fact['port']}/" in env["DATABASE_URL"]


def test_missing_dsn_is_reported_not_crashed(stack: dict, first_run, outputs: list[str]) -> None:
    host = stack["hosts"]["staging"]
    result = run_pyinfra(
        "-y",
        "--limit",
        "stack-staging",
        "tests/stack/inventory.py",
        "fact",
        "turnout.facts.postgres.PostgresServer",
        "database=NO_SUCH_DSN",
    )
    outputs.append(result.stdout)
    fact = fact_json(result.stdout)["stack-staging"]
    assert fact == {
        "ok": False,
        "error": f"NO_SUCH_DSN is not set in the environment or {host['env_file']}",
    }


def test_nothing_listens_beyond_loopback(stack: dict, first_run) -> None:
    ports = {info["port"] for info in stack["pg"].values()}
    ports |= {info["port"] for info in stack["ssh"]["hosts"].values()}
    for name in HOSTS:
        env = read_env_file(stack["hosts"][name]["env_file"])
        ports |= {int(env["APP_PORT"]), int(env["DB_PORT"])}
    listening = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True, check=True).stdout
    seen = {}
    for line in listening.splitlines():
        address, _, port = line.split()[3].rpartition(":")
        if int(port) in ports:
            seen.setdefault(int(port), set()).add(address)
    # Every app/db port that answers is bound to loopback only (the staging compose db is
    # started too, unused by its app).
    assert set(seen) == ports
    assert all(addresses <= {"127.0.0.1"} for addresses in seen.values()), seen


def test_failure_while_executing_is_one_line(first_run, outputs: list[str]) -> None:
    """With -y pyinfra skips planning: an operation's error surfaces while executing, and still
    reads as one line without a traceback."""
    result = run_pyinfra(
        "-y",
        "--limit",
        "stack-staging",
        "tests/stack/inventory.py",
        "deploys/app_up.py",
        "--data",
        f"evidence_timestamp={TIMESTAMP}",
        "--data",
        "compose_file=/nonexistent/c.yml",
    )
    outputs.append(result.stdout)
    assert result.returncode != 0
    assert "turnout: docker compose ps failed" in result.stdout
    assert "Traceback" not in result.stdout
