"""The host-side program, run for real as it is shipped: through ``sh`` and a here-document."""

import json
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from turnout.hostside import HostsideError, host_dsn, judge_health, read_env_file
from turnout.remote import hostside_command, hostside_source, parse_hostside_output

CANARY = "Canary-Pw_9x!@:/%"


def run_shipped(action: str, params: dict, tmp_path: Path, env: dict | None = None) -> tuple:
    """Run the shipped program the way a host does, with ``turnout`` made unimportable."""
    shadow = tmp_path / "shadow" / "turnout"
    shadow.mkdir(parents=True, exist_ok=True)
    (shadow / "__init__.py").write_text("raise ImportError('turnout is not installed here')\n")
    command = hostside_command(action, params, python=sys.executable).get_raw_value()
    child_env = {**os.environ, "PYTHONPATH": str(tmp_path / "shadow"), **(env or {})}
    result = subprocess.run(
        ["sh", "-c", command], capture_output=True, text=True, env=child_env, check=False
    )
    return result, parse_hostside_output(result.stdout.splitlines())


def test_env_file_parsing(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("# comment\nexport A=1\nB='two words'\nC=\"x=y\"\n\nD=\nnot a line\n")
    assert read_env_file(str(env_file)) == {"A": "1", "B": "two words", "C": "x=y", "D": ""}


def test_env_file_missing_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(HostsideError, match="does not exist"):
        read_env_file(str(tmp_path / "nope.env"))


def test_host_dsn_reads_env_file_and_normalises(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("TURNOUT_TEST_DSN", raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text("TURNOUT_TEST_DSN=postgresql+psycopg://app:secretpw@db:5432/app\n")
    assert host_dsn("TURNOUT_TEST_DSN", str(env_file)).startswith("postgresql://")
    with pytest.raises(HostsideError, match="OTHER is not set"):
        host_dsn("OTHER", str(env_file))


@pytest.mark.parametrize(
    ("response", "expect", "problem"),
    [
        (
            {"status": 200, "body": {"status": "ok", "db_backend": "postgresql"}},
            {"db_backend": "postgresql"},
            None,
        ),
        ({"status": 302, "body": ""}, {}, "HTTP 302"),
        (
            {"status": 200, "body": {"status": "ok", "db_backend": "sqlite"}},
            {"db_backend": "postgresql"},
            "db_backend='sqlite'",
        ),
        ({"status": 200, "body": "<html>login</html>"}, {}, "without a JSON object"),
        ({"status": None, "error": "x unreachable: refused"}, {}, "unreachable"),
        ({"status": 503, "body": {"ok": False}}, {}, "HTTP 503"),
    ],
)
def test_judge_health(response: dict, expect: dict, problem: str | None) -> None:
    verdict = judge_health(response, expect)
    if problem is None:
        assert verdict is None
    else:
        assert problem in verdict


def test_shipped_program_runs_without_turnout_installed(tmp_path: Path) -> None:
    target = tmp_path / "ev"
    result, out = run_shipped(
        "make_dirs", {"paths": [str(target), str(target / "logs")], "mode": "0700"}, tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert out["ok"] is True
    assert oct(target.stat().st_mode & 0o777) == "0o700"
    result, out = run_shipped("path_modes", {"paths": [str(target), str(tmp_path / "x")]}, tmp_path)
    assert out["paths"] == {str(target): {"type": "dir", "mode": "0700"}, str(tmp_path / "x"): None}


def test_fact_action_errors_exit_zero_and_are_redacted(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    encoded = urllib.parse.quote(CANARY, safe="")
    env_file.write_text(f"DATABASE_URL=postgresql+psycopg://app:{encoded}@127.0.0.1:1/app\n")
    result, out = run_shipped(
        "postgres_server", {"dsn_env": "DATABASE_URL", "env_file": str(env_file)}, tmp_path
    )
    assert result.returncode == 0
    assert out["ok"] is False and "cannot connect with DATABASE_URL" in out["error"]
    assert CANARY not in result.stdout + result.stderr
    assert encoded not in result.stdout + result.stderr


def test_operation_action_errors_exit_nonzero_with_one_line(tmp_path: Path) -> None:
    result, out = run_shipped(
        "http_health_wait", {"url": "http://127.0.0.1:1/health", "retries": 0}, tmp_path
    )
    assert result.returncode == 1
    assert out["ok"] is False
    assert result.stderr.strip().count("\n") == 0
    assert "health check failed after 1 attempt(s)" in result.stderr


def test_unknown_action_is_refused(tmp_path: Path) -> None:
    result, out = run_shipped("drop_everything", {}, tmp_path)
    assert result.returncode == 1 and "unknown hostside action" in out["error"]


def test_params_are_quoted_and_never_split(tmp_path: Path) -> None:
    odd = tmp_path / "it's a $(dir) `x`"
    result, out = run_shipped("make_dirs", {"paths": [str(odd)]}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert odd.is_dir()


def test_shipped_source_is_dsn_then_hostside() -> None:
    source = hostside_source()
    assert source.index("def normalize_dsn") < source.index("def host_dsn")
    assert "\nfrom __future__" not in source
    json.dumps(source)  # plain text
