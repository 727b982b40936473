"""The host-side program, run for real as it is shipped: through ``sh`` and a here-document."""

import io
import os
import subprocess
import sys
import urllib.parse
import zipfile
from pathlib import Path

import pytest
from pyinfra.connectors.util import make_unix_command

import turnout
from turnout.hostside.base import HostsideError, host_dsn, read_env_file
from turnout.hostside.web import judge_health
from turnout.remote import (
    hostside_command,
    parse_hostside_output,
    program_name,
    program_payload,
    program_zip,
    ship_command,
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
    env_file.write_text("# comment\nexport A=1\nB='two words'\nC=\"x=y\"\n\nD=\nE=v # note\n")
    assert read_env_file(str(env_file)) == {
        "A": "1",
        "B": "two words",
        "C": "x=y",
        "D": "",
        "E": "v",  # compose drops an inline comment; the old reader kept it in the value
    }
    env_file.write_text("A=1\nnot a line\n")  # compose refuses it, and so does turnout
    with pytest.raises(HostsideError, match=r"env file .*\.env: line 2"):
        read_env_file(str(env_file))


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


def test_program_is_a_zip_of_the_real_modules() -> None:
    names = zipfile.ZipFile(io.BytesIO(program_zip())).namelist()
    assert names[0] == "__main__.py"
    here = Path(turnout.__file__).parent
    for path in [*(here / "hostside").glob("*.py"), here / "dsn.py", here / "constants.py"]:
        shipped = f"turnout/{path.relative_to(here)}"
        assert shipped in names, shipped  # every host-side module goes, unlisted ones too
        assert zipfile.ZipFile(io.BytesIO(program_zip())).read(shipped) == path.read_bytes()
    assert program_zip() == program_zip.__wrapped__()  # deterministic: same code, same name
    assert program_name().startswith("hostside-")


@pytest.mark.parametrize(
    "wrapping",
    [
        {},
        {"_sudo": True, "_sudo_user": "app", "_use_sudo_login": True, "_preserve_sudo_env": True},
        {"_su_user": "app", "_use_su_login": True, "_preserve_su_env": True},
        {"_sudo": True, "_su_user": "postgres", "_env": {"LC_ALL": "C.UTF-8"}},
    ],
)
def test_final_commands_stay_short_after_su_and_sudo(wrapping: dict) -> None:
    """Every command, as the host's shell receives it, is far below Linux's 128 KiB limit on one
    argument: the program travels once, on stdin, never in argv."""
    params = {
        "dsn_env": "DATABASE_URL",
        "env_file": "/srv/app/.env",
        "tables": [f"schema_{i}.table_{i}" for i in range(200)],
        "log_path": "/var/lib/turnout/evidence/dry_run/20261124T000000Z/logs/pg_dump.log",
    }
    commands = [hostside_command("row_counts", params, python="/opt/venv/bin/python3")]
    commands.append(ship_command())
    for command in commands:
        final = make_unix_command(command, **wrapping).get_raw_value()
        assert len(final.encode()) < 16 * 1024, len(final)
        assert "PGDMP" not in final and "def main" not in final
    # On stdin, once per run: about 220 KB base64 with every runbook's host-side code (the
    # SQLite → PostgreSQL copy, verification and converters are a third of it).
    assert len(program_payload()) < 320 * 1024


def test_ship_command_places_the_program_once_content_addressed(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}

    def ship() -> Path:
        result = subprocess.run(
            ["sh", "-c", ship_command(sys.executable).get_raw_value()],
            input=program_payload(),
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        return Path(result.stdout.strip())

    placed = ship()
    assert placed == tmp_path / "cache" / "turnout" / program_name()
    assert oct(placed.parent.stat().st_mode & 0o777) == "0o700"
    assert oct(placed.stat().st_mode & 0o777) == "0o700"
    assert (placed / "turnout" / "hostside" / "pg.py").read_bytes() == (
        Path(turnout.__file__).parent / "hostside" / "pg.py"
    ).read_bytes()
    assert list((placed / "turnout" / "hostside" / "__pycache__").glob("pg.*.pyc"))  # compiled
    assert [p.name for p in placed.parent.iterdir()] == [placed.name]  # no temporaries left
    marker = placed / "__main__.py"
    before = marker.stat().st_mtime_ns
    assert ship() == placed and marker.stat().st_mtime_ns == before  # kept as it is
    (placed / ".sha256").write_text("tampered\n")  # a wrong copy is replaced
    assert ship() == placed and (placed / ".sha256").read_text().strip() != "tampered"
    assert [p.name for p in placed.parent.iterdir()] == [placed.name]
    result = subprocess.run(
        [sys.executable, str(placed), "path_modes", '{"paths": ["/"]}'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert parse_hostside_output(result.stdout.splitlines())["paths"]["/"]["type"] == "dir"


def test_planted_host_side_error_names_its_real_file_and_line(tmp_path: Path) -> None:
    """An unexpected exception on the host says where it happened; the traceback goes to the
    step's log (when its directory exists), with the real file and line."""
    source = (Path(turnout.__file__).parent / "hostside" / "files.py").read_text().splitlines()
    start = next(i for i, text in enumerate(source) if text.startswith("def action_make_dirs"))
    line = next(
        i for i, text in enumerate(source, 1) if i > start and "for path in params" in text
    )
    (tmp_path / "logs").mkdir()
    log = tmp_path / "logs" / "step.log"
    result, out = run_shipped("make_dirs", {"paths": 5, "log_path": str(log)}, tmp_path)
    assert result.returncode == 1
    assert out["ok"] is False
    where = f"TypeError: 'int' object is not iterable (at turnout/hostside/files.py line {line}"
    assert where in out["error"]
    assert f"traceback in {log}" in out["error"]
    one_line = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(one_line) == 1 and one_line[0].startswith("turnout: make_dirs: TypeError")
    kept = log.read_text()
    assert "Traceback (most recent call last)" in kept
    assert f'turnout/hostside/files.py", line {line}, in action_make_dirs' in kept
    # a fact reports it the same way, and exits 0
    result, out = run_shipped("path_modes", {"paths": 5}, tmp_path)
    assert result.returncode == 0 and "at turnout/hostside/files.py line" in out["error"]


def test_tracebacks_kept_in_evidence_are_redacted(tmp_path: Path) -> None:
    from turnout.hostside.base import remember_secret
    from turnout.hostside.main import keep_traceback

    remember_secret(CANARY)
    log = tmp_path / "step.log"
    try:
        int(CANARY)
    except ValueError as error:
        assert keep_traceback(error, "row_counts", {"log_path": str(log)}) == str(log)
    text = log.read_text()
    assert "ValueError" in text and CANARY not in text
    assert keep_traceback(ValueError("x"), "a", {"log_path": str(tmp_path / "no" / "l")}) is None


def test_shipped_program_does_not_import_an_installed_turnout(tmp_path: Path) -> None:
    """On a host where another turnout is importable, the program runs only its own modules."""
    result, out = run_shipped("path_modes", {"paths": ["/"]}, tmp_path)  # shadow on PYTHONPATH
    assert result.returncode == 0, result.stderr
    assert out["ok"] is True and out["paths"]["/"]["type"] == "dir"


def test_evidence_file_is_kept_atomically_and_a_full_disk_fails_with_one_line(
    tmp_path: Path,
) -> None:
    """``write_file`` (how reports are kept) replaces a file only whole; on a full filesystem (a
    real 64 KiB tmpfs) it fails with one line and the previous content survives."""
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(small)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert mounted.returncode == 0, f"a tmpfs is needed for this test: {mounted.stderr}"
    try:
        report = small / "validate_db.json"
        command = hostside_command("write_file", {"path": str(report)}, python=sys.executable)
        ok = subprocess.run(
            ["sh", "-c", command.get_raw_value()],
            input='{"verdict": "pass"}\n',
            capture_output=True,
            text=True,
            check=False,
        )
        assert ok.returncode == 0, ok.stderr
        assert report.read_text() == '{"verdict": "pass"}\n'
        assert oct(report.stat().st_mode & 0o777) == "0o600"
        full = subprocess.run(
            ["sh", "-c", command.get_raw_value()],
            input="x" * 200_000,
            capture_output=True,
            text=True,
            check=False,
        )
        assert full.returncode == 1
        lines = [line for line in full.stderr.splitlines() if line.strip()]
        assert lines == [f"turnout: write_file: cannot write {report}: No space left on device"]
        assert report.read_text() == '{"verdict": "pass"}\n'  # the old report survives whole
        assert [p.name for p in small.iterdir()] == ["validate_db.json"]  # no temporary left
    finally:
        subprocess.run(["umount", str(small)], check=False)
