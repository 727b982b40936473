"""Parsing of ``docker compose ps`` / ``config --hash`` and the decision of what ``up`` must do."""

import pytest
from pyinfra.api.exceptions import OperationError

from turnout.facts.compose import ComposeServices, compose_command
from turnout.operations.compose import stale_services

PS_LINE = (
    '{"Service":"api","State":"running","Health":"healthy",'
    '"Labels":"com.docker.compose.config-hash=abc,com.docker.compose.project=p"}'
)


def parse(lines: list[str]) -> dict:
    return ComposeServices().process(lines)


def test_parses_json_lines_and_hashes() -> None:
    fact = parse(["#ps", PS_LINE, "#hash", "api abc", "db def"])
    assert fact["ok"] is True
    assert fact["services"] == {
        "api": {"state": "running", "health": "healthy", "config_hash": "abc"}
    }
    assert fact["expected"] == {"api": "abc", "db": "def"}


def test_failure_is_reported_not_raised() -> None:
    fact = parse(["#ps", "no such file", "#failed", "#hash", "#failed"])
    assert fact["ok"] is False and "no such file" in fact["error"]


def test_stale_services_reasons() -> None:
    fact = parse(["#ps", PS_LINE, "#hash", "api abc", "db def"])
    assert stale_services(fact, None) == {"db": "not created"}
    fact["expected"]["api"] = "changed"
    assert stale_services(fact, ["api"]) == {"api": "configuration changed"}
    with pytest.raises(OperationError, match="not defined"):
        stale_services(fact, ["nope"])


def test_compose_command_always_passes_env_file() -> None:
    command = compose_command(
        "up", "-d", env_file="/srv/my app/.env", compose_file="/srv/app/c.yml", project="p"
    ).get_raw_value()
    assert command == "docker compose --env-file '/srv/my app/.env' -f /srv/app/c.yml -p p up -d"
