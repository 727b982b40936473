"""The host-side program, run for real as it is shipped: through ``sh`` and a here-document."""

import ast
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

import turnout
from turnout.hostside.base import HostsideError, host_dsn, read_env_file
from turnout.hostside.web import judge_health
from turnout.remote import (
    SHIPPED_MODULES,
    hostside_command,
    hostside_source,
    parse_hostside_output,
)

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


def test_shipped_source_is_one_flat_program() -> None:
    source = hostside_source()
    assert source.index("def normalize_dsn") < source.index("def host_dsn")
    assert source.index("def host_dsn") < source.index("def main(")
    assert source.count("if __name__ == '__main__':") == 1
    assert "\nfrom __future__" not in source
    # It travels inside one argv element of the remote shell (MAX_ARG_STRLEN is 128 KiB).
    assert len(source.encode()) < 100_000


def test_shipped_modules_define_each_name_once() -> None:
    """Concatenated, a name defined twice would silently replace the first definition."""
    seen: dict[str, str] = {}
    for name in SHIPPED_MODULES:
        tree = ast.parse((Path(turnout.__file__).parent / name).read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                defined = [node.name]
            elif isinstance(node, ast.Assign):
                defined = [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                defined = [node.target.id]
            else:
                continue
            for item in defined:
                assert item not in seen, f"{item} defined in {seen.get(item)} and {name}"
                seen[item] = name


def test_shipped_program_does_not_import_an_installed_turnout(tmp_path: Path) -> None:
    """On a host where turnout is installed too, the program still runs only its own text."""
    result = subprocess.run(
        [
            "sh",
            "-c",
            hostside_command("path_modes", {"paths": ["/"]}, sys.executable).get_raw_value()
            + "; true",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONVERBOSE": "1"},
    )
    imported = [
        line.split("'")[1] for line in result.stderr.splitlines() if line.startswith("import '")
    ]
    assert "json" in imported  # the probe sees the program's imports
    assert not [name for name in imported if name.startswith("turnout")], imported
