"""The shapes of apps other than the reference app, as settings and host-side rules: a DSN in
parts, a database reachable only inside compose, an app that runs on the host."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from psycopg.conninfo import conninfo_to_dict

from turnout.database import Database, app_database
from turnout.hostapp import lifecycle
from turnout.hostside.base import HostsideError, params_dsn, parts_dsn
from turnout.remote import hostside_command
from turnout.settings import SettingsError, load_settings

PASSWORD = "p@ss w:rd/%#'\"\\ $HOME"
PARTS = {
    "host": "POSTGRES_SERVER",
    "port": "POSTGRES_PORT",
    "user": "POSTGRES_USER",
    "password": "POSTGRES_PASSWORD",
    "dbname": "POSTGRES_DB",
}


def env_file(tmp_path, **values: str) -> str:
    path = tmp_path / ".env"
    escaped = {k: v.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
               for k, v in values.items()}
    path.write_text("".join(f'{k}="{v}"\n' for k, v in escaped.items()))
    return str(path)


def test_dsn_parts_become_one_conninfo_without_encoding(tmp_path) -> None:
    path = env_file(
        tmp_path, POSTGRES_SERVER="/run/postgresql", POSTGRES_PORT="5432",
        POSTGRES_USER="app", POSTGRES_PASSWORD=PASSWORD, POSTGRES_DB="app",
    )
    info = conninfo_to_dict(parts_dsn("DATABASE_URL", PARTS, path))
    assert info == {"host": "/run/postgresql", "port": "5432", "user": "app",
                    "password": PASSWORD, "dbname": "app"}
    params = Database("DATABASE_URL", path, parts=tuple(f"{k}={v}" for k, v in PARTS.items()))
    assert conninfo_to_dict(params_dsn(params.params()))["password"] == PASSWORD


def test_a_missing_part_is_named_never_its_value(tmp_path) -> None:
    path = env_file(tmp_path, POSTGRES_SERVER="db", POSTGRES_PASSWORD=PASSWORD)
    with pytest.raises(HostsideError) as error:
        parts_dsn("DATABASE_URL", PARTS, path)
    assert "POSTGRES_PORT" in str(error.value) and PASSWORD not in str(error.value)


def test_the_environment_wins_over_the_env_file(tmp_path, monkeypatch) -> None:
    path = env_file(tmp_path, POSTGRES_SERVER="db", POSTGRES_DB="file")
    monkeypatch.setenv("POSTGRES_DB", "process")
    info = conninfo_to_dict(parts_dsn("X", {"host": "POSTGRES_SERVER", "dbname": "POSTGRES_DB"},
                                      path))
    assert info["dbname"] == "process"


def test_dsn_parts_setting() -> None:
    parts = "host=POSTGRES_SERVER,password=POSTGRES_PASSWORD"
    settings = load_settings({"target_dsn_parts": parts})
    assert settings.target_dsn_parts == ("host=POSTGRES_SERVER", "password=POSTGRES_PASSWORD")
    assert load_settings({"target_dsn_parts": ""}).target_dsn_parts == ()
    for bad in ("hots=POSTGRES_SERVER", "host", "host=1BAD"):
        with pytest.raises(SettingsError, match="target_dsn_parts must be libpq keyword"):
            load_settings({"target_dsn_parts": bad})


def test_db_connect_compose_reaches_the_database_through_its_service() -> None:
    settings = load_settings({"db_connect": "compose", "db_service": "postgres",
                              "app_root": "/srv/app", "compose_project": "shop"})
    params = app_database(settings).params()
    assert params["db_via"][-3:] == ["exec", "-T", "postgres"]
    assert params["db_via"][:4] == ["docker", "compose", "--env-file", "/srv/app/.env"]
    assert settings.db_tools_in_compose
    assert "db_via" not in app_database(load_settings({})).params()
    with pytest.raises(SettingsError, match="db_connect must be dsn or compose"):
        load_settings({"db_connect": "tunnel"})


def test_host_app_lifecycle_from_a_unit_or_commands() -> None:
    unit = SimpleNamespace(app_unit="shop api.service", app_start_command=None,
                           app_stop_command=None, app_status_command=None)
    assert lifecycle(unit) == {
        "start": "systemctl start 'shop api.service'",
        "stop": "systemctl stop 'shop api.service'",
        "status": "systemctl is-active --quiet 'shop api.service'",
    }
    commands = SimpleNamespace(app_unit=None, app_start_command="ctl start",
                               app_stop_command=None, app_status_command="ctl status")
    with pytest.raises(ValueError, match="app_stop_command"):
        lifecycle(commands)


def test_app_exec_runs_in_the_app_dir_with_the_env_file(tmp_path) -> None:
    path = env_file(tmp_path, POSTGRES_PASSWORD=PASSWORD, SHOP_MODE="prod")
    (tmp_path / "backend").mkdir()
    script = "import json, os; print(json.dumps([os.getcwd(), os.environ['POSTGRES_PASSWORD'],"
    script += " os.environ['SHOP_MODE']]))"
    command = hostside_command(
        "app_exec",
        {"argv": [sys.executable, "-c", script], "cwd": str(tmp_path / "backend"),
         "env_file": path},
        python=sys.executable,
    ).get_raw_value()
    assert PASSWORD not in command  # the values reach the child's environment, never argv
    env = {k: v for k, v in os.environ.items() if k not in ("SHOP_MODE", "POSTGRES_PASSWORD")}
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=env,
                          check=True)
    assert json.loads(done.stdout) == [str(tmp_path / "backend"), PASSWORD, "prod"]


def test_app_exec_of_a_missing_program_is_one_line_and_127(tmp_path) -> None:
    command = hostside_command(
        "app_exec", {"argv": ["/nonexistent/python", "-V"], "cwd": str(tmp_path)},
        python=sys.executable,
    ).get_raw_value()
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
    assert done.returncode == 127
    assert done.stderr.strip().count("\n") == 0 and "does not exist on this host" in done.stderr
